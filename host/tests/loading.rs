//! Loading components into the sandbox: what is refused (unknown imports,
//! core modules, garbage, limits past the engine's), the compile cache, the
//! allocators, and the baseline compiler beside the optimising one.
//!
//! The components are built by `scripts/build-components.sh`.

mod common;

use common::{assert_still_serves, call, component_path, load, sandbox_with, small_limits, text, timeout_after};
use serde_json::json;
use std::time::Duration;
use toolmesh_host::config::{Allocator, Limits, SandboxConfig};
use toolmesh_host::sandbox::{CallOptions, Sandbox, SandboxError};

#[tokio::test]
async fn unknown_imports_are_refused_by_name() {
    let sandbox = sandbox_with(small_limits());
    // Found at run time: a test binary may have been built in another
    // checkout that shares the target directory.
    let dir = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let wat = std::fs::read(dir.join("../tests/unknown-import.wat")).unwrap();
    let err = sandbox.load(&wat).err().expect("load must fail");
    match err {
        SandboxError::UnsupportedImport { import, .. } => assert_eq!(import, "evil:net/raw-socket"),
        other => panic!("expected an unsupported import, got {other}"),
    }
}

#[tokio::test]
async fn core_modules_and_garbage_are_invalid_components() {
    let sandbox = sandbox_with(small_limits());
    let core = sandbox.load(b"\0asm\x01\x00\x00\x00").err().unwrap();
    assert!(matches!(&core, SandboxError::InvalidComponent(m) if m.contains("core WebAssembly module")), "{core}");
    let garbage = sandbox.load(b"\x7fELF\x02\x01\x01garbage").err().unwrap();
    assert!(matches!(garbage, SandboxError::InvalidComponent(_)));
    let truncated = std::fs::read(component_path("hello")).unwrap();
    let err = sandbox.load(&truncated[..truncated.len() / 2]).err().unwrap();
    assert!(matches!(err, SandboxError::InvalidComponent(_)), "{err}");
    let no_handler = sandbox.load(b"(component)").err().unwrap();
    assert!(
        matches!(&no_handler, SandboxError::InvalidComponent(m) if m.contains("toolmesh:tool/handler")),
        "{no_handler}"
    );
}

#[tokio::test]
async fn limits_above_the_engine_maximum_are_refused() {
    let sandbox = sandbox_with(small_limits());
    let hello = load(&sandbox, "hello");
    let options = CallOptions {
        limits: Some(Limits { memory: 1 << 30, ..sandbox.config().limits.clone() }),
        ..CallOptions::default()
    };
    let err = sandbox.call(&hello, "greet", r#"{"name":"x"}"#, options).await.unwrap_err();
    assert!(matches!(err, SandboxError::LimitAboveMaximum { what: "memory limit", .. }), "{err}");
}

#[tokio::test]
async fn compile_cache_is_keyed_by_digest_and_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let config = SandboxConfig { cache_dir: Some(dir.path().to_owned()), ..small_limits() };
    let bytes = std::fs::read(component_path("hello")).unwrap();
    let digest = {
        let sandbox = sandbox_with(config.clone());
        sandbox.load(&bytes).unwrap().digest()
    };
    let entries: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].starts_with(&digest.hex()), "{entries:?}");

    // A corrupted entry is dropped and recompiled, never trusted.
    std::fs::write(dir.path().join(&entries[0]), b"not compiled code").unwrap();
    let sandbox = sandbox_with(config.clone());
    let hello = sandbox.load(&bytes).unwrap();
    let out = call(&sandbox, &hello, "greet", json!({"name": "cache"})).await.unwrap();
    assert_eq!(text(&out), "Hello, cache!");

    // Code compiled by an engine with other settings (here: no epoch
    // interruption, so no deadlines), planted under this engine's name, is
    // refused and replaced, never run.
    let mut foreign_config = wasmtime::Config::new();
    foreign_config.wasm_component_model(true);
    let foreign_engine = wasmtime::Engine::new(&foreign_config).unwrap();
    let foreign = wasmtime::component::Component::new(&foreign_engine, &bytes).unwrap().serialize().unwrap();
    let entry = dir.path().join(&entries[0]);
    std::fs::write(&entry, &foreign).unwrap();
    let sandbox = sandbox_with(config);
    let hello = sandbox.load(&bytes).unwrap();
    let out = call(&sandbox, &hello, "greet", json!({"name": "again"})).await.unwrap();
    assert_eq!(text(&out), "Hello, again!");
    assert_ne!(std::fs::read(&entry).unwrap(), foreign, "the foreign entry was kept");
}

#[tokio::test]
async fn on_demand_allocator_runs_the_same_calls() {
    let sandbox = sandbox_with(SandboxConfig { allocator: Allocator::OnDemand, ..small_limits() });
    let hostile = load(&sandbox, "hostile");
    let err = call(&sandbox, &hostile, "grow", json!({})).await.unwrap_err();
    assert!(matches!(err, SandboxError::MemoryLimit { .. }), "{err}");
    assert_still_serves(&sandbox, &hostile).await;
}

