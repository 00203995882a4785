//! The sandbox: loads tool components and runs each call in a fresh,
//! limited instance.
//!
//! One [`Sandbox`] per process owns the wasmtime engine, the linker (WASI
//! clocks, random and denied-by-context filesystem, sockets and environment,
//! plus the toolmesh log and progress capabilities) and the compile cache.
//! [`Sandbox::load`] turns component bytes into a [`ToolComponent`], ready to
//! instantiate; [`Sandbox::call`] runs one tool call in a new store with its
//! own limits:
//!
//! 1. admission: a slot is taken (at most `max_concurrent_calls` run at
//!    once) and the call reserves the most memory it may use from the
//!    node's [`MemoryBudget`]; a call that gets neither within the queue
//!    timeout is refused as "node busy";
//! 2. the component's imports are checked against the call's [`Grant`]
//!    (a tool importing `wasi:http` without a network grant is refused),
//!    the limits are raised to what the tool asked for and clamped to the
//!    policy's maxima, and a store is made with a WASI context that grants
//!    clocks and random plus what the grant opens, and hostcall fuel that caps what the host copies out of the
//!    guest in one transfer (result, error message, log line);
//! 3. the component is instantiated from its pre-linked `InstancePre`;
//! 4. the call runs on a fiber; every epoch tick checks the deadline, and a
//!    timer stops calls blocked in host functions;
//! 5. the result is checked (size, UTF-8, JSON) and the store dropped.
//!
//! Dropping the future returned by [`Sandbox::call`] cancels the call at its
//! next epoch tick.

pub(crate) mod bindings;
mod budget;
mod cache;
mod classify;
mod component;
mod content;
mod engine;
mod error;
mod image;
pub mod meter;
pub mod offer;
pub(crate) mod plain;
mod run;
pub mod session;
mod state;
mod stdio;

pub use crate::capability::progress::{Progress, ProgressSink};
pub use budget::{MemoryBudget, Reservation, call_cost};
pub use cache::CompileCache;
pub use component::{CallOptions, CallOutput, ToolComponent};
pub use content::{Annotations, Content, ToolDescriptor, is_valid_tool_name, mcp_block, resource_json};
pub use engine::{TICK, Tier};
pub use error::{Phase, SandboxError, humanize_bytes};
pub use meter::CallMeter;
pub use offer::{Body, Offer, PromptInfo, ResourceContents, ResourceInfo, TemplateInfo};
pub use session::SessionRequest;
pub(crate) use state::{CallState, GpuContext};

use crate::capability::gpu::{AdapterSummary, GpuService};
use crate::capability::{self, Capability};
use crate::config::{Limits, SandboxConfig};
use crate::grant::Grant;
use bindings::toolmesh::tool::mcp_types::OfferError;
use bindings::toolmesh::tool::types::ToolError;
use component::{Answer, Entry, Operation};
use plain::docs::Docs;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use tokio::sync::Semaphore;
use toolmesh_registry::digest::Digest;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

/// Runs tool components. Cheap to share behind an `Arc`; calls may run
/// concurrently.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<CallState>,
    /// The baseline compiler's engine, made on first use.
    baseline: OnceLock<Result<Baseline, String>>,
    config: SandboxConfig,
    cache: Option<CompileCache>,
    slots: Semaphore,
    /// Instances kept between the calls of a session.
    sessions: session::Sessions,
    budget: MemoryBudget,
    next_call: AtomicU64,
    /// The node's GPU, or why it has none.
    gpu: Result<Arc<GpuService>, String>,
    /// The node's host linear algebra, or why it has none.
    linalg: Result<Arc<crate::capability::linalg::LinalgService>, String>,
    _ticker: engine::Ticker,
}

/// The engine and linker of the baseline tier.
struct Baseline {
    engine: Engine,
    linker: Linker<CallState>,
    _ticker: engine::Ticker,
}

