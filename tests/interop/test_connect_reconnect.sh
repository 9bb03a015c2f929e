#!/usr/bin/env bash
# `duplex connect --reconnect` against `duplex serve --echo` that goes away
# and comes back on the same port: lines typed while it is down are queued
# and echoed once it is back, in order, once each; stderr says what is
# going on. Then --max-retries gives up, and failover skips a dead URL.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

# wait_for FILE PATTERN : up to 20 s for a line matching PATTERN.
wait_for() {
  local i
  for i in $(seq 1 400); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "timed out waiting for '$2' in $1:" >&2
  cat "$1" >&2
  return 1
}

# serve_on PORT : duplex serve --echo back on that port (retried: the port
# was ours a moment ago, and another process may hold it for an instant).
serve_on() {
  local i
  for i in $(seq 1 50); do
    # 3>&-: the server must not hold the client's stdin fifo open.
    "$DUPLEX" serve --echo --port "$1" 2>"$DX_TMP/again.log" 3>&- &
    DX_PID=$!
    DX_PIDS+=("$DX_PID")
    for _ in $(seq 1 40); do
      grep -q 'listening on' "$DX_TMP/again.log" 2>/dev/null && return 0
      kill -0 "$DX_PID" 2>/dev/null || break
      sleep 0.05
    done
    sleep 0.1
  done
  echo "could not serve on port $1 again" >&2
  return 1
}

echo "== down, queued, back"
dx_serve first --echo
port=$DX_PORT
mkfifo "$DX_TMP/in"
"$DUPLEX" connect --reconnect --backoff 0.05 --backoff-max 0.3 --ping-interval 0.5 \
  "ws://127.0.0.1:$port/" <"$DX_TMP/in" >"$DX_TMP/out" 2>"$DX_TMP/err" &
client=$!
DX_PIDS+=("$client")
exec 3>"$DX_TMP/in"
echo one >&3
wait_for "$DX_TMP/out" '^one$'
dx_stop "$DX_PID"
wait_for "$DX_TMP/err" 'connection lost'
wait_for "$DX_TMP/err" 'reconnecting in'
echo two >&3
echo three >&3
wait_for "$DX_TMP/err" 'connecting to .*(attempt 2)'
serve_on "$port"
wait_for "$DX_TMP/out" '^three$'
echo four >&3
wait_for "$DX_TMP/out" '^four$'
exec 3>&-
rc=0
timeout 20 tail --pid="$client" -f /dev/null || { echo "connect did not exit at EOF" >&2; exit 1; }
wait "$client" || rc=$?
cat "$DX_TMP/err"
[ "$rc" = 0 ] || { echo "exit status $rc, want 0" >&2; exit 1; }
printf 'one\ntwo\nthree\nfour\n' | cmp - "$DX_TMP/out"
grep -q 'connected to ws://127.0.0.1' "$DX_TMP/err"
[ "$(grep -c 'connected to' "$DX_TMP/err")" = 2 ]
dx_stop "$DX_PID"

echo "== --max-retries gives up"
rc=0
timeout 30 "$DUPLEX" connect --reconnect --max-retries 2 --backoff 0.01 \
  "ws://127.0.0.1:$port/" </dev/null >/dev/null 2>"$DX_TMP/err2" || rc=$?
cat "$DX_TMP/err2"
[ "$rc" = 1 ] || { echo "exit status $rc, want 1" >&2; exit 1; }
[ "$(grep -c 'connection refused' "$DX_TMP/err2")" = 3 ]
grep -q 'reconnecting in .* (attempt 2 of 2)' "$DX_TMP/err2"
grep -q 'giving up after 2 reconnect attempts' "$DX_TMP/err2"

echo "== failover"
dx_serve second --echo
rc=0
out=$(echo hello | timeout 30 "$DUPLEX" connect --reconnect --backoff 0.01 \
  "ws://127.0.0.1:$port/" "ws://127.0.0.1:$DX_PORT/" 2>"$DX_TMP/err3") || rc=$?
cat "$DX_TMP/err3"
[ "$rc" = 0 ] || { echo "exit status $rc, want 0" >&2; exit 1; }
[ "$out" = hello ]
grep -q "connected to ws://127.0.0.1:$DX_PORT/" "$DX_TMP/err3"

echo "== usage"
rc=0
"$DUPLEX" connect ws://127.0.0.1:1/ ws://127.0.0.1:2/ 2>/dev/null || rc=$?
[ "$rc" = 2 ]
dx_stop "$DX_PID"
echo "connect --reconnect: passed"
