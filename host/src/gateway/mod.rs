//! The gateway: one MCP server whose tool list is the registry's catalog,
//! placing every call on a node through an [`Invoker`].
//!
//! - [`catalog`]: the tool list, built from manifests alone (pure).
//! - [`invoker`]: where calls run ([`LocalInvoker`] for the in-process node).
//! - [`mcp`]: the rmcp `ServerHandler` (the only rmcp user), and the one
//!   way a tool's content becomes an MCP `CallToolResult`.
//! - [`schema`]: enforces the tools' published input and output schemas.
//! - [`http`]: streamable HTTP at `/mcp` with the edge's safety checks.
//! - [`front`]: serves the HTTP routes from connection-pinned event loops.
//! - [`placement`]: which node takes a call when there are several (pure).
//! - `call`: one call as the gateway runs it, for MCP and for code alike.
//! - `inner`: calls from a tool's code, as the outer call's caller.
//! - [`search`]: tool search and TypeScript-style signatures.
//! - [`offers`]: the packages' resources and prompts, and their docs (pure).
//! - `reads`: resource reads and prompts, run on nodes like calls.
//! - [`questions`]: a call's questions to its client, and request states.
//! - [`tasks`]: calls that run as tasks, polled with `tasks/get`.
//! - [`sessions`]: where each session lives, so its calls go there.

mod a2a;
mod call;
pub mod catalog;
pub mod front;
pub mod http;
mod inner;
pub mod invoker;
mod listen;
pub mod listings;
pub mod mcp;
pub mod offers;
mod origin;
pub mod placement;
pub mod questions;
mod reads;
pub mod schema;
pub mod search;
pub mod sessions;
pub mod tasks;
pub mod updates;

pub use catalog::{BridgedNode, BridgedTool, Catalog, CatalogTool};
pub use invoker::{Invocation, InvokeCause, InvokeError, InvokeFuture, Invoker, LocalInvoker};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use toolmesh_registry::api::catalog_entries;
use toolmesh_registry::store::FsStore;

/// How often the catalog is re-read even without a change notification
/// (another process may publish into the same directory).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(2);

/// The gateway's shared state; cheap to clone (one per MCP session).
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    /// The catalog and its MCP tool descriptions, replaced together.
    catalog: RwLock<(Arc<Catalog>, Arc<mcp::ToolList>)>,
    version: tokio::sync::watch::Sender<u64>,
    invoker: Arc<dyn Invoker>,
    next_call: AtomicU64,
    /// Starts this gateway's call ids, so they are unique among gateways
    /// and the same id names a call in every process's log.
    call_prefix: String,
    bare_names: Vec<String>,
    /// What callers use, and their quotas.
    metering: RwLock<Arc<crate::usage::Metering>>,
    /// Whether tools/list shows only `search_tools` and a few tools.
    tool_search: RwLock<Option<Arc<search::ToolSearch>>>,
    /// Where sessions live.
    sessions: RwLock<Arc<sessions::SessionHomes>>,
    states: RwLock<Arc<questions::RequestStates>>,
    tasks: RwLock<Arc<tasks::Tasks>>,
    updates: RwLock<Arc<updates::ResourceUpdates>>,
    legacy: listen::LegacySubscriptions,
    /// What the catalog is built from: the registry's entries and the
    /// nodes' bridged servers.
    sources: std::sync::Mutex<CatalogSources>,
}

/// What a catalog is built from: the registry's entries and the nodes'
/// bridged servers.
type CatalogSources = (Vec<toolmesh_registry::api::CatalogEntry>, Vec<catalog::BridgedNode>);

/// A random start for call ids (the process id and time if there is no random source).
fn call_prefix() -> String {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => hex::encode(bytes),
        Err(_) => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            format!("{:x}{:x}", std::process::id(), now.subsec_nanos())
        }
    }
}

impl Gateway {
    /// A gateway with an empty catalog that runs calls through `invoker`.
    pub fn new(invoker: Arc<dyn Invoker>) -> Self {
        Self::with_bare_names(invoker, Vec::new())
    }

