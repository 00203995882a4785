//! `toolmesh:tool/progress`: progress reports from a tool, handed to
//! whoever made the call (the CLI, or the gateway relaying them to an MCP
//! client).

use crate::sandbox::CallState;
use crate::sandbox::bindings::toolmesh::tool::progress::Host;
use std::sync::Arc;

/// One progress report.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Units of work done.
    pub done: f64,
    /// Units of work in all, when known.
    pub total: Option<f64>,
    /// A message for the user.
    pub message: Option<String>,
}

/// Receives a call's progress reports.
pub type ProgressSink = Arc<dyn Fn(Progress) + Send + Sync>;

/// Longest progress message passed on, in bytes.
const MAX_MESSAGE: usize = 1024;

impl Host for CallState {
    fn report(&mut self, done: f64, total: Option<f64>, message: Option<String>) {
        // Non-finite numbers are not valid JSON; drop such reports.
        if !done.is_finite() || total.is_some_and(|t| !t.is_finite()) {
            return;
        }
        if let Some(sink) = &self.progress {
            let message = message.map(|mut m| {
                if m.len() > MAX_MESSAGE {
                    let mut cut = MAX_MESSAGE;
                    while !m.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    m.truncate(cut);
                }
                m
            });
            sink(Progress { done, total, message });
        }
    }
}
