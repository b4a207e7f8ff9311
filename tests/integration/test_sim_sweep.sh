#!/usr/bin/env bash
# grapevine-sim --scenario sweep (docs/SIMULATOR.md, "The sweep"): each
# network is formed once and every failed fraction runs in a process forked
# from it, --jobs J at a time. The points are the runs of the failures
# scenario, to the bit, whatever J; a point that dies is reported.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh
SIM=$PWD/$BUILD/grapevine-sim
py() { # EXPR JSON...: exit status of EXPR over the parsed runs (a, b, ...)
  local e=$1
  shift
  python3 -c "import json,sys; a,*r=[json.loads(x) for x in sys.argv[1:]]; b=r[0] if r else None; sys.exit(not ($e))" "$@"
}

# --jobs 1 and --jobs 3: the same bytes; 16 points, grapevine's and plain
# push's at each fraction; repair reaches everyone with nothing crashed and
# beats plain push at 0.7.
a=$("$SIM" --nodes 300 --seed 5 --stub-sigs --scenario sweep --json --jobs 1 2>/dev/null)
b=$("$SIM" --nodes 300 --seed 5 --stub-sigs --scenario sweep --json --jobs 3 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] && ok "sweep: --jobs 1 and --jobs 3 give the same bytes" ||
  not_ok "sweep jobs determinism" "$a / $b"
py 'len(a["points"]) == 16 and [p["repair"] for p in a["points"][:2]] == [True, False] and a["points"][0]["reliability"] == 1 and a["points"][14]["reliability"] > a["points"][15]["reliability"]' "$a" &&
  ok "sweep: 16 points; repair 1.0 at 0 crashed, above plain push at 0.7" ||
  not_ok "sweep points" "$a"

# A point is the failures scenario run from scratch: the mean over seeds
# 5, 6, 7 of --fail-frac 0.7 (grapevine) and 0.5 (plain push).
for pt in "0.7 14 " "0.5 11 --no-repair"; do
  read -r f idx flag <<<"$pt"
  rels=()
  for k in 5 6 7; do
    rels+=("$("$SIM" --nodes 300 --seed $k --stub-sigs --scenario failures --fail-frac "$f" $flag --json 2>/dev/null)")
  done
  py "abs(a['points'][$idx]['reliability'] - sum(x['reliability'] for x in r) / 3) < 1e-5 and a['points'][$idx]['fail_frac'] == $f" "$a" "${rels[@]}" &&
    ok "sweep point fail $f ${flag:-(repair)}: the mean of three failures runs formed from scratch" ||
    not_ok "sweep point $f $flag" "$a"
done

# Bad values: exit 2 and the reason.
for v in 0 65 two; do
  out=$("$SIM" --nodes 100 --scenario sweep --jobs "$v" 2>&1); rc=$?
  [ $rc -eq 2 ] && grep -q -- "--jobs takes 1..64" <<<"$out" &&
    ok "--jobs '$v': exit 2" || not_ok "--jobs '$v'" "$rc $out"
done
out=$("$SIM" --nodes 100 --jobs 2 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q -- "--jobs applies to the sweep" <<<"$out" &&
  ok "--jobs without the sweep: exit 2" || not_ok "--jobs single" "$rc $out"
out=$("$SIM" --nodes 100 --scenario sweep --threads 2 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q -- "'sweep' runs its points in processes of their own: --jobs" <<<"$out" &&
  ok "--threads 2 with the sweep: exit 2, points to --jobs" || not_ok "sweep threads" "$rc $out"

# A point killed with kill -9: the sweep says so and exits 1, printing no
# result (bounded: 120 s for the whole run).
"$SIM" --nodes 4000 --stub-sigs --scenario sweep --json --jobs 2 >"$TMP/out" 2>"$TMP/err" &
sp=$!
pids+=("$sp")
if wait_for 60 pgrep -P "$sp"; then
  # Every point running, until the sweep ends: one dies for sure.
  for _ in $(seq 600); do
    pkill -9 -P "$sp"
    kill -0 "$sp" 2>/dev/null || break
    sleep 0.2
  done
  wait "$sp"; rc=$?
  [ $rc -eq 1 ] && grep -q "a sweep point died of signal 9" "$TMP/err" && [ ! -s "$TMP/out" ] &&
    ok "a point killed: 'died of signal 9', exit 1, no result printed" ||
    not_ok "killed point" "rc $rc: $(cat "$TMP/err" "$TMP/out")"
else
  not_ok "killed point" "no child process within 60 s: $(cat "$TMP/err")"
fi
finish
