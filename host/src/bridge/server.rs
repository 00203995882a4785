//! One bridged server, kept running: started (in its OS sandbox, or
//! connected to over HTTP), initialised, its tools listed and re-listed
//! when it says they changed, restarted with a growing pause when it dies,
//! and stopped with the node. Calls go to it as MCP `tools/call` requests
//! with their progress passed back and their cancellation passed on.

use super::config::{Launch, ServerEntry};
use super::listing::{Isolation, ServerListing};
use super::process::ServerProcess;
use super::sandbox::{self, SandboxSpec};
use crate::sandbox::{Offer, Progress, ProgressSink};
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ClientRequest,
    GetPromptRequest, GetPromptRequestParams, GetPromptResult, Implementation, ProgressNotificationParam,
    ProgressToken, ProtocolVersion, ReadResourceRequest, ReadResourceRequestParams, ReadResourceResult, ServerResult,
};
use rmcp::service::{NotificationContext, Peer, PeerRequestOptions, RequestHandle, RoleClient};
use rmcp::{ClientHandler, ServiceExt};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a server has to start and answer `initialize` and `tools/list`.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The first pause before a restart; it doubles after each quick death.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// The longest pause before a restart.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A server that ran this long is restarted after the first pause again.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// How one server is started: what it is and what it may have.
#[derive(Debug, Clone)]
pub struct ServerPlan {
    /// The servers file's entry.
    pub entry: ServerEntry,
    /// Its sandbox, for a stdio server when the node sandboxes (`None`:
    /// run unsandboxed, as the operator chose, or a remote server).
    pub sandbox: Option<SandboxSpec>,
    /// Environment a stdio server gets (the entry's, `PATH`, `HOME`,
    /// granted secrets).
    pub env: std::collections::BTreeMap<String, String>,
    /// How it is contained, as callers are told.
    pub isolation: Isolation,
    /// Its private directory (its working directory and `HOME`).
    pub dir: std::path::PathBuf,
    /// The hosts it may reach through the node's proxy, when granted any.
    pub proxy: Option<Vec<toolmesh_registry::request::Target>>,
    /// This program, found at start (the forwarder in front of the server).
    pub exe: Option<std::path::PathBuf>,
}

/// Why a call to a bridged server produced no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeCallError {
    /// The server is not running now (starting, or restarting after it died).
    Unavailable(String),
    /// The server answered with an error result (`isError`).
    ToolFailed(String),
    /// The server refused the arguments (JSON-RPC -32602).
    InvalidArguments(String),
    /// The server has no such resource (JSON-RPC -32002).
    NotFound(String),
    /// The server took longer than the call may.
    Timeout(Duration),
    /// The result was larger than a call's output may be.
    TooLarge(u64),
    /// The server answered something else, or the connection failed.
    Failed(String),
}

/// Progress sinks of the calls in flight, by the token sent with each.
type ProgressSinks = Arc<Mutex<HashMap<ProgressToken, ProgressSink>>>;

/// The client side of one connection: passes progress to the call it
/// belongs to, and notes that the tool list changed.
#[derive(Clone)]
struct Handler {
    progress: ProgressSinks,
    changed: Arc<tokio::sync::Notify>,
}

impl ClientHandler for Handler {
    async fn on_progress(&self, params: ProgressNotificationParam, _: NotificationContext<RoleClient>) {
        let sink = self.progress.lock().unwrap_or_else(|e| e.into_inner()).get(&params.progress_token).cloned();
        if let Some(sink) = sink {
            let message = params.message.map(|m| crate::capability::progress::clip_message(&m));
            sink(Progress { done: params.progress, total: params.total, message });
        }
    }

    async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
        self.changed.notify_one();
    }

    async fn on_resource_list_changed(&self, _: NotificationContext<RoleClient>) {
        self.changed.notify_one();
    }

    async fn on_prompt_list_changed(&self, _: NotificationContext<RoleClient>) {
        self.changed.notify_one();
    }

    fn get_info(&self) -> ClientConfig {
        // The initialize handshake every server of today speaks.
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("toolmesh-bridge", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }
}

/// What is known of a server now.
struct Now {
    /// The connection, while it runs, with the progress sinks of its calls
    /// (one map per connection: each numbers its progress tokens afresh).
    peer: Option<(Peer<RoleClient>, ProgressSinks)>,
    /// Its tools as last listed (kept while it restarts).
    tools: Vec<Value>,
    /// Its resources, templates and prompts as last listed.
    offer: Offer,
    /// Why it is not running, when it is not.
    down: Option<String>,
}

