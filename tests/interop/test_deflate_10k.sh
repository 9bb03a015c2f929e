#!/usr/bin/env bash
# Memory of permessage-deflate at scale: 10,000 idle WebSocket connections
# to `duplex serve --echo` without the extension (--no-deflate), then
# 10,000 with it negotiated (each offering it as browsers do and sending
# one compressed message, echoed), each against a fresh server; the
# server's RSS per connection is printed for both, and with deflate it must
# stay within 2x of without (the issue's target). N: DX_CONNS (10000).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
N=${DX_CONNS:-10000}

ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $((N + 100)) ]; then
  echo "open-file limit $(ulimit -n) is too low for $N connections" >&2
  exit 1
fi
cc -O2 -o "$DX_TMP/manyconn" "$here/manyconn.c"
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# measure NAME SERVER-ARGS -- MANYCONN-ARGS : sets PER (bytes per connection)
measure() {
  local name=$1 sargs=() margs=()
  shift
  while [ "$1" != -- ]; do sargs+=("$1"); shift; done
  shift
  margs=("$@")
  dx_serve "$name" --echo "${sargs[@]}"
  # Warm up first, so that code and buffers paged in once are not counted
  # per connection.
  "$DX_TMP/manyconn" "$DX_PORT" 20 1 "${margs[@]}" </dev/null >/dev/null
  sleep 0.2
  local before after ready driver
  before=$(rss "$DX_PID")
  rm -f "$DX_TMP/hold"
  mkfifo "$DX_TMP/hold"
  "$DX_TMP/manyconn" "$DX_PORT" "$N" 4 "${margs[@]}" <"$DX_TMP/hold" >"$DX_TMP/$name.out" 2>&1 &
  driver=$!
  DX_PIDS+=("$driver")
  exec 3>"$DX_TMP/hold"
  for _ in $(seq 1 1800); do
    grep -q '^ready' "$DX_TMP/$name.out" && break
    kill -0 "$driver" 2>/dev/null || break
    sleep 0.1
  done
  cat "$DX_TMP/$name.out"
  ready=$(sed -n 's/^ready //p' "$DX_TMP/$name.out")
  sleep 0.5
  after=$(rss "$DX_PID")
  exec 3>&-
  wait "$driver" || true
  [ "${ready:-0}" = "$N" ] || { echo "$name: only ${ready:-0} of $N connections echoed" >&2; exit 1; }
  PER=$(((after - before) * 1024 / N))
  echo "$name: server RSS ${before} KiB before, ${after} KiB with $N connections: ${PER} bytes per connection"
  dx_stop "$DX_PID"
}

measure plain --no-deflate --
plain=$PER
measure deflate -- --deflate
deflate=$PER
echo "per idle connection: ${plain} B without permessage-deflate, ${deflate} B with it negotiated"
if [ "${DX_SANITIZE:-0}" = 1 ]; then
  echo "(AddressSanitizer build: the ratio is not checked)"
else
  [ "$deflate" -le $((2 * plain)) ] || { echo "with deflate ${deflate} B > 2 x ${plain} B" >&2; exit 1; }
fi
echo "deflate 10k test: passed"
