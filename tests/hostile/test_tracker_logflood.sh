#!/usr/bin/env bash
# Issue 12 item 5, log flooding: many registrations abandoned by their
# client while a dial-back to a black hole runs. Each one ends in a
# "dial-back failed" line; the logger (common/log.c) must write at most
# GV_LOG_BURST (20) of them per window, and report the rest as
# "suppressed N line(s) like: ..." by the tracker's exit, with
# written + suppressed = attempts (nothing lost, nothing counted twice).
# HOSTILE_SIZE=small (30 attempts) or full (200).
# TRK (default $BUILD/grapevine-tracker) picks the binary under test.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh

TRK=${TRK:-$PWD/$BUILD/grapevine-tracker}
CLI=$PWD/$BUILD/tests/tracker_client
BURST=20
case ${HOSTILE_SIZE:-small} in
full) N=200 ;;
*) N=30 ;;
esac

# The black hole: a listener that never accepts, with a backlog of 1, so
# that dial-backs hang until the tracker's dial timeout.
python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True); time.sleep(120)' >"$TMP/hole" &
pids+=($!)
HOLE_PID=$!
tracker_up --listen 127.0.0.1:0 --db "$TMP/db" --rate-limit 0 \
  --dial-timeout-ms 300 --max-per-ip 1000 --max-conns-per-ip 1000 \
  --max-verifying-per-ip 0
for _ in $(seq 1 200); do
  [ -s "$TMP/hole" ] && break
  sleep 0.05
done
HOLE=$(cat "$TMP/hole")
[ -n "$HOLE" ] || { not_ok "the black hole starts"; finish; exit; }

# Each register: a fresh key, signed beforehand, so that all of them reach
# the tracker within one log window however slow the machine; then sent
# whole in one burst and abandoned 0.1 s later (curl -m could give up
# before its request was even sent).
PORT=${URL##*:}
for ((i = 0; i < N; i++)); do
  body=$("$CLI" body --key "$TMP/k$i.key" --port "$HOLE")
  sig=$("$CLI" sign --key "$TMP/k$i.key" --method POST \
    --path /api/bootstrap/register --body "$body")
  printf '%s\n%s\n' "$sig" "$body" >"$TMP/req$i"
done
python3 - "$PORT" "$TMP" "$N" <<'PY'
import socket, sys, time
port, tmp, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
socks = []
for i in range(n):
    sig, body = open(f"{tmp}/req{i}").read().split("\n")[:2]
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall((f"POST /api/bootstrap/register HTTP/1.1\r\nHost: x\r\n"
               f"X-Grapevine-Sig: {sig}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n{body}").encode())
    socks.append(s)
time.sleep(0.1)
for s in socks:
    s.close()
PY
# Every dial-back is settled (at most 300 ms each, 64 at a time).
for _ in $(seq 1 100); do
  curl -s "$URL/health" | grep -q '"verifying":0' && break
  sleep 0.1
done
stop_pids "$TPID"
pids=("$HOLE_PID")

written=$(grep -c 'info: dial-back failed' "$TMP/trk.log")
suppressed=$(grep -oE 'suppressed [0-9]+ line\(s\) like: dial-back failed' \
  "$TMP/trk.log" | awk '{s += $2} END {print s + 0}')
if [ "$written" -le "$BURST" ]; then
  ok "at most $BURST dial-back lines for $N abandoned registers ($written)"
else
  not_ok "at most $BURST dial-back lines for $N abandoned registers" "$written written"
fi
if [ $((written + suppressed)) -eq "$N" ] && [ "$suppressed" -gt 0 ]; then
  ok "the rest are counted: $written written + $suppressed suppressed = $N"
else
  not_ok "the rest are counted" "$written written + $suppressed suppressed, want $N"
fi
finish
