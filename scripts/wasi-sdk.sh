#!/usr/bin/env bash
# Prints a WASI SDK directory made from Debian's packages (clang-19,
# llvm-ar-19, wasi-libc headers), installing them if missing. QuickJS
# (examples/javascript) is C, and rquickjs's build script compiles it with
# `$WASI_SDK/bin/clang`; without a WASI_SDK it would try to download one.
set -euo pipefail
cache="${TOOLMESH_CACHE:-$HOME/.cache/toolmesh}"
sdk="$cache/wasi-sdk-debian"
packages=(clang-19 llvm-19 wasi-libc)
missing=()
for package in "${packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    as_root=""
    [ "$(id -u)" = 0 ] || as_root=sudo
    $as_root apt-get install -y -qq "${missing[@]}" >/dev/null \
        || { $as_root apt-get update -qq && $as_root apt-get install -y -qq "${missing[@]}" >/dev/null; }
fi
mkdir -p "$sdk/bin" "$sdk/share/wasi-sysroot/include"
ln -sfn "$(command -v clang-19)" "$sdk/bin/clang"
ln -sfn "$(command -v llvm-ar-19)" "$sdk/bin/ar"
# clang looks for a target's headers under include/<triple>.
ln -sfn /usr/include/wasm32-wasi "$sdk/share/wasi-sysroot/include/wasm32-wasip2"
echo "$sdk"
