#!/usr/bin/env bash
# The terminal wrapper's benchmark (issue 10 §2), in one run:
#   1. output throughput: `cat` of a WRAP_BENCH_MB (50) MB text file inside
#      the pty, to /dev/null, through `grapevine wrap` beside the anchor
#      `script -q -c` (util-linux: the same pty copy, no relay); best of 3;
#      the output's size is checked (every byte, \n written as \r\n);
#   2. message-to-injection latency: a message from a CLI sender to an
#      agent on the same node, accepted -> delivered (the node's trace),
#      for the fake agent under `grapevine wrap --quiet 200ms` beside the
#      anchor: a plain socket agent that acks what it is pushed
#      (tests/integration/relay_agent.py). Each message is sent after the
#      agent has been idle longer than the quiet period, so the figure is
#      the wrapper's own cost: pty write, paste, Enter, ack.
# Prints ours, the anchor and the ratio. Never fails for being slow.
#
#   tests/bench/bench_wrap.sh          (make bench runs it)
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
GV=$PWD/$BUILD/grapevine
MB=${WRAP_BENCH_MB:-50}
N=${WRAP_BENCH_MSGS:-10}
TMP=$(mktemp -d /tmp/gv-bench-wrap-XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  sleep 0.3
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
[ -x "$GV" ] || { echo "bench_wrap: build $GV first" >&2; exit 1; }

# secs CMD...: runs CMD (its output to /dev/null), prints its wall time in
# seconds.
secs() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@" < /dev/null > /dev/null 2>&1
  t1=$(date +%s.%N)
  echo "$t0 $t1" | awk '{printf "%.3f", $2 - $1}'
}
best() { tr ' ' '\n' | grep . | sort -g | head -1; }

# ---- 1. throughput ----
head -c $((MB * 3 / 4 * 1048576)) /dev/urandom | base64 > "$TMP/in.txt"
size=$(stat -c %s "$TMP/in.txt")
lines=$(wc -l < "$TMP/in.txt")
ours="" anchor=""
for _ in 1 2 3; do
  ours="$ours $(secs "$GV" wrap --as bench:cat --data-dir "$TMP/none" -- \
    cat "$TMP/in.txt")"
  anchor="$anchor $(secs script -q -e -c "cat $TMP/in.txt" /dev/null)"
done
"$GV" wrap --as bench:cat --data-dir "$TMP/none" -- cat "$TMP/in.txt" \
  < /dev/null > "$TMP/out.txt" 2>/dev/null
got=$(stat -c %s "$TMP/out.txt")
want=$((size + lines))
ours=$(echo "$ours" | best)
anchor=$(echo "$anchor" | best)
mbs() { awk -v b="$size" -v s="$1" 'BEGIN {printf "%.1f", b / 1048576 / s}'; }
echo "output through the pty, $((size / 1048576)) MiB of text to /dev/null (best of 3)"
printf '  %-34s %8s s %8s MiB/s\n' "grapevine wrap -- cat" "$ours" "$(mbs "$ours")"
printf '  %-34s %8s s %8s MiB/s\n' "anchor: script -q -c cat" "$anchor" "$(mbs "$anchor")"
awk -v o="$ours" -v a="$anchor" 'BEGIN {printf "  ratio ours/anchor (throughput)      %.2f\n", a / o}'
if [ "$got" = "$want" ]; then
  echo "  output complete: $got bytes (the input, \\n as \\r\\n)"
else
  echo "  WARNING: output is $got bytes, want $want"
fi

# ---- 2. message-to-injection latency ----
lat_of() { # ID: accepted -> delivered in ms on node N1, or nothing
  "$GV" trace "$1" --as bench:tx --data-dir "$TMP/n1" --json 2>/dev/null |
    python3 -c "
import json, sys
d = json.load(sys.stdin)
t = {s['state']: s['at_ms'] for s in d.get('trace', [])}
if 'accepted' in t and 'delivered' in t: print(t['delivered'] - t['accepted'])"
}
# measure TO: sends N messages, each once the last was delivered and the
# agent idle; prints the median latency in ms.
measure() {
  local i id l all=()
  for i in $(seq 1 "$N"); do
    sleep 0.5
    id=$("$GV" send --as bench:tx "$1" "ping $i" --wait delivered \
      --timeout 10s --data-dir "$TMP/n1" 2>/dev/null | awk '{print $1}')
    [ -n "$id" ] || continue
    l=$(lat_of "$id")
    [ -n "$l" ] && all+=("$l")
  done
  [ ${#all[@]} -gt 0 ] || return 1
  printf '%s\n' "${all[@]}" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}
"$GV" node --data-dir "$TMP/n1" > "$TMP/n1.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  "$GV" status --data-dir "$TMP/n1" > /dev/null 2>&1 && break
  sleep 0.1
done
"$GV" team create --data-dir "$TMP/n1" > /dev/null 2>&1
python3 tests/integration/relay_agent.py listen "$TMP/n1/relay.sock" bench:sock \
  "$TMP/sock.out" 600 ack > /dev/null 2>&1 &
pids+=($!)
sleep 0.5
anchor=$(measure bench:sock) || anchor=""
# The wrapper's stdin stays open (a FIFO held by a sleep of our own, which
# cleanup kills: a pipeline's first process would outlive it).
mkfifo "$TMP/in"
sleep 600 > "$TMP/in" &
pids+=($!)
"$GV" wrap --as bench:agent --quiet 200ms --data-dir "$TMP/n1" -- \
  python3 tests/integration/fake_agent.py --think 0 < "$TMP/in" > /dev/null 2>&1 &
pids+=($!)
sleep 1
ours=$(measure bench:agent) || ours=""
echo "message-to-injection latency, accepted -> delivered, median of $N (same node)"
if [ -z "$ours" ] || [ -z "$anchor" ]; then
  echo "  not available (ours '${ours}', anchor '${anchor}'; see the node's log)"
  exit 0
fi
printf '  %-34s %8s ms\n' "grapevine wrap (quiet 200ms)" "$ours"
printf '  %-34s %8s ms\n' "anchor: socket agent, acks at once" "$anchor"
awk -v o="$ours" -v a="$anchor" 'BEGIN {printf "  ours - anchor                      %8.0f ms (the wrapper: paste, Enter, ack)\n  ratio ours/anchor                  %8.2f\n", o - a, (a > 0 ? o / a : 0)}'
