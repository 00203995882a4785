#!/usr/bin/env bash
# Sandbox benchmarks (criterion); results in target/criterion/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-components.sh
cargo bench --locked -p toolmesh-host --bench sandbox -- "$@"
