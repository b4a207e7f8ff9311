#!/usr/bin/env bash
# Issue 12 item 2, slowloris: many connections from many loopback
# addresses (127.0.0.10 and up) each trickle one byte of a head that never
# ends, once a second, and reopen within a second when the tracker closes
# them. Meanwhile a normal client (127.0.0.1) asks for the listing; at
# least 95% of its requests must be answered 200. Each byte used to reset
# libmicrohttpd's idle timeout, so the slow connections filled the cap for
# good and every other client was turned away.
# Also checked: no slow connection outlives the head deadline by more than
# the reaper's tick (the trickled bytes do not extend it).
# HOSTILE_SIZE=small: 300 slow connections from 20 addresses against
# --max-conns 256 (the default cap's situation, scaled down); full: 2,000
# from 100 addresses against the default 1,024.
# TRK (default $BUILD/grapevine-tracker) picks the binary under test.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh

TRK=${TRK:-$PWD/$BUILD/grapevine-tracker}
case ${HOSTILE_SIZE:-small} in
full) SLOW=2000 ADDRS=100 CAP=1024 ;;
*) SLOW=300 ADDRS=20 CAP=256 ;;
esac
GETS=50         # the normal client's requests, 0.2 s apart
BUDGET=30       # seconds for all of them; requests not made count as failed
HEAD_TIMEOUT=5  # --header-timeout given to the tracker (its default)
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((SLOW + CAP + 200)) ] ||
  { not_ok "ulimit -n above $((SLOW + CAP + 200))" "$(ulimit -n)"; finish; exit; }

# Options the tracker under test may not know (main's build) are left out.
opts=(--max-conns "$CAP")
"$TRK" --help | grep -q -- --header-timeout && opts+=(--header-timeout "$HEAD_TIMEOUT")
tracker_up --listen 127.0.0.1:0 --db "$TMP/db" "${opts[@]}"

# The attacker: SLOW connections over ADDRS source addresses, for SECS
# seconds at most (bounded), then a summary line: opened, closed by the
# tracker, and the longest life of a connection the tracker closed.
cat >"$TMP/slow.py" <<'PY'
import selectors, signal, socket, sys, time
def stop(*_):
    raise KeyboardInterrupt
signal.signal(signal.SIGTERM, stop)
n, addrs, port, secs = (int(a) for a in sys.argv[1:5])
HEAD = b"GET /api/bootstrap/peers HTTP/1.1\r\nHost: t\r\nX-Slow: "
sel = selectors.DefaultSelector()
conns = {}  # socket -> [bytes sent, opened at, slot]
stats = {"opened": 0, "closed": 0, "longest": 0.0, "failed": 0}
def open_one(slot):
    s = socket.socket()
    try:
        s.bind(("127.0.0.%d" % (10 + slot % addrs), 0))
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
    except OSError:
        s.close(); stats["failed"] += 1; return False
    conns[s] = [0, time.monotonic(), slot]
    sel.register(s, selectors.EVENT_READ)
    stats["opened"] += 1
    return True
def drop(s, by_tracker):
    sent, t0, slot = conns.pop(s)
    sel.unregister(s); s.close()
    if by_tracker:
        stats["closed"] += 1
        stats["longest"] = max(stats["longest"], time.monotonic() - t0)
    return slot
end = time.monotonic() + secs
todo = list(range(n))
ready = False
def run():
    global todo, ready
    while time.monotonic() < end:
        tick = time.monotonic() + 1.0
        again = []
        for slot in todo:  # (re)open what is missing, once per tick
            if not open_one(slot):
                again.append(slot)
        todo = again
        if not ready and not todo:
            print("ready", flush=True); ready = True
        for s, c in list(conns.items()):  # one more byte of a head without end
            byte = HEAD[c[0]:c[0] + 1] or b"a"
            try:
                if s.send(byte) == 1:
                    c[0] += 1
            except BlockingIOError:
                pass
            except OSError:
                todo.append(drop(s, True))
        while True:  # closes by the tracker, until the next tick
            left = tick - time.monotonic()
            if left <= 0:
                break
            for key, _ in sel.select(left):
                s = key.fileobj
                try:
                    if s.recv(4096):
                        continue
                except BlockingIOError:
                    continue
                except OSError:
                    pass
                todo.append(drop(s, True))
try:
    run()
except KeyboardInterrupt:
    pass
print("opened=%d closed=%d longest=%.1f failed=%d open=%d" % (
    stats["opened"], stats["closed"], stats["longest"], stats["failed"],
    len(conns)), flush=True)
PY
python3 "$TMP/slow.py" "$SLOW" "$ADDRS" "${URL##*:}" $((BUDGET + 15)) >"$TMP/slow.out" &
pids+=($!)
APID=$!
for _ in $(seq 1 200); do
  grep -q ready "$TMP/slow.out" && break
  sleep 0.05
done
grep -q ready "$TMP/slow.out" || { not_ok "attacker opens $SLOW connections" "$(cat "$TMP/slow.out")"; finish; exit; }
sleep 2 # the slow connections settle in

good=0 made=0 t_end=$((SECONDS + BUDGET))
for ((i = 0; i < GETS && SECONDS < t_end; i++)); do
  made=$((made + 1))
  code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 "$URL/api/bootstrap/peers")
  [ "$code" = 200 ] && good=$((good + 1))
  sleep 0.2
done
kill -TERM "$APID" 2>/dev/null # it prints its summary as it ends
wait "$APID" 2>/dev/null
sum=$(grep opened= "$TMP/slow.out")
pct=$((100 * good / GETS))
echo "# normal client: $good of $GETS answered 200 ($made made) under $SLOW slow connections from $ADDRS addresses"
if [ $((100 * good)) -ge $((95 * GETS)) ]; then
  ok "normal client served under slowloris: $good/$GETS ($pct%)"
else
  not_ok "normal client served under slowloris: at least 95% of $GETS" "$good answered 200 ($pct%)"
fi
echo "# attacker: $sum"
echo "# tracker: $(curl -s -m 5 "$URL/metrics" | grep -E '^grapevine_tracker_connections_closed_total' | sed 's/.*reason=//' | tr '\n' ' ')"
closed=$(sed -n 's/.*closed=\([0-9]*\).*/\1/p' <<<"$sum")
longest=$(sed -n 's/.*longest=\([0-9.]*\).*/\1/p' <<<"$sum")
# The deadline, plus the reaper's 1 s tick, 1 s for the attacker to see it
# and 1 s of slack for a loaded machine.
if [ "${closed:-0}" -gt 0 ] && awk -v l="$longest" -v d=$((HEAD_TIMEOUT + 3)) 'BEGIN { exit !(l <= d) }'; then
  ok "slow heads are closed by their deadline ($closed closed, the longest after ${longest} s)"
else
  not_ok "slow heads are closed within $((HEAD_TIMEOUT + 3)) s" "${sum:-no summary}"
fi
stop_pids "$TPID"
finish
