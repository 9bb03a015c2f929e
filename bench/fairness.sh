#!/usr/bin/env bash
# Fairness under a flood: a prober's echo round trip (a 16-byte message
# every 10 ms) while flooders write binary frames back to back and read
# their echoes (tests/attack/fairness.c), against `duplex serve --echo` on
# the io_uring and with --epoll, the server pinned to CPU 0 and the clients
# to CPU 1. With --base OLD, the same runs against another duplex binary
# (a build of the previous tree), alternating, plus the echo throughput at
# 16 in flight and the 64 KiB echo for both, so a before/after comes from
# one run. Writes bench/results/fairness.md.
#
# usage: bench/fairness.sh [--base OLD_DUPLEX] [--secs S] [--runs N]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$root/build}
new=$BUILD/duplex base="" secs=3 runs=2
while [ $# -gt 0 ]; do
  case $1 in
    --base) base=$2; shift ;;
    --secs) secs=$2; shift ;;
    --runs) runs=$2; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "bench/fairness.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$new" ] || { echo "bench/fairness.sh: no $new (run make first)" >&2; exit 2; }
tmp=$(mktemp -d /tmp/duplex-fair.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
cc -O2 -Wall -Wextra -Werror -o "$tmp/fairness" "$root/tests/attack/fairness.c" || exit 1
out=$root/bench/results/fairness.md
mkdir -p "$root/bench/results"

# serve BIN ARGS... : starts the server on CPU 0, sets pid and port.
serve() {
  local bin=$1
  shift
  taskset -c 0 "$bin" serve --echo --port 0 "$@" 2>"$tmp/serve.log" &
  pid=$!
  for _ in $(seq 1 100); do
    port=$(sed -n 's/.*listening on ws:\/\/[^ ]*:\([0-9]*\) .*/\1/p' "$tmp/serve.log" | head -1)
    [ -n "$port" ] && return 0
    sleep 0.05
  done
  echo "bench/fairness.sh: $bin did not start" >&2
  exit 1
}
stop() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }

bins=("new:$new")
[ -n "$base" ] && bins=("base:$base" "new:$new")
{
  echo "# Fairness under a flood ($(date -u +%F), $(nproc) cores, $(uname -r))"
  echo
  echo "Prober: a 16-byte message every 10 ms, its echo round trip in ms; flooders write frames back"
  echo "to back for ${secs} s and read their echoes (MiB echoed back to them in the last column)."
  [ -n "$base" ] && echo "base: $base; new: $new (alternating, $runs runs each)."
  echo
  echo "| server | path | flood | p50 | p99 | max | flood MiB |"
  echo "|---|---|---|---|---|---|---|"
} >"$out"
# each_server FN ARGS... : for both paths and every binary, starts the
# server (pid, port), runs FN NAME PATH ARGS..., stops it.
each_server() {
  local fn=$1 path b
  shift
  for path in ring epoll; do
    for b in "${bins[@]}"; do
      if [ "$path" = epoll ]; then serve "${b#*:}" --epoll; else serve "${b#*:}"; fi
      "$fn" "${b%%:*}" "$path" "$@"
      stop
    done
  done
}

flood_row() { # NAME PATH FLOODERS FRAME
  local p50 p99 max mb
  read -r _ _ _ p50 _ p99 _ max _ mb < <(taskset -c 1 "$tmp/fairness" "$port" "$secs" "$3" "$4")
  echo "| $1 | $2 | $3 × $4 B | $p50 | $p99 | $max | $mb |" | tee -a "$out"
}

echo_row() { # NAME PATH BENCH-ARGS...
  local name=$1 path=$2 j rate cpu
  shift 2
  j=$(taskset -c 1 "$new" bench --url "ws://127.0.0.1:$port/" --duration 3 --warmup 0.5 \
    --server-pid "$pid" --json --no-progress "$@")
  rate=$(printf '%s' "$j" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["msgs_per_s"]))')
  cpu=$(printf '%s' "$j" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["server_cpu_us_per_msg"], 2))')
  echo "| $name | $path | $* | $rate | $cpu |" | tee -a "$out"
}

for r in $(seq 1 "$runs"); do
  for flood in "1 4000" "16 1000" "1 65000"; do
    # shellcheck disable=SC2086
    each_server flood_row $flood
  done
done
# Echo throughput: what the fairness bound costs where no one floods.
{
  echo
  echo "Echo, server CPU per message (µs), \`duplex bench --server-pid\`:"
  echo
  echo "| server | path | scenario | msg/s | server µs/msg |"
  echo "|---|---|---|---|---|"
} >>"$out"
for r in $(seq 1 "$runs"); do
  each_server echo_row --connections 100 --size 20 --inflight 16
  each_server echo_row --connections 100 --size 65536 --inflight 1 --binary
done
echo "bench/fairness.sh: wrote $out"
