"""A scripted agent on a node's relay.sock (docs/RELAY.md §7), for
tests/integration/test_relay.sh. Every wait is bounded.

  relay_agent.py run SOCK AS [--resume TOKEN] REQ...
      hello as AS ("-": no hello), then each REQ (a JSON object) in turn;
      prints the hello answer and each answer, one JSON line each (pushed
      events are skipped). Exit 1 if hello was refused.
  relay_agent.py listen SOCK AS OUT SECONDS [ack] [read] [subscribe]
      hello, then writes every line the node sends to OUT for SECONDS (or
      until SIGTERM); acks (and marks read) each pushed message.
  relay_agent.py watch SOCK AS REQ SECONDS
      hello, subscribe, send REQ; prints the answer and then each state
      event of its id, until `read` or `failed` or SECONDS.
  relay_agent.py taken SOCK AS
      hello; a second hello as AS on another connection; a third that
      resumes the first's session. Prints the three answers.
  relay_agent.py bad SOCK AS
      malformed JSON, an unknown cmd, a message of 1 MiB + 1, then a line
      of 2 MiB + 1 on a fresh connection; prints `CASE ANSWER` per case and
      `toobig_closed 1|0`.
  relay_agent.py flood SOCK N
      N connections at once, each sends {"cmd":"agents"}; prints how many
      got an answer line within 60 s.
"""
import json, select, selectors, signal, socket, sys, time

def conn(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    return s

class Lines:
    def __init__(self, s):
        self.s, self.buf = s, b""
    def send(self, obj):
        data = obj if isinstance(obj, bytes) else (json.dumps(obj) + "\n").encode()
        self.s.sendall(data)
    def line(self, timeout=40.0):
        """The next line (bytes, no newline), or None at EOF / timeout."""
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.s], [], [], left)[0]:
                return None
            try:
                chunk = self.s.recv(65536)
            except OSError:
                return None
            if not chunk:
                return None
            self.buf += chunk
        l, self.buf = self.buf.split(b"\n", 1)
        return l
    def answer(self, timeout=40.0):
        """The next line that is not a pushed event, as a dict."""
        while True:
            l = self.line(timeout)
            if l is None:
                return None
            o = json.loads(l)
            if "event" not in o:
                return o

def hello(c, who, resume=None):
    req = {"cmd": "hello", "as": who}
    if resume:
        req["resume"] = resume
    c.send(req)
    return c.answer()

def run(args):
    path, who, rest = args[0], args[1], args[2:]
    resume = None
    if rest[:1] == ["--resume"]:
        resume, rest = rest[1], rest[2:]
    c = Lines(conn(path))
    if who != "-":
        a = hello(c, who, resume)
        print(json.dumps(a), flush=True)
        if not a or not a.get("ok"):
            sys.exit(1)
    for r in rest:
        c.send(json.loads(r))
        print(json.dumps(c.answer()), flush=True)

def listen(args):
    path, who, out, secs, flags = args[0], args[1], args[2], float(args[3]), args[4:]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    f = open(out, "a")
    c = Lines(conn(path))
    c.send({"cmd": "hello", "as": who})
    if "subscribe" in flags:
        c.send({"cmd": "subscribe"})
    end = time.monotonic() + secs
    while time.monotonic() < end:
        l = c.line(max(0.0, end - time.monotonic()))
        if l is None:
            break
        f.write(l.decode() + "\n")
        f.flush()
        o = json.loads(l)
        if o.get("event") == "message":
            if "ack" in flags:
                c.send({"cmd": "ack", "ids": [o["id"]]})
            if "read" in flags:
                c.send({"cmd": "read", "ids": [o["id"]]})

def watch(args):
    """hello, subscribe, one send; then the state events of its id."""
    path, who, req, secs = args[0], args[1], args[2], float(args[3])
    c = Lines(conn(path))
    hello(c, who)
    c.send({"cmd": "subscribe"})
    c.answer()
    c.send(json.loads(req))
    a, events = None, []
    end = time.monotonic() + secs
    while time.monotonic() < end:
        l = c.line(max(0.0, end - time.monotonic()))
        if l is None:
            break
        o = json.loads(l)
        if o.get("event") == "state":
            events.append(o)  # may come before the answer: kept
        elif a is None:
            a = o
            print(json.dumps(a), flush=True)
            if not a.get("ok"):
                break
        if a is not None:
            mine = [e for e in events if e["id"] == a["id"]]
            for e in mine:
                print(json.dumps(e), flush=True)
            events = []
            if any(e["state"] in ("read", "failed") for e in mine):
                break

def taken(args):
    path, who = args
    c1, c2, c3 = Lines(conn(path)), Lines(conn(path)), Lines(conn(path))
    a1 = hello(c1, who)
    print(json.dumps(a1))
    print(json.dumps(hello(c2, who)))
    print(json.dumps(hello(c3, who, a1.get("session"))))

def bad(args):
    path, who = args
    c = Lines(conn(path))
    hello(c, who)
    c.send(b"{\"cmd\": \"agents\",\n")
    print("malformed", json.dumps(c.answer()))
    c.send({"cmd": "frobnicate"})
    print("unknown_cmd", json.dumps(c.answer()))
    c.send({"cmd": "send", "to": "bob", "message": "a" * (1024 * 1024 + 1)})
    print("too_large", json.dumps(c.answer()))
    c.send({"cmd": "agents"})
    print("after", json.dumps(c.answer()))
    d = Lines(conn(path))
    try:
        d.send(b"{\"cmd\":\"agents\",\"x\":\"" + b"a" * (2 * 1024 * 1024 + 1) + b"\"}\n")
    except OSError:
        pass  # the node may close before it read everything
    print("oversized", json.dumps(d.answer(20)))
    print("toobig_closed", 1 if d.line(20) is None else 0)

def flood(args):
    """Counts connections whose first line is an answer ({"ok": ...})."""
    path, n = args[0], int(args[1])
    sel = selectors.DefaultSelector()
    bufs = {}
    for _ in range(n):
        s = conn(path)
        s.sendall(b'{"cmd":"agents"}\n')
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        bufs[s] = b""
    good = 0
    end = time.monotonic() + 60
    while bufs and time.monotonic() < end:
        for key, _ in sel.select(1.0):
            s = key.fileobj
            try:
                chunk = s.recv(65536)
            except OSError:
                chunk = b""
            bufs[s] += chunk
            if b"\n" in bufs[s] or not chunk:
                line = bufs.pop(s).split(b"\n")[0]
                try:
                    good += "ok" in json.loads(line)
                except ValueError:
                    pass
                sel.unregister(s)
                s.close()
    print(good)

{"run": run, "watch": watch, "listen": listen, "taken": taken, "bad": bad, "flood": flood}[sys.argv[1]](sys.argv[2:])
