//! A hostile tool component: each tool attacks the sandbox in one way.
//! The host's tests run every one and expect it to be contained with its
//! specific error, and the same sandbox to serve a normal call next.
use std::hint::black_box;
use toolmesh_guest::prelude::*;

#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

#[derive(Deserialize, JsonSchema)]
struct Echo {
    /// Text to return unchanged.
    text: String,
}

#[derive(Deserialize, JsonSchema)]
struct Size {
    /// How many bytes to produce.
    bytes: usize,
}

#[derive(Deserialize, JsonSchema)]
struct Nap {
    /// How long to sleep, in milliseconds.
    ms: u64,
}

#[derive(Deserialize, JsonSchema)]
struct Steps {
    /// How many progress reports to make.
    steps: u32,
}

#[derive(Deserialize, JsonSchema)]
struct Path {
    /// The file to read.
    path: String,
}

#[derive(Deserialize, JsonSchema)]
struct Address {
    /// `host:port` to connect to.
    address: String,
}

/// Recursion whose frames live on the wasm stack: exhausts the engine's stack limit.
fn recurse(depth: u64) -> u64 {
    if depth == 0 {
        return 1;
    }
    recurse(depth - 1).rotate_left(5) ^ depth
}

/// Recursion with large locals, which a Rust guest keeps on its shadow stack
/// in linear memory: runs off the bottom of that stack.
fn recurse_frames(depth: u64) -> u64 {
    let frame = black_box([depth as u8; 512]);
    if depth == 0 { 0 } else { recurse_frames(depth - 1).wrapping_add(u64::from(frame[(depth % 512) as usize])) }
}

