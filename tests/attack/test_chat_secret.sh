#!/usr/bin/env bash
# Chat identity (issue 16): an empty or short --secret (or
# DUPLEX_CHAT_SECRET) is a usage error, never "authentication off"; with a
# secret, ?uid=admin is refused with close 4401 and a reason that reads as
# written (issue 17: a browser cannot read an HTTP 401), before any chat
# message; without one, a non-loopback address gets a warning that anyone
# can be anyone.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
secret=$(printf '%032d' 7) # 32 bytes

# refused WHAT ARGS...: `duplex serve ARGS` exits 2 at once, and says why
# in one line naming WHAT and the 16 bytes.
refused() {
  local what=$1 rc=0
  shift
  timeout 5 "$DUPLEX" serve --port 0 "$@" >/dev/null 2>"$DX_TMP/refused.err" || rc=$?
  if [ "$rc" != 2 ] || [ "$(wc -l <"$DX_TMP/refused.err")" != 1 ] ||
    ! grep -q -- "$what must be at least 16 bytes" "$DX_TMP/refused.err"; then
    echo "FAIL: serve $* exited $rc, wanted 2 with one line about $what:" >&2
    cat "$DX_TMP/refused.err" >&2
    exit 1
  fi
  echo "ok: refused: $(cat "$DX_TMP/refused.err")"
}
refused --secret --chat --secret ""
refused --secret --chat --secret "0123456789abcde"
refused --secret --chat --secret= # --secret="$UNSET"
DUPLEX_CHAT_SECRET= refused DUPLEX_CHAT_SECRET --chat
DUPLEX_CHAT_SECRET=short refused DUPLEX_CHAT_SECRET --chat
refused --secret --chat --secret "" --token-for alice
grep -q "got 0" "$DX_TMP/refused.err" || { echo "FAIL: no length in the message" >&2; exit 1; }

# upgrade PORT QUERY: the answer to a WebSocket upgrade of /?QUERY on two
# lines: its status line, then for a 101 what its first frame is ("close
# CODE REASON", or "text TYPE" for a chat message), else the body (a Python
# bytes literal).
upgrade() {
  timeout 10 python3 - "$@" <<'EOF'
import json, socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(("GET /?%s HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
           % sys.argv[2]).encode())
buf = b""
def more():
    global buf
    k = s.recv(4096)
    buf += k
    return k
while b"\r\n\r\n" not in buf and more(): pass
if not buf.startswith(b"HTTP/1.1 101"):
    while more(): pass  # an HTTP refusal ends with the connection
head, _, rest = buf.partition(b"\r\n\r\n")
status = head.split(b"\r\n")[0].decode()
if not status.startswith("HTTP/1.1 101"):
    sys.stdout.write("%s\n%r\n" % (status, rest))
    raise SystemExit(0)
buf = rest
def need(n):
    while len(buf) < n:
        if not more(): raise SystemExit("the connection ended inside a frame")
need(2)
op, n, at = buf[0] & 15, buf[1] & 127, 2
if n == 126:
    need(4)
    n, at = struct.unpack(">H", buf[2:4])[0], 4
need(at + n)
payload = buf[at:at + n]
if op == 8:
    first = "close %d %s" % (struct.unpack(">H", payload[:2])[0], payload[2:].decode())
else:
    first = "text %s" % json.loads(payload)["type"]
sys.stdout.write("%s\n%s\n" % (status, first))
EOF
}

# expect PORT QUERY STATUS FIRST: the answer has that status line and, for
# a 101, that first frame (else that body, a Python bytes literal).
expect() {
  local out
  out=$(upgrade "$1" "$2")
  if [ "$out" != "$(printf '%s\n%s' "$3" "$4")" ]; then
    echo "FAIL: ?$2 answered:" >&2
    echo "$out" >&2
    echo "wanted: $3 / $4" >&2
    exit 1
  fi
  echo "ok: ?$2 -> $3 $4"
}

dx_serve signed --chat --secret "$secret"
sw="HTTP/1.1 101 Switching Protocols"
expect "$DX_PORT" uid=admin "$sw" "close 4401 a token is required (?token=...)"
expect "$DX_PORT" token=admin.9999999999.xxx "$sw" "close 4401 invalid or expired token"
expired=$("$DUPLEX" serve --chat --secret "$secret" --token-for admin --token-ttl 1)
token=$("$DUPLEX" serve --chat --secret "$secret" --token-for admin --token-ttl 600)
expect "$DX_PORT" "token=$token" "$sw" "text welcome"
sleep 2.1 # past its second
expect "$DX_PORT" "token=$expired" "$sw" "close 4401 invalid or expired token"
dx_stop "$DX_PID"
if grep -q warning "$DX_TMP/signed.log"; then echo "FAIL: a warning with a secret" >&2; exit 1; fi

# Without a secret: ?uid= as before (development), quietly on loopback.
DUPLEX_CHAT_SECRET="$secret" dx_serve env --chat
expect "$DX_PORT" uid=admin "$sw" "close 4401 a token is required (?token=...)"
dx_stop "$DX_PID"
dx_serve dev --chat
expect "$DX_PORT" uid=admin "$sw" "text welcome"
expect "$DX_PORT" "token=$token" "$sw" "close 4403 this server does not check tokens: connect with ?uid=NAME"
expect "$DX_PORT" "uid=a%20b" "$sw" "close 4401 identify with ?uid=NAME (1-32 of A-Z a-z 0-9 _ -)"
dx_stop "$DX_PID"
if grep -q warning "$DX_TMP/dev.log"; then echo "FAIL: a warning on loopback" >&2; exit 1; fi
dx_serve open --chat --host 0.0.0.0
dx_stop "$DX_PID"
grep -q "warning: no --secret on 0.0.0.0: ?uid= lets anyone be anyone" "$DX_TMP/open.log" ||
  { echo "FAIL: no warning on 0.0.0.0:" >&2; cat "$DX_TMP/open.log" >&2; exit 1; }
echo "ok: warned: $(grep warning "$DX_TMP/open.log")"
echo "chat secret: passed"
