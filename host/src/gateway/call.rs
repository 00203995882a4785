//! One tool call as the gateway runs it, whoever asked: an MCP request
//! ([`super::mcp`]) or code calling tools ([`super::inner`]). Both go
//! through [`Gateway::run_call`], so the same checks (the caller's
//! rights, the schemas, quotas), metering, metrics and audit apply to
//! every call.

use super::Gateway;
use super::catalog::CatalogTool;
use super::inner::{InnerCalls, Nesting};
use super::invoker::{Invocation, SessionRoute};
use super::mcp::{call_result, error_result, over_quota};
use super::sessions::{self, Home};
use crate::auth::Caller;
use crate::capability::ask::Question;
use crate::sandbox::{Content, ProgressSink, SandboxError};
use crate::usage::Admission;
use rmcp::model::CallToolResult;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// A call to run.
pub(crate) struct CallRequest {
    /// Who asked.
    pub caller: Caller,
    /// The tool's MCP name.
    pub name: String,
    /// The arguments object.
    pub arguments: Map<String, Value>,
    /// The caller's admission, when the HTTP edge took it already.
    pub admitted: Option<Admission>,
    /// Receives the tool's progress reports.
    pub progress: Option<ProgressSink>,
    /// Ends when the caller gives up on the call.
    pub cancelled: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// Where the call sits among calls made from code.
    pub nesting: Nesting,
    /// What the call may ask its client, and the answers so far.
    pub ask: Option<Arc<crate::capability::ask::Asking>>,
}

/// Why a call produced no MCP result.
#[derive(Debug)]
pub(crate) enum CallRefusal {
    /// No tool of that name.
    UnknownTool(String),
    /// The caller may not use the tool; these scopes would let it.
    NotAllowed { tool: String, scopes: BTreeSet<String> },
    /// The arguments do not fit the tool.
    InvalidArguments(String),
    /// The caller gave up on the call.
    Cancelled,
    /// Refused for now; trying again may work.
    Retryable(String),
    /// The host failed.
    Internal(String),
    /// The tool asks its client these questions first.
    InputRequired(BTreeMap<String, Question>),
    /// The tool failed for want of these client capabilities.
    MissingCapability(Vec<String>),
}

/// The client capabilities a failed invocation lacked, if that is why it failed.
pub(crate) fn missing_of(e: &super::InvokeError) -> Option<Vec<String>> {
    match (e.sandbox(), &e.cause) {
        (Some(SandboxError::MissingCapability(missing)), _) => Some(missing.clone()),
        (_, super::InvokeCause::Remote { kind, message, .. }) if kind == "missing_capability" => {
            serde_json::from_str(message).ok()
        }
        _ => None,
    }
}

/// The `_meta` key of a failed call's result that says what kind of
/// failure it was (`tool_failed` when the tool reported it, `trap`,
/// `timeout`, `memory_limit`, … when the sandbox stopped it).
pub const FAILURE_META: &str = "dev.toolmesh/failure";

/// The `isError` result of a call that failed with `message`, marked with
/// its kind.
fn failure_result(message: &str, kind: &str) -> CallToolResult {
    let mut result = error_result(message);
    result.meta = serde_json::from_value(serde_json::json!({ FAILURE_META: kind })).ok();
    result
}

/// The questions a failed invocation asks, if that is why it ended.
pub(crate) fn questions_of(e: &super::InvokeError) -> Option<BTreeMap<String, Question>> {
    match (e.sandbox(), &e.cause) {
        (Some(SandboxError::InputRequired(questions)), _) => Some(questions.clone()),
        (_, super::InvokeCause::Remote { kind, message, .. }) if kind == "input_required" => {
            serde_json::from_str(message).ok()
        }
        _ => None,
    }
}

