#!/usr/bin/env bash
# The layout rules that keep the library embeddable (docs/embedding.md):
# the duplex command is built on the public API only — cli/ includes no
# header of src/ (only <duplex/...>, the system's and its own cli/ ones)
# and calls no internal dx__ function — so it builds against an installed
# library like any other program.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
cd "$DX_ROOT"
bad=$(grep -n '#include "' cli/*.c cli/*.h | grep -v -E ':#include "(cli/)?[a-z_]+\.h"' || true)
own=$(grep -n '#include "' cli/*.c cli/*.h | sed -n 's/.*#include "\(.*\)".*/\1/p' | sort -u)
for h in $own; do
  [ -f "cli/${h#cli/}" ] || bad+=$'\n'"cli includes \"$h\", which is not in cli/"
done
[ -z "${bad//[$'\n']/}" ] || { echo "FAIL: cli/ includes headers outside include/duplex and cli/:$bad" >&2; exit 1; }
echo "ok   cli/ includes only <duplex/...> and its own headers ($(echo "$own" | wc -w) of them)"
internal=$(grep -n -o 'dx__[a-z0-9_]*' cli/*.c cli/*.h || true)
[ -z "$internal" ] || { echo "FAIL: cli/ uses internal functions:" >&2; echo "$internal" >&2; exit 1; }
echo "ok   cli/ calls no internal dx__ function"
echo "layout: passed"
