"""permessage-deflate against Python `websockets` (Debian python3-websockets
10.x), both roles.

  deflate_python.py client URL
      For every combination of the four parameters the client can offer,
      connects to `duplex serve --echo`, checks the answer names
      permessage-deflate, sends a plan of messages and checks every echo, and
      counts the compressed frames received (RSV1): the server must have
      compressed. Prints one line per check; exits 0 when all passed.
  deflate_python.py raw PORT
      Plain sockets against `duplex serve --echo` (default deflate mode):
      offers split over two header lines and malformed or unacceptable
      offers, each declined cleanly (a 101 without the extension, and the
      connection still echoes), the first acceptable one taken.
  deflate_python.py badserver EXTENSIONS
      A server printing "listening PORT" that answers every upgrade with a
      101 carrying "Sec-WebSocket-Extensions: EXTENSIONS" (what a broken or
      hostile server could say); the client must fail the handshake.
  deflate_python.py server SNCT CNCT SMWB CMWB
      A server (its permessage-deflate options: 0/1 flags and window bits,
      0 for none) printing "listening PORT"; it drives an echoing client
      (`duplex connect --echo`) through the same plan, then closes with 1000
      "done", or 4000 and the first mismatch.
"""

import asyncio
import sys

import websockets
from websockets.extensions import permessage_deflate as pmd

failed = 0
compressed_in = 0

# Count the compressed frames this side receives.
_decode = pmd.PerMessageDeflate.decode


def _counting_decode(self, frame, *, max_size=None):
    global compressed_in
    if frame.rsv1:
        compressed_in += 1
    return _decode(self, frame, max_size=max_size)


pmd.PerMessageDeflate.decode = _counting_decode


def check(ok, what):
    global failed
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failed += 1


def plan():
    msgs = []
    for i in range(20):
        msgs.append(('{"id":%d,"user":"user-%d","text":"%s"}' % (i, i % 7, "hello chat " * 80))[:1024])
    msgs += ["", "héllo wörld ✓ 世界 🎉" * 40, b"", bytes((i * 7919) & 255 for i in range(50000)),
             "abc" * 300000, b"\x00" * 200000, ["frag-1 ", "y" * 3000, " frag-3"]]
    return msgs


async def pieces(items):
    for p in items:
        yield p


async def drive(ws):
    """Sends the plan to an echoing peer; returns None or the first mismatch."""
    for i, m in enumerate(plan()):
        await ws.send(pieces(m) if isinstance(m, list) else m)
        want = "".join(m) if isinstance(m, list) else m
        got = await asyncio.wait_for(ws.recv(), 30)
        if type(got) is not type(want) or got != want:
            return f"echo {i} differs"
    return None


async def client(url):
    combos = [
        dict(),
        dict(server_no_context_takeover=True),
        dict(client_no_context_takeover=True),
        dict(server_no_context_takeover=True, client_no_context_takeover=True),
        dict(client_max_window_bits=10),
        dict(server_max_window_bits=10),
        dict(server_max_window_bits=9, client_max_window_bits=9),
    ]
    global compressed_in
    for opts in combos:
        compressed_in = 0
        factory = pmd.ClientPerMessageDeflateFactory(**opts)
        try:
            async with websockets.connect(url, extensions=[factory], compression=None,
                                          max_size=None, ping_interval=None) as ws:
                ext = ws.response_headers.get("Sec-WebSocket-Extensions", "")
                check(ext.startswith("permessage-deflate"), f"{opts}: negotiated '{ext}'")
                err = await drive(ws)
                check(err is None, f"{opts}: every echo equal ({err or 'all'})")
                check(compressed_in >= 5, f"{opts}: {compressed_in} compressed messages received")
        except Exception as e:  # a refused handshake fails the combination
            check(False, f"{opts}: {type(e).__name__}: {e}")


