//! The `tool` binary end to end: `inspect` and `run` on every example and on
//! the hostile component, checking output, exit codes and one-line reasons.

use serde_json::{Value, json};
use toolmesh_e2e::{Run, component, tool};

fn path(name: &str) -> String {
    component(name).display().to_string()
}

fn run_tool(name: &str, tool_name: &str, args: Value, extra: &[&str]) -> Run {
    let file = path(name);
    let args = args.to_string();
    let mut argv = vec!["run", file.as_str(), tool_name, "--args", args.as_str()];
    argv.extend_from_slice(extra);
    tool(&argv)
}

fn assert_one_line_failure(run: &Run, code: i32, needle: &str) {
    assert_eq!(run.code, code, "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected a one-line reason, got:\n{}", run.stderr);
    assert!(lines[0].starts_with("error: "), "{}", lines[0]);
    assert!(lines[0].contains(needle), "expected `{needle}` in: {}", lines[0]);
}

#[test]
fn inspect_lists_tools_schemas_and_imports_as_json() {
    let expected = [
        ("hello", vec!["greet"]),
        ("text", vec!["count", "regex_find", "regex_replace", "slugify", "diff"]),
        ("markdown", vec!["to_html", "toc"]),
        ("image", vec!["info", "resize", "grayscale", "thumbnail"]),
    ];
    for (name, tools) in expected {
        let run = tool(&["inspect", &path(name), "--json"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let out = run.json();
        let names: Vec<&str> = out["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, tools, "{name}");
        for t in out["tools"].as_array().unwrap() {
            assert_eq!(t["input_schema"]["type"], "object", "{name}");
            assert!(!t["description"].as_str().unwrap().is_empty());
        }
        let imports: Vec<&str> = out["imports"].as_array().unwrap().iter().map(|i| i.as_str().unwrap()).collect();
        assert!(imports.iter().all(|i| i.starts_with("wasi:") || i.starts_with("toolmesh:tool/")), "{imports:?}");
        // Every import is accounted to a capability of the host, and the
        // guest SDK always brings its types and WASI.
        let capabilities: Vec<&str> =
            out["capabilities"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        assert!(capabilities.contains(&"wasi") && capabilities.contains(&"types"), "{name}: {capabilities:?}");
        assert!(capabilities.iter().all(|c| ["wasi", "types", "log", "progress"].contains(c)), "{capabilities:?}");
        assert!(out["digest"].as_str().unwrap().starts_with("sha256:"));
    }
}

#[test]
fn inspect_prints_a_readable_summary() {
    let run = tool(&["inspect", &path("text")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("regex_find  [read-only, idempotent]"), "{}", run.stdout);
    assert!(run.stdout.contains("pattern (string, required)"), "{}", run.stdout);
    assert!(run.stdout.contains("limit (integer)"), "{}", run.stdout);
    assert!(run.stdout.contains("imports ("), "{}", run.stdout);
    assert!(run.stdout.contains("\ncapabilities: wasi, types"), "{}", run.stdout);
}

#[test]
fn run_prints_text_and_json_results() {
    let run = run_tool("hello", "greet", json!({"name": "Ada"}), &[]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "Hello, Ada!\n"), "{}", run.stderr);

    let run = run_tool("text", "count", json!({"text": "a b c"}), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json(), json!({"characters": 5, "bytes": 5, "words": 3, "lines": 1}));

    let run = run_tool("text", "diff", json!({"old": "a\nb\n", "new": "a\nc\n"}), &[]);
    assert_eq!(run.stdout, "--- old\n+++ new\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n\n");

    let run = run_tool("markdown", "toc", json!({"markdown": "# A\n## B\n"}), &[]);
    assert_eq!(run.json()["markdown"], "- [A](#a)\n  - [B](#b)\n");
}

#[test]
fn run_json_is_the_mcp_result() {
    let run = run_tool("text", "regex_find", json!({"pattern": "o", "text": "foo"}), &["--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = run.json();
    assert_eq!(out["isError"], false);
    assert_eq!(out["structuredContent"]["matches"][1]["start"], 2);
    assert_eq!(out["content"][0]["type"], "text");

    let run = run_tool("hostile", "read_file", json!({"path": "/etc/passwd"}), &["--json"]);
    assert_eq!(run.code, 1);
    let out = run.json();
    assert_eq!(out["isError"], true);
    assert!(out["content"][0]["text"].as_str().unwrap().starts_with("tool failed: /etc/passwd"));
}

#[test]
fn run_saves_images_with_out() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    // An 8x8 PNG made by the image tool itself from a 2x1 one.
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAIAAAABCAIAAAB7QOjdAAAADUlEQVR4nGP4zwAE/wEHAAH/4iOeWQAAAABJRU5ErkJggg==";
    let out_dir = dir.path().display().to_string();
    let run = run_tool("image", "thumbnail", json!({"image": png, "size": 1}), &["--out", &out_dir]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let saved = std::path::PathBuf::from(run.stdout.trim());
    assert_eq!(saved, dir.path().join("thumbnail-0.png"));
    let bytes = std::fs::read(&saved).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");

    let run = run_tool("image", "grayscale", json!({"image": png}), &["--json"]);
    let data = run.json()["content"][0]["data"].as_str().unwrap().to_owned();
    let decoded = base64::engine::general_purpose::STANDARD.decode(data).unwrap();
    assert_eq!(&decoded[1..4], b"PNG");
}

#[test]
fn bad_arguments_exit_2_with_a_reason_naming_the_field() {
    // The published input schema is enforced before the call, as the gateway does.
    let run = run_tool("hello", "greet", json!({"name": 7}), &[]);
    assert_one_line_failure(&run, 2, "/name: 7 is not of type \"string\"");
    // What the schema cannot say, the tool refuses itself.
    let run = run_tool("text", "regex_find", json!({"pattern": "(", "text": ""}), &[]);
    assert_one_line_failure(&run, 2, "field `pattern`");
    let run = tool(&["run", &path("hello"), "greet", "--args", "{not json"]);
    assert_one_line_failure(&run, 2, "not valid JSON");
    let run = tool(&["run", &path("hello"), "greet", "--args", "[1]"]);
    assert_one_line_failure(&run, 2, "JSON object");
    let run = tool(&["run", &path("hello"), "nope"]);
    assert_one_line_failure(&run, 2, "it offers: greet");
}

#[test]
fn hostile_calls_stop_with_their_own_reasons() {
    let cases: [(&str, Value, &[&str], &str); 9] = [
        ("spin", json!({}), &["--timeout", "500ms"], "time limit of 500 ms"),
        ("sleep", json!({}), &["--timeout", "500ms"], "time limit of 500 ms"),
        ("grow", json!({}), &["--memory", "32MiB"], "memory limit of 32 MiB"),
        ("recurse", json!({}), &[], "call stack exhausted"),
        // A refused allocation the guest survived does not explain what ends it later.
        ("grow_then_recurse", json!({}), &["--memory", "32MiB"], "call stack exhausted"),
        ("huge_output", json!({"bytes": 2 << 20}), &[], "over the limit of 1 MiB"),
        ("panic", json!({}), &[], "panicked on purpose"),
        ("bad_utf8", json!({}), &[], "not valid UTF-8"),
        ("bad_json", json!({}), &[], "not valid JSON"),
    ];
    for (name, args, flags, needle) in cases {
        let started = std::time::Instant::now();
        let run = run_tool("hostile", name, args, flags);
        assert_one_line_failure(&run, 1, needle);
        assert!(started.elapsed() < std::time::Duration::from_secs(15), "{name} took {:?}", started.elapsed());
        assert_eq!(run.stdout, "", "{name} wrote to stdout");
    }
}

#[test]
fn guest_stdout_never_reaches_the_process_stdout() {
    let run = run_tool("hostile", "stdout_flood", json!({}), &[]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "flooded\n"), "{}", run.stderr);
    // With -v the guest's output is in the log on stderr, capped.
    let run = run_tool("hostile", "stdout_flood", json!({}), &["-v"]);
    assert_eq!(run.stdout, "flooded\n");
    assert!(run.stderr.contains("stream=\"stdout\""), "{}", &run.stderr[..run.stderr.len().min(2000)]);
    assert!(run.stderr.contains("dropped_bytes="), "{}", &run.stderr[..run.stderr.len().min(2000)]);
    assert!(run.stderr.len() < 1 << 20, "log not capped: {} bytes", run.stderr.len());
}

#[test]
fn files_that_are_not_components_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\x00\x00\x00").unwrap();
    let run = tool(&["inspect", core.to_str().unwrap()]);
    assert_one_line_failure(&run, 1, "core WebAssembly module");
    let missing = dir.path().join("missing.wasm");
    let run = tool(&["inspect", missing.to_str().unwrap()]);
    assert_one_line_failure(&run, 2, "cannot read");
    // Found at run time: a test binary may have been built in another
    // checkout that shares the target directory.
    let wat = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("unknown-import.wat");
    let run = tool(&["inspect", wat.to_str().unwrap()]);
    assert_one_line_failure(&run, 1, "imports `evil:net/raw-socket`");
}

#[test]
fn a_reader_that_stops_early_ends_the_command_quietly() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    // As `tool run … | head -c 10`: 900 kB of output, of which 10 bytes are read.
    let hostile = path("hostile");
    let mut child = Command::new(toolmesh_e2e::tool_binary())
        .args(["run", hostile.as_str(), "huge_output", "--args", r#"{"bytes": 900000}"#])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    assert_eq!(&head, b"xxxxxxxxxx");
    // The pipe's reading end is closed here.
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.trim().is_empty(), "no message, no panic: {stderr}");
}

/// `examples/NAME/tool.toml`, the publisher's request of that example.
fn tool_toml(name: &str) -> String {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo");
    format!("{root}/../examples/{name}/tool.toml")
}

#[test]
fn inspect_shows_what_a_tool_requests_and_the_capabilities_its_imports_need() {
    let manifest = tool_toml("fetch");
    let run = tool(&["inspect", &path("fetch"), "--manifest", &manifest]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("capabilities: wasi, types, network"), "{}", run.stdout);
    assert!(run.stdout.contains("requests:\n  network: GET https://example.com\n"), "{}", run.stdout);
    assert!(run.stdout.contains("  time: 30 s"), "{}", run.stdout);

    let out = tool(&["inspect", &path("archive"), "--manifest", &tool_toml("archive"), "--json"]).json();
    assert_eq!(out["requests"], json!({"format": 1, "scratch_bytes": 32 << 20}));
    let plain = tool(&["inspect", &path("hello")]);
    assert!(plain.stdout.contains("requests: nothing beyond log and progress"), "{}", plain.stdout);
}

#[test]
fn a_call_the_policy_cannot_cover_is_refused_before_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    // The built-in policy grants no network: the whole request is named.
    let run = run_tool("fetch", "fetch", json!({"url": "https://example.com/"}), &["--manifest", &tool_toml("fetch")]);
    assert_one_line_failure(
        &run,
        1,
        "this node does not grant what the tool requests: network GET https://example.com",
    );
    assert!(run.stderr.contains("network GET https://api.github.com"), "{}", run.stderr);
    // A policy that grants the hosts but less time than the tool asks for.
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[network]\nallow = [\"example.com\", \"*.wikipedia.org\", \"api.github.com\", \"raw.githubusercontent.com\"]\n\
         [limits]\nmax_timeout = \"10s\"\n",
    )
    .unwrap();
    let policy = policy.display().to_string();
    let args = ["--manifest", tool_toml("fetch").leak(), "--policy", policy.as_str()];
    let run = run_tool("fetch", "fetch", json!({"url": "https://example.com/"}), &args);
    assert_one_line_failure(&run, 1, "30 s of time (the policy gives at most 10 s)");
    // A component importing wasi:http whose tool requests no network.
    let run = run_tool("fetch", "fetch", json!({"url": "https://example.com/"}), &[]);
    assert_one_line_failure(&run, 1, "imports `wasi:http/");
    assert!(run.stderr.contains("needs the network grant"), "{}", run.stderr);
    // A policy file with a mistake stops the command and names it.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[network]\nalow = []\n").unwrap();
    let run =
        tool(&["run", &path("hello"), "greet", "--args", r#"{"name": "x"}"#, "--policy", &bad.display().to_string()]);
    assert_one_line_failure(&run, 2, "alow");
}
