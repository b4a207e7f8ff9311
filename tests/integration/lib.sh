# Helpers for integration scripts: TAP-like "ok N - name" lines that
# tests/run.sh counts. Source it; call `check NAME COMMAND...` or
# `ok NAME` / `not_ok NAME DETAIL`; end with `finish`.
set -u
BUILD=${BUILD:-build}
GV=$PWD/$BUILD/grapevine
TMP=$(mktemp -d /tmp/gv-it-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
_tap_n=0 _tap_fail=0

ok() { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n - $1"; }
not_ok() {
  _tap_n=$((_tap_n + 1)) _tap_fail=$((_tap_fail + 1))
  echo "not ok $_tap_n - $1"
  [ -n "${2:-}" ] && printf '#   %s\n' "$2" | head -20
  return 0
}
# check NAME CMD...: passes when CMD exits 0.
check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then ok "$name"; else not_ok "$name" "$out"; fi
}
finish() { [ "$_tap_fail" -eq 0 ]; }
