//! What the sandbox's tests share: the built components, a sandbox with
//! small limits, and one call.

#![allow(dead_code)] // each test file uses part of it

use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use toolmesh_host::config::{Limits, SandboxConfig};
use toolmesh_host::sandbox::{CallOptions, CallOutput, Content, Sandbox, SandboxError, ToolComponent};

/// A component built by `scripts/build-components.sh`.
pub fn component_path(name: &str) -> PathBuf {
    // The test binary is target/<profile>/deps/<name>; components are in
    // target/wasm32-wasip2/release.
    let exe = std::env::current_exe().expect("test binary path");
    let target = exe.ancestors().nth(3).expect("target directory");
    let path = target.join("wasm32-wasip2/release").join(format!("{name}.wasm"));
    assert!(path.exists(), "{} is missing: run scripts/build-components.sh first", path.display());
    path
}

/// A sandbox with `config`.
pub fn sandbox_with(config: SandboxConfig) -> Sandbox {
    Sandbox::new(config).expect("sandbox")
}

/// Limits small enough for attacks to hit them quickly.
pub fn small_limits() -> SandboxConfig {
    SandboxConfig {
        limits: Limits { timeout: Duration::from_secs(2), memory: 64 << 20, ..Limits::default() },
        max_concurrent_calls: 8,
        ..SandboxConfig::default()
    }
}

/// Component `name`, loaded into `sandbox`.
pub fn load(sandbox: &Sandbox, name: &str) -> ToolComponent {
    let bytes = std::fs::read(component_path(name)).expect("read component");
    sandbox.load(&bytes).expect("load component")
}

/// One call of `tool` with `args`, its content or error.
pub async fn call(sandbox: &Sandbox, c: &ToolComponent, tool: &str, args: Value) -> Result<Vec<Content>, SandboxError> {
    sandbox.call(c, tool, &args.to_string(), CallOptions::default()).await.map(CallOutput::into_content)
}

/// Fails unless the hostile component answers a normal call.
pub async fn assert_still_serves(sandbox: &Sandbox, c: &ToolComponent) {
    let out = call(sandbox, c, "echo", json!({"text": "still here"})).await.expect("normal call after an attack");
    assert_eq!(out, vec![Content::Text("still here".into())]);
}

/// Call options with a time limit of `timeout`.
pub fn timeout_after(sandbox: &Sandbox, timeout: Duration) -> CallOptions {
    CallOptions { limits: Some(Limits { timeout, ..sandbox.config().limits.clone() }), ..CallOptions::default() }
}

/// The one text item of `content`.
pub fn text(content: &[Content]) -> &str {
    match content {
        [Content::Text(t)] => t,
        other => panic!("expected one text item, got {other:?}"),
    }
}

/// The `result` of the one structured item of `content` (a plain
/// component's result).
pub fn structured(content: &[Content]) -> &Value {
    match content {
        [Content::Json(value)] => &value["result"],
        other => panic!("expected one JSON item, got {other:?}"),
    }
}
