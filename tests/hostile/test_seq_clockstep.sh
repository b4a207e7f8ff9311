#!/usr/bin/env bash
# Issue 12 item 8, `broadcast off` silently ignored: a broadcasting node
# signs an update, is killed (-9) at once and restarts with its wall clock
# stepped back (libfaketime; 25 s, within the 30 s skew its neighbours'
# records tolerate, so that it can still link), then goes silent. Its
# record's seq must still be above every seq it signed before, so that its
# neighbours take the update and forget its address; on the old code the
# seq was the wall clock, lower than the last one, and the update lost
# (PROTOCOL.md §6.2).
# - A broadcasts; B and C (silent) dial it and list its address;
# - per round (HOSTILE_SIZE small: 1 round, full: 3): A signs an update
#   (`repo add`), is killed with -9 and restarts with its clock STEP_S
#   behind; B and C link to it again;
# - `grapevine broadcast off` on A says both neighbours took the update up
#   (PROTOCOL.md §6.7), and neither B nor C lists A's address any more;
# - a node with no link says the update goes out when a link comes up.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh

case ${HOSTILE_SIZE:-small} in
full) ROUNDS=3 ;;
*) ROUNDS=1 ;;
esac
STEP_S=25 # < GV_CLOCK_SKEW_MS: a node further behind refuses its peers' records
LIBFT=/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1
[ -r "$LIBFT" ] || { not_ok "libfaketime installed (scripts/deps.sh: faketime)"; finish; exit; }
free_ports 1 || { not_ok "free ports"; finish; exit; }
A=127.0.0.1:$BASE

# behind S: a grapevine that runs with its wall clock S seconds back; the
# monotonic clock is left alone (only the wall clock steps). Under ASan
# (make asan) the preload comes before its runtime, which it allows here.
behind() {
  cat >"$TMP/gv-behind" <<EOF
#!/bin/sh
ASAN_OPTIONS=\${ASAN_OPTIONS:+\$ASAN_OPTIONS:}verify_asan_link_order=0
export ASAN_OPTIONS
LD_PRELOAD=$LIBFT FAKETIME="-${1}s" FAKETIME_DONT_FAKE_MONOTONIC=1 exec "$PWD/$BUILD/grapevine" "\$@"
EOF
  chmod +x "$TMP/gv-behind"
}
lists_addr() { "$GV" peers --data-dir "$TMP/$1" --json | grep -q "\"$A\""; }
linked_to_a() { # A's status counts its links
  [ "$("$GV" status --data-dir "$TMP/a" --json | J 'd["links"]')" -ge 2 ]
}

start a --broadcast --listen "$A" || { not_ok "start a"; finish; exit; }
start b --peer "$A" || not_ok "start b"
start c --peer "$A" || not_ok "start c"
if wait_for 15 lists_addr b && wait_for 15 lists_addr c; then
  ok "B and C list A's address"
else
  not_ok "B and C list A's address" "$("$GV" peers --data-dir "$TMP/b")"
fi
behind "$STEP_S"
for r in $(seq 1 "$ROUNDS"); do
  # The update's seq is A's wall clock now (or above), and B takes it.
  "$GV" repo add "round$r" --data-dir "$TMP/a" >/dev/null
  has_round() { "$GV" peers --data-dir "$TMP/b" --json | grep -q "\"round$r\""; }
  wait_for 5 has_round || not_ok "round $r: B gets A's update"
  kill -9 "$pid_a"
  wait "$pid_a" 2>/dev/null
  GV_REAL=$GV GV=$TMP/gv-behind
  start a --broadcast --listen "$A" || not_ok "restart a, clock $STEP_S s back"
  GV=$GV_REAL
  now_a=$(LD_PRELOAD=$LIBFT FAKETIME="-${STEP_S}s" date +%s)
  [ $(($(date +%s) - now_a)) -ge $((STEP_S - 2)) ] &&
    ok "round $r: A restarted after kill -9, its wall clock $STEP_S s behind" ||
    not_ok "round $r: faketime steps the clock" "$now_a vs $(date +%s)"
  if wait_for 15 linked_to_a; then
    ok "round $r: B and C link to the restarted A"
  else
    not_ok "round $r: B and C link to A" "$("$GV" status --data-dir "$TMP/a")"
  fi
done

out=$("$GV" broadcast off --data-dir "$TMP/a" 2>&1)
rc=$?
[ $rc -eq 0 ] && grep -q "taken up by 2 of 2 neighbours" <<<"$out" &&
  ok "broadcast off reports the uptake: $out" ||
  not_ok "broadcast off reports that both neighbours took the update" "rc $rc: $out"
forgot() { ! lists_addr b && ! lists_addr c; }
if wait_for 5 forgot; then
  ok "after kill -9 and a restart with the clock $STEP_S s back, B and C forget A's address"
else
  not_ok "B and C forget A's address" "$(grep -c "$A" <("$GV" peers --data-dir "$TMP/b" --json)) entries at B still show $A"
fi
ceiling=$(sqlite3 "$TMP/a/node.db" "select value from settings where key = 'seq_ceiling'" 2>&1)
[[ $ceiling =~ ^[0-9]+$ ]] && [ "$ceiling" -gt $(($(date +%s) * 1000)) ] &&
  ok "A's seq ceiling is in node.db, above today's wall clock in ms" ||
  not_ok "A's seq ceiling is in node.db" "$ceiling"

# A node alone: nothing to wait for, and it says so.
start d || not_ok "start d"
out=$("$GV" broadcast off --data-dir "$TMP/d" --json)
[ "$(J 'd["uptake"]["neighbours"]' <<<"$out")" = 0 ] && ok "no links: --json uptake shows 0 neighbours" ||
  not_ok "no links: --json uptake" "$out"
out=$("$GV" broadcast off --data-dir "$TMP/d")
grep -q "goes out when a link comes up" <<<"$out" && ok "no links: says the update goes out later" ||
  not_ok "no links: the CLI says so" "$out"
finish
