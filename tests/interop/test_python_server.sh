#!/usr/bin/env bash
# `duplex connect` ↔ Debian's python3-websockets server (python_server.py),
# over ws:// and wss://, --echo included. /usr/bin/python3 on purpose: the
# python3 first on PATH may be another one, without websockets.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/client_lib.sh"
PY=/usr/bin/python3
"$PY" -c 'import websockets' 2>/dev/null || {
  echo "python3-websockets is missing (apt-get install python3-websockets)" >&2
  exit 1
}

echo "== ws:// (python websockets $("$PY" -c 'import websockets; print(websockets.__version__)'))"
peer_start python "$PY" "$here/python_server.py"
client_matrix "ws://127.0.0.1:$PEER_PORT"

echo "== wss://"
dx_cert "$DX_TMP"
peer_start python-tls "$PY" "$here/python_server.py" --tls "$DX_TMP/cert.pem" "$DX_TMP/key.pem"
client_tls_checks "wss://127.0.0.1:$PEER_PORT"

if [ "$DX_FAILS" -ne 0 ]; then
  echo "python server interop: $DX_FAILS check(s) failed"
  exit 1
fi
echo "python server interop: passed"