impl Sandbox {
    /// Builds the engine, linker and cache for `config`.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        let engine = engine::build(&config, Tier::Optimized)?;
        let linker = host_linker(&engine)?;
        let cache = match &config.cache_dir {
            Some(dir) => match CompileCache::open(dir, &engine) {
                Ok(cache) => Some(cache),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "compile cache disabled");
                    None
                }
            },
            None => None,
        };
        let budget = MemoryBudget::new(config.memory_budget.unwrap_or_else(budget::machine_default));
        let one_call = call_cost(&config.limits, &config);
        if one_call > budget.total() {
            return Err(SandboxError::Engine(format!(
                "the memory budget of {} is below what one call under the default limits may use ({}): \
                 raise the budget or lower the memory limit",
                humanize_bytes(budget.total()),
                humanize_bytes(one_call)
            )));
        }
        let ticker = engine::Ticker::start(engine.clone())?;
        let gpu = match &config.gpu {
            Some(limits) => GpuService::start(limits.clone()).map_err(|e| {
                tracing::warn!(error = %e, "GPU compute is granted but unavailable; GPU tools get `no-adapter`");
                e.0
            }),
            None => Err("this node does not offer GPU compute".to_owned()),
        };
        let linalg = if config.linalg.enabled {
            crate::capability::linalg::LinalgService::start(config.linalg.clone(), budget.clone())
        } else {
            Err("this node's configuration turns host linear algebra off ([linalg] enabled = false)".to_owned())
        };
        Ok(Sandbox {
            gpu,
            linalg,
            budget,
            baseline: OnceLock::new(),
            slots: Semaphore::new(config.max_concurrent_calls.max(1) as usize),
            sessions: session::Sessions::default(),
            engine,
            linker,
            config,
            cache,
            next_call: AtomicU64::new(1),
            _ticker: ticker,
        })
    }

    /// The configuration this sandbox was built with.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// The node's GPU adapter, if it offers one.
    pub fn gpu(&self) -> Option<&AdapterSummary> {
        self.gpu.as_ref().ok().map(|service| service.summary())
    }

    /// Why the node offers no GPU, if it does not.
    pub fn gpu_unavailable(&self) -> Option<&str> {
        self.gpu.as_ref().err().map(String::as_str)
    }

    /// The node's host linear algebra, if it offers it.
    pub fn linalg(&self) -> Option<&Arc<crate::capability::linalg::LinalgService>> {
        self.linalg.as_ref().ok()
    }

    /// The memory budget calls reserve from.
    pub fn budget(&self) -> &MemoryBudget {
        &self.budget
    }

    /// The wasmtime engine (for benchmarks and tools that precompile).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles (or loads from the cache) and links the component `bytes`
    /// with the optimising compiler.
    ///
    /// Refuses core modules, malformed bytes, components that import
    /// anything this host does not provide (naming the import), and
    /// components that export neither `toolmesh:tool/handler` nor plain
    /// functions with JSON forms (see [`plain`]). This compiles
    /// on a cache miss, which may take a while: call it off async threads.
    pub fn load(&self, bytes: &[u8]) -> Result<ToolComponent, SandboxError> {
        check_header(bytes)?;
        let digest = Digest::of(bytes);
        let component = match self.cached(&digest) {
            Some(component) => component,
            None => {
                let component = Component::new(&self.engine, bytes)
                    .map_err(|e| SandboxError::InvalidComponent(format!("{e:#}")))?;
                if let Some(cache) = &self.cache {
                    cache.store(&digest, &component);
                }
                component
            }
        };
        link(&self.engine, &self.linker, digest, &component, Tier::Optimized, Some(bytes))
    }

    /// Loads the component `bytes` as fast as possible: its optimised code
    /// from the compile cache if there, else compiled by the baseline
    /// compiler (several times faster to compile, slower to run; nothing is
    /// cached). Pair it with [`Sandbox::load`] in the background to move
    /// later calls to optimised code. Same checks as [`Sandbox::load`].
    pub fn load_quick(&self, bytes: &[u8]) -> Result<ToolComponent, SandboxError> {
        check_header(bytes)?;
        let digest = Digest::of(bytes);
        if let Some(component) = self.cached(&digest) {
            return link(&self.engine, &self.linker, digest, &component, Tier::Optimized, Some(bytes));
        }
        let baseline = self.baseline()?;
        match Component::new(&baseline.engine, bytes) {
            Ok(component) => link(&baseline.engine, &baseline.linker, digest, &component, Tier::Baseline, Some(bytes)),
            // Winch lacks some proposals (tail calls, relaxed SIMD,
            // exceptions): Cranelift takes what it refuses, and reports
            // what neither can compile.
            Err(e) => {
                tracing::debug!(%digest, error = %e, "the baseline compiler refused the component; optimising instead");
                self.load(bytes)
            }
        }
    }

    /// The optimised code of `digest` from the compile cache, if there.
    fn cached(&self, digest: &Digest) -> Option<Component> {
        self.cache.as_ref().and_then(|c| c.load(&self.engine, digest))
    }

    /// The baseline engine, made on first use.
    fn baseline(&self) -> Result<&Baseline, SandboxError> {
        let made = self.baseline.get_or_init(|| {
            let engine = engine::build(&self.config, Tier::Baseline).map_err(|e| e.to_string())?;
            let linker = host_linker(&engine).map_err(|e| e.to_string())?;
            let ticker = engine::Ticker::start(engine.clone()).map_err(|e| e.to_string())?;
            Ok(Baseline { engine, linker, _ticker: ticker })
        });
        made.as_ref().map_err(|e| SandboxError::Engine(e.clone()))
    }

    /// Links an already compiled component (for benchmarks and caches).
    /// A plain component linked this way is described by its signatures
    /// only: its docs are in its bytes.
    pub fn link(&self, digest: Digest, component: &Component) -> Result<ToolComponent, SandboxError> {
        link(&self.engine, &self.linker, digest, component, Tier::Optimized, None)
    }

    /// Asks the component which tools it offers, in a fresh instance under
    /// the default limits, and checks the answer.
    /// A plain component's tools come from its WIT, without running it.
    pub async fn describe(&self, component: &ToolComponent) -> Result<Vec<ToolDescriptor>, SandboxError> {
        let exports = match &component.entry {
            Entry::Toolmesh(exports) => exports.clone(),
            Entry::Plain(exports) => return Ok(exports.descriptors()),
        };
        let limits = self.config.limits.clone();
        let (raw, _reservation, _refusals) = self
            .run(component, &limits, CallOptions::default(), move |instance, store| {
                Box::pin(async move { exports.handler.load(&mut *store, instance)?.call_describe(store).await })
            })
            .await?;
        content::descriptors(raw)
    }

    /// Asks the component which resources, resource templates and prompts
    /// it offers, in a fresh instance under the default limits, and checks
    /// the answer. A component without the `server` export offers none.
    pub async fn offer(&self, component: &ToolComponent) -> Result<Offer, SandboxError> {
        let server = match &component.entry {
            Entry::Toolmesh(exports) => match &exports.server {
                Some(server) => server.clone(),
                None => return Ok(Offer::default()),
            },
            Entry::Plain(_) => return Ok(Offer::default()),
        };
        let limits = self.config.limits.clone();
        let (raw, _reservation, _refusals) = self
            .run(component, &limits, CallOptions::default(), move |instance, store| {
                Box::pin(async move { server.load(&mut *store, instance)?.call_describe_offer(store).await })
            })
            .await?;
        offer::offer(raw)
    }

    /// Runs tool `tool` of `component` with JSON `arguments` in a fresh
    /// instance, and returns its checked content, still holding the call's
    /// share of the memory budget.
    pub async fn call(
        &self,
        component: &ToolComponent,
        tool: &str,
        arguments: &str,
        options: CallOptions,
    ) -> Result<CallOutput, SandboxError> {
        let mut limits = options.limits.clone().unwrap_or_else(|| self.config.limits.clone());
        if let Some(grant) = &options.grant {
            component.check_grant(grant)?;
            grant.apply_to(&mut limits);
        } else {
            component.check_grant(&Grant::default())?;
        }
        self.check_limits(&limits)?;
        let exports = match &component.entry {
            Entry::Toolmesh(exports) => exports.clone(),
            Entry::Plain(exports) => {
                return self.call_plain(component, exports, tool, arguments, options, limits).await;
            }
        };
        let operation = operation(tool, arguments)?;
        let asking = options.ask.clone();
        let (answer, reservation, refusals) = match options.session.clone() {
            Some(session) if matches!(operation, Operation::Call { .. }) => {
                let mut options = options;
                options.session = None;
                // Boxed: its future is large, and keeps this one's type simple.
                let (answer, refusals) =
                    Box::pin(self.call_in_session(component, &exports, &operation, options, &limits, session)).await?;
                (answer, None, refusals)
            }
            _ => {
                let (answer, reservation, refusals) = self
                    .run(component, &limits, options, move |instance, store| {
                        Box::pin(async move { exports.run(store, instance, &operation).await })
                    })
                    .await?;
                (answer, Some(reservation), refusals)
            }
        };
        // Questions without answers: what the run returned is not the
        // call's result; it runs again once they are answered.
        if let Some(asking) = &asking {
            let pending = asking.take_pending();
            if !pending.is_empty() {
                return Err(SandboxError::InputRequired(pending));
            }
            // Failed after asking what the client cannot answer: for want of it.
            let failed = matches!(answer, Answer::Items(Err(_)) | Answer::Read(Err(_)) | Answer::Prompt(Err(_)));
            let missing = asking.missing();
            if failed && !missing.is_empty() {
                return Err(SandboxError::MissingCapability(missing.into_iter().map(str::to_owned).collect()));
            }
        }
        let content = match answer {
            Answer::Items(Ok(items)) => content::contents(items, limits.output)?,
            Answer::Items(Err(error)) => {
                let (ToolError::InvalidArguments(message) | ToolError::Failed(message)) = &error;
                check_message(message, &limits)?;
                return Err(match error {
                    ToolError::InvalidArguments(m) => SandboxError::InvalidArguments(m),
                    // What the host refused is often why the tool failed.
                    ToolError::Failed(m) if !refusals.is_empty() => {
                        SandboxError::ToolFailed(format!("{m} (the host refused: {refusals})"))
                    }
                    ToolError::Failed(m) => SandboxError::ToolFailed(m),
                });
            }
            Answer::Read(Ok(contents)) => offer::read(contents, limits.output)?,
            Answer::Prompt(Ok(prompt)) => offer::prompt_result(prompt, limits.output)?,
            Answer::Read(Err(error)) | Answer::Prompt(Err(error)) => {
                let (OfferError::NotFound(message)
                | OfferError::InvalidArguments(message)
                | OfferError::Failed(message)) = &error;
                check_message(message, &limits)?;
                return Err(match error {
                    OfferError::NotFound(m) => SandboxError::NotFound(m),
                    OfferError::InvalidArguments(m) => SandboxError::InvalidArguments(m),
                    OfferError::Failed(m) => SandboxError::ToolFailed(m),
                });
            }
        };
        Ok(CallOutput { content, reservation })
    }

    fn check_limits(&self, limits: &Limits) -> Result<(), SandboxError> {
        let max = &self.config.limits;
        let checks = [
            ("memory limit", limits.memory, max.memory),
            ("instance limit", u64::from(limits.instances), u64::from(max.instances)),
            ("table limit", u64::from(limits.tables), u64::from(max.tables)),
            ("memories limit", u64::from(limits.memories), u64::from(max.memories)),
            ("table elements limit", u64::from(limits.table_elements), u64::from(max.table_elements)),
        ];
        match checks.into_iter().find(|(_, asked, max)| asked > max) {
            Some((what, asked, max)) => Err(SandboxError::LimitAboveMaximum { what, asked, max }),
            None => Ok(()),
        }
    }
}

