//! The sandbox against real components: the examples and a hostile one.
//! Each attack must end with its own error, and the same sandbox must then
//! serve a normal call.
//!
//! The components are built by `scripts/build-components.sh`.

use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use toolmesh_host::config::{Allocator, Limits, SandboxConfig};
use toolmesh_host::sandbox::{CallOptions, CallOutput, Content, Sandbox, SandboxError, ToolComponent};

fn component_path(name: &str) -> PathBuf {
    // The test binary is target/<profile>/deps/<name>; components are in
    // target/wasm32-wasip2/release.
    let exe = std::env::current_exe().expect("test binary path");
    let target = exe.ancestors().nth(3).expect("target directory");
    let path = target.join("wasm32-wasip2/release").join(format!("{name}.wasm"));
    assert!(path.exists(), "{} is missing: run scripts/build-components.sh first", path.display());
    path
}

fn sandbox_with(config: SandboxConfig) -> Sandbox {
    Sandbox::new(config).expect("sandbox")
}

fn small_limits() -> SandboxConfig {
    SandboxConfig {
        limits: Limits { timeout: Duration::from_secs(2), memory: 64 << 20, ..Limits::default() },
        max_concurrent_calls: 8,
        ..SandboxConfig::default()
    }
}

fn load(sandbox: &Sandbox, name: &str) -> ToolComponent {
    let bytes = std::fs::read(component_path(name)).expect("read component");
    sandbox.load(&bytes).expect("load component")
}

async fn call(sandbox: &Sandbox, c: &ToolComponent, tool: &str, args: Value) -> Result<Vec<Content>, SandboxError> {
    sandbox.call(c, tool, &args.to_string(), CallOptions::default()).await.map(CallOutput::into_content)
}

async fn assert_still_serves(sandbox: &Sandbox, c: &ToolComponent) {
    let out = call(sandbox, c, "echo", json!({"text": "still here"})).await.expect("normal call after an attack");
    assert_eq!(out, vec![Content::Text("still here".into())]);
}

fn timeout_after(sandbox: &Sandbox, timeout: Duration) -> CallOptions {
    CallOptions { limits: Some(Limits { timeout, ..sandbox.config().limits.clone() }), ..CallOptions::default() }
}

fn text(content: &[Content]) -> &str {
    match content {
        [Content::Text(t)] => t,
        other => panic!("expected one text item, got {other:?}"),
    }
}

#[tokio::test]
async fn hello_describes_and_greets() {
    let sandbox = sandbox_with(small_limits());
    let hello = load(&sandbox, "hello");
    let tools = sandbox.describe(&hello).await.unwrap();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0].name, "greet");
    assert_eq!(tools[0].input_schema["required"], json!(["name"]));
    assert_eq!(tools[0].input_schema["properties"]["name"]["description"], "Who to greet.");
    assert_eq!(tools[0].annotations.read_only, Some(true));
    let out = call(&sandbox, &hello, "greet", json!({"name": "Ada"})).await.unwrap();
    assert_eq!(text(&out), "Hello, Ada!");
}

#[tokio::test]
async fn invalid_arguments_name_the_field() {
    let sandbox = sandbox_with(small_limits());
    let hello = load(&sandbox, "hello");
    let err = call(&sandbox, &hello, "greet", json!({"name": 42})).await.unwrap_err();
    match err {
        SandboxError::InvalidArguments(m) => assert!(m.contains("field `name`"), "{m}"),
        other => panic!("expected invalid arguments, got {other}"),
    }
    let err = call(&sandbox, &hello, "greet", json!({})).await.unwrap_err();
    assert!(matches!(&err, SandboxError::InvalidArguments(m) if m.contains("missing field `name`")), "{err}");
}

