# Helpers for integration scripts: TAP-like "ok N - name" lines that
# tests/run.sh counts. Source it; call `check NAME COMMAND...` or
# `ok NAME` / `not_ok NAME DETAIL`; stop background processes with
# `stop_pids PID...`; end with `finish`.
set -u
BUILD=${BUILD:-build}
GV=$PWD/$BUILD/grapevine
TMP=$(mktemp -d /tmp/gv-it-XXXXXX)
pids=()
# On exit: kill -9 what the test started (its pids), wait for it, and remove
# $TMP. A script with more to undo sets its own EXIT trap.
lib_cleanup() {
  exec 2>/dev/null # the shell's "Killed" notices
  local p
  for p in "${pids[@]}"; do kill -9 "$p"; done
  wait
  rm -rf "$TMP"
}
trap lib_cleanup EXIT
_tap_n=0 _tap_fail=0

ok() { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n - $1"; }
not_ok() {
  _tap_n=$((_tap_n + 1)) _tap_fail=$((_tap_fail + 1))
  echo "not ok $_tap_n - $1"
  [ -n "${2:-}" ] && printf '%s\n' "$2" | head -20 | sed 's/^/#   /'
  return 0
}
# check NAME CMD...: passes when CMD exits 0.
check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then ok "$name"; else not_ok "$name" "$out"; fi
}
# stop_pids PID...: the clean stop for background processes of this shell.
# Sends SIGTERM to each, waits at most STOP_SECONDS (5) for all of them,
# and reports through not_ok each one that did not exit 0 in time (one
# still running is then killed with SIGKILL); one `ok` when all did. Keep
# `kill -9` for the EXIT trap, as a last resort, and where a crash is the
# point.
stop_pids() {
  local p rc cmd left=() bad=0
  [ $# -gt 0 ] || return 0
  declare -A what=()
  for p in "$@"; do # "grapevine node", "tracker_peer", ...
    what[$p]=$(ps -o args= -p "$p" 2>/dev/null |
      awk '{sub(".*/", "", $1); print $1 ($2 ~ /^[a-z]/ ? " " $2 : "")}')
    kill -TERM "$p" 2>/dev/null
  done
  for _ in $(seq 1 $((${STOP_SECONDS:-5} * 10))); do
    left=()
    for p in "$@"; do kill -0 "$p" 2>/dev/null && left+=("$p"); done
    [ ${#left[@]} -eq 0 ] && break
    sleep 0.1
  done
  for p in "$@"; do
    cmd=${what[$p]:-pid $p}
    if kill -0 "$p" 2>/dev/null; then
      kill -9 "$p" 2>/dev/null
      wait "$p" 2>/dev/null
      not_ok "SIGTERM: $cmd exits within ${STOP_SECONDS:-5} s" "killed with SIGKILL"
      bad=1
      continue
    fi
    wait "$p" 2>/dev/null
    rc=$?
    if [ $rc -ne 0 ]; then
      not_ok "SIGTERM: $cmd exits 0" "exit status $rc$([ $rc = 127 ] && echo ' (or not a child of this shell)')"
      bad=1
    fi
  done
  [ $bad = 0 ] && ok "SIGTERM: $(for p in "$@"; do echo "${what[$p]:-pid $p}"; done |
    sort | uniq -c | awk '{n = $1; $1 = ""; printf "%s%d x%s", s, n, $0; s = ", "}'
    ) exit 0 within ${STOP_SECONDS:-5} s"
  return 0
}
finish() { [ "$_tap_fail" -eq 0 ]; }

# free_ports N: sets BASE to the first of N consecutive free loopback ports,
# below the kernel's ephemeral range (32768 and up by default), so that no
# outgoing connection of another test can take one between this check and
# the bind.
free_ports() {
  local p free
  for _ in $(seq 1 50); do
    BASE=$((20000 + RANDOM % (12000 - $1)))
    free=1
    for p in $(seq "$BASE" $((BASE + $1 - 1))); do
      (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && { free=0; break; }
    done
    [ $free = 1 ] && return 0
  done
  return 1
}

# node_in NS NAME ARGS...: as start, inside network namespace NS (the
# control socket is a file, so the CLI reaches it from outside); adds it to
# pids; waits (10 s at most) until it answers.
node_in() {
  local ns=$1 name=$2
  shift 2
  ip netns exec "$ns" "$GV" node --data-dir "$TMP/$name" --log-level debug "$@" > "$TMP/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    "$GV" status --data-dir "$TMP/$name" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

# start NAME ARGS...: starts `grapevine node` with its data in $TMP/NAME and
# its log in $TMP/NAME.log, adds it to pids and sets pid_NAME; waits (10 s at
# most) until it answers.
start() {
  local name=$1
  shift
  "$GV" node --data-dir "$TMP/$name" --log-level debug "$@" >> "$TMP/$name.log" 2>&1 &
  pids+=($!)
  eval "pid_$name=$!"
  for _ in $(seq 1 100); do
    "$GV" status --data-dir "$TMP/$name" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "# $name did not start:"; tail -5 "$TMP/$name.log"
  return 1
}

# wait_for SECONDS CMD...: runs CMD, its output discarded, every 0.2 s until
# it succeeds (0) or SECONDS have passed (1): bounded in time however long
# CMD takes (a CLI call under ASan can take a second).
wait_for() {
  local end=$((SECONDS + $1))
  shift
  while :; do
    "$@" >/dev/null 2>&1 && return 0
    ((SECONDS < end)) || return 1
    sleep 0.2
  done
}

# J EXPR: evaluates EXPR over the JSON on stdin as d.
J() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# tracker_up ARGS...: starts "$TRK" ARGS with its log in $TMP/trk.log,
# waits (10 s at most) for its listening line, and sets TPID and URL
# (http://127.0.0.1:PORT). A tracker that does not come up ends the test.
tracker_up() {
  "$TRK" "$@" 2>"$TMP/trk.log" &
  pids+=($!)
  TPID=$!
  for _ in $(seq 1 200); do
    grep -q 'listening on http://' "$TMP/trk.log" && break
    sleep 0.05
  done
  URL=$(grep -oE 'http://127\.0\.0\.1:[0-9]+' "$TMP/trk.log" | head -1)
  [ -n "$URL" ] || {
    not_ok "tracker starts" "$(tail -5 "$TMP/trk.log")"
    finish
    exit
  }
}

# peer_up NAME: starts "$PEER" (tests/tracker_peer: accepts the tracker's
# dial-backs) with key $TMP/NAME.key and output in $TMP/NAME.out, and sets
# PORT to its listening port (empty if it did not say within 5 s).
peer_up() {
  "$PEER" --key "$TMP/$1.key" >"$TMP/$1.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    grep -q '^port ' "$TMP/$1.out" && break
    sleep 0.05
  done
  PORT=$(awk '/^port /{print $2; exit}' "$TMP/$1.out")
}
