#!/usr/bin/env bash
# Unfinished messages (issue 16): with permessage-deflate, the ~15 KB
# compressed start of a 15 MiB message makes the server hold the 16 MiB
# it inflates for as long as the message stays unfinished. 24 such clients
# against the defaults (a 64 MiB budget over all partial messages): at most
# 4 stay open, the rest get 1009, the server's peak RSS grows by far less
# than the 384 MiB they asked for, and afterwards a fragmented compressed
# message of the same size still echoes (what was freed left the total).
# Then --partial-timeout: a message trickled a byte every 100 ms gets 1008
# when its time is up, and one finished in time echoes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
# Growth allowed: the budget, one message over it before the biggest
# holder is closed, and the allocator's slack (ASan keeps freed blocks
# in its quarantine).
GROW=$(( (64 + 32) * 1024 ))
[ "${DX_SANITIZE:-0}" = 1 ] && GROW=$(( (64 + 64) * 1024 ))
dx_serve partial --echo
"$DX_TMP/attacker" --pid "$DX_PID" --rss-slack "$RSS_SLACK" partial "$DX_PORT" 24 15 4 "$GROW"
dx_stop "$DX_PID"

dx_serve partialtime --echo --partial-timeout 1 --max-partial-total 8388608
attack partialtime 1
dx_stop "$DX_PID"
no_echo_in_log partialtime
echo "partial: passed"
