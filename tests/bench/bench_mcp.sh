#!/usr/bin/env bash
# The MCP server's overhead (issue 10 §1): tool-call round trips per second
# through `grapevine mcp` (relay_inbox, a peek of limit 1) beside the anchor
# measured in the same run by the same driver: the same relay request
# ({"cmd":"inbox","peek":true,"limit":1}) sent straight to relay.sock. Two
# modes each: one at a time (send, wait, repeat) and pipelined (all sent,
# then all read). Prints both and the ratio; never fails for being slow.
#
#   tests/bench/bench_mcp.sh       (make bench runs it; MCP_BENCH_COUNT=N)
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
GV=$PWD/$BUILD/grapevine
N=${MCP_BENCH_COUNT:-5000}
TMP=$(mktemp -d /tmp/gv-bench-mcp-XXXXXX)
node_pid=
cleanup() {
  [ -n "$node_pid" ] && kill -TERM "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
"$GV" keygen --data-dir "$TMP/n" >/dev/null 2>&1
"$GV" team create --data-dir "$TMP/n" >/dev/null 2>&1
"$GV" node --data-dir "$TMP/n" >"$TMP/node.log" 2>&1 &
node_pid=$!
for _ in $(seq 1 100); do [ -S "$TMP/n/relay.sock" ] && break; sleep 0.1; done
[ -S "$TMP/n/relay.sock" ] || { echo "bench_mcp: the node did not start"; tail -5 "$TMP/node.log"; exit 1; }

python3 - "$GV" "$TMP/n" "$N" <<'PY'
import json, socket, subprocess, sys, time
gv, d, n = sys.argv[1], sys.argv[2], int(sys.argv[3])

class Lines:
    """one JSON object a line over a file-like pair"""
    def __init__(self, w, r): self.w, self.r = w, r
    def send(self, objs):
        self.w.write(b"".join((json.dumps(o) + "\n").encode() for o in objs)); self.w.flush()
    def recv(self):
        return json.loads(self.r.readline())

def mcp():
    p = subprocess.Popen([gv, "mcp", "--as", "bench:mcp", "--data-dir", d],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    c = Lines(p.stdin, p.stdout)
    c.send([{"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench"}}}])
    c.recv()
    req = lambda i: {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                     "params": {"name": "relay_inbox", "arguments": {"limit": 1}}}
    for _ in range(100):  # until the relay connection is up
        c.send([req(0)])
        if not c.recv()["result"]["isError"]: break
        time.sleep(0.05)
    def check(a):
        assert not a["result"]["isError"], a
    return c, req, check, lambda: (p.stdin.close(), p.wait())

def sock():
    s = socket.socket(socket.AF_UNIX)
    s.connect(d + "/relay.sock")
    c = Lines(s.makefile("wb"), s.makefile("rb"))
    c.send([{"cmd": "hello", "as": "bench:sock"}])
    c.recv()
    req = lambda i: {"cmd": "inbox", "peek": True, "limit": 1, "req": str(i)}
    def check(a):
        assert a.get("ok") is True, a
    return c, req, check, s.close

def run(make, pipelined):
    c, req, check, close = make()
    t = time.perf_counter()
    if pipelined:
        for k in range(0, n, 500):
            c.send([req(i) for i in range(k, min(n, k + 500))])
            for _ in range(k, min(n, k + 500)): check(c.recv())
    else:
        for i in range(n):
            c.send([req(i)]); check(c.recv())
    rate = n / (time.perf_counter() - t)
    close()
    return rate

print(f"bench_mcp: {n} calls of relay_inbox (peek, limit 1) each; one node, python3 driver")
print(f"{'mode':<26}{'grapevine mcp':>16}{'relay.sock':>16}{'ratio':>8}")
for name, pip in (("one at a time", False), ("pipelined (500 in flight)", True)):
    a, b = run(mcp, pip), run(sock, pip)
    print(f"{name:<26}{a:>12.0f}/s  {b:>12.0f}/s  {a / b:>7.2f}")
PY
