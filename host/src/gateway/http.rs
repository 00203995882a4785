//! Streamable HTTP at `/mcp`, with the checks an exposed endpoint needs:
//! API keys (bearer), `Host` and `Origin` validation against DNS
//! rebinding, a request body limit, and a per-caller rate limit.

use super::Gateway;
use super::mcp::Caller;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use toolmesh_registry::api::{bearer_token, constant_eq};
use toolmesh_registry::digest::Digest;

/// Settings of the MCP endpoint.
#[derive(Debug, Clone)]
pub struct McpHttpConfig {
    /// Keys that may call; when empty, no key is asked for (loopback only:
    /// the CLI refuses to listen elsewhere without keys).
    pub api_keys: Vec<String>,
    /// Hosts (`host` or `host:port`) accepted in the `Host` header.
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed to call; others are refused.
    pub allowed_origins: Vec<String>,
    /// Calls a caller may make per minute (0: unlimited).
    pub rate_per_minute: u32,
    /// Largest request body, in bytes.
    pub max_body: usize,
}

impl Default for McpHttpConfig {
    fn default() -> Self {
        McpHttpConfig {
            api_keys: Vec::new(),
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into(), "[::1]".into()],
            allowed_origins: vec!["http://localhost:*".into(), "http://127.0.0.1:*".into(), "http://[::1]:*".into()],
            rate_per_minute: 600,
            max_body: 4 << 20,
        }
    }
}

struct Edge {
    keys: Vec<(String, String)>,
    rate_per_minute: u32,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Edge {
    /// Takes one request from `caller`'s bucket; false when it is empty.
    fn allow(&self, caller: &str) -> bool {
        if self.rate_per_minute == 0 {
            return true;
        }
        let capacity = f64::from(self.rate_per_minute);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let (tokens, last) = buckets.entry(caller.to_owned()).or_insert((capacity, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * capacity / 60.0).min(capacity);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A key's public name in logs: the start of its sha256.
fn key_id(key: &str) -> String {
    format!("key:{}", &Digest::of(key.as_bytes()).hex()[..12])
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32001, "message": message}});
    let mut response = (status, axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    }
    response
}

async fn guard(State(edge): State<Arc<Edge>>, mut request: Request, next: Next) -> Response {
    let caller = if edge.keys.is_empty() {
        "local".to_owned()
    } else {
        match bearer_token(request.headers()).and_then(|p| edge.keys.iter().find(|(k, _)| constant_eq(k, p))) {
            Some((_, id)) => id.clone(),
            None => return refuse(StatusCode::UNAUTHORIZED, "a valid API key is required (Authorization: Bearer …)"),
        }
    };
    if !edge.allow(&caller) {
        return refuse(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded; slow down");
    }
    request.extensions_mut().insert(Caller(caller));
    next.run(request).await
}

/// The `/mcp` routes over `gateway`, and `/metrics`.
pub fn router(gateway: Gateway, config: McpHttpConfig) -> Router {
    let rmcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(config.allowed_hosts.clone())
        .with_allowed_origins(config.allowed_origins.clone())
        .with_max_request_body_bytes(config.max_body)
        .with_json_response(true);
    let service: StreamableHttpService<Gateway, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(gateway.clone()), Arc::new(LocalSessionManager::default()), rmcp_config);
    let edge = Arc::new(Edge {
        keys: config.api_keys.iter().map(|k| (k.clone(), key_id(k))).collect(),
        rate_per_minute: config.rate_per_minute,
        buckets: Mutex::default(),
    });
    Router::new()
        .nest_service("/mcp", service)
        .route("/metrics", axum::routing::get(metrics))
        .layer(axum::middleware::from_fn_with_state(edge, guard))
}

/// `GET /metrics`: this process's metrics for Prometheus (behind the same
/// API keys as `/mcp`).
pub async fn metrics() -> Response {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], crate::metrics::global().encode()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_empties_and_refills() {
        let edge = Edge { keys: vec![], rate_per_minute: 2, buckets: Mutex::default() };
        assert!(edge.allow("a"));
        assert!(edge.allow("a"));
        assert!(!edge.allow("a"));
        assert!(edge.allow("b"), "buckets are per caller");
        let unlimited = Edge { keys: vec![], rate_per_minute: 0, buckets: Mutex::default() };
        assert!((0..1000).all(|_| unlimited.allow("a")));
    }

    #[test]
    fn key_ids_do_not_reveal_keys() {
        let id = key_id("secret-key");
        assert!(id.starts_with("key:") && !id.contains("secret"));
        assert_eq!(id, key_id("secret-key"));
    }
}
