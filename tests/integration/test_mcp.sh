#!/usr/bin/env bash
# `grapevine mcp` end to end (issue 10 §1): two real nodes of one team on
# loopback; the official MCP TypeScript SDK's client (tests/mcp/client.mjs,
# pinned in tests/mcp/package-lock.json) drives the server; raw bad input
# (not JSON, an unknown method, a notification, a line over 2 MiB, a
# batch); a client that leaves mid-call; one that pipes its lines and
# leaves before the connection is up; one that writes before it reads; the
# node down and back; and `mcp config` for every client. Every wait is
# bounded.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh

# ---- no node needed ----
check "mcp --help" "$GV" mcp --help
check "mcp config --help" "$GV" mcp config --help
"$GV" mcp config --client nosuch >/dev/null 2>"$TMP/err"
rc=$?
[ $rc = 2 ] && grep -q codex "$TMP/err" && ok "mcp config of an unknown client exits 2 with the list" ||
  not_ok "mcp config of an unknown client exits 2 with the list" "exit $rc"
clients=$("$GV" mcp config --client list | awk '{print $1}')
[ "$(echo "$clients" | wc -l)" = 8 ] && ok "mcp config --client list names 8 clients" ||
  not_ok "mcp config --client list names 8 clients" "$clients"
for c in $clients; do
  "$GV" mcp config --client "$c" --as 'web:my agent' >/dev/null 2>&1
  rc=$?
  [ $rc = 2 ] && ok "config $c refuses a bad --as" || not_ok "config $c refuses a bad --as" "exit $rc"
  out=$("$GV" mcp config --client "$c" --as web:bot --data-dir rel/dir 2>/dev/null)
  if printf '%s' "$out" | GV_ABS="$(readlink -f "$GV")" DIR="$PWD/rel/dir" CLIENT="$c" python3 -c '
import json, os, sys, tomllib
text, c = sys.stdin.read(), os.environ["CLIENT"]
want = ["mcp", "--as", "web:bot", "--data-dir", os.environ["DIR"]]
if c == "codex":
    s = tomllib.loads(text)["mcp_servers"]["grapevine"]
elif c == "claude-code":
    first, rest = text.split("\n", 1)
    assert first == "claude mcp add grapevine -- %s %s" % (os.environ["GV_ABS"], " ".join(want)), first
    s = json.loads(rest)["mcpServers"]["grapevine"]
else:
    top = {"vscode": "servers", "zed": "context_servers"}.get(c, "mcpServers")
    s = json.loads(text)[top]["grapevine"]
    assert c != "vscode" or s["type"] == "stdio"
assert s["command"] == os.environ["GV_ABS"] and s["args"] == want, s
'; then ok "config $c parses and starts this binary with --as and --data-dir"
  else not_ok "config $c parses and starts this binary with --as and --data-dir" "$out"; fi
done

# ---- the SDK, installed from the lockfile ----
if [ ! -d tests/mcp/node_modules/@modelcontextprotocol/sdk ]; then
  timeout 300 npm ci --prefix tests/mcp --no-audit --no-fund >"$TMP/npm.log" 2>&1 ||
    { not_ok "npm ci --prefix tests/mcp" "$(tail -5 "$TMP/npm.log")"; finish; }
fi

# ---- two nodes, one team ----
free_ports 4 || { echo "no free ports"; exit 1; }
start A --broadcast --listen "127.0.0.1:$BASE" || not_ok "start A"
start B --peer "127.0.0.1:$BASE" || not_ok "start B"
"$GV" team create --data-dir "$TMP/A" >/dev/null
"$GV" team join "$(cat "$TMP"/A/team-*.key)" --data-dir "$TMP/B" >/dev/null

# The SDK client: each of its lines is a check here.
GV="$(readlink -f "$GV")" DIR_A="$TMP/A" DIR_B="$TMP/B" AS=proj:mcpagent \
  timeout 180 node tests/mcp/client.mjs >"$TMP/sdk.out" 2>"$TMP/sdk.err"
