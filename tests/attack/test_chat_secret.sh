#!/usr/bin/env bash
# Chat identity (issue 16): an empty or short --secret (or
# DUPLEX_CHAT_SECRET) is a usage error, never "authentication off"; with a
# secret, ?uid=admin gets 401 and a body that reads as written; without
# one, a non-loopback address gets a warning that anyone can be anyone.
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

# upgrade PORT QUERY: the status line and body of the answer to a
# WebSocket upgrade of /?QUERY, on one line each.
upgrade() {
  timeout 10 python3 - "$@" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(("GET /?%s HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
           % sys.argv[2]).encode())
buf = b""
while not (buf.startswith(b"HTTP/1.1 101") and b"\r\n\r\n" in buf):
    k = s.recv(4096)
    if not k: break  # a refusal ends with the connection
    buf += k
head, _, body = buf.partition(b"\r\n\r\n")
if head.startswith(b"HTTP/1.1 101"): body = b""  # frames of the chat may follow
sys.stdout.write("%s\n%r\n" % (head.split(b"\r\n")[0].decode(), body))
EOF
}

# expect PORT QUERY STATUS BODY: the answer has that status line and body
# (a Python bytes literal).
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
expect "$DX_PORT" uid=admin "HTTP/1.1 401 Unauthorized" "b'a token is required (?token=...)\n'"
expect "$DX_PORT" token=admin.9999999999.xxx "HTTP/1.1 401 Unauthorized" "b'invalid or expired token\n'"
token=$("$DUPLEX" serve --chat --secret "$secret" --token-for admin --token-ttl 600)
expect "$DX_PORT" "token=$token" "HTTP/1.1 101 Switching Protocols" "b''"
dx_stop "$DX_PID"
if grep -q warning "$DX_TMP/signed.log"; then echo "FAIL: a warning with a secret" >&2; exit 1; fi

# Without a secret: ?uid= as before (development), quietly on loopback.
DUPLEX_CHAT_SECRET="$secret" dx_serve env --chat
expect "$DX_PORT" uid=admin "HTTP/1.1 401 Unauthorized" "b'a token is required (?token=...)\n'"
dx_stop "$DX_PID"
dx_serve dev --chat
expect "$DX_PORT" uid=admin "HTTP/1.1 101 Switching Protocols" "b''"
dx_stop "$DX_PID"
if grep -q warning "$DX_TMP/dev.log"; then echo "FAIL: a warning on loopback" >&2; exit 1; fi
dx_serve open --chat --host 0.0.0.0
dx_stop "$DX_PID"
grep -q "warning: no --secret on 0.0.0.0: ?uid= lets anyone be anyone" "$DX_TMP/open.log" ||
  { echo "FAIL: no warning on 0.0.0.0:" >&2; cat "$DX_TMP/open.log" >&2; exit 1; }
echo "ok: warned: $(grep warning "$DX_TMP/open.log")"
echo "chat secret: passed"
