#!/usr/bin/env bash
# The HTTP phase under attack: a 9 KiB header, 100 headers and a request
# line of 1 MiB get 431; binary garbage and TLS on the plain port get 400;
# no answer and no log line quotes the attacker's bytes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dx_serve http --echo
attack http
dx_stop "$DX_PID"
no_echo_in_log http
echo "http limits: passed"
