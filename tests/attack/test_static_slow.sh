#!/usr/bin/env bash
# Static files and slow readers (issue 16): the close timeout of an HTTP
# answer counts from its last progress, not from its start. With
# --close-timeout 1, a client that reads a 16 MiB file at 4 MiB/s (about
# 4 s) gets every byte; one that stops reading is still cut.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
size=$((16 << 20))
mkdir "$DX_TMP/www"
head -c "$size" /dev/urandom >"$DX_TMP/www/big.bin"
dx_serve slow --echo --static "$DX_TMP/www" --close-timeout 1

# reader PORT SIZE slow|stall: GETs /big.bin with a small receive buffer
# (so the kernel holds little of the answer for us), then reads it at
# 4 MiB/s, or reads 64 KiB, stops for 3 s and reads the rest at full speed.
reader() {
  timeout 60 python3 - "$@" <<'EOF'
import socket, sys, time
port, size, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.connect(("127.0.0.1", port))
s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: a\r\n\r\n")
buf = b""
while b"\r\n\r\n" not in buf:
    k = s.recv(65536)
    if not k: sys.exit("no answer head")
    buf += k
head, body = buf.split(b"\r\n\r\n", 1)
if not head.startswith(b"HTTP/1.1 200 ") or b"Content-Length: %d\r\n" % size not in head + b"\r\n":
    sys.exit("bad head: %r" % head)
got, t0, rate = len(body), time.monotonic(), 4 << 20
while True:
    if mode == "slow":
        ahead = got / rate - (time.monotonic() - t0)
        if ahead > 0: time.sleep(ahead)
    elif got >= 65536 and mode == "stall":
        time.sleep(3)
        mode = "fast"
    try:
        k = s.recv(65536)
    except ConnectionResetError:
        break
    if not k: break
    got += len(k)
print(got, "%.1f" % (time.monotonic() - t0))
EOF
}

read -r got secs < <(reader "$DX_PORT" "$size" slow)
echo "slow reader: $got of $size bytes in $secs s"
[ "$got" = "$size" ] || { echo "FAIL: a slow but steady reader was cut" >&2; exit 1; }
awk -v s="$secs" 'BEGIN { exit !(s >= 2) }' ||
  { echo "FAIL: the transfer did not outlast the close timeout (${secs}s)" >&2; exit 1; }
echo "ok: a slow reader gets every byte"

read -r got secs < <(reader "$DX_PORT" "$size" stall)
echo "stalled reader: $got of $size bytes"
[ "$got" -lt "$size" ] || { echo "FAIL: a reader that stopped for 3 s was not cut" >&2; exit 1; }
echo "ok: a reader that stops is cut"

dx_stop "$DX_PID"
echo "static slow readers: passed"
