#!/usr/bin/env bash
# Clients that never read. An echo peer that only sends is paused (the
# server stops reading it once its queue is half of --max-buffered), so
# TCP pushes back on it and memory stays bounded while others are served.
# A broadcast receiver that never reads is closed with 1008 once its queue
# reaches --max-buffered.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dx_serve noread --echo --max-buffered 262144
attack noread 3
dx_stop "$DX_PID"
dx_serve slowc --broadcast --max-buffered 262144
attack slowconsumer 262144
dx_stop "$DX_PID"
echo "backpressure: passed"
