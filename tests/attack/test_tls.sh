#!/usr/bin/env bash
# TLS under `duplex serve --cert --key`: TLS 1.0 and 1.1 are refused with a
# protocol_version alert even from a client willing to use them, TLS 1.2
# and 1.3 work, without compression; `duplex connect` refuses the
# self-signed certificate unless --insecure (or --ca); a plain-text
# request on the TLS port is dropped and the server keeps serving.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dx_cert "$DX_TMP"
dx_serve tls --echo --cert "$DX_TMP/cert.pem" --key "$DX_TMP/key.pem"
fails=0
check() { # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; fails=$((fails + 1)); fi
}
# SECLEVEL=0 lets OpenSSL 3's client offer the old versions, so a refusal
# comes from the server.
handshake() { # handshake VERSION-FLAG : the s_client transcript
  timeout 10 openssl s_client -connect "127.0.0.1:$DX_PORT" "$1" -cipher 'DEFAULT:@SECLEVEL=0' \
    </dev/null >"$DX_TMP/s_client$1.out" 2>&1 || true
}
name() { local n=${1#-tls}; n=${n/_/.}; [ "$n" = 1 ] && n=1.0; echo "$n"; } # -tls1_1 -> 1.1
for v in -tls1 -tls1_1; do
  handshake $v
  check "TLS $(name $v) refused by the server (protocol_version alert)" \
    grep -q 'alert protocol version' "$DX_TMP/s_client$v.out"
done
for v in -tls1_2 -tls1_3; do
  handshake $v
  check "TLS $(name $v) accepted" grep -Eq '^New, TLSv1\.[23], Cipher is [A-Z]' "$DX_TMP/s_client$v.out"
  check "  without compression" grep -q '^Compression: NONE' "$DX_TMP/s_client$v.out"
done

url="wss://127.0.0.1:$DX_PORT/"
# stdin from a file, not a pipe: a client that gives up before reading it
# must not turn into a SIGPIPE of the writer.
echo hi >"$DX_TMP/hi"
rc=0
timeout 20 "$DUPLEX" connect "$url" <"$DX_TMP/hi" >"$DX_TMP/c0.out" 2>"$DX_TMP/c0.err" || rc=$?
check "duplex connect refuses the self-signed certificate (exit $rc)" test "$rc" = 1
check "  and says why" grep -q 'certificate verify failed' "$DX_TMP/c0.err"
rc=0
timeout 20 "$DUPLEX" connect --insecure "$url" <"$DX_TMP/hi" >"$DX_TMP/c1.out" 2>"$DX_TMP/c1.err" || rc=$?
check "duplex connect --insecure echoes (exit $rc)" test "$rc" = 0 -a "$(cat "$DX_TMP/c1.out")" = hi
rc=0
timeout 20 "$DUPLEX" connect --ca "$DX_TMP/cert.pem" "$url" <"$DX_TMP/hi" >"$DX_TMP/c2.out" 2>"$DX_TMP/c2.err" || rc=$?
check "duplex connect --ca CERT echoes (exit $rc)" test "$rc" = 0 -a "$(cat "$DX_TMP/c2.out")" = hi

# Plain HTTP on the TLS port, then the server is still serving wss.
# (In a child shell: if the server drops it before the write, the SIGPIPE
# ends the child, not this script.)
timeout 10 bash -c 'exec 5<>"/dev/tcp/127.0.0.1/$0" && printf "GET / HTTP/1.1\r\nHost: EVIL\r\n\r\n" >&5 && cat <&5' \
  "$DX_PORT" >"$DX_TMP/plain.out" 2>/dev/null || true
check "plain HTTP on the TLS port gets no HTTP answer" test "$(head -c 5 "$DX_TMP/plain.out")" != "HTTP/"
rc=0
timeout 20 "$DUPLEX" connect --insecure "$url" <"$DX_TMP/hi" >"$DX_TMP/c3.out" 2>&1 || rc=$?
check "still serving afterwards" test "$rc" = 0
dx_stop "$DX_PID"
no_echo_in_log tls
[ "$fails" = 0 ]
echo "tls: passed"
