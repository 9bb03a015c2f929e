#!/usr/bin/env bash
# Issue 21, item 2: the live status page of `duplex serve --metrics`
# (/status, cli/status.c, web/status) in headless Chromium under load,
# echo then chat (tests/e2e/status.mjs: the numbers follow the load, the
# charts draw, the phone layout fits, screenshots in tests/e2e/artifacts/ or
# $DX_ARTIFACTS; DX_DOCS_SHOTS=DIR also writes DIR/status.png). Then who may
# see it: 403 for the page and its WebSocket from a non-loopback address
# unless --metrics-public, 403 for a browser page of another origin, 404
# without --metrics.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
chat_e2e_deps
command -v curl >/dev/null || { echo "curl is missing" >&2; exit 1; }
art=${DX_ARTIFACTS:-$here/artifacts}
mkdir -p "$art"
fail=0

run_page() { # MODE: status.mjs against the server in DX_PORT
  timeout 150 node "$here/status.mjs" "$DUPLEX" "$DX_PORT" "$1" "$art" || {
    echo "--- server log" >&2
    tail -n 20 "$DX_TMP/$1.log" >&2 || true
    fail=1
  }
}

dx_serve echo --echo --metrics
run_page echo
dx_stop "$DX_PID"

dx_serve chat --chat --metrics --rate-limit send=100/100
run_page chat
dx_stop "$DX_PID"

# code URL [curl options] : the HTTP status of one request.
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }
# The upgrade request a browser sends (curl gives up on the 101: -m 1).
upgrade() { curl -s -o /dev/null -w '%{http_code}' -m 1 -H 'Connection: Upgrade' -H 'Upgrade: websocket' \
  -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' "$@" || true; }
expect() { # WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "ok   $1: $2"; else
    echo "FAIL $1: $2, want $3"
    fail=1
  fi
}

dx_serve plain --echo
expect "/status without --metrics" "$(code "http://127.0.0.1:$DX_PORT/status")" 404
dx_stop "$DX_PID"

dx_serve origin --echo --metrics
p=$DX_PORT
expect "feed, no Origin" "$(upgrade "http://127.0.0.1:$p/status/ws")" 101
expect "feed, Origin of the page" "$(upgrade -H "Origin: http://127.0.0.1:$p" "http://127.0.0.1:$p/status/ws")" 101
expect "feed, Origin of another site" "$(upgrade -H 'Origin: http://evil.example' "http://127.0.0.1:$p/status/ws")" 403
expect "feed, Origin of another port" "$(upgrade -H "Origin: http://127.0.0.1:1" "http://127.0.0.1:$p/status/ws")" 403
expect "POST /status" "$(code -X POST "http://127.0.0.1:$p/status")" 405
expect "the page's script" "$(code "http://127.0.0.1:$p/status/status.js")" 200
dx_stop "$DX_PID"

ext=$(ip -4 -o addr show scope global 2>/dev/null | awk '{ sub(/\/.*/, "", $4); print $4; exit }')
if [ -n "$ext" ]; then
  dx_serve ext --echo --metrics --host 0.0.0.0
  expect "page from $ext" "$(code "http://$ext:$DX_PORT/status")" 403
  expect "feed from $ext" "$(upgrade "http://$ext:$DX_PORT/status/ws")" 403
  expect "page from 127.0.0.1" "$(code "http://127.0.0.1:$DX_PORT/status")" 200
  dx_stop "$DX_PID"
  dx_serve pub --echo --metrics-public --host 0.0.0.0
  expect "--metrics-public: page from $ext" "$(code "http://$ext:$DX_PORT/status")" 200
  expect "--metrics-public: feed from $ext" "$(upgrade "http://$ext:$DX_PORT/status/ws")" 101
  dx_stop "$DX_PID"
else
  echo "skip: no non-loopback IPv4 address here to test the 403"
fi

[ "$fail" = 0 ] || exit 1
echo "status page e2e: passed"
