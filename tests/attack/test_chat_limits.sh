#!/usr/bin/env bash
# Issue 16, items 3 and 7, over real sockets against `duplex serve --chat`
# with a real SQLite file: one user flooding sends from two devices stores
# at most its burst (the rest is rate_limited with retry_after) while
# another user is served; joins are limited; then --max-rooms and
# --sync-page from the command line: the join past the cap is refused and
# sync comes in pages.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
command -v node >/dev/null || { echo "node is missing (make deps)" >&2; exit 1; }
[ -f "$DX_ROOT/node_modules/ws/index.js" ] || { echo "ws is missing: npm ci in $DX_ROOT" >&2; exit 1; }
client="$(dirname "$0")/chat_limits.mjs"

echo "== flood with the default limits"
dx_serve limits --chat --db "$DX_TMP/limits.db"
timeout 120 node "$client" "$DX_PORT" "$DX_TMP/limits.db" flood
dx_stop "$DX_PID"

echo "== --max-rooms 3 --sync-page 2"
dx_serve rooms --chat --db "$DX_TMP/rooms.db" --max-rooms 3 --sync-page 2 --rate-limit join=off
timeout 60 node "$client" "$DX_PORT" "$DX_TMP/rooms.db" rooms
dx_stop "$DX_PID"

echo "== usage errors"
for bad in "--rate-limit nope=1" "--rate-limit send=x" "--rate-limit send=5/0" "--max-rooms 0" "--sync-page -1"; do
  # shellcheck disable=SC2086
  if "$DUPLEX" serve --chat --port 0 $bad >/dev/null 2>&1; then echo "serve --chat $bad should fail" >&2; exit 1; fi
done
if "$DUPLEX" serve --echo --port 0 --max-rooms 5 >/dev/null 2>&1; then echo "--max-rooms without --chat should fail" >&2; exit 1; fi
echo "chat limits: passed"
