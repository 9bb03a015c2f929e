# Shared by the chat web UI tests (tests/e2e/test_chat*.sh): source it, then
# call `chat_e2e SCRIPT.mjs NAME`. Needs DUPLEX and DX_ROOT, like
# ../interop/lib.sh, which it sources (DX_TMP, dx_serve, cleanup on exit).
# Not named test_*.sh: CTest runs every tests/e2e/test_*.sh as a test.
e2e_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$e2e_here/../interop/lib.sh"

# chat_e2e_deps : exits 1 with a hint when Chromium or playwright-core is
# missing.
chat_e2e_deps() {
  [ -x /usr/bin/chromium ] || { echo "chromium is missing (make deps)" >&2; exit 1; }
  [ -d "$DX_ROOT/node_modules/playwright-core" ] || { echo "playwright-core is missing: npm ci" >&2; exit 1; }
}

# chat_ui : sets CHAT_UI to the chat web UI to serve. That is web/chat/dist
# (what `make` builds) when it is up to date with its sources; otherwise
# (ctest run without make) the UI is built here into $DX_TMP/ui, so a test
# never runs against a stale bundle.
chat_ui() {
  CHAT_UI="$DX_ROOT/web/chat/dist"
  local stale
  stale=$(find "$DX_ROOT/web/chat/src" "$DX_ROOT/web/chat/public" "$DX_ROOT/web/chat/index.html" "$DX_ROOT/web/chat/vite.config.js" \
               "$DX_ROOT/web/client" -type f -newer "$CHAT_UI/index.html" 2>/dev/null | head -1 || true)
  if [ ! -f "$CHAT_UI/index.html" ] || [ -n "$stale" ]; then
    echo "web/chat/dist is missing or older than its sources: building the UI into $DX_TMP/ui"
    (cd "$DX_ROOT" && DX_CHAT_OUT="$DX_TMP/ui" npx --no-install vite build --config web/chat/vite.config.js)
    CHAT_UI="$DX_TMP/ui"
  fi
}

# chat_e2e SCRIPT.mjs NAME : the whole run of one chat UI test. Checks the
# dependencies, finds or builds the UI, then runs
# `node tests/e2e/SCRIPT.mjs DUPLEX UI WORKDIR ARTIFACTS` (5 minutes at most;
# screenshots go to tests/e2e/artifacts/ or $DX_ARTIFACTS). The script starts
# its servers with their logs at WORKDIR/server-*.log; on failure the last 20
# lines of each are printed and the shell exits 1. On success it prints
# "NAME: passed".
chat_e2e() {
  local script=$1 name=$2
  chat_e2e_deps
  chat_ui
  mkdir -p "$DX_TMP/work"
  timeout 300 node "$e2e_here/$script" "$DUPLEX" "$CHAT_UI" "$DX_TMP/work" "${DX_ARTIFACTS:-$e2e_here/artifacts}" || {
    echo "--- server logs" >&2
    tail -n 20 "$DX_TMP"/work/server-*.log >&2 || true
    exit 1
  }
  echo "$name: passed"
}
