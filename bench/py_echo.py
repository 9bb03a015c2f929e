"""Python `websockets` echo server for the benchmark suite (Debian's
python3-websockets, the asyncio API).

usage: python3 py_echo.py [--port P] [--broadcast]
Prints "listening PORT" once it listens on 127.0.0.1 (P 0 picks a port).
"""

import asyncio
import signal
import sys

import logging

import websockets

CLIENTS = set()


async def echo(ws, path=None):
    async for msg in ws:
        await ws.send(msg)


async def broadcast(ws, path=None):
    CLIENTS.add(ws)
    try:
        async for msg in ws:
            websockets.broadcast(CLIENTS, msg)
    finally:
        CLIENTS.discard(ws)


async def main():
    # A benchmark ends connections by the thousand: no traceback for each.
    logging.getLogger("websockets").setLevel(logging.CRITICAL)
    args = sys.argv[1:]
    port = int(args[args.index("--port") + 1]) if "--port" in args else 9004
    handler = broadcast if "--broadcast" in args else echo
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with websockets.serve(handler, "127.0.0.1", port, max_size=16 * 1024 * 1024,
                                compression=None, ping_interval=None) as server:
        print("listening", server.sockets[0].getsockname()[1], flush=True)
        await stop


asyncio.run(main())
