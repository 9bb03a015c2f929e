#!/usr/bin/env bash
# Node's `ws` client ↔ `duplex serve --echo`, over ws:// and wss://.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
command -v node >/dev/null || { echo "node is missing (make deps)" >&2; exit 1; }
[ -f "$DX_ROOT/node_modules/ws/index.js" ] || { echo "ws is missing: npm ci in $DX_ROOT" >&2; exit 1; }

echo "== ws://"
dx_serve plain --echo
timeout 120 node "$here/node_client.mjs" "ws://127.0.0.1:$DX_PORT/chat?uid=007"
dx_stop "$DX_PID"

echo "== wss://"
dx_cert "$DX_TMP"
dx_serve tls --echo --cert "$DX_TMP/cert.pem" --key "$DX_TMP/key.pem"
grep -q 'wss://' "$DX_TMP/tls.log"
timeout 120 node "$here/node_client.mjs" "wss://127.0.0.1:$DX_PORT/" --insecure
dx_stop "$DX_PID"
echo "node client interop: passed"
