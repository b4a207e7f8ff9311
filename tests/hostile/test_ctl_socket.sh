#!/usr/bin/env bash
# Issue 12 item 9, control socket limits: a real node, attacked through its
# control.sock by a process of the same user.
# - N idle clients (HOSTILE_SIZE small: 200, full: 2,000): the node holds
#   at most GV_CTLSRV_CLIENTS_MAX (64) of them, the others get a BUSY line
#   and are closed, and `grapevine status` still answers;
# - every idle client still held, and one trickling bytes without ever
#   ending its line, gets a TIMEOUT line and is closed within
#   GV_CTLSRV_IDLE_MS (10 s) plus a margin;
# - trailing bytes, a repeated member, \u0000 in a name and invalid UTF-8
#   each get their own refusal, in valid UTF-8, and change nothing;
# - the node stays up throughout.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh

case ${HOSTILE_SIZE:-small} in
full) IDLE_CLIENTS=2000 ;;
*) IDLE_CLIENTS=200 ;;
esac
CLIENTS_MAX=64 # GV_CTLSRV_CLIENTS_MAX
IDLE_S=10      # GV_CTLSRV_IDLE_MS / 1000

start n || { not_ok "node starts"; finish; exit; }
SOCK=$TMP/n/control.sock

# --- idle clients: held at most CLIENTS_MAX, the CLI still answers, the
# rest closed after the idle timeout. The python side holds the sockets;
# it reports on stdout and waits for the file $TMP/go before the timeout part.
python3 - "$SOCK" "$IDLE_CLIENTS" "$IDLE_S" "$TMP/go" >"$TMP/idle.out" 2>&1 <<'EOF' &
import os, resource, select, socket, sys, time
path, n, idle_s, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 64)), hard))
socks, got = [], {}
deadline = time.monotonic() + 20

