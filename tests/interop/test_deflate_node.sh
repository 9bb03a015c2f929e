#!/usr/bin/env bash
# permessage-deflate (RFC 7692) against Node's `ws`, both roles:
#   - ws clients with every context-takeover combination (and window limits)
#     against `duplex serve --echo` in its default (both no_context_takeover
#     asked), --deflate-takeover and --deflate-window modes; every echo
#     checked, the server's compression seen on the wire;
#   - a compression bomb against --max-message: 1009;
#   - `duplex connect --echo` against ws servers with each combination.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/client_lib.sh"
command -v node >/dev/null || { echo "node is missing (make deps)" >&2; exit 1; }
[ -f "$DX_ROOT/node_modules/ws/index.js" ] || { echo "ws is missing: npm ci in $DX_ROOT" >&2; exit 1; }
N="timeout 120 node $here/deflate_node.mjs"

client() { # client NAME OPTS EXPECT
  if $N client "ws://127.0.0.1:$DX_PORT/" "$2" "$3" >"$DX_TMP/$1.out" 2>&1; then
    ok "$1: $(cat "$DX_TMP/$1.out")"
  else
    no "$1: $(cat "$DX_TMP/$1.out")"
  fi
}

echo "== ws clients -> duplex serve --echo (default: both no_context_takeover asked)"
dx_serve cheap --echo
# (ws refuses an answer with client_no_context_takeover when its option is
# explicitly false, though RFC 7692 §7.1.1.2 allows the server to add it:
# the combinations below leave the options unset or true.)
for opts in '{}' '{"serverNoContextTakeover":true}' '{"clientNoContextTakeover":true}' \
  '{"serverNoContextTakeover":true,"clientNoContextTakeover":true}'; do
  client "default $opts" "$opts" "server_no_context_takeover,client_no_context_takeover"
done
client "default-client-window-10" '{"clientMaxWindowBits":10}' "server_no_context_takeover"
client "default-ws-off" off off
dx_stop "$DX_PID"

echo "== ws clients -> duplex serve --echo --deflate-takeover"
dx_serve takeover --echo --deflate-takeover
client "takeover-none" '{}' "-"
client "takeover-s" '{"serverNoContextTakeover":true}' "server_no_context_takeover"
client "takeover-c" '{"clientNoContextTakeover":true}' "client_no_context_takeover"
client "takeover-sc" '{"serverNoContextTakeover":true,"clientNoContextTakeover":true}' \
  "server_no_context_takeover,client_no_context_takeover"
client "takeover-server-window-9" '{"serverMaxWindowBits":9}' "server_max_window_bits=9"
# A window of 8 bits for the server's sends: zlib cannot, so it sends
# uncompressed, as RFC 7692 allows; ws's compressed messages still work.
client "takeover-server-window-8" '{"serverMaxWindowBits":8}' "server_max_window_bits=8,raw"
dx_stop "$DX_PID"

echo "== ws clients -> duplex serve --echo --deflate-takeover --deflate-window 9"
dx_serve window --echo --deflate-takeover --deflate-window 9
client "window9-plain" '{}' "server_max_window_bits=9,client_max_window_bits=9"
client "window9-ws-limits" '{"serverMaxWindowBits":11,"clientMaxWindowBits":12}' \
  "server_max_window_bits=9,client_max_window_bits=9"
dx_stop "$DX_PID"

echo "== ws client -> duplex serve --no-deflate"
dx_serve off --echo --no-deflate
client "no-deflate" '{}' off
dx_stop "$DX_PID"

echo "== compression bomb -> duplex serve --echo --max-message 1048576"
dx_serve bomb --echo --max-message 1048576
check "8 MiB of zeros inflating past 1 MiB closes with 1009" $N bomb "ws://127.0.0.1:$DX_PORT/"
dx_stop "$DX_PID"

echo "== ws clients <- duplex serve --broadcast: compressed once, for those with deflate"
dx_serve bcast --broadcast
if $N broadcast "ws://127.0.0.1:$DX_PORT/" >"$DX_TMP/bcast.out" 2>&1; then
  ok "broadcast: $(tr '\n' ' ' <"$DX_TMP/bcast.out")"
else
  no "broadcast: $(tr '\n' ' ' <"$DX_TMP/bcast.out")"
fi
dx_stop "$DX_PID"

echo "== duplex connect --echo -> ws servers"
for opts in '{}' '{"serverNoContextTakeover":true}' '{"clientNoContextTakeover":true}' \
  '{"serverNoContextTakeover":true,"clientNoContextTakeover":true}' \
  '{"serverMaxWindowBits":10,"clientMaxWindowBits":9}'; do
  peer_start "ws-server" node "$here/deflate_node.mjs" server "$opts"
  dxc "connect" --echo "ws://127.0.0.1:$PEER_PORT/" </dev/null
  if [ "$RC" = 0 ] && grep -q 'extensions permessage-deflate' "$DX_TMP/connect.err"; then
    ok "connect --echo vs ws server $opts: $(grep -o '(extensions[^)]*)' "$DX_TMP/connect.err")"
  else
    no "connect --echo vs ws server $opts: rc $RC: $(tr '\n' ' ' <"$DX_TMP/connect.err")"
  fi
  kill "$PEER_PID" 2>/dev/null || true
  wait "$PEER_PID" 2>/dev/null || true
done
# With --deflate-window, the offer limits the client's window and ws obeys.
peer_start "ws-server-w" node "$here/deflate_node.mjs" server '{}'
dxc "connect-w" --echo --deflate-window 9 "ws://127.0.0.1:$PEER_PORT/" </dev/null
check "connect --deflate-window 9: client_max_window_bits=9 agreed" \
  grep -q 'client_max_window_bits=9' "$DX_TMP/connect-w.err"
check "connect --deflate-window 9: echo session passed (rc $RC)" test "$RC" = 0

if [ "$DX_FAILS" -ne 0 ]; then
  echo "deflate node interop: $DX_FAILS check(s) failed"
  exit 1
fi
echo "deflate node interop: passed"
