#!/usr/bin/env bash
# Decompression bombs over permessage-deflate: 128 MiB of zeros compressed
# about 1000:1 (130 KB on the wire), whole and in 64 fragments, binary and
# text, against a server with --max-message 1 MiB: each gets 1009 and the
# server's peak RSS grows by far less than the bomb (it stops inflating at
# the limit). Corrupt compressed data gets 1007 (text) or 1002 (binary),
# RSV1 on a continuation 1002, and a real compressed message still echoes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dx_serve bomb --echo --max-message 1048576
attack bomb 128
dx_stop "$DX_PID"
echo "bomb: passed"
