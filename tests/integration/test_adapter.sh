#!/usr/bin/env bash
# The node's link adapter (common/conn.c, node/links.c) seen from outside:
# a real node on loopback, a client that says goodbye, and idle sockets
# from another address. Every wait is bounded.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  [ -n "${KEEP_LOGS:-}" ] && cp "$TMP"/*.log "$TMP"/*.out "$KEEP_LOGS"/ 2>/dev/null; rm -rf "$TMP"
}
trap cleanup EXIT
PROBE=$PWD/$BUILD/tests/link_probe

free_ports 1 || { echo "not ok - no free port"; exit 1; }
PORT=$BASE
N=127.0.0.1:$PORT

stat_of() { "$GV" status --data-dir "$TMP/$1" --json | J "d['$2']"; }

start n --broadcast --listen "$N" || not_ok "start n"

# ---- the peer's FINAL: the node answers with its own and closes ----
# The probe handshakes, says HELLO, waits for the node's PING (READY), sends
# FINAL with a GOODBYE, and waits up to 5 s for the node's FINAL and the end
# of the TCP connection; once half-closing after its FINAL, once not.
for mode in half keep; do
  out=$("$PROBE" "$N" 5000 $mode); rc=$?
  ms=$(sed -n 's/.*after_ms=\([0-9]*\).*/\1/p' <<<"$out")
  if [ $rc -eq 0 ] && [ -n "$ms" ] && [ "$ms" -lt 3000 ]; then
    ok "a peer's FINAL ($mode): the node answers with FINAL and closes the TCP connection ($ms ms)"
  else
    not_ok "goodbye answered ($mode)" "rc=$rc $out"
  fi
done
gone() { [ "$(grep -c "closed: goodbye" "$TMP/n.log")" -ge 2 ]; }
for _ in $(seq 1 20); do gone && break; sleep 0.1; done
gone && ok "the node logs the goodbye" || not_ok "goodbye logged" "$(tail -5 "$TMP/n.log")"

# ---- 64 idle sockets from 127.0.0.2 do not lock out a genuine node ----
# The attacker holds 64 connections that never send a byte, opening a new
# one whenever the node closes one (at most 5,000, paced), for HOLD s. It
# prints "ready" once the first 64 are open, then how many of those 64 the
# node closed within 3 s.
HOLD=12
python3 - "$PORT" "$HOLD" > "$TMP/idle.out" 2>&1 <<'EOF' &
import select, socket, sys, time
port, hold = int(sys.argv[1]), float(sys.argv[2])
def conn():
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    return s
t0 = time.monotonic()
first = {}
live = []
for _ in range(64):
    s = conn()
    first[s] = None
    live.append(s)
print("ready", flush=True)
renewed = 0
while time.monotonic() - t0 < hold:
    readable, _, _ = select.select(live, [], [], 0.05)
    for s in readable:
        try:
            data = s.recv(1)
        except OSError:
            data = b""
        if data:
            continue
        if s in first:
            first[s] = time.monotonic() - t0
        live.remove(s)
        s.close()
        if renewed < 5000:
            try:
                live.append(conn())
                renewed += 1
            except OSError:
                pass
    if readable:
        time.sleep(0.1)
closed = [t for t in first.values() if t is not None and t < 3.0]
print("closed_within_3s=%d of 64, renewed=%d" % (len(closed), renewed), flush=True)
EOF
atk=$!
pids+=($atk)
for _ in $(seq 1 50); do grep -q ready "$TMP/idle.out" && break; sleep 0.1; done
grep -q ready "$TMP/idle.out" || not_ok "attacker ready" "$(cat "$TMP/idle.out")"

now_ms() { date +%s%3N; }
t0=$(now_ms)
start m --peer "$N" || not_ok "start m"
linked() { [ "$(stat_of m links)" -ge 1 ]; }
up=0 hs=$(stat_of n handshaking)
while [ $(($(now_ms) - t0)) -lt 5000 ]; do linked && { up=1; break; }; sleep 0.2; done
if [ $up = 1 ] && kill -0 $atk 2>/dev/null; then
  ok "a genuine node links up within 5 s while 127.0.0.2 holds 64 idle sockets"
else
  not_ok "genuine link during the idle flood" "m links=$(stat_of m links), n handshaking=$hs; $(tail -3 "$TMP/m.log")"
fi
[ "$hs" -le 9 ] && ok "at most 8 handshakes run per address (n shows $hs)" ||
  not_ok "per-address handshake cap" "n handshaking=$hs"

for _ in $(seq 1 $((HOLD * 10 + 50))); do kill -0 $atk 2>/dev/null || break; sleep 0.1; done
out=$(cat "$TMP/idle.out")
grep -q "closed_within_3s=64 of 64" <<<"$out" &&
  ok "the node closes idle sockets within 3 s (first-byte deadline): $out" ||
  not_ok "idle sockets closed within 3 s" "$out"

# ---- a clean stop ----
for p in $pid_m $pid_n; do kill -TERM "$p" 2>/dev/null; done
for _ in $(seq 1 50); do
  kill -0 "$pid_m" 2>/dev/null || kill -0 "$pid_n" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$pid_n" 2>/dev/null && not_ok "SIGTERM stops the nodes" || ok "SIGTERM stops the nodes"
# Under the sanitizer build, any report in a node's log fails the run.
if grep -lE "ERROR: [A-Za-z]+Sanitizer|runtime error:" "$TMP"/*.log >/dev/null; then
  not_ok "a sanitizer reported" "$(grep -hE -A8 "ERROR: |runtime error:" "$TMP"/*.log | head -20)"
else ok "no sanitizer report in any node's log"; fi
finish
