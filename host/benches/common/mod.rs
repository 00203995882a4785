//! What the process-level benchmarks share: the native rmcp baseline (run
//! as a child process of the benchmark binary itself), starting the release
//! `tool` binary, and one stateless `tools/call` request.

#![allow(dead_code)] // each benchmark uses part of it

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

/// Set in the environment of the child that serves the native baseline.
const NATIVE_ENV: &str = "TOOLMESH_BENCH_NATIVE_SERVER";

/// The same tool as the `hello` example, natively.
#[derive(Clone)]
struct Native;

impl ServerHandler for Native {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.arguments.as_ref().and_then(|a| a.get("name")).and_then(|n| n.as_str()).unwrap_or("");
        Ok(CallToolResult::success(vec![ContentBlock::text(format!("Hello, {name}!"))]).into())
    }
}

/// Serves `app` on a loopback port; returns its base URL.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// When this process was started as the native baseline server, serves it
/// until killed and never returns.
pub fn serve_native_if_asked() {
    if std::env::var_os(NATIVE_ENV).is_none() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let config = StreamableHttpServerConfig::default().with_json_response(true);
        let service: StreamableHttpService<Native, LocalSessionManager> =
            StreamableHttpService::new(|| Ok(Native), Arc::new(LocalSessionManager::default()), config);
        let url = serve(axum::Router::new().nest_service("/mcp", service)).await;
        println!("native server at {url}");
        std::future::pending::<()>().await
    });
}

/// Set in the environment of a child that is a one-connection load
/// generator: `URL TOOL SECONDS`.
const LOAD_ENV: &str = "TOOLMESH_BENCH_LOAD";

/// When this process was started as a load generator, sends one
/// connection's calls for the seconds asked, prints `calls/s N` and exits.
pub fn load_if_asked() {
    let Some(spec) = std::env::var_os(LOAD_ENV) else { return };
    let spec = spec.into_string().expect("a UTF-8 load spec");
    let mut parts = spec.split(' ');
    let (url, tool, seconds) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let duration = std::time::Duration::from_secs_f64(seconds.parse().unwrap());
    // One thread, one connection: a single local agent.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let rate = runtime.block_on(async {
        let http =
            toolmesh_registry::client::http_builder().tcp_nodelay(true).pool_max_idle_per_host(1).build().unwrap();
        let mut tally = Tally::default();
        load(&http, url, tool, 1, duration, &mut tally).await;
        tally.summary().0
    });
    println!("calls/s {rate:.1}");
    std::process::exit(0);
}

/// Runs a one-connection load generator as its own process (this
/// benchmark binary again) against `tool` at `url` for `seconds`; returns
/// its calls/s.
pub fn load_in_a_process(url: &str, tool: &str, seconds: f64) -> f64 {
    let output = Command::new(std::env::current_exe().unwrap())
        .env(LOAD_ENV, format!("{url} {tool} {seconds}"))
        .stderr(Stdio::inherit())
        .output()
        .expect("start a load generator");
    let text = String::from_utf8_lossy(&output.stdout);
    let rate = text.lines().find_map(|l| l.strip_prefix("calls/s ")).unwrap_or_else(|| panic!("no rate in {text:?}"));
    rate.trim().parse().unwrap()
}

/// A child process killed when dropped.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads `stream` until a line contains `marker`; returns the text after
/// it, and keeps draining the stream in the background.
fn wait_for_line(stream: impl std::io::Read + Send + 'static, marker: &str) -> String {
    let mut lines = BufReader::new(stream).lines();
    for line in lines.by_ref() {
        let line = line.expect("read child output");
        if let Some(at) = line.find(marker) {
            let rest = line[at + marker.len()..].trim().to_owned();
            std::thread::spawn(move || lines.for_each(drop));
            return rest;
        }
    }
    panic!("the child exited before printing {marker:?}");
}

/// The native server in its own process (this benchmark binary again);
/// returns it and its MCP URL.
pub fn start_native() -> (ChildGuard, String) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.env(NATIVE_ENV, "1").stdout(Stdio::piped());
    let (guard, url) = start_announcing(&mut command, |c| c.stdout.take(), "native server at");
    (guard, format!("{url}/mcp"))
}

