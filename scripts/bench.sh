#!/usr/bin/env bash
# Benchmarks: `scripts/bench.sh` runs the sandbox benchmarks (criterion;
# results in target/criterion/); `scripts/bench.sh mcp` the release
# `tool serve` process against a native rmcp server process, driven from
# outside; `scripts/bench.sh cold` publish → first result on a fresh node;
# `scripts/bench.sh registry` registry push
# and pull against a file copy; `scripts/bench.sh mesh` release gateway →
# NATS → node against the embedded `tool serve`, and failover time;
# `scripts/bench.sh gpu` matmul through the sandbox's GPU interface
# against the same WGSL run natively with wgpu, and the CPU inside wasm;
# `scripts/bench.sh model` model.wasm's `embed` of 128 sentences (GPU, host
# linear algebra and wasm paths) and of one short sentence against
# sentence-transformers on PyTorch, and publishing the ~92 MB component;
# `scripts/bench.sh linalg` a matrix product through host linear algebra
# against the same `gemm` called natively, and inside wasm;
# `scripts/bench.sh code` run_python and run_javascript through the release
# `tool serve` against native `python3 -c` and `node -e`;
# `scripts/bench.sh plain` a plain-WIT component against a toolmesh-world
# one doing the same work, through the release `tool serve`;
# `scripts/bench.sh sdk` Python, JavaScript and TypeScript tools: tool new + tool build,
# publish → first result, warm calls;
# `scripts/bench.sh code-tools` code calling tools: a call from code against
# the same call made directly, fan-out, session calls, and bytes returned.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-components.sh
case "${1:-sandbox}" in
    sandbox) cargo bench --locked -p toolmesh-host --bench sandbox ;;
    mcp|cold|mesh|gpu|model|linalg|code|plain|sdk) cargo build --locked --release -p toolmesh-host --bin tool
         cargo bench --locked -p toolmesh-host --bench "$1" ;;
    code-tools) cargo build --locked --release -p toolmesh-host --bin tool
         cargo bench --locked -p toolmesh-host --bench code_tools ;;
    registry) cargo bench --locked -p toolmesh-registry --bench transfer ;;
    *) echo "usage: scripts/bench.sh [sandbox|mcp|cold|mesh|gpu|model|linalg|code|code-tools|plain|sdk|registry]" >&2; exit 2 ;;
esac
