//! Calling other tools of the catalog from a tool: the gateway that placed
//! the call grants it, and the inner calls run as the outer call's caller,
//! within its limits. Calls started together run at once.
//!
//! ```ignore
//! let slug = toolmesh_guest::tools::call("examples.text.slugify", &json!({"text": "Hi there"}))?;
//! let all = toolmesh_guest::tools::gather(&[("examples.text.slugify", json!({"text": "a"})), ("examples.hello.greet", json!({"name": "b"}))]);
//! ```

use crate::bindings::toolmesh::tool::tools as wit;
use serde_json::Value;

/// Why a call produced no result: not granted, an unknown or forbidden
/// tool, bad arguments, the tool's failure, or a limit.
pub use wit::CallError;

/// Starts calling `name` with `arguments` (a JSON object); returns its
/// handle for [`wait_any`] at once.
pub fn start(name: &str, arguments: &Value) -> Result<u64, CallError> {
    wit::start(name, &arguments.to_string())
}

/// Waits for the first of `calls` to finish: its handle and its value
/// (see [`value_of`]).
pub fn wait_any(calls: &[u64]) -> (u64, Result<Value, CallError>) {
    let (id, outcome) = wit::wait_any(calls);
    (id, outcome.and_then(|text| parse(&text)))
}

/// Calls `name` with `arguments` and waits for its value.
pub fn call(name: &str, arguments: &Value) -> Result<Value, CallError> {
    let id = start(name, arguments)?;
    wait_any(&[id]).1
}

/// Makes all `calls` at once; their values in the same order.
pub fn gather(calls: &[(&str, Value)]) -> Vec<Result<Value, CallError>> {
    let mut out: Vec<Option<Result<Value, CallError>>> = vec![None; calls.len()];
    let mut waiting = Vec::new();
    for (index, (name, arguments)) in calls.iter().enumerate() {
        match start(name, arguments) {
            Ok(id) => waiting.push((id, index)),
            Err(e) => out[index] = Some(Err(e)),
        }
    }
    while !waiting.is_empty() {
        let ids: Vec<u64> = waiting.iter().map(|(id, _)| *id).collect();
        let (id, outcome) = wait_any(&ids);
        match waiting.iter().position(|(waiting_id, _)| *waiting_id == id) {
            Some(at) => out[waiting.swap_remove(at).1] = Some(outcome),
            None => break,
        }
    }
    out.into_iter().map(|o| o.unwrap_or_else(|| Err(CallError::Failed("no answer".into())))).collect()
}

/// The tools matching `query` (all when empty) that this call may use,
/// best first: objects with `name`, `description`, `inputSchema`,
/// `outputSchema` and a TypeScript-style `signature`.
pub fn describe(query: &str) -> Result<Value, CallError> {
    let text = wit::describe(query)?;
    serde_json::from_str(&text).map_err(|e| CallError::Failed(format!("the host's answer is not JSON: {e}")))
}

/// The value of an MCP result: its structured content, else its text,
/// else its content list.
pub fn value_of(result: Value) -> Value {
    if let Some(structured) = result.get("structuredContent").filter(|v| !v.is_null()) {
        return structured.clone();
    }
    let content = result.get("content").and_then(Value::as_array).cloned().unwrap_or_default();
    if content.iter().all(|c| c["type"] == "text") {
        let text: Vec<&str> = content.iter().filter_map(|c| c["text"].as_str()).collect();
        return Value::String(text.join("\n"));
    }
    Value::Array(content)
}

fn parse(text: &str) -> Result<Value, CallError> {
    serde_json::from_str(text)
        .map(value_of)
        .map_err(|e| CallError::Failed(format!("the host's answer is not JSON: {e}")))
}
