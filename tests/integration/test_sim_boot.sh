#!/usr/bin/env bash
# grapevine-sim --scenario cold-boot (every node starts at once from the
# tracker's bootstrap nodes) and the upload cap (--upload-cap, --scenario
# bandwidth): the network forms, broadcasts reach everyone, the bootstrap
# nodes' load is bounded, a cap slows delivery, no cap changes nothing, the
# same seed gives the same bytes, and bad flags are refused.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh
SIM=$PWD/$BUILD/grapevine-sim
J() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# Bad values: named, exit 2.
for bad in "--upload-cap 0" "--upload-cap -5" "--upload-cap nan" "--upload-cap 99999999999" \
           "--bootstraps 0" "--bootstraps x"; do
  out=$("$SIM" --nodes 100 --scenario cold-boot $bad 2>&1); rc=$?
  flag=${bad%% *}
  [ $rc -eq 2 ] && grep -q -- "$flag takes" <<<"$out" && ok "$bad refused with exit 2" ||
    not_ok "$bad refused" "$rc $out"
done
out=$("$SIM" --nodes 20 --scenario cold-boot --bootstraps 20 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q "bootstraps below" <<<"$out" && ok "--bootstraps >= --nodes refused" ||
  not_ok "bootstraps >= nodes" "$rc $out"
out=$("$SIM" --nodes 100 --scenario cold-boot --duration-s 20 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q "duration-s 50" <<<"$out" && ok "cold-boot shorter than 50 s refused" ||
  not_ok "short cold-boot" "$rc $out"

# Cold boot, 200 nodes (2 s of CPU): determinism, then the figures.
ARGS=(--scenario cold-boot --nodes 200 --stub-sigs --json --no-timing)
a=$(timeout 120 "$SIM" "${ARGS[@]}" --out "$TMP/boot" 2>"$TMP/err"); rc=$?
b=$(timeout 120 "$SIM" "${ARGS[@]}" --out "$TMP/boot2" 2>/dev/null)
c=$(timeout 120 "$SIM" "${ARGS[@]}" --seed 2 2>/dev/null)
[ $rc -eq 0 ] && ok "cold-boot exits 0" || not_ok "cold-boot exits 0" "rc $rc: $(cat "$TMP/err")"
if [ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" != "$c" ] && ! grep -q wall_s <<<"$a"; then
  ok "cold-boot: same seed, byte-identical; another seed, another run"
else not_ok "cold-boot determinism" "$a / $b"; fi
cmp -s "$TMP/boot/cold_boot.csv" "$TMP/boot2/cold_boot.csv" && ok "cold-boot CSV byte-identical" ||
  not_ok "cold-boot CSV determinism"
if python3 - "$a" <<'EOF'
import json, sys
d = json.loads(sys.argv[1])
f = d["formed_ms"]; t = d["over_time"]; b = d["broadcasts"]; L = d["bootstrap_load"]
# At t = 1 s nobody has announced (1 s after the first link): tables hold
# the bootstrap nodes and what HELLOs brought, far from everyone.
assert t[0]["t_s"] == 1 and t[0]["mean_table"] < 100, t[0]
# The network forms: everyone linked, everyone at the link target, and the
# tables list every other node.
assert 0 < f["every_node_linked"] <= f["at_target_all"] <= 60000, f
assert t[-1]["t_s"] == 60 and t[-1]["linked"] == 1 and t[-1]["at_target"] == 1, t[-1]
assert t[-1]["mean_table"] == 199, t[-1]
# Shares never leave [0, 1]; linked >= at target.
assert all(0 <= x["at_target"] <= x["linked"] <= 1 for x in t), t
# Three broadcasts (5, 10, 30 s), each reaching everyone within 20 s.
assert [x["t_s"] for x in b] == [5, 10, 30], b
assert all(x["reliability"] == 1 and 0 < x["latency_ms"]["p50"] <= x["latency_ms"]["p99"] for x in b), b
# Bootstrap nodes: inbound links capped (32 + their own dials), and they
# evicted links to make room (every node dialed them).
assert 32 <= L["peak_links"] <= 32 + 8 and L["evicted"] > 0, L
assert d["ip_leaks"] == 0 and d["bootstraps"] == 16, d
EOF
then ok "cold-boot: formed by $(J 'd["formed_ms"]["at_target_all"]' <<<"$a") ms, 3 broadcasts reach all, bootstrap peak $(J 'd["bootstrap_load"]["peak_links"]' <<<"$a") links"
else not_ok "cold-boot figures" "$a"; fi
rows=$(($(wc -l <"$TMP/boot/cold_boot.csv") - 1))
head -1 "$TMP/boot/cold_boot.csv" | grep -q "^t_s,linked,at_target,mean_links,mean_table,boot_links_max,boot_links_mean,boot_refused,boot_evicted,reached_5s,reached_10s,reached_30s$" &&
  [ "$rows" -eq 241 ] && ok "cold_boot.csv: the columns, 241 samples (every 250 ms for 60 s)" ||
  not_ok "cold_boot.csv" "$rows rows: $(head -1 "$TMP/boot/cold_boot.csv")"
{ ! command -v gnuplot >/dev/null || [ -s "$TMP/boot/cold_boot.svg" ]; } && ok "cold_boot.svg drawn (where gnuplot is)" ||
  not_ok "cold_boot.svg"

# With 90% silent: only the bootstrap nodes and the few broadcasting ones
# accept links; the network still forms and leaks no address.
s=$(timeout 120 "$SIM" --scenario cold-boot --nodes 200 --silent-frac 0.9 --stub-sigs --json --no-timing 2>/dev/null)
python3 -c "
import json,sys; d=json.loads(sys.argv[1])
sys.exit(not (d['ip_leaks'] == 0 and d['over_time'][-1]['linked'] == 1 and min(x['reliability'] for x in d['broadcasts']) == 1))" "$s" &&
  ok "cold-boot, 90% silent: everyone linked, broadcasts reach all, 0 leaks" || not_ok "cold-boot silent" "$s"

# No cap changes nothing; a cap too high to matter changes nothing either
# (but its keys), through the cap's own code path.
p=$("$SIM" --nodes 1000 --stub-sigs --json --no-timing 2>/dev/null)
q=$("$SIM" --nodes 1000 --stub-sigs --json --no-timing --upload-cap 10000000 2>/dev/null)
if ! grep -q upload_cap <<<"$p" && python3 -c "
import json,sys; p=json.loads(sys.argv[1]); q=json.loads(sys.argv[2])
w=q.pop('uplink_wait_ms'); assert q.pop('upload_cap_kbps') == 10000000 and w['frames'] > 0
sys.exit(not (p == q))" "$p" "$q"; then
  ok "no cap: no cap keys; a 10 GB/s cap: the same run, frame for frame"
else not_ok "cap off / cap huge" "$p / $q"; fi

# The sweep: none, 1000, 256, 64, 16 kB/s. Reliability stays 1; latency
# and the uplink wait grow as the cap shrinks; each row is the single
# scenario at that cap.
w=$(timeout 120 "$SIM" --scenario bandwidth --nodes 500 --stub-sigs --json --no-timing --out "$TMP/bw" 2>/dev/null)
w2=$(timeout 120 "$SIM" --scenario bandwidth --nodes 500 --stub-sigs --json --no-timing 2>/dev/null)
one=$("$SIM" --nodes 500 --stub-sigs --json --no-timing --upload-cap 64 2>/dev/null)
if [ -n "$w" ] && [ "$w" = "$w2" ] && python3 - "$w" "$one" <<'EOF'
import json, sys
d = json.loads(sys.argv[1]); one = json.loads(sys.argv[2]); p = d["points"]
assert [x["upload_cap_kbps"] for x in p] == [0, 1000, 256, 64, 16], p
assert all(x["reliability"] == 1 for x in p), p
assert p[0]["uplink_wait_ms"]["frames"] == 0 and p[0]["added_p50_ms"] == 0, p[0]
for a, b in zip(p, p[1:]):
    assert a["latency_ms"]["p50"] <= b["latency_ms"]["p50"], (a, b)
    assert a["uplink_wait_ms"]["mean"] <= b["uplink_wait_ms"]["mean"], (a, b)
# 16 kB/s: a visible delay (a frame of ~230 bytes holds the uplink 15 ms).
assert p[4]["added_p50_ms"] >= 50 and p[4]["uplink_wait_ms"]["max"] > 10, p[4]
r = p[3]
assert one["reliability"] == r["reliability"] and one["latency_ms"] == r["latency_ms"] \
    and one["uplink_wait_ms"] == r["uplink_wait_ms"], (one, r)
EOF
then ok "bandwidth: p50 $(J '[x["latency_ms"]["p50"] for x in d["points"]]' <<<"$w") ms from no cap to 16 kB/s, reliability 1; deterministic"
else not_ok "bandwidth sweep" "$w / $one"; fi
[ "$(wc -l <"$TMP/bw/bandwidth.csv")" -eq 6 ] && head -1 "$TMP/bw/bandwidth.csv" | grep -q "^cap_kbps,reliability,rmr,p50_ms,p90_ms,p99_ms" &&
  { ! command -v gnuplot >/dev/null || [ -s "$TMP/bw/bandwidth.svg" ]; } &&
  ok "bandwidth.csv: 5 caps (and bandwidth.svg)" || not_ok "bandwidth.csv" "$(cat "$TMP/bw/bandwidth.csv" 2>&1)"
# --upload-cap with the sweep: none and that cap.
v=$("$SIM" --scenario bandwidth --nodes 300 --stub-sigs --json --no-timing --upload-cap 8 2>/dev/null)
[ "$(J '[x["upload_cap_kbps"] for x in d["points"]]' <<<"$v")" = "[0, 8]" ] &&
  ok "bandwidth --upload-cap 8: none and 8 kB/s" || not_ok "bandwidth one cap" "$v"
finish
