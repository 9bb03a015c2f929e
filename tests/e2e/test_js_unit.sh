#!/usr/bin/env bash
# The browser library's unit tests (tests/js/*.test.mjs: node's test runner,
# fake timers, a fake WebSocket; the Vue composable with Vue's reactivity)
# and its type declarations (tsc --noEmit over tests/js/types.ts).
set -euo pipefail
root=${DX_ROOT:?set DX_ROOT to the source directory}
cd "$root"
for m in vue typescript; do
  [ -d "node_modules/$m" ] || { echo "$m is missing: npm ci" >&2; exit 1; }
done
timeout 300 node --test --test-reporter=spec tests/js/
timeout 300 node_modules/.bin/tsc --noEmit -p tests/js
echo "js unit tests and types: passed"
