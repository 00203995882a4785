//! Tools written with the Python and JavaScript SDKs (JavaScript and
//! TypeScript), measured as their
//! authors meet them, all through the release `tool` binary as its own
//! process: `tool new` + `tool build` with the toolchains already in the
//! cache; `tool publish` (from the machine that built it, its compile cache
//! as the build left it) into a fresh `tool serve` until the first result
//! (the cold start, the node never having seen the tool); then warm `tools/call`s over MCP from outside, one at a
//! time, beside the Rust `hello` example in the same server.
//!
//! Run with `scripts/bench.sh sdk`.

mod common;

use common::{median, ms};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BUILDS: usize = 3;
const COLD_ROUNDS: usize = 3;
const WARM_CALLS: usize = 300;

/// `tool ARGS` in `dir` with the compile cache under `cache` (the
/// toolchains stay where they are installed), which must succeed.
fn tool(dir: &Path, cache: &Path, args: &[&str]) {
    let toolchains = std::env::var_os("TOOLMESH_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dirs::cache_dir().unwrap().join("toolmesh"));
    let out = Command::new(common::tool_binary())
        .args(args)
        .current_dir(dir)
        .env("TOOLMESH_CACHE", toolchains)
        .env("XDG_CACHE_HOME", cache)
        .env_remove("TOOLMESH_LOG")
        .output()
        .unwrap();
    assert!(out.status.success(), "tool {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Calls `name` until it answers without error; returns when it did.
async fn first_result(http: &reqwest::Client, url: &str, name: &str, args: &Value) -> Instant {
    loop {
        let (reply, _) = common::call_raw(http, url, name, args.clone()).await;
        if reply["result"]["isError"] == false {
            return Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let http = toolmesh_registry::client::http_builder().tcp_nodelay(true).build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let languages = [
        ("python", "stats", "text_stats", json!({"text": "One fish. Two fish! Red fish, blue fish.", "top": 2})),
        ("js", "csv", "csv_to_json", json!({"csv": "name,age\nAda,36\nAlan,41\n"})),
        ("ts", "words", "word_stats", json!({"text": "the cat and the hat", "top": 2})),
    ];

    println!("| language | `tool new` + `tool build` (median of {BUILDS}) | component |");
    println!("|---|---|---|");
    for (lang, name, _, _) in &languages {
        let mut times = Vec::new();
        let mut size = 0;
        for round in 0..BUILDS {
            let work = dir.path().join(format!("{lang}-{round}"));
            std::fs::create_dir_all(&work).unwrap();
            let started = Instant::now();
            let author = dir.path().join(format!("author-{lang}-{round}"));
            tool(&work, &author, &["new", name, "--lang", lang]);
            tool(&work.join(name), &author, &["build"]);
            times.push(started.elapsed());
            size = std::fs::metadata(work.join(name).join(format!("{name}.wasm"))).unwrap().len();
        }
        println!("| {lang} | {:.1} s | {:.1} MB |", median(times).as_secs_f64(), size as f64 / 1e6);
    }

    let no_examples = dir.path().join("no-examples");
    std::fs::create_dir_all(&no_examples).unwrap();
    println!("\n| language | publish → first result, fresh node (median of {COLD_ROUNDS}) |");
    println!("|---|---|");
    for (lang, name, tool_name, args) in &languages {
        let component = dir.path().join(format!("{lang}-0/{name}/{name}.wasm"));
        let mut times = Vec::new();
        for round in 0..COLD_ROUNDS {
            let data = dir.path().join(format!("cold-{lang}-{round}"));
            let (_server, base) = common::start_tool_serve(&data, &no_examples);
            let started = Instant::now();
            let repo = format!("bench/{name}");
            // Published from the machine that built it, as its author does.
            common::publish(&base, &data, &component, &repo, &dir.path().join(format!("author-{lang}-0")));
            let mcp_name = format!("bench.{name}.{tool_name}");
            let answered = runtime.block_on(first_result(&http, &format!("{base}/mcp"), &mcp_name, args));
            times.push(answered - started);
        }
        println!("| {lang} | {} |", ms(median(times)));
    }

    let examples = dir.path().join("examples");
    std::fs::create_dir_all(&examples).unwrap();
    std::os::unix::fs::symlink(common::components().join("hello.wasm"), examples.join("hello.wasm")).unwrap();
    let data = dir.path().join("warm");
    let (_server, base) = common::start_tool_serve_warmed(&data, &examples);
    let url = format!("{base}/mcp");
    let mut calls = vec![("rust (`hello` example)", "examples.hello.greet".to_owned(), json!({"name": "bench"}))];
    for (lang, name, tool_name, args) in &languages {
        let component = dir.path().join(format!("{lang}-0/{name}/{name}.wasm"));
        common::publish(&base, &data, &component, &format!("bench/{name}"), &dir.path().join("publisher-warm"));
        calls.push((*lang, format!("bench.{name}.{tool_name}"), args.clone()));
    }
    println!("\n| language | warm `tools/call` p50 | p99 | calls |");
    println!("|---|---|---|---|");
    runtime.block_on(async {
        for (_, name, args) in &calls {
            first_result(&http, &url, name, args).await;
        }
        // The optimising compiler replaces the first, quick code.
        tokio::time::sleep(Duration::from_secs(5)).await;
        for (label, name, args) in &calls {
            for _ in 0..20 {
                common::call_raw(&http, &url, name, args.clone()).await;
            }
            let mut times = Vec::new();
            for _ in 0..WARM_CALLS {
                let (reply, took) = common::call_raw(&http, &url, name, args.clone()).await;
                assert_eq!(reply["result"]["isError"], false, "{reply}");
                times.push(Duration::from_secs_f64(took / 1000.0));
            }
            times.sort();
            let p99 = times[times.len() * 99 / 100];
            println!("| {label} | {} | {} | {WARM_CALLS} |", ms(times[times.len() / 2]), ms(p99));
        }
    });
}
