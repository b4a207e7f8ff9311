#!/usr/bin/env bash
# Runs libFuzzer targets built by `make fuzz`.
#
#   tests/fuzz/run.sh NAME...
#
# Environment: FUZZ_SECONDS (default 30) per target, BUILD (default build).
# Each target $BUILD/fuzz/fuzz_NAME runs on a temporary copy of
# tests/fuzz/corpus/NAME, so the seeds in the repository are never touched,
# with the dictionary tests/fuzz/NAME.dict if there is one;
# crash, leak, timeout and oom inputs go to $BUILD/fuzz/artifacts/NAME-*,
# the full output to $BUILD/fuzz/NAME.log. Prints one line per target and a
# summary; exits 1 if any target failed, 2 on a usage error.
set -u -o pipefail

FUZZ_SECONDS=${FUZZ_SECONDS:-30}
BUILD=${BUILD:-build}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ $# -eq 0 ]; then
  echo "usage: $0 NAME..." >&2
  exit 2
fi
case $FUZZ_SECONDS in
  '' | *[!0-9]*)
    echo "$0: FUZZ_SECONDS must be a whole number of seconds" >&2
    exit 2
    ;;
esac

# Largest input per target: a few frames, a message, a conversation.
max_len_for() {
  case $1 in
    frame) echo 8192 ;;
    msg) echo 65536 ;;
    handshake) echo 2048 ;;
    lcore) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

mkdir -p "$BUILD/fuzz/artifacts"
work=$(mktemp -d "${TMPDIR:-/tmp}/gv-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
for name in "$@"; do
  bin=$BUILD/fuzz/fuzz_$name
  log=$BUILD/fuzz/$name.log
  prefix=$BUILD/fuzz/artifacts/$name-
  if [ ! -x "$bin" ]; then
    echo "fuzz $name: $bin not built (make fuzz builds it)"
    failed=$((failed + 1))
    continue
  fi
  corpus=$work/$name
  mkdir -p "$corpus"
  if [ -d "$here/corpus/$name" ]; then
    cp -- "$here/corpus/$name"/* "$corpus"/ 2>/dev/null
  fi

  dict=()
  [ -f "$here/$name.dict" ] && dict=(-dict="$here/$name.dict")

  start=$(date +%s)
  ASAN_OPTIONS=detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS} \
    UBSAN_OPTIONS=print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS} \
    "$bin" -max_total_time="$FUZZ_SECONDS" -max_len="$(max_len_for "$name")" \
    -timeout="${FUZZ_TIMEOUT:-25}" -artifact_prefix="$prefix" \
    -print_final_stats=1 ${dict[@]+"${dict[@]}"} "$corpus" >"$log" 2>&1
  status=$?
  elapsed=$(($(date +%s) - start))

  # libFuzzer ends a clean run with "Done N runs in S second(s)"; a crash
  # leaves only its stats, if that far.
  runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1/p' "$log" |
    tail -n 1)
  secs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$log" |
    tail -n 1)
  if [ -z "$runs" ]; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' \
      "$log" | tail -n 1)
    runs=${runs:-0}
    secs=$elapsed
  fi
  artifacts=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log")
  crashes=0
  [ -n "$artifacts" ] && crashes=$(printf '%s\n' "$artifacts" | wc -l)

  echo "fuzz $name: $runs runs in $secs s, $crashes crashes"
  if [ "$status" -eq 0 ] && [ "$crashes" -eq 0 ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    reason=$(grep -a -m 1 -E '^==[0-9]+==ERROR|^SUMMARY|runtime error|check failed|ALARM|out-of-memory' "$log")
    echo "  exit status $status${reason:+: $reason}"
    while IFS= read -r a; do
      [ -n "$a" ] && printf '  artifact: %s (reproduce: %s %s)\n' "$a" "$bin" "$a"
    done <<<"$artifacts"
    echo "  log: $log"
  fi
done

echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
