#!/usr/bin/env bash
# Python `websockets` client ↔ `duplex serve --echo`, over ws:// and wss://.
# Uses Debian's /usr/bin/python3, which has python3-websockets.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
PY=/usr/bin/python3
"$PY" -c 'import websockets' 2>/dev/null || { echo "python3-websockets is missing (make deps)" >&2; exit 1; }

echo "== ws://"
dx_serve plain --echo
timeout 120 "$PY" "$here/python_client.py" "ws://127.0.0.1:$DX_PORT/"
dx_stop "$DX_PID"

echo "== wss://"
dx_cert "$DX_TMP"
dx_serve tls --echo --cert "$DX_TMP/cert.pem" --key "$DX_TMP/key.pem"
timeout 120 "$PY" "$here/python_client.py" "wss://127.0.0.1:$DX_PORT/" --insecure
dx_stop "$DX_PID"
echo "== broadcast, 2 threads (one shared listening socket)"
dx_serve bcast --broadcast --threads 2
timeout 60 "$PY" "$here/python_client.py" "ws://127.0.0.1:$DX_PORT/" --broadcast 12
dx_stop "$DX_PID"
echo "python client interop: passed"
