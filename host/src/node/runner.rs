//! A node runs calls: it fetches a component by digest from its source,
//! checks its publisher and request against the node's policy, compiles it
//! once (a quick baseline first, optimised code in the background), and
//! runs each call in the sandbox under the call's grant.

use super::components;
use super::source::ComponentSource;
use super::{ComponentCache, trust};
use crate::grant::{Grant, Policy, ToolRequest};
use crate::sandbox::{CallOptions, CallOutput, Phase, ProgressSink, Sandbox, SandboxError, Tier, ToolComponent};
use std::sync::Arc;
use toolmesh_registry::digest::Digest;
use toolmesh_registry::name::Repository;
use toolmesh_registry::oci::{Manifest, annotation};

/// One call to run.
pub struct Invocation {
    /// The repository the component was published to.
    pub repository: Repository,
    /// The manifest digest the call is pinned to.
    pub digest: Digest,
    /// The tool inside the component.
    pub tool: String,
    /// The arguments, a JSON object as text.
    pub arguments: String,
    /// Receives progress reports.
    pub progress: Option<ProgressSink>,
    /// Identifies the call in logs.
    pub call_id: String,
    /// What the tool requests, as published (for placing it on a node that
    /// grants it; a node reads it again from the manifest it fetches).
    pub request: Arc<ToolRequest>,
    /// Whether running it twice is harmless (read-only or idempotent by its
    /// annotations): then a call whose node is lost is retried elsewhere.
    pub retry_safe: bool,
    /// Set once the call's code called a tool that is neither read-only
    /// nor idempotent: then the call is not retried either.
    pub effects: Arc<std::sync::atomic::AtomicBool>,
    /// Who asked for the call ([`crate::auth::Caller`]'s name), for logs;
    /// absent when a gateway of an older wire version sent it.
    pub caller: Option<String>,
    /// Receives the CPU and GPU time the call uses, wherever it runs.
    pub meter: Arc<crate::sandbox::CallMeter>,
    /// Makes the call's calls to other tools (granted by the gateway that
    /// placed it); none when absent.
    pub tools: Option<Arc<dyn crate::capability::tools::ToolCaller>>,
    /// The session the call runs in, if any.
    pub session: Option<SessionRoute>,
    /// What the call may ask its client, and the answers so far; it may
    /// ask nothing when absent.
    pub ask: Option<Arc<crate::capability::ask::Asking>>,
    /// Hears of the package's resources the call reports changed; reports
    /// are dropped when absent.
    pub updates: Option<crate::capability::resource_updates::UpdateSink>,
    /// Where the tool is when a bridged MCP server offers it (not a
    /// component): that server on that node, and nowhere else.
    pub bridge: Option<BridgeCall>,
}

/// A call of a bridged MCP server's tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeCall {
    /// The node that bridges the server (its id on a mesh).
    pub node: String,
    /// The server's name on that node.
    pub server: String,
}

