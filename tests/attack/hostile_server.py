#!/usr/bin/env python3
"""A hostile WebSocket server for the client-side checks: it accepts one
connection, answers the upgrade properly, then closes with code 4000 and a
reason full of terminal escapes and line breaks (valid UTF-8, so the
protocol allows it). Prints its port, then serves one client and exits."""
import base64
import hashlib
import socket
import struct
import sys

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
REASON = b"\x1b[2J\x1b[31mEVIL\r\nduplex: fake line\x07"

srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
print(srv.getsockname()[1], flush=True)
srv.settimeout(30)
conn, _ = srv.accept()
conn.settimeout(10)
head = b""
while b"\r\n\r\n" not in head:
    chunk = conn.recv(4096)
    if not chunk:
        sys.exit(1)
    head += chunk
key = next(l.split(b":", 1)[1].strip() for l in head.split(b"\r\n")
           if l.lower().startswith(b"sec-websocket-key:"))
accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
payload = struct.pack(">H", 4000) + REASON
conn.sendall(bytes([0x88, len(payload)]) + payload)
try:
    while conn.recv(4096):  # the client's close, then its EOF
        pass
except OSError:
    pass
conn.close()
