#!/usr/bin/env bash
# Headless Chromium (which always offers permessage-deflate) against
# `duplex serve --echo` in its three deflate modes: default (both
# no_context_takeover asked), --deflate-takeover --deflate-window 10, and
# --no-deflate. ws.extensions must show what was agreed; every echo (JSON,
# UTF-8, 1 MiB, binary noise) must come back equal.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../interop/lib.sh"
[ -x /usr/bin/chromium ] || { echo "chromium is missing (make deps)" >&2; exit 1; }
[ -d "$DX_ROOT/node_modules/playwright-core" ] || { echo "playwright-core is missing: npm ci" >&2; exit 1; }

dx_serve cheap --echo
cheap=$DX_PORT cheap_pid=$DX_PID
dx_serve takeover --echo --deflate-takeover --deflate-window 10
takeover=$DX_PORT takeover_pid=$DX_PID
dx_serve off --echo --no-deflate
off=$DX_PORT off_pid=$DX_PID
mkdir -p "$DX_TMP/profile"
timeout 120 node "$here/deflate_chromium.mjs" "$DX_TMP/profile" \
  "$cheap:server_no_context_takeover,client_no_context_takeover" \
  "$takeover:server_max_window_bits=10,client_max_window_bits=10" \
  "$off:off"
dx_stop "$cheap_pid"
dx_stop "$takeover_pid"
dx_stop "$off_pid"
echo "deflate chromium e2e: passed"
