#!/usr/bin/env bash
# The torrent wrapper's benchmark (issue 11), in one run: one seeder to one
# fetcher on loopback, each in its own process, TOR_BENCH_MIB (256) MiB of
# random bytes, best of TOR_BENCH_RUNS (3):
#   - the anchor: tests/bench/tor_bare.cpp, a bare libtorrent pair with the
#     tuned settings (high_performance_seed, 100 ms tick, TCP only) and no
#     encryption;
#   - ours: tests/tor_peer, the same transfer through the gv_tor C API on a
#     libuv loop (notify -> uv_async -> gv_tor_poll), with encryption off
#     for the comparison, and again with our default (RC4 both ways).
# Prints MB/s (10^6 bytes) and the ratio to the anchor (goal >= 0.9), and
# the time from adding the torrent with a known peer to the first verified
# piece (goal < 200 ms). Never fails for being slow; fails if a transfer
# does not complete or its bytes differ.
#
#   tests/bench/bench_torrent.sh [BUILD_DIR]   (make bench runs it)
set -u
here=$(cd "$(dirname "$0")" && pwd)
B=${1:-$here/../../build}
MIB=${TOR_BENCH_MIB:-256}
RUNS=${TOR_BENCH_RUNS:-3}
TMP=$(mktemp -d /tmp/gv-bench-tor-XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
for x in "$B/bench/tor_bare" "$B/tests/tor_peer"; do
  [ -x "$x" ] || { echo "bench_torrent: build $x first" >&2; exit 1; }
done

mkdir -p "$TMP/src"
head -c $((MIB * 1024 * 1024)) /dev/urandom >"$TMP/src/data.bin"
want=$(sha256sum <"$TMP/src/data.bin" | cut -d' ' -f1)

# seeder NAME CMD...: starts a seeder printing "port N" then "ready" into
# $TMP/NAME.seed; sets PORT. 120 s at most (it hashes the file twice).
seeder() {
  local name=$1
  shift
  "$@" >"$TMP/$name.seed" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 1200); do
    grep -q '^ready' "$TMP/$name.seed" && break
    sleep 0.1
  done
  PORT=$(awk '/^port/ {print $2}' "$TMP/$name.seed")
  grep -q '^ready' "$TMP/$name.seed" || {
    echo "bench_torrent: $name seeder did not start:" >&2
    tail -3 "$TMP/$name.seed" >&2
    exit 1
  }
}

# best NAME CMD...: runs the fetch CMD RUNS times (fresh output and state),
# checks the bytes, sets MBS (best) and FIRST (its first-piece ms).
best() {
  local name=$1 i line ms first mbs
  shift
  MBS=0 FIRST=0
  for i in $(seq 1 "$RUNS"); do
    rm -rf "$TMP/out" "$TMP/state"
    line=$("$@" 2>&1 | grep '^finished')
    [ -n "$line" ] || { echo "bench_torrent: $name fetch failed" >&2; exit 1; }
    [ "$(sha256sum <"$TMP/out/data.bin" | cut -d' ' -f1)" = "$want" ] || {
      echo "bench_torrent: $name fetched different bytes" >&2
      exit 1
    }
    ms=$(sed -n 's/.* ms=\([0-9.]*\).*/\1/p' <<<"$line")
    first=$(sed -n 's/.*first_piece_ms=\([0-9.-]*\).*/\1/p' <<<"$line")
    mbs=$(awk -v m="$MIB" -v t="$ms" 'BEGIN {printf "%.1f", m * 1048576 / 1e6 / (t / 1000)}')
    echo "  $name run $i: $mbs MB/s, first piece after $first ms"
    if awk -v a="$mbs" -v b="$MBS" 'BEGIN {exit !(a > b)}'; then
      MBS=$mbs FIRST=$first
    fi
  done
}

echo "torrent: $MIB MiB on loopback, one seeder to one fetcher, TCP, best of $RUNS"
seeder bare "$B/bench/tor_bare" seed --file "$TMP/src/data.bin" \
  --torrent-out "$TMP/bare.torrent"
best bare "$B/bench/tor_bare" fetch --torrent "$TMP/bare.torrent" \
  --out "$TMP/out" --peer "127.0.0.1:$PORT"
bare=$MBS bare_first=$FIRST

seeder plain "$B/tests/tor_peer" seed --file "$TMP/src/data.bin" \
  --state "$TMP/seed-plain" --torrent-out "$TMP/plain.torrent" --plain
best "gv_tor plaintext" "$B/tests/tor_peer" fetch --torrent "$TMP/plain.torrent" \
  --out "$TMP/out" --state "$TMP/state" --peer "127.0.0.1:$PORT" --plain
plain=$MBS plain_first=$FIRST

seeder rc4 "$B/tests/tor_peer" seed --file "$TMP/src/data.bin" \
  --state "$TMP/seed-rc4" --torrent-out "$TMP/rc4.torrent"
best "gv_tor RC4" "$B/tests/tor_peer" fetch --torrent "$TMP/rc4.torrent" \
  --out "$TMP/out" --state "$TMP/state" --peer "127.0.0.1:$PORT"
rc4=$MBS rc4_first=$FIRST

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}'; }
printf '%-36s %8s %10s %18s\n' "" "MB/s" "ratio" "first piece (ms)"
printf '%-36s %8s %10s %18s\n' "anchor: bare libtorrent, plaintext" "$bare" "1.00" "$bare_first"
printf '%-36s %8s %10s %18s\n' "gv_tor, plaintext" "$plain" "$(ratio "$plain" "$bare")" "$plain_first"
printf '%-36s %8s %10s %18s\n' "gv_tor, RC4 (default)" "$rc4" "$(ratio "$rc4" "$bare")" "$rc4_first"
echo "goals: ratio >= 0.9 (plaintext against the anchor), first piece < 200 ms"
