#!/usr/bin/env bash
# Node's `ws` client ↔ `duplex serve --echo`, over ws:// and wss:// (on the
# server's io_uring when it has one, both).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
command -v node >/dev/null || { echo "node is missing (make deps)" >&2; exit 1; }
[ -f "$DX_ROOT/node_modules/ws/index.js" ] || { echo "ws is missing: npm ci in $DX_ROOT" >&2; exit 1; }

echo "== ws://"
dx_serve plain --echo --metrics
timeout 120 node "$here/node_client.mjs" "ws://127.0.0.1:$DX_PORT/chat?uid=007" --metrics "http://127.0.0.1:$DX_PORT/metrics" | tee "$DX_TMP/ws.out"
ring=$(sed -n 's/.*on io_uring when the server has one (threads \([0-9]*\),.*/\1/p' "$DX_TMP/ws.out")
dx_stop "$DX_PID"

echo "== wss://"
dx_cert "$DX_TMP"
dx_serve tls --echo --metrics --cert "$DX_TMP/cert.pem" --key "$DX_TMP/key.pem"
grep -q 'wss://' "$DX_TMP/tls.log"
timeout 120 node "$here/node_client.mjs" "wss://127.0.0.1:$DX_PORT/" --insecure --metrics "https://127.0.0.1:$DX_PORT/metrics" --ring "$ring"
dx_stop "$DX_PID"
echo "node client interop: passed"
