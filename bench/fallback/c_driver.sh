#!/usr/bin/env bash
# The HTTP fallback benchmark with the C driver (`duplex bench --transport`):
# duplex over WebSocket (ws), over its HTTP session transport (stream: SSE
# down; poll: long polls down) and Socket.IO 4 over long-polling (eio,
# bench/fallback/sio_server.mjs), in the same run, through three scenarios:
#   k1    N clients, each keeping 1 message in flight: messages/s
#   k16   the same with 16 in flight
#   rate  a fixed total rate (1,000 msg/s): latency p50/p99 from the
#         scheduled send time
# Each run starts a fresh server pinned to CPU 0 (taskset -c 0) and the
# driver pinned to CPU 1; contestants are interleaved (the order rotated
# each round), R rounds; medians and min–max are reported, with the
# server's CPU per message (/proc/PID/stat) and the driver's.
#
# usage: bench/fallback/c_driver.sh [--rounds R] [--clients N] [--size B]
#          [--duration D] [--warmup W] [--rate R] [--only ws,stream,poll,eio]
#          [--scenarios k1,k16,rate] [--md FILE] [--jsonl FILE]
# Environment: DUPLEX (default build/duplex).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
DUPLEX=${DUPLEX:-$root/build/duplex}
rounds=3 clients=10 size=64 duration=5 warmup=1 rate=1000
only=ws,stream,poll,eio scenarios=k1,k16,rate
md=$root/bench/results/fallback-c.md jsonl=
while [ $# -gt 0 ]; do
  case $1 in
  --rounds) rounds=$2 ;; --clients) clients=$2 ;; --size) size=$2 ;;
  --duration) duration=$2 ;; --warmup) warmup=$2 ;; --rate) rate=$2 ;;
  --only) only=$2 ;; --scenarios) scenarios=$2 ;; --md) md=$2 ;; --jsonl) jsonl=$2 ;;
  -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
  *) echo "c_driver.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
tmp=$(mktemp -d /tmp/fallback-c.XXXXXX)
srv=
cleanup() {
  [ -n "$srv" ] && kill "$srv" 2>/dev/null && wait "$srv" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
[ -n "$jsonl" ] || jsonl=$tmp/runs.jsonl
: >"$jsonl"
# exec: `pin0 server &` must leave the server's own pid in $!.
pin0() { if [ "$(nproc)" -ge 2 ]; then exec taskset -c 0 "$@"; else exec "$@"; fi; }
pin1() { if [ "$(nproc)" -ge 2 ]; then taskset -c 1 "$@"; else "$@"; fi; }

# start_server CONTESTANT: sets srv (pid) and port.
start_server() {
  : >"$tmp/srv.log"
  if [ "$1" = eio ]; then
    (pin0 node "$root/bench/fallback/sio_server.mjs" --port 0) >"$tmp/srv.log" 2>&1 &
    srv=$!
    for _ in $(seq 1 200); do grep -q '^listening' "$tmp/srv.log" && break; sleep 0.05; done
    port=$(sed -n 's/^listening \([0-9]*\)$/\1/p' "$tmp/srv.log")
  else
    (pin0 "$DUPLEX" serve --port 0 --echo --no-deflate) 2>"$tmp/srv.log" &
    srv=$!
    for _ in $(seq 1 200); do grep -q 'listening on' "$tmp/srv.log" && break; sleep 0.05; done
    port=$(sed -n 's/.*listening on [a-z]*:\/\/[^ ]*:\([0-9]*\) .*/\1/p' "$tmp/srv.log" | head -1)
  fi
  [ -n "$port" ] || { echo "server for $1 did not start:" >&2; cat "$tmp/srv.log" >&2; exit 1; }
}

IFS=, read -r -a cs <<<"$only"
IFS=, read -r -a ss <<<"$scenarios"
started=$(date -u '+%Y-%m-%d %H:%M')
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for ((r = 0; r < rounds; r++)); do
  for s in "${ss[@]}"; do
    n=${#cs[@]}
    for ((i = 0; i < n; i++)); do
      c=${cs[$(((i + r) % n))]}
      start_server "$c"
      case $s in
      k1) mode=(--inflight 1) ;; k16) mode=(--inflight 16) ;; rate) mode=(--rate "$rate") ;;
      esac
      scheme=ws
      [ "$c" = eio ] && scheme=http
      out=$(pin1 "$DUPLEX" bench --url "$scheme://127.0.0.1:$port/" --transport "$c" \
        --connections "$clients" --size "$size" --duration "$duration" --warmup "$warmup" \
        "${mode[@]}" --server-pid "$srv" --json --no-progress) || true
      load=$(cut -d' ' -f1 /proc/loadavg)
      echo "{\"round\":$r,\"scenario\":\"$s\",\"contestant\":\"$c\",\"load1\":$load,\"run\":${out:-null}}" >>"$jsonl"
      echo "round $((r + 1))/$rounds $s $c: $(echo "$out" | sed -n 's/.*"msgs_per_s":\([0-9.]*\).*/\1/p') msg/s (load $load)" >&2
      kill "$srv" 2>/dev/null || true
      wait "$srv" 2>/dev/null || true
      srv=
    done
  done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$jsonl" "$md" "$started" "$load0" "$load1" "$clients" "$size" "$duration" "$warmup" \
  "$rate" "$rounds" "$("$DUPLEX" --version 2>/dev/null | head -1 || true)" \
  "$(git -C "$root" rev-parse --short HEAD 2>/dev/null || true)" "$(node --version)" \
  "$(node -e 'console.log(require(process.argv[1]+"/node_modules/socket.io/package.json").version)' "$root" 2>/dev/null || true)" <<'EOF'