#[test]
fn a_budget_below_one_call_is_refused_at_start() {
    let config = SandboxConfig { memory_budget: Some(16 << 20), ..small_limits() };
    let err = Sandbox::new(config).err().expect("refused");
    assert!(err.to_string().contains("memory budget"), "{err}");
}

#[tokio::test]
async fn the_baseline_compiler_runs_the_same_calls_under_the_same_limits() {
    let sandbox = sandbox_with(small_limits());
    let bytes = std::fs::read(component_path("hostile")).unwrap();
    let quick = sandbox.load_quick(&bytes).unwrap();
    assert_eq!(quick.tier(), toolmesh_host::sandbox::Tier::Baseline);
    assert_still_serves(&sandbox, &quick).await;
    let err = sandbox.call(&quick, "spin", "{}", timeout_after(&sandbox, Duration::from_millis(300))).await;
    assert!(matches!(err, Err(SandboxError::Timeout { .. })), "epoch deadlines hold: {err:?}");
    let err = call(&sandbox, &quick, "grow", json!({})).await.unwrap_err();
    assert!(matches!(err, SandboxError::MemoryLimit { .. }), "{err}");
    let err = call(&sandbox, &quick, "recurse", json!({})).await.unwrap_err();
    assert!(matches!(err, SandboxError::Trap { .. }), "{err}");
    assert_still_serves(&sandbox, &quick).await;
    // With optimised code in the compile cache, a quick load uses it.
    let dir = tempfile::tempdir().unwrap();
    let cached = sandbox_with(SandboxConfig { cache_dir: Some(dir.path().to_owned()), ..small_limits() });
    assert_eq!(cached.load(&bytes).unwrap().tier(), toolmesh_host::sandbox::Tier::Optimized);
    assert_eq!(cached.load_quick(&bytes).unwrap().tier(), toolmesh_host::sandbox::Tier::Optimized);
}

#[test]
fn what_the_baseline_compiler_refuses_the_optimising_one_compiles() {
    let sandbox = sandbox_with(small_limits());
    // Tail calls: Cranelift compiles them, Winch does not.
    let tail_call = "(component (core module (func $f (return_call $f))))";
    let err = sandbox.load_quick(tail_call.as_bytes()).err().expect("no handler export");
    // It got as far as linking, so something compiled it.
    assert!(err.to_string().contains("exports neither `toolmesh:tool/handler"), "{err}");
    let err = sandbox.load(tail_call.as_bytes()).err().expect("no handler export");
    assert!(err.to_string().contains("exports neither `toolmesh:tool/handler"), "{err}");
}

#[tokio::test]
async fn a_session_opened_on_baseline_code_goes_on_after_optimised_code_takes_over() {
    use toolmesh_host::sandbox::{Content, SessionRequest, Tier};
    let sandbox = sandbox_with(small_limits());
    let bytes = std::fs::read(component_path("hello")).unwrap();
    let (quick, optimized) = (sandbox.load_quick(&bytes).unwrap(), sandbox.load(&bytes).unwrap());
    assert_eq!((quick.tier(), optimized.tier()), (Tier::Baseline, Tier::Optimized));
    let in_session = |resume| CallOptions {
        session: Some(SessionRequest { caller: "tester".into(), id: "s1".into(), resume }),
        ..CallOptions::default()
    };
    let greeting = |out: Vec<Content>| match &out[..] {
        [Content::Text(text)] => text.clone(),
        other => panic!("unexpected content: {other:?}"),
    };
    let args = r#"{"name":"Ada"}"#;
    let opened = sandbox.call(&quick, "greet", args, in_session(false)).await.unwrap();
    assert_eq!(greeting(opened.into_content()), "Hello, Ada!");
    // The same digest, now with optimised code: the session's instance is
    // still the baseline one, and its next call runs there.
    let resumed = sandbox.call(&optimized, "greet", args, in_session(true)).await.unwrap();
    assert_eq!(greeting(resumed.into_content()), "Hello, Ada!");
    assert_eq!(sandbox.sessions_held(), 1);
    // A call's sinks end with the call, not the session: relays waiting for
    // them to be dropped (a mesh node's) are not kept waiting.
    let progress: toolmesh_host::sandbox::ProgressSink = std::sync::Arc::new(|_| {});
    let updates: toolmesh_host::capability::resource_updates::UpdateSink = std::sync::Arc::new(|_| {});
    let options = CallOptions { progress: Some(progress.clone()), updates: Some(updates.clone()), ..in_session(true) };
    sandbox.call(&optimized, "greet", args, options).await.unwrap();
    assert_eq!((std::sync::Arc::strong_count(&progress), std::sync::Arc::strong_count(&updates)), (1, 1));
}
