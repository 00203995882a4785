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
use super::catalog::CatalogTool;
use super::invoker::{Invocation, InvokeError};
use crate::sandbox::{Progress, SandboxError, mcp_error_result, mcp_result};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, GetPromptRequestMethod, GetPromptRequestParams,
    GetPromptResponse, Implementation, ListPromptsRequestMethod, ListPromptsResult, ListResourceTemplatesRequestMethod,
    ListResourceTemplatesResult, ListResourcesRequestMethod, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ProgressToken, ReadResourceRequestMethod,
    ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig, SubscriptionFilter, Tool,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Instant;

/// Who made a call, for the audit log: set by the HTTP layer from the API
/// key (never the key itself), `stdio` otherwise.
#[derive(Debug, Clone)]
pub struct Caller(pub String);

/// The MCP description of a catalog tool.
pub fn mcp_tool(tool: &CatalogTool) -> Option<Tool> {
    let d = &tool.descriptor;
    let mut out = Map::new();
    out.insert("name".into(), json!(tool.name));
    if let Some(title) = d["annotations"]["title"].as_str() {
        out.insert("title".into(), json!(title));
    }
    out.insert("description".into(), d["description"].clone());
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

fn to_result(value: Value) -> Result<CallToolResponse, McpError> {
    let mut result = serde_json::from_value::<CallToolResult>(value)
        .map_err(|e| McpError::internal_error(format!("cannot build the result: {e}"), None))?;
    // As `CallToolResult::success` does; rmcp drops it for legacy versions.
    result.result_type = Some(rmcp::model::ResultType::COMPLETE);
    Ok(result.into())
}

/// A progress sink that forwards reports to the client under `token`, and
/// the task doing it: await it after the call (the sink dropped) so every
/// report is sent before the result.
fn progress_relay(
    context: &RequestContext<RoleServer>,
    token: ProgressToken,
) -> (crate::sandbox::ProgressSink, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
    let peer = context.peer.clone();
    let relay = tokio::spawn(async move {
        while let Some(p) = rx.recv().await {
            let param = json!({"progressToken": token, "progress": p.done, "total": p.total, "message": p.message});
            let Ok(param) = serde_json::from_value::<ProgressNotificationParam>(param) else { continue };
            if peer.notify_progress(param).await.is_err() {
                break;
            }
        }
    });
    let sink: crate::sandbox::ProgressSink = Arc::new(move |p| {
        let _ = tx.send(p);
    });
    (sink, relay)
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
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let catalog = self.catalog();
        Ok(ListToolsResult::with_all_items(catalog.tools().filter_map(|t| mcp_tool(t)).collect()))
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
        self.catalog().get(name).and_then(|t| mcp_tool(t))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let catalog = self.catalog();
        let Some(tool) = catalog.get(&request.name).cloned() else {
            return Err(McpError::invalid_params(format!("unknown tool `{}`", request.name), None));
        };
        let arguments = Value::Object(request.arguments.unwrap_or_default()).to_string();
        let token =
            request.meta.as_ref().and_then(|m| m.get_progress_token()).or_else(|| context.meta.get_progress_token());
        let (progress, relay) = token.map(|token| progress_relay(&context, token)).unzip();
        let caller = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Caller>())
            .map_or_else(|| "stdio".to_owned(), |c| c.0.clone());
        let call_id = self.next_call_id();
        let invocation = Invocation {
            repository: tool.repository.clone(),
            digest: tool.digest,
            tool: tool.tool.clone(),
            arguments,
            progress,
            call_id: call_id.clone(),
        };
        let started = Instant::now();
        let outcome = tokio::select! {
            _ = context.ct.cancelled() => None,
            outcome = self.invoker().invoke(invocation) => Some(outcome),
        };
        if let Some(relay) = relay {
            // The sink went with the finished call; the relay ends once drained.
            let _ = relay.await;
        }
        let outcome_text = match &outcome {
            None => "cancelled".to_owned(),
            Some(Ok(_)) => "ok".to_owned(),
            Some(Err(InvokeError::Fetch { .. })) => "fetch_failed".to_owned(),
            Some(Err(InvokeError::Sandbox(e))) => e.kind().to_owned(),
        };
        tracing::info!(
            target: "toolmesh::audit",
            call = %call_id,
            caller,
            tool = %tool.name,
            digest = %tool.digest,
            ms = started.elapsed().as_secs_f64() * 1000.0,
            outcome = outcome_text,
            "call"
        );
        match outcome {
            None => Err(McpError::internal_error("the call was cancelled", None)),
            Some(Ok(content)) => {
                let result = mcp_result(&content);
                let schema = &tool.descriptor["output_schema"];
                match result.get("structuredContent") {
                    Some(structured) if schema.is_object() => match super::schema::violation(schema, structured) {
                        None => to_result(result),
                        Some(problem) => to_result(mcp_error_result(&format!(
                            "tool returned structured content that does not match its output schema: {problem}"
                        ))),
                    },
                    // A tool that declares an output schema must return structured content.
                    None if schema.is_object() => {
                        to_result(mcp_error_result("tool declares an output schema but returned no structured content"))
                    }
                    _ => to_result(result),
                }
            }
            Some(Err(InvokeError::Sandbox(SandboxError::InvalidArguments(message)))) => {
                Err(McpError::invalid_params(format!("invalid arguments for `{}`: {message}", tool.name), None))
            }
            Some(Err(InvokeError::Sandbox(e))) if e.is_tool_failure() => to_result(mcp_error_result(&e.to_string())),
            Some(Err(e)) => {
                tracing::error!(call = %call_id, error = %e, "call failed in the host");
                Err(McpError::internal_error(e.to_string(), None))
            }
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
