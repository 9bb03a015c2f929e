#!/usr/bin/env bash
# The command's errors (issue 22): a second `duplex serve` on a port in use
# is refused with "address already in use", with one thread and with
# --threads 2 (no SO_REUSEPORT group for another process to join), while the
# first keeps serving; a missing certificate and a missing --static directory
# are named; two modes are a usage error; `duplex --help` lists --chat; the
# README's duplex.h claim matches the header; plain `make` runs no Node step.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
# refused NAME ARGS... : runs `duplex serve ARGS` (5 s at most), sets rc.
refused() {
  local name=$1
  shift
  rc=0
  timeout 5 "$DUPLEX" serve "$@" >"$DX_TMP/$name.out" 2>"$DX_TMP/$name.err" || rc=$?
}
echoes() { # echoes N : N connections in turn each get their message back
  local i
  for i in $(seq 1 "$1"); do
    [ "$(echo "m$i" | timeout 10 "$DUPLEX" connect "ws://127.0.0.1:$DX_PORT/" 2>/dev/null)" = "m$i" ] ||
      return 1
  done
}

# A port in use, one thread each.
dx_serve one --echo
refused one2 --echo --port "$DX_PORT"
check "second server on a port in use exits 1 (exit $rc)" test "$rc" = 1
check "  saying 'address already in use' in one line" \
  grep -q "cannot listen on 127.0.0.1:$DX_PORT: address already in use" "$DX_TMP/one2.err"
check "  (one line)" one_line "$DX_TMP/one2.err"
dx_stop "$DX_PID"

# The same with --threads 2 on both sides: the second must not join the port.
dx_serve many --echo --threads 2
first=$DX_PID
refused many2 --echo --threads 2 --port "$DX_PORT"
check "second --threads 2 server on the same port is refused (exit $rc, 124 = it ran)" test "$rc" = 1
check "  saying 'address already in use'" grep -q 'address already in use' "$DX_TMP/many2.err"
check "  (one line)" one_line "$DX_TMP/many2.err"
check "the first --threads 2 server still echoes, 8 connections in turn" echoes 8
check "  and is still running" kill -0 "$first"
dx_stop "$first"

# Missing files are named.
refused cert --echo --port 0 --cert "$DX_TMP/nope/cert.pem" --key "$DX_TMP/nope/key.pem"
check "missing certificate: exit 1 (exit $rc)" test "$rc" = 1
check "  the message names the file and says why" \
  grep -q "TLS certificate $DX_TMP/nope/cert.pem: No such file or directory" "$DX_TMP/cert.err"
check "  (one line)" one_line "$DX_TMP/cert.err"
dx_cert "$DX_TMP"
refused key --echo --port 0 --cert "$DX_TMP/cert.pem" --key "$DX_TMP/nope/key.pem"
check "missing key: exit 1, the message names the file (exit $rc)" \
  grep -q "TLS private key $DX_TMP/nope/key.pem" "$DX_TMP/key.err"
refused static --echo --port 0 --static "$DX_TMP/nonexistent"
check "missing --static directory: exit 1 (exit $rc)" test "$rc" = 1
check "  the message names the path" \
  grep -q "static directory $DX_TMP/nonexistent: No such file or directory" "$DX_TMP/static.err"
check "  (one line)" one_line "$DX_TMP/static.err"

# Two modes are a usage error, whatever the order; one mode twice is fine.
for modes in "--echo --chat" "--chat --echo" "--broadcast --echo"; do
  # shellcheck disable=SC2086
  refused modes --port 0 $modes
  check "serve $modes: usage error, exit 2 (exit $rc)" test "$rc" = 2
  check "  saying to choose one mode, in one line" grep -q 'choose one mode' "$DX_TMP/modes.err"
  check "  (one line)" one_line "$DX_TMP/modes.err"
done
dx_serve twice --echo --echo
check "serve --echo --echo starts" kill -0 "$DX_PID"
dx_stop "$DX_PID"

# The command's help lists every mode.
"$DUPLEX" --help >"$DX_TMP/help.out"
check "duplex --help lists --chat" grep -q -- '--chat' "$DX_TMP/help.out"
check "  and --echo, --broadcast" grep -q -- '--echo, --broadcast' "$DX_TMP/help.out"

# Every option that `serve --help`, `connect --help` and `bench --help` list
# is one the parser takes (one option table drives both): given a value when
# the help shows one and followed by --help, it is never an unknown option
# nor short of its value. An unknown option and a missing value (of
# --max-message; bench has none, so of --connections) are usage errors (2)
# in one line that names the option.
opts_of() { # opts_of CMD: "NAME [ARG]" per option of `duplex CMD --help`
  "$DUPLEX" "$1" --help | sed -nE 's/^ {2,6}(-[A-Za-z], )?(--[a-z-]+)( [^ -][^ ]*)?( .*|$)/\1\2\3/p' |
    sed -E 's/^-([A-Za-z]), (--[a-z-]+)(.*)$/\2\3\n-\1\3/'
}
for cmd in serve connect bench; do
  valued=--max-message
  [ "$cmd" = bench ] && valued=--connections
  n=0
  while read -r opt arg; do
    n=$((n + 1))
    rc=0
    if [ -n "$arg" ]; then
      "$DUPLEX" "$cmd" "$opt" 1 --help >/dev/null 2>"$DX_TMP/opt.err" || rc=$?
    else
      "$DUPLEX" "$cmd" "$opt" --help >/dev/null 2>"$DX_TMP/opt.err" || rc=$?
    fi
    if grep -Eq 'unknown option|missing the value' "$DX_TMP/opt.err" || { [ "$rc" != 0 ] && [ "$rc" != 2 ]; }; then
      check "$cmd --help lists $opt${arg:+ $arg}, and the parser takes it (exit $rc)" false
    fi
  done < <(opts_of "$cmd")
  check "$cmd --help lists options ($n), each taken by the parser" test "$n" -gt 10
  rc=0
  "$DUPLEX" "$cmd" --no-such-option >/dev/null 2>"$DX_TMP/unknown.err" || rc=$?
  check "$cmd --no-such-option: exit 2 (exit $rc)" test "$rc" = 2
  check "  naming it, in one line" grep -q "unknown option '--no-such-option'" "$DX_TMP/unknown.err"
  check "  (one line)" one_line "$DX_TMP/unknown.err"
  rc=0
  "$DUPLEX" "$cmd" "$valued" >/dev/null 2>"$DX_TMP/missing.err" || rc=$?
  check "$cmd $valued without its value: exit 2 (exit $rc)" test "$rc" = 2
  check "  naming it, in one line" grep -q "missing the value of '$valued'" "$DX_TMP/missing.err"
  check "  (one line)" one_line "$DX_TMP/missing.err"
done

# The README's claim about duplex.h: every public header it leaves out is
# named as an exception on that line.
claim=$(grep 'duplex.h includes' "$DX_ROOT/README.md")
for h in "$DX_ROOT"/include/duplex/*.h; do
  b=$(basename "$h")
  [ "$b" = duplex.h ] && continue
  grep -q "#include \"$b\"" "$DX_ROOT/include/duplex/duplex.h" && continue
  check "README: duplex.h leaves out $b and says so" grep -q "$b" <<<"$claim"
done

# `make` (the default target), every rule taken as out of date (-B) and
# only printed (-n): the C build, no Node step.
make -n -B -C "$DX_ROOT" --no-print-directory BUILD="$DX_TMP/mk" JOBS=1 >"$DX_TMP/make.out" 2>&1
check "make: builds the C (cmake --build)" grep -q 'cmake --build' "$DX_TMP/make.out"
check "make: no npm, npx, vite or node step" \
  bash -c "! grep -Eq '(^|[ /])(npm|npx|vite|node)( |$)' '$DX_TMP/make.out'"

[ "$DX_FAILS" = 0 ]
echo "cli errors: passed"
