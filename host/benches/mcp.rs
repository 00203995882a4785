//! Warm `tools/call` over streamable HTTP on loopback: the toolmesh gateway
//! (each call a fresh sandbox instance of the `hello` component) against a
//! native rmcp server doing the same work in Rust, with the same rmcp HTTP
//! settings. Stateless 2026-07-28 requests with JSON responses, at 1 and 32
//! concurrent clients; prints a Markdown table.
//!
//! Run with `scripts/bench.sh mcp` (it builds the components first).

use bytes::Bytes;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use std::sync::Arc;
use std::time::{Duration, Instant};
use toolmesh_host::artifact::ToolMetadata;
use toolmesh_host::config::SandboxConfig;
use toolmesh_host::gateway::http::{McpHttpConfig, router};
use toolmesh_host::gateway::{Gateway, LocalInvoker};
use toolmesh_host::sandbox::Sandbox;
use toolmesh_registry::api::AccessConfig;
use toolmesh_registry::client::Client;
use toolmesh_registry::store::{FsStore, StoreConfig};

/// The same tool, natively.
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

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn start_toolmesh(dir: &std::path::Path) -> String {
    let exe = std::env::current_exe().unwrap();
    let wasm = exe.ancestors().nth(3).unwrap().join("wasm32-wasip2/release/hello.wasm");
    let bytes =
        std::fs::read(&wasm).unwrap_or_else(|e| panic!("{}: {e}; run scripts/build-components.sh", wasm.display()));
    let store = FsStore::open(dir, StoreConfig::default()).unwrap();
    let sandbox = Arc::new(Sandbox::new(SandboxConfig::default()).unwrap());
    let access = AccessConfig { push_tokens: vec!["t".into()], ..AccessConfig::default() };
    let registry = serve(toolmesh_registry::api::router(store.clone(), access)).await;
    let client = Client::new(&registry, Some("t".into())).unwrap();
    let repo = "bench/hello".parse().unwrap();
    let tag = "1".parse().unwrap();
    toolmesh_host::publish::publish(
        &sandbox,
        &client,
        Bytes::from(bytes),
        (&repo, &tag),
        ToolMetadata::default(),
        None,
        &|_| {},
    )
    .await
    .unwrap();
    let gateway = Gateway::new(Arc::new(LocalInvoker::new(sandbox, store.clone())));
    gateway.refresh_from(&store).await.unwrap();
    let config = McpHttpConfig { rate_per_minute: 0, ..McpHttpConfig::default() };
    format!("{}/mcp", serve(router(gateway, config)).await)
}

async fn start_native() -> String {
    let config = StreamableHttpServerConfig::default().with_json_response(true);
    let service: StreamableHttpService<Native, LocalSessionManager> =
        StreamableHttpService::new(|| Ok(Native), Arc::new(LocalSessionManager::default()), config);
    format!("{}/mcp", serve(axum::Router::new().nest_service("/mcp", service)).await)
}

fn body(tool: &str, id: u64) -> String {
    serde_json::json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {
            "name": tool, "arguments": {"name": "bench"},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
        }
    })
    .to_string()
}

/// Runs `clients` loops of calls for `duration`; returns calls/s, p50, p99.
async fn load(url: &str, tool: &str, clients: usize, duration: Duration) -> (f64, Duration, Duration) {
    let http = reqwest::Client::builder().tcp_nodelay(true).build().unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (http, url, tool) = (http.clone(), url.to_owned(), tool.to_owned());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut id = (c as u64) << 32;
                while started.elapsed() < duration {
                    id += 1;
                    let t = Instant::now();
                    let response = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("accept", "application/json, text/event-stream")
                        .header("mcp-protocol-version", "2026-07-28")
                        .header("mcp-method", "tools/call")
                        .header("mcp-name", &tool)
                        .body(body(&tool, id))
                        .send()
                        .await
                        .unwrap();
                    let text = response.text().await.unwrap();
                    assert!(text.contains("Hello, bench!"), "{text}");
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    (all.len() as f64 / elapsed, at(0.50), at(0.99))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    runtime.block_on(async {
        let toolmesh = start_toolmesh(dir.path()).await;
        let native = start_native().await;
        // Warm both (the gateway compiles the component on its first call).
        load(&toolmesh, "bench.hello.greet", 1, Duration::from_millis(500)).await;
        load(&native, "greet", 1, Duration::from_millis(500)).await;
        println!("| clients | server | calls/s | p50 | p99 |");
        println!("|---|---|---|---|---|");
        for clients in [1, 32] {
            let mut rates = Vec::new();
            for (name, url, tool) in [("native rmcp", &native, "greet"), ("toolmesh", &toolmesh, "bench.hello.greet")] {
                let (rate, p50, p99) = load(url, tool, clients, Duration::from_secs(5)).await;
                rates.push(rate);
                println!(
                    "| {clients} | {name} | {rate:.0} | {:.3} ms | {:.3} ms |",
                    p50.as_secs_f64() * 1e3,
                    p99.as_secs_f64() * 1e3
                );
            }
            println!("| {clients} | native / toolmesh throughput | {:.2}× | | |", rates[0] / rates[1]);
        }
    });
}
