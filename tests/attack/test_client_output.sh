#!/usr/bin/env bash
# The client side of "never echo attacker bytes": a hostile server closes
# with a reason made of terminal escapes, CR/LF and BEL (valid UTF-8, so
# the protocol allows it). `duplex connect` reports the close on stderr
# with every control byte escaped (\x1b), so the server cannot draw on the
# user's terminal or forge a line of output.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
coproc HOSTILE { python3 "$here/hostile_server.py"; }
DX_PIDS+=("$HOSTILE_PID")
read -r port <&"${HOSTILE[0]}"
# stdin stays open (EOF would make the client close first, with 1000).
mkfifo "$DX_TMP/in"
exec 3<>"$DX_TMP/in"
rc=0
timeout 20 "$DUPLEX" connect -q "ws://127.0.0.1:$port/" <"$DX_TMP/in" >"$DX_TMP/out" 2>"$DX_TMP/err" || rc=$?
exec 3>&-
cat -v "$DX_TMP/err"
fails=0
if [ "$rc" != 1 ]; then echo "FAIL: exit $rc (want 1 for close 4000)"; fails=1; fi
if grep -q '4000' "$DX_TMP/err" && grep -qF '\x1b[31mEVIL\x0d\x0aduplex: fake line\x07' "$DX_TMP/err"; then
  echo "ok: the reason is reported with its control bytes escaped"
else
  echo "FAIL: the reason is not reported escaped"; fails=1
fi
if LC_ALL=C grep -q $'[\x01-\x09\x0b-\x1f\x7f]' "$DX_TMP/err" || [ "$(wc -l <"$DX_TMP/err")" != 1 ]; then
  echo "FAIL: raw control bytes or an extra line on stderr"; fails=1
else
  echo "ok: no raw control byte and no forged line on stderr"
fi
[ "$fails" = 0 ]
echo "client output: passed"
