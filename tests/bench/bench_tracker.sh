#!/usr/bin/env bash
# The tracker's benchmark: wrk with keep-alive, on this machine, in one run:
#   grapevine-tracker  GET /api/bootstrap/peers and
#                      GET /api/bootstrap/discover?repos=...
#                      with 10,000 registered bootstraps (rate limit off)
#   opentracker        HTTP announces (compact, numwant=32) for a torrent
#                      with 10,000 peers, the C anchor
# and prints req/s, p99 latency and the server's CPU time per request for
# each, the ratios ours/opentracker, and the close/opentracker ratio of
# each round (measured one after the other, under the same machine load).
# opentracker closes every connection after one answer, so wrk reconnects
# for each of its requests; the row "peers, new connection each" measures
# the tracker under the same condition (Connection: close).
#
#   tests/bench/bench_tracker.sh BUILD_DIR      (make bench runs it)
#
# Environment: BENCH_SECONDS (default 5; rounded up to whole seconds, at
# least 1) per measured run, BENCH_ROUNDS (default 1; the median is
# reported), BENCH_CONNS (default 64), BENCH_THREADS (wrk's threads,
# default 2), BENCH_TRK_THREADS (the tracker's --threads, default 1:
# opentracker answers every request on one thread, and on a 2-core machine
# wrk needs the other core; a second tracker thread only takes CPU from
# wrk and adds a sleep and a wake-up per few requests). Never fails for
# being slow; exits 1 only if the tracker itself will not serve.
set -u -o pipefail

BUILD=${1:-build}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
TRK=$BUILD/grapevine-tracker
LUA=$here/tracker.lua
NODES=10000
secs=${BENCH_SECONDS:-5}
secs=$(awk -v s="$secs" 'BEGIN { n = int(s); if (n < s) n++; if (n < 1) n = 1; print n }')
rounds=${BENCH_ROUNDS:-1}
conns=${BENCH_CONNS:-64}
threads=${BENCH_THREADS:-2}
trk_threads=${BENCH_TRK_THREADS:-1}

for tool in wrk opentracker sqlite3 curl; do
  if ! command -v "$tool" >/dev/null; then
    "$root/scripts/deps.sh" >/dev/null 2>&1 || true
    break
  fi
done
for tool in wrk sqlite3 curl; do
  command -v "$tool" >/dev/null || { echo "bench_tracker: skipped: $tool is not installed (scripts/deps.sh)"; exit 0; }
