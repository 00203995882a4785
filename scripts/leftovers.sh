#!/usr/bin/env bash
# Fails when a process started from this build is still running: a test
# that did not clean up after itself. Run after the test command.
set -euo pipefail
target="$(cd "${CARGO_TARGET_DIR:-$(dirname "$0")/../target}" && pwd)"
cache="${TOOLMESH_CACHE:-$HOME/.cache/toolmesh}"
left=$(pgrep -a -f "^($target|$cache)/" || true)
if [ -n "$left" ]; then
    echo "error: the tests left these processes running:" >&2
    echo "$left" >&2
    exit 1
fi
echo "no test process left running"
