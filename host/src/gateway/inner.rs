//! Calls from a tool's code (`run_python`, `run_javascript`) to the
//! catalog: the [`ToolCaller`] a gateway gives every call it places.
//!
//! An inner call runs as the outer call's caller, through the same path as
//! an MCP call ([`Gateway::run_call`]): the caller's scopes decide what it
//! may reach, its quotas count it, it is placed like any call (on a mesh,
//! spread over nodes), metered and audited with its depth. All calls made
//! from one agent's call, however deep, share one budget ([`Nesting`]):
//! at most [`MAX_CALLS`] in all and [`MAX_AT_ONCE`] at once, and at most
//! [`MAX_DEPTH`] levels below the agent's call. The outer call's time
//! bounds them all: when it ends, its calls still running are stopped.

use super::Gateway;
use super::call::{CallRefusal, CallRequest};
use super::search;
use crate::auth::Caller;
use crate::capability::tools::{CallError, ToolCaller};
use crate::sandbox::{Progress, ProgressSink};
use futures_util::future::BoxFuture;
use rmcp::model::CallToolResult;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use tokio::sync::Semaphore;

/// Levels of calls from code below the agent's call, at most.
pub const MAX_DEPTH: u32 = 3;

/// Calls from code one agent's call may lead to, at every depth together.
pub const MAX_CALLS: u32 = 500;

/// Calls from code of one agent's call that run at once; more wait.
pub const MAX_AT_ONCE: usize = 32;

/// Tools `describe` lists, at most.
const MAX_DESCRIBED: usize = 1000;

/// Where a call sits among the calls made from code for one agent's call.
#[derive(Clone)]
pub(crate) struct Nesting {
    depth: u32,
    tree: Arc<Tree>,
}

/// What all calls made for one agent's call share.
struct Tree {
    calls: AtomicU32,
    at_once: Semaphore,
}

impl Default for Nesting {
    /// An agent's own call: depth 0, a fresh budget.
    fn default() -> Self {
        Nesting { depth: 0, tree: Arc::new(Tree { calls: AtomicU32::new(0), at_once: Semaphore::new(MAX_AT_ONCE) }) }
    }
}

impl Nesting {
    /// Levels below the agent's call (0 for the agent's own).
    pub(crate) fn depth(&self) -> u32 {
        self.depth
    }
}

/// The calls one call may make from its code.
pub(crate) struct InnerCalls {
    gateway: Gateway,
    caller: Caller,
    nesting: Nesting,
    /// Set when a call made here may have effects (its tool is neither
    /// read-only nor idempotent): the outer call is then not retried.
    effects: Arc<AtomicBool>,
    progress: Option<ProgressSink>,
}

impl InnerCalls {
    /// Calls from the code of a call of `caller` at `nesting`, whose
    /// progress reports go to `progress` (the inner calls' too, their
    /// messages naming the tool).
    pub(crate) fn new(
        gateway: Gateway,
        caller: Caller,
        (nesting, effects): (Nesting, Arc<AtomicBool>),
        progress: Option<ProgressSink>,
    ) -> Self {
        InnerCalls { gateway, caller, nesting, effects, progress }
    }
}

impl ToolCaller for InnerCalls {
    fn call(&self, name: String, arguments: String) -> BoxFuture<'static, Result<String, CallError>> {
        let (gateway, caller, nesting) = (self.gateway.clone(), self.caller.clone(), self.nesting.clone());
        let effects = self.effects.clone();
        let progress = self.progress.clone().map(|sink| -> ProgressSink {
            let tool = name.clone();
            Arc::new(move |report: Progress| {
                let message = Some(match report.message {
                    Some(message) => format!("{tool}: {message}"),
                    None => tool.clone(),
                });
                sink(Progress { message, ..report })
            })
        });
        Box::pin(async move {
            let depth = nesting.depth + 1;
            if depth > MAX_DEPTH {
                return Err(CallError::Limit(format!(
                    "calls from code nest at most {MAX_DEPTH} deep: calling `{name}` here would be level {depth}"
                )));
            }
            if nesting.tree.calls.fetch_add(1, Ordering::Relaxed) >= MAX_CALLS {
                return Err(CallError::Limit(format!(
                    "one agent's call may lead to at most {MAX_CALLS} calls from code"
                )));
            }
            let arguments = match serde_json::from_str(&arguments) {
                Ok(Value::Object(arguments)) => arguments,
                Ok(_) => {
                    return Err(CallError::InvalidArguments(format!("the arguments of `{name}` must be an object")));
                }
                Err(e) => {
                    return Err(CallError::InvalidArguments(format!("the arguments of `{name}` are not JSON: {e}")));
                }
            };
            let _turn = nesting.tree.at_once.acquire().await.map_err(|e| CallError::Failed(e.to_string()))?;
            if gateway.catalog().get(&name).is_none_or(|tool| !tool.retry_safe()) {
                effects.store(true, Ordering::Relaxed);
            }
            let request = CallRequest {
                caller,
                name: name.clone(),
                arguments,
                admitted: None,
                progress,
                // Dropped with the outer call, which stops this one.
                cancelled: Box::pin(std::future::pending()),
                nesting: Nesting { depth, tree: nesting.tree.clone() },
                // Code cannot answer questions: a tool that asks is told so.
                ask: None,
            };
            match gateway.run_call(request).await {
                Ok(result) => answer(result),
                Err(CallRefusal::UnknownTool(message)) => Err(CallError::UnknownTool(message)),
                Err(CallRefusal::NotAllowed { tool, scopes }) => {
                    let scopes: Vec<String> = scopes.into_iter().collect();
                    Err(CallError::UnknownTool(format!(
                        "you may not call `{tool}` (a sign-in with one of these scopes may: {})",
                        scopes.join(", ")
                    )))
                }
                Err(CallRefusal::InvalidArguments(message)) => Err(CallError::InvalidArguments(message)),
                Err(CallRefusal::Cancelled) => Err(CallError::Failed("the call was cancelled".into())),
                Err(CallRefusal::Retryable(message)) => Err(CallError::Failed(format!("{message} (try again later)"))),
                Err(CallRefusal::Internal(message)) => Err(CallError::Failed(message)),
                Err(CallRefusal::MissingCapability(missing)) => {
                    Err(CallError::Failed(format!("`{name}` needs what code cannot give: {}", missing.join(", "))))
                }
                Err(CallRefusal::InputRequired(_)) => {
                    Err(CallError::Failed(format!("`{name}` asks its client questions, which code cannot answer")))
                }
            }
        })
    }

    fn describe(&self, query: String) -> BoxFuture<'static, Result<String, CallError>> {
        let (gateway, caller) = (self.gateway.clone(), self.caller.clone());
        Box::pin(async move {
            let catalog = gateway.catalog();
            let found: Vec<Value> =
                search::find(&catalog, &caller, &query, MAX_DESCRIBED).into_iter().map(search::described).collect();
            Ok(Value::Array(found).to_string())
        })
    }
}

/// What code gets for an MCP result: the result as JSON text, or its
/// failure (a quota's refusal as a limit).
fn answer(result: CallToolResult) -> Result<String, CallError> {
    let value = serde_json::to_value(&result).map_err(|e| CallError::Failed(e.to_string()))?;
    if result.is_error != Some(true) {
        return Ok(value.to_string());
    }
    let text: Vec<&str> =
        value["content"].as_array().into_iter().flatten().filter_map(|b| b["text"].as_str()).collect();
    let message = text.join("\n");
    let over_quota = value["_meta"].get("dev.toolmesh/quota").is_some();
    Err(if over_quota { CallError::Limit(message) } else { CallError::Failed(message) })
}