impl Gateway {
    /// The session a call of `tool` with `arguments` names, with its route:
    /// to its home if it has one, else to be opened.
    async fn session_of(
        &self,
        caller: &Caller,
        tool: &CatalogTool,
        arguments: &Value,
    ) -> Result<Option<(Home, SessionRoute)>, CallRefusal> {
        let Some(argument) = tool.session_argument() else { return Ok(None) };
        let id = match arguments.get(argument) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(id)) if sessions::is_valid_id(id) => id.clone(),
            Some(_) => {
                return Err(CallRefusal::InvalidArguments(format!(
                    "invalid arguments for `{}`: `{argument}` must be 1 to 64 letters, digits, `_`, `.` or `-`",
                    tool.name
                )));
            }
        };
        let homes = self.session_homes();
        let found = homes.find(&caller.name, &tool.name, &id).await.map_err(CallRefusal::Retryable)?;
        let resume = found.is_some();
        let home = found.unwrap_or_else(|| Home {
            id,
            tool: tool.name.clone(),
            node: String::new(),
            tag: sessions::new_tag(),
            closed: false,
        });
        let route = SessionRoute {
            key: format!("{}#{}", home.id, home.tag),
            resume,
            home: resume.then(|| home.node.clone()),
            ..Default::default()
        };
        Ok(Some((home, route)))
    }

    /// Keeps a session's home after its call: recorded (its TTL renewed)
    /// where the call ran, or forgotten once the caller was told the
    /// session was lost. A call stopped by a limit loses the instance on
    /// the node but keeps the home, so the next call hears "session lost".
    async fn after_session_call(
        &self,
        caller: &Caller,
        mut home: Home,
        route: &SessionRoute,
        outcome: &Option<Result<crate::sandbox::CallOutput, super::InvokeError>>,
    ) {
        let homes = self.session_homes();
        let lost = match outcome {
            Some(Err(e)) => matches!(e.kind(), "session" | "node_lost"),
            _ => false,
        };
        let written = match (lost, route.node()) {
            (true, _) => homes.close(&caller.name, &home.tool, &home.id).await.map(|_| ()),
            (false, Some(node)) => {
                home.node = node;
                homes.record(&caller.name, &home).await
            }
            (false, None) => Ok(()),
        };
        if let Err(e) = written {
            tracing::warn!(session = %home.id, error = %e, "cannot keep the session's home");
        }
    }

    /// Runs `request` on a node and answers with its MCP result: a tool's
    /// failure (or a quota's refusal) is an `isError` result, what is not
    /// the tool's to answer a [`CallRefusal`].
    pub(crate) async fn run_call(&self, request: CallRequest) -> Result<CallToolResult, CallRefusal> {
        let CallRequest { caller, name, arguments, admitted, progress, cancelled, nesting, ask } = request;
        let catalog = self.catalog();
        let Some(tool) = catalog.get(&name).cloned() else {
            return Err(CallRefusal::UnknownTool(format!("unknown tool `{name}`")));
        };
        if !caller.may_call(&tool.name) {
            return Err(CallRefusal::NotAllowed { scopes: caller.scopes_to_call(&tool.name), tool: tool.name.clone() });
        }
        let arguments = Value::Object(arguments);
        if let Err(problem) = tool.schemas.check_arguments(&arguments) {
            return Err(CallRefusal::InvalidArguments(format!("invalid arguments for `{}`: {problem}", tool.name)));
        }
        let session = match self.session_of(&caller, &tool, &arguments).await {
            Ok(session) => session,
            Err(refusal) => return Err(refusal),
        };
        let arguments = arguments.to_string();
        let call_id = self.next_call_id();
        // Calls to other tools, as this caller, only for a tool published
        // as making them.
        let effects = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tools = tool.permissions.tools.then(|| {
            let parent = (nesting.clone(), effects.clone());
            Arc::new(InnerCalls::new(self.clone(), caller.clone(), parent, progress.clone()))
                as Arc<dyn crate::capability::tools::ToolCaller>
        });
        let invocation = Invocation {
            repository: tool.repository.clone(),
            digest: tool.digest,
            tool: tool.tool.clone(),
            arguments,
            progress,
            call_id: call_id.clone(),
            request: tool.permissions.clone(),
            // A session's state lives on one node: never retried elsewhere.
            retry_safe: tool.retry_safe() && session.is_none(),
            effects,
            caller: Some(caller.name.clone()),
            meter: Arc::default(),
            tools,
            session: session.as_ref().map(|(_, route)| route.clone()),
            ask,
            updates: None,
            bridge: tool.bridged.as_ref().map(|b| b.call.clone()),
        };
        let outcome =
            match self.invoke_counted(&caller, &tool.name, invocation, admitted, cancelled, nesting.depth()).await {
                Counted::OverQuota(result) => return Ok(result),
                Counted::Ran(outcome) => outcome,
            };
        if let Some((home, route)) = session {
            self.after_session_call(&caller, home, &route, &outcome).await;
        }
        match outcome {
            None => Err(CallRefusal::Cancelled),
            Some(Ok(output)) => {
                // The call's memory reservation covers these copies too.
                let (content, _reservation) = output.into_parts();
                let result = call_result(content);
                match tool.schemas.check_result(result.structured_content.as_ref()) {
                    Ok(()) => Ok(result),
                    Err(problem) => Ok(error_result(&problem)),
                }
            }
            Some(Err(e)) if let Some(questions) = questions_of(&e) => Err(CallRefusal::InputRequired(questions)),
            Some(Err(e)) if let Some(missing) = missing_of(&e) => Err(CallRefusal::MissingCapability(missing)),
            Some(Err(e)) => match e.sandbox() {
                Some(SandboxError::InvalidArguments(message)) => {
                    Err(CallRefusal::InvalidArguments(format!("invalid arguments for `{}`: {message}", tool.name)))
                }
                _ if e.kind() == "invalid_arguments" => {
                    Err(CallRefusal::InvalidArguments(format!("invalid arguments for `{}`: {}", tool.name, e.cause)))
                }
                Some(error) if error.is_tool_failure() || error.is_not_granted() => {
                    Ok(failure_result(&error.to_string(), error.kind()))
                }
                None if e.is_tool_visible() => Ok(failure_result(&e.cause.to_string(), e.kind())),
                _ if e.is_retryable() => {
                    tracing::warn!(call = %call_id, error = %e, "call refused");
                    Err(CallRefusal::Retryable(e.cause.to_string()))
                }
                _ => {
                    tracing::error!(call = %call_id, error = %e, "call failed in the host");
                    Err(CallRefusal::Internal(e.to_string()))
                }
            },
        }
    }

    /// Runs `invocation` of `name` for `caller` under its quota, with
    /// metrics, metering and the audit line every call gets: an MCP tool
    /// call, a call from code, a resource read or a prompt.
    pub(crate) async fn invoke_counted(
        &self,
        caller: &Caller,
        name: &str,
        mut invocation: Invocation,
        admitted: Option<Admission>,
        cancelled: Pin<Box<dyn Future<Output = ()> + Send>>,
        depth: u32,
    ) -> Counted {
        if invocation.updates.is_none() {
            invocation.updates = Some(self.update_sink(invocation.repository.as_str()));
        }
        let metering = self.metering();
        let admission = match (metering.quotas(), admitted) {
            (None, _) => None,
            (Some(quotas), Some(admission)) => Some((quotas.clone(), admission)),
            (Some(quotas), None) => match quotas.admit(&caller.name).await {
                Ok(admission) => Some((quotas.clone(), admission)),
                Err(refused) => {
                    metering.refused(name, &refused);
                    return Counted::OverQuota(over_quota(&refused));
                }
            },
        };
        let bytes_in = invocation.arguments.len() as u64;
        let meter = invocation.meter.clone();
        let (call_id, digest) = (invocation.call_id.clone(), invocation.digest);
        let started = Instant::now();
        let metrics = &crate::metrics::global().gateway;
        let running = crate::metrics::Counting::start(&metrics.in_flight);
        let span = tracing::info_span!("call", id = %call_id, caller = %caller.name, depth);
        let outcome = tokio::select! {
            _ = cancelled => None,
            outcome = self.invoker().invoke(invocation).instrument(span) => Some(outcome),
        };
        drop(running);
        let (outcome_text, phase) = match &outcome {
            None => ("cancelled", None),
            Some(Ok(_)) => ("ok", None),
            Some(Err(e)) => (e.kind(), Some(e.phase)),
        };
        let seconds = started.elapsed().as_secs_f64();
        crate::metrics::record_call(&metrics.calls, &metrics.seconds, name, outcome_text, seconds);
        metrics.tally.record(name, outcome_text, seconds);
        let labels =
            crate::metrics::CallerLabels { caller: metrics.callers.label(&caller.name), outcome: outcome_text.into() };
        metrics.caller_calls.get_or_create(&labels).inc();
        let usage = crate::usage::Usage {
            calls: 1,
            errors: u64::from(outcome_text != "ok"),
            cpu_us: u64::try_from(meter.cpu().as_micros()).unwrap_or(u64::MAX),
            gpu_us: u64::try_from(meter.gpu().as_micros()).unwrap_or(u64::MAX),
            bytes_in,
            bytes_out: match &outcome {
                Some(Ok(output)) => output.iter().map(Content::byte_len).sum(),
                _ => 0,
            },
        };
        metering.record(&caller.name, name, &usage);
        if let Some((quotas, admission)) = admission {
            // Off the answer's path: its slot back, its CPU time counted.
            let cpu = meter.cpu();
            tokio::spawn(async move { quotas.end(admission, cpu).await });
        }
        tracing::info!(
            target: "toolmesh::audit",
            call = %call_id,
            caller = %caller.name,
            tool = %name,
            digest = %digest,
            depth,
            ms = seconds * 1000.0,
            cpu_ms = usage.cpu_us as f64 / 1000.0,
            outcome = outcome_text,
            phase = phase.map(tracing::field::display),
            "call"
        );
        Counted::Ran(outcome)
    }
}

/// What [`Gateway::invoke_counted`] came to.
pub(crate) enum Counted {
    /// The caller's quota refused it: the answer to give.
    OverQuota(CallToolResult),
    /// It ran: its outcome, or `None` when the caller gave up first.
    Ran(Option<Result<crate::sandbox::CallOutput, super::InvokeError>>),
}
