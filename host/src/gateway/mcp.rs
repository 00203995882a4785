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
//! - `prompts/*` and `resources/*` serve the packages' prompts and
//!   resources ([`super::offers`]), run on nodes like calls
//!   ([`super::reads`]), and each package's documentation.
//! - Lists and reads carry caching hints (`ttlMs`, `cacheScope`): fresh
//!   for no time, since a publish changes them, and private, since each
//!   caller sees what it may use.
//! - `notifications/{tools,prompts,resources}/list_changed` reach legacy
//!   sessions and 2026-07-28 `subscriptions/listen` streams whenever the
//!   catalog changes, and `notifications/resources/updated` those
//!   subscribed to a resource that changed ([`super::listen`]).

use super::Gateway;
use super::call::{CallRefusal, CallRequest};
use super::catalog::{Catalog, CatalogTool};
use super::inner::Nesting;
use super::questions::{self, Asked, Questioned, Round};
use super::reads::ReadRefusal;
use super::search::{SEARCH_TOOL, ToolSearch};
use super::tasks::{self, TaskSupport};
use crate::auth::Caller;
use crate::capability::progress::{ProgressQueue, QUEUE_LEN};
use crate::sandbox::{Content, ProgressSink};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetPromptRequestParams,
    GetPromptResponse, GetPromptResult, Implementation, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ProgressToken,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, ResultType, ServerCapabilities, ServerConfig,
    SubscribeRequestParams, SubscriptionFilter, Tool, UnsubscribeRequestParams,
};
use rmcp::model::{
    CancelTaskParams, ClientCapabilities, CreateTaskResult, GetTaskParams, GetTaskResult, UpdateTaskParams,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The caller of a request: set by the HTTP layer ([`crate::auth`]); a
/// stdio client may call everything.
pub(crate) fn caller_of(context: &RequestContext<RoleServer>) -> Caller {
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

    /// Every tool's description, by name.
    pub fn tools(&self) -> impl Iterator<Item = &Tool> {
        self.tools.values()
    }
}

/// The `_meta` key of each listed tool that holds what it requests (the
/// published, versioned request document).
pub const REQUESTS_META: &str = "dev.toolmesh/requests";

/// The `_meta` key of each listed tool that says whether its calls run as
/// tasks (`optional` or `required`), when they may.
pub const TASKS_META: &str = "dev.toolmesh/taskSupport";

/// The `_meta` key of a bridged server's listed tool that says where it
/// runs and how it is contained.
pub const BRIDGE_META: &str = "dev.toolmesh/bridge";

/// How a bridged tool runs, in words: what contains it, which server on
/// which node.
pub fn bridged_words(bridged: &super::BridgedTool) -> String {
    format!(
        "{}; bridged MCP server `{}` on node `{}`",
        bridged.isolation.describe(),
        bridged.call.server,
        bridged.node_name
    )
}

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
    let mut description = match (d["description"].as_str(), requests.is_empty()) {
        (Some(text), false) => json!(format!("{text}\n\nRequests: {}.", requests.join("; "))),
        (None, false) => json!(format!("Requests: {}.", requests.join("; "))),
        (_, true) => d["description"].clone(),
    };
    if let Some(bridged) = &tool.bridged {
        // Not a wasm sandbox: said where a model and a person read it.
        let text = description.as_str().unwrap_or_default();
        description = json!(format!("{text}\n\nRuns as {}.", bridged_words(bridged)).trim_start());
    }
    out.insert("description".into(), description);
    let mut meta = json!({ REQUESTS_META: &tool.permissions });
    if let Some(bridged) = &tool.bridged {
        meta[BRIDGE_META] = json!({
            "node": bridged.node_name,
            "server": bridged.call.server,
            "isolation": bridged.isolation,
            "summary": bridged.isolation.describe(),
        });
    }
    // Whether calls run as tasks (MCP's tool description has no field for it yet).
    if let Some(support) = TaskSupport::of(&d["input_schema"]) {
        meta[TASKS_META] = support.as_str().into();
    }
    out.insert("_meta".into(), meta);
    // The keyword is for the gateway: the schema clients see goes without it.
    let mut input = d["input_schema"].clone();
    if let Some(schema) = input.as_object_mut() {
        schema.remove(tasks::TASK_KEYWORD);
    }
    out.insert("inputSchema".into(), input);
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
    let blocks = content.iter().filter(|c| !matches!(c, Content::Structured(_))).map(content_block).collect();
    let mut result = CallToolResult::success(blocks);
    result.structured_content = structured;
    result
}

