#!/usr/bin/env bash
# duplex serve --metrics: exact counters after known traffic, the loop-turn
# histogram's +Inf bucket equal to its count, --threads 2 summed, an HTTP
# session open under transport="http", and a scrape from a non-loopback
# address refused unless --metrics-public.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v node >/dev/null || { echo "SKIP: no node"; exit 0; }
command -v curl >/dev/null || { echo "SKIP: no curl"; exit 0; }
CLIENT="$DX_ROOT/tests/interop/metrics_client.mjs"
fail=0

scrape() { curl -s --max-time 5 "http://$1:$DX_PORT/metrics"; }
# metric TEXT NAME : the value of the sample line NAME (labels included).
metric() { awk -v n="$2" '$1 == n { print $2 }' <<<"$1"; }
expect() {
  local got
  got=$(metric "$1" "$2")
  if [ "$got" = "$3" ]; then echo "ok   $2 = $3"; else
    echo "FAIL $2 = '$got', want $3"
    fail=1
  fi
}

# 1. One thread: 3 clients × (2 text + 1 binary), closed with 1000; one
#    with 4001; a bad upgrade (no key) and an Origin refused.
dx_serve one --echo --metrics --origin http://ok.example
node "$CLIENT" "ws://127.0.0.1:$DX_PORT/" 3 2 1
node "$CLIENT" "ws://127.0.0.1:$DX_PORT/" 1 1 0 4001
curl -s -o /dev/null -H 'Connection: Upgrade' -H 'Upgrade: websocket' \
  "http://127.0.0.1:$DX_PORT/"
curl -s -o /dev/null -H 'Connection: Upgrade' -H 'Upgrade: websocket' \
  -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \
  -H 'Origin: http://evil.example' "http://127.0.0.1:$DX_PORT/"
m=$(scrape 127.0.0.1)
# 4 WebSockets + 2 refused + this scrape.
expect "$m" 'duplex_connections_accepted_total{transport="ws"}' 7
expect "$m" 'duplex_handshakes_total{transport="ws"}' 4
expect "$m" 'duplex_connections_open{transport="ws"}' 0
expect "$m" 'duplex_connections_open{transport="http"}' 0
expect "$m" 'duplex_sessions_opened_total' 0
expect "$m" 'duplex_handshakes_refused_total{reason="bad_request"}' 1
expect "$m" 'duplex_handshakes_refused_total{reason="origin"}' 1
expect "$m" 'duplex_messages_received_total{opcode="text"}' 7
expect "$m" 'duplex_messages_received_total{opcode="binary"}' 3
expect "$m" 'duplex_messages_sent_total{opcode="text"}' 7
expect "$m" 'duplex_messages_sent_total{opcode="binary"}' 3
expect "$m" 'duplex_message_bytes_received_total{opcode="binary"}' 12
expect "$m" 'duplex_websocket_closed_total{code="1000"}' 3
expect "$m" 'duplex_websocket_closed_total{code="other"}' 1
expect "$m" 'duplex_http_requests_total' 1
expect "$m" 'duplex_threads' 1
# Frames: one per message (none fragmented), a close each way per socket.
expect "$m" 'duplex_frames_received_total{opcode="text"}' 7
expect "$m" 'duplex_frames_received_total{opcode="binary"}' 3
expect "$m" 'duplex_frames_received_total{opcode="close"}' 4
expect "$m" 'duplex_frames_received_total{opcode="continuation"}' 0
expect "$m" 'duplex_frames_sent_total{opcode="text"}' 7
expect "$m" 'duplex_frames_sent_total{opcode="binary"}' 3
expect "$m" 'duplex_frames_sent_total{opcode="close"}' 4
expect "$m" 'duplex_queued_bytes' 0
expect "$m" 'duplex_connections_paused' 0
grep -q '^# TYPE duplex_loop_turn_seconds histogram$' <<<"$m" || { echo "FAIL no histogram TYPE"; fail=1; }
inf=$(metric "$m" 'duplex_loop_turn_seconds_bucket{le="+Inf"}')
count=$(metric "$m" 'duplex_loop_turn_seconds_count')
iters=$(metric "$m" 'duplex_loop_iterations_total')
if [ -n "$inf" ] && [ "$inf" = "$count" ] && [ "$inf" -gt 0 ] && [ "$iters" -ge "$inf" ]; then
  echo "ok   loop turn histogram: +Inf = count = $inf (iterations $iters)"
else
  echo "FAIL loop turn histogram: +Inf '$inf', count '$count', iterations '$iters'"
  fail=1
fi
# Buckets never decrease.
if ! grep '^duplex_loop_turn_seconds_bucket' <<<"$m" | awk '{ if ($2 < p) exit 1; p = $2 }'; then
  echo "FAIL buckets not cumulative"
  fail=1