def connect():
    """A connected socket; retries while the listen backlog is full."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setblocking(False)
    while True:
        try:
            s.connect(path)
            return s
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.002)

for _ in range(n):
    try:
        s = connect()
    except OSError as e:
        print("connect failed:", e, flush=True)
        break
    socks.append(s)
    got[s] = b""

def drain(timeout):
    """Reads what is there; returns the sockets that reached EOF."""
    closed = []
    p = select.poll()
    byfd = {s.fileno(): s for s in socks}
    for fd in byfd:
        p.register(fd, select.POLLIN)
    for fd, _ in p.poll(timeout * 1000):
        s = byfd[fd]
        try:
            b = s.recv(4096)
        except OSError:
            b = b""
        if b:
            got[s] += b
        else:
            closed.append(s)
    for s in closed:
        socks.remove(s)
    return closed

evicted = []
end = time.monotonic() + 1.0
while time.monotonic() < end:
    evicted += drain(0.1)
busy = sum(1 for s in evicted if b'EBUSY"' in got[s])
print("opened", len(got), "held", len(socks), "evicted", len(evicted),
      "busy_lines", busy, flush=True)
# A slow client: bytes without a newline must not keep it alive.
slow = connect()
slow.send(b'{"cmd":')
while not os.path.exists(go) and time.monotonic() < deadline + 10:
    time.sleep(0.05)  # the CLI check is done
t0, closed, timeouts = time.monotonic(), [], 0
held = len(socks)
slow_closed_at = None
while (socks or slow_closed_at is None) and time.monotonic() - t0 < idle_s + 5:
    closed += drain(0.2)
    if slow_closed_at is None:
        try:
            slow.send(b" ")
        except OSError:
            slow_closed_at = time.monotonic() - t0
# The CLI and the slow client each evicted one (BUSY); the rest timed out.
timeouts = sum(1 for s in closed if b'ETIMEDOUT"' in got[s])
told = sum(1 for s in closed if b'ETIMEDOUT"' in got[s] or b'EBUSY"' in got[s])
print("after", round(time.monotonic() - t0, 1), "s: closed", len(closed), "of",
      held, "told", told, "with_timeout_line", timeouts, "still_open",
      len(socks), "slow_closed", slow_closed_at is not None, flush=True)
EOF
py=$!
for _ in $(seq 1 300); do
  grep -q "^opened" "$TMP/idle.out" && break
  kill -0 $py 2>/dev/null || break
  sleep 0.1
done
line=$(grep "^opened" "$TMP/idle.out")
echo "# $line"
read -r _ opened _ held _ evicted _ busy <<<"$line"
if [ "${opened:-0}" = "$IDLE_CLIENTS" ] && [ "${held:-999}" -le $CLIENTS_MAX ] &&
  [ "$((held + evicted))" = "$IDLE_CLIENTS" ] && [ "${busy:-0}" = "${evicted:-x}" ]; then
  ok "$IDLE_CLIENTS idle clients: at most $CLIENTS_MAX held, the others told BUSY and closed"
else not_ok "connection cap" "$(cat "$TMP/idle.out")"; fi
out=$(timeout 10 "$GV" status --data-dir "$TMP/n" 2>&1) && rc=0 || rc=$?
if [ $rc = 0 ]; then
  ok "grapevine status answers with $IDLE_CLIENTS idle clients connected"
else not_ok "grapevine status under idle clients" "rc=$rc $out"; fi
touch "$TMP/go"
for _ in $(seq 1 $(((IDLE_S + 10) * 10))); do
  kill -0 $py 2>/dev/null || break
  sleep 0.1
done
line=$(grep "^after" "$TMP/idle.out")
echo "# $line"
read -r _ secs _ _ closed _ held_again _ told _ timeouts _ open _ slow <<<"$line"
if [ "${open:-x}" = 0 ] && [ "${closed:-x}" = "${held_again:-y}" ] &&
  [ "${told:-x}" = "${closed:-y}" ] && [ "${timeouts:-0}" -ge $((closed - 2)) ]; then
  ok "idle clients get ETIMEDOUT and are closed within ${IDLE_S} s + 5 s"
else not_ok "idle timeout" "$(cat "$TMP/idle.out")"; fi
if [ "${slow:-}" = True ]; then
  ok "a client trickling bytes without a newline is closed too"
else not_ok "slow client closed" "$(cat "$TMP/idle.out")"; fi

# --- malformed requests: each its own refusal, in UTF-8, nothing done ---
python3 - "$SOCK" >"$TMP/bad.out" 2>&1 <<'EOF'
import json, socket, sys
path = sys.argv[1]
cases = [
    ("trailing bytes", b'{"cmd":"status"} {"cmd":"peers"}', "EJSON", "trailing"),
    ("duplicate key", b'{"cmd":"status","cmd":"peers"}', "EFIELD", "appears twice"),
    ("\\u0000 in a name", b'{"cmd":"repo","op":"add","name":"evil\\u0000zzz"}',
     "EJSON", "\\u0000"),
    ("invalid UTF-8", b'{"cmd":"\xff\xfe\xc0\xaf"}', "EJSON", "not UTF-8"),
]
bad = 0
for name, req, err, why in cases:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    s.sendall(req + b"\n")
    buf = b""
    try:
        while not buf.endswith(b"\n"):
            b = s.recv(4096)
            if not b:
                break
            buf += b
    except OSError:
        pass
    s.close()
    try:
        a = json.loads(buf.decode("utf-8", errors="strict"))
        good = (a.get("ok") is False and a.get("error", "").endswith(err)
                and why in a.get("reason", ""))
    except (UnicodeDecodeError, ValueError):
        good = False
    print("ok" if good else "BAD", name, buf[:200], flush=True)
    bad += not good
sys.exit(1 if bad else 0)
EOF
rc=$?
while read -r verdict rest; do
  if [ "$verdict" = ok ]; then ok "malformed request refused: ${rest%% b\'*}"
  else not_ok "malformed request: $rest"; fi
done <"$TMP/bad.out"
[ -s "$TMP/bad.out" ] || not_ok "malformed requests ran" "rc=$rc"
out=$("$GV" status --data-dir "$TMP/n" --json 2>&1)
if kill -0 "$pid_n" 2>/dev/null && grep -q '"ok":true' <<<"$out" &&
  ! grep -q evil <<<"$out"; then
  ok "the node is up, answers, and holds no repository 'evil'"
else not_ok "node up after malformed requests" "$out"; fi

stop_pids "$pid_n"
pids=()
finish
