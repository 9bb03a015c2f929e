"""Python `websockets` (Debian python3-websockets) client against
`duplex serve --echo`. Usage: python_client.py URL [--insecure]
[--broadcast N: N clients against `duplex serve --broadcast` instead]
Prints one line per check; exits 0 when all passed."""
import asyncio
import ssl
import sys

import websockets

URL = sys.argv[1]
INSECURE = "--insecure" in sys.argv
failed = 0


def check(ok, what):
    global failed
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failed += 1


def ssl_ctx():
    if not URL.startswith("wss:"):
        return None
    ctx = ssl.create_default_context()
    if INSECURE:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect():
    return websockets.connect(URL, ssl=ssl_ctx(), max_size=None, compression=None,
                              ping_interval=None)


def fill(n):
    return bytes(97 + i % 26 for i in range(n)) if n < 70000 else (b"abcdefghijklmnopqrstuvwxyz" * (n // 26 + 1))[:n]


async def pieces(items):
    for p in items:
        yield p


async def main():
    async with connect() as ws:
        for n in (0, 125, 126, 65535, 65536, 16 << 20):
            b = fill(n)
            await ws.send(b)
            got = await asyncio.wait_for(ws.recv(), 20)
            check(isinstance(got, bytes) and got == b, f"binary {n} B echoed")
            await ws.send(b.decode())
            got = await asyncio.wait_for(ws.recv(), 20)
            check(isinstance(got, str) and got == b.decode(), f"text {n} B echoed")
        # Fragmented messages: an async iterator sends one frame per piece.
        await ws.send(pieces(["frag-1 ", "frag-2 ", "frag-3"]))
        got = await asyncio.wait_for(ws.recv(), 10)
        check(got == "frag-1 frag-2 frag-3", "fragmented text reassembled")
        await ws.send(pieces([fill(70000), b"", fill(13)]))
        got = await asyncio.wait_for(ws.recv(), 10)
        check(isinstance(got, bytes) and len(got) == 70013, "fragmented binary reassembled")
        # Ping frame → pong with the same payload (websockets checks it).
        waiter = await ws.ping(b"are you there")
        await asyncio.wait_for(waiter, 5)
        check(True, "ping answered with a pong")
        await ws.send("ping")
        got = await asyncio.wait_for(ws.recv(), 5)
        check(got == "pong", "application heartbeat ping -> pong")
        await ws.close(1000)
        check(ws.close_code == 1000, f"normal close echoed ({ws.close_code})")

    async with connect() as ws:
        await ws.close(3001, "user left")
        check(ws.close_code == 3001, f"close 3001 'user left' echoed (got {ws.close_code} '{ws.close_reason}')")

    # Abnormal close: the TCP connection is cut with no close frame.
    ws = await connect()
    await ws.send("half")
    await asyncio.wait_for(ws.recv(), 5)
    ws.transport.abort()
    await asyncio.sleep(0.1)
    async with connect() as ws:
        await ws.send("still alive?")
        got = await asyncio.wait_for(ws.recv(), 5)
        check(got == "still alive?", "server survives an aborted client")


async def broadcast(n):
    """`duplex serve --broadcast` (several threads): one client's message
    reaches every open client, whichever thread holds it."""
    clients = [await connect() for _ in range(n)]
    await clients[0].send("to everyone")
    got = [await asyncio.wait_for(c.recv(), 5) for c in clients]
    check(all(g == "to everyone" for g in got), f"text broadcast reached {sum(g == 'to everyone' for g in got)} of {n}")
    await clients[n - 1].send(b"\x00\x01\x02")
    got = [await asyncio.wait_for(c.recv(), 5) for c in clients]
    check(all(g == b"\x00\x01\x02" for g in got), "binary broadcast reached all")
    for c in clients:
        await c.close()


try:
    if "--broadcast" in sys.argv:
        asyncio.run(asyncio.wait_for(broadcast(int(sys.argv[sys.argv.index("--broadcast") + 1])), 60))
    else:
        asyncio.run(asyncio.wait_for(main(), 90))
except Exception as e:  # noqa: BLE001 - any failure is a test failure
    print(f"FAIL {type(e).__name__}: {e}")
    failed += 1
print("all checks passed" if not failed else f"{failed} checks failed")
sys.exit(1 if failed else 0)
