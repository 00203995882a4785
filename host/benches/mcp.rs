//! Warm `tools/call` over streamable HTTP on loopback, measured the way
//! users meet it: the release `tool serve` binary as its own process
//! (default flags but `--rate-limit 0`; every call a fresh sandbox instance
//! of the `hello` component running `greet`) against a native rmcp server,
//! also its own process, doing the same work in Rust with the same rmcp HTTP
//! settings. This benchmark process is the load generator: stateless
//! 2026-07-28 requests with JSON responses, at 1 and 32 concurrent clients,
//! each server's share split into rounds taken in turn.
//! The gateway served from inside this process is measured beside them,
//! with its node and with an invoker that runs nothing (the gateway's own
//! cost, the sandbox taken out).
//! Prints a Markdown table.
//!
//! Run with `scripts/bench.sh mcp` (it builds the components and the
//! release binary first).

mod common;

use bytes::Bytes;
use common::{ChildGuard, Tally, load, serve};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use toolmesh_host::artifact::ToolMetadata;
use toolmesh_host::config::SandboxConfig;
use toolmesh_host::gateway::http::{McpHttpConfig, router};
use toolmesh_host::gateway::{Gateway, Invocation, InvokeFuture, Invoker, LocalInvoker};
use toolmesh_host::grant::Policy;
use toolmesh_host::node::Node;
use toolmesh_host::sandbox::{CallOutput, Content, Sandbox};
use toolmesh_registry::api::AccessConfig;
use toolmesh_registry::client::Client;
use toolmesh_registry::store::{FsStore, StoreConfig};

/// An invoker that answers without running anything: the gateway's own
/// cost, with the sandbox taken out.
struct CannedInvoker;

impl Invoker for CannedInvoker {
    fn invoke(&self, _call: Invocation) -> InvokeFuture<'_> {
        Box::pin(async { Ok(CallOutput::unreserved(vec![Content::Text("Hello, bench!".into())])) })
    }
}

/// The gateway inside this process (registry store, catalog, local node),
/// and the same catalog over an invoker that runs nothing.
async fn start_in_process(dir: &Path) -> (String, String) {
    let (store, sandbox) = publish_hello(dir).await;
    let config = McpHttpConfig { rate_per_minute: 0, ..McpHttpConfig::default() };
    let node = Node::new(sandbox, Arc::new(store.clone()), Arc::new(Policy::builtin()));
    let gateway = Gateway::new(Arc::new(LocalInvoker::new(node)));
    gateway.refresh_from(&store).await.unwrap();
    let canned = Gateway::new(Arc::new(CannedInvoker));
    canned.refresh_from(&store).await.unwrap();
    (
        format!("{}/mcp", serve(router(gateway, config.clone()).unwrap()).await),
        format!("{}/mcp", serve(router(canned, config).unwrap()).await),
    )
}

/// A store in `dir` with `hello` published as `examples/hello:0.1.0`.
async fn publish_hello(dir: &Path) -> (FsStore, Arc<Sandbox>) {
    let wasm = common::components().join("hello.wasm");
    let bytes =
        std::fs::read(&wasm).unwrap_or_else(|e| panic!("{}: {e}; run scripts/build-components.sh", wasm.display()));
    let store = FsStore::open(dir, StoreConfig::default()).unwrap();
    let sandbox = Arc::new(Sandbox::new(SandboxConfig::default()).unwrap());
    let access = AccessConfig { push_tokens: vec!["t".into()], ..AccessConfig::default() };
    let registry = serve(toolmesh_registry::api::router(store.clone(), access)).await;
    let client = Client::new(&registry, Some("t".into())).unwrap();
    let (repo, tag) = ("examples/hello".parse().unwrap(), "0.1.0".parse().unwrap());
    let metadata = ToolMetadata::default();
    toolmesh_host::publish::publish(&sandbox, &client, Bytes::from(bytes), (&repo, &tag), metadata, None, &|_| {})
        .await
        .unwrap();
    (store, sandbox)
}

/// Rounds each server's load is split into, taken in turn, so that a
/// machine whose speed drifts during the run slows every server alike.
const ROUNDS: u32 = 5;

/// Consecutive runs of one fresh load-generator process with one
/// connection against `tool serve`, then against the native server.
const STEADY_RUNS: usize = 10;

fn main() {
    common::serve_native_if_asked();
    common::load_if_asked();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let seconds = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let (_native_child, native): (ChildGuard, String) = common::start_native();
    // Measured once it has loaded its catalog (compiled the examples,
    // CPython among them), so no compile competes with the calls.
    let (_tool_child, toolmesh) = common::start_tool_serve_warmed(&dir.path().join("serve"), &common::components());
    let toolmesh = format!("{toolmesh}/mcp");
    runtime.block_on(async {
        let (in_process, canned) = start_in_process(&dir.path().join("in-process")).await;
        let servers = [
            ("native rmcp (own process)", native.as_str()),
            ("toolmesh `tool serve` (own process)", toolmesh.as_str()),
            ("toolmesh gateway (in this process)", in_process.as_str()),
            ("toolmesh gateway, no sandbox (in this process)", canned.as_str()),
        ];
        let tool = |name: &str| if name.starts_with("native") { "greet" } else { "examples.hello.greet" };
        // Warm every server (the gateways compile the component on the first
        // call, and move to optimised code a moment later).
        let http = toolmesh_registry::client::http_builder().tcp_nodelay(true).build().unwrap();
        for (name, url) in servers {
            load(&http, url, tool(name), 1, Duration::from_millis(500), &mut Tally::default()).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!("| clients | server | calls/s | p50 | p99 | toolmesh / native |");
        println!("|---|---|---|---|---|---|");
        for clients in [1, 32] {
            let mut tallies: Vec<Tally> = servers.iter().map(|_| Tally::default()).collect();
            for _ in 0..ROUNDS {
                for ((name, url), tally) in servers.iter().zip(&mut tallies) {
                    load(&http, url, tool(name), clients, Duration::from_secs(seconds) / ROUNDS, tally).await;
                }
            }
            let mut native_rate = 0.0;
            for ((name, _), tally) in servers.iter().zip(tallies) {
                let (rate, p50, p99) = tally.summary();
                let ratio = if name.starts_with("native") {
                    native_rate = rate;
                    String::new()
                } else {
                    format!("{:.2}×", rate / native_rate)
                };
                println!(
                    "| {clients} | {name} | {rate:.0} | {:.3} ms | {:.3} ms | {ratio} |",
                    p50.as_secs_f64() * 1e3,
                    p99.as_secs_f64() * 1e3
                );
            }
        }
    });
    // A single local agent: each run a new process with one new connection
    // (so a new placement of both sides), as consecutive runs of a load
    // generator would be.
    let seconds = std::env::var("BENCH_STEADY_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    println!();
    println!("| run | `tool serve` calls/s | native calls/s | toolmesh / native |");
    println!("|---|---|---|---|");
    let mut ratios = Vec::new();
    for run in 1..=STEADY_RUNS {
        let ours = common::load_in_a_process(&toolmesh, "examples.hello.greet", seconds);
        let theirs = common::load_in_a_process(&native, "greet", seconds);
        ratios.push(ours / theirs);
        println!("| {run} | {ours:.0} | {theirs:.0} | {:.2}× |", ours / theirs);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "\none connection, {STEADY_RUNS} runs of {seconds} s: lowest {:.2}×, median {:.2}×, highest {:.2}×",
        ratios[0],
        ratios[STEADY_RUNS / 2],
        ratios[STEADY_RUNS - 1]
    );
}
