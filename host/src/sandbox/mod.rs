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
//! 1. a slot is taken (at most `max_concurrent_calls` run at once);
//! 2. a store is made with a WASI context that grants clocks and random only;
//! 3. the component is instantiated from its pre-linked `InstancePre`;
//! 4. the call runs on a fiber; every epoch tick checks the deadline, and a
//!    timer stops calls blocked in host functions;
//! 5. the result is checked (size, UTF-8, JSON) and the store dropped.
//!
//! Dropping the future returned by [`Sandbox::call`] cancels the call at its
//! next epoch tick.

pub(crate) mod bindings;
mod cache;
mod content;
mod engine;
mod error;
mod state;
mod stdio;

pub use crate::capability::progress::{Progress, ProgressSink};
pub use cache::CompileCache;
pub use content::{Annotations, Content, ToolDescriptor, is_valid_tool_name, mcp_error_result, mcp_result};
pub use engine::TICK;
pub use error::{SandboxError, humanize_bytes};
pub(crate) use state::CallState;

use crate::config::{Limits, SandboxConfig};
use bindings::ToolPre;
use bindings::toolmesh::tool::types::ToolError;
use state::{LimitHit, LimitReached};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::Semaphore;
use toolmesh_registry::digest::Digest;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store, Trap, UpdateDeadline, WasmBacktrace};

/// Interface prefixes a component may import from this host.
const PROVIDED: &[&str] =
    &["wasi:io/", "wasi:clocks/", "wasi:random/", "wasi:cli/", "wasi:filesystem/", "wasi:sockets/", "toolmesh:tool/"];
const PROVIDED_TEXT: &str = "wasi:io, wasi:clocks, wasi:random, wasi:cli, wasi:filesystem and wasi:sockets \
     (files, environment and network denied), toolmesh:tool/log and toolmesh:tool/progress";

/// The raised error when an epoch tick finds the call past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("deadline reached")]
struct DeadlineReached;

/// Runs tool components. Cheap to share behind an `Arc`; calls may run
/// concurrently.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<CallState>,
    config: SandboxConfig,
    cache: Option<CompileCache>,
    slots: Semaphore,
    next_call: AtomicU64,
    _ticker: engine::Ticker,
}

/// A loaded component, compiled and linked, ready to run calls.
#[derive(Clone)]
pub struct ToolComponent {
    digest: Digest,
    imports: Arc<[String]>,
    pre: ToolPre<CallState>,
}

impl ToolComponent {
    /// The sha256 of the component's bytes.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// The names of everything the component imports.
    pub fn imports(&self) -> &[String] {
        &self.imports
    }
}

/// Per-call options; the default runs under the sandbox's default limits.
#[derive(Default, Clone)]
pub struct CallOptions {
    /// Limits of this call instead of the sandbox's defaults. They may not
    /// exceed the engine's maxima.
    pub limits: Option<Limits>,
    /// Receives the tool's progress reports.
    pub progress: Option<ProgressSink>,
    /// An identifier for log lines; one is made up if absent.
    pub call_id: Option<String>,
}

