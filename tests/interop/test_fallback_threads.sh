#!/usr/bin/env bash
# The HTTP fallback with `duplex serve --threads 4` (docs/fallback.md,
# "Threads: handed over"): sessions whose every request comes on a new
# connection, which any thread may accept, over http:// and https://
# (tests/interop/fallback_threads.py checks every echo once and in order,
# the offsets, the close). The metrics then show hand-overs happened, and
# the server stops cleanly (0) with sessions of every thread still open.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || { echo "SKIP: no curl"; exit 0; }
PY="/usr/bin/python3 $DX_ROOT/tests/interop/fallback_threads.py"

dx_serve plain --echo --threads 4 --metrics
$PY http "$DX_PORT" 24 6
m=$(curl -s --max-time 5 "http://127.0.0.1:$DX_PORT/metrics")
handed=$(awk '$1 == "duplex_sessions_handed_over_total" { print $2 }' <<<"$m")
opened=$(awk '$1 == "duplex_sessions_opened_total" { print $2 }' <<<"$m")
[ "$opened" = 24 ] || { echo "FAIL duplex_sessions_opened_total = '$opened', want 24"; exit 1; }
# 24 sessions x (6 up + 1 poll or more + close + poll + the 404) requests,
# each on a connection the kernel gave to one of 4 threads: if no request
# had been handed over, every one would have landed on its own session's
# thread by chance (about 4^-250).
if [ -n "$handed" ] && [ "$handed" -gt 0 ]; then echo "ok   $handed requests handed to their session's thread"; else
  echo "FAIL duplex_sessions_handed_over_total = '$handed'"
  exit 1
fi
# Sessions left open on every thread: shutdown still ends cleanly.
for i in 1 2 3 4 5 6; do
  curl -s -o /dev/null -X POST -H 'X-Duplex-Session: 1' "http://127.0.0.1:$DX_PORT/"
done
dx_stop "$DX_PID" || { echo "FAIL the server did not stop cleanly"; cat "$DX_TMP/plain.log"; exit 1; }
echo "ok   stopped with exit 0, sessions open"

dx_cert "$DX_TMP"
dx_serve tls --echo --threads 4 --cert "$DX_TMP/cert.pem" --key "$DX_TMP/key.pem"
$PY https "$DX_PORT" 12 4
dx_stop "$DX_PID" || { echo "FAIL the TLS server did not stop cleanly"; cat "$DX_TMP/tls.log"; exit 1; }
echo "fallback threads: passed"