/// Starts `command` and waits for the line with `marker` on the (piped)
/// stream that `announcements` takes; returns the process and the rest of
/// that line.
pub fn start_announcing<R: std::io::Read + Send + 'static>(
    command: &mut Command,
    announcements: fn(&mut Child) -> Option<R>,
    marker: &str,
) -> (ChildGuard, String) {
    let mut child = command.spawn().expect("start a server");
    let stream = announcements(&mut child).expect("the announcing stream is piped");
    let guard = ChildGuard(child);
    (guard, wait_for_line(stream, marker))
}

/// The cargo target directory (benchmarks run from target/release/deps).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).expect("target directory").to_owned()
}

/// The release `tool` binary.
pub fn tool_binary() -> PathBuf {
    let tool = target_dir().join("release/tool");
    assert!(tool.exists(), "{} is missing: build it with `cargo build --release -p toolmesh-host`", tool.display());
    tool
}

/// The built example components.
pub fn components() -> PathBuf {
    target_dir().join("wasm32-wasip2/release")
}

/// Release `tool serve` in its own process on `data`, publishing the
/// examples in `examples`; returns it and its base URL.
pub fn start_tool_serve(data: &Path, examples: &Path) -> (ChildGuard, String) {
    start_announcing(&mut tool_serve(data, examples), |c| c.stderr.take(), "listening on")
}

/// [`start_tool_serve`], returning once the server has loaded its catalog
/// ahead of calls, so no compile competes with what is measured.
pub fn start_tool_serve_warmed(data: &Path, examples: &Path) -> (ChildGuard, String) {
    let mut child = tool_serve(data, examples).spawn().expect("start tool serve");
    let stderr = child.stderr.take().expect("piped");
    let guard = ChildGuard(child);
    let mut lines = BufReader::new(stderr).lines();
    let mut url = None;
    for line in lines.by_ref() {
        let line = line.expect("read tool serve's log");
        if let Some(at) = line.find("listening on") {
            url = Some(line[at + "listening on".len()..].trim().to_owned());
        }
        if line.contains("catalog loaded ahead of calls") {
            std::thread::spawn(move || lines.for_each(drop));
            return (guard, url.expect("tool serve listens before it loads its catalog"));
        }
    }
    panic!("tool serve exited before it loaded its catalog");
}

/// The command of a release `tool serve` on `data` with `examples`.
fn tool_serve(data: &Path, examples: &Path) -> Command {
    let mut command = Command::new(tool_binary());
    command
        .args(["serve", "--addr", "127.0.0.1:0", "--rate-limit", "0", "--data"])
        .arg(data)
        .arg("--examples")
        .arg(examples)
        .env_remove("TOOLMESH_LOG")
        .stderr(Stdio::piped());
    command
}

/// Publishes `component` as `name` into the `tool serve` at `base` (data
/// directory `data`) with a release `tool publish` process, whose compile
/// cache is `cache`.
pub fn publish(base: &str, data: &Path, component: &Path, name: &str, cache: &Path) {
    let token = std::fs::read_to_string(data.join("push-token")).unwrap();
    let published = Command::new(tool_binary())
        .arg("publish")
        .arg(component)
        .args(["--name", name, "--version", "1.0.0", "--registry", base, "--token", token.trim()])
        .env("XDG_CACHE_HOME", cache)
        .env_remove("TOOLMESH_LOG")
        .output()
        .unwrap();
    assert!(published.status.success(), "{}", String::from_utf8_lossy(&published.stderr));
}

/// Calls `tool` at `url` until it answers with a greeting (the catalog may
/// lag the publish by a moment); returns when it did.
pub async fn first_result(http: &reqwest::Client, url: &str, tool: &str) -> std::time::Instant {
    for id in 1.. {
        let text = call(http, url, tool, id).await;
        if text.contains("Hello, bench!") {
            return std::time::Instant::now();
        }
        assert!(text.contains("unknown tool"), "unexpected answer: {text}");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    unreachable!()
}

/// The median of `values`.
pub fn median(mut values: Vec<std::time::Duration>) -> std::time::Duration {
    values.sort();
    values[values.len() / 2]
}

/// A duration in milliseconds, for tables.
pub fn ms(d: std::time::Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// A stateless 2026-07-28 `tools/call` of `tool` with `{"name": "bench"}`.
pub fn call_body(tool: &str, id: u64) -> String {
    serde_json::json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {
            "name": tool, "arguments": {"name": "bench"},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
        }
    })
    .to_string()
}

/// Sends one call; returns the response text.
pub async fn call(http: &reqwest::Client, url: &str, tool: &str, id: u64) -> String {
    post_call(http, url, tool, call_body(tool, id)).await
}

