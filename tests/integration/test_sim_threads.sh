#!/usr/bin/env bash
# grapevine-sim --threads (docs/SIMULATOR.md, "Two cores"): deterministic for
# the same (seed, threads), statistically the run of one thread, --threads 1
# the output of old; the scenarios with per-frame hooks refuse it.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh
SIM=$PWD/$BUILD/grapevine-sim
J() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# py EXPR JSON...: exit status of the Python expression over the parsed runs
# (a, b, ...).
py() {
  local e=$1
  shift
  python3 -c "import json,sys; a,*r=[json.loads(x) for x in sys.argv[1:]]; b=r[0] if r else None; sys.exit(not ($e))" "$@"
}

# One broadcast on two threads: the same output twice, reliability 1, RMR
# where one thread's lies; another sample than one thread's.
a=$("$SIM" --nodes 3000 --seed 7 --stub-sigs --json --no-timing --threads 2 2>/dev/null)
b=$("$SIM" --nodes 3000 --seed 7 --stub-sigs --json --no-timing --threads 2 2>/dev/null)
one=$("$SIM" --nodes 3000 --seed 7 --stub-sigs --json --no-timing 2>/dev/null)
if [ -n "$a" ] && [ "$a" = "$b" ] && ! grep -q -e wall_s -e windows <<<"$a"; then
  ok "--threads 2, 3000 nodes: byte-identical output run after run"
else not_ok "threads 2 determinism" "$a / $b"; fi
if py 'a["threads"] == 2 and a["reliability"] == 1 and 1.2 <= a["rmr"] <= 1.5 and a["ip_leaks"] == 0 and a["delivered"] == 3000' "$a"; then
  ok "--threads 2: reliability 1, rmr $(J 'd["rmr"]' <<<"$a") in [1.2, 1.5]"
else not_ok "threads 2 reliability" "$a"; fi
py 'a != b and "threads" not in b and a["links"] == b["links"]' "$a" "$one" &&
  ok "--threads 2 is another sample than 1 (same links formed: $(J 'd["links"]' <<<"$a"))" ||
  not_ok "threads 2 vs 1" "$a / $one"

# --threads 1 is the default, to the byte, and is the simulator of before
# the lanes: this is the output of main at bcc325f, which had no --threads.
# A change that moves it changes every figure in docs/: say why in the
# commit, and regenerate this line.
old='{"nodes":3000,"seed":7,"scenario":"single","fanout":3,"fanout_announced":2,"ttl":32,"repair":true,"stub_sigs":true,"fail_frac":0,"loss":0,"silent_frac":0,"live":3000,"delivered":3000,"reliability":1,"rmr":1.3184,"ldh":15,"latency_ms":{"p50":312,"p90":393,"p99":580,"max":771},"payload_msgs":6953,"msgs_per_node":5.78,"bytes_per_node":1331,"links":15000,"links_closed":{"goodbye":2547,"unwanted":2547,"duplicate":16},"ip_leaks":0,"events":83250}'
t1=$("$SIM" --nodes 3000 --seed 7 --stub-sigs --json --no-timing --threads 1 2>/dev/null)
[ -n "$t1" ] && [ "$t1" = "$one" ] && [ "$t1" = "$old" ] &&
  ok "--threads 1 output equals the output without the flag and before the lanes" ||
  not_ok "threads 1 identity" "$t1 / $one / $old"

# Three threads, and the shortest lookahead (1 ms).
a=$("$SIM" --nodes 2000 --seed 4 --stub-sigs --json --no-timing --threads 3 2>/dev/null)
b=$("$SIM" --nodes 2000 --seed 4 --stub-sigs --json --no-timing --threads 3 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] && py 'a["threads"] == 3 and a["reliability"] == 1' "$a" &&
  ok "--threads 3: deterministic, reliability 1" || not_ok "threads 3" "$a / $b"
a=$("$SIM" --nodes 1000 --seed 4 --stub-sigs --json --no-timing --threads 2 --latency-ms 1:20 2>/dev/null)
b=$("$SIM" --nodes 1000 --seed 4 --stub-sigs --json --no-timing --threads 2 --latency-ms 1:20 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] && py 'a["reliability"] == 1' "$a" &&
  ok "--threads 2 --latency-ms 1:20 (lookahead 1 ms): deterministic, reliability 1" ||
  not_ok "lookahead 1" "$a / $b"

