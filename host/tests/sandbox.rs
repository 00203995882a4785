//! The sandbox against real components: the examples and a hostile one.
//! Each attack must end with its own error, and the same sandbox must then
//! serve a normal call.
//!
//! The components are built by `scripts/build-components.sh`.

mod common;

use common::{assert_still_serves, call, load, sandbox_with, small_limits, text, timeout_after};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use toolmesh_host::config::{Limits, SandboxConfig};
use toolmesh_host::sandbox::{CallOptions, Content, SandboxError};

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