/// A linker with everything a tool may import: WASI (files, environment
/// and network denied by each call's context) and the toolmesh interfaces.
fn host_linker(engine: &Engine) -> Result<Linker<CallState>, SandboxError> {
    let mut linker = Linker::<CallState>::new(engine);
    capability::link_all(&mut linker)
        .map_err(|e| SandboxError::Engine(format!("cannot link host interfaces: {e:#}")))?;
    Ok(linker)
}

/// Links `component`, compiled by `engine`, into a [`ToolComponent`].
fn link(
    engine: &Engine,
    linker: &Linker<CallState>,
    digest: Digest,
    component: &Component,
    tier: Tier,
    bytes: Option<&[u8]>,
) -> Result<ToolComponent, SandboxError> {
    let imports: Arc<[String]> = component.component_type().imports(engine).map(|(name, _)| name.to_string()).collect();
    let instance_pre = linker.instantiate_pre(component).map_err(|e| {
        match imports.iter().find(|name| capability::provider_of(name).is_none()) {
            Some(import) => {
                SandboxError::UnsupportedImport { import: import.clone(), provided: capability::provided_text() }
            }
            None => SandboxError::InvalidComponent(format!("{e:#}")),
        }
    })?;
    // The toolmesh world if it exports the handler, else its plain functions.
    let entry = match bindings::exports::toolmesh::tool::handler::GuestIndices::new(&instance_pre) {
        Ok(handler) => {
            let server = match bindings::exports::toolmesh::tool::server::GuestIndices::new(&instance_pre) {
                Ok(server) => Some(server),
                Err(e) if component.get_export_index(None, SERVER).is_some() => {
                    return Err(SandboxError::InvalidComponent(format!(
                        "its `{SERVER}` export does not match the toolmesh world this host runs: {e:#}"
                    )));
                }
                Err(_) => None,
            };
            Entry::Toolmesh(Arc::new(component::Exports { handler, server }))
        }
        Err(e) if component.get_export_index(None, HANDLER).is_some() => {
            return Err(SandboxError::InvalidComponent(format!(
                "its `{HANDLER}` export does not match the toolmesh world this host runs: {e:#}"
            )));
        }
        Err(_) => {
            let docs = bytes.map(Docs::read).unwrap_or_default();
            Entry::Plain(Arc::new(plain::PlainExports::discover(engine, component, &docs)?))
        }
    };
    let mut gated: Vec<(&'static Capability, String)> = Vec::new();
    for import in imports.iter() {
        if let Some(capability) = capability::provider_of(import).filter(|c| c.is_gated())
            && !gated.iter().any(|(c, _)| std::ptr::eq(*c, capability))
        {
            gated.push((capability, import.clone()));
        }
    }
    Ok(ToolComponent { digest, imports, gated: gated.into(), pre: instance_pre, entry, tier })
}

/// Refuses a failure message longer than the output limit.
fn check_message(message: &str, limits: &Limits) -> Result<(), SandboxError> {
    match message.len() as u64 {
        size if size > limits.output => Err(SandboxError::OutputTooLarge { size, limit: limits.output }),
        _ => Ok(()),
    }
}

/// What a call of `tool` with `arguments` asks: a tool's run, or, under
/// the names of their MCP methods (never a tool's name, which has no
/// `/`), a resource read or a prompt.
fn operation(tool: &str, arguments: &str) -> Result<Operation, SandboxError> {
    let parse = |what: &str| -> Result<serde_json::Value, SandboxError> {
        serde_json::from_str(arguments)
            .map_err(|e| SandboxError::InvalidArguments(format!("{what} arguments are not JSON: {e}")))
    };
    Ok(match tool {
        offer::READ_RESOURCE => {
            let value = parse("resource")?;
            let Some(uri) = value["uri"].as_str() else {
                return Err(SandboxError::InvalidArguments("a resource read needs a `uri` string".into()));
            };
            let template = value["template"].as_str().map(str::to_owned);
            Operation::Read { uri: uri.to_owned(), template, variables: string_pairs(&value["variables"], "variable")? }
        }
        offer::GET_PROMPT => {
            let value = parse("prompt")?;
            let Some(name) = value["name"].as_str() else {
                return Err(SandboxError::InvalidArguments("a prompt needs a `name` string".into()));
            };
            Operation::Prompt {
                name: name.to_owned(),
                arguments: string_pairs(&value["arguments"], "prompt argument")?,
            }
        }
        _ => Operation::Call { tool: tool.to_owned(), arguments: arguments.to_owned() },
    })
}

/// The members of a JSON object of strings, in order, or which is not a
/// string; nothing when it is absent.
fn string_pairs(object: &serde_json::Value, what: &str) -> Result<Vec<(String, String)>, SandboxError> {
    object
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| match value.as_str() {
            Some(text) => Ok((key.clone(), text.to_owned())),
            None => Err(SandboxError::InvalidArguments(format!("{what} `{key}` must be a string"))),
        })
        .collect()
}