done
[ -x "$TRK" ] || { echo "bench_tracker: $TRK not built"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/gv-bench-trk.XXXXXX") || exit 1
chmod 755 "$work"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

wait_for() { # FILE REGEX: bounded at 30 s
  local i
  for ((i = 0; i < 600; i++)); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# A port nothing listens on (probed; opentracker cannot be given port 0).
free_port() {
  local p i
  for ((i = 0; i < 100; i++)); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# --- 10,000 bootstraps, written with the schema of docs/TRACKER.md §5.2 ---
now=$(date +%s%3N)
sqlite3 "$work/bench.db" >/dev/null <<SQL || { echo "bench_tracker: cannot write the database"; exit 1; }
PRAGMA journal_mode = WAL;
CREATE TABLE registration (
  id TEXT PRIMARY KEY NOT NULL, addr TEXT NOT NULL, repos TEXT NOT NULL,
  caps TEXT NOT NULL, ts INTEGER NOT NULL, registered_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
PRAGMA user_version = 1;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $NODES - 1)
INSERT INTO registration
  SELECT lower(hex(randomblob(32))),
         printf('10.%d.%d.%d:%d', i / 65536 % 256, i / 256 % 256, i % 256,
                7000 + i % 1000),
         printf('["repo/%d","repo/%d","common"]', i % 100, (i * 7 + 3) % 100),
         '["relay"]', $now, $now, $now + 3600000
  FROM n;
SQL

"$TRK" --listen 127.0.0.1:0 --db "$work/bench.db" --key "$work/tracker.key" \
  --rate-limit 0 --threads "$trk_threads" --max-conns 4096 --max-conns-per-ip 0 \
  --log-level info 2>"$work/tracker.log" &
pids+=($!)
trk_pid=$!
if ! wait_for "$work/tracker.log" 'listening on http://'; then
  echo "bench_tracker: the tracker did not start:"
  cat "$work/tracker.log"
  exit 1
fi
url=$(grep -oE 'http://127\.0\.0\.1:[0-9]+' "$work/tracker.log" | head -1)
listed=$(curl -s "$url/health" | grep -oE '"listed":[0-9]+' | cut -d: -f2)
if [ "${listed:-0}" -ne "$NODES" ]; then
  echo "bench_tracker: the tracker lists ${listed:-0} of $NODES bootstraps"
  exit 1
fi

ot_url=
if command -v opentracker >/dev/null && port=$(free_port); then
  mkdir -p "$work/ot"
  chmod 755 "$work/ot"
  echo 0123456789abcdef0123456789abcdef01234567 >"$work/ot/whitelist"
  # Paths are inside the chroot (-d); as root it drops to nobody.
  echo "access.whitelist ./whitelist" >"$work/ot/opentracker.conf"
  chmod 644 "$work/ot/whitelist" "$work/ot/opentracker.conf"
  user=()
  [ "$(id -u)" -eq 0 ] && user=(-u nobody)
  opentracker -i 127.0.0.1 -p "$port" -P "$port" -f "$work/ot/opentracker.conf" \
    -d "$work/ot" "${user[@]}" >"$work/ot.log" 2>&1 &
  pids+=($!)
  ot_pid=$!
  for ((i = 0; i < 200; i++)); do
    curl -s -o /dev/null "http://127.0.0.1:$port/stats" && { ot_url=http://127.0.0.1:$port; break; }
    sleep 0.05
  done
fi

# cpu_ticks PID: user + system clock ticks the process has used so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
hz=$(getconf CLK_TCK)

# run MODE URL SECONDS PID: prints "req/s p99_ms non2xx cpu_us", cpu_us
# being the CPU time the server (PID) spent per answered request.
run() {
  local hdr=() t0 t1
  [ "$1" = close ] && hdr=(-H "Connection: close")
  t0=$(cpu_ticks "$4")
  BENCH_WRK_MODE=$1 wrk -t"$threads" -c"$conns" -d"$3s" --latency "${hdr[@]}" \
    -s "$LUA" "$2" >"$work/wrk.out" 2>&1
  t1=$(cpu_ticks "$4")
  awk -v ticks=$((t1 - t0)) -v hz="$hz" '
    function ms(v) {
      if (v ~ /us$/) return v / 1000
      if (v ~ /ms$/) return v + 0
      if (v ~ /s$/) return v * 1000
      return v
    }
    /^Requests\/sec:/ { rps = $2 }
    / requests in / { n = $1 }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx/ { bad = $NF }
    END { printf "%.0f %.3f %d %.1f\n", rps, p99, bad, (n > 0 ? ticks * 1e6 / hz / n : 0) }' "$work/wrk.out"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : 0) }'; }

# MODE|URL|SERVER_PID; close and announce run one after the other in every
# round, so that each round gives a ratio of the two under the same load
# from the rest of the machine.
targets=("peers|$url/api/bootstrap/peers|$trk_pid"
  "discover|$url/api/bootstrap/discover|$trk_pid"
  "close|$url/api/bootstrap/peers|$trk_pid")
[ -n "$ot_url" ] && targets+=("announce|$ot_url/announce|$ot_pid")

# Warm-up: fills opentracker's swarm with its 10,000 peers, warms caches.
for t in "${targets[@]}"; do
  IFS='|' read -r m u p <<<"$t"
  run "$m" "$u" 1 "$p" >/dev/null
done

declare -A rps p99 bad cpu
for ((r = 0; r < rounds; r++)); do
  for t in "${targets[@]}"; do
    IFS='|' read -r m u p <<<"$t"
    read -r a b c d < <(run "$m" "$u" "$secs" "$p")
    rps[$m]+="$a "
    p99[$m]+="$b "
    cpu[$m]+="$d "
    bad[$m]=$((${bad[$m]:-0} + c))
  done
done

bytes_peers=$(curl -s "$url/api/bootstrap/peers" | wc -c)
bytes_disc=$(curl -s "$url/api/bootstrap/discover?repos=repo/1,repo/2" | wc -c)
bytes_ot=0
[ -n "$ot_url" ] && bytes_ot=$(curl -s "$ot_url/announce?info_hash=%01%23Eg%89%AB%CD%EF%01%23Eg%89%AB%CD%EF%01%23Eg&peer_id=-GV0001-999999999999&port=9&left=0&compact=1&numwant=32" | wc -c)
echo "tracker: $NODES registered bootstraps, --threads $trk_threads; wrk -t$threads -c$conns -d${secs}s --latency, keep-alive, 127.0.0.1; median of $rounds round(s)"
printf '%-58s %10s %9s %8s %8s\n' target req/s "p99 ms" non-2xx "CPU us"
declare -A med_rps med_p99 med_cpu
for t in "${targets[@]}"; do
  m=${t%%|*}
  med_rps[$m]=$(tr ' ' '\n' <<<"${rps[$m]}" | grep . | median)
  med_p99[$m]=$(tr ' ' '\n' <<<"${p99[$m]}" | grep . | median)
  med_cpu[$m]=$(tr ' ' '\n' <<<"${cpu[$m]}" | grep . | median)
  case $m in
    peers) label="grapevine-tracker GET peers (32 of 10k, ${bytes_peers} B)" ;;
    discover) label="grapevine-tracker GET discover 2 repos (${bytes_disc} B)" ;;
    close) label="grapevine-tracker GET peers, new connection each" ;;
    announce) label="opentracker announce (numwant=32, ${bytes_ot} B)" ;;
  esac
  printf '%-58s %10s %9s %8s %8s\n' "$label" "${med_rps[$m]}" "${med_p99[$m]}" "${bad[$m]}" "${med_cpu[$m]}"
done
echo "(CPU us: the server's CPU time per answered request, user + system)"
if [ -n "$ot_url" ]; then
  for m in peers discover close; do
    awk -v m="$m" -v a="${med_rps[$m]}" -v b="${med_rps[announce]}" \
      -v c="${med_p99[$m]}" -v d="${med_p99[announce]}" 'BEGIN {
        printf "ratio %s/opentracker: req/s %.2f, p99 %.2f (p99: lower is better)\n",
          m, (b > 0 ? a / b : 0), (d > 0 ? c / d : 0) }'
  done
  # Per round, from the two runs made one after the other.
  paste -d' ' <(tr ' ' '\n' <<<"${rps[close]}" | grep .) \
    <(tr ' ' '\n' <<<"${rps[announce]}" | grep .) |
    awk '{ r[NR] = ($2 > 0 ? $1 / $2 : 0); if (NR == 1 || r[NR] < lo) lo = r[NR]
           if (NR == 1 || r[NR] > hi) hi = r[NR]; s = s sprintf(" %.2f", r[NR]) }
         END { printf "ratio close/opentracker req/s per round:%s (range %.2f-%.2f)\n", s, lo, hi }'
else
  echo "opentracker: skipped (not installed; scripts/deps.sh installs it)"
fi
exit 0
