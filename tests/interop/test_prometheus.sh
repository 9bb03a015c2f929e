#!/usr/bin/env bash
# /metrics as Prometheus reads it: `promtool check metrics` on the output of
# every mode (echo, broadcast, chat, broadcast with --redis), the Redis
# link's metrics through a Redis kill and restart (the up gauge falls and
# rises, reconnects count, the bus latency histogram fills), then a real
# Prometheus (Debian's
# `prometheus`, its storage in a temporary directory, loopback only)
# scraping a duplex node every second while `duplex bench` loads it; the
# test asks Prometheus's HTTP query API for the rate of messages received
# (it must be near what the bench reports) and for the 0.99 quantile of
# the loop-turn histogram (a number, in seconds, below one second).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
for t in promtool prometheus curl python3 redis-server redis-cli; do
  command -v "$t" >/dev/null || { echo "$t is missing (make deps)" >&2; exit 1; }
done

echo "== promtool check metrics"
for mode in --echo --broadcast --chat; do
  dx_serve "m$mode" $mode --metrics
  curl -s --max-time 5 "http://127.0.0.1:$DX_PORT/metrics" >"$DX_TMP/metrics.txt"
  grep -q '^duplex_messages_received_total' "$DX_TMP/metrics.txt" ||
    { echo "FAIL: serve $mode gave no metrics" >&2; exit 1; }
  if [ "$mode" = --chat ]; then
    grep -q '^duplex_chat_ack_seconds_count ' "$DX_TMP/metrics.txt" ||
      { echo "FAIL: serve --chat exports no chat metrics" >&2; exit 1; }
  fi
  promtool check metrics <"$DX_TMP/metrics.txt" >"$DX_TMP/promtool.out" 2>&1 ||
    { cat "$DX_TMP/promtool.out" >&2; echo "FAIL: promtool check metrics on serve $mode" >&2; exit 1; }
  echo "ok   serve $mode: promtool check metrics passes ($(grep -vc '^#' "$DX_TMP/metrics.txt") samples)"
  dx_stop "$DX_PID"
done

