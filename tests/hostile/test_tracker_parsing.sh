#!/usr/bin/env bash
# Issue 12 item 4, lenient parsing: raw requests on loopback to a real
# tracker. A `%00` in a query value or in the path, a header that must be single given
# twice (Content-Length, Host, Transfer-Encoding, X-Grapevine-Sig) and a
# query key given twice are each refused with 400 and a reason; the same
# requests without the trick are served, so the 400 is for the trick.
# HOSTILE_SIZE (small|full) sets how many times each trick is repeated.
# TRK (default $BUILD/grapevine-tracker) picks the binary under test.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh

TRK=${TRK:-$PWD/$BUILD/grapevine-tracker}
case ${HOSTILE_SIZE:-small} in
full) ROUNDS=20 ;;
*) ROUNDS=2 ;;
esac

tracker_up --listen 127.0.0.1:0 --db "$TMP/db" --rate-limit 0
PORT=${URL##*:}

# raw REQUEST: sends the bytes (printf escapes) on a new connection and
# prints the status code and the body of the answer (5 s at most).
raw() {
  python3 - "$PORT" "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1"))
data = b""
try:
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(
            ([l.split(b":")[1] for l in data.split(b"\r\n") if l.lower().startswith(b"content-length:")] or [b"0"])[0]):
        c = s.recv(4096)
        if not c:
            break
        data += c
except OSError:
    pass
head, _, body = data.partition(b"\r\n\r\n")
code = head.split(b" ")[1].decode() if head.count(b" ") else "none"
print(code, body.decode("latin-1"))
PY
}

# expect NAME WANT_CODE WANT_ERROR REQUEST: ROUNDS tries, all must match.
expect() {
  local name=$1 code=$2 err=$3 got i
  for ((i = 0; i < ROUNDS; i++)); do
    got=$(raw "$4")
    if [ "${got%% *}" != "$code" ] || { [ "$err" != - ] &&
        ! grep -q "\"error\":\"$err\",\"reason\":\"[^\"]" <<<"$got"; }; then
      not_ok "$name" "want $code $err, got: $got"
      return
    fi
  done
  ok "$name"
}

D=/api/bootstrap/discover
R=/api/bootstrap/register
H='Host: 127.0.0.1\r\n'
expect "discover ?repos=a is served" 200 - "GET $D?repos=a HTTP/1.1\r\n$H\r\n"
expect "%00 in a query value: 400 bad_query" 400 bad_query \
  "GET $D?repos=a%00zzz HTTP/1.1\r\n$H\r\n"
expect "%00 in max: 400 bad_query" 400 bad_query \
  "GET /api/bootstrap/peers?max=5%00 HTTP/1.1\r\n$H\r\n"
expect "repos given twice: 400 bad_query" 400 bad_query \
  "GET $D?repos=a&repos=b HTTP/1.1\r\n$H\r\n"
expect "one Content-Length: body parsed (400 bad_field)" 400 bad_field \
  "POST $R HTTP/1.1\r\n${H}Content-Length: 2\r\n\r\n{}"
expect "two Content-Length: 400 bad_header" 400 bad_header \
  "POST $R HTTP/1.1\r\n${H}Content-Length: 2\r\nContent-Length: 50\r\n\r\n{}"
expect "two equal Content-Length: 400 bad_header" 400 bad_header \
  "POST $R HTTP/1.1\r\n${H}Content-Length: 2\r\ncontent-length: 2\r\n\r\n{}"
expect "two Host: 400 bad_header" 400 bad_header \
  "GET /health HTTP/1.1\r\n${H}Host: evil\r\n\r\n"
expect "two signatures: 400 bad_header" 400 bad_header \
  "POST $R HTTP/1.1\r\n${H}X-Grapevine-Sig: a\r\nX-Grapevine-Sig: b\r\nContent-Length: 2\r\n\r\n{}"
expect "%00 in the path: 400 bad_path, not /health" 400 bad_path \
  "GET /health%00.json HTTP/1.1\r\n$H\r\n"
expect "%00 in a discover path: 400 bad_path" 400 bad_path \
  "GET $D%00x?repos=a HTTP/1.1\r\n$H\r\n"
expect "health still served" 200 - "GET /health HTTP/1.1\r\n$H\r\n"

stop_pids "$TPID"
pids=()
finish