/// The export of a toolmesh-world component.
const HANDLER: &str = "toolmesh:tool/handler@0.1.0";

/// The export of a component with the whole of MCP (resources, prompts,
/// every kind of content).
const SERVER: &str = "toolmesh:tool/server@0.1.0";

/// The most bytes the host copies out of the guest in one transfer: twice
/// the output limit (so a result just over the limit is still measured and
/// reported exactly), plus room for small values.
pub(crate) fn transfer_cap(limits: &Limits) -> u64 {
    limits.output.saturating_mul(2).saturating_add(64 << 10)
}

/// Refuses bytes that are not a component before the compiler sees them,
/// with a message that says what they are instead.
fn check_header(bytes: &[u8]) -> Result<(), SandboxError> {
    match bytes {
        [] => Err(SandboxError::InvalidComponent("the file is empty".into())),
        [0, b'a', b's', b'm', 0x0d, 0x00, 0x01, 0x00, ..] => Ok(()),
        [0, b'a', b's', b'm', 0x01, 0x00, 0x00, 0x00, ..] => Err(SandboxError::InvalidComponent(
            "this is a core WebAssembly module, not a component (build tools with `--target wasm32-wasip2`)".into(),
        )),
        [0, b'a', b's', b'm', ..] => {
            Err(SandboxError::InvalidComponent("unsupported WebAssembly version or layer".into()))
        }
        // WebAssembly text; the parser reports what is wrong with it.
        _ if std::str::from_utf8(bytes).is_ok() => Ok(()),
        _ => Err(SandboxError::InvalidComponent("not a WebAssembly component (no `\\0asm` header)".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        assert!(check_header(b"\0asm\x0d\x00\x01\x00rest").is_ok());
        let core = check_header(b"\0asm\x01\x00\x00\x00").unwrap_err().to_string();
        assert!(core.contains("core WebAssembly module"), "{core}");
        assert!(check_header(b"\x7fELF\x02\x01\xff\xfe").is_err());
        assert!(check_header(b"").is_err());
        assert!(check_header(b";; text\n(component)").is_ok());
    }
}
