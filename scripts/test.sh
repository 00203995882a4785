#!/usr/bin/env bash
# The test command: builds the components and the `tool` binary, then runs
# every test of the workspace (unit, sandbox integration, end to end).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-components.sh
cargo build --locked -p toolmesh-host --bin tool
cargo test --locked --workspace
