#!/usr/bin/env bash
# Multi-core scaling of `duplex serve --echo --threads N`: the server on
# cores 0..N-1, eight `duplex bench` generators on cores 8-15 (100
# connections each, 20 B messages), with 1 and then 16 messages in flight,
# for N = 1, 2, 4, 8. Prints a table (and writes bench/results/scale.md and
# scale.json). Needs nothing but the built command (build/duplex, made with
# cmake if missing) and python3: no network, npm or apt. About 3 minutes
# with the defaults; every step has a timeout.
#
# Environment: BUILD (default build/), THREADS ("1 2 4 8"), INFLIGHT ("1 16"),
# DURATION (4 s measured), WARMUP (1 s), RUNS (3, the median is reported),
# GENERATORS (8), GEN_CORE0 (8: generator i runs on core GEN_CORE0+i, modulo
# the number of cores), CONNS (100 per generator), NAME (scale: the results
# go to bench/results/NAME.md and NAME.json).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$root/build}
THREADS=${THREADS:-"1 2 4 8"}
INFLIGHT=${INFLIGHT:-"1 16"}
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
RUNS=${RUNS:-3}
GENERATORS=${GENERATORS:-8}
GEN_CORE0=${GEN_CORE0:-8}
CONNS=${CONNS:-100}
NAME=${NAME:-scale}
PY=${PYTHON:-python3}
out=$root/bench/results
tmp=$out/tmp/scale
tmo=$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { printf "%d", d + w + 30 }')
mkdir -p "$tmp"
ncpu=$(nproc)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ ! -x "$BUILD/duplex" ]; then
  echo "building duplex in $BUILD" >&2
  cmake -S "$root" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
    cmake --build "$BUILD" -j"$ncpu" --target duplex >/dev/null || { echo "build failed" >&2; exit 1; }
fi
DUPLEX=$BUILD/duplex
[ "$ncpu" -ge 16 ] || echo "note: $ncpu cores, not 16: generators share cores with the server (figures are not comparable)" >&2

SPID=""
stop_server() {
  [ -n "$SPID" ] || return 0
  kill "$SPID" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$SPID" 2>/dev/null
  wait "$SPID" 2>/dev/null
  SPID=""
}
trap stop_server EXIT

: >"$tmp/runs.jsonl"
for n in $THREADS; do
  cores=0
  [ "$n" -gt 1 ] && cores="0-$((n - 1))"
  stop_server
  taskset -c "$cores" "$DUPLEX" serve --echo --threads "$n" --port 0 2>"$tmp/server.log" &
  SPID=$!
  port=""
  for _ in $(seq 1 100); do
    port=$(sed -n 's/.*listening on ws:\/\/[^ ]*:\([0-9]*\).*/\1/p' "$tmp/server.log" | head -1)
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "server with $n threads did not start: $(cat "$tmp/server.log")" >&2; exit 1; }
  for k in $INFLIGHT; do
    for r in $(seq 1 "$RUNS"); do
      pids=()
      for g in $(seq 0 $((GENERATORS - 1))); do
        core=$(((GEN_CORE0 + g) % ncpu))
        extra=""
        [ "$g" = 0 ] && extra="--server-pid $SPID"
        # shellcheck disable=SC2086
        timeout "$tmo" taskset -c "$core" "$DUPLEX" bench \
          --url "ws://127.0.0.1:$port/" --connections "$CONNS" --size 20 --inflight "$k" \
          --duration "$DURATION" --warmup "$WARMUP" --json $extra >"$tmp/gen.$g.json" 2>>"$tmp/gen.err" &
        pids+=($!)
      done
      for p in "${pids[@]}"; do wait "$p"; done
      "$PY" - "$tmp" "$GENERATORS" "$n" "$k" "$r" >>"$tmp/runs.jsonl" <<'EOF'
import json, sys
tmp, gens, n, k, r = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
tot = {"threads": n, "inflight": k, "run": r, "msgs_per_s": 0.0, "errors": 0, "closes": 0,
       "connected": 0, "generators_bound": 0, "generators_ok": 0, "server_cpu_pct": None, "p99_us": []}
for g in range(gens):
    try:
        d = json.load(open(f"{tmp}/gen.{g}.json"))
    except Exception:
        tot["errors"] += 1
        continue
    tot["generators_ok"] += 1
    tot["msgs_per_s"] += d["msgs_per_s"]
    tot["errors"] += d["errors"]
    tot["closes"] += d["closes"]
    tot["connected"] += d["connected"]
    tot["generators_bound"] += 1 if d.get("generator_bound") else 0
    tot["p99_us"].append(d["latency_us"]["p99"])
    if "server_cpu_pct" in d:
        tot["server_cpu_pct"] = d["server_cpu_pct"]
tot["p99_us"] = max(tot["p99_us"]) if tot["p99_us"] else None
print(json.dumps(tot))
EOF
      echo "threads $n, $k in flight, run $r: $(tail -1 "$tmp/runs.jsonl")" >&2
    done
  done
  stop_server
done

"$PY" - "$tmp/runs.jsonl" "$out" "$ncpu" "$DURATION" "$RUNS" "$GENERATORS" "$CONNS" "$NAME" "$GEN_CORE0" <<'EOF'
import json, statistics, sys, os
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
out, ncpu, dur, nruns, gens, conns, name, core0 = sys.argv[2:10]
uws = {(1, 16): 1.96e6, (2, 16): 4.18e6, (4, 16): 8.83e6, (8, 16): 17.2e6,
       (1, 1): 138e3, (2, 1): 301e3, (4, 1): 579e3, (8, 1): 1.21e6}
rows = {}
for r in runs:
    rows.setdefault((r["threads"], r["inflight"]), []).append(r)
lines = [f"# duplex serve --echo --threads N: scaling\n",
         f"{ncpu} cores; server on cores 0..N-1, {gens} generators × {conns} connections on cores {core0}.. "
         f"(modulo {ncpu}), 20 B text; median of {nruns} runs of {dur} s."
         + ("" if int(ncpu) >= 16 else " Fewer than 16 cores: the generators share cores with the server, "
            "and the uWS column (16-core device figures from the issue) is not a comparison.") + "\n",
         "| threads | in flight | msg/s | per thread | vs uWS (issue 6) | server CPU % | worst p99 µs | errors | closes | generators at their limit |",
         "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
summary = []
for (n, k) in sorted(rows):
    rs = rows[(n, k)]
    m = statistics.median(x["msgs_per_s"] for x in rs)
    cpu = [x["server_cpu_pct"] for x in rs if x["server_cpu_pct"] is not None]
    p99 = [x["p99_us"] for x in rs if x["p99_us"] is not None]
    ref = uws.get((n, k))
    bound = max(x["generators_bound"] for x in rs)
    lines.append(f"| {n} | {k} | {m:,.0f} | {m / n:,.0f} | {'%.2f×' % (m / ref) if ref else '–'} | "
                 f"{statistics.median(cpu) if cpu else float('nan'):.0f} | {statistics.median(p99) if p99 else 0:,.0f} | "
                 f"{sum(x['errors'] for x in rs)} | {sum(x['closes'] for x in rs)} | {bound} of {gens} |")
    summary.append({"threads": n, "inflight": k, "msgs_per_s": m, "uws_msgs_per_s": ref, "runs": rs})
text = "\n".join(lines) + "\n"
open(os.path.join(out, name + ".md"), "w").write(text)
json.dump(summary, open(os.path.join(out, name + ".json"), "w"), indent=1)
print(text)
EOF
