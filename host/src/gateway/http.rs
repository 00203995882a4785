//! Streamable HTTP at `/mcp`, with the checks an exposed endpoint needs:
//! who is calling ([`crate::auth`]: API keys, OAuth access tokens), what
//! they may call (a `403` naming the scopes a call needs, before the call is
//! read by the MCP layer), `Host` and `Origin` validation against DNS
//! rebinding, a request body limit, and a per-caller rate limit. With OAuth
//! on, the protected resource metadata (RFC 9728) is served beside it;
//! the registry listings and server card ([`super::listings`]), and the
//! A2A agent card and endpoint ([`super::a2a`]).

use super::Gateway;
use crate::auth::{Access, AuthError, Authenticator, Caller};
use crate::usage::{AdmittedCall, QuotaRefusal, Quotas};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use toolmesh_registry::api::bearer_token;

/// Settings of the MCP endpoint.
#[derive(Debug, Clone)]
pub struct McpHttpConfig {
    /// Keys that may call; when empty and OAuth is off, no credential is
    /// asked for (loopback only: the CLI refuses to listen elsewhere).
    pub api_keys: Vec<String>,
    /// Access tokens accepted, when on.
    pub oauth: Option<crate::auth::OAuthConfig>,
    /// Which tools token holders may call (all, without one).
    pub access: Option<crate::auth::access::AccessPolicy>,
    /// Hosts (`host` or `host:port`) accepted in the `Host` header.
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed to call; others are refused.
    pub allowed_origins: Vec<String>,
    /// Calls a caller may make per minute (0: unlimited).
    pub rate_per_minute: u32,
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// Where clients reach the gateway (`https://host[:port]`), for the
    /// listings; the request's `Host` when absent.
    pub public_url: Option<String>,
}

impl Default for McpHttpConfig {
    fn default() -> Self {
        McpHttpConfig {
            api_keys: Vec::new(),
            oauth: None,
            access: None,
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into(), "[::1]".into()],
            allowed_origins: vec!["http://localhost:*".into(), "http://127.0.0.1:*".into(), "http://[::1]:*".into()],
            rate_per_minute: 600,
            max_body: 4 << 20,
            public_url: None,
        }
    }
}

struct Edge {
    auth: Authenticator,
    /// Whose metering holds the quotas.
    gateway: Gateway,
    rate_per_minute: u32,
    max_body: usize,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    /// Legacy sessions and the callers that opened them.
    sessions: Mutex<Sessions>,
}

/// Which caller opened each legacy MCP session: a session id is usable
/// by that caller alone, so a leaked id lets nobody else in.
#[derive(Default)]
struct Sessions {
    owners: HashMap<String, String>,
    /// Each caller's ids in the order they were opened.
    by_caller: HashMap<String, std::collections::VecDeque<String>>,
    /// All ids in the order they were opened (some perhaps closed since).
    order: std::collections::VecDeque<String>,
}

/// Sessions remembered at most (the oldest are forgotten first, and their
/// ids stop working for anyone).
const MAX_SESSIONS: usize = 100_000;

/// Sessions one caller keeps at most: its own oldest are forgotten first,
/// so no caller can push everyone else's sessions out.
const MAX_SESSIONS_PER_CALLER: usize = 1000;

impl Sessions {
    /// Whether `caller` may use session `id`.
    fn allows(&self, id: &str, caller: &str) -> bool {
        self.owners.get(id).is_some_and(|owner| owner == caller)
    }

    fn opened(&mut self, id: &str, caller: &str) {
        if self.owners.contains_key(id) {
            return;
        }
        let own = self.by_caller.entry(caller.to_owned()).or_default();
        if own.len() >= MAX_SESSIONS_PER_CALLER
            && let Some(oldest) = own.pop_front()
        {
            self.owners.remove(&oldest);
        }
        own.push_back(id.to_owned());
        self.owners.insert(id.to_owned(), caller.to_owned());
        self.order.push_back(id.to_owned());
        // Ids closed since stay in the order until compacted away.
        if self.order.len() > 2 * MAX_SESSIONS {
            let owners = &self.owners;
            self.order.retain(|id| owners.contains_key(id));
        }
        while self.owners.len() > MAX_SESSIONS {
            let Some(oldest) = self.order.pop_front() else { break };
            self.closed(&oldest);
        }
    }

