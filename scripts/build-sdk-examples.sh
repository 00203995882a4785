#!/usr/bin/env bash
# Builds the examples written with the Python and TypeScript SDKs
# (`examples/tables`, `examples/cron`) with `tool build`, as their authors
# would, and puts the components beside the others in
# target/wasm32-wasip2/release, where `tool serve` publishes them. Usage:
# scripts/build-sdk-examples.sh TOOL (the `tool` binary just built). A
# component is rebuilt only when its sources, the SDKs, the WIT or the build
# code changed.
set -euo pipefail
tool="$(realpath "$1")"
cd "$(dirname "$0")/.."
out="${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release"
mkdir -p "$out"
for example in tables cron; do
    dir="examples/$example"
    if [ -f "$out/$example.wasm" ] && [ -z "$(find "$dir" guest-sdk/python guest-sdk/js wit host/src/build \
        -newer "$out/$example.wasm" -type f -not -path "*/target/*" -not -name "*.wasm" -not -path "*/__pycache__/*" -print -quit)" ]; then
        continue
    fi
    "$tool" build "$dir" >/dev/null
    mv "$dir/$example.wasm" "$out/$example.wasm.partial"
    mv "$out/$example.wasm.partial" "$out/$example.wasm"
done
