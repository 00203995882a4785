//! `toolmesh:tool/tools`: calls from a tool's code to other tools of the
//! catalog (what lets `run_python` and `run_javascript` call the mesh).
//!
//! The sandbox does not know the catalog, the caller or where tools run:
//! a call is granted this capability by being given a [`ToolCaller`] (the
//! gateway that placed it hands one over, bound to the outer call's caller,
//! depth and limits). Without one, every function answers `not-granted`.
//!
//! Each started call runs as a task of its own, so calls started together
//! run at once; the guest waits for whichever finishes first. What one
//! call may hold is bounded here, on the node, whatever the gateway says:
//! at most [`MAX_CALLS`] starts, and at most [`MAX_HELD`] bytes of
//! finished results not yet read. Every call still running is stopped
//! when the outer call ends.

use crate::sandbox::CallState;
use crate::sandbox::bindings::toolmesh::tool::tools::{self as wit, Host};
use futures_util::future::{BoxFuture, select_all};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::task::JoinHandle;

/// Calls one outer call may start, at most.
pub const MAX_CALLS: u64 = 256;

/// Bytes of finished results one call may hold before reading them.
pub const MAX_HELD: u64 = 16 << 20;

/// Why a call from code produced no result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case", deny_unknown_fields)]
pub enum CallError {
    /// This call may not call tools.
    #[error("{0}")]
    NotGranted(String),
    /// No such tool, or the caller may not use it.
    #[error("{0}")]
    UnknownTool(String),
    /// The arguments do not fit the tool.
    #[error("{0}")]
    InvalidArguments(String),
    /// The tool ran and failed.
    #[error("{0}")]
    Failed(String),
    /// A limit stopped it.
    #[error("{0}")]
    Limit(String),
}

impl From<CallError> for wit::CallError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::NotGranted(m) => wit::CallError::NotGranted(m),
            CallError::UnknownTool(m) => wit::CallError::UnknownTool(m),
            CallError::InvalidArguments(m) => wit::CallError::InvalidArguments(m),
            CallError::Failed(m) => wit::CallError::Failed(m),
            CallError::Limit(m) => wit::CallError::Limit(m),
        }
    }
}

/// Makes calls to the catalog on behalf of one outer call: given to a call
/// by whoever placed it (a gateway), which decides who the inner calls run
/// as and what they may reach.
pub trait ToolCaller: Send + Sync + 'static {
    /// Calls tool `name` with `arguments` (a JSON object as text); the MCP
    /// result as JSON text.
    fn call(&self, name: String, arguments: String) -> BoxFuture<'static, Result<String, CallError>>;

    /// The tools matching `query` that the caller may use, as the JSON text
    /// `describe` of the interface returns.
    fn describe(&self, query: String) -> BoxFuture<'static, Result<String, CallError>>;
}

/// A started call: stopped when dropped.
struct Running(JoinHandle<Result<String, CallError>>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Future for Running {
    type Output = Result<String, CallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|joined| {
            joined.unwrap_or_else(|e| Err(CallError::Failed(format!("the call stopped before it answered: {e}"))))
        })
    }
}

/// One outer call's calls from code.
#[derive(Default)]
pub(crate) struct ToolCalls {
    caller: Option<Arc<dyn ToolCaller>>,
    running: HashMap<u64, Running>,
    started: u64,
    held: Arc<AtomicU64>,
}

impl ToolCalls {
    /// Calls through `caller`, or none at all.
    pub(crate) fn new(caller: Option<Arc<dyn ToolCaller>>) -> Self {
        ToolCalls { caller, ..Default::default() }
    }

    fn caller(&self) -> Result<&Arc<dyn ToolCaller>, CallError> {
        self.caller.as_ref().ok_or_else(|| {
            CallError::NotGranted(
                "this call may not call tools: only tools published as calling them (their component imports \
                 toolmesh:tool/tools), called through a gateway (MCP, not `tool run`), may"
                    .into(),
            )
        })
    }

