#!/usr/bin/env bash
# Simulator speed: grapevine-sim's events/s beside sim-baseline, a bare
# discrete-event push-gossip loop (a heap of events and nothing else, its
# broadcast repeated for 0.3 s: the median run), on the same machine in
# the same run. The ratio is what counts. Prints figures
# only; never fails on speed. The third row is the same broadcast on two
# threads (--threads 2, docs/SIMULATOR.md "Two cores"), another sample of
# it whose events include one more per link (each end opens in its own).
#   SIM_BENCH_NODES  network size (default 20000)
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
N=${SIM_BENCH_NODES:-20000}
J() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print($2)" "$1"; }

base=$("$BUILD/sim-baseline" "$N") || exit 1
stub=$("$BUILD/grapevine-sim" --nodes "$N" --json --stub-sigs 2>/dev/null) || exit 1
real=$("$BUILD/grapevine-sim" --nodes "$N" --json 2>/dev/null) || exit 1
two=$("$BUILD/grapevine-sim" --nodes "$N" --json --stub-sigs --threads 2 2>/dev/null) || exit 1
b=$(J "$base" 'd["events_per_s"]')
printf 'grapevine-sim benchmark, %s nodes (one broadcast after formation)\n' "$N"
printf '%-44s %14s %10s %8s\n' "run" "events/s" "wall s" "ratio"
printf '%-44s %14.0f %10s %8s\n' "sim-baseline (bare event loop, median run)" "$b" "$(J "$base" 'd["wall_s"]')" "1"
for r in stub real two; do
  v=${!r}
  e=$(J "$v" 'd["events_per_s"]')
  name="grapevine-sim ($r signatures)"
  [ $r = two ] && name="grapevine-sim --threads 2 (stub signatures)"
  printf '%-44s %14.0f %10s %8.4f\n' "$name" "$e" "$(J "$v" 'd["wall_s"]')" \
    "$(python3 -c "print($e / $b)")"
done
printf 'sim-baseline: the median of %s runs of its broadcast (the first, cold: %s events/s)\n' \
  "$(J "$base" 'd["reps"]')" "$(J "$base" 'd["first_events_per_s"]')"
printf 'reliability %s, rmr %s, ldh %s (stub); ratio = grapevine-sim events/s / baseline events/s\n' \
  "$(J "$stub" 'd["reliability"]')" "$(J "$stub" 'd["rmr"]')" "$(J "$stub" 'd["ldh"]')"
printf 'two threads: reliability %s, rmr %s, ldh %s; %s windows; each lane ran %s s of CPU in %s s of wall\n' \
  "$(J "$two" 'd["reliability"]')" "$(J "$two" 'd["rmr"]')" "$(J "$two" 'd["ldh"]')" \
  "$(J "$two" 'd["windows"]')" "$(J "$two" 'd["lane_cpu_s"]')" "$(J "$two" 'd["lane_busy_s"]')"