fi
# A second scrape sees the first one counted.
m=$(scrape 127.0.0.1)
expect "$m" 'duplex_http_requests_total' 2
dx_stop "$DX_PID"

# 2. Two threads: the sum of both servers, whichever thread answers.
dx_serve two --echo --metrics --threads 2
node "$CLIENT" "ws://127.0.0.1:$DX_PORT/" 8 1 1
m=$(scrape 127.0.0.1)
expect "$m" 'duplex_threads' 2
expect "$m" 'duplex_handshakes_total{transport="ws"}' 8
expect "$m" 'duplex_messages_received_total{opcode="text"}' 8
expect "$m" 'duplex_messages_sent_total{opcode="binary"}' 8
expect "$m" 'duplex_websocket_closed_total{code="1000"}' 8
expect "$m" 'duplex_connections_accepted_total{transport="ws"}' 9
dx_stop "$DX_PID"

# 3. An HTTP session (docs/fallback.md; serve --echo enables them): open
#    under transport="http", not "ws", and not a handshake.
dx_serve sess --echo --metrics
open=$(curl -s --max-time 5 -X POST -H 'X-Duplex-Session: 1' "http://127.0.0.1:$DX_PORT/")
if grep -Eq '"sid":"[0-9a-f]{32}"' <<<"$open"; then echo "ok   session opened"; else
  echo "FAIL session open answered '$open'"
  fail=1
fi
node "$CLIENT" "ws://127.0.0.1:$DX_PORT/" 1 1 0
m=$(scrape 127.0.0.1)
expect "$m" 'duplex_connections_open{transport="http"}' 1
expect "$m" 'duplex_connections_open{transport="ws"}' 0
expect "$m" 'duplex_sessions_opened_total' 1
expect "$m" 'duplex_handshakes_total{transport="ws"}' 1
dx_stop "$DX_PID"

# 5. The chat's gauges: devices and users on this node, as devices come and
#    go (alice with two, bob with one; a user leaves with its last device).
dx_serve chat --chat --db "$DX_TMP/chat.db" --metrics
conn() { "$DUPLEX" connect -q --wait 60 "ws://127.0.0.1:$DX_PORT/chat?uid=$1" </dev/null >/dev/null 2>&1 & echo $!; }
# wait_devices N : until duplex_chat_devices reads N (5 s at most).
wait_devices() {
  local i
  for i in $(seq 1 100); do
    [ "$(metric "$(scrape 127.0.0.1)" duplex_chat_devices)" = "$1" ] && return 0
    sleep 0.05
  done
}
a1=$(conn alice); a2=$(conn alice); b1=$(conn bob)
wait_devices 3
m=$(scrape 127.0.0.1)
expect "$m" duplex_chat_devices 3
expect "$m" duplex_chat_users 2
kill "$a1"; wait_devices 2
expect "$(scrape 127.0.0.1)" duplex_chat_users 2
kill "$a2"; wait_devices 1
expect "$(scrape 127.0.0.1)" duplex_chat_users 1
kill "$b1"; wait_devices 0
expect "$(scrape 127.0.0.1)" duplex_chat_users 0
dx_stop "$DX_PID"

# 4. Access: from a non-loopback address of this host, 403 unless
#    --metrics-public; without --metrics, /metrics is a plain 404.
ext=$(ip -4 -o addr show scope global 2>/dev/null | awk '{ sub(/\/.*/, "", $4); print $4; exit }')
if [ -n "$ext" ]; then
  dx_serve ext --echo --metrics --host 0.0.0.0
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://$ext:$DX_PORT/metrics")
  local_code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$DX_PORT/metrics")
  if [ "$code" = 403 ] && [ "$local_code" = 200 ]; then echo "ok   $ext refused (403), loopback 200"; else
    echo "FAIL from $ext: $code (want 403), loopback: $local_code (want 200)"
    fail=1
  fi
  dx_stop "$DX_PID"
  dx_serve pub --echo --metrics-public --host 0.0.0.0
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://$ext:$DX_PORT/metrics")
  if [ "$code" = 200 ]; then echo "ok   --metrics-public: $ext gets 200"; else
    echo "FAIL --metrics-public: $ext gets $code"
    fail=1
  fi
  dx_stop "$DX_PID"
else
  echo "SKIP non-loopback scrape: this host has no other IPv4 address"
fi
dx_serve off --echo
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$DX_PORT/metrics")
if [ "$code" = 404 ]; then echo "ok   without --metrics: 404"; else
  echo "FAIL without --metrics: $code"
  fail=1
fi
dx_stop "$DX_PID"
exit $fail
