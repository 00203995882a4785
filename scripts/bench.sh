#!/usr/bin/env bash
# Benchmarks: `scripts/bench.sh` runs the sandbox benchmarks (criterion;
# results in target/criterion/); `scripts/bench.sh mcp` the MCP gateway
# against a native rmcp server; `scripts/bench.sh registry` registry push
# and pull against a file copy.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-components.sh
case "${1:-sandbox}" in
    sandbox) cargo bench --locked -p toolmesh-host --bench sandbox ;;
    mcp) cargo bench --locked -p toolmesh-host --bench mcp ;;
    registry) cargo bench --locked -p toolmesh-registry --bench transfer ;;
    *) echo "usage: scripts/bench.sh [sandbox|mcp|registry]" >&2; exit 2 ;;
esac