# The run may not depend on how the lanes' threads are scheduled: all of
# them on one CPU (taskset), where each barrier hands the CPU over, gives
# the output of two CPUs, with frames crossing lanes all the way (lent
# buffers, closed ends, crashes, joins).
if command -v taskset >/dev/null; then
  for args in "--nodes 3000 --seed 7 --threads 2" "--nodes 2000 --seed 4 --threads 3" \
              "--nodes 1000 --seed 5 --threads 2 --scenario churn" \
              "--nodes 1000 --seed 6 --threads 4 --scenario loss"; do
    # shellcheck disable=SC2086
    x=$("$SIM" $args --stub-sigs --json --no-timing 2>/dev/null)
    # shellcheck disable=SC2086
    y=$(taskset -c 0 "$SIM" $args --stub-sigs --json --no-timing 2>/dev/null)
    if [ -n "$x" ] && [ "$x" = "$y" ] && py 'a["reliability"] >= 0.99' "$x"; then
      ok "$args: on one CPU the output of two, to the byte"
    else not_ok "scheduling changes $args" "$x / $y"; fi
  done
else
  ok "# SKIP taskset missing: the one-CPU runs"
fi

# With timing, the windows and barriers are reported.
a=$("$SIM" --nodes 500 --stub-sigs --json --threads 2 2>/dev/null)
py 'a["windows"] > 0 and a["barriers"] >= a["windows"]' "$a" &&
  ok "timing keys: $(J 'd["windows"]' <<<"$a") windows, $(J 'd["barriers"]' <<<"$a") barriers" ||
  not_ok "windows key" "$a"

# Bad values and the scenarios that watch every frame refuse.
for v in 0 65 two ""; do
  out=$("$SIM" --nodes 100 --threads "$v" 2>&1); rc=$?
  [ $rc -eq 2 ] && grep -q -- "--threads takes 1..64" <<<"$out" ||
    { not_ok "--threads '$v' refused" "$rc $out"; continue; }
  ok "--threads '$v': usage error, exit 2"
done
for sc in relay steady eclipse harvest turnover cold-boot bandwidth; do
  out=$("$SIM" --nodes 100 --scenario "$sc" --threads 2 2>&1); rc=$?
  if [ $rc -eq 2 ] && grep -q -- "--threads above 1 takes the scenarios single, failures" <<<"$out" &&
     grep -q "'$sc'" <<<"$out"; then
    ok "--threads 2 --scenario $sc: exit 2, names the scenarios that take it"
  else not_ok "threads with $sc" "$rc $out"; fi
done

# Every scenario that takes --threads: twice the same output, and its
# invariant.
run2() { # NAME CHECK ARGS...
  local name=$1 chk=$2 x y
  shift 2
  x=$("$SIM" "$@" --stub-sigs --json --no-timing --threads 2 2>/dev/null)
  y=$("$SIM" "$@" --stub-sigs --json --no-timing --threads 2 2>/dev/null)
  if [ -n "$x" ] && [ "$x" = "$y" ] && py "$chk" "$x"; then ok "--threads 2 $name: deterministic, $chk"
  else not_ok "threads 2 $name" "$x / $y"; fi
}
run2 failures 'a["reliability"] >= 0.999 and a["fail_frac"] == 0.3' --nodes 1500 --scenario failures
run2 loss 'a["reliability"] == 1 and a["loss"] == 0.05' --nodes 1000 --scenario loss
run2 churn 'a["reliability"] >= 0.99' --nodes 1000 --scenario churn
run2 partition 'a["reliability_before_heal"] < 0.9 and a["reliability"] == 1' --nodes 1000 --scenario partition
run2 tracker-down 'a["reliability"] == 1' --nodes 1000 --scenario tracker-down
run2 silent-majority 'a["reliability"] == 1 and a["ip_leaks"] == 0' --nodes 1000 --scenario silent-majority
run2 flood 'a["bans"] > 0 and a["reliability"] == 1' --nodes 1000 --scenario flood
run2 join 'a["join_ms"] > 0 and a["join_table"] >= 199' --nodes 200 --scenario join
finish