#[tokio::test]
async fn text_markdown_and_image_examples_work_in_the_sandbox() {
    let sandbox = sandbox_with(small_limits());
    let text_tool = load(&sandbox, "text");
    let out = call(&sandbox, &text_tool, "count", json!({"text": "one two\nthree"})).await.unwrap();
    assert_eq!(out, vec![Content::Json(json!({"characters": 13, "bytes": 13, "words": 3, "lines": 2}))]);
    let out = call(&sandbox, &text_tool, "slugify", json!({"text": "Hello, World!"})).await.unwrap();
    assert_eq!(text(&out), "hello-world");

    let md = load(&sandbox, "markdown");
    let out = call(&sandbox, &md, "to_html", json!({"markdown": "# Hi\n\n*there*"})).await.unwrap();
    assert_eq!(text(&out), "<h1>Hi</h1>\n<p><em>there</em></p>\n");

    // A 2x1 PNG, red and blue.
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAIAAAABCAIAAAB7QOjdAAAADUlEQVR4nGP4zwAE/wEHAAH/4iOeWQAAAABJRU5ErkJggg==";
    let image = load(&sandbox, "image");
    let out = call(&sandbox, &image, "info", json!({"image": png})).await.unwrap();
    let [Content::Json(info)] = out.as_slice() else { panic!("{out:?}") };
    assert_eq!((info["width"].as_u64(), info["height"].as_u64()), (Some(2), Some(1)));
    let out = call(&sandbox, &image, "resize", json!({"image": png, "width": 8, "height": 8, "keep_aspect": false}))
        .await
        .unwrap();
    let [Content::Image { data, mime_type }] = out.as_slice() else { panic!("{out:?}") };
    assert_eq!(mime_type, "image/png");
    assert_eq!(&data[1..4], b"PNG");
    // The PNG header's width and height fields.
    assert_eq!((&data[16..20], &data[20..24]), (&[0, 0, 0, 8][..], &[0, 0, 0, 8][..]));
}

#[tokio::test]
async fn infinite_loop_times_out_within_its_limit() {
    let sandbox = sandbox_with(small_limits());
    let hostile = load(&sandbox, "hostile");
    let options = timeout_after(&sandbox, Duration::from_millis(300));
    let started = Instant::now();
    let err = sandbox.call(&hostile, "spin", "{}", options).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, SandboxError::Timeout { limit } if limit == Duration::from_millis(300)), "{err}");
    assert!(took < Duration::from_secs(2), "stopped after {took:?}");
    assert_still_serves(&sandbox, &hostile).await;
}

#[tokio::test]
async fn a_call_blocked_in_the_host_times_out_too() {
    let sandbox = sandbox_with(small_limits());
    let hostile = load(&sandbox, "hostile");
    let options = timeout_after(&sandbox, Duration::from_millis(300));
    let started = Instant::now();
    let err = sandbox.call(&hostile, "sleep", "{}", options).await.unwrap_err();
    assert!(matches!(err, SandboxError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "stopped after {:?}", started.elapsed());
    assert_still_serves(&sandbox, &hostile).await;
}

#[tokio::test]
async fn memory_bomb_hits_the_memory_limit() {
    let sandbox = sandbox_with(small_limits());
    let hostile = load(&sandbox, "hostile");
    let err = call(&sandbox, &hostile, "grow", json!({})).await.unwrap_err();
    match err {
        SandboxError::MemoryLimit { limit, requested } => {
            assert_eq!(limit, 64 << 20);
            assert!(requested > limit);
        }
        other => panic!("expected the memory limit, got {other}"),
    }
    assert_still_serves(&sandbox, &hostile).await;
}

#[tokio::test]
async fn deep_recursion_is_a_stack_overflow_trap() {
    let sandbox = sandbox_with(small_limits());
    let hostile = load(&sandbox, "hostile");
    let err = call(&sandbox, &hostile, "recurse", json!({})).await.unwrap_err();
    match &err {
        SandboxError::Trap { message } => {
            assert!(message.contains("call stack exhausted"), "{message}");
            assert!(message.contains("wasm backtrace"), "{message}");
        }
        other => panic!("expected a trap, got {other}"),
    }
    // Large frames live on the guest's shadow stack in linear memory, which
    // runs off its end: a memory-access trap, still contained.
    let err = call(&sandbox, &hostile, "recurse_frames", json!({})).await.unwrap_err();
    assert!(matches!(&err, SandboxError::Trap { message } if message.contains("out of bounds memory access")), "{err}");
    assert_still_serves(&sandbox, &hostile).await;
}

#[tokio::test]
async fn gigantic_output_is_refused() {
    let sandbox = sandbox_with(small_limits());
    let hostile = load(&sandbox, "hostile");
    // Just over the cap: copied, measured exactly, refused.
    let err = call(&sandbox, &hostile, "huge_output", json!({"bytes": (1 << 20) + 1000})).await.unwrap_err();
    assert!(
        matches!(err, SandboxError::OutputTooLarge { size, limit } if limit == 1 << 20 && size == (1 << 20) + 1016),
        "{err}"
    );
    // Far over it: refused before the host copies it.
    let err = call(&sandbox, &hostile, "huge_output", json!({"bytes": 8 << 20})).await.unwrap_err();
    assert!(matches!(err, SandboxError::TransferTooLarge { limit } if limit == (2 << 20) + (64 << 10)), "{err}");
    let err = call(&sandbox, &hostile, "many_items", json!({})).await.unwrap_err();
    assert!(matches!(err, SandboxError::TransferTooLarge { .. }), "{err}");
    let err = call(&sandbox, &hostile, "huge_error", json!({"bytes": 24 << 20})).await.unwrap_err();
    assert!(matches!(err, SandboxError::TransferTooLarge { .. }), "{err}");
    assert_eq!(err.phase(), toolmesh_host::sandbox::Phase::OutputCheck);
    // Just under the cap is fine.
    let out = call(&sandbox, &hostile, "huge_output", json!({"bytes": 1000})).await.unwrap();
    assert_eq!(text(&out).len(), 1000);
    assert_still_serves(&sandbox, &hostile).await;
}

#[tokio::test]
async fn host_files_are_out_of_reach() {
    let sandbox = sandbox_with(small_limits());
    let hostile = load(&sandbox, "hostile");
    for path in ["/etc/passwd", "/etc/hostname", "../../../../etc/passwd", "/proc/self/environ"] {
        let err = call(&sandbox, &hostile, "read_file", json!({"path": path})).await.unwrap_err();
        match err {
            SandboxError::ToolFailed(m) => assert!(!m.contains("root:"), "{m}"),
            other => panic!("expected the tool's own failure reading {path}, got {other}"),
        }
    }
    let err = call(&sandbox, &hostile, "list_root", json!({})).await.unwrap_err();
    assert!(matches!(err, SandboxError::ToolFailed(_)), "{err}");
    assert_still_serves(&sandbox, &hostile).await;
}

#[tokio::test]
async fn host_environment_and_arguments_are_invisible() {
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("TOOLMESH_TEST_SECRET", "hunter2") };
    let sandbox = sandbox_with(small_limits());
    let hostile = load(&sandbox, "hostile");
    let out = call(&sandbox, &hostile, "read_env", json!({})).await.unwrap();
    let [Content::Json(seen)] = out.as_slice() else { panic!("{out:?}") };
    assert_eq!(seen["env"], json!([]));
    assert_eq!(seen["args"], json!([]));
    assert!(!seen.to_string().contains("hunter2"));
}

