#!/usr/bin/env bash
# The chat web UI with WebSocket blocked by a proxy (tests/e2e/chat_fallback.mjs):
# Upgrade refused, then accepted and hung; the pages run over the HTTP session
# transport (docs/fallback.md), survive a kill -9 of the server without a lost
# or duplicated message, and go back to WebSocket when the proxy allows it.
# Screenshots go to tests/e2e/artifacts/ (or $DX_ARTIFACTS).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
chat_e2e chat_fallback.mjs "chat fallback e2e"
