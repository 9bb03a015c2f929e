"""Clients of several `duplex serve --broadcast --redis` nodes (Python
`websockets`, Debian python3-websockets). Used by test_redis_cluster.sh.

Usage: redis_cluster.py MODE PER_NODE URL...
  MODE cross: every client must receive every client's message exactly once
              (the nodes share their broadcasts through Redis);
  MODE local: every client must receive exactly once the messages sent by
              clients of its own node, and none from other nodes (Redis is
              down: local delivery goes on, cross-node delivery stops).
Each client sends one message "<tag> n<node> c<client>" (tag random per run,
so a late message of an earlier run is told apart). Prints one line per
check; exits 0 when all passed."""
import asyncio
import secrets
import sys

import websockets

MODE, PER_NODE, URLS = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
TAG = secrets.token_hex(4)
failed = 0


def check(ok, what):
    global failed
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failed += 1


async def main():
    clients = []  # (node index, name, websocket)
    for n, url in enumerate(URLS):
        for c in range(PER_NODE):
            ws = await websockets.connect(url, open_timeout=10, max_size=None)
            clients.append((n, f"{TAG} n{n} c{c}", ws))
    # Every client is open before anyone sends: a broadcast reaches only
    # the clients open at the time.
    got = {name: [] for _, name, _ in clients}

    async def reader(name, ws):
        try:
            async for m in ws:
                if m.startswith(TAG):
                    got[name].append(m)
        except websockets.ConnectionClosed:
            pass

    tasks = [asyncio.create_task(reader(name, ws)) for _, name, ws in clients]
    for _, name, ws in clients:
        await ws.send(name)

    def expected_for(node):
        return sorted(nm for n, nm, _ in clients if MODE == "cross" or n == node)

    # Wait (generously: ASan, a loaded machine) until everyone has what it
    # expects, then a little longer so that duplicates or strays show up.
    for _ in range(200):
        if all(len(got[nm]) >= len(expected_for(n)) for n, nm, _ in clients):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.4)
    for n, nm, _ in clients:
        want = expected_for(n)
        check(sorted(got[nm]) == want,
              f"{MODE}: '{nm}' received {len(got[nm])} of {len(want)}, each once"
              + ("" if sorted(got[nm]) == want else f": {sorted(got[nm])}"))
    for _, _, ws in clients:
        await ws.close()
    await asyncio.gather(*tasks)


asyncio.run(main())
sys.exit(1 if failed else 0)
