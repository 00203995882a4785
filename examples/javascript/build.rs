//! Stops a WASI build that would not be safe or could not succeed, with
//! one line naming the script that sets it up. QuickJS is C: for WASI it
//! needs a C toolchain (a WASI SDK; `rquickjs`'s own build script would
//! try to download one) and its stack limit, which QuickJS turns off
//! under WASI. `scripts/build-components.sh` makes the SDK from Debian's
//! packages, keeps the limit on by force-including
//! `wasi/quickjs-stack-check.h` through `CFLAGS_wasm32_wasip2`, and enables
//! the `quickjs` feature that brings QuickJS in. Built without the limit,
//! deep recursion would exhaust the wasm stack (the call fails) instead of
//! throwing a RangeError.
fn main() {
    println!("cargo::rerun-if-env-changed=CFLAGS_wasm32_wasip2");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("wasi") {
        return;
    }
    let flags = std::env::var("CFLAGS_wasm32_wasip2").unwrap_or_default();
    if std::env::var_os("CARGO_FEATURE_QUICKJS").is_none() || !flags.contains("quickjs-stack-check.h") {
        println!(
            "cargo::error=javascript.wasm builds with scripts/build-components.sh, which sets up QuickJS's C toolchain for WASI and its stack limit"
        );
    }
}