import json, sys, statistics, platform, os
(path, md, started, load0, load1, clients, size, duration, warmup, rate, rounds, version, commit,
 node, sio) = sys.argv[1:16]
runs = [json.loads(l) for l in open(path) if l.strip()]
names = {"ws": "duplex, WebSocket", "stream": "duplex, HTTP fallback, stream (SSE down)",
         "poll": "duplex, HTTP fallback, poll (long polls down)",
         "eio": "Socket.IO 4, long-polling"}
order = [c for c in ["ws", "stream", "poll", "eio"] if any(r["contestant"] == c for r in runs)]

def vals(s, c, f):
    out = []
    for r in runs:
        if r["scenario"] == s and r["contestant"] == c and r["run"]:
            v = f(r["run"])
            if v is not None:
                out.append(v)
    return out

def fmt(v, d):
    return f"{v:,.{d}f}"

def cell(xs, d=0):
    if not xs:
        return "–"
    m = statistics.median(xs)
    return f"{fmt(m, d)} ({fmt(min(xs), d)}–{fmt(max(xs), d)})" if len(xs) > 1 else fmt(m, d)

def med(s, c, f):
    xs = vals(s, c, f)
    return statistics.median(xs) if xs else None

cols = [
    ("msg/s", lambda r: r["msgs_per_s"], 0),
    ("p50 ms", lambda r: r["latency_us"]["p50"] / 1e3, 2),
    ("p99 ms", lambda r: r["latency_us"]["p99"] / 1e3, 2),
    ("max ms", lambda r: r["latency_us"]["max"] / 1e3, 1),
    ("server CPU %", lambda r: r.get("server_cpu_pct"), 0),
    ("server µs/msg", lambda r: r.get("server_cpu_us_per_msg"), 1),
    ("driver CPU %", lambda r: r["generator_cpu_pct"], 0),
    ("driver µs/msg", lambda r: 1e4 * r["generator_cpu_pct"] / r["msgs_per_s"] if r["msgs_per_s"] else None, 1),
    ("HTTP req/msg", lambda r: r.get("requests_per_msg"), 2),
    ("errors", lambda r: r["errors"], 0),
]
titles = {"k1": f"{clients} clients × 1 in flight: throughput",
          "k16": f"{clients} clients × 16 in flight: throughput",
          "rate": f"Fixed {int(float(rate)):,} msg/s in total: latency"}
