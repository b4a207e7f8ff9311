#!/usr/bin/env bash
# A silent node's entry guards (docs/NODE.md "Privacy"), from outside:
#   - it lists its guards in `grapevine status --json` and links to them;
#   - a broadcasting node that appears later is not taken into a full set;
#   - restarted, it keeps the same guards and dials them again;
#   - with guards off, or while broadcasting, it lists none.
# Real nodes on loopback; every wait is bounded (about 60 s in all).
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh
[ -n "${KEEP_LOGS:-}" ] && trap 'cp "$TMP"/*.log "$KEEP_LOGS"/ 2>/dev/null; lib_cleanup' EXIT

free_ports 6 || { echo "no free ports"; exit 1; }
st() { "$GV" status --data-dir "$TMP/$1" --json 2>/dev/null; }
# guards NAME: the node's guard ids, sorted, one per line.
guards() { st "$1" | J '"\n".join(sorted(g["id"] for g in d["guards"]))'; }
n_guards() { st "$1" | J 'len(d["guards"])'; }
n_linked() { st "$1" | J 'sum(1 for g in d["guards"] if g["linked"])'; }
has_two() { [ "$(n_guards s)" = 2 ] && [ "$(n_linked s)" = 2 ]; }

# Three broadcasting nodes, a mesh; a silent node seeded with all three,
# two guards, eligible from the first round (min age 0).
B=()
for i in 0 1 2 3; do B+=("127.0.0.1:$((BASE + i))"); done
start b0 --broadcast --listen "${B[0]}" || not_ok "start b0"
start b1 --broadcast --listen "${B[1]}" --peer "${B[0]}" || not_ok "start b1"
start b2 --broadcast --listen "${B[2]}" --peer "${B[0]}" --peer "${B[1]}" || not_ok "start b2"
SILENT=(--peer "${B[0]}" --peer "${B[1]}" --peer "${B[2]}" --guard-count 2 --guard-min-age 0)
start s "${SILENT[@]}" || not_ok "start s"

if wait_for 30 has_two; then
  ok "a silent node picks 2 guards and links to both"
else not_ok "guards chosen" "$(st s)"; fi
before=$(guards s)
ids=$(for b in b0 b1 b2; do "$GV" id --data-dir "$TMP/$b"; done)
if [ -n "$before" ] && [ "$(grep -cxF -f <(echo "$ids") <<<"$before")" = 2 ]; then
  ok "its guards are broadcasting nodes it was seeded with"
else not_ok "guard ids" "$before / $ids"; fi

# A newcomer: known to s through gossip, never taken into the full set.
start b3 --broadcast --listen "${B[3]}" --peer "${B[0]}" || not_ok "start b3"
id3=$("$GV" id --data-dir "$TMP/b3")
knows3() { "$GV" peers --data-dir "$TMP/s" --json 2>/dev/null | grep -q "$id3"; }
wait_for 20 knows3 || not_ok "s learns of b3" "$("$GV" peers --data-dir "$TMP/s" --json 2>&1 | head -5)"
sleep 11 # one guard round (10 s) with b3 in the table
if [ "$(guards s)" = "$before" ]; then ok "a newcomer does not change a full guard set"
else not_ok "newcomer" "$(guards s) / $before"; fi

# Restart: the same guards, linked again.
stop_pids "$pid_s"
start s "${SILENT[@]}" || not_ok "restart s"
after=$(guards s)
if [ "$after" = "$before" ]; then ok "restarted, it restores the same guards"
else not_ok "restore" "$after / $before"; fi
grep -q "restored 2 guard(s)" "$TMP/s.log" && ok "its log says the guards were restored" ||
  not_ok "restore log" "$(grep -i guard "$TMP/s.log" | tail -3)"
if wait_for 20 has_two && [ "$(guards s)" = "$before" ]; then
  ok "and dials them again"
else not_ok "redial guards" "$(st s)"; fi

# Guards off: none listed; a broadcasting node lists none either.
start t --peer "${B[0]}" --guards off || not_ok "start t"
[ "$(n_guards t)" = 0 ] && [ "$(n_guards b0)" = 0 ] &&
  ok "guards off, or broadcasting: no guards" || not_ok "no guards" "$(st t) / $(st b0)"
out=$("$GV" node --data-dir "$TMP/x" --guard-count 0 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q "guard-count" <<<"$out" && ok "a bad --guard-count is named" ||
  not_ok "bad guard-count" "$rc $out"

stop_pids "$pid_s" "$pid_t" "$pid_b3" "$pid_b2" "$pid_b1" "$pid_b0"
finish