/// Posts the `tools/call` request `body` for `tool` with the headers of a
/// 2026-07-28 client; returns the response text.
async fn post_call(http: &reqwest::Client, url: &str, tool: &str, body: String) -> String {
    http.post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool)
        .body(body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// What one server answered over one or more rounds of load.
#[derive(Default)]
pub struct Tally {
    latencies: Vec<std::time::Duration>,
    elapsed: std::time::Duration,
}

impl Tally {
    /// Calls/s, p50 and p99 over every round.
    pub fn summary(mut self) -> (f64, std::time::Duration, std::time::Duration) {
        self.latencies.sort();
        let all = &self.latencies;
        let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
        (all.len() as f64 / self.elapsed.as_secs_f64(), at(0.50), at(0.99))
    }
}

/// Runs `clients` loops of calls of `tool` at `url` for `duration`,
/// adding them to `tally`.
pub async fn load(
    http: &reqwest::Client,
    url: &str,
    tool: &str,
    clients: usize,
    duration: std::time::Duration,
    tally: &mut Tally,
) {
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (http, url, tool) = (http.clone(), url.to_owned(), tool.to_owned());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut id = (c as u64) << 32;
                while started.elapsed() < duration {
                    id += 1;
                    let t = std::time::Instant::now();
                    let text = call(&http, &url, &tool, id).await;
                    assert!(text.contains("Hello, bench!"), "{text}");
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    for task in tasks {
        tally.latencies.extend(task.await.unwrap());
    }
    tally.elapsed += started.elapsed();
}

/// `tool serve` granting GPU compute, on a fresh data directory with the
/// examples.
pub fn start_gpu_serve(data: &Path) -> (ChildGuard, String) {
    start_gpu_serve_with(data, &components())
}

/// `tool serve` granting GPU compute, on a fresh data directory with the
/// components of `examples` (an empty directory: none, so no compiling
/// in the background competes with what is measured).
pub fn start_gpu_serve_with(data: &Path, examples: &Path) -> (ChildGuard, String) {
    // A software adapter takes tens of seconds for the largest product:
    // the call's GPU time budget is raised to fit.
    let policy = data.join("policy.toml");
    std::fs::write(&policy, "[gpu]\nallow = true\ntime_budget = \"300s\"\n").unwrap();
    let mut command = Command::new(tool_binary());
    command
        .args(["serve", "--addr", "127.0.0.1:0", "--rate-limit", "0", "--timeout", "300s", "--policy"])
        .arg(&policy)
        .arg("--data")
        .arg(data.join("data"))
        .arg("--examples")
        .arg(examples)
        .env_remove("TOOLMESH_LOG")
        .stderr(Stdio::piped());
    let (guard, url) = start_announcing(&mut command, |c| c.stderr.take(), "listening on");
    (guard, format!("{url}/mcp"))
}

/// One `tools/call` of `tool` with `arguments`; returns the JSON-RPC
/// reply and the call's wall time in milliseconds.
pub async fn call_raw(
    http: &reqwest::Client,
    url: &str,
    tool: &str,
    arguments: serde_json::Value,
) -> (serde_json::Value, f64) {
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {
            "name": tool, "arguments": arguments,
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
        }
    });
    let started = std::time::Instant::now();
    let text = post_call(http, url, tool, body.to_string()).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let json = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or(&text);
    (serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {text}")), ms)
}

/// One `tools/call` that must succeed; returns the structured result and
/// the call's wall time in milliseconds.
pub async fn call_tool(
    http: &reqwest::Client,
    url: &str,
    tool: &str,
    arguments: serde_json::Value,
) -> (serde_json::Value, f64) {
    let (reply, ms) = call_raw(http, url, tool, arguments).await;
    let result = &reply["result"];
    assert_eq!(result["isError"], false, "{tool} failed: {reply}");
    (result["structuredContent"].clone(), ms)
}

/// The value at quantile `q` of `values` (sorting them).
pub fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() as f64 * q) as usize).min(values.len() - 1)]
}

/// A directory `examples` under `dir` holding copies of the built
/// components `names`, for `tool serve --examples`.
pub fn examples_of(dir: &Path, names: &[&str]) -> PathBuf {
    let examples = dir.join("examples");
    std::fs::create_dir_all(&examples).unwrap();
    for name in names {
        std::fs::copy(components().join(name), examples.join(name)).unwrap();
    }
    examples
}
