#!/usr/bin/env bash
# Issue 18 in the chat web UI: private groups, recall and edit, search
# (docs/chat-protocol.md, "Revision 2"), headless Chromium against
# `duplex serve --chat` (tests/e2e/chat_groups.mjs): a group made from
# "New group", what a non-member sees of it (nothing) and gets for forged
# requests (forbidden), system messages, edit and recall on a second device
# and a member's, a Chinese search that opens the conversation at the
# message, the info panel's roles and removal (read-only), phones and axe.
# Screenshots go to tests/e2e/artifacts/ (or $DX_ARTIFACTS);
# DX_DOCS_SHOTS=DIR also writes docs/chat-group.png and docs/chat-search.png
# there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
[ -f "$DX_ROOT/node_modules/axe-core/axe.min.js" ] || { echo "axe-core is missing: npm ci" >&2; exit 1; }
chat_e2e chat_groups.mjs "chat groups e2e"
