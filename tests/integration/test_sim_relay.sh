#!/usr/bin/env bash
# grapevine-sim --scenario relay: the real relay core on every node, agents
# messaging random agents while nodes crash and restart. Same seed, same
# bytes; and nothing accepted is lost, duplicated or reordered.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh
SIM=$PWD/$BUILD/grapevine-sim
# 20 nodes (16 silent), 17 crashes in 60 virtual seconds: a few seconds of
# CPU. (Larger runs find the core bugs listed in docs/SIMULATOR.md.)
ARGS=(--scenario relay --nodes 20 --seed 1 --json --no-timing)

a=$(timeout 120 "$SIM" "${ARGS[@]}" --out "$TMP/csv" 2>"$TMP/err"); rc=$?
b=$(timeout 120 "$SIM" "${ARGS[@]}" 2>/dev/null)
[ $rc -eq 0 ] && ok "relay scenario exits 0" || not_ok "relay scenario exits 0" "rc $rc: $(cat "$TMP/err")"
if [ -n "$a" ] && [ "$a" = "$b" ] && ! grep -q wall_s <<<"$a"; then
  ok "same seed, byte-identical output with --no-timing"
else not_ok "determinism" "$a / $b"; fi
c=$(timeout 120 "$SIM" --scenario relay --nodes 20 --seed 3 --json --no-timing 2>/dev/null)
[ -n "$c" ] && [ "$c" != "$a" ] && ok "another seed, another run" || not_ok "seed matters" "$c"

if [ -n "$a" ]; then
  for k in lost duplicates out_of_order ip_leaks skipped; do
    v=$(J "d['$k']" <<<"$a")
    [ "$v" = 0 ] && ok "$k = 0" || not_ok "$k = 0" "got $v"
  done
  acc=$(J "d['accepted']" <<<"$a"); del=$(J "d['delivered']" <<<"$a")
  cr=$(J "d['crashes']" <<<"$a"); fw=$(J "d['relay']['forwarded']" <<<"$a")
  [ "$del" -gt 0 ] && [ "$del" = "$acc" ] && ok "delivered $del of $acc accepted" ||
    not_ok "delivered > 0 and all accepted" "$del of $acc"
  [ "$cr" -gt 0 ] && [ "$fw" -gt 0 ] && ok "with $cr crashes, $fw packets forwarded by relays" ||
    not_ok "crashes and forwarding happened" "$cr crashes, $fw forwarded"
  p50=$(J "d['latency_ms']['p50']" <<<"$a"); p99=$(J "d['latency_ms']['p99']" <<<"$a")
  python3 -c "import sys; sys.exit(not (0 < $p50 <= $p99))" &&
    ok "latency p50 $p50 ms <= p99 $p99 ms" || not_ok "latency percentiles" "$p50 $p99"
  # Item 7: the directory's echo (every node's own block said again at
  # every whole directory it received) made 91 relay frames an accepted
  # message in this run; without it, 18.
  fr=$(J "d['relay']['frames']" <<<"$a")
  [ "$fr" -lt $((acc * 40)) ] && ok "$fr relay frames for $acc messages (no directory echo)" ||
    not_ok "relay frames under 40 a message" "$fr for $acc"
else
  not_ok "relay scenario output" "$(cat "$TMP/err")"
fi
[ -s "$TMP/csv/relay_latency_cdf.csv" ] && head -1 "$TMP/csv/relay_summary.csv" | grep -q "lost,duplicates" &&
  ok "--out writes the CSV" || not_ok "--out CSV" "$(ls "$TMP/csv" 2>&1)"
# none_lost NAME ARGS...: the relay scenario with ARGS exits 0 and loses
# no message it accepted. LIMIT: seconds before it counts as hung (120).
none_lost() {
  local name=$1 out rc lo acc
  shift
  out=$(timeout "${LIMIT:-120}" "$SIM" --scenario relay "$@" --json --no-timing 2>"$TMP/err"); rc=$?
  if [ $rc -eq 0 ] && [ -n "$out" ]; then
    lo=$(J "d['lost']" <<<"$out"); acc=$(J "d['accepted']" <<<"$out")
    [ "$lo" = 0 ] && [ "$acc" -gt 0 ] && ok "$name: $acc accepted, none lost" ||
      not_ok "$name: none lost" "lost $lo of $acc"
  else not_ok "$name, exits 0" "rc $rc: $(tail -5 "$TMP/err")"; fi
}
# The run that lost 2 messages (docs/SIMULATOR.md, the relay scenario):
# a silent origin retried them for ever through the hop the destination's
# last packet came by, which had lost the destination, and never dialed
# the relays its record names. Under a second with the fix; the drain is
# cut to 120 s so a regression fails in seconds, not in minutes.
none_lost "200 nodes, seed 3" --nodes 200 --seed 3 --duration-s 20 --drain-s 120
# The run that lost 1 message (item 6): the origin's dialed link slots
# were all held by the relay for messages long stored, kept "in use" by
# the team's directory packets, so the dial to a new destination was
# refused for ever. With the fix (and the later items') the last message
# is delivered 21 virtual s into the drain; cut to 300 s, a regression fails
# in seconds.
none_lost "100 nodes, seed 1" --nodes 100 --seed 1 --drain-s 300
# Item 8: a broadcasting node that held every silent node naming it as a
# relay (decided again at each newer record) filled its inbound slots
# with links it never evicts and refused other broadcasting nodes' dials:
# 4 messages lost; holding at most users_max of them, the drain takes
# 25 virtual s. Cut to 300 s, a regression fails in seconds.
none_lost "50 nodes, seed 2" --nodes 50 --seed 2 --drain-s 300
# Item 11: every user slot was held by silent nodes that 2-4 relays held,
# and nodes that restarted got none anywhere: 10 messages lost in the
# 900 s drain. A node naming its relay alone now takes the slot of a user
# naming 3 or more; the drain takes 46 virtual s. Cut to 300 s. About
# 15 s of CPU, minutes in the sanitizer build: LIMIT is for a hang only.
LIMIT=900 none_lost "100 nodes, seed 29" --nodes 100 --seed 29 --drain-s 300
# Item 13: with the echo gone, a silent origin's message to a busy
# broadcasting node (its inbound slots full) lost each new link to an
# eviction before the packet crossed, and the tries backed off (31 s,
# then 185 s): the drain took 225 virtual s and, cut to 60 s, lost 1. Sent
# again once the link it waited on or left on is lost: 27 s. (Item 12's
# refused dials no longer occur in these runs; check_relay tests it.)
none_lost "100 nodes, seed 5" --nodes 100 --seed 5 --drain-s 60
out=$("$SIM" --scenario relay --stub-sigs 2>&1); rc=$?
[ $rc -eq 2 ] && ok "--stub-sigs is refused for the relay" || not_ok "--stub-sigs refused" "$rc $out"
finish
