#!/usr/bin/env bash
# Slowloris: 1,000 connections send the upgrade request one byte a second.
# The server drops every one of them at its handshake timeout (3 s here),
# answers none, and a normal client gets its echo meanwhile.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dx_serve slow --echo --handshake-timeout 3
attack slowloris 1000 3
dx_stop "$DX_PID"
no_echo_in_log slow
echo "slowloris: passed"
