#!/usr/bin/env bash
# The server side of issue 17 (the messenger), over real sockets: members
# pushes (item 2), cids in what the server returns after a stall (item 5),
# refused sign-ins as close codes and the development sign-in (item 9),
# and `duplex serve --chat` finding its page from anywhere, printing where
# to open it, with `make run` building the command only (item 15).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
command -v node >/dev/null || { echo "node is missing (make deps)" >&2; exit 1; }
[ -f "$DX_ROOT/node_modules/ws/index.js" ] || { echo "ws is missing: npm ci in $DX_ROOT" >&2; exit 1; }
client="$here/chat_messenger.mjs"
secret=$(printf '%032d' 17)
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "== members (item 2)"
dx_serve members --chat
timeout 60 node "$client" "ws://127.0.0.1:$DX_PORT" members
dx_stop "$DX_PID"

echo "== cid after a stalled server (item 5)"
dx_serve cid --chat --db "$DX_TMP/cid.db"
timeout 60 node "$client" "ws://127.0.0.1:$DX_PORT" cid "$DX_PID"
dx_stop "$DX_PID"

echo "== sign-in (item 9)"
dx_serve signin --chat --secret "$secret"
token=$("$DUPLEX" serve --chat --secret "$secret" --token-for alice --token-ttl 600)
timeout 60 node "$client" "ws://127.0.0.1:$DX_PORT" signin "$token"
dx_stop "$DX_PID"
dx_serve devlogin --chat --secret "$secret" --dev-login --token-ttl 3600
timeout 60 node "$client" "ws://127.0.0.1:$DX_PORT" devlogin
dx_stop "$DX_PID"
grep -q "warning: --dev-login: anyone on this machine can sign in as anyone" "$DX_TMP/devlogin.log" ||
  fail "no warning for --dev-login: $(cat "$DX_TMP/devlogin.log")"
dx_serve dev --chat
timeout 60 node "$client" "ws://127.0.0.1:$DX_PORT" nodevlogin
dx_stop "$DX_PID"
rc=0
"$DUPLEX" serve --chat --port 0 --dev-login 2>"$DX_TMP/nosecret.err" || rc=$?
[ "$rc" = 2 ] && grep -q -- "--dev-login needs --secret" "$DX_TMP/nosecret.err" ||
  fail "--dev-login without a secret exited $rc: $(cat "$DX_TMP/nosecret.err")"
echo "ok   --dev-login without a secret is a usage error"

echo "== the web UI from anywhere (item 15)"
# An installed layout somewhere else: bin/duplex and share/duplex/chat.
inst="$DX_TMP/inst"
mkdir -p "$inst/bin" "$inst/share/duplex/chat" "$DX_TMP/elsewhere"
cp "$DUPLEX" "$inst/bin/duplex"
echo '<!doctype html><title>installed chat page</title>' >"$inst/share/duplex/chat/index.html"
pushd "$DX_TMP/elsewhere" >/dev/null
DUPLEX="$inst/bin/duplex" dx_serve inst --chat
popd >/dev/null
page=$(curl -s "http://127.0.0.1:$DX_PORT/")
[ "$page" = '<!doctype html><title>installed chat page</title>' ] || fail "GET / answered '$page'"
echo "ok   found $inst/share/duplex/chat from $DX_TMP/elsewhere"
grep -q "duplex: open http://127.0.0.1:$DX_PORT/?uid=alice" "$DX_TMP/inst.log" ||
  fail "no address to open: $(cat "$DX_TMP/inst.log")"
echo "ok   $(grep 'duplex: open' "$DX_TMP/inst.log")"
dx_stop "$DX_PID"
# With a secret the address comes with how to sign in.
pushd "$DX_TMP/elsewhere" >/dev/null
DUPLEX="$inst/bin/duplex" dx_serve inst2 --chat --secret "$secret" --host 0.0.0.0
popd >/dev/null
grep -q "duplex: open http://127.0.0.1:$DX_PORT/ and sign in with a token" "$DX_TMP/inst2.log" ||
  fail "no address with --secret: $(cat "$DX_TMP/inst2.log")"
dx_stop "$DX_PID"
# No page anywhere: the chat still runs, and says each place it looked.
rm -r "$inst/share"
pushd "$DX_TMP/elsewhere" >/dev/null
DUPLEX="$inst/bin/duplex" dx_serve none --chat
popd >/dev/null
for where in "$DX_TMP/elsewhere/web/chat/dist" "$inst/bin/web/chat/dist" "$inst/bin/../web/chat/dist" \
  "$inst/bin/../share/duplex/chat"; do
  grep -qF "$where" "$DX_TMP/none.log" || fail "the warning does not name $where: $(cat "$DX_TMP/none.log")"
done
grep -q "warning: no chat web UI (index.html) in" "$DX_TMP/none.log" || fail "no warning: $(cat "$DX_TMP/none.log")"
echo "ok   $(grep 'no chat web UI' "$DX_TMP/none.log")"
if grep -q "duplex: open" "$DX_TMP/none.log"; then fail "an address to open without a page"; fi
status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$DX_PORT/")
[ "$status" = 404 ] || fail "GET / without a page answered $status"
dx_stop "$DX_PID"

# make run: the command and the page, not the test programs.
plan=$(cd "$DX_ROOT" && make -n run BUILD="$DX_TMP/runbuild" 2>&1)
echo "$plan" | grep -q -- "cmake --build $DX_TMP/runbuild .*--target duplex" ||
  fail "make run does not build --target duplex only:
$plan"
if echo "$plan" | grep -E -- "cmake --build $DX_TMP/runbuild( -j [0-9]+)?\$" >/dev/null; then
  fail "make run builds everything:
$plan"
fi
echo "ok   make run builds: $(echo "$plan" | grep -- '--target duplex')"
echo "chat messenger (issue 17, server side): passed"
