#!/usr/bin/env bash
# The node's footprint: idle RSS and CPU of one node with 1,000 entries in
# its table, and the CPU cost of processing gossip at 1,000 msg/s (signed
# heartbeats over 10 links, validated and forwarded), beside the raw
# libsodium cost of verifying the same number of signatures, measured in the
# same run. Prints figures only; never fails on speed.
#   NODE_BENCH_SECONDS  length of each measurement (default 10)
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
S=${NODE_BENCH_SECONDS:-10}
TMP=$(mktemp -d /tmp/gv-bench-node-XXXXXX)
PORT=$((40000 + RANDOM % 20000))
"$BUILD/grapevine" node --data-dir "$TMP/n" --broadcast --listen "127.0.0.1:$PORT" \
  --log-level warn > "$TMP/log" 2>&1 &
pid=$!
trap 'exec 2>/dev/null; kill -9 $pid; rm -rf "$TMP"' EXIT
for _ in $(seq 1 50); do "$BUILD/grapevine" status --data-dir "$TMP/n" >/dev/null 2>&1 && break; sleep 0.1; done
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)

# Fill the table: 1,000 signed records.
"$BUILD/bench/gossip_load" "127.0.0.1:$PORT" 1000 1000 1 > /dev/null || exit 1
sleep 2
table=$("$BUILD/grapevine" status --data-dir "$TMP/n" --json |
        python3 -c "import json,sys; print(json.load(sys.stdin)['table'])")
# Idle.
t0=$(ticks); sleep "$S"; t1=$(ticks)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
anon=$(awk '/RssAnon/ {print $2}' "/proc/$pid/status")
idle_cpu=$(python3 -c "print(100 * ($t1 - $t0) / $hz / $S)")
# Under 1,000 msg/s.
t0=$(ticks)
"$BUILD/bench/gossip_load" "127.0.0.1:$PORT" 1000 1000 "$S" > "$TMP/load.json" || exit 1
t1=$(ticks)
rss_load=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
load_cpu=$(python3 -c "print(100 * ($t1 - $t0) / $hz / ($S + 1))")
us_msg=$(python3 -c "print(1e6 * ($t1 - $t0) / $hz / (1000 * $S + 1000))")
raw=$(BENCH_SECONDS=0.5 "$BUILD/bench/bench_proto" --json |
      python3 -c "import json,sys; d=json.load(sys.stdin); print(1e6 / [f for f in d['figures'] if f['name'] == 'messages_validated_per_s'][0]['raw'])" 2>/dev/null)
printf 'grapevine node footprint (one node, loopback)\n'
printf '%-44s %s\n' "peer table entries" "$table"
printf '%-44s %s KiB (private %s KiB; the rest is shared library pages)\n' "idle RSS" "$rss" "$anon"
printf '%-44s %.2f %%\n' "idle CPU (one core)" "$idle_cpu"
printf '%-44s %.1f %%  (RSS %s KiB)\n' "CPU at 1,000 msg/s (validate + forward)" "$load_cpu" "$rss_load"
printf '%-44s %.1f us\n' "node CPU per message" "$us_msg"
if [ -n "$raw" ]; then
  printf '%-44s %.1f us\n' "raw libsodium hash + verify per message" "$raw"
  printf '%-44s %.2f\n' "ratio (node cost / raw verify)" "$(python3 -c "print($us_msg / $raw)")"
fi
