#!/usr/bin/env bash
# Malformed HTTP (issue 12, the hostile suite: an attack that already
# holds). A real tracker on loopback gets over 75 kinds of malformed
# request, sent raw on their own connections: bad request lines and
# methods, huge, negative and broken Content-Length, truncated bodies, bad
# chunking, header injection, bad percent-encoding, overlong URIs and
# headers, invalid JSON, wrong content types, NULs and non-UTF-8 bytes.
# Asserted: no answer is a 5xx (505 to HTTP/9.9 aside; the script lists
# any other), every
# request is answered or its connection closed within a bound (the head
# and body deadlines plus 3 s), the tracker stays up, and afterwards a
# genuine GET of the listing and a genuine signed register succeed.
# HOSTILE_SIZE=small: each kind once; full: each 10 times, 16 connections
# at a time from 50 source addresses (127.0.2.x).
# TRK (default $BUILD/grapevine-tracker) picks the binary under test.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh

TRK=${TRK:-$PWD/$BUILD/grapevine-tracker}
CLI=$PWD/$BUILD/tests/tracker_client
PEER=$PWD/$BUILD/tests/tracker_peer
case ${HOSTILE_SIZE:-small} in
full) ROUNDS=10 ;;
*) ROUNDS=1 ;;
esac
# Short deadlines keep the truncated requests' wait small; the bound
# allows the deadline check's 1 s granularity and a loaded machine.
HEAD_S=2 BODY_S=3
BOUND=$((HEAD_S + BODY_S + 3))
tracker_up --listen 127.0.0.1:0 --db "$TMP/db" --rate-limit 0 \
  --header-timeout $HEAD_S --body-timeout $BODY_S
