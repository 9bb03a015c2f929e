#!/usr/bin/env bash
# Connection churn: 100,000 connect / handshake / close (1000) cycles, one
# after the other. Every cycle completes, the server's RSS after is the RSS
# before (within RSS_SLACK), and its descriptors come back down.
# DX_CHURN changes the count.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dx_serve churn --echo
attack churn "${DX_CHURN:-100000}"
dx_stop "$DX_PID"
echo "churn: passed"
