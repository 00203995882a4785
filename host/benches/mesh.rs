//! The cost of the mesh's extra hop, measured the way users run it: the
//! release `tool gateway` and `tool node` as their own processes joined by
//! a real `nats-server`, beside the embedded default (`tool serve`, which
//! is also the registry both read from), on the same machine. This process
//! is the load generator: stateless `tools/call` of `examples.hello.greet`
//! at 1 and 32 clients, the two fronts taken in turn in rounds.
//!
//! Then failover: a read-only call (`nap` of the hostile test component,
//! 1 s) runs on one of two nodes; that node is killed (SIGKILL) once it
//! holds the call; the time from the kill to the retried call's result is
//! reported, and the same less the 1 s the retried nap itself takes.
//!
//! Every process shares this machine's cores with the others: on two cores
//! the gateway, node, NATS and the load generator compete, so the ratio is
//! a bound on the hop's cost, not its cost on separate machines.
//!
//! Run with `scripts/bench.sh mesh` (it builds the components and the
//! release binary first, and finds `nats-server` in the test venv or
//! `$TOOLMESH_NATS_SERVER`).

mod common;

use common::{ChildGuard, Tally, call, load, start_announcing, tool_binary};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The NATS server binary.
fn nats_server() -> PathBuf {
    if let Some(path) = std::env::var_os("TOOLMESH_NATS_SERVER") {
        return path.into();
    }
    let home = std::env::var_os("HOME").expect("HOME");
    let path = Path::new(&home).join(".cache/toolmesh/venv/bin/nats-server");
    assert!(path.exists(), "no nats-server: run scripts/test.sh once, or set TOOLMESH_NATS_SERVER");
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_nats() -> (ChildGuard, String) {
    let port = free_port();
    let mut command = Command::new(nats_server());
    command.args(["-a", "127.0.0.1", "-p", &port.to_string()]).stderr(Stdio::piped());
    let (guard, _) = start_announcing(&mut command, |c| c.stderr.take(), "Server is ready");
    (guard, format!("nats://127.0.0.1:{port}"))
}

/// A release `tool node` with metrics on a loopback port; returns it and its metrics URL.
fn start_node(nats: &str, registry: &str, name: &str) -> (ChildGuard, String) {
    let mut command = Command::new(tool_binary());
    command
        .args(["node", "--nats", nats, "--registry", registry, "--name", name, "--metrics", "127.0.0.1:0", "-v"])
        .env_remove("TOOLMESH_LOG")
        .stderr(Stdio::piped());
    let (guard, url) = start_announcing(&mut command, |c| c.stderr.take(), "metrics on");
    (guard, url)
}

fn start_gateway(nats: &str, registry: &str) -> (ChildGuard, String) {
    let mut command = Command::new(tool_binary());
    command
        .args(["gateway", "--nats", nats, "--registry", registry, "--addr", "127.0.0.1:0", "--rate-limit", "0"])
        .args(["--refresh", "500ms"])
        .env_remove("TOOLMESH_LOG")
        .stderr(Stdio::piped());
    let (guard, url) = start_announcing(&mut command, |c| c.stderr.take(), "listening on");
    (guard, format!("{url}/mcp"))
}

/// Waits until `url` (an MCP endpoint) answers a call of `tool` correctly.
async fn until_serving(http: &reqwest::Client, url: &str, tool: &str, body_has: &str) {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let text = call(http, url, tool, 1).await;
        if text.contains(body_has) {
            return;
        }
        assert!(Instant::now() < until, "{url} does not serve {tool}: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Calls running on a node, from its metrics.
async fn in_flight(http: &reqwest::Client, metrics: &str) -> u64 {
    let Ok(response) = http.get(metrics).send().await else { return 0 };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("toolmesh_node_in_flight "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A `nap` call of the hostile component (read-only, so retried on node loss).
fn nap_body(ms: u64) -> String {
    serde_json::json!({
        "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {
            "name": "bench.hostile.nap", "arguments": {"ms": ms},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
        }
    })
    .to_string()
}

const ROUNDS: u32 = 5;
const NAP_MS: u64 = 1000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let seconds = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("serve");
    let (_serve, registry) = common::start_tool_serve(&data, &common::components());
    let embedded = format!("{registry}/mcp");
    // The hostile test component, for the failover measurement.
    let token = std::fs::read_to_string(data.join("push-token")).expect("the push token of tool serve");
    let published = Command::new(tool_binary())
        .arg("publish")
        .arg(common::components().join("hostile.wasm"))
        .args(["--name", "bench/hostile", "--version", "1.0", "--registry", &registry, "--token", token.trim()])
        .output()
        .unwrap();
    assert!(published.status.success(), "{}", String::from_utf8_lossy(&published.stderr));
    let (_nats, nats) = start_nats();
    let (node_a, metrics_a) = start_node(&nats, &registry, "a");
    let (_gateway, mesh) = start_gateway(&nats, &registry);
    runtime.block_on(async {
        let http = toolmesh_registry::client::http_builder().tcp_nodelay(true).build().unwrap();
        until_serving(&http, &embedded, "examples.hello.greet", "Hello, bench!").await;
        until_serving(&http, &mesh, "examples.hello.greet", "Hello, bench!").await;
        // Warm both (compiles, and optimised code taking over).
        for url in [&embedded, &mesh] {
            load(&http, url, "examples.hello.greet", 1, Duration::from_millis(500), &mut Tally::default()).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!("| clients | front | calls/s | p50 | p99 | mesh / embedded |");
        println!("|---|---|---|---|---|---|");
        let fronts = [("embedded `tool serve`", embedded.as_str()), ("gateway → NATS → node", mesh.as_str())];
        for clients in [1, 32] {
            let mut tallies: Vec<Tally> = fronts.iter().map(|_| Tally::default()).collect();
            for _ in 0..ROUNDS {
                for ((_, url), tally) in fronts.iter().zip(&mut tallies) {
                    load(&http, url, "examples.hello.greet", clients, Duration::from_secs(seconds) / ROUNDS, tally)
                        .await;
                }
            }
            let mut embedded_rate = 0.0;
            for (i, ((name, _), tally)) in fronts.iter().zip(tallies).enumerate() {
                let (rate, p50, p99) = tally.summary();
                let ratio = if i == 0 {
                    embedded_rate = rate;
                    String::new()
                } else {
                    format!("{:.2}×", rate / embedded_rate)
                };
                println!(
                    "| {clients} | {name} | {rate:.0} | {:.3} ms | {:.3} ms | {ratio} |",
                    p50.as_secs_f64() * 1e3,
                    p99.as_secs_f64() * 1e3
                );
            }
        }

        // Failover: kill the node holding a read-only call; time to the retried result.
        println!();
        println!("| try | kill → retried result | less the retried {NAP_MS} ms nap |");
        println!("|---|---|---|");
        let mut nodes = vec![(node_a, metrics_a)];
        let mut spawned = 0;
        for attempt in 1..=5 {
            while nodes.len() < 2 {
                spawned += 1;
                nodes.push(start_node(&nats, &registry, &format!("n{spawned}")));
            }
            tokio::time::sleep(Duration::from_millis(1500)).await; // adverts seen
            until_serving(&http, &mesh, "examples.hello.greet", "Hello, bench!").await;
            let (http2, url, body) = (http.clone(), mesh.clone(), nap_body(NAP_MS));
            let call = tokio::spawn(async move {
                let response = http2
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream")
                    .header("mcp-protocol-version", "2026-07-28")
                    .header("mcp-method", "tools/call")
                    .header("mcp-name", "bench.hostile.nap")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                (response.text().await.unwrap(), Instant::now())
            });
            let until = Instant::now() + Duration::from_secs(10);
            let victim = loop {
                let mut found = None;
                for (i, (_, metrics)) in nodes.iter().enumerate() {
                    if in_flight(&http, metrics).await > 0 {
                        found = Some(i);
                    }
                }
                if let Some(i) = found {
                    break i;
                }
                assert!(Instant::now() < until, "no node took the call");
                tokio::time::sleep(Duration::from_millis(10)).await;
            };
            let (mut guard, _) = nodes.remove(victim);
            let killed = Instant::now();
            let _ = guard.0.kill();
            let _ = guard.0.wait();
            let (text, answered) = call.await.unwrap();
            assert!(text.contains(&format!("slept {NAP_MS} ms")), "{text}");
            let took = answered.duration_since(killed);
            println!("| {attempt} | {:.2} s | {:.2} s |", took.as_secs_f64(), took.as_secs_f64() - NAP_MS as f64 / 1e3);
        }
    });
}
