//! The MCP face of the gateway: one `ServerHandler` whose tool list is the
//! catalog. This is the only module that speaks rmcp.
//!
//! - `tools/list` is the catalog; `tools/call` runs the tool's pinned digest
//!   through the [`Invoker`].
//! - Structured results are checked against the tool's output schema.
//! - A tool's failure or a sandbox limit is an `isError: true` result the
//!   model sees; an unknown tool or arguments the tool refuses are protocol
//!   errors (`-32602`), as the spec says.
//! - Progress from the tool is relayed when the request has a progress token;
//!   a cancelled request (closed stream, `notifications/cancelled`) drops the
//!   call, which stops the sandbox at its next epoch tick.
//! - `notifications/tools/list_changed` reaches legacy sessions and
//!   2026-07-28 `subscriptions/listen` streams whenever the catalog changes.

use super::Gateway;
use super::call::{CallRefusal, CallRequest};
use super::catalog::{Catalog, CatalogTool};
use super::inner::Nesting;
use super::search::{SEARCH_TOOL, ToolSearch};
use crate::auth::Caller;
use crate::capability::progress::{ProgressQueue, QUEUE_LEN};
use crate::sandbox::{Content, ProgressSink};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetPromptRequestMethod,
    GetPromptRequestParams, GetPromptResponse, Implementation, ListPromptsRequestMethod, ListPromptsResult,
    ListResourceTemplatesRequestMethod, ListResourceTemplatesResult, ListResourcesRequestMethod, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ProgressToken, ReadResourceRequestMethod,
    ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig, SubscriptionFilter, Tool,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The caller of a request: set by the HTTP layer ([`crate::auth`]); a
/// stdio client may call everything.
fn caller_of(context: &RequestContext<RoleServer>) -> Caller {
    match context.extensions.get::<axum::http::request::Parts>() {
        // An HTTP request the edge did not identify may call nothing.
        Some(parts) => parts.extensions.get::<Caller>().cloned().unwrap_or_else(Caller::nobody),
        None => Caller::unrestricted("stdio"),
    }
}

/// The MCP descriptions of a catalog's tools, made once per catalog (the
/// HTTP layer asks for a tool's on every request).
#[derive(Debug, Default)]
pub struct ToolList {
    tools: BTreeMap<String, Tool>,
}

impl ToolList {
    /// The descriptions of `catalog`'s tools, by name; a tool whose
    /// descriptor does not make a valid MCP tool is left out, with a warning.
    pub fn build(catalog: &Catalog) -> Self {
        ToolList { tools: catalog.tools().filter_map(|t| Some((t.name.clone(), mcp_tool(t)?))).collect() }
    }
}

/// The `_meta` key of each listed tool that holds what it requests (the
/// published, versioned request document).
pub const REQUESTS_META: &str = "dev.toolmesh/requests";

/// The MCP description of a catalog tool.
pub fn mcp_tool(tool: &CatalogTool) -> Option<Tool> {
    let d = &tool.descriptor;
    let mut out = Map::new();
    out.insert("name".into(), json!(tool.name));
    if let Some(title) = d["annotations"]["title"].as_str() {
        out.insert("title".into(), json!(title));
    }
    // What the tool asks of the node, in words a model and a person read
    // with the description, and typed in `_meta` for clients that show it.
    let requests = tool.permissions.describe();
    let description = match (d["description"].as_str(), requests.is_empty()) {
        (Some(text), false) => json!(format!("{text}\n\nRequests: {}.", requests.join("; "))),
        (None, false) => json!(format!("Requests: {}.", requests.join("; "))),
        (_, true) => d["description"].clone(),
    };
    out.insert("description".into(), description);
    out.insert("_meta".into(), json!({ REQUESTS_META: &tool.permissions }));
    out.insert("inputSchema".into(), d["input_schema"].clone());
    if d["output_schema"].is_object() {
        out.insert("outputSchema".into(), d["output_schema"].clone());
    }
    if let Some(annotations) = d["annotations"].as_object().filter(|a| !a.is_empty()) {
        out.insert("annotations".into(), Value::Object(annotations.clone()));
    }
    serde_json::from_value(Value::Object(out))
        .inspect_err(|e| tracing::warn!(tool = %tool.name, error = %e, "tool left out of the list: bad descriptor"))
        .ok()
}

/// The MCP description of `search_tools`.
fn search_tool() -> Option<Tool> {
    serde_json::from_value(ToolSearch::tool())
        .inspect_err(|e| tracing::error!(error = %e, "search_tools has a bad description"))
        .ok()
}

/// The MCP result of a successful call: every item as content (JSON items
/// also as text, for clients without structured content), and
/// `structuredContent` when the result holds exactly one JSON object.
pub fn call_result(content: Vec<Content>) -> CallToolResult {
    let structured = structured_content(&content).cloned();
    let blocks = content
        .into_iter()
        .map(|item| match item {
            Content::Text(text) => ContentBlock::text(text),
            Content::Json(value) => ContentBlock::text(value.to_string()),
            Content::Image { data, mime_type } => ContentBlock::image(BASE64.encode(data), mime_type),
        })
        .collect();
    let mut result = CallToolResult::success(blocks);
    result.structured_content = structured;
    result
}