L = []
L.append(f"# HTTP fallback with the C driver (`duplex bench --transport`), duplex {commit}\n")
L.append(f"{started} UTC, {os.cpu_count()} cores, Linux {platform.release()}. Load average (1, 5, 15 min) "
         f"{load0} at the start, {load1} at the end (other jobs share this machine). {clients} clients, "
         f"{size}-byte text messages, {warmup} s warm-up then {duration} s measured per run, {rounds} rounds "
         f"with the contestants interleaved (order rotated each round) and a fresh server per run; "
         f"median (min–max) of the rounds. Server pinned to CPU 0, driver (`duplex bench`, one thread) "
         f"to CPU 1. CPU is % of one core over the measured window (driver: getrusage; server: "
         f"/proc/PID/stat). Latency at the fixed rate counts from each message's scheduled send time.\n")
L.append(f"duplex: `duplex serve --echo --no-deflate` ({version}); Socket.IO {sio} "
         f"(`bench/fallback/sio_server.mjs`, httpCompression and perMessageDeflate off), Node {node}. "
         f"Produced by `bench/fallback/c_driver.sh`.\n")
for s in ["k1", "k16", "rate"]:
    if not any(r["scenario"] == s for r in runs):
        continue
    L.append(f"## {titles[s]}\n")
    L.append("| contestant | " + " | ".join(c[0] for c in cols) + " |")
    L.append("|---|" + "---:|" * len(cols))
    for c in order:
        L.append(f"| {names[c]} (`{c}`) | " + " | ".join(cell(vals(s, c, f), d) for _, f, d in cols) + " |")
    L.append("")
L.append("## Targets\n")
L.append("| target | ratio (median) | range over rounds | met |")
L.append("|---|---:|---:|---|")

def ratio(s, a, b, f, want_ge):
    xa, xb = vals(s, a, f), vals(s, b, f)
    if not xa or not xb:
        return None
    if not statistics.median(xb):
        return None
    m = statistics.median(xa) / statistics.median(xb)
    rs = [x / y for x in xa for y in xb if y]
    return m, min(rs), max(rs)

thr = lambda r: r["msgs_per_s"]
p99 = lambda r: r["latency_us"]["p99"]
for s in ["k1", "k16"]:
    for c in ["stream", "poll"]:
        x = ratio(s, c, "eio", thr, True)
        if x:
            L.append(f"| throughput {s}: {c} / Socket.IO long-polling ≥ 5× | {x[0]:.2f}× | {x[1]:.2f}–{x[2]:.2f}× | {'**yes**' if x[0] >= 5 else '**no**'} |")
for c in ["stream", "poll"]:
    x = ratio("rate", c, "ws", p99, False)
    if x:
        L.append(f"| p99 at {int(float(rate)):,} msg/s: {c} / WebSocket ≤ 2× | {x[0]:.2f}× | {x[1]:.2f}–{x[2]:.2f}× | {'**yes**' if x[0] <= 2 else '**no**'} |")
for s in ["k1", "k16"]:
    for c in ["stream", "poll"]:
        x = ratio(s, "eio", c, lambda r: r.get("server_cpu_us_per_msg"), True)
        if x:
            L.append(f"| (server CPU per message {s}: Socket.IO / {c}) | {x[0]:.2f}× | {x[1]:.2f}–{x[2]:.2f}× | (information) |")
L.append("\n(Ranges: the smallest and largest ratio of any two rounds' figures.)\n")
L.append("Raw runs, one JSON object per line (`duplex bench --json` in `run`):\n")
L.append("```")
for r in runs:
    L.append(json.dumps(r, separators=(",", ":")))
L.append("```")
open(md, "w").write("\n".join(L) + "\n")
print(f"wrote {md}", file=sys.stderr)
EOF
