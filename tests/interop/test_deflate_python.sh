#!/usr/bin/env bash
# permessage-deflate (RFC 7692) against Debian's python3-websockets, both
# roles: its client with every parameter combination against
# `duplex serve --echo` (default and --deflate-takeover), and
# `duplex connect --echo` against its server with each combination.
# /usr/bin/python3 on purpose: the python3 first on PATH may lack websockets.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/client_lib.sh"
PY=/usr/bin/python3
"$PY" -c 'import websockets' 2>/dev/null || {
  echo "python3-websockets is missing (apt-get install python3-websockets)" >&2
  exit 1
}

for mode in default --deflate-takeover; do
  echo "== websockets client -> duplex serve --echo ($mode)"
  if [ "$mode" = default ]; then dx_serve "srv-$mode" --echo; else dx_serve "srv-$mode" --echo "$mode"; fi
  set +e
  timeout 300 "$PY" "$here/deflate_python.py" client "ws://127.0.0.1:$DX_PORT/"
  rc=$?
  set -e
  check "websockets client against $mode (rc $rc)" test "$rc" = 0
  dx_stop "$DX_PID"
done

echo "== raw offers -> duplex serve --echo: declined cleanly, or the first acceptable"
dx_serve raw --echo
set +e
timeout 60 "$PY" "$here/deflate_python.py" raw "$DX_PORT"
rc=$?
set -e
check "raw offers (rc $rc)" test "$rc" = 0
dx_stop "$DX_PID"

echo "== duplex connect -> servers answering what was not offered: the handshake fails"
for ext in "x-foo" "permessage-deflate; server_max_window_bits=7" \
  "permessage-deflate; client_max_window_bits" "permessage-deflate; foo" \
  "permessage-deflate, permessage-deflate" "permessage-deflate; server_no_context_takeover=1"; do
  peer_start "bad" "$PY" "$here/deflate_python.py" badserver "$ext"
  dxc "bad" "ws://127.0.0.1:$PEER_PORT/" </dev/null
  if [ "$RC" = 1 ] && grep -q 'handshake' "$DX_TMP/bad.err"; then
    ok "answer '$ext' refused: $(grep -m1 handshake "$DX_TMP/bad.err")"
  else
    no "answer '$ext': rc $RC: $(tr '\n' ' ' <"$DX_TMP/bad.err")"
  fi
  kill "$PEER_PID" 2>/dev/null || true
  wait "$PEER_PID" 2>/dev/null || true
done
# Without an offer (--no-deflate) any extension in the answer is refused.
peer_start "bad2" "$PY" "$here/deflate_python.py" badserver "permessage-deflate"
dxc "bad2" --no-deflate "ws://127.0.0.1:$PEER_PORT/" </dev/null
check "answer with permessage-deflate to no offer: refused (rc $RC)" \
  grep -q 'handshake: server accepted an extension that was not offered' "$DX_TMP/bad2.err"
kill "$PEER_PID" 2>/dev/null || true
wait "$PEER_PID" 2>/dev/null || true

echo "== duplex connect --echo -> websockets server"
for opts in "0 0 0 0" "1 0 0 0" "0 1 0 0" "1 1 0 0" "0 0 10 0" "0 0 0 10" "1 1 9 9"; do
  # shellcheck disable=SC2086 # the four numbers are four arguments
  peer_start "py-server" "$PY" "$here/deflate_python.py" server $opts
  dxc "connect" --echo "ws://127.0.0.1:$PEER_PORT/" </dev/null
  if [ "$RC" = 0 ] && grep -q 'extensions permessage-deflate' "$DX_TMP/connect.err"; then
    ok "connect --echo vs websockets server ($opts): $(grep -o '(extensions[^)]*)' "$DX_TMP/connect.err")"
  else
    no "connect --echo vs websockets server ($opts): rc $RC: $(tr '\n' ' ' <"$DX_TMP/connect.err")"
  fi
  kill "$PEER_PID" 2>/dev/null || true
  wait "$PEER_PID" 2>/dev/null || true
done

if [ "$DX_FAILS" -ne 0 ]; then
  echo "deflate python interop: $DX_FAILS check(s) failed"
  exit 1
fi
echo "deflate python interop: passed"
