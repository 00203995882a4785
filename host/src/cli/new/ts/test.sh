#!/bin/sh
# Builds the tool and calls it in the sandbox, as a node would.
set -eu
cd "$(dirname "$0")"
tool build >/dev/null
result=$(tool run {{name}}.wasm word_stats -a '{"text": "the cat and the hat", "top": 1}')
echo "$result"
echo "$result" | grep -q '"word": "the"'
echo "ok"
