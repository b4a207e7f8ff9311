#!/usr/bin/env bash
# Runs every test program: the libcheck unit tests (build/tests/check_*) and
# the integration scripts (tests/integration/test_*.sh), which start the
# real binaries. Prints each program's summary and ends with one line:
# "N passed, N failed". Exit status 0 only if nothing failed.
#
# Environment: BUILD (default build) is the tree whose binaries are tested.
# HOSTILE_ONLY=1 runs only the hostile suite (tests/hostile/test_*.sh, the
# attacks of docs/NODE.md and TRACKER.md), at HOSTILE_SIZE (small, the
# default, as part of every run; full for `make hostile`).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
HOSTILE_SIZE=${HOSTILE_SIZE:-small}
export BUILD HOSTILE_SIZE
passed=0 failed=0 broken=()
units=("$BUILD"/tests/check_*)
scripts=(tests/integration/test_*.sh tests/hostile/test_*.sh)
if [ "${HOSTILE_ONLY:-0}" = 1 ]; then
  units=()
  scripts=(tests/hostile/test_*.sh)
fi

for t in "${units[@]}"; do
  [ -x "$t" ] || continue
  out=$("$t" 2>&1)
  rc=$?
  printf '%s\n' "$out" | grep -E '^(Running suite|[0-9]+%: Checks)|:[EF]:' 
  line=$(printf '%s\n' "$out" | grep -E '^[0-9]+%: Checks: ' | tail -1)
  if [[ $line =~ Checks:\ ([0-9]+),\ Failures:\ ([0-9]+),\ Errors:\ ([0-9]+) ]]; then
    n=${BASH_REMATCH[1]} f=$((BASH_REMATCH[2] + BASH_REMATCH[3]))
    passed=$((passed + n - f)) failed=$((failed + f))
    [ "$f" -eq 0 ] && [ "$rc" -ne 0 ] && { failed=$((failed + 1)); broken+=("$t (exit $rc)"); }
    # Sanitizer reports go to the test's stderr: show them.
    [ "$f" -gt 0 ] || [ "$rc" -ne 0 ] && printf '%s\n' "$out" | grep -E 'ERROR: |SUMMARY: |runtime error|#[0-9] ' | head -40
  else
    printf '%s\n' "$out" | tail -20
    failed=$((failed + 1)) broken+=("$t (no summary, exit $rc)")
  fi
done

for t in "${scripts[@]}"; do
  [ -f "$t" ] || continue
  echo "Running $t"
  out=$(bash "$t" 2>&1)
  rc=$?
  printf '%s\n' "$out" | grep -E '^(ok|not ok|#)' 
  p=$(printf '%s\n' "$out" | grep -c '^ok ')
  f=$(printf '%s\n' "$out" | grep -c '^not ok ')
  passed=$((passed + p)) failed=$((failed + f))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    printf '%s\n' "$out" | tail -20
    failed=$((failed + 1)) broken+=("$t (exit $rc)")
  fi
done

for b in "${broken[@]}"; do echo "broken: $b"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
