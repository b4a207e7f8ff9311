#!/usr/bin/env bash
# Installs every Debian 12 package Grapevine needs to build, test, fuzz and
# benchmark. Safe to run twice: packages already present are skipped, and
# apt-get runs only when something is missing.
#
# Usage: scripts/deps.sh [--check]
#   --check   only report what is missing; exit 1 if anything is.
set -euo pipefail

PKGS=(
  build-essential pkg-config git
  libsodium-dev libuv1-dev libcjson-dev libsqlite3-dev check libxxhash-dev
  clang libclang-rt-14-dev
  python3 gnuplot-nox
  libmicrohttpd-dev libcurl4-openssl-dev curl sqlite3 wrk opentracker
  mosquitto libmosquitto-dev nats-server
  tmux bsdutils
  faketime
  libtorrent-rasterbar-dev
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

# Node.js and npm run the MCP tests' client (the official SDK, pinned in
# tests/mcp/package-lock.json). A machine may have them from elsewhere than
# Debian (nodesource's nodejs bundles npm), so they are looked for as
# commands, and Debian's packages are installed only when absent.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "missing Debian packages: ${missing[*]}" >&2
  exit 1
fi

echo "deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done" >&2