async def server(snct, cnct, smwb, cmwb):
    factory = pmd.ServerPerMessageDeflateFactory(
        server_no_context_takeover=bool(snct), client_no_context_takeover=bool(cnct),
        server_max_window_bits=smwb or None, client_max_window_bits=cmwb or None)

    async def handler(ws, path=None):
        global compressed_in
        compressed_in = 0
        if "permessage-deflate" not in ws.response_headers.get("Sec-WebSocket-Extensions", ""):
            await ws.close(4000, "permessage-deflate not negotiated")
            return
        err = await drive(ws)
        if err is None and compressed_in < 5:
            err = f"only {compressed_in} compressed messages from the client"
        await ws.close(4000 if err else 1000, err or "done")

    async with websockets.serve(handler, "127.0.0.1", 0, extensions=[factory], compression=None,
                                max_size=None, ping_interval=None) as srv:
        port = next(iter(srv.sockets)).getsockname()[1]
        print(f"listening {port}", flush=True)
        await asyncio.Future()


def raw(port):
    import base64
    import hashlib
    import socket

    key = "dGhlIHNhbXBsZSBub25jZQ=="

    def upgrade(ext_lines):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        req = ("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
        for line in ext_lines:
            req += f"Sec-WebSocket-Extensions: {line}\r\n"
        s.sendall((req + "\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            b = s.recv(1)
            if not b:
                break
            head += b
        return s, head.decode("latin-1")

    def echo_ok(s, compressed_hello=None):
        # "Hello" masked with a zero key; compressed (RSV1) when given.
        body = compressed_hello or b"Hello"
        first = 0xC1 if compressed_hello else 0x81
        s.sendall(bytes([first, 0x80 | len(body), 0, 0, 0, 0]) + body)
        got = b""
        while len(got) < 7:
            b = s.recv(64)
            if not b:
                break
            got += b
        return got[:7] == b"\x81\x05Hello"

    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                                           .encode()).digest()).decode()
    hello_z = bytes([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00])
    for lines in (["permessage-deflate; server_max_window_bits=7"],
                  ["permessage-deflate; foo=bar"],
                  ["permessage-deflate; client_no_context_takeover; client_no_context_takeover"],
                  ["permessage-deflate;; x"],
                  ["x-webkit-deflate-frame"]):
        s, head = upgrade(lines)
        check(head.startswith("HTTP/1.1 101") and accept in head
              and "Sec-WebSocket-Extensions" not in head, f"declined cleanly: {lines}")
        check(echo_ok(s), f"... and the connection still works: {lines}")
        s.close()
    s, head = upgrade(["x-foo, permessage-deflate; server_max_window_bits=16",
                       "permessage-deflate; server_max_window_bits=10, permessage-deflate"])
    want = ("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
            "client_no_context_takeover; server_max_window_bits=10\r\n")
    check(head.startswith("HTTP/1.1 101") and want in head,
          "the first acceptable offer, on the second header line, is taken")
    check(echo_ok(s, hello_z), "... and a compressed 'Hello' (RFC 7692 7.2.3.1) is echoed")
    s.close()
    # RSV1 on a connection without the extension: 1002.
    s, head = upgrade([])
    s.sendall(bytes([0xC1, 0x80 | len(hello_z), 0, 0, 0, 0]) + hello_z)
    got = s.recv(16)
    check(got[:4] == b"\x88\x02\x03\xea", f"RSV1 without the extension: close 1002 ({got.hex()})")
    s.close()


async def badserver(ext):
    import base64
    import hashlib

    async def handle(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        key = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n")
               if l.lower().startswith(b"sec-websocket-key:")][0]
        acc = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                               .digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc +
                     b"\r\nSec-WebSocket-Extensions: " + ext.encode() + b"\r\n\r\n")
        await writer.drain()
        await reader.read()
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(f"listening {srv.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Future()


if __name__ == "__main__":
    if sys.argv[1] == "raw":
        raw(int(sys.argv[2]))
        sys.exit(1 if failed else 0)
    if sys.argv[1] == "badserver":
        asyncio.run(badserver(sys.argv[2]))
    if sys.argv[1] == "client":
        asyncio.run(client(sys.argv[2]))
        sys.exit(1 if failed else 0)
    asyncio.run(server(*(int(a) for a in sys.argv[2:6])))
