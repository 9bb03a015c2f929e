#!/usr/bin/env bash
# Three `duplex serve --broadcast --redis` nodes behind one real redis-server
# (Debian), with Python websockets clients on every node (node 0 runs two
# threads, so a message also crosses threads inside one node):
#   1. cross-node delivery, exactly once per client;
#   2. Redis killed: local delivery goes on, /healthz says 503 degraded;
#   3. Redis restarted on the same port: the nodes reconnect by themselves
#      and cross-node delivery resumes;
#   4. one node killed with SIGKILL: the two others go on;
#   5. the survivors exit cleanly on SIGTERM (under ASan: no leak).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
PY=/usr/bin/python3
"$PY" -c 'import websockets' 2>/dev/null || { echo "python3-websockets is missing (make deps)" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server is missing (make deps)" >&2; exit 1; }

trap 'dx_redis_stop; dx_cleanup' EXIT

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# healthz PORT: "<status code> <body>" of GET /healthz.
healthz() {
  local out
  out=$(exec 4<>"/dev/tcp/127.0.0.1/$1" &&
    printf 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&4 &&
    timeout 5 cat <&4) || true
  printf '%s %s\n' "$(printf '%s' "$out" | head -1 | cut -d' ' -f2)" "$(printf '%s' "$out" | tail -1)"
}

# wait_log FILE PATTERN COUNT: until PATTERN has COUNT matching lines (15 s).
wait_log() {
  local i
  for i in $(seq 1 300); do
    [ "$(grep -c "$2" "$1" 2>/dev/null || true)" -ge "$3" ] && return 0
    sleep 0.05
  done
  echo "FAIL: '$2' x$3 never showed in $1:" >&2
  cat "$1" >&2
  return 1
}

expect_health() { # PORT CODE BODY-SUBSTRING
  local h
  h=$(healthz "$1")
  case "$h" in
    "$2 "*"$3"*) echo "ok   /healthz of :$1 is $h" ;;
    *) echo "FAIL /healthz of :$1 is '$h', expected $2 ...$3..." >&2; exit 1 ;;
  esac
}

for try in 1 2 3 4 5; do
  RPORT=$(free_port)
  dx_redis_start "$RPORT" && break
done
[ -n "$REDIS_PID" ] || { echo "redis-server did not start" >&2; cat "$DX_TMP/redis.log" >&2; exit 1; }
URL="redis://127.0.0.1:$RPORT/3"

PORTS=() NODE_PIDS=() LOGS=()
THREADS=(2 1 1) # one "redis up" line per thread and connection
for n in 0 1 2; do
  dx_serve "node$n" --broadcast --redis "$URL" --threads "${THREADS[$n]}"
  PORTS+=("$DX_PORT") NODE_PIDS+=("$DX_PID") LOGS+=("$DX_TMP/node$n.log")
done
for n in 0 1 2; do wait_log "${LOGS[$n]}" 'redis up' "${THREADS[$n]}"; done
WS=("ws://127.0.0.1:${PORTS[0]}/" "ws://127.0.0.1:${PORTS[1]}/" "ws://127.0.0.1:${PORTS[2]}/")

echo "== 1. three nodes, two clients each: cross-node delivery, exactly once"
for n in 0 1 2; do expect_health "${PORTS[$n]}" 200 '"status":"ok","redis":"up"'; done
timeout 60 "$PY" "$here/redis_cluster.py" cross 3 "${WS[@]}"

echo "== 2. Redis killed: local delivery only, /healthz degraded"
dx_redis_stop
for n in 0 1 2; do wait_log "${LOGS[$n]}" 'redis down' "${THREADS[$n]}"; done
for n in 0 1 2; do expect_health "${PORTS[$n]}" 503 '"status":"degraded","redis":"down"'; done
timeout 60 "$PY" "$here/redis_cluster.py" local 3 "${WS[@]}"

echo "== 3. Redis back on the same port: the nodes reconnect"
dx_redis_start "$RPORT" || { echo "redis-server did not restart on $RPORT" >&2; exit 1; }
for n in 0 1 2; do wait_log "${LOGS[$n]}" 'redis up' $((2 * THREADS[n])); done
for n in 0 1 2; do expect_health "${PORTS[$n]}" 200 '"status":"ok"'; done
timeout 60 "$PY" "$here/redis_cluster.py" cross 2 "${WS[@]}"

echo "== 4. node 2 killed with SIGKILL: nodes 0 and 1 go on"
kill -9 "${NODE_PIDS[2]}"
wait "${NODE_PIDS[2]}" 2>/dev/null || true
timeout 60 "$PY" "$here/redis_cluster.py" cross 2 "${WS[0]}" "${WS[1]}"
expect_health "${PORTS[0]}" 200 '"status":"ok"'

echo "== 5. clean exit"
dx_stop "${NODE_PIDS[0]}"
dx_stop "${NODE_PIDS[1]}"
echo "redis cluster: passed"
