#!/usr/bin/env bash
# Headless Chromium (Debian's, driven by playwright-core) loads a page from
# `duplex serve --echo --static`, exchanges text and binary over a WebSocket
# and closes with 3001 'user left'; then it screenshots the echo page of
# `make run` (web/echo) in use to /tmp/duplex-echo.png.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../interop/lib.sh"
[ -x /usr/bin/chromium ] || { echo "chromium is missing (make deps)" >&2; exit 1; }
[ -d "$DX_ROOT/node_modules/playwright-core" ] || { echo "playwright-core is missing: npm ci" >&2; exit 1; }

dx_serve page --echo --static "$here/page"
test_port=$DX_PORT test_pid=$DX_PID
dx_serve echo --echo --static "$DX_ROOT/web/echo"
echo_port=$DX_PORT echo_pid=$DX_PID
mkdir -p "$DX_TMP/profile"
timeout 120 node "$here/chromium.mjs" "$test_port" "$echo_port" "$DX_TMP/profile" "${DX_SCREENSHOT:-/tmp/duplex-echo.png}"
dx_stop "$test_pid"
dx_stop "$echo_pid"
echo "chromium e2e: passed"