rc=$?
while IFS= read -r l; do
  case $l in
  "ok - "*) ok "sdk: ${l#ok - }" ;;
  "not ok - "*) l=${l#not ok - } && not_ok "sdk: ${l%% # *}" "${l#* # }" ;;
  esac
done <"$TMP/sdk.out"
[ $rc = 0 ] && ok "the SDK client ran to its end" ||
  not_ok "the SDK client ran to its end" "exit $rc: $(tail -5 "$TMP/sdk.err")"

# ---- raw input, from a client we script byte by byte ----
# raw.py CMD...: runs CMD, sends each test's lines, reads the answers with
# a deadline, prints one JSON verdict per test.
cat >"$TMP/raw.py" <<'EOF'
import json, os, select, subprocess, sys, time
p = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
buf = b""
def send(b):
    p.stdin.write(b); p.stdin.flush()
def read(n, secs=5):
    """at most n answers within secs"""
    global buf
    out, end = [], time.time() + secs
    while len(out) < n and time.time() < end:
        while b"\n" in buf and len(out) < n:
            l, buf = buf.split(b"\n", 1)
            out.append(json.loads(l))
        if len(out) >= n: break
        r, _, _ = select.select([p.stdout], [], [], max(0, end - time.time()))
        if r:
            d = os.read(p.stdout.fileno(), 1 << 20)
            if not d: break
            buf += d
    return out
def req(i, m, params=None):
    o = {"jsonrpc": "2.0", "id": i, "method": m}
    if params is not None: o["params"] = params
    return (json.dumps(o) + "\n").encode()
send(req(0, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw"}}))
a = read(1)
print(json.dumps({"t": "init", "ok": a and a[0]["result"]["protocolVersion"] == "2025-06-18"}))
send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
send(b"this is not json\n")
a = read(1)
print(json.dumps({"t": "notjson", "ok": a and a[0]["error"]["code"] == -32700 and a[0]["id"] is None}))
send(req(2, "no/such/method"))
a = read(1)
print(json.dumps({"t": "unknown", "ok": a and a[0]["error"]["code"] == -32601 and a[0]["id"] == 2}))
send(b'{"jsonrpc":"2.0","method":"tools/list"}\n' + req(3, "ping"))
a = read(2, 2)
print(json.dumps({"t": "noid", "ok": len(a) == 1 and a[0]["id"] == 3}))
send(b'[' + req(4, "ping").strip() + b']\n')
a = read(1)
print(json.dumps({"t": "batch", "ok": a and a[0]["error"]["code"] == -32600 and a[0]["id"] is None}))
big = b'{"jsonrpc":"2.0","id":5,"method":"ping","params":{"x":"' + b"a" * (2 * 1024 * 1024) + b'"}}\n'
send(big + req(6, "ping"))
a = read(2, 10)
print(json.dumps({"t": "big", "ok": len(a) == 2 and a[0]["error"]["code"] == -32600 and a[0]["id"] is None and a[1] == {"jsonrpc": "2.0", "id": 6, "result": {}}}))
send(req(7, "tools/call", {"name": "relay_agents", "arguments": {"nope": 1}}))
a = read(1)
print(json.dumps({"t": "schema", "ok": a and a[0]["result"]["isError"] is True and a[0]["result"]["content"][0]["text"].startswith("FIELD: ")}))
p.stdin.close()
t = time.time()
rc = p.wait(10)
print(json.dumps({"t": "eof", "ok": rc == 0 and time.time() - t < 5}))
EOF
verdict() { grep -q "\"t\": \"$1\", \"ok\": true" "$TMP/raw.out" && ok "$2" || not_ok "$2" "$(cat "$TMP/raw.out")"; }
timeout 60 python3 "$TMP/raw.py" "$GV" mcp --as proj:raw --data-dir "$TMP/A" >"$TMP/raw.out" 2>"$TMP/raw.err"
verdict init "raw: initialize answers the client's version"
verdict notjson "raw: a line that is not JSON is -32700 with id null"
verdict unknown "raw: an unknown method is -32601 with its id"
verdict noid "raw: a request without an id (a notification) gets no answer"
verdict batch "raw: a batch is -32600 with id null"
verdict big "raw: a line over 2 MiB is -32600 with id null, and the next line is served"
verdict schema "raw: an argument outside the schema is isError FIELD"
verdict eof "raw: stdin closed: exit 0 within 5 s"

# ---- a client that leaves mid-call ----
body="midcall-$RANDOM$RANDOM"
"$GV" send --as other:slow --data-dir "$TMP/B" proj:nobody-reads "register" >/dev/null 2>&1
until_seen() { for _ in $(seq 1 75); do "$GV" agents --data-dir "$TMP/A" --json | grep -qF "\"$1@" && return 0; sleep 0.2; done; return 1; }
until_seen other:slow || not_ok "node A sees other:slow"
start_ms=$(date +%s%N)
{
  printf '%s\n' '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x"}}}'
  sleep 1
  printf '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"relay_send","arguments":{"to":"other:slow","message":"%s","wait":"read","timeout_ms":600000}}}\n' "$body"
  sleep 1
} | timeout 20 "$GV" mcp --as proj:leaver --data-dir "$TMP/A" >"$TMP/leaver.out" 2>"$TMP/leaver.err"
rc=$?
secs=$((($(date +%s%N) - start_ms) / 1000000000))
[ $rc = 0 ] && [ $secs -lt 6 ] && ok "a client leaving mid-call (wait:read): the server exits 0 at once" ||
  not_ok "a client leaving mid-call (wait:read): the server exits 0 at once" "exit $rc after ${secs}s: $(cat "$TMP/leaver.err")"
id=""
for _ in $(seq 1 50); do
  id=$("$GV" inbox --as other:slow --peek --data-dir "$TMP/B" --json 2>/dev/null |
    python3 -c "import json,sys; m=[json.loads(l) for l in sys.stdin if l.strip()]; print(next((x['id'] for x in m if x['body']=='$body'),''))" 2>/dev/null)
  [ -n "$id" ] && break
  sleep 0.2
done
[ -n "$id" ] && "$GV" trace "$id" --data-dir "$TMP/A" | grep -q accepted &&
  ok "its message was accepted and reached the other node (grapevine trace)" ||
  not_ok "its message was accepted and reached the other node (grapevine trace)" "id '$id'"

# ---- stdin ends before the connection is up: the held send still goes ----
# Exactly a client that pipes its lines and leaves: the send is held (the
# connection is not up yet) when stdin ends.
body="piped-$RANDOM$RANDOM"
printf '%s\n{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"relay_send","arguments":{"to":"other:slow","message":"%s"}}}\n' \
  '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x"}}}' "$body" |
  timeout 20 "$GV" mcp --as proj:alice --data-dir "$TMP/A" >"$TMP/pipe.out" 2>"$TMP/pipe.err"
rc=$?
[ $rc = 0 ] && ok "initialize and relay_send piped, stdin closed at once: exit 0" ||
  not_ok "initialize and relay_send piped, stdin closed at once: exit 0" "exit $rc: $(cat "$TMP/pipe.err")"
seen=""
for _ in $(seq 1 50); do
  "$GV" inbox --as other:slow --peek --data-dir "$TMP/B" --json 2>/dev/null | grep -qF "\"$body\"" && { seen=1; break; }
  sleep 0.2
done
[ -n "$seen" ] && ok "the held relay_send was sent: grapevine inbox --peek on the recipient shows it" ||
  not_ok "the held relay_send was sent: grapevine inbox --peek on the recipient shows it" "$(cat "$TMP/pipe.out" "$TMP/pipe.err")"

mkdir -p "$TMP/none"
printf '%s\n%s\n' '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x"}}}' \
  '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"relay_agents","arguments":{}}}' |
  timeout 20 "$GV" mcp --as proj:alice --data-dir "$TMP/none" >"$TMP/none.out" 2>"$TMP/none.err"
rc=$?
[ $rc = 0 ] && grep -q '"id":1,"result":{"content":\[{"type":"text","text":"NODE_DOWN: ' "$TMP/none.out" &&
  ok "no node, stdin closed with a call held: its NODE_DOWN answer is written, exit 0" ||
  not_ok "no node, stdin closed with a call held: its NODE_DOWN answer is written, exit 0" "exit $rc: $(cat "$TMP/none.out" "$TMP/none.err")"

# ---- a client that writes before it reads ----
# burst.py N IDLEN CMD...: a writer thread sends N pings (ids IDLEN bytes)
# and closes stdin, reading nothing meanwhile; the main thread notes how
# many bytes went in before the writer stalled (2 s without progress),
# then reads every answer. One JSON verdict line.
cat >"$TMP/burst.py" <<'PY'
import json, os, subprocess, sys, threading, time
n, idlen = int(sys.argv[1]), int(sys.argv[2])
p = subprocess.Popen(sys.argv[3:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
data = b"".join((json.dumps({"jsonrpc": "2.0", "id": "%0*d" % (idlen, i), "method": "ping"}) + "\n").encode() for i in range(n))
done = [0]
def writer():
    fd, mv = p.stdin.fileno(), memoryview(data)
    try:
        while done[0] < len(data):
            done[0] += os.write(fd, mv[done[0]:done[0] + 65536])
        p.stdin.close()
    except OSError:
        pass
t = threading.Thread(target=writer, daemon=True)
t.start()
last, still, end = -1, time.time(), time.time() + 30
while time.time() < end and done[0] < len(data):
    if done[0] != last: last, still = done[0], time.time()
    elif time.time() - still > 2: break
    time.sleep(0.1)
stalled = done[0] if done[0] < len(data) else None
got, buf, end = 0, b"", time.time() + 90
good = True
while got < n and time.time() < end:
    d = p.stdout.read1(1 << 20)
    if not d: break
    buf += d
    *lines, buf = buf.split(b"\n")
    for l in lines:
        a = json.loads(l)
        good = good and a == {"jsonrpc": "2.0", "id": "%0*d" % (idlen, got), "result": {}}
        got += 1
try: rc = p.wait(10)
except subprocess.TimeoutExpired: p.kill(); rc = "killed"
print(json.dumps({"answers": got, "in_order": good, "stalled_at": stalled, "written": done[0], "total": len(data), "rc": rc}))
PY
timeout 150 python3 "$TMP/burst.py" 2000 200 "$GV" mcp --as proj:burst --data-dir "$TMP/A" >"$TMP/burst.out" 2>"$TMP/burst.err"
python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); assert v["stalled_at"] is None and v["answers"] == 2000 and v["in_order"] and v["rc"] == 0, v' "$TMP/burst.out" 2>/dev/null &&
  ok "2,000 pings written before any read (480 kB each way), stdin then closed: 2,000 answers in order, exit 0" ||
  not_ok "2,000 pings written before any read (480 kB each way), stdin then closed: 2,000 answers in order, exit 0" "$(cat "$TMP/burst.out" "$TMP/burst.err")"
timeout 150 python3 "$TMP/burst.py" 4000 10000 "$GV" mcp --as proj:burst --data-dir "$TMP/A" >"$TMP/burst.out" 2>"$TMP/burst.err"
python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))
assert v["stalled_at"] is not None and 8 << 20 < v["stalled_at"] < 24 << 20, v
assert v["answers"] == 4000 and v["in_order"] and v["rc"] == 0, v' "$TMP/burst.out" 2>/dev/null &&
  ok "40 MB of pings and no reader: stdin stops being read past the 16 MiB queue, then all 4,000 are answered" ||
  not_ok "40 MB of pings and no reader: stdin stops being read past the 16 MiB queue, then all 4,000 are answered" "$(cat "$TMP/burst.out" "$TMP/burst.err")"

# ---- the node down, then up ----
cat >"$TMP/down.py" <<'EOF'
import json, subprocess, sys, time, select, os
p = subprocess.Popen(sys.argv[2:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
def call(i, body):
    p.stdin.write((json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "relay_agents", "arguments": {}}}) + "\n").encode()); p.stdin.flush()
    l = p.stdout.readline()
    return json.loads(l)["result"]
p.stdin.write(b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"x"}}}\n'); p.stdin.flush()
p.stdout.readline()
r = call(1, None)
print("down", r["isError"] and r["content"][0]["text"].startswith("NODE_DOWN: "), r["content"][0]["text"])
sys.stdout.flush()
open(sys.argv[1], "w").close()  # the test starts the node now
ok = False
for i in range(60):
    r = call(2 + i, None)
    if not r["isError"]: ok = True; break
    time.sleep(0.5)
print("up", ok, p.poll() is None)
p.stdin.close(); p.wait(10)
EOF
mkdir -p "$TMP/C"
"$GV" keygen --data-dir "$TMP/C" >/dev/null 2>&1
"$GV" team join "$(cat "$TMP"/A/team-*.key)" --data-dir "$TMP/C" >/dev/null
timeout 60 python3 "$TMP/down.py" "$TMP/go" "$GV" mcp --as proj:down --data-dir "$TMP/C" >"$TMP/down.out" 2>"$TMP/down.err" &
dpy=$!
for _ in $(seq 1 50); do [ -e "$TMP/go" ] && break; sleep 0.2; done
start C --peer "127.0.0.1:$BASE" || not_ok "start C"
wait $dpy
grep -q '^down True' "$TMP/down.out" && ok "node down: a tool call is isError NODE_DOWN" ||
  not_ok "node down: a tool call is isError NODE_DOWN" "$(cat "$TMP/down.out")"
grep -q '^up True True' "$TMP/down.out" && ok "the server stays up and works once the node starts" ||
  not_ok "the server stays up and works once the node starts" "$(cat "$TMP/down.out" "$TMP/down.err" | tail -5)"
finish
