"""Black-hole dial-backs for the tracker's hostile scripts
(test_tracker_blackhole.sh, test_tracker_pool.sh).

  blackholes.py holes NET COUNT SECS
      One listener on NET.1 .. NET.COUNT (NET: "127.0.2"), all on one port,
      each with a backlog of 1 and never accepting, so a dial-back to any of
      them hangs for the tracker's whole dial timeout. Prints the port, then
      holds them SECS seconds.

  blackholes.py register PORT HOLE NET FIRST LAST PER WAIT [GO]
      PER registers from each of NET.FIRST .. NET.LAST to the tracker on
      127.0.0.1:PORT, each naming port HOLE, each under a throw-away key
      (libsodium through ctypes), all sent at once, each on its own
      connection. Creates the file GO (if given) once all are sent. Prints
      the answers' status codes, space-separated, in the order they came,
      after WAIT seconds at most ("closed" for a connection closed without
      an answer, "unanswered" for the rest).
"""
import ctypes
import os
import select
import socket
import sys
import time


def holes(net, count, secs):
    for _ in range(20):  # a port free on every address
        held = []
        try:
            port = 0
            for a in range(1, count + 1):
                h = socket.socket()
                held.append(h)
                h.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                h.bind(("%s.%d" % (net, a), port))
                port = h.getsockname()[1]
                h.listen(1)
            break
        except OSError:
            for h in held:
                h.close()
    print(port, flush=True)
    time.sleep(secs)


def register(port, hole, net, first, last, per, wait, go=None):
    na = ctypes.CDLL("libsodium.so.23")
    assert na.sodium_init() >= 0

    def signed(body):
        pk, sk = ctypes.create_string_buffer(32), ctypes.create_string_buffer(64)
        na.crypto_sign_keypair(pk, sk)
        body = body.replace(b"ID", pk.raw.hex().encode())
        h = ctypes.create_string_buffer(32)
        na.crypto_generichash(h, 32, body, ctypes.c_ulonglong(len(body)), None, 0)
        msg = b"grapevine/1 tracker POST /api/bootstrap/register\n" + h.raw
        sig = ctypes.create_string_buffer(64)
        na.crypto_sign_detached(sig, None, msg, ctypes.c_ulonglong(len(msg)), sk)
        return (b"POST /api/bootstrap/register HTTP/1.1\r\nHost: t\r\n"
                b"Content-Type: application/json\r\nX-Grapevine-Sig: " +
                sig.raw.hex().encode() + b"\r\nContent-Length: " +
                str(len(body)).encode() + b"\r\n\r\n" + body)

    socks = []
    for a in range(first, last + 1):
        for _ in range(per):
            body = b'{"id":"ID","port":%d,"repos":[],"caps":[],"ts":%d,"nonce":"%s"}' % (
                hole, int(time.time() * 1000), os.urandom(16).hex().encode())
            s = socket.socket()
            s.bind(("%s.%d" % (net, a), 0))
            s.connect(("127.0.0.1", port))
            s.sendall(signed(body))
            socks.append(s)
    if go:
        open(go, "w").close()
    out, bufs = [], {s: b"" for s in socks}
    deadline = time.time() + wait
    while bufs and time.time() < deadline:
        r, _, _ = select.select(list(bufs), [], [], 0.5)
        for s in r:
            c = s.recv(4096)
            bufs[s] += c
            if not c or b"\r\n\r\n" in bufs[s]:
                out.append(bufs[s].split(b" ", 2)[1].decode() if bufs[s] else "closed")
                del bufs[s]
                s.close()
    out += ["unanswered"] * len(bufs)
    print(" ".join(out), flush=True)


if __name__ == "__main__":
    a = sys.argv
    if len(a) == 5 and a[1] == "holes":
        holes(a[2], int(a[3]), float(a[4]))
    elif len(a) in (9, 10) and a[1] == "register":
        register(int(a[2]), int(a[3]), a[4], int(a[5]), int(a[6]), int(a[7]),
                 float(a[8]), a[9] if len(a) == 10 else None)
    else:
        sys.exit(__doc__)