impl Invocation {
    /// Whether running the call again elsewhere is harmless: the tool says
    /// so, and its code has called no tool that could not say the same.
    pub fn may_retry(&self) -> bool {
        self.retry_safe && !self.effects.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A call's session, as the gateway routes it.
#[derive(Debug, Clone, Default)]
pub struct SessionRoute {
    /// The session's id and opening tag, as the node keys its instance.
    pub key: String,
    /// Whether an earlier call opened it (then the node must still hold it).
    pub resume: bool,
    /// The node holding it, when it was opened: the call goes there or
    /// nowhere.
    pub home: Option<String>,
    /// Where the call ran, set by the invoker (the session's home from now on).
    pub ran_on: Arc<std::sync::Mutex<Option<String>>>,
}

impl SessionRoute {
    /// Records that the call ran on `node`.
    pub fn ran_on(&self, node: &str) {
        *self.ran_on.lock().unwrap_or_else(|e| e.into_inner()) = Some(node.to_owned());
    }

    /// Where the call ran, if it did.
    pub fn node(&self) -> Option<String> {
        self.ran_on.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Why a call produced no result: what went wrong, in which phase, for
/// which tool of which component.
#[derive(Debug, thiserror::Error)]
#[error("`{tool}` of {digest}, {phase}: {cause}")]
pub struct InvokeError {
    /// Where in the call's life it failed.
    pub phase: Phase,
    /// The manifest digest the call was pinned to.
    pub digest: Digest,
    /// The tool inside the component.
    pub tool: String,
    /// What went wrong.
    pub cause: InvokeCause,
}

/// What went wrong in an [`InvokeError`].
#[derive(Debug, thiserror::Error)]
pub enum InvokeCause {
    /// The component could not be fetched.
    #[error("cannot fetch the component: {0}")]
    Fetch(String),
    /// The sandbox refused or stopped the call, or the tool failed.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// A node in another process, or a bridged MCP server, failed the call.
    #[error("{message}")]
    Remote {
        /// Its short stable word (`timeout`, `tool_failed`, …).
        kind: String,
        /// What happened.
        message: String,
        /// Whether the tool is at fault (a result the model should see).
        tool_failure: bool,
        /// Whether another node could succeed.
        retryable: bool,
    },
    /// No node can take the call.
    #[error("{0}")]
    Placement(String),
    /// The node running the call stopped answering.
    #[error("{0}")]
    Lost(String),
}

impl InvokeError {
    /// The error `cause` of the call of `tool` of `digest`.
    pub fn new(digest: Digest, tool: String, cause: InvokeCause) -> Self {
        let phase = match &cause {
            InvokeCause::Fetch(_) => Phase::Fetch,
            InvokeCause::Sandbox(e) => e.phase(),
            InvokeCause::Placement(_) => Phase::Admission,
            InvokeCause::Remote { .. } | InvokeCause::Lost(_) => Phase::Call,
        };
        InvokeError { phase, digest, tool, cause }
    }

    /// The sandbox's error, when the sandbox is where it failed.
    pub fn sandbox(&self) -> Option<&SandboxError> {
        match &self.cause {
            InvokeCause::Sandbox(e) => Some(e),
            _ => None,
        }
    }

    /// A short, stable word for the audit log (`fetch_failed`, `timeout`, …).
    pub fn kind(&self) -> &str {
        match &self.cause {
            InvokeCause::Sandbox(e) => e.kind(),
            InvokeCause::Fetch(_) => "fetch_failed",
            InvokeCause::Remote { kind, .. } => kind,
            InvokeCause::Placement(_) => "no_node",
            InvokeCause::Lost(_) => "node_lost",
        }
    }

    /// Whether the model should see it as a failed result (`isError`):
    /// the tool failed, or no node may run what it asks for.
    pub fn is_tool_visible(&self) -> bool {
        match &self.cause {
            InvokeCause::Sandbox(e) => e.is_tool_failure() || e.is_not_granted(),
            InvokeCause::Remote { kind, tool_failure, .. } => *tool_failure || kind == "not_granted",
            InvokeCause::Placement(_) | InvokeCause::Lost(_) => true,
            InvokeCause::Fetch(_) => false,
        }
    }

    /// Whether trying again later or elsewhere may succeed.
    pub fn is_retryable(&self) -> bool {
        match &self.cause {
            InvokeCause::Sandbox(e) => e.is_busy(),
            InvokeCause::Remote { retryable, .. } => *retryable,
            _ => false,
        }
    }
}

/// A node: runs calls in this process's sandbox, fetching components by
/// digest from its [`ComponentSource`] and keeping each compiled component
/// for later calls. Each call gets what the tool's published request asks
/// for, as covered by the node's policy; a tool the policy does not cover
/// (or whose publisher it does not trust) is refused before it is compiled.
/// Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct Node {
    sandbox: Arc<Sandbox>,
    source: Arc<dyn ComponentSource>,
    policy: Arc<Policy>,
    components: Arc<ComponentCache<Loaded>>,
    /// Compiles running at once (first loads and background tier-ups
    /// together), so a stream of new or cancelled tools queues up instead
    /// of taking every core and their memory.
    compiles: Arc<tokio::sync::Semaphore>,
    /// The MCP servers it bridges, if any.
    bridges: Option<Arc<crate::bridge::Bridges>>,
}

/// A loaded component and what its calls are granted.
#[derive(Clone)]
struct Loaded {
    component: ToolComponent,
    grant: Arc<Grant>,
}

impl components::Weigh for Loaded {
    fn weight(&self) -> u64 {
        self.component.code_size()
    }
}

/// Compiles a node runs at once.
const CONCURRENT_COMPILES: usize = 2;

/// The work that moves a component from baseline to optimised code.
type TierUp = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

impl Node {
    /// A node over `sandbox` that fetches from `source` and grants what
    /// `policy` allows.
    pub fn new(sandbox: Arc<Sandbox>, source: Arc<dyn ComponentSource>, policy: Arc<Policy>) -> Self {
        let loaded_code = sandbox.config().loaded_code;
        Node {
            sandbox,
            source,
            policy,
            components: Arc::new(ComponentCache::new(loaded_code)),
            compiles: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_COMPILES)),
            bridges: None,
        }
    }

    /// The node, also running calls of `bridges`' servers.
    pub fn with_bridges(mut self, bridges: Arc<crate::bridge::Bridges>) -> Self {
        self.bridges = Some(bridges);
        self
    }

    /// The MCP servers it bridges, if any.
    pub fn bridges(&self) -> Option<&Arc<crate::bridge::Bridges>> {
        self.bridges.as_ref()
    }

    async fn component(&self, repository: &Repository, digest: Digest) -> Result<Loaded, InvokeCause> {
        let metrics = &crate::metrics::global().node;
        let missed = std::sync::atomic::AtomicBool::new(false);
        let loaded = self
            .components
            .get_or_load(digest, || {
                missed.store(true, std::sync::atomic::Ordering::Relaxed);
                let started = std::time::Instant::now();
                async move {
                    let loaded = self.load(repository, digest).await;
                    metrics.load_seconds.observe(started.elapsed().as_secs_f64());
                    let (loaded, tier_up) = loaded?;
                    if let Some(tier_up) = tier_up {
                        tokio::spawn(tier_up);
                    }
                    Ok(loaded)
                }
            })
            .await;
        let result = if missed.load(std::sync::atomic::Ordering::Relaxed) { "miss" } else { "hit" };
        metrics.components.get_or_create(&crate::metrics::ReasonLabel { reason: result.into() }).inc();
        loaded
    }

    /// Reads manifest `digest` from the store, works out what its calls
    /// are granted, and loads its component: optimised code from the
    /// compile cache, or else a quick baseline compile that serves the
    /// first calls, with the work that moves them to optimised code
    /// (compile, cache, take over) for the caller to run.
    async fn load(&self, repository: &Repository, digest: Digest) -> Result<(Loaded, Option<TierUp>), InvokeCause> {
        let fetch_error = InvokeCause::Fetch;
        let bytes = self.source.manifest(repository, digest).await.map_err(fetch_error)?;
        let manifest = Manifest::parse(&bytes).map_err(fetch_error)?;
        let grant = Arc::new(self.grant(repository, digest, &manifest).await?);
        let layer = manifest.component().map_err(fetch_error)?;
        let wasm = self.source.blob(repository, layer.digest).await.map_err(fetch_error)?;
        let wasm = Arc::new(wasm);
        let (sandbox, bytes) = (self.sandbox.clone(), wasm.clone());
        let component = compile(&self.compiles, move || sandbox.load_quick(&bytes)).await??;
        let tier_up = (component.tier() == Tier::Baseline).then(|| {
            let (sandbox, components, compiles) =
                (self.sandbox.clone(), self.components.clone(), self.compiles.clone());
            let grant = grant.clone();
            let work: TierUp = Box::pin(async move {
                match compile(&compiles, move || sandbox.load(&wasm)).await {
                    Ok(Ok(optimized)) => {
                        tracing::debug!(%digest, "optimised code takes over");
                        components.replace(digest, Loaded { component: optimized, grant });
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(%digest, error = %e, "cannot compile optimised code; the baseline stays")
                    }
                    Err(e) => {
                        tracing::warn!(%digest, error = %e, "the optimising compiler stopped; the baseline stays")
                    }
                }
            });
            work
        });
        Ok((Loaded { component, grant }, tier_up))
    }

    /// What calls of manifest `manifest` (of `digest`) are granted: its
    /// publisher trusted and its request covered by the node's policy.
    async fn grant(&self, repository: &Repository, digest: Digest, manifest: &Manifest) -> Result<Grant, InvokeCause> {
        let refused = |missing: String| InvokeCause::Sandbox(SandboxError::NotCovered { missing: vec![missing] });
        let request =
            ToolRequest::from_annotation(manifest.annotations.get(annotation::PERMISSIONS).map(String::as_str))
                .map_err(|e| refused(e.to_string()))?;
        trust::check_publisher(self.source.as_ref(), repository, digest, &self.policy.publishers)
            .await
            .map_err(|why| refused(format!("a trusted publisher: {why}")))?;
        Ok(self.policy.grant(&request)?)
    }
}

/// Runs `job` (a compile) on a blocking thread once one of the node's
/// compile permits is free.
async fn compile<T: Send + 'static>(
    permits: &Arc<tokio::sync::Semaphore>,
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, InvokeCause> {
    let stopped = |why: String| InvokeCause::Sandbox(SandboxError::Engine(why));
    let permit = permits.clone().acquire_owned().await.map_err(|_| stopped("the node is shutting down".into()))?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        job()
    })
    .await
    .map_err(|e| stopped(format!("the compiler stopped: {e}")))
}