/// The structured content of a result: its one JSON object, if it holds
/// exactly one.
pub fn structured_content(content: &[Content]) -> Option<&Value> {
    let mut objects = content.iter().filter_map(|c| match c {
        Content::Json(value @ Value::Object(_)) => Some(value),
        _ => None,
    });
    match (objects.next(), objects.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

/// The MCP result of a call that failed: the reason as text, with
/// `isError: true`, so the model can see it and react.
pub fn error_result(message: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

/// The answer to a call its caller's quota does not allow: an `isError`
/// result saying which quota and when to try again (the HTTP edge sends
/// it with `429` and `Retry-After`).
pub fn over_quota(refused: &crate::usage::QuotaRefusal) -> CallToolResult {
    let mut result = error_result(&refused.to_string());
    result.meta = serde_json::from_value(json!({
        "dev.toolmesh/quota": {"quota": refused.quota.as_str(), "retryAfterSeconds": refused.retry_seconds()}
    }))
    .ok();
    result
}

/// [`call_result`] as JSON (for `tool run --json`).
pub fn mcp_result(content: Vec<Content>) -> Value {
    serde_json::to_value(call_result(content)).unwrap_or(Value::Null)
}

/// [`error_result`] as JSON (for `tool run --json`).
pub fn mcp_error_result(message: &str) -> Value {
    serde_json::to_value(error_result(message)).unwrap_or(Value::Null)
}

/// Progress notifications sent to one client per second, at most, after
/// the first [`QUEUE_LEN`] (reports in between are coalesced, latest wins).
const PROGRESS_PER_SECOND: f64 = 20.0;

/// How long the reports still queued when a call ends may take to send
/// before the result goes out regardless.
const PROGRESS_FLUSH: Duration = Duration::from_millis(100);

/// Relays a call's progress reports to the client under `token`: bounded
/// and coalescing ([`ProgressQueue`]), rate-limited, and never in the way
/// of the call or its result.
struct ProgressRelay {
    queue: Arc<ProgressQueue>,
    task: tokio::task::JoinHandle<()>,
}

impl ProgressRelay {
    fn start(context: &RequestContext<RoleServer>, token: ProgressToken) -> Self {
        let queue = ProgressQueue::new();
        let peer = context.peer.clone();
        let source = queue.clone();
        let task = tokio::spawn(async move {
            // A token bucket: a burst of a queue's length, then a steady rate.
            let capacity = QUEUE_LEN as f64;
            let (mut tokens, mut last) = (capacity, tokio::time::Instant::now());
            while let Some(p) = source.next().await {
                let now = tokio::time::Instant::now();
                tokens = (tokens + now.duration_since(last).as_secs_f64() * PROGRESS_PER_SECOND).min(capacity);
                last = now;
                // Once the call has ended, what is left goes out at once.
                if tokens < 1.0 && !source.is_closed() {
                    tokio::time::sleep(Duration::from_secs_f64((1.0 - tokens) / PROGRESS_PER_SECOND)).await;
                    tokens = 1.0;
                    last = tokio::time::Instant::now();
                }
                tokens -= 1.0;
                let param = json!({"progressToken": token, "progress": p.done, "total": p.total, "message": p.message});
                let Ok(param) = serde_json::from_value::<ProgressNotificationParam>(param) else { continue };
                if peer.notify_progress(param).await.is_err() {
                    break;
                }
            }
        });
        ProgressRelay { queue, task }
    }

    fn sink(&self) -> ProgressSink {
        self.queue.sink()
    }

    /// After the call: sends what is still queued (at most [`QUEUE_LEN`]
    /// reports, without waiting for the rate), within [`PROGRESS_FLUSH`].
    async fn finish(self) {
        self.queue.close();
        let ProgressRelay { queue, mut task } = self;
        if tokio::time::timeout(PROGRESS_FLUSH, &mut task).await.is_err() {
            task.abort();
        }
        if queue.coalesced() > 0 {
            tracing::debug!(coalesced = queue.coalesced(), "progress reports coalesced");
        }
    }
}

impl ServerHandler for Gateway {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_tool_list_changed().build())
            .with_server_info(Implementation::new("toolmesh", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "toolmesh runs shared tools as WebAssembly components in a sandbox. Tool names are \
                 <namespace>.<package>.<tool>; every call runs the exact published version.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        // Each caller sees what it may call.
        let caller = caller_of(&context);
        let list = self.tool_list();
        let search = self.tool_search();
        let tools = list
            .tools
            .iter()
            .filter(|(name, _)| caller.may_call(name) && search.as_ref().is_none_or(|s| s.lists(name)))
            .map(|(_, t)| t.clone());
        let first = search.as_ref().and_then(|_| search_tool());
        Ok(ListToolsResult::with_all_items(first.into_iter().chain(tools).collect()))
    }

    // toolmesh serves tools only: say so, rather than answer with empty
    // lists for capabilities discovery does not declare.
    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Err(McpError::method_not_found::<ListPromptsRequestMethod>())
    }

    async fn get_prompt(
        &self,
        _request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        Err(McpError::method_not_found::<GetPromptRequestMethod>())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Err(McpError::method_not_found::<ListResourcesRequestMethod>())
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Err(McpError::method_not_found::<ListResourceTemplatesRequestMethod>())
    }

    async fn read_resource(
        &self,
        _request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        Err(McpError::method_not_found::<ReadResourceRequestMethod>())
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        // Asked on every HTTP request (to check `Mcp-Param-*` headers).
        if name == SEARCH_TOOL && self.tool_search().is_some() {
            return search_tool();
        }
        self.tool_list().tools.get(name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        // Admitted by the HTTP edge already, or by the call (stdio, batches).
        let admitted = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<crate::usage::AdmittedCall>())
            .and_then(crate::usage::AdmittedCall::take);
        if request.name == SEARCH_TOOL && self.tool_search().is_some() {
            let arguments = request.arguments.unwrap_or_default();
            return match ToolSearch::answer(&self.catalog(), &caller_of(&context), &arguments) {
                Ok((found, text)) => {
                    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
                    result.structured_content = Some(found);
                    Ok(result.into())
                }
                Err(problem) => {
                    Err(McpError::invalid_params(format!("invalid arguments for `{SEARCH_TOOL}`: {problem}"), None))
                }
            };
        }
        let token =
            request.meta.as_ref().and_then(|m| m.get_progress_token()).or_else(|| context.meta.get_progress_token());
        let relay = token.map(|token| ProgressRelay::start(&context, token));
        let cancel = context.ct.clone();
        let call = CallRequest {
            caller: caller_of(&context),
            name: request.name.to_string(),
            arguments: request.arguments.unwrap_or_default(),
            admitted,
            progress: relay.as_ref().map(ProgressRelay::sink),
            cancelled: Box::pin(async move { cancel.cancelled().await }),
            nesting: Nesting::default(),
        };
        let outcome = self.run_call(call).await;
        if let Some(relay) = relay {
            relay.finish().await;
        }
        match outcome {
            Ok(result) => Ok(result.into()),
            Err(CallRefusal::UnknownTool(message) | CallRefusal::InvalidArguments(message)) => {
                Err(McpError::invalid_params(message, None))
            }
            // The HTTP layer answers these with a 403 first; this holds for any transport.
            Err(CallRefusal::NotAllowed { tool, scopes }) => {
                Err(McpError::invalid_request(format!("you may not call `{tool}`"), Some(json!({"scopes": scopes}))))
            }
            Err(CallRefusal::Cancelled) => Err(McpError::internal_error("the call was cancelled", None)),
            Err(CallRefusal::Retryable(message)) => {
                Err(McpError::internal_error(message, Some(json!({"retryable": true}))))
            }
            Err(CallRefusal::Internal(message)) => Err(McpError::internal_error(message, None)),
        }
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        // A legacy session: tell it when the tool list changes, until it goes away.
        let mut changes = self.subscribe();
        let peer = context.peer.clone();
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                if peer.notify_tool_list_changed().await.is_err() {
                    break;
                }
            }
        });
    }

    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        Some(requested.supported_by(&self.get_info().capabilities))
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let mut changes = self.subscribe();
        let wants_tools = context.accepted().tools_list_changed == Some(true);
        loop {
            tokio::select! {
                _ = context.cancelled() => return Ok(()),
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    if wants_tools && context.sink().notify_tool_list_changed().await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_json_object_is_structured_content() {
        let r = mcp_result(vec![Content::Json(json!({"a": 1}))]);
        assert_eq!(r["structuredContent"], json!({"a": 1}));
        assert_eq!(r["content"][0], json!({"type": "text", "text": "{\"a\":1}"}));
        assert_eq!(r["isError"], false);
        let r = mcp_result(vec![
            Content::Text("hi".into()),
            Content::Image { data: vec![1, 2], mime_type: "image/png".into() },
        ]);
        assert!(r.get("structuredContent").is_none());
        assert_eq!(r["content"][1], json!({"type": "image", "data": "AQI=", "mimeType": "image/png"}));
        let two = mcp_result(vec![Content::Json(json!({"a": 1})), Content::Json(json!({"b": 2}))]);
        assert!(two.get("structuredContent").is_none(), "two objects: none is the structured result");
        let e = mcp_error_result("boom");
        assert_eq!((e["content"][0]["text"].as_str(), e["isError"].as_bool()), (Some("boom"), Some(true)));
    }
}
