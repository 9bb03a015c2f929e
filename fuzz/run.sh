#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang (-fsanitize=fuzzer,address,
# undefined) and runs each for a bounded time on its seed corpus, one after
# the other. Used by `make fuzz` and by the CTest smoke test.
#
#   fuzz/run.sh [-t SECONDS] [-b BUILD_DIR] [-w WORK_DIR] [HARNESS...]
#
# -t  seconds per harness (default 60)
# -b  build directory (default build-fuzz)
# -w  where new corpus entries and crash inputs go (default fuzz/corpus-run,
#     git-ignored); the committed seeds in fuzz/corpus/ are only read
# HARNESS  names such as fuzz_frame (default: every fuzz/fuzz_*.c)
#
# Prints one line per harness: executions, coverage (cov: edges, ft:
# features) and the corpus size; exits 1 if any harness crashed, leaked,
# hung or broke a property, naming the input that did it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=60 build=$root/build-fuzz work=$root/fuzz/corpus-run
while getopts t:b:w: opt; do
  case $opt in
  t) secs=$OPTARG ;;
  b) build=$OPTARG ;;
  w) work=$OPTARG ;;
  *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
cc=${FUZZ_CC:-$(command -v clang || command -v clang-14 || true)}
[ -n "$cc" ] || { echo "fuzz: clang not found (scripts/deps installs it)" >&2; exit 1; }

if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=$cc cmake -S "$root" -B "$build" -DDUPLEX_FUZZ=ON -DDUPLEX_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" --target fuzzers -j "${FUZZ_JOBS:-2}" >"$build/fuzz-build.log" 2>&1 || {
  cat "$build/fuzz-build.log" >&2
  exit 1
}

harnesses=("$@")
if [ ${#harnesses[@]} -eq 0 ]; then
  for f in "$root"/fuzz/fuzz_*.c; do harnesses+=("$(basename "$f" .c)"); done
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0
for h in "${harnesses[@]}"; do
  bin=$build/fuzz/$h
  [ -x "$bin" ] || { echo "$h: not built" >&2; failed=1; continue; }
  mkdir -p "$work/$h"
  seeds=$root/fuzz/corpus/$h
  [ -d "$seeds" ] || seeds=
  dict=
  case $h in
  fuzz_http_request | fuzz_http_response | fuzz_ext) dict=-dict=$root/fuzz/handshake.dict ;;
  fuzz_url) dict=-dict=$root/fuzz/url.dict ;;
  esac
  log=$work/$h.log
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: a parser
  # that allocates what a peer announces shows up as an out-of-memory.
  if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/$h-" ${dict:+"$dict"} "$work/$h" ${seeds:+"$seeds"} >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
    printf '%-20s ok: %s execs in %ss, cov: %s ft: %s corpus: %s\n' "$h" "${execs:-?}" "$secs" \
      "${cov:-?}" "${ft:-?}" "${corp:-?}"
  else
    failed=1
    echo "$h: FAILED (log: $log)" >&2
    grep -E 'ERROR|property failed|SUMMARY|Test unit written|runtime error' "$log" | head -20 >&2
  fi
done
exit $failed
