#!/usr/bin/env bash
# duplex connect --transport stream|poll (issue 20): the HTTP session
# transport from a terminal, against `duplex serve --echo`. Over ws:// and
# wss://, both down modes: 200 lines (UTF-8) and one of 200 KB come back in
# order, once, exit 0; binary lines with --hex; the server's close (1009
# from its --max-message) reported with exit 1; a server shut down mid-
# session ends it with 1001 and exit 0; a server without the fallback, a
# refused connection and an untrusted certificate are one-line errors with
# exit 1; clashing options are usage errors (exit 2).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
# run NAME ARGS... <stdin : `duplex connect ARGS`, 30 s at most; sets rc.
run() {
  local name=$1
  shift
  rc=0
  timeout 30 "$DUPLEX" connect "$@" >"$DX_TMP/$name.out" 2>"$DX_TMP/$name.err" || rc=$?
}

python3 -c '
lines = [f"line {i} ü" for i in range(200)] + ["x" * 200000] + ["end"]
print("\n".join(lines))' >"$DX_TMP/in.txt"
printf 'ab\n\001\002\n' >"$DX_TMP/bin.txt"
python3 -c 'print("y" * 400000)' >"$DX_TMP/big.txt"
dx_cert "$DX_TMP"
dx_serve plain --echo --max-message 300000
plain=$DX_PORT
dx_serve tls --echo --cert "$DX_TMP/cert.pem" --key "$DX_TMP/key.pem"
tls=$DX_PORT

for t in stream poll; do
  run "$t" -t "$t" --wait 2 "ws://127.0.0.1:$plain/any?q=1" <"$DX_TMP/in.txt"
  check "$t: exit 0 (exit $rc)" test "$rc" = 0
  check "$t: every line back in order, once" cmp -s "$DX_TMP/in.txt" "$DX_TMP/$t.out"
  check "$t: stderr names the transport" grep -q "over HTTP" "$DX_TMP/$t.err"
  check "$t: a clean close" grep -q "closed: 1000" "$DX_TMP/$t.err"
  run "$t-tls" -t "$t" --wait 2 --ca "$DX_TMP/cert.pem" "wss://127.0.0.1:$tls/" <"$DX_TMP/in.txt"
  check "$t over https: exit 0 (exit $rc), every line back" \
    cmp -s "$DX_TMP/in.txt" "$DX_TMP/$t-tls.out"
  run "$t-bin" -t "$t" -b --hex -q --wait 1 "ws://127.0.0.1:$plain/" <"$DX_TMP/bin.txt"
  check "$t: binary lines, printed in hex" test "$(cat "$DX_TMP/$t-bin.out")" = "$(printf '6162\n0102')"
  run "$t-big" -t "$t" --wait 3 "ws://127.0.0.1:$plain/" <"$DX_TMP/big.txt"
  check "$t: a message over the server's limit: exit 1 (exit $rc)" test "$rc" = 1
  check "  reported as the server's close 1009" grep -q "closed: 1009" "$DX_TMP/$t-big.err"
done

# A server shut down during a session: its 1001 ends the session cleanly.
dx_serve going --echo
(echo one; sleep 4) | timeout 20 "$DUPLEX" connect -t poll "ws://127.0.0.1:$DX_PORT/" \
  >"$DX_TMP/going.out" 2>"$DX_TMP/going.err" &
cp=$!
for _ in $(seq 1 100); do grep -q one "$DX_TMP/going.out" 2>/dev/null && break; sleep 0.05; done
dx_stop "$DX_PID"
rc=0
wait "$cp" || rc=$?
check "server shutdown: exit 0 (exit $rc)" test "$rc" = 0
check "  closed: 1001 going away" grep -q "closed: 1001 going away" "$DX_TMP/going.err"

dx_serve nofb --echo --no-fallback
run nofb -t poll "ws://127.0.0.1:$DX_PORT/" <<<hi
check "no fallback on the server: exit 1 (exit $rc)" test "$rc" = 1
check "  one line: session refused: HTTP 404, and why" \
  grep -q "session refused: HTTP 404: not found (no HTTP sessions there" "$DX_TMP/nofb.err"
check "  (one line)" one_line "$DX_TMP/nofb.err"
run refused -t stream "ws://127.0.0.1:1/" <<<hi
check "connection refused: exit 1 (exit $rc)" test "$rc" = 1
check "  in one line" one_line "$DX_TMP/refused.err"
check "  saying so" grep -q "cannot open the session: Connection refused" "$DX_TMP/refused.err"
run untrusted -t poll "wss://127.0.0.1:$tls/" <<<hi
check "untrusted certificate: exit 1 (exit $rc)" test "$rc" = 1
check "  saying so in one line" grep -q "certificate verify failed" "$DX_TMP/untrusted.err"
run clash -t poll --reconnect "ws://127.0.0.1:$plain/" </dev/null
check "--transport poll with --reconnect: usage error (exit $rc)" test "$rc" = 2
run badt -t carrier-pigeon "ws://127.0.0.1:$plain/" </dev/null
check "an unknown transport: usage error (exit $rc)" test "$rc" = 2
check "  naming it" grep -q "bad transport (ws, stream or poll) 'carrier-pigeon'" "$DX_TMP/badt.err"

[ "$DX_FAILS" = 0 ] || { echo "$DX_FAILS check(s) failed" >&2; exit 1; }
echo "all connect --transport checks passed"
