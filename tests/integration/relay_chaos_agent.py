#!/usr/bin/env python3
"""Agents on relay.sock (docs/RELAY.md section 7) for the relay's end-to-end
tests (test_relay_chaos.sh, test_relay_partition.sh). Each one survives its
node's kill -9: it reconnects and carries on. Every loop is bounded in time.

  relay_chaos_agent.py send SOCK AS TO FIRST LAST ACCEPTED DEADLINE_S
      Sends bodies "AS #k" for k = FIRST..LAST, one at a time, each with the
      idempotency key "k<k>", so a resend of a message whose answer was lost
      is the same message (section 5.1). Appends "k id" to ACCEPTED for every
      `accepted` answer. A lost connection, or an answer that does not come
      within 20 s, means reconnect and send k again. Exits 0 once LAST is
      accepted, 1 at the deadline.

  relay_chaos_agent.py recv SOCK AS LOG DEADLINE_S
      Takes every pushed message and acks it, until SIGTERM or the deadline.
      Writes to LOG, in the order things happened:
        "M id from seq skipped body"   a message pushed to it
        "A id"                         the node answered ok to an ack of id
      The count of distinct ids seen is kept in LOG.count (rewritten).

  relay_chaos_agent.py check ACCEPTED... -- LOG
      Prints the counts and exits 1 unless every accepted message was
      delivered exactly once, in seq order per pair (see check()).
"""
import json
import os
import select
import signal
import socket
import sys
import time

ANSWER_TIMEOUT = 20.0


