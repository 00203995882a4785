#!/usr/bin/env bash
# Builds the example tools and the test components (hostile, probe, gpu-abuse, plain)
# as WebAssembly components (target/wasm32-wasip2/release/*.wasm). The
# `model` example embeds all-MiniLM-L6-v2's weights, fetched once into
# ~/.cache/toolmesh/model by scripts/fetch-model.sh. `javascript` embeds
# QuickJS, compiled with Debian's clang (scripts/wasi-sdk.sh); `python` is
# CPython built into a component by componentize-py, installed once into
# ~/.cache/toolmesh.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${TOOLMESH_CACHE:-$HOME/.cache/toolmesh}"
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
scripts/fetch-model.sh >/dev/null
cargo build --locked --release --target wasm32-wasip2 \
    -p example-hello -p example-text -p example-markdown -p example-image -p example-fetch -p example-archive -p example-matmul -p example-model -p hostile -p gpu-abuse -p linalg-abuse -p probe -p conformance -p plain

# QuickJS's C sources, with its stack limit kept on (see the header).
WASI_SDK="$(scripts/wasi-sdk.sh)"
export WASI_SDK
export CFLAGS_wasm32_wasip2="--sysroot=$WASI_SDK/share/wasi-sysroot -include $PWD/examples/javascript/wasi/quickjs-stack-check.h"
cargo build --locked --release --target wasm32-wasip2 -p example-javascript --features quickjs

# CPython: rebuilt when the app or the WIT changed.
out="${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/python.wasm"
componentize_py="$cache/componentize-py-0.25.1"
if [ ! -x "$componentize_py/bin/componentize-py" ]; then
    python3 -m venv "$componentize_py"
    "$componentize_py/bin/pip" install -q --disable-pip-version-check componentize-py==0.25.1
fi
if [ ! -f "$out" ] || [ -n "$(find examples/python wit -newer "$out" -type f -print -quit)" ]; then
    "$componentize_py/bin/componentize-py" -d wit -w code-tool componentize -p examples/python app -o "$out.partial" >/dev/null
    mv "$out.partial" "$out"
fi
