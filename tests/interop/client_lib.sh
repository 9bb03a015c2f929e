# Shared by the client interop scripts (test_node_server.sh,
# test_python_server.sh): `duplex connect` against a real server that
# implements the paths described in node_server.mjs. Source it after lib.sh.
: "${DUPLEX:?set DUPLEX to the duplex command}"
shopt -s lastpipe # `printf ... | dxc` sets RC in this shell

DX_FAILS=0
CONNECT_TIMEOUT=${CONNECT_TIMEOUT:-120} # seconds for one `duplex connect` run

ok() { echo "ok   $*"; }
no() {
  echo "FAIL $*"
  DX_FAILS=$((DX_FAILS + 1))
}
check() { # check WHAT COMMAND...
  local what=$1
  shift
  if "$@"; then ok "$what"; else no "$what"; fi
}

# peer_start NAME COMMAND... : starts a test server printing "listening PORT"
# on stdout; sets PEER_PORT and PEER_PID. Killed on exit by lib.sh's trap.
peer_start() {
  local name=$1
  shift
  # Created first: the background job opens it a moment later, and the
  # sed below (under set -e and pipefail) must not find it missing.
  : >"$DX_TMP/$name.log"
  "$@" >"$DX_TMP/$name.log" 2>&1 &
  PEER_PID=$!
  DX_PIDS+=("$PEER_PID")
  local i
  for i in $(seq 1 200); do
    PEER_PORT=$(sed -n 's/^listening \([0-9]*\)$/\1/p' "$DX_TMP/$name.log" | head -1)
    [ -n "$PEER_PORT" ] && return 0
    kill -0 "$PEER_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "peer $name did not start:" >&2
  cat "$DX_TMP/$name.log" >&2
  return 1
}

# dxc NAME ARGS... : `duplex connect ARGS` with stdin from the caller;
# stdout in $DX_TMP/NAME.out, stderr in NAME.err, exit status in RC.
dxc() {
  local name=$1
  shift
  set +e
  timeout "$CONNECT_TIMEOUT" "$DUPLEX" connect "$@" >"$DX_TMP/$name.out" 2>"$DX_TMP/$name.err"
  RC=$?
  set -e
}

# A session whose stdin stays open: sess_start NAME ARGS..., sess_send LINE,
# sess_wait_out PATTERN (grep -E on stdout, 20 s), sess_wait_exit (sets RC).
sess_start() {
  SESS=$1
  shift
  rm -f "$DX_TMP/$SESS.fifo"
  mkfifo "$DX_TMP/$SESS.fifo"
  timeout "$CONNECT_TIMEOUT" "$DUPLEX" connect "$@" <"$DX_TMP/$SESS.fifo" >"$DX_TMP/$SESS.out" \
    2>"$DX_TMP/$SESS.err" &
  SESS_PID=$!
  DX_PIDS+=("$SESS_PID")
  exec {SESS_FD}>"$DX_TMP/$SESS.fifo"
}
sess_send() { printf '%s\n' "$1" >&"$SESS_FD"; }
sess_wait_out() {
  local i
  for i in $(seq 1 400); do
    grep -qE "$1" "$DX_TMP/$SESS.out" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}
sess_wait_exit() { # waits for the process to end by itself (20 s), stdin still open
  local i
  for i in $(seq 1 400); do
    kill -0 "$SESS_PID" 2>/dev/null || break
    sleep 0.05
  done
  exec {SESS_FD}>&-
  set +e
  wait "$SESS_PID"
  RC=$?
  set -e
}
sess_eof() { # closes stdin, then waits
  exec {SESS_FD}>&-
  set +e
  wait "$SESS_PID"
  RC=$?
  set -e
}

line_of() { # line_of N CHAR : N copies of CHAR and a newline
  head -c "$1" /dev/zero | tr '\0' "$2"
  echo
}

# echo_run NAME INPUT EXPECTED ARGS... : feeds the file INPUT to
# `duplex connect ARGS` and keeps stdin open until stdout holds as many bytes
# as the file EXPECTED (60 s at most), then closes stdin: a server may drop
# replies it has not sent yet when our close arrives (RFC 6455 lets it), so
# EOF must wait for them. Sets RC and OUT_OK (1 when stdout equals EXPECTED).
echo_run() {
  local name=$1 input=$2 expected=$3 i want
  shift 3
  sess_start "$name" "$@"
  cat "$input" >&"$SESS_FD" 2>/dev/null || true
  want=$(wc -c <"$expected")
  for i in $(seq 1 1200); do
    [ "$(wc -c <"$DX_TMP/$name.out")" -ge "$want" ] && break
    kill -0 "$SESS_PID" 2>/dev/null || break
    sleep 0.05
  done
  sess_eof
  OUT_OK=0
  cmp -s "$expected" "$DX_TMP/$name.out" && OUT_OK=1
  return 0
}