/// One bridged server under supervision. Cheap to clone.
#[derive(Clone)]
pub struct Server {
    plan: Arc<ServerPlan>,
    now: Arc<Mutex<Now>>,
    /// Counts up whenever its lists change (shared by a node's servers).
    listed: tokio::sync::watch::Sender<u64>,
}

impl Server {
    /// Starts supervising `plan`'s server; it runs until `stop` fires, and
    /// counts `listed` up whenever its lists change.
    pub fn start(plan: ServerPlan, listed: tokio::sync::watch::Sender<u64>, stop: super::Stop) -> Self {
        let server = Server {
            plan: Arc::new(plan),
            now: Arc::new(Mutex::new(Now {
                peer: None,
                tools: Vec::new(),
                offer: Offer::default(),
                down: Some("starting".into()),
            })),
            listed,
        };
        tokio::spawn(server.clone().supervise(stop));
        server
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.plan.entry.name
    }

    /// What gateways are told of it; `None` until it first listed
    /// something.
    pub fn listing(&self) -> Option<ServerListing> {
        let now = self.lock();
        (!now.tools.is_empty() || !now.offer.is_empty()).then(|| ServerListing {
            server: self.plan.entry.name.clone(),
            tools: now.tools.clone(),
            offer: now.offer.clone(),
            isolation: self.plan.isolation.clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Now> {
        self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_lists(&self, (tools, offer): (Vec<Value>, Offer)) {
        let changed = {
            let mut now = self.lock();
            let changed = now.tools != tools || now.offer != offer;
            now.tools = tools;
            now.offer = offer;
            changed
        };
        if changed {
            self.listed.send_modify(|v| *v += 1);
        }
    }

    /// Keeps the server running until `stop`.
    async fn supervise(self, mut stop: super::Stop) {
        let name = self.plan.entry.name.clone();
        let mut backoff = FIRST_BACKOFF;
        loop {
            let started = Instant::now();
            let run = self.run_once(stop.clone());
            let outcome = tokio::select! {
                _ = super::fired(&mut stop) => return self.stopped(),
                outcome = run => outcome,
            };
            let why = match outcome {
                RunEnd::Stopped => return self.stopped(),
                RunEnd::Ended(why) => why,
            };
            if started.elapsed() >= HEALTHY_AFTER {
                backoff = FIRST_BACKOFF;
            }
            tracing::warn!(server = %name, pause_ms = backoff.as_millis() as u64, "bridged server stopped: {why}; restarting");
            // Callers hear that it stopped; why (which may name its URL) is the operator's log's.
            self.lock().down = Some("it stopped and is restarting; the node's log says why".into());
            tokio::select! {
                _ = super::fired(&mut stop) => return self.stopped(),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn stopped(&self) {
        let mut now = self.lock();
        now.peer = None;
        now.down = Some("the node is stopping".into());
        drop(now);
        tracing::info!(server = %self.plan.entry.name, "bridged server stopped with the node");
    }

    /// Starts the server once and serves it until it dies (why) or the
    /// node stops.
    async fn run_once(&self, mut stop: super::Stop) -> RunEnd {
        let handler = Handler { progress: ProgressSinks::default(), changed: Arc::new(tokio::sync::Notify::new()) };
        let sinks = handler.progress.clone();
        let changed = handler.changed.clone();
        let (running, child) = match tokio::time::timeout(START_TIMEOUT, self.connect(handler)).await {
            Ok(Ok(started)) => started,
            Ok(Err(why)) => return RunEnd::Ended(why),
            Err(_) => return RunEnd::Ended(format!("it did not answer `initialize` within {START_TIMEOUT:?}")),
        };
        let peer = running.peer().clone();
        // Every list is read fresh: a server's list_changed is the only cache rule.
        peer.set_response_cache_config(rmcp::ClientCacheConfig::disabled()).await;
        match tokio::time::timeout(START_TIMEOUT, super::lists::list_all(&peer)).await {
            Ok(Ok(lists)) => self.set_lists(lists),
            Ok(Err(why)) => return RunEnd::Ended(format!("cannot list its tools: {why}")),
            Err(_) => return RunEnd::Ended(format!("it did not list its tools within {START_TIMEOUT:?}")),
        }
        {
            let mut now = self.lock();
            now.peer = Some((peer.clone(), sinks));
            now.down = None;
        }
        tracing::info!(server = %self.plan.entry.name, tools = self.lock().tools.len(), "bridged server running");
        let waiting = running.waiting();
        tokio::pin!(waiting);
        let end = loop {
            tokio::select! {
                _ = super::fired(&mut stop) => break RunEnd::Stopped,
                quit = &mut waiting => break RunEnd::Ended(match quit {
                    Ok(reason) => format!("its connection ended ({reason:?})"),
                    Err(e) => format!("its connection failed: {e}"),
                }),
                _ = changed.notified() => match tokio::time::timeout(START_TIMEOUT, super::lists::relist(&peer)).await {
                    Ok(Ok(lists)) => {
                        tracing::info!(server = %self.plan.entry.name, tools = lists.0.len(), "bridged server's lists changed");
                        self.set_lists(lists);
                    }
                    Ok(Err(why)) => tracing::warn!(server = %self.plan.entry.name, "cannot list its tools again: {why}"),
                    Err(_) => tracing::warn!(server = %self.plan.entry.name, "it did not list its tools again in time"),
                },
            }
        };
        self.lock().peer = None;
        drop(child);
        end
    }

    /// Starts the process (or opens the connection) and initialises it.
    async fn connect(
        &self,
        handler: Handler,
    ) -> Result<(rmcp::service::RunningService<RoleClient, Handler>, Option<ServerProcess>), String> {
        match &self.plan.entry.launch {
            Launch::Stdio { command, args, .. } => {
                let mut std_command = match &self.plan.sandbox {
                    // Behind the forwarder to the node's proxy, when granted hosts.
                    Some(spec) if spec.socket.is_some() => {
                        let exe = self.plan.exe.as_ref().ok_or("cannot find this program")?;
                        let mut shimmed =
                            vec!["bridge-shim".to_owned(), "--socket".into(), sandbox::PROXY_SOCKET.into()];
                        shimmed.extend(["--".to_owned(), command.clone()].into_iter().chain(args.iter().cloned()));
                        sandbox::command(spec, &exe.display().to_string(), &shimmed).map_err(|e| e.to_string())?
                    }
                    Some(spec) => sandbox::command(spec, command, args).map_err(|e| e.to_string())?,
                    None => {
                        use std::os::unix::process::CommandExt as _;
                        std::fs::create_dir_all(&self.plan.dir)
                            .map_err(|e| format!("cannot make {}: {e}", self.plan.dir.display()))?;
                        let mut plain = std::process::Command::new(command);
                        // A group of its own, so what it starts stops with it.
                        plain.args(args).env_clear().envs(&self.plan.env).current_dir(&self.plan.dir).process_group(0);
                        plain
                    }
                };
                std_command
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                let mut command_line = tokio::process::Command::from(std_command);
                command_line.kill_on_drop(true);
                let mut child = command_line.spawn().map_err(|e| format!("cannot start `{command}`: {e}"))?;
                let (Some(stdout), Some(stdin)) = (child.stdout.take(), child.stdin.take()) else {
                    return Err("its standard streams were not opened".into());
                };
                if let Some(stderr) = child.stderr.take() {
                    tokio::spawn(super::process::log_lines(self.plan.entry.name.clone(), stderr));
                }
                let process = ServerProcess::new(child, self.plan.sandbox.is_none());
                let running = handler.serve((stdout, stdin)).await.map_err(|e| format!("initialize failed: {e}"))?;
                Ok((running, Some(process)))
            }
            Launch::Http { url, headers } => {
                use rmcp::transport::StreamableHttpClientTransport;
                use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
                let mut config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
                for (name, value) in headers {
                    let name = http::HeaderName::try_from(name.as_str()).map_err(|e| format!("header {name}: {e}"))?;
                    let value =
                        http::HeaderValue::try_from(value.as_str()).map_err(|e| format!("header {name}: {e}"))?;
                    config.custom_headers.insert(name, value);
                }
                let client = toolmesh_registry::client::http_builder()
                    .connect_timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
                let transport = StreamableHttpClientTransport::with_client(client, config);
                let running = handler.serve(transport).await.map_err(|e| format!("initialize failed: {e}"))?;
                Ok((running, None))
            }
        }
    }

    /// Calls `tool` with `arguments` (a JSON object), passing progress to
    /// `progress`; dropping the future cancels the call on the server.
    pub async fn call(
        &self,
        tool: &str,
        arguments: serde_json::Map<String, Value>,
        progress: Option<ProgressSink>,
        timeout: Duration,
    ) -> Result<CallToolResult, BridgeCallError> {
        let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
        match self.request(ClientRequest::CallToolRequest(CallToolRequest::new(params)), progress, timeout).await? {
            ServerResult::CallToolResult(result) => Ok(result),
            _ => Err(BridgeCallError::Failed("the bridged server answered `tools/call` with another result".into())),
        }
    }

    /// Reads its resource `uri`.
    pub async fn read(&self, uri: &str, timeout: Duration) -> Result<ReadResourceResult, BridgeCallError> {
        let request = ClientRequest::ReadResourceRequest(ReadResourceRequest::new(ReadResourceRequestParams::new(uri)));
        match self.request(request, None, timeout).await? {
            ServerResult::ReadResourceResult(result) => Ok(result),
            _ => {
                Err(BridgeCallError::Failed("the bridged server answered `resources/read` with another result".into()))
            }
        }
    }

    /// Fills in its prompt `name` with `arguments`.
    pub async fn prompt(
        &self,
        name: &str,
        arguments: serde_json::Map<String, Value>,
        timeout: Duration,
    ) -> Result<GetPromptResult, BridgeCallError> {
        let params = GetPromptRequestParams::new(name).with_arguments(arguments);
        match self.request(ClientRequest::GetPromptRequest(GetPromptRequest::new(params)), None, timeout).await? {
            ServerResult::GetPromptResult(result) => Ok(result),
            _ => Err(BridgeCallError::Failed("the bridged server answered `prompts/get` with another result".into())),
        }
    }

    /// Sends `request` and waits at most `timeout` for its answer, passing
    /// progress to `progress`; dropping the future cancels it on the server.
    async fn request(
        &self,
        request: ClientRequest,
        progress: Option<ProgressSink>,
        timeout: Duration,
    ) -> Result<ServerResult, BridgeCallError> {
        let (peer, sinks) = {
            let now = self.lock();
            match &now.peer {
                Some(live) => live.clone(),
                None => {
                    let why = now.down.clone().unwrap_or_default();
                    return Err(BridgeCallError::Unavailable(format!(
                        "the bridged server `{}` is not running ({why}); try again shortly",
                        self.plan.entry.name
                    )));
                }
            }
        };
        let handle = peer
            .send_cancellable_request(request, PeerRequestOptions::no_options())
            .await
            .map_err(|e| BridgeCallError::Unavailable(format!("the bridged server's connection closed: {e}")))?;
        let token = handle.progress_token.clone();
        if let Some(sink) = progress {
            sinks.lock().unwrap_or_else(|e| e.into_inner()).insert(token.clone(), paced(sink));
        }
        let mut pending = Pending { handle: Some(handle), progress: sinks, token };
        let answer = match tokio::time::timeout(timeout, pending.answer()).await {
            Ok(answer) => answer,
            Err(_) => return Err(BridgeCallError::Timeout(timeout)),
        };
        answer.map_err(|e| match e {
            rmcp::ServiceError::McpError(e) if e.code == rmcp::model::ErrorCode::INVALID_PARAMS => {
                BridgeCallError::InvalidArguments(e.message.to_string())
            }
            rmcp::ServiceError::McpError(e) if e.code == rmcp::model::ErrorCode::RESOURCE_NOT_FOUND => {
                BridgeCallError::NotFound(e.message.to_string())
            }
            rmcp::ServiceError::McpError(e) => {
                BridgeCallError::Failed(format!("the bridged server refused the request: {}", e.message))
            }
            e => BridgeCallError::Unavailable(format!("the bridged server's connection failed: {e}")),
        })
    }
}

/// How one run of a server ended.
enum RunEnd {
    /// The node is stopping.
    Stopped,
    /// It died or could not start: why.
    Ended(String),
}

/// A call sent and not yet answered: dropped unanswered, it tells the
/// server the call is cancelled; either way its progress sink goes.
struct Pending {
    handle: Option<RequestHandle<RoleClient>>,
    progress: ProgressSinks,
    token: ProgressToken,
}

impl Pending {
    async fn answer(&mut self) -> Result<ServerResult, rmcp::ServiceError> {
        let Some(handle) = self.handle.as_mut() else { return Err(rmcp::ServiceError::TransportClosed) };
        let answer = (&mut handle.rx).await.unwrap_or(Err(rmcp::ServiceError::TransportClosed));
        self.handle = None;
        answer
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.progress.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.token);
        if let Some(handle) = self.handle.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = handle.cancel(Some("the caller cancelled the call".into())).await;
            });
        }
    }
}

/// `sink`, passing on at most one report each [`PROGRESS_EVERY`] (and
/// every last one, where done meets the total).
fn paced(sink: ProgressSink) -> ProgressSink {
    // When the last report went, and whether a finishing one did.
    let last = Mutex::new((None::<Instant>, false));
    Arc::new(move |progress: Progress| {
        let finished = progress.total.is_some_and(|total| progress.done >= total);
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        let first_finish = finished && !last.1;
        if first_finish || last.0.is_none_or(|at| at.elapsed() >= PROGRESS_EVERY) {
            *last = (Some(Instant::now()), last.1 || finished);
            sink(progress);
        }
    })
}

/// The least time between two progress reports of one call passed on.
const PROGRESS_EVERY: Duration = Duration::from_millis(50);
