#!/usr/bin/env bash
# Issue 17, "nothing a person typed is ever lost", in the chat web UI:
# headless Chromium against `duplex serve --chat` (tests/e2e/chat_offline.mjs):
# "Load older" keeps the place, presence is unknown while offline, a stalled
# server's late ack and a reconnection settle failed messages, the outbox and
# drafts outlive a closed browser (persistent profile), permanent refusals
# show their reason, a refused sign-in stops reconnecting. Screenshots go to
# tests/e2e/artifacts/ (or $DX_ARTIFACTS).
#
# The UI is web/chat/dist when it is up to date with its sources; otherwise
# it is built here into a temporary folder (as test_chat.sh does).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../interop/lib.sh"
[ -x /usr/bin/chromium ] || { echo "chromium is missing (make deps)" >&2; exit 1; }
[ -d "$DX_ROOT/node_modules/playwright-core" ] || { echo "playwright-core is missing: npm ci" >&2; exit 1; }

ui="$DX_ROOT/web/chat/dist"
stale=$(find "$DX_ROOT/web/chat/src" "$DX_ROOT/web/chat/index.html" "$DX_ROOT/web/chat/vite.config.js" \
             "$DX_ROOT/web/client" -type f -newer "$ui/index.html" 2>/dev/null | head -1 || true)
if [ ! -f "$ui/index.html" ] || [ -n "$stale" ]; then
  echo "web/chat/dist is missing or older than its sources: building the UI into $DX_TMP/ui"
  (cd "$DX_ROOT" && DX_CHAT_OUT="$DX_TMP/ui" npx --no-install vite build --config web/chat/vite.config.js)
  ui="$DX_TMP/ui"
fi
mkdir -p "$DX_TMP/work"
timeout 300 node "$here/chat_offline.mjs" "$DUPLEX" "$ui" "$DX_TMP/work" "${DX_ARTIFACTS:-$here/artifacts}" || {
  echo "--- server logs" >&2
  tail -n 20 "$DX_TMP"/work/server-*.log >&2 || true
  exit 1
}
echo "chat offline e2e: passed"
