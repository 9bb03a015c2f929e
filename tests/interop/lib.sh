# Shared by the interop and e2e scripts: start `duplex serve` on a free port
# and stop it on exit. Source it; needs DUPLEX (the command) and DX_ROOT.
: "${DUPLEX:?set DUPLEX to the duplex command}"
: "${DX_ROOT:?set DX_ROOT to the source directory}"

# check WHAT COMMAND... : runs COMMAND and prints "ok: WHAT", or "FAIL: WHAT"
# counted in DX_FAILS (a script ends with a failure when it is not 0).
# one_line FILE : FILE holds exactly one line (a one-line error message).
DX_FAILS=0
check() {
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; DX_FAILS=$((DX_FAILS + 1)); fi
}
one_line() { test "$(wc -l <"$1")" = 1; }

DX_TMP=$(mktemp -d /tmp/duplex-test.XXXXXX)
DX_PIDS=()
dx_cleanup() {
  local pid
  for pid in "${DX_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${DX_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$DX_TMP"
}
trap dx_cleanup EXIT

# dx_redis_start PORT : a throwaway redis-server on 127.0.0.1:PORT (nothing
# saved, its log in $DX_TMP/redis.log); sets REDIS_PID once it answers
# PING, or returns 1 with REDIS_PID empty. dx_redis_stop kills it (-9: an
# outage, not a shutdown); a script that starts one also calls it on EXIT.
REDIS_PID=
dx_redis_start() {
  redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no --dir "$DX_TMP" \
    --daemonize no --loglevel warning >>"$DX_TMP/redis.log" 2>&1 &
  REDIS_PID=$!
  local i
  for i in $(seq 1 100); do
    if redis-cli -p "$1" ping 2>/dev/null | grep -q PONG; then return 0; fi
    kill -0 "$REDIS_PID" 2>/dev/null || break
    sleep 0.05
  done
  REDIS_PID=
  return 1
}
dx_redis_stop() {
  if [ -n "$REDIS_PID" ]; then
    kill -9 "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=
  fi
}

# dx_serve NAME ARGS... : starts `duplex serve --port 0 ARGS`, waits for its
# listening line and sets DX_PORT and DX_PID. Its stderr goes to
# $DX_TMP/NAME.log.
dx_serve() {
  local name=$1
  shift
  "$DUPLEX" serve --port 0 "$@" 2>"$DX_TMP/$name.log" &
  DX_PID=$!
  DX_PIDS+=("$DX_PID")
  local i
  for i in $(seq 1 100); do
    if grep -q 'listening on' "$DX_TMP/$name.log" 2>/dev/null; then
      DX_PORT=$(sed -n 's/.*listening on [a-z]*:\/\/[^ ]*:\([0-9]*\) .*/\1/p' "$DX_TMP/$name.log" | head -1)
      return 0
    fi
    if ! kill -0 "$DX_PID" 2>/dev/null; then break; fi
    sleep 0.05
  done
  echo "duplex serve did not start:" >&2
  cat "$DX_TMP/$name.log" >&2
  return 1
}

# dx_stop PID : SIGTERM, then require a clean exit (0) within 5 s.
dx_stop() {
  local pid=$1 i
  kill -TERM "$pid"
  for i in $(seq 1 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid"
      return $?
    fi
    sleep 0.05
  done
  echo "server $pid did not exit after SIGTERM" >&2
  return 1
}

# dx_cert DIR : a self-signed certificate for 127.0.0.1/localhost.
dx_cert() {
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$1/key.pem" -out "$1/cert.pem" >/dev/null 2>&1
}

# dx_check_json NAME JSON PYTHON-CONDITION... : each condition is evaluated
# with `d` the parsed JSON (a bench report); the first false one fails the
# test, naming the condition.
dx_check_json() {
  local name=$1 json=$2
  shift 2
  echo "$name: $json"
  /usr/bin/python3 - "$json" "$@" <<'PY' || { echo "$name: FAILED" >&2; exit 1; }
import json, sys
d = json.loads(sys.argv[1])
for cond in sys.argv[2:]:
    if not eval(cond, {}, {"d": d}):
        print("failed:", cond, file=sys.stderr)
        sys.exit(1)
PY
}
