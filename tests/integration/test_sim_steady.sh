#!/usr/bin/env bash
# grapevine-sim --scenario steady: a node's background traffic at the
# daemon's intervals. Bad flags are refused; the same seed gives the same
# bytes with --no-timing (no CPU keys), and the CPU keys come back without
# it; the intervals are the engine's and link core's defaults; the figures
# add up (types to total, roles to total, sent to received, PING to PONG).
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh
SIM=$PWD/$BUILD/grapevine-sim
PY() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); sys.exit(not ($1))" "$2"; }

for args in "--duration 0" "--duration -1" "--duration abc" "--duration 25h" "--duration nanm"; do
  out=$("$SIM" --scenario steady --nodes 20 $args 2>&1); rc=$?
  [ $rc -eq 2 ] && grep -q -- "--duration takes 1m..24h" <<<"$out" && ok "refused: $args" ||
    not_ok "refused: $args" "rc $rc: $out"
done
out=$("$SIM" --scenario single --nodes 20 --duration 5 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q -- "--duration applies to" <<<"$out" && ok "--duration refused where it does not apply" ||
  not_ok "--duration elsewhere" "rc $rc: $out"

ARGS=(--scenario steady --nodes 200 --duration 2 --stub-sigs --json)
a=$(timeout 50 "$SIM" "${ARGS[@]}" --no-timing --out "$TMP/a" 2>"$TMP/err"); rc=$?
b=$(timeout 50 "$SIM" "${ARGS[@]}" --no-timing --out "$TMP/b" 2>/dev/null)
t=$(timeout 50 "$SIM" "${ARGS[@]}" 2>/dev/null)
[ $rc -eq 0 ] && [ -n "$a" ] && ok "steady exits 0" || not_ok "steady exits 0" "rc $rc: $(cat "$TMP/err")"
if [ "$a" = "$b" ] && cmp -s "$TMP/a/traffic_by_type.csv" "$TMP/b/traffic_by_type.csv" &&
   cmp -s "$TMP/a/steady_rate.csv" "$TMP/b/steady_rate.csv" && ! grep -q -e wall_s -e cpu_ <<<"$a"; then
  ok "same seed: byte-identical stdout and CSV, no CPU keys under --no-timing"
else not_ok "determinism" "$a / $b"; fi
PY "d['cpu_us_per_node_s'] > 0 and d['cpu_s'] > 0 and d['per_node']==$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['per_node'])" "$a")" "$t" &&
  ok "with timing: CPU per simulated node-second reported, traffic unchanged" || not_ok "timing keys" "$t"

# The real intervals: engine heartbeat 30 s, shuffle 60 s, link PING 30 s,
# announcement every 30 min (node/daemon.c).
PY "d['intervals_s']=={'heartbeat':30,'shuffle':60,'ping':30,'announce':1800} and d['duration_min']==2
    and d['silent_frac']==0.5 and d['ip_leaks']==0" "$a" && ok "the daemon's intervals" || not_ok "intervals" "$a"
# The figures add up.
PY "
abs(sum(v['msgs_out_per_s'] for v in d['by_type'].values()) - d['per_node']['msgs_out_per_s']) < 0.01 and
abs(sum(v['bytes_out_per_s'] for v in d['by_type'].values()) - d['per_node']['bytes_out_per_s']) < 1 and
abs(d['per_node']['msgs_in_per_s'] - d['per_node']['msgs_out_per_s']) < 0.01 * d['per_node']['msgs_out_per_s'] and
abs(sum(r['nodes'] * r['bytes_out_per_s'] for r in d['by_role'].values())
    - d['nodes'] * d['per_node']['bytes_out_per_s']) < 0.01 * d['nodes'] * d['per_node']['bytes_out_per_s'] and
sum(r['nodes'] for r in d['by_role'].values()) == d['nodes'] and
abs(d['by_type']['PING']['msgs_out_per_s'] - d['by_type']['PONG']['msgs_out_per_s']) < 0.01 and
'UNKNOWN' not in d['by_type']" "$a" &&
  ok "types and roles sum to the total, sent matches received, PONG answers PING, every frame classified" ||
  not_ok "figures add up" "$a"
# Each kind of traffic is there, within what the intervals allow: a node has
# at most 8 + 32 links, so at most 40/30 PINGs a second; heartbeats go out;
# a silent node accepts no link, so it sends less than a broadcasting one.
PY "
0 < d['by_type']['PING']['msgs_out_per_s'] <= 40/30 and d['by_type']['HEARTBEAT']['msgs_out_per_s'] > 0 and
d['by_type']['PEER_ANNOUNCEMENT']['msgs_out_per_s'] > 0 and d['by_type']['IHAVE']['msgs_out_per_s'] > 0 and
d['by_role']['silent']['msgs_out_per_s'] < d['by_role']['broadcasting']['msgs_out_per_s'] and
d['per_node']['bytes_out_per_s'] > 20 * d['per_node']['msgs_out_per_s']" "$a" &&
  ok "PING, HEARTBEAT, PEER_ANNOUNCEMENT and IHAVE present, in bounds" || not_ok "traffic kinds" "$a"
if [ "$(head -1 "$TMP/a/traffic_by_type.csv")" = "type,msgs_out_per_s,bytes_out_per_s,msgs_in_per_s,bytes_in_per_s" ] &&
   [ "$(wc -l <"$TMP/a/steady_rate.csv")" -eq 13 ] && grep -q '^HEARTBEAT,' "$TMP/a/traffic_by_type.csv" &&
   { ! command -v gnuplot >/dev/null || { [ -s "$TMP/a/steady_types.svg" ] && [ -s "$TMP/a/steady_rate.svg" ]; }; }; then
  ok "CSV: traffic by type, 12 ten-second buckets; plots"
else not_ok "CSV" "$(cat "$TMP/a/traffic_by_type.csv"; head -3 "$TMP/a/steady_rate.csv")"; fi
finish
