#!/usr/bin/env bash
# The layout rules that keep the library embeddable (docs/embedding.md):
# the duplex command is built on the public API only — cli/ includes no
# header of src/ (only <duplex/...>, the system's and its own cli/ ones)
# and calls no internal dx__ function — so it builds against an installed
# library like any other program. And src/server/ keeps its layers: no
# cycle in the include or call graph between its files (below).
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

# src/server/ is built in layers (docs/embedding.md, "Inside the server"):
# each file uses only those below it, and the connection layer reaches the
# layers above through the hooks dx_server_new sets. Two graphs between
# its modules (x.c and x.h are one module) must have no cycle: who
# includes whose header, and who calls whose functions (read with nm from
# the objects of the build, when they are there).
# no_cycle NAME: reads "from to" lines on stdin; prints a cycle and fails.
no_cycle() {
  local edges cycle
  edges=$(sort -u)
  cycle=$(printf '%s\n' "$edges" | awk '
    NF == 2 { out[$1] = out[$1] " " $2; node[$1]; node[$2] }
    function visit(v,   i, n, next_) {
      state[v] = 1; stack[++depth] = v
      n = split(out[v], next_, " ")
      for (i = 1; i <= n && !found; i++) {
        if (state[next_[i]] == 1) { found = next_[i]; return }
        if (!state[next_[i]]) visit(next_[i])
        if (found) return
      }
      state[v] = 2; depth--
    }
    END {
      for (v in node) if (!state[v] && !found) visit(v)
      if (!found) exit
      for (i = 1; stack[i] != found; i++);
      line = stack[i]
      for (i++; i <= depth; i++) line = line " -> " stack[i]
      print line " -> " found
    }')
  if [ -n "$cycle" ]; then
    echo "FAIL: the $1 graph of src/server/ has a cycle: $cycle" >&2
    echo "  its edges (module -> module it uses):" >&2
    printf '%s\n' "$edges" | sed 's/ / -> /; s/^/    /' >&2
    exit 1
  fi
  echo "ok   src/server/ $1 graph has no cycle ($(printf '%s\n' "$edges" | grep -c .) edges)"
}
for f in src/server/*.c src/server/*.h; do
  m=$(basename "$f"); m=${m%.*}
  sed -n 's/^#include "server\/\([a-z_0-9]*\)\.h".*/\1/p' "$f" | while read -r h; do
    [ "$h" = "$m" ] || echo "$m $h"
  done
done | no_cycle include
in_server=$(grep -l '#include "server/internal.h"' src/server/*.c src/server/*.h | grep -v 'internal\.h$' || true)
[ -z "$in_server" ] || { echo "FAIL: src/server/ files include the tests' umbrella internal.h:" $in_server >&2; exit 1; }
echo "ok   no file of src/server/ includes internal.h"
objdir=${DX_BUILD:-}/CMakeFiles/duplex_obj.dir/src/server
if [ -n "${DX_BUILD:-}" ] && [ -d "$objdir" ] && command -v nm >/dev/null; then
  syms=$(for f in src/server/*.c; do
    m=$(basename "$f" .c)
    o="$objdir/$m.c.o"
    [ -f "$o" ] || continue
    nm "$o" 2>/dev/null | awk -v m="$m" '
      NF == 3 && $2 ~ /^[TDBRCGSVW]$/ { print "D", m, $3 }
      NF == 2 && $1 == "U" { print "U", m, $2 }'
  done)
  if [ "$(printf '%s\n' "$syms" | grep -c '^D ')" -gt 0 ]; then
    printf '%s\n' "$syms" | awk '
      $1 == "D" { def[$3] = $2 }
      $1 == "U" { n++; um[n] = $2; us[n] = $3 }
      END { for (i = 1; i <= n; i++)
              if ((us[i] in def) && def[us[i]] != um[i]) print um[i], def[us[i]] }' |
      no_cycle call
  else
    echo "skip src/server/ call graph: nm read no symbols from $objdir"
  fi
else
  echo "skip src/server/ call graph: no objects of the build (DX_BUILD) to read"
fi
echo "layout: passed"