    fn start(&mut self, name: String, arguments: String) -> Result<u64, CallError> {
        let caller = self.caller()?;
        if self.started >= MAX_CALLS {
            return Err(CallError::Limit(format!("a call may start at most {MAX_CALLS} calls of tools")));
        }
        let call = caller.call(name, arguments);
        let held = self.held.clone();
        let task = tokio::spawn(async move {
            let text = call.await?;
            let size = text.len() as u64;
            if held.fetch_add(size, Ordering::Relaxed) + size > MAX_HELD {
                held.fetch_sub(size, Ordering::Relaxed);
                return Err(CallError::Limit(format!(
                    "results of calls not yet read would pass {} MiB; read them as they finish",
                    MAX_HELD >> 20
                )));
            }
            Ok(text)
        });
        self.started += 1;
        self.running.insert(self.started, Running(task));
        Ok(self.started)
    }

    async fn wait_any(&mut self, calls: Vec<u64>) -> (u64, Result<String, CallError>) {
        let mut ids = Vec::with_capacity(calls.len().min(MAX_CALLS as usize));
        let mut waits = Vec::with_capacity(ids.capacity());
        for id in calls {
            match self.running.remove(&id) {
                Some(running) => {
                    ids.push(id);
                    waits.push(running);
                }
                None => {
                    self.running.extend(ids.into_iter().zip(waits));
                    return (id, Err(CallError::Failed(format!("no call {id} is waiting: each is answered once"))));
                }
            }
        }
        if waits.is_empty() {
            return (0, Err(CallError::Failed("no calls to wait for".into())));
        }
        let (outcome, index, rest) = select_all(waits).await;
        // `select_all` swap-removes the finished one from the rest: so do the ids.
        let id = ids.swap_remove(index);
        self.running.extend(ids.into_iter().zip(rest));
        if let Ok(text) = &outcome {
            self.held.fetch_sub(text.len() as u64, Ordering::Relaxed);
        }
        (id, outcome)
    }
}

impl Host for CallState {
    async fn start(&mut self, name: String, arguments: String) -> Result<u64, wit::CallError> {
        self.tools.start(name, arguments).map_err(Into::into)
    }

    async fn wait_any(&mut self, calls: Vec<u64>) -> (u64, Result<String, wit::CallError>) {
        let (id, outcome) = self.tools.wait_any(calls).await;
        (id, outcome.map_err(Into::into))
    }