    /// Forgets session `id` (ended by its client).
    fn closed(&mut self, id: &str) {
        let Some(owner) = self.owners.remove(id) else { return };
        if let Some(own) = self.by_caller.get_mut(&owner) {
            own.retain(|other| other != id);
            if own.is_empty() {
                self.by_caller.remove(&owner);
            }
        }
    }
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

    /// The answer to a request whose credential was not accepted.
    fn unauthorized(&self, error: &AuthError) -> Response {
        let status = match error {
            AuthError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::Missing | AuthError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
        };
        let mut response = refuse(status, Value::Null, &error.to_string());
        let headers = response.headers_mut();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        } else if let Ok(value) = HeaderValue::from_str(&self.auth.challenge(error)) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }

    /// `request` again if `caller` may call every tool it calls and is
    /// within its quotas; else a `403` naming the scopes that would let it,
    /// or a `429` naming the quota and when to try again.
    async fn check_calls(
        &self,
        caller: &Caller,
        quotas: Option<&Arc<Quotas>>,
        request: Request,
    ) -> Result<Request, Response> {
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, self.max_body).await else {
            return Err(refuse(StatusCode::PAYLOAD_TOO_LARGE, Value::Null, "the request body is too large"));
        };
        let mut admitted = None;
        if let Ok(message) = serde_json::from_slice::<Value>(&bytes) {
            let messages = match &message {
                Value::Array(batch) => batch.iter().collect(),
                single => vec![single],
            };
            let single = messages.len() == 1;
            for message in messages {
                let Some(tool) = called_tool(message) else { continue };
                // The built-in search answers with what the caller may call.
                if tool != super::search::SEARCH_TOOL && !caller.may_call(tool) {
                    return Err(self.forbidden(message["id"].clone(), tool, caller));
                }
                let Some(quotas) = quotas else { continue };
                // One call is admitted here, so a refusal is a 429; the
                // calls of a batch are checked here and admitted each by
                // its handler (a refusal there is an `isError` result).
                let outcome = if single {
                    quotas.admit(&caller.name).await.map(|admission| admitted = Some(AdmittedCall::new(admission)))
                } else {
                    quotas.check(&caller.name).await
                };
                if let Err(refused) = outcome {
                    self.gateway.metering().refused(tool, &refused);
                    return Err(too_many(message["id"].clone(), &refused));
                }
            }
        }
        let mut request = Request::from_parts(parts, Body::from(bytes));
        if let Some(admitted) = admitted {
            request.extensions_mut().insert(admitted);
        }
        Ok(request)
    }

    /// The step-up answer: `403 insufficient_scope` with the scope to ask
    /// for (a plain `403` when only group membership would allow it).
    fn forbidden(&self, id: Value, tool: &str, caller: &Caller) -> Response {
        let alternatives = caller.scopes_to_call(tool);
        let message = if alternatives.is_empty() {
            format!("you may not call `{tool}`")
        } else {
            let list = alternatives.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ");
            format!("calling `{tool}` needs one of the scopes {list}")
        };
        let mut response = refuse(StatusCode::FORBIDDEN, id, &message);
        if let Some(scope) = caller.scope_to_ask(tool)
            && let Ok(value) = HeaderValue::from_str(&self.auth.insufficient_scope(&scope))
        {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// The tool a JSON-RPC message calls, if it is a `tools/call`.
fn called_tool(message: &Value) -> Option<&str> {
    (message["method"] == "tools/call").then(|| message["params"]["name"].as_str().unwrap_or_default())
}

/// `429` with `Retry-After`, and as its body the `isError` result that
/// says which quota (what the MCP layer would answer).
fn too_many(id: Value, refused: &QuotaRefusal) -> Response {
    let result = serde_json::to_value(super::mcp::over_quota(refused)).unwrap_or(Value::Null);
    let body = json!({"jsonrpc": "2.0", "id": id, "result": result});
    let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(refused.retry_seconds()));
    response
}

fn refuse(status: StatusCode, id: Value, message: &str) -> Response {
    let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32001, "message": message}});
    (status, axum::Json(body)).into_response()
}

