#!/usr/bin/env bash
# DuplexSocket's fallback to the HTTP session transport (docs/fallback.md) in
# headless Chromium against a real `duplex serve --echo`, behind a proxy
# (fallback_proxy.mjs) that refuses, black-holes or passes WebSocket
# upgrades: see fallback.mjs. The page and web/client/*.js are served from a
# temporary --static site.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../interop/lib.sh"
[ -x /usr/bin/chromium ] || { echo "chromium is missing (make deps)" >&2; exit 1; }
[ -d "$DX_ROOT/node_modules/playwright-core" ] || { echo "playwright-core is missing: npm ci" >&2; exit 1; }

site=$DX_TMP/site
mkdir -p "$site"
cp "$here/fallback/index.html" "$DX_ROOT/web/client/duplex.js" "$DX_ROOT/web/client/http_socket.js" "$site/"
timeout 300 node "$here/fallback.mjs" "$site"
echo "fallback e2e: passed"
