#!/usr/bin/env bash
# One client must never starve the rest. A flooder writes 4,000-byte binary
# frames back to back (and reads its echoes) while a normal client sends a
# message every 10 ms; the normal client's echo round trip must stay short,
# on the io_uring path (the default, where the kernel has it) and on epoll.
# Before the fix the ring gave the flooder every receive buffer, round after
# round, and the other client's echo took 1-6 s. Then 16 flooders of
# 1,000-byte frames, and one flooder of 65,000-byte frames.
# The bounds are generous (a loaded 2-core machine, sanitizers); bench/ has
# the figures.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cc -O2 -Wall -Wextra -Werror -o "$DX_TMP/fairness" "$here/fairness.c"

P99_MAX=50
MAX_MAX=250
fails=0

# run LABEL FLOODERS FRAME SERVE_ARGS...
run() {
  local label=$1 nflood=$2 fsize=$3
  shift 3
  dx_serve fair --echo "$@"
  local ring=epoll
  if ls -l /proc/"$DX_PID"/fd 2>/dev/null | grep -q 'io_uring'; then ring=io_uring; fi
  local out
  out=$("$DX_TMP/fairness" "$DX_PORT" 3 "$nflood" "$fsize")
  dx_stop "$DX_PID"
  # "probes N p50 X p99 Y max Z flood_mb F"
  read -r _ probes _ p50 _ p99 _ max _ flood <<<"$out"
  local ok=1
  awk -v a="$p99" -v b="$P99_MAX" 'BEGIN{exit !(a < b)}' || ok=0
  awk -v a="$max" -v b="$MAX_MAX" 'BEGIN{exit !(a < b)}' || ok=0
  # The flood really happened: at least 20 MiB echoed back to the flooders.
  awk -v a="$flood" 'BEGIN{exit !(a >= 20)}' || ok=0
  if [ "$ok" = 1 ]; then
    echo "ok: $label ($ring): $out"
  else
    echo "FAIL: $label ($ring): $out (bounds: p99 < $P99_MAX ms, max < $MAX_MAX ms, flood >= 20 MiB)"
    fails=$((fails + 1))
  fi
}

for path in ring epoll; do
  args=()
  [ "$path" = epoll ] && args=(--epoll)
  run "1 flooder x 4000 B" 1 4000 "${args[@]}"
  run "16 flooders x 1000 B" 16 1000 "${args[@]}"
  run "1 flooder x 65000 B" 1 65000 "${args[@]}"
done
[ "$fails" = 0 ] || exit 1
echo "fairness: passed"