#[tokio::test]
async fn network_is_denied() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let sandbox = sandbox_with(small_limits());
    let hostile = load(&sandbox, "hostile");
    let err = call(&sandbox, &hostile, "connect", json!({"address": address})).await.unwrap_err();
    assert!(matches!(err, SandboxError::ToolFailed(_)), "{err}");
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "the guest reached the listener");
}

#[tokio::test]
async fn a_panic_is_a_trap_that_carries_the_panic_message() {
    let sandbox = sandbox_with(small_limits());
    let hostile = load(&sandbox, "hostile");
    let err = call(&sandbox, &hostile, "panic", json!({})).await.unwrap_err();
    match &err {
        SandboxError::Trap { message } => {
            assert!(message.contains("unreachable"), "{message}");
            assert!(message.contains("the hostile tool panicked on purpose"), "{message}");
        }
        other => panic!("expected a trap, got {other}"),
    }
    assert_still_serves(&sandbox, &hostile).await;
}

#[tokio::test]
async fn exit_in_a_tool_is_a_failure_that_says_so() {
    let sandbox = sandbox_with(small_limits());
    let hostile = load(&sandbox, "hostile");
    let err = call(&sandbox, &hostile, "exit", json!({})).await.unwrap_err();
    assert_eq!(err.to_string(), "tool trapped: the tool called exit(0) instead of returning a result");
    assert!(err.is_tool_failure());
    assert_still_serves(&sandbox, &hostile).await;
}

#[tokio::test]
async fn malformed_output_is_refused() {
    let sandbox = sandbox_with(small_limits());
    let hostile = load(&sandbox, "hostile");
    let err = call(&sandbox, &hostile, "bad_utf8", json!({})).await.unwrap_err();
    assert!(matches!(&err, SandboxError::InvalidOutput(m) if m.contains("UTF-8")), "{err}");
    let err = call(&sandbox, &hostile, "bad_json", json!({})).await.unwrap_err();
    assert!(matches!(&err, SandboxError::InvalidOutput(m) if m.contains("not valid JSON")), "{err}");
    assert_still_serves(&sandbox, &hostile).await;
}

#[tokio::test]
async fn floods_of_output_and_logs_are_capped_not_fatal() {
    let sandbox = sandbox_with(small_limits());
    let hostile = load(&sandbox, "hostile");
    let out = call(&sandbox, &hostile, "stdout_flood", json!({})).await.unwrap();
    assert_eq!(text(&out), "flooded");
    let out = call(&sandbox, &hostile, "log_flood", json!({})).await.unwrap();
    assert_eq!(text(&out), "logged");
}