    async fn describe(&mut self, query: String) -> Result<String, wit::CallError> {
        let describe = self.tools.caller().map_err(wit::CallError::from)?.describe(query);
        describe.await.map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Answers after `name` milliseconds with the name, or fails for "fail".
    struct Sleepy;

    impl ToolCaller for Sleepy {
        fn call(&self, name: String, arguments: String) -> BoxFuture<'static, Result<String, CallError>> {
            Box::pin(async move {
                if name == "fail" {
                    return Err(CallError::Failed("it failed".into()));
                }
                if name == "huge" {
                    return Ok("x".repeat(MAX_HELD as usize / 2 + 1));
                }
                tokio::time::sleep(Duration::from_millis(name.parse().unwrap_or(0))).await;
                Ok(format!("{name}:{arguments}"))
            })
        }

        fn describe(&self, query: String) -> BoxFuture<'static, Result<String, CallError>> {
            Box::pin(async move { Ok(format!("[{query:?}]")) })
        }
    }

    fn calls() -> ToolCalls {
        ToolCalls::new(Some(Arc::new(Sleepy)))
    }

    #[tokio::test]
    async fn calls_started_together_finish_in_their_own_order() {
        let mut tools = calls();
        let slow = tools.start("200".into(), "{}".into()).unwrap();
        let fast = tools.start("10".into(), "{}".into()).unwrap();
        let begun = std::time::Instant::now();
        assert_eq!(tools.wait_any(vec![slow, fast]).await, (fast, Ok("10:{}".into())));
        assert_eq!(tools.wait_any(vec![slow]).await, (slow, Ok("200:{}".into())));
        assert!(begun.elapsed() < Duration::from_millis(400), "they ran at once");
        let (id, again) = tools.wait_any(vec![slow]).await;
        assert_eq!(id, slow);
        assert!(matches!(again, Err(CallError::Failed(m)) if m.contains("answered once")));
    }

    #[tokio::test]
    async fn every_handle_gets_its_own_answer_whatever_the_order() {
        let mut tools = calls();
        // Finishing in an order unlike the starting one.
        let delays = [30, 5, 50, 10, 40, 0, 20];
        let started: Vec<(u64, u64)> =
            delays.iter().map(|ms| (tools.start(ms.to_string(), format!("{ms}")).unwrap(), *ms)).collect();
        let mut waiting: Vec<u64> = started.iter().map(|(id, _)| *id).collect();
        while !waiting.is_empty() {
            let (id, outcome) = tools.wait_any(waiting.clone()).await;
            let ms = started.iter().find(|(started_id, _)| *started_id == id).unwrap().1;
            assert_eq!(outcome, Ok(format!("{ms}:{ms}")), "handle {id}");
            waiting.retain(|w| *w != id);
        }
    }

    #[tokio::test]
    async fn an_unknown_handle_leaves_the_others_waiting() {
        let mut tools = calls();
        let a = tools.start("5".into(), "1".into()).unwrap();
        let (id, outcome) = tools.wait_any(vec![a, 99]).await;
        assert_eq!(id, 99);
        assert!(outcome.is_err());
        assert_eq!(tools.wait_any(vec![a]).await, (a, Ok("5:1".into())));
        assert!(tools.wait_any(vec![]).await.1.is_err());
    }

    #[tokio::test]
    async fn failures_and_limits_are_answers() {
        let mut tools = calls();
        let f = tools.start("fail".into(), "{}".into()).unwrap();
        assert_eq!(tools.wait_any(vec![f]).await.1, Err(CallError::Failed("it failed".into())));
        // Two huge results unread: the second passes the bound.
        let (a, b) = (tools.start("huge".into(), "".into()).unwrap(), tools.start("huge".into(), "".into()).unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
        let first = tools.wait_any(vec![a, b]).await;
        let second = tools.wait_any(vec![a, b].into_iter().filter(|id| *id != first.0).collect()).await;
        let limited = [&first.1, &second.1].iter().filter(|o| matches!(o, Err(CallError::Limit(_)))).count();
        assert_eq!(limited, 1, "one fits, the other is refused");
        // Reading frees the bound again.
        let c = tools.start("huge".into(), "".into()).unwrap();
        assert!(tools.wait_any(vec![c]).await.1.is_ok());
        while tools.started < MAX_CALLS {
            tools.start("0".into(), "".into()).unwrap();
        }
        assert!(matches!(tools.start("0".into(), "".into()), Err(CallError::Limit(_))));
    }

    #[tokio::test]
    async fn without_a_caller_nothing_is_granted() {
        let mut tools = ToolCalls::new(None);
        assert!(matches!(tools.start("x".into(), "{}".into()), Err(CallError::NotGranted(_))));
    }

    #[tokio::test]
    async fn calls_still_running_stop_with_their_call() {
        struct Forever(Arc<AtomicU64>);
        impl ToolCaller for Forever {
            fn call(&self, _: String, _: String) -> BoxFuture<'static, Result<String, CallError>> {
                let alive = self.0.clone();
                Box::pin(async move {
                    struct Count(Arc<AtomicU64>);
                    impl Drop for Count {
                        fn drop(&mut self) {
                            self.0.fetch_sub(1, Ordering::SeqCst);
                        }
                    }
                    alive.fetch_add(1, Ordering::SeqCst);
                    let _count = Count(alive);
                    std::future::pending().await
                })
            }
            fn describe(&self, _: String) -> BoxFuture<'static, Result<String, CallError>> {
                Box::pin(async { Ok(String::new()) })
            }
        }
        let alive = Arc::new(AtomicU64::new(0));
        let mut tools = ToolCalls::new(Some(Arc::new(Forever(alive.clone()))));
        let a = tools.start("a".into(), "{}".into()).unwrap();
        tools.start("b".into(), "{}".into()).unwrap();
        // A wait cut short (the outer call timed out) stops its calls too.
        assert!(tokio::time::timeout(Duration::from_millis(20), tools.wait_any(vec![a])).await.is_err());
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(alive.load(Ordering::SeqCst), 1);
        drop(tools);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(alive.load(Ordering::SeqCst), 0);
    }
}