impl Node {
    /// The manifest digests whose components are loaded (for adverts).
    pub fn compiled(&self) -> Vec<Digest> {
        self.components.digests()
    }

    /// Loads the component of manifest `digest` of `repository` ahead of
    /// its first call, as a call would (optimised code from the compile
    /// cache, else a quick compile), keeps it in memory, and returns once
    /// its optimised code is in: warming takes one compile at a time, so
    /// calls keep the node's other compile slot. Warming stops filling
    /// memory at half the node's loaded-code budget (what calls load is
    /// never held back). A component this node's policy refuses is not
    /// loaded; the refusal is returned.
    pub async fn warm(&self, repository: &Repository, digest: Digest) -> Result<(), InvokeCause> {
        if self.components.weight() >= self.sandbox.config().loaded_code / 2 {
            tracing::debug!(%digest, "loaded-code budget half full: left for its first call");
            return Ok(());
        }
        let pending = std::sync::Mutex::new(None);
        self.components
            .get_or_load(digest, || async {
                let (loaded, tier_up) = self.load(repository, digest).await?;
                *pending.lock().unwrap_or_else(|e| e.into_inner()) = tier_up;
                Ok::<_, InvokeCause>(loaded)
            })
            .await?;
        let tier_up = pending.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Some(tier_up) = tier_up {
            tier_up.await;
        }
        Ok(())
    }

