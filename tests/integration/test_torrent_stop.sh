#!/usr/bin/env bash
# The torrent service at the node's edges (docs/TORRENT.md): SIGTERM while
# a share is hashing stops the hashing (the node exits 0 within 3 s, the
# waiting `share` says "node stopping"). Every wait is bounded.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh

# ---- SIGTERM during a share's hashing ----
start st || { not_ok "st starts"; finish; exit; }
mkdir -p "$TMP/big"
truncate -s 2G "$TMP/big/sparse.bin" # seconds of hashing, no disk used
"$GV" share "$TMP/big/sparse.bin" --data-dir "$TMP/st" >"$TMP/share.out" 2>&1 &
share_pid=$!
sleep 0.3
kill -TERM "$pid_st"
t0=$(date +%s%N)
for _ in $(seq 1 30); do kill -0 "$pid_st" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid_st" 2>/dev/null; then
  not_ok "SIGTERM mid-hash: the node exits within 3 s" "still running"
  kill -9 "$pid_st"
  wait "$pid_st" 2>/dev/null
else
  wait "$pid_st"
  rc=$? ms=$((($(date +%s%N) - t0) / 1000000))
  [ $rc = 0 ] && ok "SIGTERM mid-hash: the node exits 0 within 3 s ($ms ms)" ||
    not_ok "SIGTERM mid-hash: the node exits 0" "exit status $rc"
fi
for _ in $(seq 1 30); do kill -0 "$share_pid" 2>/dev/null || break; sleep 0.1; done
wait "$share_pid"
src=$?
if [ $src != 0 ] && grep -q "node stopping" "$TMP/share.out"; then
  ok "the waiting share says \"node stopping\" and fails (exit $src)"
else not_ok "the waiting share's answer" "exit $src: $(cat "$TMP/share.out")"; fi

finish