echo "== the Redis link: --broadcast --redis"
trap 'dx_redis_stop; dx_cleanup' EXIT
rport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_redis() {
  dx_redis_start "$rport" || { echo "FAIL: redis-server did not start" >&2; exit 1; }
}
# value NAME: the sample NAME of a fresh scrape.
value() {
  curl -s --max-time 5 "http://127.0.0.1:$DX_PORT/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}
# wait_value NAME TEST: until the value passes `test` (a python expression
# on v), 15 s at most.
wait_value() {
  for i in $(seq 1 150); do
    v=$(value "$1")
    [ -n "$v" ] && python3 -c "import sys; v=float(sys.argv[1]); sys.exit(0 if $2 else 1)" "$v" && return 0
    sleep 0.1
  done
  echo "FAIL: $1 = '$v', want $2" >&2
  exit 1
}
start_redis
dx_serve redis --broadcast --threads 2 --metrics --redis "redis://127.0.0.1:$rport/0"
wait_value duplex_redis_up 'v == 1'
wait_value duplex_redis_bus_seconds_count 'v >= 2' # a probe a second on each thread
curl -s --max-time 5 "http://127.0.0.1:$DX_PORT/metrics" >"$DX_TMP/metrics.txt"
promtool check metrics <"$DX_TMP/metrics.txt" >"$DX_TMP/promtool.out" 2>&1 ||
  { cat "$DX_TMP/promtool.out" >&2; echo "FAIL: promtool check metrics with --redis" >&2; exit 1; }
[ "$(value duplex_redis_reconnects_total)" = 0 ] ||
  { echo "FAIL: reconnects before any loss: $(value duplex_redis_reconnects_total)" >&2; exit 1; }
# Both from the one scrape saved above: a probe a second lands between two
# scrapes, so values from two scrapes may differ by one.
inf=$(awk '$1 == "duplex_redis_bus_seconds_bucket{le=\"+Inf\"}" { print $2 }' "$DX_TMP/metrics.txt")
count=$(awk '$1 == "duplex_redis_bus_seconds_count" { print $2 }' "$DX_TMP/metrics.txt")
[ -n "$inf" ] && [ "$inf" = "$count" ] || { echo "FAIL: bus +Inf '$inf' != count '$count'" >&2; exit 1; }
echo "ok   up 1, reconnects 0, bus histogram $inf samples, promtool passes"
dx_redis_stop
wait_value duplex_redis_up 'v == 0'
echo "ok   Redis killed: duplex_redis_up 0"
start_redis
wait_value duplex_redis_up 'v == 1'
# Two threads, a publisher and a subscriber each.
wait_value duplex_redis_reconnects_total 'v >= 4'
echo "ok   Redis back: duplex_redis_up 1, reconnects $(value duplex_redis_reconnects_total)"
dx_stop "$DX_PID"
dx_redis_stop

echo "== a real Prometheus scraping under load"
dx_serve node --echo --metrics
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$DX_TMP/prometheus.yml" <<EOC
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: duplex
    static_configs:
      - targets: ['127.0.0.1:$DX_PORT']
EOC
prometheus --config.file="$DX_TMP/prometheus.yml" --storage.tsdb.path="$DX_TMP/tsdb" \
  --web.listen-address="127.0.0.1:$port" >"$DX_TMP/prometheus.log" 2>&1 &
PROM=$!
DX_PIDS+=("$PROM")
up=0
for i in $(seq 1 100); do
  if curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1; then up=1; break; fi
  sleep 0.1
done
[ "$up" = 1 ] || { tail -20 "$DX_TMP/prometheus.log" >&2; echo "FAIL: Prometheus did not start" >&2; exit 1; }
echo "ok   Prometheus on 127.0.0.1:$port"
q() { curl -s --max-time 5 "http://127.0.0.1:$port/api/v1/query" --data-urlencode "query=$1" --data-urlencode "time=$2"; }
# Prometheus applies its targets a few seconds after it is ready: load only
# once it has scraped the node, so that the window asked about is all load.
scraped=0
for i in $(seq 1 150); do
  if q 'up{job="duplex"}' "$(date +%s)" | grep -q '"value"'; then scraped=1; break; fi
  sleep 0.1
done
[ "$scraped" = 1 ] || { tail -20 "$DX_TMP/prometheus.log" >&2; echo "FAIL: Prometheus never scraped the node" >&2; exit 1; }
sleep 1
"$DUPLEX" bench --url "ws://127.0.0.1:$DX_PORT/" --connections 10 --size 20 --inflight 4 \
  --rate 2000 --duration 10 --warmup 0 --json >"$DX_TMP/bench.json" 2>/dev/null &
bench=$!
sleep 7
t=$(python3 -c 'import time; print(time.time())') # the 4 s before this are all under load
wait "$bench"
sleep 2 # the scrapes up to t are in
rate=$(q 'sum(rate(duplex_messages_received_total[4s]))' "$t")
p99=$(q 'histogram_quantile(0.99, sum by (le) (rate(duplex_loop_turn_seconds_bucket[4s])))' "$t")
up=$(q 'up{job="duplex"}' "$t")
python3 - "$rate" "$p99" "$up" <<'PY' || { echo "FAIL: Prometheus's answers (above)" >&2; exit 1; }
import json, sys
def value(s):
    r = json.loads(s)
    assert r["status"] == "success", s
    res = r["data"]["result"]
    assert res, f"empty result: {s}"
    return float(res[0]["value"][1])
rate, p99, up = (value(x) for x in sys.argv[1:4])
print(f"ok   up = {up:.0f}")
assert up == 1, up
print(f"ok   rate(duplex_messages_received_total) = {rate:.0f}/s (the bench sent 2000/s)")
assert 1500 <= rate <= 2500, rate
print(f"ok   histogram_quantile(0.99, loop turn) = {p99 * 1000:.3f} ms")
assert 0 < p99 < 1, p99
PY
echo "prometheus: passed"
