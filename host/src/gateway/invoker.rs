//! Where calls run. The gateway sees only the [`Invoker`] trait, so it does
//! not care whether the node is in this process or across the network.
//! [`LocalInvoker`] is the in-process node of the embedded default.

use crate::sandbox::{CallOptions, Content, ProgressSink, Sandbox, SandboxError, ToolComponent};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use toolmesh_registry::digest::Digest;
use toolmesh_registry::name::{ManifestRef, Repository};
use toolmesh_registry::oci::Manifest;
use toolmesh_registry::store::FsStore;

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
}

/// Why a call produced no result.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The component could not be fetched.
    #[error("cannot fetch the component {digest}: {reason}")]
    Fetch {
        /// The manifest digest.
        digest: Digest,
        /// Why.
        reason: String,
    },
    /// The sandbox refused or stopped the call, or the tool failed.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

/// A boxed future of an invocation's outcome.
pub type InvokeFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<Content>, InvokeError>> + Send + 'a>>;

/// Runs calls. Dropping the returned future cancels the call.
pub trait Invoker: Send + Sync + 'static {
    /// Runs `call`.
    fn invoke(&self, call: Invocation) -> InvokeFuture<'_>;
}

/// Runs calls in this process's sandbox, fetching components by digest from
/// a local store and keeping each compiled component for later calls.
pub struct LocalInvoker {
    sandbox: Arc<Sandbox>,
    store: FsStore,
    components: Mutex<HashMap<Digest, ToolComponent>>,
}

impl LocalInvoker {
    /// A node over `sandbox` that fetches from `store`.
    pub fn new(sandbox: Arc<Sandbox>, store: FsStore) -> Self {
        LocalInvoker { sandbox, store, components: Mutex::default() }
    }

    async fn component(&self, repository: &Repository, digest: Digest) -> Result<ToolComponent, InvokeError> {
        if let Some(found) = self.components.lock().unwrap_or_else(|e| e.into_inner()).get(&digest) {
            return Ok(found.clone());
        }
        let fetch_error = |reason: String| InvokeError::Fetch { digest, reason };
        let (bytes, _, _) = self
            .store
            .get_manifest(repository, &ManifestRef::Digest(digest))
            .await
            .map_err(|e| fetch_error(e.to_string()))?;
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| fetch_error(e.to_string()))?;
        let layer = manifest.wasm_layer().ok_or_else(|| fetch_error("not a Wasm component artifact".into()))?;
        let wasm = self.store.read_blob(&layer.digest).await.map_err(|e| fetch_error(e.to_string()))?;
        let sandbox = self.sandbox.clone();
        // Compiling takes a while on a miss: keep it off the async threads.
        let component = tokio::task::spawn_blocking(move || sandbox.load(&wasm))
            .await
            .map_err(|e| fetch_error(e.to_string()))??;
        self.components.lock().unwrap_or_else(|e| e.into_inner()).insert(digest, component.clone());
        Ok(component)
    }
}

impl Invoker for LocalInvoker {
    fn invoke(&self, call: Invocation) -> InvokeFuture<'_> {
        Box::pin(async move {
            let component = self.component(&call.repository, call.digest).await?;
            let options =
                CallOptions { progress: call.progress, call_id: Some(call.call_id), ..CallOptions::default() };
            Ok(self.sandbox.call(&component, &call.tool, &call.arguments, options).await?)
        })
    }
}
