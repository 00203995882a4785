#!/usr/bin/env bash
# Builds the example tools and the test components (hostile, probe, gpu-abuse)
# as WebAssembly components (target/wasm32-wasip2/release/*.wasm). The
# `model` example embeds all-MiniLM-L6-v2's weights, fetched once into
# ~/.cache/toolmesh/model by scripts/fetch-model.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
scripts/fetch-model.sh >/dev/null
cargo build --locked --release --target wasm32-wasip2 \
    -p example-hello -p example-text -p example-markdown -p example-image -p example-fetch -p example-archive -p example-matmul -p example-model -p hostile -p gpu-abuse -p probe -p conformance