    /// Like [`Gateway::new`], exposing the tools of the repositories in
    /// `bare_names` under their bare names.
    pub fn with_bare_names(invoker: Arc<dyn Invoker>, bare_names: Vec<String>) -> Self {
        Gateway {
            inner: Arc::new(Inner {
                catalog: RwLock::default(),
                version: tokio::sync::watch::Sender::new(0),
                invoker,
                next_call: AtomicU64::new(1),
                call_prefix: call_prefix(),
                bare_names,
                metering: RwLock::default(),
                tool_search: RwLock::default(),
                sessions: RwLock::new(Arc::new(sessions::SessionHomes::local(
                    crate::config::SessionLimits::default().idle_ttl,
                ))),
                states: RwLock::new(Arc::new(questions::RequestStates::random())),
                tasks: RwLock::new(Arc::new(tasks::Tasks::local())),
                updates: RwLock::new(Arc::new(updates::ResourceUpdates::local())),
                legacy: Default::default(),
                sources: Default::default(),
            }),
        }
    }

    /// The current catalog.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.inner.catalog.read().unwrap_or_else(|e| e.into_inner()).0.clone()
    }

    /// The MCP descriptions of the current catalog's tools.
    pub(crate) fn tool_list(&self) -> Arc<mcp::ToolList> {
        self.inner.catalog.read().unwrap_or_else(|e| e.into_inner()).1.clone()
    }

    /// Installs `catalog`; returns whether the tool list changed (and so
    /// subscribers were told).
    pub fn set_catalog(&self, catalog: Catalog) -> bool {
        if *self.catalog() == catalog {
            return false;
        }
        let list = Arc::new(mcp::ToolList::build(&catalog));
        let mut current = self.inner.catalog.write().unwrap_or_else(|e| e.into_inner());
        tracing::info!(tools = catalog.len(), "tool list changed");
        *current = (Arc::new(catalog), list);
        drop(current);
        self.inner.version.send_modify(|v| *v += 1);
        true
    }

    /// A receiver that sees every change of the tool list.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.version.subscribe()
    }

    /// This gateway's name among the gateways of a mesh (new at every start).
    pub fn id(&self) -> &str {
        &self.inner.call_prefix
    }

    /// Meters calls and enforces quotas with `metering` from now on.
    pub fn set_metering(&self, metering: Arc<crate::usage::Metering>) {
        *self.inner.metering.write().unwrap_or_else(|e| e.into_inner()) = metering;
    }

    /// What callers use, and their quotas.
    pub fn metering(&self) -> Arc<crate::usage::Metering> {
        self.inner.metering.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Lists only `search_tools` and the tools `mode` names from now on
    /// (every tool stays callable), or, with `None`, every tool.
    pub fn set_tool_search(&self, mode: Option<search::ToolSearch>) {
        *self.inner.tool_search.write().unwrap_or_else(|e| e.into_inner()) = mode.map(Arc::new);
        self.inner.version.send_modify(|v| *v += 1);
    }

    /// The tool search mode, when on.
    pub fn tool_search(&self) -> Option<Arc<search::ToolSearch>> {
        self.inner.tool_search.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Keeps session homes in `homes` from now on.
    pub fn set_session_homes(&self, homes: sessions::SessionHomes) {
        *self.inner.sessions.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(homes);
    }

    /// Where sessions live.
    pub fn session_homes(&self) -> Arc<sessions::SessionHomes> {
        self.inner.sessions.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Seals request states with `states`: a key shared by the gateways of
    /// a mesh, so any of them takes the next round of a request.
    pub fn set_request_states(&self, states: questions::RequestStates) {
        *self.inner.states.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(states);
    }

    /// What seals and opens request states.
    pub fn request_states(&self) -> Arc<questions::RequestStates> {
        self.inner.states.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn invoker(&self) -> &dyn Invoker {
        self.inner.invoker.as_ref()
    }

    pub(crate) fn next_call_id(&self) -> String {
        format!("{}-{}", self.inner.call_prefix, self.inner.next_call.fetch_add(1, Ordering::Relaxed))
    }

    /// Rebuilds the catalog from `store`; returns whether it changed.
    pub async fn refresh_from(&self, store: &FsStore) -> Result<bool, String> {
        let entries = catalog_entries(store, None).await.map_err(|e| format!("{e:?}"))?;
        Ok(self.set_entries(entries))
    }

    /// Rebuilds the catalog with the registry's `entries` (and the bridged
    /// servers known); returns whether it changed.
    pub fn set_entries(&self, entries: Vec<toolmesh_registry::api::CatalogEntry>) -> bool {
        self.rebuild(|sources| sources.0 = entries)
    }

    /// Rebuilds the catalog with the nodes' `bridged` servers (and the
    /// registry's entries known); returns whether it changed.
    pub fn set_bridged(&self, bridged: Vec<catalog::BridgedNode>) -> bool {
        self.rebuild(|sources| sources.1 = bridged)
    }

    /// Changes the catalog's sources with `change` and installs the
    /// catalog they build; returns whether it changed.
    fn rebuild(&self, change: impl FnOnce(&mut CatalogSources)) -> bool {
        let mut sources = self.inner.sources.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut sources);
        let catalog = Catalog::build_with(sources.0.clone(), &self.inner.bare_names, &sources.1);
        self.set_catalog(catalog)
    }

    /// Keeps the catalog's bridged servers in step with `bridges`, the
    /// servers of the in-process node named `node`. Ends when the gateway
    /// or the bridges go.
    pub fn follow_bridges(&self, bridges: Arc<crate::bridge::Bridges>, node: &str) -> tokio::task::JoinHandle<()> {
        let gateway = Arc::downgrade(&self.inner);
        let mut changes = bridges.subscribe();
        let bridges = Arc::downgrade(&bridges);
        let name = node.to_owned();
        tokio::spawn(async move {
            loop {
                let (Some(inner), Some(bridges)) = (gateway.upgrade(), bridges.upgrade()) else { return };
                let servers = bridges.listings();
                drop(bridges);
                let node = catalog::BridgedNode { id: invoker::LOCAL_NODE.into(), name: name.clone(), servers };
                Gateway { inner }.set_bridged(if node.servers.is_empty() { Vec::new() } else { vec![node] });
                if changes.changed().await.is_err() {
                    return;
                }
            }
        })
    }

    /// Has the invoker load every component of the catalog ahead of its
    /// first call, one after another in the background, and each new one as
    /// it is published; so no caller's first call waits for a compile
    /// unless it comes before its component's turn. A component is tried
    /// once (one that fails to load is left to its first call). Ends when
    /// the gateway is dropped.
    pub fn warm_catalog(&self) -> tokio::task::JoinHandle<()> {
        let gateway = Arc::downgrade(&self.inner);
        let mut changes = self.subscribe();
        tokio::spawn(async move {
            let mut warmed = std::collections::HashSet::new();
            loop {
                let Some(inner) = gateway.upgrade() else { return };
                let gateway_now = Gateway { inner };
                let catalog = gateway_now.catalog();
                let (started, mut loaded) = (std::time::Instant::now(), 0);
                for tool in catalog.tools().filter(|t| t.bridged.is_none()) {
                    if !warmed.insert(tool.digest) {
                        continue;
                    }
                    match gateway_now.invoker().warm(&tool.repository, tool.digest).await {
                        Ok(()) => {
                            loaded += 1;
                            tracing::debug!(repository = %tool.repository, digest = %tool.digest, "loaded ahead of calls")
                        }
                        Err(e) => {
                            tracing::debug!(repository = %tool.repository, error = %e, "not loaded ahead of calls")
                        }
                    }
                }
                if loaded > 0 {
                    // From here on no compile competes with calls for the CPU.
                    let seconds = format!("{:.1}", started.elapsed().as_secs_f64());
                    tracing::info!(components = loaded, seconds, "catalog loaded ahead of calls");
                }
                drop(gateway_now);
                if changes.changed().await.is_err() {
                    return;
                }
            }
        })
    }

    /// Keeps the catalog in step with `store`: checked at once when this
    /// process stores a manifest and every [`REFRESH_INTERVAL`] for other
    /// writers, rebuilt only when the store's tags changed.
    pub fn follow(&self, store: FsStore) -> tokio::task::JoinHandle<()> {
        let gateway = self.clone();
        tokio::spawn(async move {
            let mut changes = store.subscribe();
            let mut seen = None;
            loop {
                // Rebuild only when a tag was created or moved since last time.
                let stamp = store.tags_stamp().await.ok();
                if stamp.is_none() || stamp != seen {
                    match gateway.refresh_from(&store).await {
                        Ok(_) => seen = stamp,
                        Err(e) => tracing::warn!(error = %e, "cannot read the catalog"),
                    }
                }
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    _ = tokio::time::sleep(REFRESH_INTERVAL) => {}
                }
            }
        })
    }
}
