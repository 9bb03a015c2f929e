#!/usr/bin/env bash
# Issue 16, items 4 and 8, over real sockets against `duplex serve --chat`:
# one user floods typing and read into a 200-member room whose members are
# not reading (no member is dropped, pushes are coalesced, the sender never
# gets its own typing, the server's peak RSS stays under RSS_MAX), then
# reconnects in a loop (429 + Retry-After past 30 a minute per user and 300
# per address). --max-buffered is small so that, without coalescing, the
# members' queues overflow in seconds rather than minutes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
command -v node >/dev/null || { echo "node is missing (make deps)" >&2; exit 1; }
[ -f "$DX_ROOT/node_modules/ws/index.js" ] || { echo "ws is missing: npm ci in $DX_ROOT" >&2; exit 1; }
dx_serve flood --chat --db "$DX_TMP/flood.db" --max-buffered 262144
timeout 300 node "$(dirname "$0")/chat_flood.mjs" "$DX_PORT" "$DX_PID" "$RSS_MAX"
dx_stop "$DX_PID"
echo "chat flood: passed"
