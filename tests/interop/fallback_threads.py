"""HTTP sessions against `duplex serve --threads N` (tests/interop/test_fallback_threads.sh).

usage: fallback_threads.py http|https PORT SESSIONS MESSAGES

Opens SESSIONS sessions and sends MESSAGES text messages on each, every
request (open, up POST, poll) on a connection of its own, the way a client
behind a proxy that does not keep connections comes: the kernel gives each
connection to whichever thread accepts it first, so most requests land on a
thread that does not own the session and must be handed over. Checks that
every echo comes back, in order, exactly once, with the offsets the
protocol promises (docs/fallback.md), then closes each session with 1000
and checks the server's close frame and that the SID is then unknown (404).
Prints one line per failure and exits 1 on any.
"""
import http.client
import json
import os
import ssl
import struct
import sys

scheme, port, nsess, nmsg = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
failures = []


def fail(why):
    failures.append(why)
    print("FAIL", why)


def request(method, target, body=b"", headers=None):
    """One request on a new connection: (status, headers, body)."""
    if scheme == "https":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
    else:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    h = {"Connection": "close"}
    h.update(headers or {})
    c.request(method, target, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    out = (r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    c.close()
    return out


def frame(op, payload):
    """A masked client frame."""
    key = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | op])
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def frames(buf):
    """Server frames in buf: [(opcode, payload)], and the rest."""
    out = []
    while len(buf) >= 2:
        n, hl = buf[1] & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                break
            n, hl = struct.unpack(">H", buf[2:4])[0], 4
        elif n == 127:
            if len(buf) < 10:
                break
            n, hl = struct.unpack(">Q", buf[2:10])[0], 10
        if len(buf) < hl + n:
            break
        out.append((buf[0] & 0x0F, buf[hl : hl + n]))
        buf = buf[hl + n :]
    return out, buf


class Session:
    def __init__(self, i):
        st, _, body = request("POST", "/", headers={"X-Duplex-Session": "1"})
        if st != 200:
            raise SystemExit(f"FAIL open {i}: {st} {body[:80]!r}")
        self.sid = json.loads(body)["sid"]
        self.up = 0  # up bytes sent
        self.recv = 0  # down bytes received (and acknowledged at the next request)
        self.pend = b""

    def send(self, op, payload):
        f = frame(op, payload)
        st, h, body = request("POST", f"/.duplex/{self.sid}/up?seq={self.up}&ack={self.recv}", f)
        if st != 204:
            fail(f"{self.sid[:8]} up at {self.up}: {st} {body[:80]!r}")
            return
        self.up += len(f)
        if h.get("x-duplex-seq") != str(self.up):
            fail(f"{self.sid[:8]} up: X-Duplex-Seq {h.get('x-duplex-seq')} != {self.up}")

    def poll(self):
        st, h, body = request("GET", f"/.duplex/{self.sid}/down?ack={self.recv}&mode=poll")
        if st != 200:
            return st, []
        if h.get("x-duplex-offset") != str(self.recv):
            fail(f"{self.sid[:8]} poll: X-Duplex-Offset {h.get('x-duplex-offset')} != {self.recv}")
        self.recv += len(body)
        got, self.pend = frames(self.pend + body)
        return st, got


sessions = [Session(i) for i in range(nsess)]
owners = {s.sid[:2] for s in sessions}
for k in range(nmsg):
    for s in sessions:
        s.send(0x1, f"{s.sid[:8]} #{k}".encode())
for s in sessions:
    want = [f"{s.sid[:8]} #{k}".encode() for k in range(nmsg)]
    got = []
    for _ in range(nmsg + 2):
        if len(got) >= len(want):
            break
        st, fr = s.poll()
        if st != 200:
            fail(f"{s.sid[:8]} poll: {st}")
            break
        got += [p for op, p in fr if op == 0x1]
    if got != want:
        fail(f"{s.sid[:8]}: echoes {[g.decode() for g in got][:5]}... ({len(got)}) != {len(want)} in order")
for s in sessions:
    s.send(0x8, struct.pack(">H", 1000))
    st, fr = s.poll()
    if st != 200 or not fr or fr[-1][0] != 0x8 or fr[-1][1][:2] != struct.pack(">H", 1000):
        fail(f"{s.sid[:8]}: no close frame 1000 answered ({st}, {fr[-1:] if fr else fr})")
    st, _, _ = request("GET", f"/.duplex/{s.sid}/down?ack={s.recv}&mode=poll")
    if st != 404:
        fail(f"{s.sid[:8]}: after the close the SID answers {st}, not 404")
if failures:
    sys.exit(1)
print(f"ok   {scheme}: {nsess} sessions (owned by {len(owners)} threads) x {nmsg} messages, "
      "each request on its own connection: every echo once and in order, closed with 1000, then 404")
