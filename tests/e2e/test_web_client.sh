#!/usr/bin/env bash
# The browser library (web/client: DuplexSocket, the React hook and the Vue
# composable) in headless Chromium against a real `duplex serve --echo`
# that web_client.mjs kills, freezes and restarts; the page also goes
# offline. The React and Vue test pages are bundled by Vite in development
# mode (React's StrictMode then double-runs effects) into a temporary site
# next to a copy of duplex.js.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../interop/lib.sh"
[ -x /usr/bin/chromium ] || { echo "chromium is missing (make deps)" >&2; exit 1; }
for m in playwright-core vite react react-dom vue; do
  [ -d "$DX_ROOT/node_modules/$m" ] || { echo "$m is missing: npm ci" >&2; exit 1; }
done

site=$DX_TMP/site
mkdir -p "$site"
cp "$here/web_client/index.html" "$DX_ROOT/web/client/duplex.js" "$DX_ROOT/web/client/http_socket.js" "$site/"
(cd "$DX_ROOT" && NODE_ENV=development timeout 300 node_modules/.bin/vite build tests/e2e/web_client/react \
  --outDir "$site/react" --emptyOutDir --base ./ --minify false --mode development --logLevel warn)
(cd "$DX_ROOT" && NODE_ENV=development timeout 300 node_modules/.bin/vite build tests/e2e/web_client/vue \
  --outDir "$site/vue" --emptyOutDir --base ./ --minify false --mode development --logLevel warn)
timeout 300 node "$here/web_client.mjs" "$site"
echo "client e2e: passed"