    /// The sandbox it runs calls in.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// The policy the node grants by.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Finds (or fetches and loads) the call's component and runs the call.
    pub async fn run(&self, call: Invocation) -> Result<CallOutput, InvokeError> {
        let metrics = &crate::metrics::global().node;
        let started = std::time::Instant::now();
        let running = crate::metrics::Counting::start(&metrics.in_flight);
        let tool = call.tool.clone();
        let outcome = self.run_counted(call).await;
        drop(running);
        let kind = match &outcome {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        let label = metrics.tools.label(&tool);
        crate::metrics::record_call(&metrics.calls, &metrics.seconds, &label, kind, started.elapsed().as_secs_f64());
        outcome
    }

    async fn run_counted(&self, call: Invocation) -> Result<CallOutput, InvokeError> {
        if let Some(route) = &call.bridge {
            let outcome = match &self.bridges {
                Some(bridges) => bridges.call(&route.server, &call.tool, &call.arguments, call.progress.clone()).await,
                None => Err(InvokeCause::Remote {
                    kind: "bridge_unavailable".into(),
                    message: "this node bridges no MCP servers".into(),
                    tool_failure: true,
                    retryable: false,
                }),
            };
            return outcome.map_err(|e| InvokeError::new(call.digest, call.tool, e));
        }
        let Invocation {
            repository,
            digest,
            tool,
            arguments,
            progress,
            call_id,
            meter,
            tools,
            session,
            caller,
            ask,
            updates,
            ..
        } = call;
        let session = session.map(|s| crate::sandbox::SessionRequest {
            caller: caller.unwrap_or_else(|| "-".into()),
            id: s.key,
            resume: s.resume,
        });
        let Loaded { component, grant } = match self.component(&repository, digest).await {
            Ok(loaded) => loaded,
            Err(e) => return Err(InvokeError::new(digest, tool, e)),
        };
        let options = CallOptions {
            progress,
            call_id: Some(call_id),
            grant: Some(grant),
            meter: Some(meter),
            tools,
            session,
            ask,
            updates,
            ..CallOptions::default()
        };
        match self.sandbox.call(&component, &tool, &arguments, options).await {
            Ok(output) => Ok(output),
            Err(e) => Err(InvokeError::new(digest, tool, e.into())),
        }
    }
}