class Conn:
    """One connection to relay.sock: lines out, lines in."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(2.0)
        self.s.connect(path)
        self.s.setblocking(False)
        self.buf = b""

    def send(self, obj):
        data = (json.dumps(obj) + "\n").encode()
        self.s.setblocking(True)
        self.s.settimeout(5.0)
        try:
            self.s.sendall(data)
        finally:
            self.s.setblocking(False)

    def lines(self, timeout):
        """The complete lines that arrive within timeout; EOFError at EOF."""
        r, _, _ = select.select([self.s], [], [], timeout)
        if not r:
            return []
        try:
            chunk = self.s.recv(1 << 20)
        except BlockingIOError:
            return []
        if not chunk:
            raise EOFError
        self.buf += chunk
        *done, self.buf = self.buf.split(b"\n")
        return [json.loads(x) for x in done if x.strip()]

    def close(self):
        self.s.close()


def connect(path, agent, deadline):
    """A registered connection, or None at the deadline."""
    while time.monotonic() < deadline:
        c = None
        try:
            c = Conn(path)
            c.send({"cmd": "hello", "as": agent, "req": "hello"})
            end = time.monotonic() + ANSWER_TIMEOUT
            while time.monotonic() < end:
                got = c.lines(0.5)
                for i, m in enumerate(got):
                    if m.get("req") != "hello":
                        continue
                    if m.get("ok"):
                        # Pushes may follow the answer in the same read:
                        # they are the caller's, not to be dropped.
                        return c, got[i + 1:]
                    raise OSError(m.get("error"))
            raise OSError("hello unanswered")
        except (OSError, EOFError, ValueError):
            if c is not None:
                c.close()
            time.sleep(0.2)
    return None, []


def cmd_send(path, agent, to, first, last, accepted, limit_s):
    deadline = time.monotonic() + limit_s
    out = open(accepted, "a")
    k, c, errors = first, None, {}
    while k <= last:
        if time.monotonic() >= deadline:
            print(f"{agent}: deadline at k={k}; errors {errors}", file=sys.stderr)
            return 1
        if c is None:
            c, _ = connect(path, agent, deadline)
            if c is None:
                continue
        req = f"s{k}"
        try:
            c.send({"cmd": "send", "to": to, "message": f"{agent} #{k}",
                    "key": f"k{k}", "req": req})
            end, ans = time.monotonic() + ANSWER_TIMEOUT, None
            while ans is None and time.monotonic() < end:
                for m in c.lines(0.5):
                    if m.get("req") == req:
                        ans = m
            if ans is None:
                raise OSError("send unanswered")
        except (OSError, EOFError, ValueError):
            c.close()
            c = None
            continue
        # A resend of a key the node accepted before its answer was lost
        # (a crash) is the same message: its answer gives the state it
        # reached since (stored, delivered, ...), and it counts as accepted.
        if ans.get("ok") and ans.get("id") and ans.get("state") != "failed":
            out.write(f"{k} {ans['id']}\n")
            out.flush()
            k += 1
        else:  # not accepted (e.g. the directory not loaded yet): again
            e = ans.get("error", "?")
            errors[e] = errors.get(e, 0) + 1
            time.sleep(0.1)
    if errors:
        print(f"{agent}: answers other than accepted: {errors}", file=sys.stderr)
    return 0


def cmd_recv(path, agent, log, limit_s):
    deadline = time.monotonic() + limit_s
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    out = open(log, "a")
    seen, c, n_ack = set(), None, 0
    acks = {}  # req -> ids of an ack not answered yet
    while not stop and time.monotonic() < deadline:
        early = []
        if c is None:
            acks = {}
            c, early = connect(path, agent, deadline)
            if c is None:
                break
        try:
            got = []
            for m in early + c.lines(0.2):
                if m.get("event") == "message":
                    out.write("M %s %s %d %s %s\n" % (
                        m["id"], m["from"], m["seq"],
                        ",".join(str(s) for s in m.get("skipped", [])) or "-",
                        m["body"].replace(" ", "_")))
                    seen.add(m["id"])
                    got.append(m["id"])
                elif str(m.get("req", "")).startswith("a") and m["req"] in acks:
                    ids = acks.pop(m["req"])
                    if m.get("ok"):
                        out.write("".join(f"A {i}\n" for i in ids))
            out.flush()
            for i in range(0, len(got), 1000):
                n_ack += 1
                acks[f"a{n_ack}"] = got[i:i + 1000]
                c.send({"cmd": "ack", "ids": got[i:i + 1000],
                        "req": f"a{n_ack}"})
            if got:
                with open(log + ".tmp", "w") as f:
                    f.write(f"{len(seen)}\n")
                os.replace(log + ".tmp", log + ".count")
        except (OSError, EOFError, ValueError):
            c.close()
            c = None
    return 0


def check(accepted_files, log):
    """Every accepted id delivered once, per pair in seq order, and in the
    order the sender sent (it sends one at a time, so its order is the
    seq order). A message pushed again before its ack was answered is a
    replay the protocol allows (section 5.4), not a duplicate."""
    accepted = {}  # id -> (file, k)
    for f in accepted_files:
        for line in open(f):
            k, i = line.split()
            if accepted.get(i, (f, int(k))) != (f, int(k)):
                print(f"# id {i} accepted for two messages")
            accepted[i] = (f, int(k))
    delivered, acked = {}, set()
    dup = replay = ooo = skipped = unexpected = 0
    last = {}  # pair -> (seq, k)
    for line in open(log):
        p = line.split()
        if p[0] == "A":
            acked.add(p[1])
            continue
        i, frm, seq, skip, body = p[1], p[2], int(p[3]), p[4], p[5]
        if i in delivered:
            if i in acked:
                dup += 1
                print(f"# duplicate after ack: {i} seq {seq} {body}")
            else:
                replay += 1
            continue
        delivered[i] = seq
        if skip != "-":
            skipped += 1
            print(f"# skipped {skip} before {i} seq {seq}")
        if i not in accepted:
            unexpected += 1
        k = int(body.rsplit("#", 1)[1])
        pair = frm.split("@")[0]
        ps, pk = last.get(pair, (0, 0))
        if seq != ps + 1 or k <= pk:
            ooo += 1
            print(f"# out of order: {pair} seq {seq} (k {k}) after seq {ps} (k {pk})")
        last[pair] = (seq, k)
    lost = [i for i in accepted if i not in delivered]
    for i in lost[:10]:
        print(f"# lost: {i} {accepted[i]}")
    print(f"# accepted {len(accepted)}, delivered {len(delivered)}, "
          f"lost {len(lost)}, duplicates {dup}, out-of-order {ooo}, "
          f"skipped {skipped}, unexpected {unexpected}, "
          f"replays of unacked hand-overs {replay}")
    good = not lost and not dup and not ooo and not skipped and not unexpected
    return 0 if good and accepted else 1


def main(a):
    if a[0] == "send":
        return cmd_send(a[1], a[2], a[3], int(a[4]), int(a[5]), a[6], float(a[7]))
    if a[0] == "recv":
        return cmd_recv(a[1], a[2], a[3], float(a[4]))
    if a[0] == "check":
        sep = a.index("--")
        return check(a[1:sep], a[sep + 1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
