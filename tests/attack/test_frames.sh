#!/usr/bin/env bash
# Frame-level attacks on one server (--max-message 64 KiB): a header
# announcing 2^62 bytes (1009 at once), 1-byte continuations past the limit
# (1009), a ping flood (every pong back, memory flat), invalid UTF-8 at
# every position of a fragmented text message (1007 at the fragment that
# holds it), resets mid-frame and mid-handshake, half-closed sockets.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dx_serve frames --echo --max-message 65536
attack bigframe
attack conts 65536
attack pingflood 20000
attack utf8
attack resets 100
dx_stop "$DX_PID"
echo "frames: passed"
