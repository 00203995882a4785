//! Refuses to build QuickJS for WASI without its stack limit. QuickJS turns
//! the limit off under WASI; `scripts/build-components.sh` keeps it on by
//! force-including `wasi/quickjs-stack-check.h` through
//! `CFLAGS_wasm32_wasip2`. Built without it, deep recursion would exhaust
//! the wasm stack (the call fails) instead of throwing a RangeError.
fn main() {
    println!("cargo:rerun-if-env-changed=CFLAGS_wasm32_wasip2");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("wasi") {
        let flags = std::env::var("CFLAGS_wasm32_wasip2").unwrap_or_default();
        if !flags.contains("quickjs-stack-check.h") {
            panic!(
                "javascript.wasm needs QuickJS's stack limit: build it with scripts/build-components.sh \
                 (CFLAGS_wasm32_wasip2 must force-include examples/javascript/wasi/quickjs-stack-check.h)"
            );
        }
    }
}
