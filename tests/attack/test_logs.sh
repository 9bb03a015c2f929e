#!/usr/bin/env bash
# duplex serve --log-format json under hostile traffic: every line is one
# JSON object with ts, level, event and msg; the events an operator needs
# are there (start, listen, handshake_refused with status and reason,
# slow_consumer, shutdown, exit); refused handshakes are logged at most 20
# a second, and the ones not logged are counted in a log_skipped line, so
# that logged + skipped = refused exactly; no attacker byte reaches the
# log unescaped.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || { echo "curl is missing (make deps)" >&2; exit 1; }
dx_serve logs --broadcast --max-buffered 262144 --origin http://ok.example --log-format json
up() { # up [ORIGIN]: one refused upgrade
  curl -s -o /dev/null --max-time 5 -H 'Connection: Upgrade' -H 'Upgrade: websocket' \
    -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \
    -H "Origin: ${1:-http://evil.example}" "http://127.0.0.1:$DX_PORT/"
}
up
# 150 refusals as fast as one process goes (a scan: a curl per request
# falls under 20 a second on a loaded machine), then one more a second later.
python3 - "$DX_PORT" <<'PY'
import socket, sys
for i in range(1, 151):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
    s.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
               f"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
               f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               f"Origin: http://evil.example/{i}-EVIL\r\n\r\n").encode())
    head = b""
    while b"\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    assert head.startswith(b"HTTP/1.1 403"), f"FAIL: scan request {i} got {head[:40]!r}"
    s.close()
PY
sleep 1.2
up
attack slowconsumer 262144
kill -TERM "$DX_PID"
wait "$DX_PID" || { echo "FAIL: the server did not exit 0 after SIGTERM" >&2; exit 1; }
python3 - "$DX_TMP/logs.log" <<'PY'
import json, sys
events, refused, skipped = [], 0, 0
for n, line in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
    try:
        e = json.loads(line)
    except ValueError:
        sys.exit(f"FAIL: line {n} is not JSON: {line!r}")
    for k in ("ts", "level", "event", "msg"):
        assert k in e, f"FAIL: line {n} has no {k}: {line}"
    assert e["ts"].endswith("Z") and "T" in e["ts"], e["ts"]
    events.append(e["event"])
    if e["event"] == "handshake_refused":
        assert e["status"] == "403" and e["reason"] == "origin not allowed" and e["remote"].startswith("127.0.0.1:"), e
        refused += 1
    if e["event"] == "log_skipped":
        skipped += int(e["count"])
for want in ("start", "listen", "handshake_refused", "slow_consumer", "shutdown", "exit"):
    assert want in events, f"FAIL: no {want} event in {events}"
print(f"ok   every line JSON; events {sorted(set(events))}")
assert refused + skipped == 152, f"FAIL: {refused} refusals logged + {skipped} skipped != 152"
assert refused < 152, "FAIL: no refusal was held back"
print(f"ok   152 refused handshakes: {refused} logged, {skipped} counted in log_skipped lines")
PY
no_echo_in_log logs
echo "logs: passed"