async fn guard(State(edge): State<Arc<Edge>>, request: Request, next: Next) -> Response {
    let caller = match edge.auth.identify(bearer_token(request.headers())).await {
        Ok(caller) => caller,
        Err(error) => return edge.unauthorized(&error),
    };
    if !edge.allow(&caller.name) {
        return refuse(StatusCode::TOO_MANY_REQUESTS, Value::Null, "rate limit exceeded; slow down");
    }
    let metering = edge.gateway.metering();
    let quotas = metering.quotas();
    let read_calls = matches!(caller.access, Access::Claims { .. }) || quotas.is_some();
    let mut request = if read_calls && *request.method() == Method::POST {
        match edge.check_calls(&caller, quotas, request).await {
            Ok(request) => request,
            Err(refused) => return refused,
        }
    } else {
        request
    };
    let session = request.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(id) = &session
        && !edge.sessions.lock().unwrap_or_else(|e| e.into_inner()).allows(id, &caller.name)
    {
        // As for a session that ended: the client starts a new one.
        return refuse(StatusCode::NOT_FOUND, Value::Null, "no such session for this caller");
    }
    let name = caller.name.clone();
    let closing = *request.method() == Method::DELETE;
    request.extensions_mut().insert(caller);
    let response = next.run(request).await;
    let mut sessions = edge.sessions.lock().unwrap_or_else(|e| e.into_inner());
    match &session {
        Some(id) if closing && response.status().is_success() => sessions.closed(id),
        Some(id) if response.status() == StatusCode::NOT_FOUND => sessions.closed(id),
        Some(_) => {}
        None => {
            if let Some(id) = response.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()) {
                sessions.opened(id, &name);
            }
        }
    }
    drop(sessions);
    response
}

/// The header that names a legacy MCP session.
const SESSION_HEADER: &str = "mcp-session-id";

/// The `/mcp` routes over `gateway`, `/metrics`, and with OAuth on the
/// protected resource metadata. Fails on an OAuth setting that cannot work
/// (an issuer that is not an `https://` URL).
pub fn router(gateway: Gateway, config: McpHttpConfig) -> Result<Router, String> {
    let rmcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(config.allowed_hosts.clone())
        .with_allowed_origins(config.allowed_origins.clone())
        .with_max_request_body_bytes(config.max_body)
        .with_json_response(true);
    let sessions = gateway.clone();
    let service: StreamableHttpService<Gateway, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(sessions.clone()), Arc::new(LocalSessionManager::default()), rmcp_config);
    let auth = Authenticator::new(&config.api_keys, config.oauth.as_ref(), config.access.clone())?;
    let metadata = auth.resource_metadata();
    let allowed = (config.allowed_hosts.clone(), config.allowed_origins.clone());
    let listings = super::listings::Listings::new(
        gateway.clone(),
        config.public_url.clone(),
        (auth.required(), config.oauth.is_some()),
        allowed.0.clone(),
    );
    let a2a = super::a2a::A2a::new(
        gateway.clone(),
        config.public_url.clone(),
        (auth.required(), config.max_body),
        allowed.clone(),
    );
    let edge = Arc::new(Edge {
        auth,
        gateway: gateway.clone(),
        rate_per_minute: config.rate_per_minute,
        max_body: config.max_body,
        buckets: Mutex::default(),
        sessions: Mutex::default(),
    });
    let mut router = Router::new()
        .nest_service("/mcp", service)
        .route("/metrics", axum::routing::get(metrics))
        .route("/usage", {
            let gateway = gateway.clone();
            axum::routing::get(move |request: Request| usage(gateway.clone(), request))
        })
        .route("/sessions", {
            let gateway = gateway.clone();
            axum::routing::get(move |request: Request| list_sessions(gateway.clone(), request))
        })
        .route(
            "/sessions/{tool}/{id}",
            axum::routing::delete(move |path, request: Request| close_session(gateway.clone(), path, request)),
        )
        .merge(a2a.endpoint())
        .layer(axum::middleware::from_fn_with_state(edge, guard))
        // Open to anyone: what a directory or another agent may know.
        .merge(listings.routes())
        .merge(a2a.card_route());
    if let Some(metadata) = metadata {
        // Read by clients before they have a token, from any origin.
        let serve = move || {
            let metadata = metadata.clone();
            async move { ([(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")], axum::Json(metadata)) }
        };
        router = router
            .route("/.well-known/oauth-protected-resource", axum::routing::get(serve.clone()))
            .route("/.well-known/oauth-protected-resource/mcp", axum::routing::get(serve));
    }
    Ok(router)
}

/// `GET /sessions`: the caller's open sessions (tool, id, node).
pub async fn list_sessions(gateway: Gateway, request: Request) -> Response {
    let caller = request.extensions().get::<Caller>().cloned().unwrap_or_else(Caller::nobody);
    match gateway.session_homes().list(&caller.name).await {
        Ok(homes) => {
            let sessions: Vec<Value> =
                homes.into_iter().map(|h| json!({"tool": h.tool, "id": h.id, "node": h.node})).collect();
            axum::Json(json!({ "sessions": sessions })).into_response()
        }
        Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, Value::Null, &e),
    }
}

/// `DELETE /sessions/{tool}/{id}`: closes the caller's session (its state
/// is gone; the next call naming it opens a new one). `404` when the
/// caller has no such session.
pub async fn close_session(
    gateway: Gateway,
    axum::extract::Path((tool, id)): axum::extract::Path<(String, String)>,
    request: Request,
) -> Response {
    let caller = request.extensions().get::<Caller>().cloned().unwrap_or_else(Caller::nobody);
    match gateway.session_homes().close(&caller.name, &tool, &id).await {
        Ok(Some(home)) => {
            // Freed now where the node is in this process; elsewhere at its idle TTL.
            gateway.invoker().close_session(&caller.name, &format!("{}#{}", home.id, home.tag));
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(None) => refuse(StatusCode::NOT_FOUND, Value::Null, &format!("you have no session `{id}` of `{tool}`")),
        Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, Value::Null, &e),
    }
}

/// `GET /metrics`: this process's metrics for Prometheus (behind the same
/// credentials as `/mcp`).
pub async fn metrics() -> Response {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], crate::metrics::global().encode()).into_response()
}

