#!/usr/bin/env bash
# Issue 17, "nothing a person typed is ever lost", in the chat web UI:
# headless Chromium against `duplex serve --chat` (tests/e2e/chat_offline.mjs):
# "Load older" keeps the place, presence is unknown while offline, a stalled
# server's late ack and a reconnection settle failed messages, the outbox and
# drafts outlive a closed browser (persistent profile), permanent refusals
# show their reason, a refused sign-in stops reconnecting. Screenshots go to
# tests/e2e/artifacts/ (or $DX_ARTIFACTS).
#
# The UI is web/chat/dist when it is up to date with its sources; otherwise
# it is built here into a temporary folder (lib.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
chat_e2e chat_offline.mjs "chat offline e2e"