/// The MCP content block of a result's item.
pub fn content_block(item: &Content) -> ContentBlock {
    match item {
        Content::Text(text) => ContentBlock::text(text.clone()),
        Content::Json(value) => ContentBlock::text(value.to_string()),
        Content::Image { data, mime_type } => ContentBlock::image(BASE64.encode(data), mime_type.clone()),
        Content::Audio { data, mime_type } => ContentBlock::audio(BASE64.encode(data), mime_type.clone()),
        other => serde_json::from_value(crate::sandbox::mcp_block(other)).unwrap_or_else(|e| {
            tracing::error!(error = %e, "a result's item has no MCP form");
            ContentBlock::text("[content this gateway could not encode]")
        }),
    }
}

/// The structured content of a result: its one JSON object, if it holds
/// exactly one.
pub fn structured_content(content: &[Content]) -> Option<&Value> {
    let mut objects = content.iter().filter_map(|c| match c {
        Content::Json(value @ Value::Object(_)) | Content::Structured(value @ Value::Object(_)) => Some(value),
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

/// How long a client may treat a list or a read as fresh (`ttlMs`): none,
/// since the catalog changes with any publish or yank (which
/// `list_changed` notifications announce) and resources are made afresh
/// on every read.
const LIST_TTL_MS: u64 = 0;

/// An rmcp value from JSON the gateway wrote.
fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, McpError> {
    serde_json::from_value(value).map_err(|e| McpError::internal_error(format!("cannot encode the answer: {e}"), None))
}

/// The MCP error for a read or prompt that produced nothing: an unknown
/// resource is `-32602` with its `uri` (SEP-2164).
fn read_error(refusal: ReadRefusal, what: &str, name: &str) -> McpError {
    match refusal {
        ReadRefusal::NotFound(message) if what == "resource" => {
            McpError::invalid_params(format!("Resource not found: {message}"), Some(json!({"uri": name})))
        }
        ReadRefusal::NotFound(message) | ReadRefusal::InvalidArguments(message) => {
            McpError::invalid_params(message, None)
        }
        ReadRefusal::NotAllowed { name } => McpError::invalid_request(format!("you may not use `{name}`"), None),
        ReadRefusal::Failed(message) | ReadRefusal::OverQuota(message) => McpError::internal_error(message, None),
        ReadRefusal::Cancelled => McpError::internal_error(format!("the {what} read was cancelled"), None),
        ReadRefusal::Retryable(message) => McpError::internal_error(message, Some(json!({"retryable": true}))),
        ReadRefusal::InputRequired(_) => McpError::internal_error("the questions were not asked", None),
        ReadRefusal::MissingCapability(missing) => missing_capability(&missing),
    }
}

/// The MCP error for a call that produced no result.
pub(crate) fn call_error(refusal: CallRefusal) -> McpError {
    match refusal {
        CallRefusal::UnknownTool(message) | CallRefusal::InvalidArguments(message) => {
            McpError::invalid_params(message, None)
        }
        // The HTTP layer answers these with a 403 first; this holds for any transport.
        CallRefusal::NotAllowed { tool, scopes } => {
            McpError::invalid_request(format!("you may not call `{tool}`"), Some(json!({"scopes": scopes})))
        }
        CallRefusal::Cancelled => McpError::internal_error("the call was cancelled", None),
        CallRefusal::Retryable(message) => McpError::internal_error(message, Some(json!({"retryable": true}))),
        CallRefusal::Internal(message) => McpError::internal_error(message, None),
        CallRefusal::InputRequired(_) => McpError::internal_error("the questions were not asked", None),
        CallRefusal::MissingCapability(missing) => missing_capability(&missing),
    }
}

/// `-32021`: the request needs client capabilities the client did not
/// declare (`error.data.requiredCapabilities`).
fn missing_capability(missing: &[String]) -> McpError {
    let required: Map<String, Value> = missing.iter().map(|name| (name.clone(), json!({}))).collect();
    match serde_json::from_value(Value::Object(required)) {
        Ok(capabilities) => McpError::missing_required_client_capability(capabilities),
        Err(e) => McpError::internal_error(format!("missing client capabilities {missing:?}: {e}"), None),
    }
}

/// `-32602` for a task id this caller has no task of.
fn unknown_task(id: &str) -> McpError {
    McpError::invalid_params(format!("no task `{id}`"), Some(json!({"taskId": id})))
}

/// How long a call of a tool that requires a task may take to ask its
/// first questions (answered by an `input_required` result) before it
/// becomes a task.
const TASK_GRACE: Duration = Duration::from_millis(300);

impl Gateway {
    /// Runs a call of a tool that may run as a task, for a client that
    /// polls: an optional one becomes a task at once; a required one first
    /// asks what it asks at its start, then becomes a task.
    async fn call_as_task(
        &self,
        request: CallToolRequestParams,
        context: &RequestContext<RoleServer>,
        support: TaskSupport,
    ) -> Result<CallToolResponse, McpError> {
        let caller = caller_of(context);
        let arguments = request.arguments.unwrap_or_default();
        let abilities = questions::abilities(context.client_capabilities().as_ref());
        let name = request.name.to_string();
        let questioned = Questioned {
            context,
            method: "tools/call",
            name: &name,
            arguments: Value::Object(arguments.clone()),
            responses: request.input_responses,
            state: request.request_state,
        };
        let asked = self
            .with_questions(questioned, |ask| {
                let (caller, name, arguments) = (caller.clone(), name.clone(), arguments.clone());
                async move {
                    let answers = ask.answers().clone();
                    let record = tasks::new_record(&caller, &name, arguments.clone(), abilities, answers.clone());
                    let durable = |e: crate::usage::store::StoreError| {
                        McpError::internal_error(format!("cannot make the task: {e}"), Some(json!({"retryable": true})))
                    };
                    if support == TaskSupport::Optional {
                        let record = self.start_task(&caller, record, None).await.map_err(durable)?;
                        return Ok(Round::Done(record));
                    }
                    let gateway = self.clone();
                    let (latest, sink) = tasks::latest_progress();
                    let mut run = tokio::spawn(async move {
                        gateway.run_once(&caller, (&name, &arguments), abilities, answers, Some(sink)).await
                    });
                    match tokio::time::timeout(TASK_GRACE, &mut run).await {
                        Ok(Ok(tasks::Ran::Asks(asked))) => Ok(Round::Asks(asked)),
                        Ok(Ok(ran)) => Ok(Round::Done(
                            self.start_task(&caller_of(context), record, Some(ran)).await.map_err(durable)?,
                        )),
                        Ok(Err(e)) => Err(McpError::internal_error(format!("the call stopped: {e}"), None)),
                        Err(_) => {
                            Ok(Round::Done(self.start_task_running(record, (run, latest)).await.map_err(durable)?))
                        }
                    }
                }
            })
            .await?;
        match asked {
            Asked::Done(record) => Ok(CallToolResponse::Task(CreateTaskResult::new(tasks::mcp_task(&record)))),
            Asked::InputRequired(input) => Ok(input.into()),
        }
    }
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
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_resources()
            .enable_resources_list_changed()
            .enable_resources_subscribe()
            .enable_tasks()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("toolmesh", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "toolmesh runs shared tools as WebAssembly components in a sandbox. Tool and prompt names \
                 are <namespace>.<package>.<name>; every call runs the exact published version. Each \
                 package's documentation is the resource toolmesh://<namespace>/<package>/README.md.",
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
        Ok(ListToolsResult::with_all_items(first.into_iter().chain(tools).collect())
            .with_ttl_ms(LIST_TTL_MS)
            .with_cache_scope(CacheScope::Private))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let caller = caller_of(&context);
        let catalog = self.catalog();
        let prompts = catalog
            .offers()
            .prompts()
            .filter(|(name, _, _)| caller.may_call(name))
            .map(|(name, _, prompt)| {
                let mut listed = serde_json::to_value(prompt).unwrap_or_default();
                listed["name"] = name.into();
                listed
            })
            .collect();
        Ok(ListPromptsResult::with_all_items(from_json(Value::Array(prompts))?)
            .with_ttl_ms(LIST_TTL_MS)
            .with_cache_scope(CacheScope::Private))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let caller = caller_of(&context);
        let arguments = request.arguments.unwrap_or_default();
        let questioned = Questioned {
            context: &context,
            method: "prompts/get",
            name: &request.name,
            arguments: Value::Object(arguments.clone()),
            responses: request.input_responses,
            state: request.request_state,
        };
        let asked = self
            .with_questions(questioned, |ask| {
                let cancel = context.ct.clone();
                let (caller, name, arguments) = (&caller, &request.name, arguments.clone());
                async move {
                    let cancelled = Box::pin(async move { cancel.cancelled().await });
                    match self.get_prompt(caller, name, arguments, Some(ask), cancelled).await {
                        Ok(prompt) => Ok(Round::Done(prompt)),
                        Err(ReadRefusal::InputRequired(asked)) => Ok(Round::Asks(asked)),
                        Err(refusal) => Err(read_error(refusal, "prompt", name)),
                    }
                }
            })
            .await?;
        match asked {
            Asked::Done(prompt) => {
                let mut result: GetPromptResult = from_json(prompt)?;
                result.result_type = Some(ResultType::COMPLETE);
                Ok(result.into())
            }
            Asked::InputRequired(input) => Ok(input.into()),
        }
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let caller = caller_of(&context);
        let catalog = self.catalog();
        let mut resources = Vec::new();
        for package in catalog.offers().packages() {
            if !package.bare && self.package_visible(&caller, package) {
                resources.push(json!({
                    "uri": package.docs_uri(),
                    "name": package.name(super::offers::DOCS),
                    "title": format!("{} documentation", package.repository),
                    "description": format!(
                        "What {} {} does, who published it, what it asks of nodes, its tools, resources and prompts.",
                        package.repository, package.version
                    ),
                    "mimeType": "text/markdown",
                }));
            }
            for resource in &package.offer.resources {
                let name = package.name(&resource.name);
                if caller.may_call(&name) {
                    let mut listed = serde_json::to_value(resource).unwrap_or_default();
                    listed["uri"] = package.uri(&resource.uri).into();
                    listed["name"] = name.into();
                    resources.push(listed);
                }
            }
        }
        Ok(ListResourcesResult::with_all_items(from_json(Value::Array(resources))?)
            .with_ttl_ms(LIST_TTL_MS)
            .with_cache_scope(CacheScope::Private))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let caller = caller_of(&context);
        let catalog = self.catalog();
        let templates = catalog
            .offers()
            .packages()
            .flat_map(|package| package.offer.templates.iter().map(move |template| (package, template)))
            .filter(|(package, template)| caller.may_call(&package.name(&template.name)))
            .map(|(package, template)| {
                let mut listed = serde_json::to_value(template).unwrap_or_default();
                listed["uriTemplate"] = package.uri(&template.uri_template).into();
                listed["name"] = package.name(&template.name).into();
                listed
            })
            .collect();
        Ok(ListResourceTemplatesResult::with_all_items(from_json(Value::Array(templates))?)
            .with_ttl_ms(LIST_TTL_MS)
            .with_cache_scope(CacheScope::Private))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let caller = caller_of(&context);
        let questioned = Questioned {
            context: &context,
            method: "resources/read",
            name: &request.uri,
            arguments: Value::Null,
            responses: request.input_responses,
            state: request.request_state,
        };
        let asked = self
            .with_questions(questioned, |ask| {
                let cancel = context.ct.clone();
                let (caller, uri) = (&caller, &request.uri);
                async move {
                    let cancelled = Box::pin(async move { cancel.cancelled().await });
                    match self.read_resource(caller, uri, Some(ask), cancelled).await {
                        Ok(contents) => Ok(Round::Done(contents)),
                        Err(ReadRefusal::InputRequired(asked)) => Ok(Round::Asks(asked)),
                        Err(refusal) => Err(read_error(refusal, "resource", uri)),
                    }
                }
            })
            .await?;
        let contents = match asked {
            Asked::Done(contents) => contents,
            Asked::InputRequired(input) => return Ok(input.into()),
        };
        let contents =
            contents.iter().map(|c| from_json(crate::sandbox::resource_json(c))).collect::<Result<_, _>>()?;
        // Private: what a caller may read depends on who it is.
        Ok(ReadResourceResult::new(contents).with_ttl_ms(LIST_TTL_MS).with_cache_scope(CacheScope::Private).into())
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
        let support =
            self.catalog().get(&request.name).and_then(|tool| TaskSupport::of(&tool.descriptor["input_schema"]));
        let polls = context.client_capabilities().is_some_and(|c| c.supports_tasks());
        match (support, polls) {
            (Some(TaskSupport::Required), false) => {
                return Err(McpError::missing_required_client_capability(
                    ClientCapabilities::builder().enable_tasks().build(),
                ));
            }
            (Some(support), true) => return self.call_as_task(request, &context, support).await,
            _ => {}
        }
        let token =
            request.meta.as_ref().and_then(|m| m.get_progress_token()).or_else(|| context.meta.get_progress_token());
        let relay = token.map(|token| ProgressRelay::start(&context, token));
        let caller = caller_of(&context);
        let arguments = request.arguments.unwrap_or_default();
        let questioned = Questioned {
            context: &context,
            method: "tools/call",
            name: &request.name,
            arguments: Value::Object(arguments.clone()),
            responses: request.input_responses,
            state: request.request_state,
        };
        let mut admitted = admitted;
        let outcome = self
            .with_questions(questioned, |ask| {
                let cancel = context.ct.clone();
                let call = CallRequest {
                    caller: caller.clone(),
                    name: request.name.to_string(),
                    arguments: arguments.clone(),
                    admitted: admitted.take(),
                    progress: relay.as_ref().map(ProgressRelay::sink),
                    cancelled: Box::pin(async move { cancel.cancelled().await }),
                    nesting: Nesting::default(),
                    ask: Some(ask),
                };
                async move {
                    match self.run_call(call).await {
                        Ok(result) => Ok(Round::Done(result)),
                        Err(CallRefusal::InputRequired(asked)) => Ok(Round::Asks(asked)),
                        Err(refusal) => Err(call_error(refusal)),
                    }
                }
            })
            .await;
        if let Some(relay) = relay {
            relay.finish().await;
        }
        match outcome? {
            Asked::Done(result) => Ok(result.into()),
            Asked::InputRequired(input) => Ok(input.into()),
        }
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, McpError> {
        let record = self
            .tasks()
            .get(&caller_of(&context).name, &request.task_id)
            .await
            .map_err(|e| McpError::internal_error(e.to_string(), Some(json!({"retryable": true}))))?
            .ok_or_else(|| unknown_task(&request.task_id))?;
        let record = self
            .take_over_lapsed(&caller_of(&context), record)
            .await
            .map_err(|e| McpError::internal_error(e.to_string(), Some(json!({"retryable": true}))))?;
        let detailed = tasks::detailed(&record).map_err(|e| McpError::internal_error(e, None))?;
        Ok(GetTaskResult::new(detailed))
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let caller = caller_of(&context);
        let answered = self
            .answer_task(&caller, &request.task_id, request.input_responses)
            .await
            .map_err(|e| McpError::internal_error(e.to_string(), Some(json!({"retryable": true}))))?;
        if answered { Ok(()) } else { Err(unknown_task(&request.task_id)) }
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let cancelled = self
            .cancel_task(&caller_of(&context), &request.task_id)
            .await
            .map_err(|e| McpError::internal_error(e.to_string(), Some(json!({"retryable": true}))))?;
        if cancelled { Ok(()) } else { Err(unknown_task(&request.task_id)) }
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.watch_legacy_session(context);
    }

    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        Some(self.accepted_filter(requested, &self.get_info().capabilities))
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        self.serve_listen(context).await
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.legacy_subscribe(request.uri, &context)
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.legacy_unsubscribe(&request.uri, &context.extensions);
        Ok(())
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