fn tools() -> Vec<Tool> {
    vec![
        // Asks the user a new question on every run, for ever.
        Tool::new("ask_forever", "Asks one more question every time it is answered.", |_: NoArgs| {
            let form = serde_json::json!({"type": "object", "properties": {"more": {"type": "string"}}});
            for i in 0.. {
                toolmesh_guest::ask::elicit(&format!("q{i}"), "And another thing?", form.clone())?;
            }
            Ok(String::new())
        }),
        Tool::new("echo", "Returns its input (the well-behaved call).", |a: Echo| Ok(a.text)),
        Tool::new("progress", "Reports progress `steps` times (well-behaved).", |a: Steps| {
            for i in 1..=a.steps {
                toolmesh_guest::host::progress(f64::from(i), Some(f64::from(a.steps)), Some(&format!("step {i}")));
            }
            Ok(format!("{} steps", a.steps))
        }),
        Tool::new(
            "progress_flood",
            "Reports progress in a tight loop, forever.",
            |_: NoArgs| -> Result<String, ToolError> {
                let mut i = 0u64;
                loop {
                    i += 1;
                    toolmesh_guest::host::progress(i as f64, None, Some("flooding"));
                }
            },
        ),
        Tool::new(
            "huge_error",
            "Fails with an error message of `bytes` bytes.",
            |a: Size| -> Result<String, ToolError> { Err(ToolError::failed("e".repeat(a.bytes))) },
        ),
        Tool::new("spin", "Loops forever.", |_: NoArgs| -> Result<String, ToolError> {
            loop {
                black_box(());
            }
        }),
        Tool::new("nap", "Sleeps `ms` milliseconds, then answers (well-behaved, read-only).", |a: Nap| {
            std::thread::sleep(std::time::Duration::from_millis(a.ms));
            Ok(format!("slept {} ms", a.ms))
        })
        .read_only(),
        Tool::new("sleep", "Blocks in a host call for an hour.", |_: NoArgs| {
            std::thread::sleep(std::time::Duration::from_secs(3600));
            Ok(String::from("woke up"))
        }),
        Tool::new("grow", "Allocates memory until something stops it.", |_: NoArgs| -> Result<String, ToolError> {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(black_box(vec![7u8; 1 << 20]));
            }
        }),
        Tool::new(
            "grow_then_recurse",
            "Is refused a huge allocation, carries on, then recurses without end.",
            |_: NoArgs| -> Result<String, ToolError> {
                let mut hoard: Vec<u8> = Vec::new();
                if hoard.try_reserve(black_box(1 << 30)).is_ok() {
                    return Err(ToolError::failed("a 1 GiB allocation was granted"));
                }
                Ok(recurse(black_box(u64::MAX)).to_string())
            },
        ),
        Tool::new("recurse", "Recurses without end.", |_: NoArgs| Ok(recurse(black_box(u64::MAX)).to_string())),
        Tool::new("recurse_frames", "Recurses without end with large frames.", |_: NoArgs| {
            Ok(recurse_frames(black_box(u64::MAX)).to_string())
        }),
        Tool::new("huge_output", "Returns `bytes` bytes of text.", |a: Size| Ok("x".repeat(a.bytes))),
        // As many as fit in its memory: far more than the host takes in one transfer.
        Tool::new("many_items", "Returns 200,000 tiny content items.", |_: NoArgs| {
            Ok(Output((0..200_000).map(|_| Content::Text(String::new())).collect()))
        }),
        Tool::new("read_file", "Reads a host file.", |a: Path| {
            std::fs::read_to_string(&a.path).map_err(|e| ToolError::failed(format_args!("{}: {e}", a.path)))
        }),
        Tool::new("list_root", "Lists the host's root directory.", |_: NoArgs| {
            let entries = std::fs::read_dir("/").map_err(|e| ToolError::failed(format_args!("/: {e}")))?;
            Ok(entries.filter_map(|e| e.ok()).map(|e| e.path().display().to_string()).collect::<Vec<_>>().join("\n"))
        }),
        Tool::new("read_env", "Returns every environment variable and argument it can see.", |_: NoArgs| {
            let env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
            let args: Vec<String> = std::env::args().collect();
            Ok(serde_json::json!({ "env": env, "args": args, "cwd": std::env::current_dir().ok() }))
        }),
        Tool::new("connect", "Opens a TCP connection.", |a: Address| {
            std::net::TcpStream::connect(&a.address)
                .map(|_| String::from("connected"))
                .map_err(|e| ToolError::failed(format_args!("{}: {e}", a.address)))
        }),
        Tool::new("panic", "Panics.", |_: NoArgs| -> Result<String, ToolError> {
            panic!("the hostile tool panicked on purpose")
        }),
        Tool::new(
            "exit",
            "Ends its process with exit(0) instead of answering.",
            |_: NoArgs| -> Result<String, ToolError> { std::process::exit(0) },
        ),
        Tool::new("bad_utf8", "Returns text that is not UTF-8.", |_: NoArgs| {
            // SAFETY: not safe at all; that is the point. The host must refuse it.
            Ok(unsafe { String::from_utf8_unchecked(vec![b'o', b'k', 0xff, 0xfe]) })
        }),
        Tool::new("bad_json", "Returns JSON content that is not JSON.", |_: NoArgs| {
            Ok(Output(vec![Content::Json("{\"unterminated\": ".into())]))
        }),
        Tool::new("wrong_shape", "Returns JSON that breaks its own output schema.", |_: NoArgs| {
            Ok(serde_json::json!({"count": "many"}))
        })
        .output_schema_json(serde_json::json!({
            "type": "object",
            "properties": {"count": {"type": "integer"}},
            "required": ["count"]
        })),
        Tool::new("stdout_flood", "Prints 8 MiB to stdout and stderr, then answers.", |_: NoArgs| {
            let line = "y".repeat(1023);
            for _ in 0..8192 {
                println!("{line}");
                eprintln!("{line}");
            }
            Ok(String::from("flooded"))
        }),
        Tool::new("log_flood", "Logs a hundred thousand lines, then answers.", |_: NoArgs| {
            for i in 0..100_000 {
                toolmesh_guest::host::info(&format!("line {i}"));
            }
            Ok(String::from("logged"))
        }),
    ]
}

/// Resources that attack the host: one that never ends.
fn resources() -> Vec<Resource> {
    vec![Resource::new("hostile://spin", "spin", |_| {
        let mut n = 0u64;
        loop {
            n = black_box(n.wrapping_add(1));
        }
    })]
}

/// Prompts that attack the host: one far over the output limit.
fn prompts() -> Vec<Prompt> {
    vec![Prompt::new("huge", "Returns 8 MiB of text.").handler(|_| Ok(vec![Message::user("x".repeat(8 << 20))]))]
}

toolmesh_guest::export_tools!(tools, resources = resources, prompts = prompts);
