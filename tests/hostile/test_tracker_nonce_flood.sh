#!/usr/bin/env bash
# Issue 12 item 1, nonce lockout: a flood of signed junk, each request
# under a fresh throw-away key, from many source addresses (127.0.1.x; all
# of 127.0.0.0/8 is loopback): unregisters of ids that are not registered
# (404) and registers whose dial-back is refused at once (422). Before the
# fix every one took a replay-cache slot for 60 s, and once the cache was
# full every genuine register got 503. Now only a request that passed
# every other check is recorded (the 404s cost nothing) and a full cache
# makes room at the heaviest source's expense, so a genuine register from
# an address of its own is served (200 listed), and quickly.
# HOSTILE_SIZE=small: --replay-cap 1000, 4,000 junk requests from 60
# addresses; full: --replay-cap 20000, 80,000 from 200 addresses.
# TRK (default $BUILD/grapevine-tracker) picks the binary under test; one
# without --replay-cap (before the fix) is flooded past its fixed cache,
# TRK_FIXED_CAP (default 262,144; a build with a smaller GV_TRK_NONCE_CAP
# shows the lockout in seconds: the default cache can only fill at more
# than 4,400 requests/s, faster than this script sends).
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh

TRK=${TRK:-$PWD/$BUILD/grapevine-tracker}
CLI=$PWD/$BUILD/tests/tracker_client
PEER=$PWD/$BUILD/tests/tracker_peer
case ${HOSTILE_SIZE:-small} in
full) CAP=20000 ADDRS=200 ;;
*) CAP=1000 ADDRS=60 ;;
esac
CAPFLAG=(--replay-cap "$CAP")
if ! "$TRK" --help | grep -q -- --replay-cap; then
  CAP=${TRK_FIXED_CAP:-262144} CAPFLAG=() # the binary from before the fix
