//! Calls to other tools from the code, through the node's `tools`
//! capability. The interpreter reaches it only through [`ToolHost`], so
//! tests can stand in for the host.

use toolmesh_guest::bindings::toolmesh::tool::tools::{self as wit, CallError};

/// A failed call: its kind (`not-granted`, `unknown-tool`,
/// `invalid-arguments`, `failed`, `limit`) and message.
pub type Failure = (String, String);

/// What the interpreter asks of the host.
pub trait ToolHost {
    /// Starts a call; its handle.
    fn start(&self, name: &str, arguments: &str) -> Result<u64, Failure>;
    /// Waits for one of `calls`: its handle and the MCP result as JSON text.
    fn wait_any(&self, calls: &[u64]) -> (u64, Result<String, Failure>);
    /// The tools matching `query`, as JSON text.
    fn describe(&self, query: &str) -> Result<String, Failure>;
}

/// The node's `tools` capability.
pub struct Node;

fn failure(error: CallError) -> Failure {
    let (kind, message) = match error {
        CallError::NotGranted(m) => ("not-granted", m),
        CallError::UnknownTool(m) => ("unknown-tool", m),
        CallError::InvalidArguments(m) => ("invalid-arguments", m),
        CallError::Failed(m) => ("failed", m),
        CallError::Limit(m) => ("limit", m),
    };
    (kind.to_owned(), message)
}

impl ToolHost for Node {
    fn start(&self, name: &str, arguments: &str) -> Result<u64, Failure> {
        wit::start(name, arguments).map_err(failure)
    }

    fn wait_any(&self, calls: &[u64]) -> (u64, Result<String, Failure>) {
        let (id, outcome) = wit::wait_any(calls);
        (id, outcome.map_err(failure))
    }

    fn describe(&self, query: &str) -> Result<String, Failure> {
        wit::describe(query).map_err(failure)
    }
}

/// `[ok, value, message]` as JSON text, the form the prelude reads.
pub fn answer<T: serde::Serialize>(outcome: Result<T, Failure>) -> String {
    match outcome {
        Ok(value) => serde_json::json!([true, value, ""]).to_string(),
        Err((kind, message)) => serde_json::json!([false, kind, message]).to_string(),
    }
}
