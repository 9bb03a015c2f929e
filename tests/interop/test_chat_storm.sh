#!/usr/bin/env bash
# A reconnection storm (chat_storm.mjs, which runs bench/chat/storm.mjs):
# 2,000 users in direct pairs send 3 acked messages each and one more that
# may be in flight, the server is killed (SIGKILL) and restarted at once on
# the same database and port, and every client reconnects at the same moment,
# syncs and resends what was never acked. Checked: all users back and synced,
# every acked message stored exactly once at its seq, /healthz answered
# during the storm. Not timed: the timeouts only turn a hang into a failure.
# DX_STORM_USERS changes the number of users (2,000; under ASan as well).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
command -v node >/dev/null || { echo "node is missing (make deps)" >&2; exit 1; }
[ -f "$DX_ROOT/node_modules/ws/index.js" ] || { echo "ws is missing: npm ci in $DX_ROOT" >&2; exit 1; }
users=${DX_STORM_USERS:-2000}
# A socket per user in the driver and in the server, which inherits this.
want=$((users + 1000))
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge "$want" ] ||
  { echo "ulimit -n is $(ulimit -n), the storm needs $want" >&2; exit 1; }
db="$DX_TMP/chat.db"
ctl="$DX_TMP/ctl"
mkdir "$ctl"
chat=(--chat --db "$db" --rate-limit send=off --rate-limit bytes=off)

echo "== $users users, kill -9, restart on the same port, storm"
dx_serve storm1 "${chat[@]}"
port=$DX_PORT
DX_STORM_CTL=$ctl timeout 300 node "$here/chat_storm.mjs" "ws://127.0.0.1:$port" storm "$users" &
driver=$!
while [ ! -f "$ctl/ready" ]; do
  kill -0 "$driver" 2>/dev/null || { wait "$driver"; echo "the driver ended before the kill" >&2; exit 1; }
  sleep 0.01
done
kill -KILL "$DX_PID"
wait "$DX_PID" 2>/dev/null || true
date +%s%3N >"$ctl/restart.tmp"
mv "$ctl/restart.tmp" "$ctl/restart"
dx_serve storm2 "${chat[@]}" --port "$port"
rc=0
wait "$driver" || rc=$?
if [ "$rc" != 0 ]; then
  echo "the storm failed ($rc); the restarted server's log:" >&2
  tail -20 "$DX_TMP/storm2.log" >&2
  exit 1
fi
dx_stop "$DX_PID"
echo "chat storm interop: passed"
