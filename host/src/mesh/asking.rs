//! The node side of calls from a call's code to other tools: a
//! [`ToolCaller`] that asks the gateway which sent the call (a
//! [`NodeMessage::Tools`] on the call's answer stream) and waits for its
//! [`ToolsAnswer`] on the node's tools subject. The gateway runs the inner
//! call as the outer call's caller; the node only carries the question and
//! the answer.

use super::agent::Answer;
use super::parts::Assembler;
use crate::capability::tools::{CallError, ToolCaller};
use crate::node::wire::{self, NodeMessage, ToolsAnswer, ToolsOp, ToolsOutcome};
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Requests waiting for their answers, by request number.
type Waits = Arc<Mutex<HashMap<u64, oneshot::Sender<ToolsOutcome>>>>;

/// The calls running on this node whose code may ask, by (call id,
/// attempt).
#[derive(Clone, Default)]
pub(super) struct Asking(Arc<Mutex<HashMap<(String, u32), Waits>>>);

impl Asking {
    /// A caller for the code of the call `answer` answers; it may ask
    /// until [`Asking::forget`].
    pub(super) fn caller_for(&self, answer: Answer) -> Arc<dyn ToolCaller> {
        let waits = Waits::default();
        self.lock().insert((answer.call_id.clone(), answer.attempt), waits.clone());
        Arc::new(RemoteTools { answer, waits, next: AtomicU64::new(0) })
    }

    /// Ends the asking of a call that ended.
    pub(super) fn forget(&self, call_id: &str, attempt: u32) {
        self.lock().remove(&(call_id.to_owned(), attempt));
    }

    /// Hands an answer from the tools subject to the request waiting for
    /// it; answers for calls or requests no longer waiting are dropped.
    pub(super) fn deliver(&self, assembler: &mut Assembler, message: async_nats::Message) {
        let stream = message.subject.to_string();
        let payload = match assembler.accept(&stream, &message) {
            Ok(Some(whole)) => whole,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(subject = %stream, error = %e, "unreadable answer to a call from code; dropped");
                return;
            }
        };
        let answer = match wire::decode::<ToolsAnswer>("tools answer", &payload) {
            Ok(answer) => answer,
            Err(e) => {
                tracing::warn!(subject = %stream, error = %e, "unreadable answer to a call from code; dropped");
                return;
            }
        };
        let waits = self.lock().get(&(answer.call_id, answer.attempt)).cloned();
        let waiting = waits.and_then(|waits| waits.lock().unwrap_or_else(|e| e.into_inner()).remove(&answer.request));
        if let Some(waiting) = waiting {
            let _ = waiting.send(answer.outcome);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u32), Waits>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Asks the gateway of one call.
struct RemoteTools {
    answer: Answer,
    waits: Waits,
    next: AtomicU64,
}

/// Forgets a request when its wait ends, however it ends.
struct Forget(Waits, u64);

impl Drop for Forget {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.1);
    }
}

impl RemoteTools {
    fn ask(&self, op: ToolsOp) -> BoxFuture<'static, Result<String, CallError>> {
        let request = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (sender, answered) = oneshot::channel();
        self.waits.lock().unwrap_or_else(|e| e.into_inner()).insert(request, sender);
        let forget = Forget(self.waits.clone(), request);
        let answer = self.answer.clone();
        Box::pin(async move {
            let _forget = forget;
            let ask = NodeMessage::Tools {
                v: answer.v,
                call_id: answer.call_id.clone(),
                attempt: answer.attempt,
                request,
                op,
            };
            answer.send(ask).await;
            match answered.await {
                Ok(ToolsOutcome::Ok(text)) => Ok(text),
                Ok(ToolsOutcome::Error(e)) => Err(e),
                Err(_) => Err(CallError::Failed("the gateway did not answer".into())),
            }
        })
    }
}

impl ToolCaller for RemoteTools {
    fn call(&self, name: String, arguments: String) -> BoxFuture<'static, Result<String, CallError>> {
        self.ask(ToolsOp::Call { name, arguments })
    }

    fn describe(&self, query: String) -> BoxFuture<'static, Result<String, CallError>> {
        self.ask(ToolsOp::Describe { query })
    }
}
