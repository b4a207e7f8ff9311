#!/usr/bin/env bash
# Runs the simulator experiments of docs/EXPERIMENTS.md and prints its tables
# (markdown) on stdout. Each run's JSON is kept in DIR, and a run whose JSON
# is there is not repeated, so an interrupted session resumes.
#
#   scripts/experiments.sh [DIR] > tables.md     (default DIR: run/experiments)
#
# Environment: MAX_NODES (default 1000000) skips larger runs; SIM (default
# build/grapevine-sim). The full set takes about an hour on 2 cores and
# needs about 13 GB of memory for the 1M-node runs.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-run/experiments}
SIM=${SIM:-build/grapevine-sim}
MAX_NODES=${MAX_NODES:-1000000}
mkdir -p "$DIR"

# run NAME ARGS...: runs grapevine-sim ARGS --json once, keeps the JSON.
run() {
  local name=$1
  shift
  if [ ! -s "$DIR/$name.json" ]; then
    echo "experiments: $name: grapevine-sim $*" >&2
    "$SIM" "$@" --json > "$DIR/$name.json.tmp" 2> "$DIR/$name.err"
    mv "$DIR/$name.json.tmp" "$DIR/$name.json"
  fi
}

# row NAME: one markdown table row from a run's JSON.
row() {
  python3 - "$DIR/$1.json" "$2" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
cmd = sys.argv[2]
lat = d["latency_ms"]
print(f"| {d['nodes']:,} | {'yes' if d['repair'] else 'no (plain push)'} "
      f"| {d['fail_frac']:g} | {d['loss']:g} | {d['reliability']:.5f} "
      f"| {d['rmr']:.3f} | {d['ldh']} | {lat['p99']:.0f} "
      f"| {d.get('wall_s', 0):.1f} | `{cmd}` |")
EOF
}

header() {
  echo "| nodes | repair | failed | loss | reliability | RMR | LDH | p99 ms | wall s | command |"
  echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"
}

# ---- scale ----
for n in 1000 10000 100000 1000000; do
  [ "$n" -le "$MAX_NODES" ] || continue
  run "scale-$n" --nodes "$n" --stub-sigs
  run "scale-$n-plain" --nodes "$n" --stub-sigs --no-repair
done
# ---- failure sweep, loss ----
for f in 0.1 0.2 0.3 0.4 0.5 0.6 0.7; do
  run "fail-$f" --nodes 100000 --stub-sigs --fail-frac "$f"
  run "fail-$f-plain" --nodes 100000 --stub-sigs --fail-frac "$f" --no-repair
done
for l in 0.01 0.05 0.1; do
  run "loss-$l" --nodes 100000 --stub-sigs --loss "$l"
  run "loss-$l-plain" --nodes 100000 --stub-sigs --loss "$l" --no-repair
done
# ---- real signatures ----
for n in 1000 10000 100000; do
  run "real-$n" --nodes "$n"
done
# ---- the eager fan-out after an announcement ----
for k in 3 1; do
  run "announced-$k" --nodes 100000 --stub-sigs --fanout-announced "$k"
done
# ---- scenarios ----
for sc in churn partition tracker-down silent-majority flood; do
  run "sc-$sc" --nodes 10000 --stub-sigs --scenario "$sc"
done
run "sc-silent-100k" --nodes 100000 --stub-sigs --scenario silent-majority
run "sc-join" --nodes 1000 --stub-sigs --scenario join
run "sweep-10k" --nodes 10000 --stub-sigs --scenario sweep --jobs 2 --out "$DIR/plots" # 3 seeds a point
run "plots-100k" --nodes 100000 --stub-sigs --out "$DIR/plots"

# ---- tables ----
S="grapevine-sim"
echo "### Scale: one broadcast, ours beside plain push"
echo
header
for n in 1000 10000 100000 1000000; do
  [ -s "$DIR/scale-$n.json" ] || continue
  row "scale-$n" "$S --nodes $n --stub-sigs"
  row "scale-$n-plain" "$S --nodes $n --stub-sigs --no-repair"
done
echo
echo "### Failures: a fraction crashed, unannounced, before the broadcast (100k nodes)"
echo
header
row "scale-100000" "$S --nodes 100000 --stub-sigs"
row "scale-100000-plain" "$S --nodes 100000 --stub-sigs --no-repair"
for f in 0.1 0.2 0.3 0.4 0.5 0.6 0.7; do
  row "fail-$f" "$S --nodes 100000 --stub-sigs --fail-frac $f"
  row "fail-$f-plain" "$S --nodes 100000 --stub-sigs --fail-frac $f --no-repair"
done
echo
echo "### Loss: a fraction of all frames dropped (100k nodes)"
echo
header
for l in 0.01 0.05 0.1; do
  row "loss-$l" "$S --nodes 100000 --stub-sigs --loss $l"
  row "loss-$l-plain" "$S --nodes 100000 --stub-sigs --loss $l --no-repair"
done
echo
echo "### Real signatures (every record signed and verified)"
echo
header
for n in 1000 10000 100000; do
  row "real-$n" "$S --nodes $n"
done
echo
echo "### Eager fan-out once a neighbour announced the message (100k nodes)"
echo
header
row "announced-3" "$S --nodes 100000 --stub-sigs --fanout-announced 3"
row "scale-100000" "$S --nodes 100000 --stub-sigs   # default: 2"
row "announced-1" "$S --nodes 100000 --stub-sigs --fanout-announced 1"
echo
echo "### Scenarios"
echo
echo "| scenario | nodes | reliability | RMR | p99 ms | also | command |"
echo "|---|---:|---:|---:|---:|---|---|"
for sc in churn partition tracker-down silent-majority flood silent-100k join; do
  case $sc in
    silent-100k) f=sc-silent-100k; cmd="$S --nodes 100000 --stub-sigs --scenario silent-majority" ;;
    join) f=sc-join; cmd="$S --nodes 1000 --stub-sigs --scenario join" ;;
    *) f=sc-$sc; cmd="$S --nodes 10000 --stub-sigs --scenario $sc" ;;
  esac
  python3 - "$DIR/$f.json" "$cmd" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
extra = []
for k in ("ip_leaks", "reliability_before_heal", "bans", "join_ms", "join_table"):
    if k in d:
        extra.append(f"{k} {d[k]:g}")
print(f"| {d['scenario']} | {d['nodes']:,} | {d['reliability']:.5f} | {d['rmr']:.3f} "
      f"| {d['latency_ms']['p99']:.0f} | {', '.join(extra)} | `{sys.argv[2]}` |")
EOF
done
