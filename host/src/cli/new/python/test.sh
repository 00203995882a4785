#!/bin/sh
# Builds the tool and calls it in the sandbox, as a node would.
set -eu
cd "$(dirname "$0")"
tool build >/dev/null
result=$(tool run {{name}}.wasm text_stats -a '{"text": "One fish. Two fish! Red fish, blue fish.", "top": 1}')
echo "$result"
echo "$result" | grep -q '"words": 8'
echo "$result" | grep -q '"fish"'
echo "ok"
