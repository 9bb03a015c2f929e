# Shared by the attack scripts: the interop helpers (dx_serve, dx_stop,
# DX_TMP), the attacker built from attacker.c, and the bounds.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../interop/lib.sh"

# Bounds on the server's memory, in KiB: its peak RSS during any attack
# (VmHWM), and how much a flood or 100,000 connection cycles may add to
# it. Under AddressSanitizer every allocation carries redzones and freed
# memory waits in a quarantine (kept at 16 MiB here instead of 256), so
# the bounds are wider there; LeakSanitizer checks for leaks when the
# server exits (dx_stop requires exit status 0).
RSS_MAX=65536
RSS_SLACK=2048
if [ "${DX_SANITIZE:-0}" = 1 ]; then
  RSS_MAX=262144
  RSS_SLACK=49152
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16:detect_leaks=1"
fi

ulimit -n "$(ulimit -Hn)"
cc -O2 -Wall -Wextra -Werror -o "$DX_TMP/attacker" "$here/attacker.c" -lz

# attack ARGS... : runs the attacker against the last dx_serve, with the
# bounds; fails the script if any of its checks failed.
attack() {
  "$DX_TMP/attacker" --pid "$DX_PID" --rss-max "$RSS_MAX" --rss-slack "$RSS_SLACK" "$1" "$DX_PORT" "${@:2}"
}

# no_echo_in_log NAME : the server's log holds no byte an attacker chose
# (the attacks mark theirs with EVIL and ESC).
no_echo_in_log() {
  if grep -a -q -e 'EVIL' -e $'\x1b' "$DX_TMP/$1.log"; then
    echo "FAIL: attacker bytes in the server log:" >&2
    cat -v "$DX_TMP/$1.log" >&2
    return 1
  fi
  echo "ok: nothing of the attacker's in the server log"
}
