#!/usr/bin/env bash
# grapevine-sim --scenario turnover: churn over time with broadcasts all
# along. Bad flags are refused; the same seed gives the same bytes (stdout
# and CSV); the counts follow from the flags; without churn nothing is
# stale and every table is fresh, with heavy churn entries go stale while
# broadcasts still reach the nodes that stayed up.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh
SIM=$PWD/$BUILD/grapevine-sim
PY() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); sys.exit(not ($1))" "$2"; }

bad() { # bad FLAG-ARGS... -- EXPECTED-TEXT
  local want=${*: -1} out rc
  out=$("$SIM" --scenario turnover --nodes 20 "${@:1:$#-1}" 2>&1); rc=$?
  [ $rc -eq 2 ] && grep -q -- "$want" <<<"$out" && ok "refused: ${*:1:$#-1}" ||
    not_ok "refused: ${*:1:$#-1}" "rc $rc: $out"
}
bad --session-dist lognormal "--session-dist takes weibull or pareto"
bad --session-shape -1 "--session-shape takes"
bad --session-shape nan "--session-shape takes"
bad --session-dist pareto --session-shape 1 "must be above 1 for pareto"
bad --session-mean 0 "--session-mean takes"
bad --downtime-mean inf "--downtime-mean takes"
bad --bcast-every 0 "--bcast-every takes"
bad --sample-every 2.5 "--sample-every takes"
bad --observers 0 "--observers takes"
bad --duration -5 "--duration takes"
bad --duration 3x "--duration takes"
bad --duration 2m --bcast-every 600 "must fit in --duration"

# 100 nodes, 2 simulated minutes: a broadcast every 10 s, tables every 30 s.
ARGS=(--scenario turnover --nodes 100 --duration 2 --stub-sigs --json --no-timing)
a=$(timeout 50 "$SIM" "${ARGS[@]}" --out "$TMP/a" 2>"$TMP/err"); rc=$?
b=$(timeout 50 "$SIM" "${ARGS[@]}" --out "$TMP/b" 2>/dev/null)
c=$(timeout 50 "$SIM" "${ARGS[@]}" --seed 2 2>/dev/null)
[ $rc -eq 0 ] && [ -n "$a" ] && ok "turnover exits 0" || not_ok "turnover exits 0" "rc $rc: $(cat "$TMP/err")"
if [ "$a" = "$b" ] && cmp -s "$TMP/a/broadcasts.csv" "$TMP/b/broadcasts.csv" &&
   cmp -s "$TMP/a/tables.csv" "$TMP/b/tables.csv" && ! grep -q wall_s <<<"$a"; then
  ok "same seed: byte-identical stdout and CSV"
else not_ok "determinism" "$a / $b"; fi
[ -n "$c" ] && [ "$c" != "$a" ] && ok "another seed, another run" || not_ok "seed matters" "$c"

# Counts follow from the flags: 12 broadcasts (none past the end), 5 samples.
PY "d['broadcasts']['count']==12 and d['tables']['samples']==5 and d['observers']==100
    and d['session_dist']=='weibull' and d['session_shape']==0.6 and d['ip_leaks']==0
    and d['leaves']>0 and d['returns']>0 and 0 < d['down_at_start'] < 100" "$a" &&
  ok "12 broadcasts, 5 samples, nodes left and came back, no IP leak" || not_ok "counts" "$a"
if [ "$(head -1 "$TMP/a/broadcasts.csv")" = "t_s,origin,eligible,reliability,ldh,p99_ms" ] &&
   [ "$(head -1 "$TMP/a/tables.csv")" = "t_s,live,freshness_mean,freshness_p10,stale_mean,table_mean" ] &&
   [ "$(wc -l <"$TMP/a/broadcasts.csv")" -eq 13 ] && [ "$(wc -l <"$TMP/a/tables.csv")" -eq 6 ] &&
   awk -F, 'NR>1 && ($3<1 || $3>100 || $4<0 || $4>1 || $2>=100) {bad=1} END {exit bad}' "$TMP/a/broadcasts.csv" &&
   awk -F, 'NR>1 && ($2>100 || $3<0 || $3>1 || $4>$3 || $5<0) {bad=1} END {exit bad}' "$TMP/a/tables.csv"; then
  ok "CSV: headers, one row per broadcast and per sample, values in range"
else not_ok "CSV" "$(head -3 "$TMP/a/broadcasts.csv" "$TMP/a/tables.csv")"; fi
{ ! command -v gnuplot >/dev/null || { [ -s "$TMP/a/turnover_reliability.svg" ] && [ -s "$TMP/a/turnover_tables.svg" ]; }; } &&
  ok "plots written (or gnuplot absent)" || not_ok "plots" "$(ls "$TMP/a")"
# Broadcasts reach the nodes up all along, churn or not (repair and pulls).
PY "d['broadcasts']['reliability_min'] >= 0.98 and d['broadcasts']['reliability_mean'] >= 0.995" "$a" &&
  ok "reliability under churn >= 0.98 for every broadcast" ||
  not_ok "reliability under churn" "$a"

# No churn (sessions of a day, downtimes of a second): nothing is stale, the
# tables know every live node (100 < the 1024-entry cap).
n=$(timeout 50 "$SIM" --scenario turnover --nodes 100 --duration 1 --session-mean 86400 --downtime-mean 1 \
  --stub-sigs --json --no-timing 2>/dev/null)
PY "d['leaves']==0 and d['tables']['stale_mean']==0 and d['tables']['end_freshness_p10']==1
    and d['broadcasts']['complete']==1" "$n" &&
  ok "no churn: 0 stale entries, freshness 1, every broadcast complete" || not_ok "no churn" "$n"
# Heavy churn with Pareto sessions: entries of nodes that left go stale.
h=$(timeout 50 "$SIM" --scenario turnover --nodes 100 --duration 2 --session-dist pareto --session-mean 60 \
  --downtime-mean 60 --stub-sigs --json --no-timing 2>/dev/null)
PY "d['session_dist']=='pareto' and d['session_shape']==1.5 and d['tables']['stale_mean'] > 5
    and d['leaves'] > 30 and d['broadcasts']['reliability_mean'] >= 0.95" "$h" &&
  ok "heavy Pareto churn: stale entries appear, broadcasts still arrive" || not_ok "heavy churn" "$h"
finish
