#!/usr/bin/env bash
# `duplex bench` against `duplex serve`: every mode runs briefly and its
# --json report is sane (messages measured, no errors, no closes, the
# fields scripts read are present). Speed is not asserted: this is a
# shared machine, and ASan builds are slow; bench/run measures speed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

bench() { "$DUPLEX" bench --url "ws://127.0.0.1:$DX_PORT/" --json "$@"; }
SANE=('d["errors"] == 0' 'd["closes"] == 0' 'd["first_error"] is None')

dx_serve echo --echo

json=$(bench --connections 8 --inflight 4 --duration 1)
dx_check_json echo "$json" "${SANE[@]}" 'd["mode"] == "echo"' 'd["connected"] == 8' 'd["messages"] > 0' \
  'd["msgs_per_s"] > 0' 'd["latency_us"]["count"] > 0' \
  '0 < d["latency_us"]["p50"] <= d["latency_us"]["p99"] <= d["latency_us"]["max"]' \
  'd["bytes_per_s"] == d["msgs_per_s"] * 20 or abs(d["bytes_per_s"] / d["msgs_per_s"] - 20) < 0.01'

json=$(bench --connections 4 --size 70000 --binary --threads 2 --duration 0.5)
dx_check_json large "$json" "${SANE[@]}" 'd["messages"] > 0' 'd["binary"] is True' 'd["threads"] == 2'

json=$(bench --connections 4 --rate 200 --duration 1 --server-pid "$DX_PID")
dx_check_json rate "$json" "${SANE[@]}" 'd["mode"] == "rate"' 'd["messages"] > 50' 'd["messages"] <= 260' \
  'd["server_cpu_us_per_msg"] >= 0' 'd["overflows"] == 0'

json=$(bench --handshakes --connections 2 --duration 0.5)
dx_check_json handshakes "$json" "${SANE[@]}" 'd["mode"] == "handshakes"' 'd["messages"] > 0'

json=$(bench --idle 50 --duration 0.2 --server-pid "$DX_PID")
dx_check_json idle "$json" "${SANE[@]}" 'd["connected"] == 50' 'd["messages"] == 50' \
  'd["rss_after_kib"] > 0' 'd["rss_before_kib"] > 0'

# permessage-deflate (duplex serve negotiates it when offered), with
# payloads over the compression threshold.
json=$(bench --connections 4 --size 1024 --payload json --deflate --duration 0.5)
dx_check_json deflate "$json" "${SANE[@]}" 'd["deflate"] is True' 'd["payload"] == "json"' \
  'd["connected"] == 4' 'd["messages"] > 0'

# The server answers a close from every benchmark connection and is still
# serving: one more run works.
json=$(bench --connections 1 --duration 0.2)
dx_check_json after "$json" "${SANE[@]}" 'd["messages"] > 0'
dx_stop "$DX_PID"

dx_serve bcast --broadcast
json=$(bench --broadcast --connections 5 --size 32 --duration 0.5)
dx_check_json broadcast "$json" "${SANE[@]}" 'd["mode"] == "broadcast"' 'd["messages"] > 0' \
  'd["messages"] % 5 == 0 or d["messages"] > 0' 'd["latency_us"]["count"] > 0'
dx_stop "$DX_PID"

# A server that does not negotiate permessage-deflate: every connection
# fails with the reason, and nothing is measured (exit 1).
dx_serve nodeflate --echo --no-deflate
set +e
out=$(bench --connections 3 --deflate --duration 0.2); rc=$?
set -e
[ "$rc" = 1 ] || { echo "deflate refused: exit $rc, want 1" >&2; exit 1; }
dx_check_json deflate-refused "$out" 'd["errors"] == 3' 'd["connected"] == 0' \
  'd["first_error"] == "the server did not accept permessage-deflate"'
dx_stop "$DX_PID"

# wss://: echo, the TLS handshake cycle and idle connections through the
# generator's TLS; the certificate is checked against --ca (and refused
# without it, as the error says), and --insecure skips the check.
dx_cert "$DX_TMP"
dx_serve tls --echo --cert "$DX_TMP/cert.pem" --key "$DX_TMP/key.pem"
wss() { "$DUPLEX" bench --url "wss://localhost:$DX_PORT/" --json "$@"; }
json=$(wss --ca "$DX_TMP/cert.pem" --connections 4 --inflight 4 --size 20000 --duration 0.5)
dx_check_json wss-echo "$json" "${SANE[@]}" 'd["url"].startswith("wss://")' 'd["connected"] == 4' 'd["messages"] > 0'
json=$(wss --insecure --handshakes --connections 2 --duration 0.5)
dx_check_json wss-handshakes "$json" "${SANE[@]}" 'd["messages"] > 0'
json=$(wss -k --idle 20 --duration 0.2 --server-pid "$DX_PID")
dx_check_json wss-idle "$json" "${SANE[@]}" 'd["connected"] == 20' 'd["messages"] == 20'
json=$(wss -k --connections 2 --size 1024 --payload json --deflate --duration 0.3)
dx_check_json wss-deflate "$json" "${SANE[@]}" 'd["deflate"] is True' 'd["messages"] > 0'
set +e
out=$(wss --connections 2 --duration 0.1); rc=$?
set -e
[ "$rc" = 1 ] || { echo "untrusted certificate: exit $rc, want 1" >&2; exit 1; }
dx_check_json wss-untrusted "$out" 'd["errors"] == 2' 'd["connected"] == 0' \
  '"certificate verify failed" in d["first_error"]'
dx_stop "$DX_PID"

# Raw TCP mode against a plain echo (the suite's raw server).
cc -O2 -o "$DX_TMP/raw_echo" "$DX_ROOT/bench/raw_echo.c"
"$DX_TMP/raw_echo" 0 >"$DX_TMP/raw.out" &
DX_PIDS+=($!)
for _ in $(seq 1 50); do [ -s "$DX_TMP/raw.out" ] && break; sleep 0.1; done
port=$(awk '{print $2}' "$DX_TMP/raw.out")
json=$("$DUPLEX" bench --url "ws://127.0.0.1:$port/" --raw --connections 4 --inflight 2 --duration 0.5 --json)
dx_check_json raw "$json" "${SANE[@]}" 'd["raw"] is True' 'd["messages"] > 0'

# Usage errors exit 2 with a message; --help exits 0.
"$DUPLEX" bench --help | grep -q -- '--inflight'
set +e
"$DUPLEX" bench --url "ws://127.0.0.1:1/" --broadcast --size 4 2>"$DX_TMP/err"; rc=$?
set -e
[ "$rc" = 2 ] && grep -q 'size 16' "$DX_TMP/err" || { echo "usage error not reported (rc $rc)" >&2; exit 1; }
set +e
"$DUPLEX" bench --url "wss://127.0.0.1:1/" --raw 2>"$DX_TMP/err"; rc=$?
set -e
[ "$rc" = 2 ] && grep -q 'raw is plain TCP' "$DX_TMP/err" || { echo "--raw with wss:// accepted (rc $rc)" >&2; exit 1; }
# Nothing listening: exit 1, the error named.
set +e
out=$("$DUPLEX" bench --url "ws://127.0.0.1:1/" --connections 2 --duration 0.1 --json); rc=$?
set -e
[ "$rc" = 1 ] || { echo "refused connections: exit $rc, want 1" >&2; exit 1; }
dx_check_json refused "$out" 'd["errors"] == 2' 'd["first_error"] == "connection refused"' 'd["connected"] == 0'
echo "bench test: passed"
