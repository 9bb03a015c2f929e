#!/usr/bin/env bash
# Issue 17, items 10-14, in the chat web UI: headless Chromium against
# `duplex serve --chat` (tests/e2e/chat_phone.mjs): the phone layout at
# 360x640 and 390x844 (two screens, every control inside the viewport, no
# horizontal scroll, 44 px targets, the composer above the keyboard, a
# manifest), day separators and full dates, the unread total in the title and
# a notification while hidden, colour emoji and legible ticks, keyboard-only
# use and axe-core. Screenshots go to tests/e2e/artifacts/ (or $DX_ARTIFACTS);
# DX_DOCS_SHOTS=DIR also writes the docs' screenshots there (docs/).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
[ -f "$DX_ROOT/node_modules/axe-core/axe.min.js" ] || { echo "axe-core is missing: npm ci" >&2; exit 1; }
chat_e2e chat_phone.mjs "chat phone e2e"
