#!/usr/bin/env bash
# make run's local network, bounded: it starts, converges, answers the
# request and stops cleanly; a re-run keeps the identities.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh
free_ports 9 || { not_ok "no 9 free ports"; finish; exit; }
run() {
  DEMO_SECONDS=9 RUN_DIR="$TMP/run" BASE_PORT=$BASE BUILD=$BUILD \
    timeout 180 scripts/localnet.sh 2>&1
}
# localnet.sh stops its processes with SIGTERM; each must log its own clean
# stop (the line a daemon writes last on that path).
stopped() {
  local d n=0
  for d in "$TMP"/run/*/; do
    n=$((n + 1))
    grep -qE ' stopped$' "$d/log" || { echo "$d: $(tail -2 "$d/log")"; return 1; }
  done
  [ $n -ge 7 ]
}
out=$(run); rc=$?
check "make run: SIGTERM, every node and the tracker log their clean stop" stopped
last=$(awk '/--- t=9s ---/{f=1} f' <<<"$out")
if [ $rc -eq 0 ] && grep -q "1 node(s) hold 'linux'" <<<"$out" &&
   grep -q "stopped cleanly" <<<"$out" &&
   ! grep -Eq "\(starting\)| 0 +[0-9]+$" <<<"$last"; then
  ok "make run: 7 nodes link up, a silent node finds 'linux', Ctrl-C stops cleanly"
else not_ok "localnet" "$out"; fi
grep -q "torrent: the fetched file is identical" <<<"$out" &&
  ok "make run: a silent node fetches the file another silent node shares" ||
  not_ok "make run: torrent demo" "$(grep -A4 'torrent:' <<<"$out")"
if [ ! -x "$BUILD/grapevine-tracker" ]; then
  ok "tracker not built: nodes bootstrapped from seeds # SKIP"
elif grep -q "tracker: registered" "$TMP/run/boot1/log" &&
     grep -q "tracker: asked for peers" "$TMP/run/silent1/log" &&
     grep -q "registered" "$TMP/run/tracker/log"; then
  ok "make run: bootstrap nodes register at the tracker (dial-back passed), others ask it"
else not_ok "tracker in make run" "$(tail -3 "$TMP/run/boot1/log"; tail -3 "$TMP/run/tracker/log")"; fi
id1=$("$GV" id --data-dir "$TMP/run/silent1")
out=$(run)
id2=$("$GV" id --data-dir "$TMP/run/silent1")
[ -n "$id1" ] && [ "$id1" = "$id2" ] && grep -q "stopped cleanly" <<<"$out" &&
  ok "make run again: the same identities" || not_ok "localnet rerun" "$id1 $id2"
check "make run again: every process stops cleanly" stopped
finish
