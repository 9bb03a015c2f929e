#!/usr/bin/env bash
# `duplex bench --transport stream|poll|eio`: the load generator over HTTP.
# stream and poll against `duplex serve --echo` (its HTTP session transport,
# docs/fallback.md), eio against Socket.IO 4 (bench/fallback/sio_server.mjs)
# over Engine.IO long-polling. Each runs briefly; its --json report must be
# sane (messages measured, no errors, echoes never more than were sent plus
# those in flight when the window opened) and the sessions must be closed
# cleanly at the end. Speed is not asserted (a shared machine, ASan builds).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
PY=/usr/bin/python3

SANE=('d["errors"] == 0' 'd["closes"] == 0' 'd["first_error"] is None' 'd["messages"] > 0'
  'd["latency_us"]["count"] > 0' '0 < d["latency_us"]["p50"] <= d["latency_us"]["max"]'
  'd["http_requests"] > 0')
# Every echo counted in the window was sent in it or was in flight when it
# opened (connections x inflight).
ECHOES='d["messages"] <= d["sent"] + d["connections"] * d["inflight"]'

metric() { # metric NAME: its value from duplex serve's /metrics
  "$PY" - "http://127.0.0.1:$DX_PORT/metrics" "$1" <<'EOF'
import sys, urllib.request
for line in urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().splitlines():
    if line.startswith(sys.argv[2] + " "):
        print(line.split()[-1])
EOF
}

dx_serve echo --echo --metrics
url="ws://127.0.0.1:$DX_PORT/"
opened=0
for t in stream poll; do
  json=$(timeout 20 "$DUPLEX" bench --url "$url" --transport $t --connections 4 --inflight 4 \
    --size 64 --duration 1 --server-pid "$DX_PID" --json)
  dx_check_json "$t" "$json" "${SANE[@]}" "$ECHOES" "d[\"transport\"] == \"$t\"" 'd["connected"] == 4' \
    'd["server_cpu_us_per_msg"] >= 0' 'abs(d["bytes_per_s"] / d["msgs_per_s"] - 64) < 0.01'
  json=$(timeout 20 "$DUPLEX" bench --url "$url" --transport $t --connections 2 --rate 200 \
    --duration 1 --binary --json)
  dx_check_json "$t-rate" "$json" "${SANE[@]}" 'd["mode"] == "rate"' 'd["binary"] is True' \
    '150 <= d["messages"] <= 260' 'd["overflows"] == 0'
  opened=$((opened + 6))
done
# The bench ends every session with a closing handshake and acknowledges
# the server's close frame, so none is left open (waiting for its expiry).
for _ in $(seq 1 40); do
  [ "$(metric 'duplex_connections_open{transport="http"}')" = 0 ] && break
  sleep 0.05
done
[ "$(metric 'duplex_connections_open{transport="http"}')" = 0 ] ||
  { echo "sessions left open after the bench" >&2; exit 1; }
[ "$(metric duplex_sessions_opened_total)" = "$opened" ] ||
  { echo "sessions opened: $(metric duplex_sessions_opened_total), want $opened" >&2; exit 1; }

# Socket.IO 4 long-polling.
command -v node >/dev/null || { echo "node is missing (make deps)" >&2; exit 1; }
[ -d "$DX_ROOT/node_modules/socket.io" ] || { echo "socket.io is missing: npm ci in $DX_ROOT" >&2; exit 1; }
node "$DX_ROOT/bench/fallback/sio_server.mjs" --port 0 >"$DX_TMP/sio.out" 2>&1 &
sio=$!
DX_PIDS+=("$sio")
for _ in $(seq 1 100); do grep -q '^listening' "$DX_TMP/sio.out" && break; sleep 0.05; done
sport=$(sed -n 's/^listening \([0-9]*\)$/\1/p' "$DX_TMP/sio.out")
[ -n "$sport" ] || { echo "sio_server.mjs did not start:" >&2; cat "$DX_TMP/sio.out" >&2; exit 1; }
json=$(timeout 20 "$DUPLEX" bench --url "http://127.0.0.1:$sport/" --transport eio --connections 4 \
  --inflight 4 --size 64 --duration 1 --server-pid "$sio" --json)
dx_check_json eio "$json" "${SANE[@]}" "$ECHOES" 'd["transport"] == "eio"' 'd["connected"] == 4' \
  'd["server_cpu_us_per_msg"] >= 0'
json=$(timeout 20 "$DUPLEX" bench --url "http://127.0.0.1:$sport/socket.io/" --transport eio \
  --connections 2 --rate 200 --duration 1 --json)
dx_check_json eio-rate "$json" "${SANE[@]}" 'd["mode"] == "rate"' '150 <= d["messages"] <= 260'

# Usage errors: exit 2 and one line.
bad() { # bad GREP ARGS...: `duplex bench ARGS` is a usage error whose line says GREP
  local want=$1 rc
  shift
  set +e
  "$DUPLEX" bench "$@" >"$DX_TMP/out" 2>"$DX_TMP/err"
  rc=$?
  set -e
  [ "$rc" = 2 ] && [ "$(wc -l <"$DX_TMP/err")" = 1 ] && grep -q -- "$want" "$DX_TMP/err" ||
    { echo "bench $*: rc $rc, want 2 and one line with '$want':" >&2; cat "$DX_TMP/err" >&2; exit 1; }
}
bad "stream, poll or eio, not 'foo'" --url "$url" --transport foo
bad 'text events only' --url "$url" --transport eio --binary
bad 'echo and rate modes' --url "$url" --transport poll --broadcast
bad 'one thread' --url "$url" --transport stream --threads 2
bad 'plain HTTP' --url "wss://127.0.0.1:1/" --transport stream
"$DUPLEX" bench --help | grep -q -- '--transport'
echo "bench over HTTP: passed"
