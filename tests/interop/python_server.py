"""A Python `websockets` server for testing `duplex connect` against it.

Usage: /usr/bin/python3 python_server.py [--tls CERT KEY]
Prints "listening PORT" once it listens on 127.0.0.1 (a free port).
It serves the same paths as node_server.mjs (see there): /echo with its
text commands (frag, ping-me, close-3001, close-1000, terminate),
/protocol, /headers, /reject and /driver (checks an echoing client).
Written for Debian's python3-websockets (10.x, the asyncio server API).
"""

import asyncio
import http
import ssl
import sys

import websockets


def fill(n, seed):
    return bytes(((i * 31 + seed) & 255) for i in range(n))


async def driver(ws):
    plan = [
        "hello",
        "",
        "héllo wörld ✓",
        b"",
        fill(125, 1),
        fill(126, 2),
        fill(65536, 3),
        "x" * 70000,
        bytes(range(256)) * 4096,  # 1 MiB
    ]
    for i, item in enumerate(plan):
        await ws.send(item)
        echo = await ws.recv()
        if type(echo) is not type(item) or echo != item:
            await ws.close(4000, f"mismatch at message {i}")
            return
    # A fragmented message: the echo must come back whole.
    await ws.send(["frag", "men", "ted"])
    echo = await ws.recv()
    if echo != "fragmented":
        await ws.close(4000, "mismatch at the fragmented message")
        return
    await ws.close(1000, "done")


async def ping_me(ws):
    waiter = await ws.ping(b"abc")
    await waiter
    await ws.send("pong:abc")


async def later(ws):
    # Answered 300 ms later: after the EOF of a client that sent it last.
    await asyncio.sleep(0.3)
    try:
        await ws.send("late")
    except websockets.ConnectionClosed:
        pass


async def handler(ws, path=None):
    path = ws.path
    if path.startswith("/driver"):
        await driver(ws)
        return
    if path.startswith("/headers"):
        h = ws.request_headers
        await ws.send(f"x-test={h.get('X-Test')} origin={h.get('Origin')} protocol={ws.subprotocol}")
    tasks = set()
    async for msg in ws:
        if isinstance(msg, str):
            if msg == "frag":
                await ws.send(["frag", "men", "ted"])
                continue
            if msg == "ping-me":
                t = asyncio.ensure_future(ping_me(ws))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
                continue
            if msg == "later":
                t = asyncio.ensure_future(later(ws))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
                continue
            if msg == "close-3001":
                await ws.close(3001, "user left")
                return
            if msg == "close-1000":
                await ws.close(1000)
                return
            if msg == "terminate":
                ws.transport.abort()
                return
        await ws.send(msg)


async def process_request(path, headers):
    if path.startswith("/reject"):
        return http.HTTPStatus.NOT_FOUND, [], b"not found\n"
    return None


async def main():
    ctx = None
    if len(sys.argv) == 4 and sys.argv[1] == "--tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    server = await websockets.serve(
        handler,
        "127.0.0.1",
        0,
        ssl=ctx,
        max_size=None,
        subprotocols=["superchat", "v1"],
        process_request=process_request,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"listening {port}", flush=True)
    await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
