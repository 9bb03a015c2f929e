#!/usr/bin/env bash
# The chat web UI in headless Chromium against `duplex serve --chat`
# (tests/e2e/chat.mjs): two users chat; sending → sent → read; one goes
# offline and comes back; the server is SIGKILLed and restarted while
# messages wait. Screenshots go to tests/e2e/artifacts/ (or $DX_ARTIFACTS).
#
# The UI is the one `make` builds (web/chat/dist) when it is up to date with
# its sources; otherwise (ctest run without make) it is built here into a
# temporary folder, so the test never runs against a stale bundle (lib.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
chat_e2e chat.mjs "chat e2e"
