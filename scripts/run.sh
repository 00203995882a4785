#!/usr/bin/env bash
# Builds everything needed and runs `tool` with the given arguments; with no
# arguments, inspects the `hello` example and calls its `greet` tool.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "error: install Rust first: https://rustup.rs" >&2; exit 1; }
scripts/build-components.sh >&2
cargo build --locked --release -p toolmesh-host --bin tool >&2
tool="${CARGO_TARGET_DIR:-target}/release/tool"
components="${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release"
if [ $# -eq 0 ]; then
    "$tool" inspect "$components/hello.wasm"
    echo
    exec "$tool" run "$components/hello.wasm" greet --args '{"name": "world"}'
fi
exec "$tool" "$@"
