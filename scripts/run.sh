#!/usr/bin/env bash
# The main job: builds the example components and the `tool` binary (and
# with it the Python and TypeScript examples), then
# runs `tool serve` (registry + MCP gateway + local node in one process),
# which publishes the examples on first start and serves MCP at
# http://127.0.0.1:7600/mcp, granting GPU compute on the best Vulkan
# adapter it finds. Extra arguments go to `tool serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "error: install Rust first: https://rustup.rs" >&2; exit 1; }
scripts/build-components.sh >&2
cargo build --locked --release -p toolmesh-host --bin tool >&2
target="${CARGO_TARGET_DIR:-target}"
# The Python and TypeScript examples, built by `tool build` as their
# authors would; without python3 or Node.js, the others are served alone.
scripts/build-sdk-examples.sh "$target/release/tool" >&2 \
    || echo "warning: the Python and TypeScript examples (tables, cron) were not built; see above" >&2
exec "$target/release/tool" serve --gpu --examples "$target/wasm32-wasip2/release" "$@"
