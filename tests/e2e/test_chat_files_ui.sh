#!/usr/bin/env bash
# Issue 18, pictures and files in the chat web UI: headless Chromium against
# `duplex serve --chat` (tests/e2e/chat_files.mjs): a picture attached with
# the paperclip (its progress bar, the thumbnail on both sides, the original
# in a lightbox), a non-member's 403/404 for the /files URLs, a dropped
# "../../x.txt" shown as that name and downloaded as a file, a pasted
# picture, an upload resumed after a reload without a second message, a
# file over --max-upload refused, and the phone layout at 390x844.
# Screenshots go to tests/e2e/artifacts/ (or $DX_ARTIFACTS);
# DX_DOCS_SHOTS=DIR also writes the docs' one there (docs/chat-picture.png,
# desktop 1280x800): DX_DOCS_SHOTS=$PWD/docs ctest -R chat_files_ui.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
chat_e2e chat_files.mjs "chat files e2e"
