#!/usr/bin/env bash
# Scale: 10,000 concurrent WebSocket connections to `duplex serve --echo`,
# one message echoed on each, then the server's RSS per idle connection
# (VmRSS after minus before, over N). Fails above a generous bound.
# N and the bound can be changed: DX_CONNS (10000), DX_MAX_BYTES_PER_CONN (4096).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
N=${DX_CONNS:-10000}
BOUND=${DX_MAX_BYTES_PER_CONN:-4096}
# Under AddressSanitizer every allocation carries redzones and a shadow, so
# only the functional half (10,000 echoes, still serving) is meaningful; the
# memory bound is checked on the normal build.
[ "${DX_SANITIZE:-0}" = 1 ] && BOUND=${DX_MAX_BYTES_PER_CONN:-65536}

ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $((N + 100)) ]; then
  echo "open-file limit $(ulimit -n) is too low for $N connections" >&2
  exit 1
fi
cc -O2 -o "$DX_TMP/manyconn" "$here/manyconn.c"

dx_serve scale --echo
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# Warm up first, so that code paged in once (OpenSSL's SHA-1 for the
# accept key, the loop's buffers) is not counted per connection.
"$DX_TMP/manyconn" "$DX_PORT" 20 1 </dev/null >/dev/null
sleep 0.2
before=$(rss "$DX_PID")

mkfifo "$DX_TMP/hold"
"$DX_TMP/manyconn" "$DX_PORT" "$N" 4 <"$DX_TMP/hold" >"$DX_TMP/driver.out" 2>&1 &
driver=$!
DX_PIDS+=("$driver")
exec 3>"$DX_TMP/hold"
for _ in $(seq 1 1800); do
  grep -q '^ready' "$DX_TMP/driver.out" && break
  kill -0 "$driver" 2>/dev/null || break
  sleep 0.1
done
cat "$DX_TMP/driver.out"
ready=$(sed -n 's/^ready //p' "$DX_TMP/driver.out")
sleep 0.5
after=$(rss "$DX_PID")
echo "server RSS: ${before} KiB before, ${after} KiB with ${ready:-0} connections open"
per=$(( (after - before) * 1024 / N ))
echo "server RSS per connection: ${per} bytes ($(awk -v p="$per" 'BEGIN {printf "%.2f", p / 1024}') KiB)"
exec 3>&-
wait "$driver" || true
[ "${ready:-0}" = "$N" ] || { echo "only ${ready:-0} of $N connections echoed" >&2; exit 1; }
[ "$per" -le "$BOUND" ] || { echo "RSS per connection ${per} B is over the bound of ${BOUND} B" >&2; exit 1; }
# The server is still serving, and it shuts down cleanly.
curl_ok=$(exec 4<>"/dev/tcp/127.0.0.1/$DX_PORT" && printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' >&4 && timeout 5 cat <&4 | head -1)
echo "after the test: ${curl_ok%$'\r'}"
[[ "$curl_ok" == "HTTP/1.1 200"* ]]
dx_stop "$DX_PID"
echo "10k test: passed"
