#!/usr/bin/env bash
# The node with the real tracker: a bootstrap node registers (even when the
# tracker comes up after it), a silent node with nothing but the tracker
# finds it and links up, and a clean shutdown unregisters.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh
TRK=$PWD/$BUILD/grapevine-tracker
if [ ! -x "$TRK" ]; then
  ok "no tracker built: skipped # SKIP"
  finish
  exit 0
fi
pids=()
cleanup() { exec 2>/dev/null; for p in "${pids[@]}"; do kill -9 "$p"; done; wait; rm -rf "$TMP"; }
trap cleanup EXIT
free_ports 4 || { echo "not ok - no free ports"; exit 1; }
P=$BASE
URL=http://127.0.0.1:$P
J() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)" 2>/dev/null; }

"$GV" node --data-dir "$TMP/boot" --bootstrap --listen "127.0.0.1:$((P + 1))" --repo r1 \
  --tracker "$URL" > "$TMP/boot.log" 2>&1 &
boot=$!; pids+=($boot)
sleep 2 # the tracker is not up yet: the node must retry on its own
"$TRK" --listen "127.0.0.1:$P" --db "$TMP/t.db" > "$TMP/t.log" 2>&1 &
trk=$!; pids+=($trk)
registered() { "$GV" status --data-dir "$TMP/boot" --json | J 'd["tracker_registered"]' | grep -q True; }
wait_for 30 registered && ok "a bootstrap node started before its tracker registers once it is up" ||
  not_ok "late tracker" "$(tail -3 "$TMP/boot.log")"
listed() { curl -s "$URL/api/bootstrap/peers" | grep -q "$("$GV" id --data-dir "$TMP/boot")"; }
wait_for 10 listed && ok "the tracker lists it (its dial-back handshake passed)" || not_ok "listed"

"$GV" node --data-dir "$TMP/silent" --tracker "$URL" > "$TMP/silent.log" 2>&1 &
silent=$!; pids+=($silent)
linked() { "$GV" status --data-dir "$TMP/silent" --json | J 'd["links"] >= 1 and d["table"] >= 1' | grep -q True; }
wait_for 30 linked && ok "a silent node with only the tracker finds the bootstrap and links up" ||
  not_ok "silent via tracker" "$(tail -3 "$TMP/silent.log")"

stop_pids "$boot"
unlisted() { ! curl -s "$URL/api/bootstrap/peers" | grep -q "$("$GV" id --data-dir "$TMP/boot")"; }
wait_for 10 unlisted && ok "SIGTERM: the bootstrap node unregisters" || not_ok "unregister" "$(tail -3 "$TMP/boot.log")"
stop_pids "$silent"
stop_pids "$trk" # last, as in make run
finish
