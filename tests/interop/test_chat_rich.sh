#!/usr/bin/env bash
# Revision 2 of the chat protocol over real sockets (Node `ws` ↔ `duplex
# serve --chat` on a SQLite file): private groups refused to everyone else
# for every request type (chat_rich.mjs forbid), recall, edit and search
# (chat_rich.mjs edits); then a restart: what was recalled is gone from the
# database file itself, not only hidden. test_chat_cluster.sh runs the same
# phases against PostgreSQL and the removal across nodes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
command -v node >/dev/null || { echo "node is missing (make deps)" >&2; exit 1; }
[ -f "$DX_ROOT/node_modules/ws/index.js" ] || { echo "ws is missing: npm ci in $DX_ROOT" >&2; exit 1; }
db="$DX_TMP/rich.db"

dx_serve rich --chat --db "$db" --recall-window 2
timeout 120 node "$here/chat_rich.mjs" "ws://127.0.0.1:$DX_PORT" forbid
timeout 120 node "$here/chat_rich.mjs" "ws://127.0.0.1:$DX_PORT" edits
dx_stop "$DX_PID"

echo "== the recalled text is gone from the database file"
# After a clean stop the WAL is checkpointed into the file; no page of it,
# free or not, may still hold the recalled words (secure_delete).
if grep -a -q 'delete me' "$db" "$db-wal" 2>/dev/null; then
  echo "FAIL: the recalled text is still in $db" >&2
  exit 1
fi
grep -a -q 'fixed text' "$db" || { echo "FAIL: the edited text is not in $db (wrong file?)" >&2; exit 1; }
echo "ok   'delete me' (recalled) is in no page of the database; 'fixed text' (edited) is"
echo "chat rich: passed"
