#!/usr/bin/env bash
# The HTTP phase under attack: a 9 KiB header, 100 headers and a request
# line of 1 MiB get 431; binary garbage, TLS on the plain port and a body
# length that reads two ways get 400; no answer and no log line quotes the
# attacker's bytes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dx_serve http --echo
attack http
# RFC 9112 §6.3: a body length that reads two ways (two Content-Lengths that
# differ, or one with Transfer-Encoding) gets 400, not a guess.
for extra in 'Content-Length: 6' 'Transfer-Encoding: chunked'; do
  status=$(timeout 10 python3 - "$DX_PORT" "$extra" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n%s\r\n\r\nhello" % sys.argv[2].encode())
print(s.recv(4096).split(b"\r\n")[0].decode())
EOF
  )
  [ "$status" = "HTTP/1.1 400 Bad Request" ] ||
    { echo "FAIL: Content-Length: 5 and $extra -> '$status', wanted 400" >&2; exit 1; }
  echo "ok: Content-Length: 5 and $extra -> $status"
done
dx_stop "$DX_PID"
no_echo_in_log http
echo "http limits: passed"