fi
# Junk requests, 2/3 unregisters (404), 1/3 registers (422): the
# registers alone overflow a fixed cache (so 503s prove it full); the
# older binary, which records every request, is flooded just past its cap.
N=$((4 * CAP))
[ ${#CAPFLAG[@]} = 0 ] && N=$((CAP * 12 / 10))

# A closed port: every junk register's dial-back is refused at once.
free_ports 1
CLOSED=$BASE

tracker_up --listen 127.0.0.1:0 --db "$TMP/db" --rate-limit 0 "${CAPFLAG[@]}"

# The flood: two processes, each with one keep-alive connection per source
# address at a time, signing with libsodium through ctypes. Prints a count
# of answers by status. Bounded: N requests, 5 s per answer.
cat >"$TMP/flood.py" <<'PY'
import ctypes, json, os, socket, sys, time
from collections import Counter
port, closed, n, addrs, part = (int(a) for a in sys.argv[1:6])
na = ctypes.CDLL("libsodium.so.23")
assert na.sodium_init() >= 0
LABEL = b"grapevine/1 tracker "

def signed(method, path, body):
    pk, sk = ctypes.create_string_buffer(32), ctypes.create_string_buffer(64)
    na.crypto_sign_keypair(pk, sk)
    body = body.replace(b"ID", pk.raw.hex().encode())
    h = ctypes.create_string_buffer(32)
    na.crypto_generichash(h, 32, body, ctypes.c_ulonglong(len(body)), None, 0)
    msg = LABEL + method + b" " + path + b"\n" + h.raw
    sig = ctypes.create_string_buffer(64)
    na.crypto_sign_detached(sig, None, msg, ctypes.c_ulonglong(len(msg)), sk)
    return (method + b" " + path + b" HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/json\r\nX-Grapevine-Sig: " +
            sig.raw.hex().encode() + b"\r\nContent-Length: " +
            str(len(body)).encode() + b"\r\n\r\n" + body)

def answer(s, buf):
    while b"\r\n\r\n" not in buf:
        c = s.recv(65536)
        if not c:
            raise OSError("closed")
        buf += c
    head, rest = buf.split(b"\r\n\r\n", 1)
    code = int(head.split(b" ", 2)[1])
    cl = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            cl = int(v)
    while len(rest) < cl:
        c = s.recv(65536)
        if not c:
            raise OSError("closed")
        rest += c
    return code, rest[cl:]

codes = Counter()
conns = {}
for i in range(part, n, 2):
    a = i % addrs
    ts = int(time.time() * 1000)
    nonce = os.urandom(16).hex().encode()
    if i % 3 == 2:
        body = b'{"id":"ID","port":%d,"repos":[],"caps":[],"ts":%d,"nonce":"%s"}' % (
            closed, ts, nonce)
        req = signed(b"POST", b"/api/bootstrap/register", body)
    else:
        body = b'{"id":"ID","ts":%d,"nonce":"%s"}' % (ts, nonce)
        req = signed(b"DELETE", b"/api/bootstrap/unregister", body)
    try:
        if a not in conns:
            s = socket.socket()
            s.settimeout(5)
            s.bind(("127.0.1.%d" % (1 + a), 0))
            s.connect(("127.0.0.1", port))
            conns[a] = [s, b""]
        s, buf = conns[a]
        s.sendall(req)
        code, conns[a][1] = answer(s, buf)
        codes[code] += 1
    except OSError:
        codes["err"] += 1
        c = conns.pop(a, None)
        if c:
            c[0].close()
print(" ".join("%s=%d" % (k, v) for k, v in sorted(codes.items(), key=str)))
PY
PORT=${URL##*:}
t0=$(date +%s%N)
python3 "$TMP/flood.py" "$PORT" "$CLOSED" "$N" "$ADDRS" 0 >"$TMP/flood.0" &
f0=$!
python3 "$TMP/flood.py" "$PORT" "$CLOSED" "$N" "$ADDRS" 1 >"$TMP/flood.1" &
f1=$!
pids+=("$f0" "$f1")
wait "$f0" "$f1"
t1=$(date +%s%N)
echo "# flood: $N signed junk requests from $ADDRS addresses in $(((t1 - t0) / 1000000)) ms;" \
  "answers: $(cat "$TMP/flood.0") / $(cat "$TMP/flood.1")"
if grep -q '404=' "$TMP/flood.0" && grep -q '422=' "$TMP/flood.0" &&
   { [ ${#CAPFLAG[@]} = 0 ] || grep -q '503=' "$TMP/flood.0" "$TMP/flood.1"; }; then
  ok "the flood was served (404, 422) and filled the cache (503 for the heaviest)"
else
  not_ok "flood answers" "$(cat "$TMP/flood.0" "$TMP/flood.1")"
fi

# The genuine node, from 127.0.0.1, right after the flood.
peer_up good
GPORT=$PORT
t0=$(date +%s%N)
out=$("$CLI" "$URL" register --key "$TMP/good.key" --port "$GPORT" 2>&1)
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
echo "# genuine register after the flood: ${ms} ms: $out" | head -3
if grep -q '^rc=OK http=200 ' <<<"$out"; then
  ok "a genuine register after the flood is listed (200)"
else
  not_ok "genuine register after the flood" "$out"
fi
# Normal latency: a loopback dial-back takes milliseconds; 2 s is far
# above that and far below the node client's 15 s.
if [ "$ms" -lt 2000 ]; then ok "and quickly (${ms} ms)"
else not_ok "genuine register latency" "${ms} ms"; fi
# A replay of anything is still refused: the same signed request twice.
body=$("$CLI" body --key "$TMP/good.key" --port "$GPORT")
sig=$("$CLI" sign --key "$TMP/good.key" --method POST \
  --path /api/bootstrap/register --body "$body")
c1=$(curl -s -o /dev/null -w '%{http_code}' -m 10 -X POST --data-binary "$body" \
  -H "X-Grapevine-Sig: $sig" "$URL/api/bootstrap/register")
c2=$(curl -s -o "$TMP/r2" -w '%{http_code}' -m 10 -X POST --data-binary "$body" \
  -H "X-Grapevine-Sig: $sig" "$URL/api/bootstrap/register")
if [ "$c1" = 200 ] && [ "$c2" = 409 ] && grep -q '"error":"replay"' "$TMP/r2"; then
  ok "a replayed register is still 409 replay"
else
  not_ok "replay after the flood" "$c1 $c2 $(cat "$TMP/r2")"
fi
# The replay cache shows in /metrics (the binary from before the fix
# exported neither its fill nor its evictions): full after the flood,
# and the genuine register, from a source holding nothing, took the
# heaviest source's oldest pair.
curl -s -m 10 "$URL/metrics" >"$TMP/metrics"
metric() { awk -v n="grapevine_tracker_$1" '$1 == n {print $2}' "$TMP/metrics"; }
pairs=$(metric replay_cache_pairs) rcap=$(metric replay_cache_capacity)
evic=$(metric replay_cache_evictions_total)
echo "# replay cache: ${pairs:-?} of ${rcap:-?} pairs, ${evic:-?} evictions"
if [ ${#CAPFLAG[@]} = 0 ]; then
  : # the fixed-cap binary: only the lockout is the point
elif [ -n "$pairs" ] && [ "$rcap" = "$CAP" ] && [ "$pairs" -le "$CAP" ] &&
     [ "$pairs" -ge $((CAP * 9 / 10)) ] && [ -n "$evic" ] && [ "$evic" -ge 1 ]; then
  ok "/metrics: the replay cache full (${pairs}/${rcap}), ${evic} evictions"
else
  not_ok "/metrics replay cache" "pairs=$pairs cap=$rcap evictions=$evic"
fi
stop_pids "$TPID"
finish
