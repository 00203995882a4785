//! Cold start, measured on the release binaries as users run them: a fresh
//! `tool serve` (empty data directory, so its node has never seen the
//! tool), then `tool publish hello.wasm` as its own process (with an empty
//! compile cache of its own), then `tools/call` until the first result.
//! Beside it: the first call after a restart of the same node (its compile
//! cache now warm), and the native baseline: a native rmcp server process
//! started from nothing until its first result. Medians of several rounds;
//! prints a Markdown table.
//!
//! Run with `scripts/bench.sh cold`.

mod common;

use std::time::{Duration, Instant};

use common::{first_result, median, ms};

fn main() {
    common::serve_native_if_asked();
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let http = toolmesh_registry::client::http_builder().tcp_nodelay(true).build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let no_examples = dir.path().join("no-examples");
    std::fs::create_dir_all(&no_examples).unwrap();
    let hello = common::components().join("hello.wasm");
    let (mut publish, mut first_call, mut total, mut restart, mut native) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let data = dir.path().join(format!("node-{round}"));
        let (server, base) = common::start_tool_serve(&data, &no_examples);
        let url = format!("{base}/mcp");
        let started = Instant::now();
        common::publish(&base, &data, &hello, "bench/hello", &dir.path().join(format!("publisher-cache-{round}")));
        let publish_done = Instant::now();
        let answered = runtime.block_on(first_result(&http, &url, "bench.hello.greet"));
        publish.push(publish_done - started);
        first_call.push(answered - publish_done);
        total.push(answered - started);
        // Let the optimising compiler finish into the cache, then restart.
        std::thread::sleep(Duration::from_millis(1500));
        drop(server);
        let (_server, base) = common::start_tool_serve(&data, &no_examples);
        let restarted = Instant::now();
        let answered = runtime.block_on(first_result(&http, &format!("{base}/mcp"), "bench.hello.greet"));
        restart.push(answered - restarted);

        let started = Instant::now();
        let (_native, url) = common::start_native();
        let answered = runtime.block_on(first_result(&http, &url, "greet"));
        native.push(answered - started);
    }
    println!("| step | median of {rounds} |");
    println!("|---|---|");
    println!("| `tool publish hello.wasm` (own process: describe, push) | {} |", ms(median(publish)));
    println!("| then the node's first `tools/call` (fetch, compile, run) | {} |", ms(median(first_call)));
    println!("| **publish → first result** | **{}** |", ms(median(total)));
    println!("| first call after a node restart (warm compile cache) | {} |", ms(median(restart)));
    println!("| native rmcp server: process start → first result | {} |", ms(median(native)));
}
