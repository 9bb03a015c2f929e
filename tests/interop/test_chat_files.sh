#!/usr/bin/env bash
# Pictures and files over real sockets (Node `ws` and fetch ↔ `duplex serve
# --chat`): chunked uploads, a file sent in a direct conversation and
# downloaded by its member with the headers that keep a browser from
# rendering it (nosniff, sandbox CSP, attachment unless an image), Range,
# 304, 416; 404 for a non-member, 403 without a credential; --max-upload.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
command -v node >/dev/null || { echo "node is missing (make deps)" >&2; exit 1; }
[ -f "$DX_ROOT/node_modules/ws/index.js" ] || { echo "ws is missing: npm ci in $DX_ROOT" >&2; exit 1; }
client="$here/chat_files.mjs"

echo "== files"
dx_serve files --chat --db "$DX_TMP/chat.db" --files "$DX_TMP/files"
timeout 120 node "$client" "ws://127.0.0.1:$DX_PORT" files
dx_stop "$DX_PID"
# Stored once each, by content; no upload left half done.
[ -z "$(ls -A "$DX_TMP/files/tmp")" ] || { echo "temp files left behind" >&2; ls -l "$DX_TMP/files/tmp" >&2; exit 1; }

echo "== the default directory beside the database"
dx_serve beside --chat --db "$DX_TMP/beside.db"
[ -d "$DX_TMP/beside.db.files/tmp" ] || { echo "no $DX_TMP/beside.db.files" >&2; exit 1; }
dx_stop "$DX_PID"

echo "== --max-upload"
dx_serve small --chat --db "$DX_TMP/small.db" --files "$DX_TMP/small" --max-upload 1000
timeout 60 node "$client" "ws://127.0.0.1:$DX_PORT" toolarge
dx_stop "$DX_PID"
[ -z "$(ls -A "$DX_TMP/small/tmp")" ] || { echo "the refused upload left a file" >&2; exit 1; }

echo "== usage errors"
rc=0
"$DUPLEX" serve --port 0 --chat --files /nonexistent-dir/files 2>"$DX_TMP/err" >/dev/null || rc=$?
[ "$rc" = 1 ] && grep -q '/nonexistent-dir/files' "$DX_TMP/err" || { echo "bad --files: exit $rc: $(cat "$DX_TMP/err")" >&2; exit 1; }
rc=0
"$DUPLEX" serve --port 0 --chat --max-upload 0 2>/dev/null >/dev/null || rc=$?
[ "$rc" = 2 ] || { echo "--max-upload 0 exited $rc, wanted 2" >&2; exit 1; }
rc=0
"$DUPLEX" serve --port 0 --echo --files "$DX_TMP/x" 2>/dev/null >/dev/null || rc=$?
[ "$rc" = 2 ] || { echo "--echo --files exited $rc, wanted 2" >&2; exit 1; }
"$DUPLEX" serve --help >"$DX_TMP/help.txt"
grep -q -- '--max-upload' "$DX_TMP/help.txt"
grep -q -- '--recall-window' "$DX_TMP/help.txt"
echo "chat files interop: passed"
