#!/bin/sh
# Builds the tool and calls it in the sandbox, as a node would.
set -eu
cd "$(dirname "$0")"
tool build >/dev/null
result=$(tool run {{name}}.wasm convert -a '{"value": 100, "from": "c", "to": "f"}')
echo "$result"
[ "$result" = "212 f" ]
echo "ok"
