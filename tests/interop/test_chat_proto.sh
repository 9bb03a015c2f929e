#!/usr/bin/env bash
# The chat protocol over real WebSockets (Node `ws` ↔ `duplex serve --chat`):
# every request type, errors, presence and identification; then durability:
# messages acked before a kill -9 are all there after the restart, once each,
# and their resends are recognised; then signed tokens with --secret.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
command -v node >/dev/null || { echo "node is missing (make deps)" >&2; exit 1; }
[ -f "$DX_ROOT/node_modules/ws/index.js" ] || { echo "ws is missing: npm ci in $DX_ROOT" >&2; exit 1; }
client="$here/chat_client.mjs"
db="$DX_TMP/chat.db"

echo "== protocol"
dx_serve proto --chat --db "$DX_TMP/proto.db"
timeout 120 node "$client" "ws://127.0.0.1:$DX_PORT" proto
dx_stop "$DX_PID"

echo "== kill -9 after the acks"
# 200 sends at once, then 200 resends: past the default send burst (100),
# which is not what this checks (tests/unit/test_chat_limits.c does).
dx_serve durable1 --chat --db "$db" --rate-limit send=off
timeout 120 node "$client" "ws://127.0.0.1:$DX_PORT" write 200
kill -KILL "$DX_PID"
wait "$DX_PID" 2>/dev/null || true
[ -f "$db-wal" ] || { echo "no WAL file next to the database" >&2; exit 1; }
dx_serve durable2 --chat --db "$db" --rate-limit send=off
timeout 120 node "$client" "ws://127.0.0.1:$DX_PORT" check 200
dx_stop "$DX_PID"

echo "== tokens"
token=$("$DUPLEX" serve --chat --secret s3cret-for-tests-only --token-for alice --token-ttl 600)
case "$token" in alice.*.*) ;; *) echo "bad token '$token'" >&2; exit 1 ;; esac
if "$DUPLEX" serve --token-for alice >/dev/null 2>&1; then
  echo "--token-for without a secret should fail" >&2; exit 1
fi
dx_serve tok --chat --secret s3cret-for-tests-only
timeout 60 node "$client" "ws://127.0.0.1:$DX_PORT" token "$token"
dx_stop "$DX_PID"

echo "== usage errors"
expect_exit() { # STATUS ARGS...: duplex serve ARGS exits with STATUS and says why
  local want=$1 rc=0
  shift
  "$DUPLEX" serve --port 0 "$@" >/dev/null 2>"$DX_TMP/usage.err" || rc=$?
  [ "$rc" = "$want" ] && [ -s "$DX_TMP/usage.err" ] || { echo "serve $* exited $rc, wanted $want" >&2; exit 1; }
}
expect_exit 2 --chat --threads 2
expect_exit 2 --echo --db "$DX_TMP/x.db"
expect_exit 2 --chat --token-ttl 0
expect_exit 1 --chat --db /nonexistent-dir/chat.db
# Through a file: grep -q stops reading at its match, and a help text
# still being written would die of SIGPIPE (a failure under pipefail).
"$DUPLEX" serve --help >"$DX_TMP/help.txt"
grep -q -- '--chat' "$DX_TMP/help.txt"

echo "== --echo is unchanged"
dx_serve echo --echo
out=$(echo 'hello, 世界' | timeout 20 "$DUPLEX" connect "ws://127.0.0.1:$DX_PORT/")
[ "$out" = 'hello, 世界' ] || { echo "echo answered '$out'" >&2; exit 1; }
dx_stop "$DX_PID"
echo "chat protocol interop: passed"