# echo_str NAME INPUT_STRING EXPECTED_STRING ARGS... : echo_run with strings
# (printf %b escapes).
echo_str() {
  local name=$1
  printf '%b' "$2" >"$DX_TMP/$name.want.in"
  printf '%b' "$3" >"$DX_TMP/$name.want.out"
  shift 3
  echo_run "$name" "$DX_TMP/$name.want.in" "$DX_TMP/$name.want.out" "$@"
}

# client_matrix BASE_URL [extra connect args...] : the whole matrix against
# one server (BASE_URL like ws://127.0.0.1:PORT).
client_matrix() {
  local base=$1
  shift
  local x=("$@") n f mode

  echo_str text 'hello\nworld\n' 'hello\nworld\n' -q "${x[@]}" "$base/echo"
  check "text lines echoed, exit 0" test "$RC" = 0 -a "$OUT_OK" = 1

  echo_str empty '\n' '\n' -q "${x[@]}" "$base/echo"
  check "empty text message" test "$RC" = 0 -a "$OUT_OK" = 1

  echo_str utf8 'h\xc3\xa9llo \xe2\x9c\x93\n' 'h\xc3\xa9llo \xe2\x9c\x93\n' -q "${x[@]}" "$base/echo"
  check "UTF-8 text" test "$RC" = 0 -a "$OUT_OK" = 1

  echo_str badutf8 '\xff\xfe\nok\n' 'ok\n' -q "${x[@]}" "$base/echo"
  check "invalid UTF-8 line skipped, reported, exit 1" test "$RC" = 1 -a "$OUT_OK" = 1
  grep -q 'not valid UTF-8' "$DX_TMP/badutf8.err" || no "badutf8: stderr says why"

  f=$DX_TMP/size.in
  for n in 125 126 65535 65536 16777216; do
    for mode in text binary; do
      line_of "$n" "$([ $mode = text ] && echo a || echo b)" >"$f"
      local bin=()
      [ $mode = binary ] && bin=(--binary)
      echo_run size "$f" "$f" -q "${bin[@]}" "${x[@]}" "$base/echo"
      check "$mode message of $n bytes" test "$RC" = 0 -a "$OUT_OK" = 1
    done
  done
  rm -f "$f" "$DX_TMP/size.out"

  printf '' | dxc eof -q --binary "${x[@]}" "$base/echo" # EOF at once: no message
  check "EOF at once: clean close, exit 0" test "$RC" = 0 -a ! -s "$DX_TMP/eof.out"

  # The server answers "later" 300 ms later: after our EOF. Our close goes
  # out at EOF, and what arrives after it is dropped (as in a browser)...
  printf 'later\n' | dxc later0 -q "${x[@]}" "$base/echo"
  check "EOF closes at once: the late answer is not printed, exit 0" \
    test "$RC" = 0 -a ! -s "$DX_TMP/later0.out"
  # ...unless --wait keeps the connection open a while after EOF.
  printf 'later\n' | dxc later1 -q --wait 1 "${x[@]}" "$base/echo"
  check "--wait 1: the answer 300 ms after EOF is printed, exit 0" \
    test "$RC" = 0 -a "$(cat "$DX_TMP/later1.out")" = late

  echo_str bin0 '\n' '\n' -q --binary --hex "${x[@]}" "$base/echo"
  check "0-byte binary message (--hex: empty line)" test "$RC" = 0 -a "$OUT_OK" = 1

  echo_str hex 'AZ\x01\n' '415a01\n' -q --binary --hex "${x[@]}" "$base/echo"
  check "binary printed with --hex" test "$RC" = 0 -a "$OUT_OK" = 1

  echo_str frag 'frag\n' 'fragmented\n' -q "${x[@]}" "$base/echo"
  check "server-sent fragmented message" test "$RC" = 0 -a "$OUT_OK" = 1

  sess_start ping -q "${x[@]}" "$base/echo"
  sess_send ping-me
  check "server ping answered with a pong" sess_wait_out '^pong:abc$'
  sess_eof
  check "close after ping, exit 0" test "$RC" = 0

  sess_start c1000 -q "${x[@]}" "$base/echo"
  sess_send close-1000
  sess_wait_exit
  check "server closes with 1000: exit 0" test "$RC" = 0

  sess_start c3001 -q "${x[@]}" "$base/echo"
  sess_send close-3001
  sess_wait_exit
  check "server closes with 3001 'user left': exit 1" test "$RC" = 1
  check "  stderr: closed: 3001 user left" grep -q 'closed: 3001 user left' "$DX_TMP/c3001.err"

  sess_start term -q "${x[@]}" "$base/echo"
  sess_send terminate
  sess_wait_exit
  check "server drops the connection: exit 1" test "$RC" = 1
  check "  stderr: 1006" grep -q '1006' "$DX_TMP/term.err"

  echo_str cc 'bye\n' 'bye\n' -q --close-code 3000 --close-reason 'see you' "${x[@]}" "$base/echo"
  check "our close with 3000 and a reason: exit 0" test "$RC" = 0 -a "$OUT_OK" = 1

  printf '' | dxc proto -s chat -s superchat "${x[@]}" "$base/protocol"
  check "subprotocol negotiated" grep -q '(subprotocol superchat)' "$DX_TMP/proto.err"

  echo_str hdr '' 'x-test=yes origin=http://o.example protocol=v1\n' \
    -q -H 'X-Test: yes' --origin http://o.example -s v1 "${x[@]}" "$base/headers"
  check "headers, origin and subprotocol seen by the server" test "$RC" = 0 -a "$OUT_OK" = 1

  printf '' | dxc rej "${x[@]}" "$base/reject"
  check "refused upgrade: exit 1" test "$RC" = 1
  check "  stderr: unexpected status 404" grep -q 'handshake: unexpected status 404' "$DX_TMP/rej.err"

  dxc echo -q --echo "${x[@]}" "$base/driver" </dev/null
  check "--echo: every message echoed with its opcode (server closed 1000)" test "$RC" = 0
  [ "$RC" = 0 ] || cat "$DX_TMP/echo.err"
}