PORT=${URL##*:}

cat >"$TMP/malformed.py" <<'PY'
import socket, sys, time, threading
from concurrent.futures import ThreadPoolExecutor
port, rounds, bound = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
R = b"/api/bootstrap/register"
U = b"/api/bootstrap/unregister"
P = b"/api/bootstrap/peers"
D = b"/api/bootstrap/discover"
H = b"Host: 127.0.0.1\r\n"
J = b"Content-Type: application/json\r\n"
SIG = b"X-Grapevine-Sig: " + b"ab" * 64 + b"\r\n"
def get(path, extra=b""):
    return b"GET " + path + b" HTTP/1.1\r\n" + H + extra + b"\r\n"
def post(body, extra=b"", path=R, ctype=J, cl=None):
    cl = str(len(body)).encode() if cl is None else cl
    return (b"POST " + path + b" HTTP/1.1\r\n" + H + ctype + SIG + extra +
            b"Content-Length: " + cl + b"\r\n\r\n" + body)
def chunked(chunks, extra=b""):
    return (b"POST " + R + b" HTTP/1.1\r\n" + H + J + SIG + extra +
            b"Transfer-Encoding: chunked\r\n\r\n" + chunks)
GOOD = (b'{"id":"' + b"a" * 64 + b'","port":1,"repos":[],"caps":[],'
        b'"ts":1,"nonce":"' + b"b" * 32 + b'"}')
cases = [
    # request lines
    ("empty line", b"\r\n\r\n"),
    ("method only", b"GET\r\n\r\n"),
    ("HTTP/0.9", b"GET /health\r\n\r\n"),
    ("HTTP/9.9", b"GET /health HTTP/9.9\r\n" + H + b"\r\n"),
    ("HTTP/1.1x", b"GET /health HTTP/1.1x\r\n" + H + b"\r\n"),
    ("four fields", b"GET /health HTTP/1.1 extra\r\n" + H + b"\r\n"),
    ("double space", b"GET  /health HTTP/1.1\r\n" + H + b"\r\n"),
    ("tabs", b"GET\t/health\tHTTP/1.1\r\n" + H + b"\r\n"),
    ("no slash", b"GET health HTTP/1.1\r\n" + H + b"\r\n"),
    ("absolute form", b"GET http://evil.example/health HTTP/1.1\r\n" + H + b"\r\n"),
    ("asterisk", b"GET * HTTP/1.1\r\n" + H + b"\r\n"),
    ("bare LF", b"GET /health HTTP/1.1\n" + b"Host: a\n\n"),
    ("bare CR", b"GET /health HTTP/1.1\r" + b"Host: a\r\r"),
    ("leading NUL", b"\x00GET /health HTTP/1.1\r\n" + H + b"\r\n"),
    ("binary junk", bytes(range(256)) * 4),
    ("TLS hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64),
    ("head truncated", b"GET /health HTTP/1.1\r\n" + H),
    ("line truncated", b"GET /hea"),
    # methods
    ("lowercase method", b"get /health HTTP/1.1\r\n" + H + b"\r\n"),
    ("unknown method", b"FOO /health HTTP/1.1\r\n" + H + b"\r\n"),
    ("CONNECT", b"CONNECT 127.0.0.1:22 HTTP/1.1\r\n" + H + b"\r\n"),
    ("TRACE", b"TRACE / HTTP/1.1\r\n" + H + b"\r\n"),
    ("OPTIONS", b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n"),
    ("PATCH register", b"PATCH " + R + b" HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n"),
    ("DELETE peers", b"DELETE " + P + b" HTTP/1.1\r\n" + H + b"\r\n"),
    ("PUT unregister", b"PUT " + U + b" HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n"),
    ("long method", b"G" * 5000 + b" /health HTTP/1.1\r\n" + H + b"\r\n"),
    ("non-ASCII method", b"G\xffT /health HTTP/1.1\r\n" + H + b"\r\n"),
    # Content-Length
    ("CL huge", post(b"{}", cl=b"99999999999999999999999")),
    ("CL 1 GB", post(b"{}", cl=b"1000000000")),
    ("CL negative", post(b"{}", cl=b"-1")),
    ("CL not a number", post(b"{}", cl=b"abc")),
    ("CL two numbers", post(b"{}", cl=b"2 2")),
    ("CL plus sign", post(b"{}", cl=b"+2")),
    ("CL hex", post(b"{}", cl=b"0x2")),
    ("CL empty", post(b"{}", cl=b"")),
    ("CL list", post(b"{}", cl=b"2, 2")),
    ("CL longer than body", post(b"{}", cl=b"100")),
    ("CL shorter than body", post(b'{"a":1}garbage', cl=b"7")),
    ("CL with TE", post(b"0\r\n\r\n", extra=b"Transfer-Encoding: chunked\r\n")),
    ("CL on GET", get(P, b"Content-Length: 5\r\n") + b"hello"),
    # chunking
    ("chunk size not hex", chunked(b"zz\r\n{}\r\n0\r\n\r\n")),
    ("chunk size huge", chunked(b"ffffffffffffffffffff\r\n{}\r\n0\r\n\r\n")),
    ("chunk size negative", chunked(b"-2\r\n{}\r\n0\r\n\r\n")),
    ("chunk missing CRLF", chunked(b"2\r\n{}0\r\n\r\n")),
    ("chunk no last", chunked(b"2\r\n{}\r\n")),
    ("chunk longer than data", chunked(b"40\r\n{}\r\n")),
    ("chunk extension junk", chunked(b"2;\x01\x02=\xff\r\n{}\r\n0\r\n\r\n")),
    ("TE gzip", chunked(b"2\r\n{}\r\n0\r\n\r\n").replace(b"chunked", b"gzip")),
    ("TE chunked twice", chunked(b"2\r\n{}\r\n0\r\n\r\n", b"Transfer-Encoding: chunked\r\n")),
    ("TE chunked, chunked", chunked(b"0\r\n\r\n").replace(b"chunked", b"chunked, chunked")),
    ("TE identity", chunked(b"{}").replace(b"chunked", b"identity")),
    ("TE on HTTP/1.0", chunked(b"2\r\n{}\r\n0\r\n\r\n").replace(b"HTTP/1.1", b"HTTP/1.0")),
    # headers and injection
    ("header without colon", get(b"/health", b"NoColonHere\r\n")),
    ("header name with space", get(b"/health", b"Bad Header: x\r\n")),
    ("header empty name", get(b"/health", b": x\r\n")),
    ("header folded", get(b"/health", b"X-A: a\r\n folded\r\n")),
    ("header CR in value", get(b"/health", b"X-A: a\rX-B: b\r\n")),
    ("header NUL", get(b"/health", b"X-A: a\x00b\r\n")),
    ("header non-UTF-8", get(b"/health", b"X-A: \xff\xfe\xc3\x28\r\n")),
    ("CRLF in URI", b"GET /health\r\nX-Injected: 1 HTTP/1.1\r\n" + H + b"\r\n"),
    ("encoded CRLF", get(D + b"?repos=a%0d%0aX-Injected:%201")),
    ("no Host", b"GET /health HTTP/1.1\r\n\r\n"),
    ("two Host", get(b"/health", b"Host: evil\r\n")),
    ("two Content-Type", post(GOOD, extra=J)),
    ("two signatures", post(GOOD, extra=SIG)),
    ("header 100 KB", get(b"/health", b"X-A: " + b"a" * 100000 + b"\r\n")),
    ("header name 10 KB", get(b"/health", b"X" * 10000 + b": a\r\n")),
    ("2000 headers", get(b"/health", b"".join(b"X-%d: a\r\n" % i for i in range(2000)))),
    ("Expect 100-continue huge", post(b"", extra=b"Expect: 100-continue\r\n", cl=b"50000000")),
    ("Upgrade websocket", get(b"/health", b"Upgrade: websocket\r\nConnection: Upgrade\r\n")),
    # percent-encoding and queries
    ("lone %", get(D + b"?repos=%")),
    ("% bad hex", get(D + b"?repos=%zz")),
    ("% one digit", get(D + b"?repos=a%4")),
    ("% non-UTF-8", get(D + b"?repos=%ff%fe%c3%28")),
    ("%00 in value", get(D + b"?repos=a%00b")),
    ("%00 in path", get(b"/health%00.json")),
    ("encoded traversal", get(b"/api/bootstrap/..%2f..%2f..%2fetc%2fpasswd")),
    ("dot segments", get(b"/api/bootstrap/../../../etc/passwd")),
    ("max negative", get(P + b"?max=-1")),
    ("max overflow", get(P + b"?max=99999999999999999999999")),
    ("max not a number", get(P + b"?max=abc")),
    ("max encoded", get(P + b"?max=%35")),
    ("query key only", get(P + b"?max")),
    ("query empty pairs", get(P + b"?&&&=&=")),
    ("repos 5000 commas", get(D + b"?repos=" + b"," * 5000)),
    ("repos 2000 names", get(D + b"?repos=" + b",".join(b"r%d" % i for i in range(2000)))),
    ("raw non-UTF-8 path", get(b"/\xff\xfe")),
    ("raw NUL in path", get(b"/hea\x00lth")),
    # overlong URIs
    ("URI 10 KB", get(b"/" + b"a" * 10000)),
    ("URI 100 KB", get(D + b"?repos=" + b"a" * 100000)),
    ("URI 1 MB", get(b"/" + b"a" * 1000000)),
    # bodies
    ("JSON truncated", post(b"{")),
    ("JSON array", post(b"[]")),
    ("JSON null", post(b"null")),
    ("JSON string", post(b'"x"')),
    ("JSON empty", post(b"")),
    ("JSON missing value", post(b'{"id":}')),
    ("JSON trailing garbage", post(GOOD + b"garbage")),
    ("JSON two objects", post(GOOD + GOOD)),
    ("JSON trailing comma", post(GOOD[:-1] + b",}")),
    ("JSON deep nesting", post(b"[" * 20000 + b"]" * 20000)),
    ("JSON deep objects", post(b'{"a":' * 5000 + b"1" + b"}" * 5000)),
    ("JSON huge number", post(GOOD.replace(b'"port":1', b'"port":1e999'))),
    ("JSON negative port", post(GOOD.replace(b'"port":1', b'"port":-1'))),
    ("JSON NaN", post(GOOD.replace(b'"port":1', b'"port":NaN'))),
    ("JSON duplicate key", post(GOOD[:-1] + b',"port":2}')),
    ("JSON \\u0000 in name", post(GOOD.replace(b'"repos":[]', b'"repos":["a\\u0000b"]'))),
    ("JSON lone surrogate", post(GOOD.replace(b'"repos":[]', b'"repos":["\\ud800"]'))),
    ("JSON raw NUL", post(GOOD.replace(b'"repos":[]', b'"repos":["a\x00b"]'))),
    ("JSON non-UTF-8", post(GOOD.replace(b'"repos":[]', b'"repos":["\xc3\x28\xff"]'))),
    ("JSON BOM", post(b"\xef\xbb\xbf" + GOOD)),
    ("JSON UTF-16", post(GOOD.decode().encode("utf-16"))),
    ("JSON single quotes", post(GOOD.replace(b'"', b"'"))),
    ("JSON 60 KB of spaces", post(b" " * 60000 + GOOD)),
    ("body to unregister garbage", post(b"\xff" * 100, path=U).replace(b"POST", b"DELETE", 1)),
    # content types
    ("type text/plain", post(GOOD, ctype=b"Content-Type: text/plain\r\n")),
    ("type form", post(b"id=a&port=1", ctype=b"Content-Type: application/x-www-form-urlencoded\r\n")),
    ("type multipart", post(b"--x\r\n\r\n" + GOOD + b"\r\n--x--\r\n",
                            ctype=b"Content-Type: multipart/form-data; boundary=x\r\n")),
    ("type utf-16 charset", post(GOOD, ctype=b"Content-Type: application/json; charset=utf-16\r\n")),
    ("type empty", post(GOOD, ctype=b"Content-Type:\r\n")),
    ("type none", post(GOOD, ctype=b"")),
    ("type 10 KB", post(GOOD, ctype=b"Content-Type: application/json; " + b"x" * 10000 + b"\r\n")),
    # signature headers
    ("sig not hex", post(GOOD).replace(b"ab" * 64, b"zz" * 64)),
    ("sig too long", post(GOOD).replace(b"ab" * 64, b"ab" * 5000)),
    ("sig empty", post(GOOD).replace(b"ab" * 64, b"")),
    # pipelining
    ("valid then garbage", get(b"/health") + b"\x00\xff garbage \r\n\r\n"),
    ("100 pipelined garbage", (b"XYZ / HTTP/1.1\r\n" + H + b"\r\n") * 100),
]

def one(i_case):
    i, (name, req) = i_case
    t0 = time.monotonic()
    s = socket.socket()
    s.settimeout(bound + 2)
    try:
        s.bind(("127.0.2.%d" % (1 + i % 50), 0))
        s.connect(("127.0.0.1", port))
        try:
            s.sendall(req)
        except OSError:
            pass  # the tracker may close before it has read everything
        data = b""
        while True:
            c = s.recv(65536)
            if not c:
                break
            data += c
            if b"\r\n\r\n" in data:
                head, rest = data.split(b"\r\n\r\n", 1)
                cl = [l.split(b":", 1)[1] for l in head.split(b"\r\n")
                      if l.lower().startswith(b"content-length:")]
                if len(rest) >= (int(cl[0]) if cl else 0):
                    break
        fate = "closed"
        if data.startswith(b"HTTP/1."):
            fate = data.split(b" ", 2)[1].decode()
    except socket.timeout:
        fate = "timeout"
    except OSError as e:
        fate = "reset" if isinstance(e, ConnectionResetError) else "error:" + str(e)
    finally:
        s.close()
    return name, fate, time.monotonic() - t0

work = list(enumerate(cases * rounds))
with ThreadPoolExecutor(16) as ex:
    results = list(ex.map(one, work))
print("cases %d requests %d" % (len(cases), len(results)))
for name, fate, dt in results:
    print("%s\t%.2f\t%s" % (fate, dt, name))
PY

python3 "$TMP/malformed.py" "$PORT" "$ROUNDS" "$BOUND" >"$TMP/res"
read -r _ ncases _ nreq < <(head -1 "$TMP/res")
tail -n +2 "$TMP/res" >"$TMP/fates"
echo "# $nreq malformed requests ($ncases kinds); fates:" \
  "$(cut -f1 "$TMP/fates" | sort | uniq -c | awk '{printf "%s%s=%s", s, $2, $1; s=" "}')"
echo "# slowest: $(sort -t$'\t' -k2 -rn "$TMP/fates" | head -1 | tr '\t' ' ')"
if [ "${ncases:-0}" -ge 75 ] && [ "$(wc -l <"$TMP/fates")" = "$nreq" ]; then
  ok "$nreq malformed requests sent ($ncases kinds, $ROUNDS round(s))"
else not_ok "malformed requests sent" "$(head -3 "$TMP/res")"; fi
# The one 5xx allowed: 505 to a request line naming an HTTP version the
# tracker does not speak (HTTP/9.9), which is the right answer (RFC 9110
# §15.6.6), not a fault.
five=$(awk -F'\t' '$1 ~ /^5/ && !($1 == 505 && $3 == "HTTP/9.9")' "$TMP/fates")
if [ -z "$five" ]; then ok "no answer is a 5xx (but 505 to HTTP/9.9)"
else not_ok "5xx answers" "$(sort -u <<<"$five" | cut -f1,3)"; fi
late=$(awk -F'\t' -v b="$BOUND" '$1 !~ /^[1-5][0-9][0-9]$|^closed$|^reset$/ || $2 > b' "$TMP/fates")
if [ -z "$late" ]; then ok "every request answered or closed within ${BOUND} s"
else not_ok "unanswered or late" "$late"; fi
# The well-formed head with a bad body must be answered, not dropped: the
# parser's refusals reach the client with a status.
n4=$(awk -F'\t' '$1 ~ /^4/' "$TMP/fates" | wc -l)
if [ "$n4" -ge $((nreq / 2)) ]; then ok "$n4 of $nreq answered with a 4xx status"
else not_ok "4xx answers" "only $n4 of $nreq"; fi

kill -0 "$TPID" 2>/dev/null && ok "the tracker is alive" ||
  not_ok "tracker alive" "$(tail -5 "$TMP/trk.log")"
# A genuine client afterwards: the listing, and a signed register.
code=$(curl -s -o "$TMP/peers" -w '%{http_code}' -m 10 "$URL/api/bootstrap/peers")
if [ "$code" = 200 ] && grep -q '"peers":\[' "$TMP/peers"; then
  ok "a genuine GET of the listing is served (200)"
else not_ok "genuine GET peers" "$code $(head -c 300 "$TMP/peers")"; fi
peer_up good
out=$("$CLI" "$URL" register --key "$TMP/good.key" --port "$PORT" 2>&1)
GID=$("$CLI" id --key "$TMP/good.key")
if grep -q '^rc=OK http=200 ' <<<"$out" &&
   "$CLI" "$URL" peers | grep -q "^peer $GID 127.0.0.1:$PORT"; then
  ok "a genuine signed register is served and listed"
else not_ok "genuine register" "$out"; fi
stop_pids "$TPID"
finish
