#!/usr/bin/env bash
# grapevine-sim as a researcher runs it: help, bad input, determinism,
# reliability, IP leaks, a healing partition, plots.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh
SIM=$PWD/$BUILD/grapevine-sim
J() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

check "grapevine-sim --help" bash -c '"$0" --help | grep -q -- "--fail-frac"' "$SIM"
out=$("$SIM" 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q "nodes N is required" <<<"$out" && ok "no --nodes: usage error" || not_ok "no --nodes" "$rc $out"
out=$("$SIM" --nodes 10 --loss 2 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q -- "--loss takes" <<<"$out" && ok "out-of-range flag is named" || not_ok "bad --loss" "$rc $out"
out=$("$SIM" --nodes 10 --scenario bogus 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q "unknown scenario 'bogus'" <<<"$out" && ok "unknown scenario is named" || not_ok "bad scenario" "$rc $out"

# Determinism: the same seed gives byte-identical output.
a=$("$SIM" --nodes 2000 --seed 7 --json --no-timing --stub-sigs 2>/dev/null)
b=$("$SIM" --nodes 2000 --seed 7 --json --no-timing --stub-sigs 2>/dev/null)
c=$("$SIM" --nodes 2000 --seed 8 --json --no-timing --stub-sigs 2>/dev/null)
if [ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" != "$c" ] && ! grep -q wall_s <<<"$a"; then
  ok "same seed, identical output; another seed, another run"
else not_ok "determinism" "$a / $b"; fi
for k in nodes seed scenario reliability rmr ldh latency_ms msgs_per_node bytes_per_node ip_leaks events; do
  grep -q "\"$k\":" <<<"$a" || { not_ok "output key $k"; continue; }
done
ok "output has the contract's keys"

# Progress: while a run goes on, lines on stderr (here at every check:
# each 65,536 events on one thread, each window on two) with the virtual
# time and the events so far, all threads' (the last line counts nearly
# all of the run's: within 65,536 on one thread, past three quarters on
# two, where one lane's count alone is half); none with --progress 0;
# stdout the same either way.
for t in 1 2; do
  P="--nodes 5000 --seed 7 --json --no-timing --stub-sigs --threads $t"
  a=$("$SIM" $P --progress 0.000001 2>"$TMP/progress.$t")
  b=$("$SIM" $P --progress 0 2>"$TMP/quiet.$t")
  n=$(grep -c "^grapevine-sim: running: +[0-9.]* s simulated, [0-9]* events, [0-9]* events/s$" "$TMP/progress.$t")
  if [ -n "$a" ] && [ "$a" = "$b" ] && [ "$n" -ge 1 ] && ! grep -q running "$TMP/quiet.$t" &&
     python3 - "$TMP/progress.$t" "$(J 'd["events"]' <<<"$a")" "$t" <<'PY'; then
import re, sys
ev = [int(m) for m in re.findall(r"running: .*, (\d+) events,", open(sys.argv[1]).read())]
total, threads = int(sys.argv[2]), int(sys.argv[3])
near = ev[-1] > total - 65536 if threads == 1 else ev[-1] >= 0.75 * total
sys.exit(not (ev == sorted(set(ev)) and near and ev[-1] <= total))
PY
    ok "--threads $t: $n progress lines, events rising; none with --progress 0; same output"
  else not_ok "progress lines, --threads $t" "$n lines: $(head -c 600 "$TMP/progress.$t")"; fi
done
out=$("$SIM" --nodes 10 --progress -1 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q -- "--progress takes" <<<"$out" && ok "bad --progress is named" || not_ok "bad --progress" "$rc $out"

# Reliability 1.0 at 10k nodes, with RMR no higher than plain push.
r=$("$SIM" --nodes 10000 --json --stub-sigs 2>/dev/null)
p=$("$SIM" --nodes 10000 --json --stub-sigs --no-repair 2>/dev/null)
rel=$(J 'd["reliability"]' <<<"$r"); rmr=$(J 'd["rmr"]' <<<"$r")
prel=$(J 'd["reliability"]' <<<"$p"); prmr=$(J 'd["rmr"]' <<<"$p")
if [ "$rel" = 1 ] && python3 -c "import sys; sys.exit(not ($rmr <= 2.0 and $rmr <= $prmr and $prel < 1))"; then
  ok "10k nodes: reliability 1 (plain push $prel), rmr $rmr <= plain push $prmr"
else not_ok "10k reliability" "$r / $p"; fi

# Real signatures: the same code path a node runs.
r=$("$SIM" --nodes 300 --json 2>/dev/null)
[ "$(J 'd["reliability"]' <<<"$r")" = 1 ] && grep -q '"stub_sigs":false' <<<"$r" &&
  ok "300 nodes with real signatures: reliability 1" || not_ok "real sigs" "$r"

# IP rule: no silent node's address in any frame, 80% silent.
r=$("$SIM" --nodes 5000 --scenario silent-majority --json --stub-sigs 2>/dev/null); rc=$?
if [ $rc -eq 0 ] && [ "$(J 'd["ip_leaks"]' <<<"$r")" = 0 ] && [ "$(J 'd["silent_frac"]' <<<"$r")" = 0.8 ] &&
   [ "$(J 'd["reliability"]' <<<"$r")" = 1 ]; then
  ok "80% silent: 0 IP leaks, reliability 1"
else not_ok "silent majority" "$rc $r"; fi

# Failures: 30% crashed unannounced.
r=$("$SIM" --nodes 5000 --scenario failures --json --stub-sigs 2>/dev/null)
python3 -c "import json,sys; d=json.loads(sys.argv[1]); sys.exit(not (d['fail_frac']==0.3 and d['reliability']>=0.999))" "$r" &&
  ok "30% crashed: reliability >= 0.999" || not_ok "failures" "$r"

# A partition heals: half reached before, everyone after.
r=$("$SIM" --nodes 2000 --scenario partition --json --stub-sigs 2>/dev/null)
if python3 -c "import json,sys; d=json.loads(sys.argv[1]); sys.exit(not (d['reliability_before_heal']<0.9 and d['reliability']==1))" "$r"; then
  ok "partition: $(J 'd["reliability_before_heal"]' <<<"$r") before the heal, 1 after"
else not_ok "partition" "$r"; fi

# A flood from hostile nodes: they are banned, everyone else is reached.
r=$("$SIM" --nodes 1000 --scenario flood --json --stub-sigs 2>/dev/null)
python3 -c "import json,sys; d=json.loads(sys.argv[1]); sys.exit(not (d['bans']>0 and d['reliability']==1))" "$r" &&
  ok "flood: hostile nodes banned, reliability 1" || not_ok "flood" "$r"

# A newcomer's table fills.
r=$("$SIM" --nodes 200 --scenario join --json --stub-sigs 2>/dev/null)
python3 -c "import json,sys; d=json.loads(sys.argv[1]); sys.exit(not (d['join_ms']>0 and d['join_table']>=199))" "$r" &&
  ok "join: a new node's table lists all 200 nodes after $(J 'd["join_ms"]' <<<"$r") ms" || not_ok "join" "$r"

# Harvest (issue 12, privacy): attackers holding 20% of the broadcasting
# nodes observe fewer silent nodes when those keep entry guards; with no
# attacker nobody is observed; the same seed gives the same table.
h=$("$SIM" --scenario harvest --nodes 100 --duration 2 --attackers 0.2 --json --no-timing 2>/dev/null)
h2=$("$SIM" --scenario harvest --nodes 100 --duration 2 --attackers 0.2 --json --no-timing 2>/dev/null)
z=$("$SIM" --scenario harvest --nodes 100 --duration 2 --attackers 0 --guards off --json --no-timing 2>/dev/null)
if python3 -c "
import json,sys
h=json.loads(sys.argv[1]); z=json.loads(sys.argv[2])
r={x['guards']: x for x in h['rows']}
sys.exit(not (r['on']['observed_end'] < r['off']['observed_end'] and r['off']['observed_end'] > 0
              and z['rows'][0]['observed_end'] == 0 and len(z['rows']) == 1))" "$h" "$z" && [ "$h" = "$h2" ]; then
  ok "harvest: guards cut the observed share at A=20% ($(J '[x["observed_end"] for x in d["rows"]]' <<<"$h") off/on); 0 attackers, 0 observed"
else not_ok "harvest" "$h / $z"; fi

# --out writes the series (and SVG plots when gnuplot is installed).
"$SIM" --nodes 1000 --json --stub-sigs --out "$TMP/plots" >/dev/null 2>&1
if [ -s "$TMP/plots/latency_cdf.csv" ] && [ -s "$TMP/plots/msgs_per_node.csv" ] && [ -s "$TMP/plots/indegree.csv" ] &&
   { ! command -v gnuplot >/dev/null || [ -s "$TMP/plots/latency_cdf.svg" ]; }; then
  ok "--out writes latency CDF, messages per node and in-degree series"
else not_ok "--out" "$(ls "$TMP/plots" 2>&1)"; fi
finish