# The TLS part of the matrix against a wss:// server using $DX_TMP/cert.pem.
client_tls_checks() {
  local base=$1 # wss://127.0.0.1:PORT
  printf 'x\n' | dxc tls0 -q "$base/echo"
  check "wss self-signed without --insecure: exit 1" test "$RC" = 1
  check "  stderr mentions the certificate" grep -qi 'certificate' "$DX_TMP/tls0.err"
  echo_str tls1 'secure\n' 'secure\n' -q --insecure "$base/echo"
  check "wss with --insecure" test "$RC" = 0 -a "$OUT_OK" = 1
  echo_str tls2 'ca\n' 'ca\n' -q --ca "$DX_TMP/cert.pem" "$base/echo"
  check "wss with --ca (IP address in the certificate)" test "$RC" = 0 -a "$OUT_OK" = 1
  local port=${base##*:}
  echo_str tls3 'name\n' 'name\n' -q --ca "$DX_TMP/cert.pem" "wss://localhost:$port/echo"
  check "wss with --ca (host name in the certificate)" test "$RC" = 0 -a "$OUT_OK" = 1
  line_of 16777216 z >"$DX_TMP/tlsbig.in"
  echo_run tlsbig "$DX_TMP/tlsbig.in" "$DX_TMP/tlsbig.in" -q --insecure --binary "$base/echo"
  check "wss 16 MiB binary message" test "$RC" = 0 -a "$OUT_OK" = 1
  rm -f "$DX_TMP/tlsbig.in" "$DX_TMP/tlsbig.out"
  dxc tlsecho -q --insecure --echo "$base/driver" </dev/null
  check "wss --echo driver" test "$RC" = 0
}

client_common_failures() {
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  printf '' | dxc refused "ws://127.0.0.1:$port/"
  check "connection refused: exit 1" test "$RC" = 1
  check "  stderr: duplex: connect: connection refused" \
    grep -qx 'duplex: connect: connection refused' "$DX_TMP/refused.err"
  dxc badurl 'ws://127.0.0.1/#frag' </dev/null
  check "URL with a fragment: exit 2" test "$RC" = 2
}
