#!/bin/sh
# Builds the tool and calls it in the sandbox, as a node would.
set -eu
cd "$(dirname "$0")"
tool build >/dev/null
result=$(tool run {{name}}.wasm csv_to_json -a '{"csv": "name,age\nAda,36\n\"Lovelace, A.\",37\n"}')
echo "$result"
echo "$result" | grep -q '"Lovelace, A."'
echo "ok"