#[tokio::test]
async fn progress_reports_reach_the_caller() {
    let sandbox = sandbox_with(small_limits());
    let hostile = load(&sandbox, "hostile");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let options =
        CallOptions { progress: Some(Arc::new(move |p| sink.lock().unwrap().push(p))), ..CallOptions::default() };
    let out = sandbox.call(&hostile, "progress", r#"{"steps": 3}"#, options).await.unwrap();
    assert_eq!(text(&out), "3 steps");
    let seen = seen.lock().unwrap();
    let done: Vec<f64> = seen.iter().map(|p| p.done).collect();
    assert_eq!(done, [1.0, 2.0, 3.0]);
    assert_eq!(seen[2].total, Some(3.0));
    assert_eq!(seen[2].message.as_deref(), Some("step 3"));
}

#[tokio::test]
async fn dropping_the_call_cancels_it() {
    let sandbox = Arc::new(sandbox_with(small_limits()));
    let hostile = load(&sandbox, "hostile");
    let started = Instant::now();
    let cancelled = tokio::time::timeout(Duration::from_millis(100), call(&sandbox, &hostile, "spin", json!({}))).await;
    assert!(cancelled.is_err(), "the spin call returned");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_still_serves(&sandbox, &hostile).await;
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_beyond_the_pool_wait_for_a_slot() {
    let config = SandboxConfig { max_concurrent_calls: 2, ..small_limits() };
    let sandbox = Arc::new(sandbox_with(config));
    let hello = load(&sandbox, "hello");
    let calls = (0..16).map(|i| {
        let (sandbox, hello) = (sandbox.clone(), hello.clone());
        tokio::spawn(async move {
            sandbox.call(&hello, "greet", &json!({"name": i.to_string()}).to_string(), CallOptions::default()).await
        })
    });
    for (i, handle) in calls.collect::<Vec<_>>().into_iter().enumerate() {
        let out = handle.await.unwrap().unwrap();
        assert_eq!(text(&out), format!("Hello, {i}!"));
    }
}

#[tokio::test]
async fn a_progress_flood_is_stopped_by_the_time_limit() {
    let sandbox = sandbox_with(small_limits());
    let hostile = load(&sandbox, "hostile");
    let reports = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = reports.clone();
    let options = CallOptions {
        progress: Some(Arc::new(move |_| {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })),
        ..timeout_after(&sandbox, Duration::from_millis(500))
    };
    let started = Instant::now();
    let err = sandbox.call(&hostile, "progress_flood", "{}", options).await.unwrap_err();
    assert!(matches!(err, SandboxError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "the limit held: {:?}", started.elapsed());
    assert!(reports.load(std::sync::atomic::Ordering::Relaxed) > 1000, "the tool did flood");
    assert_still_serves(&sandbox, &hostile).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_memory_budget_wait_then_get_node_busy() {
    // Room for one call under these limits at a time (one costs ~76 MiB).
    let limits = Limits { memory: 32 << 20, timeout: Duration::from_secs(2), ..Limits::default() };
    let budget = 100 << 20;
    let config = SandboxConfig {
        limits,
        memory_budget: Some(budget),
        queue_timeout: Duration::from_millis(200),
        ..small_limits()
    };
    let sandbox = Arc::new(sandbox_with(config));
    let hostile = load(&sandbox, "hostile");
    let spinning = {
        let (sandbox, hostile) = (sandbox.clone(), hostile.clone());
        tokio::spawn(async move { call(&sandbox, &hostile, "spin", json!({})).await })
    };
    while sandbox.budget().available() == budget {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let err = call(&sandbox, &hostile, "echo", json!({"text": "x"})).await.unwrap_err();
    assert!(matches!(err, SandboxError::NodeBusy { budget: b, .. } if b == budget), "{err}");
    assert!(err.is_busy() && !err.is_tool_failure());
    assert!(matches!(spinning.await.unwrap(), Err(SandboxError::Timeout { .. })));
    assert_eq!(sandbox.budget().available(), budget, "every reservation was given back");
    // A result holds its reservation until it is dropped.
    let out = sandbox.call(&hostile, "echo", r#"{"text": "held"}"#, CallOptions::default()).await.unwrap();
    assert!(sandbox.budget().available() < budget);
    drop(out);
    assert_eq!(sandbox.budget().available(), budget);
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
    assert!(err.to_string().contains("does not export `toolmesh:tool/handler"), "{err}");
    let err = sandbox.load(tail_call.as_bytes()).err().expect("no handler export");
    assert!(err.to_string().contains("does not export `toolmesh:tool/handler"), "{err}");
}
