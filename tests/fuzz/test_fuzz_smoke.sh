#!/usr/bin/env bash
# Fuzz smoke: builds every libFuzzer harness in fuzz/ with clang
# (-fsanitize=fuzzer,address,undefined) in $DX_BUILD/fuzz-smoke and runs
# each for DX_FUZZ_SECS seconds (default 10) on its committed corpus, which
# holds the crash inputs found so far as regressions. Any crash, leak,
# hang or broken property fails the test. New corpus entries stay in the
# build directory. Longer runs: `make fuzz FUZZ_TIME=600`.
set -euo pipefail
: "${DX_ROOT:?set DX_ROOT to the source directory}"
: "${DX_BUILD:?set DX_BUILD to the build directory}"
out=$DX_BUILD/fuzz-smoke
mkdir -p "$out"
# The harnesses carry their own sanitizers; an outer ASAN_OPTIONS from a
# sanitizer build must not change how they run.
unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
"$DX_ROOT/fuzz/run.sh" -t "${DX_FUZZ_SECS:-10}" -b "$out/build" -w "$out/corpus"
echo "fuzz smoke: passed"
