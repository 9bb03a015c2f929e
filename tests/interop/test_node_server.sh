#!/usr/bin/env bash
# `duplex connect` ↔ a Node `ws` WebSocketServer (node_server.mjs), over
# ws:// and wss:// (a self-signed certificate made here with openssl).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/client_lib.sh"
command -v node >/dev/null || { echo "node is missing (make deps)" >&2; exit 1; }
[ -f "$DX_ROOT/node_modules/ws/index.js" ] || { echo "ws is missing: npm ci in $DX_ROOT" >&2; exit 1; }

echo "== ws:// (node ws $(node -p "require('$DX_ROOT/node_modules/ws/package.json').version"))"
peer_start node node "$here/node_server.mjs"
client_matrix "ws://127.0.0.1:$PEER_PORT"
client_common_failures

echo "== wss://"
dx_cert "$DX_TMP"
peer_start node-tls node "$here/node_server.mjs" --tls "$DX_TMP/cert.pem" "$DX_TMP/key.pem"
client_tls_checks "wss://127.0.0.1:$PEER_PORT"

if [ "$DX_FAILS" -ne 0 ]; then
  echo "node server interop: $DX_FAILS check(s) failed"
  exit 1
fi
echo "node server interop: passed"