/// `GET /usage`: what each caller used of each tool, over every gateway
/// sharing this one's metering. A caller signed in with a token sees only
/// its own use; API keys (the operators' credential) and local callers
/// see everyone's.
pub async fn usage(gateway: Gateway, request: Request) -> Response {
    let caller = request.extensions().get::<Caller>().cloned().unwrap_or_else(Caller::nobody);
    match gateway.metering().report().await {
        Ok(mut rows) => {
            if caller.signed_in || !matches!(caller.access, Access::All) {
                rows.retain(|row| row.caller == caller.name);
            }
            axum::Json(json!({"usage": rows})).into_response()
        }
        Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, Value::Null, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs nothing.
    struct Nothing;

    impl crate::gateway::Invoker for Nothing {
        fn invoke(&self, _call: crate::gateway::Invocation) -> crate::gateway::InvokeFuture<'_> {
            Box::pin(async { Ok(crate::sandbox::CallOutput::unreserved(Vec::new())) })
        }
    }

    #[test]
    fn rate_limit_empties_and_refills() {
        let edge = |rate| Edge {
            auth: Authenticator::new(&[], None, None).unwrap(),
            gateway: Gateway::new(Arc::new(Nothing)),
            rate_per_minute: rate,
            max_body: 1 << 20,
            buckets: Mutex::default(),
            sessions: Mutex::default(),
        };
        let edge = edge(2);
        assert!(edge.allow("a"));
        assert!(edge.allow("a"));
        assert!(!edge.allow("a"));
        assert!(edge.allow("b"), "buckets are per caller");
        let unlimited = Edge { rate_per_minute: 0, ..edge };
        assert!((0..1000).all(|_| unlimited.allow("a")));
    }

    #[test]
    fn sessions_belong_to_whoever_opened_them() {
        let mut sessions = Sessions::default();
        sessions.opened("s1", "alice");
        sessions.opened("s1", "mallory");
        assert!(sessions.allows("s1", "alice"));
        assert!(!sessions.allows("s1", "mallory"), "the first opener keeps it");
        assert!(!sessions.allows("s2", "alice"), "an id nobody opened here");
        // One caller opening many pushes out only its own.
        for n in 0..2 * MAX_SESSIONS_PER_CALLER {
            sessions.opened(&format!("x{n}"), "bob");
        }
        assert!(sessions.allows("s1", "alice"), "another caller's session stays");
        assert!(!sessions.allows("x0", "bob") && sessions.allows("x1999", "bob"));
        assert_eq!(sessions.owners.len(), MAX_SESSIONS_PER_CALLER + 1);
        sessions.closed("s1");
        assert!(!sessions.allows("s1", "alice"), "a closed session is forgotten");
        // Past the overall cap, the oldest go.
        for caller in 0..(MAX_SESSIONS / MAX_SESSIONS_PER_CALLER + 1) {
            for n in 0..MAX_SESSIONS_PER_CALLER {
                sessions.opened(&format!("c{caller}-{n}"), &format!("caller{caller}"));
            }
        }
        assert!(sessions.owners.len() <= MAX_SESSIONS && sessions.order.len() <= 2 * MAX_SESSIONS);
        assert!(!sessions.allows("x1999", "bob"));
    }
}
