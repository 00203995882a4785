//! Where calls run. The gateway sees only the [`Invoker`] trait, so it does
//! not care whether the node is in this process or across the network.
//! [`LocalInvoker`] is the in-process node of the embedded default.

use super::front;
use crate::node::Node;
pub use crate::node::runner::{Invocation, InvokeCause, InvokeError, SessionRoute};
use crate::sandbox::CallOutput;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use toolmesh_registry::digest::Digest;
use toolmesh_registry::name::Repository;

/// A boxed future of an invocation's outcome.
pub type InvokeFuture<'a> = Pin<Box<dyn Future<Output = Result<CallOutput, InvokeError>> + Send + 'a>>;

/// A boxed future of loading a component ahead of its calls.
pub type WarmFuture<'a> = Pin<Box<dyn Future<Output = Result<(), InvokeCause>> + Send + 'a>>;

/// Runs calls. Dropping the returned future cancels the call.
pub trait Invoker: Send + Sync + 'static {
    /// Runs `call`.
    fn invoke(&self, call: Invocation) -> InvokeFuture<'_>;

    /// Loads the component of manifest `digest` of `repository` ahead of
    /// its first call, where that is the invoker's to do (an in-process
    /// node); others leave it to whoever runs the calls.
    fn warm<'a>(&'a self, repository: &'a Repository, digest: Digest) -> WarmFuture<'a> {
        let _ = (repository, digest);
        Box::pin(std::future::ready(Ok(())))
    }

    /// Frees `caller`'s session `key` on its node now, where that is the
    /// invoker's to do (an in-process node); whether it was held. Others
    /// leave it to the node's idle TTL.
    fn close_session(&self, caller: &str, key: &str) -> bool {
        let _ = (caller, key);
        false
    }
}

/// The name of the in-process node, as a session's home.
pub const LOCAL_NODE: &str = "local";

/// The in-process node: calls start on the connection's event loop and
/// move to the shared pool when they have to wait.
#[derive(Clone)]
pub struct LocalInvoker {
    node: Node,
}

impl LocalInvoker {
    /// Serves calls with `node`.
    pub fn new(node: Node) -> Self {
        LocalInvoker { node }
    }
}

impl Invoker for LocalInvoker {
    fn invoke(&self, call: Invocation) -> InvokeFuture<'_> {
        // A short call finishes on the connection's event loop; one that
        // has to wait goes on in the shared pool, and so do the next calls
        // of a tool whose first slice ran long.
        let mut kind = std::hash::DefaultHasher::new();
        (call.digest, &call.tool).hash(&mut kind);
        let node = self.node.clone();
        if let Some(session) = &call.session {
            session.ran_on(LOCAL_NODE);
        }
        Box::pin(front::inline_then_pool(kind.finish(), async move { node.run(call).await }))
    }

    fn warm<'a>(&'a self, repository: &'a Repository, digest: Digest) -> WarmFuture<'a> {
        Box::pin(self.node.warm(repository, digest))
    }

    fn close_session(&self, caller: &str, key: &str) -> bool {
        self.node.sandbox().close_session(caller, key)
    }
}