impl Sandbox {
    /// Builds the engine, linker and cache for `config`.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        let engine = engine::build(&config)?;
        let mut linker = Linker::<CallState>::new(&engine);
        let link_err = |e: wasmtime::Error| SandboxError::Engine(format!("cannot link host interfaces: {e:#}"));
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link_err)?;
        bindings::Tool::add_to_linker::<_, HasSelf<CallState>>(&mut linker, |state| state).map_err(link_err)?;
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
        let ticker = engine::Ticker::start(engine.clone())?;
        Ok(Sandbox {
            slots: Semaphore::new(config.max_concurrent_calls.max(1) as usize),
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

    /// The wasmtime engine (for benchmarks and tools that precompile).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles (or loads from the cache) and links the component `bytes`.
    ///
    /// Refuses core modules, malformed bytes, components that import
    /// anything this host does not provide (naming the import), and
    /// components that do not export `toolmesh:tool/handler`. This compiles
    /// on a cache miss, which may take a while: call it off async threads.
    pub fn load(&self, bytes: &[u8]) -> Result<ToolComponent, SandboxError> {
        check_header(bytes)?;
        let digest = Digest::of(bytes);
        let cached = self.cache.as_ref().and_then(|c| c.load(&self.engine, &digest));
        let component = match cached {
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
        self.link(digest, &component)
    }

    /// Links an already compiled component (for benchmarks and caches).
    pub fn link(&self, digest: Digest, component: &Component) -> Result<ToolComponent, SandboxError> {
        let imports: Arc<[String]> =
            component.component_type().imports(&self.engine).map(|(name, _)| name.to_string()).collect();
        let instance_pre = self.linker.instantiate_pre(component).map_err(|e| {
            match imports.iter().find(|name| !PROVIDED.iter().any(|p| name.starts_with(p))) {
                Some(import) => SandboxError::UnsupportedImport { import: import.clone(), provided: PROVIDED_TEXT },
                None => SandboxError::InvalidComponent(format!("{e:#}")),
            }
        })?;
        let pre = ToolPre::new(instance_pre).map_err(|e| {
            SandboxError::InvalidComponent(format!(
                "it does not export `toolmesh:tool/handler@0.1.0` (build it with toolmesh-guest): {e:#}"
            ))
        })?;
        Ok(ToolComponent { digest, imports, pre })
    }

    /// Asks the component which tools it offers, in a fresh instance under
    /// the default limits, and checks the answer.
    pub async fn describe(&self, component: &ToolComponent) -> Result<Vec<ToolDescriptor>, SandboxError> {
        let limits = self.config.limits.clone();
        let raw = self
            .run(component, &limits, CallOptions::default(), |handler, store| {
                Box::pin(async move { handler.call_describe(store).await })
            })
            .await?;
        content::descriptors(raw)
    }

    /// Runs tool `tool` of `component` with JSON `arguments` in a fresh
    /// instance, and returns its checked content.
    pub async fn call(
        &self,
        component: &ToolComponent,
        tool: &str,
        arguments: &str,
        options: CallOptions,
    ) -> Result<Vec<Content>, SandboxError> {
        let limits = options.limits.clone().unwrap_or_else(|| self.config.limits.clone());
        self.check_limits(&limits)?;
        let (tool, arguments) = (tool.to_owned(), arguments.to_owned());
        let result = self
            .run(component, &limits, options, move |handler, store| {
                Box::pin(async move { handler.call_call(store, &tool, &arguments).await })
            })
            .await?;
        match result {
            Ok(items) => content::contents(items, limits.output),
            Err(error) => {
                let (ToolError::InvalidArguments(message) | ToolError::Failed(message)) = &error;
                if message.len() as u64 > limits.output {
                    return Err(SandboxError::OutputTooLarge { size: message.len() as u64, limit: limits.output });
                }
                Err(match error {
                    ToolError::InvalidArguments(m) => SandboxError::InvalidArguments(m),
                    ToolError::Failed(m) => SandboxError::ToolFailed(m),
                })
            }
        }
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

    /// Instantiates `component` in a new store under `limits` and runs `f`
    /// on its handler export, turning every way it can fail into a
    /// [`SandboxError`].
    async fn run<R, F>(
        &self,
        component: &ToolComponent,
        limits: &Limits,
        options: CallOptions,
        f: F,
    ) -> Result<R, SandboxError>
    where
        F: for<'a> FnOnce(
            &'a bindings::exports::toolmesh::tool::handler::Guest,
            &'a mut Store<CallState>,
        ) -> std::pin::Pin<Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>>,
    {
        let _slot =
            self.slots.acquire().await.map_err(|_| SandboxError::Engine("the sandbox is shutting down".into()))?;
        let call_id = options.call_id.unwrap_or_else(|| format!("c{}", self.next_call.fetch_add(1, Ordering::Relaxed)));
        let mut store = Store::new(&self.engine, CallState::new(call_id, limits, options.progress));
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Err(wasmtime::Error::new(DeadlineReached))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let deadline = tokio::time::Instant::from_std(store.data().deadline) + TICK;
        let outcome = tokio::time::timeout_at(deadline, async {
            let instance = component.pre.instantiate_async(&mut store).await?;
            f(instance.toolmesh_tool_handler(), &mut store).await
        })
        .await;
        flush_guest_output(store.data());
        match outcome {
            Err(_elapsed) => Err(SandboxError::Timeout { limit: limits.timeout }),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(classify(error, store.data(), limits)),
        }
    }
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

/// Maps an error out of wasmtime to what actually happened.
fn classify(error: wasmtime::Error, state: &CallState, limits: &Limits) -> SandboxError {
    match state.limiter.hit {
        Some(LimitHit::Memory { desired }) => {
            return SandboxError::MemoryLimit { limit: limits.memory, requested: desired };
        }
        Some(LimitHit::Table { .. }) => {
            return SandboxError::TableLimit { limit: u64::from(limits.table_elements) };
        }
        None => {}
    }
    if error.is::<DeadlineReached>() {
        return SandboxError::Timeout { limit: limits.timeout };
    }
    if error.is::<LimitReached>() {
        return SandboxError::MemoryLimit { limit: limits.memory, requested: limits.memory };
    }
    if error.chain().any(|cause| cause.is::<std::str::Utf8Error>()) {
        return SandboxError::InvalidOutput("a string is not valid UTF-8".into());
    }
    let mut message = match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => error.root_cause().to_string(),
    };
    if let Some(panic) = panic_message(&state.stderr.peek()) {
        message = format!("{message} ({panic})");
    }
    if let Some(backtrace) = error.downcast_ref::<WasmBacktrace>() {
        // wasmtime's rendering demangles names; skip its heading line.
        let rendered = backtrace.to_string();
        let frames: Vec<&str> = rendered.lines().skip(1).take(12).map(str::trim).collect();
        if !frames.is_empty() {
            message = format!("{message}\nwasm backtrace:\n  {}", frames.join("\n  "));
        }
    }
    SandboxError::Trap { message }
}

/// The panic line a Rust guest printed to stderr before aborting, if any.
fn panic_message(stderr: &str) -> Option<String> {
    let mut lines = stderr.lines().skip_while(|line| !line.contains("panicked at"));
    let at = lines.next()?;
    let what = lines.next().unwrap_or("").trim();
    let mut text = format!("{} {}", at.trim().trim_end_matches(':'), what).trim().to_owned();
    if let Some(start) = text.find("panicked at") {
        text.drain(..start);
    }
    text.truncate(text.char_indices().nth(500).map_or(text.len(), |(i, _)| i));
    Some(text)
}

/// Sends what the guest printed to the host log, tagged with the call.
fn flush_guest_output(state: &CallState) {
    for (stream, capture) in [("stdout", &state.stdout), ("stderr", &state.stderr)] {
        let (text, dropped) = capture.take_for_log();
        if !text.is_empty() {
            tracing::info!(target: "toolmesh::guest", call = %state.call_id, stream, dropped_bytes = dropped, "{}", text.trim_end());
        }
    }
    if state.log.dropped_lines() > 0 {
        tracing::warn!(target: "toolmesh::guest", call = %state.call_id, dropped_lines = state.log.dropped_lines(), "log budget spent; lines dropped");
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

    #[test]
    fn finds_the_panic_line() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:10:5:\nboom\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(panic_message(stderr).as_deref(), Some("panicked at src/lib.rs:10:5 boom"));
        assert_eq!(panic_message("just noise"), None);
    }
}
