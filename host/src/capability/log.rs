//! `toolmesh:tool/log`: a tool's log lines go to the host's log, tagged with
//! the call they belong to, up to a byte budget per call.

use crate::sandbox::CallState;
use crate::sandbox::bindings::toolmesh::tool::log::{Host, Level};

/// What each line costs beyond its text, so a flood of empty lines spends
/// the budget too.
const LINE_COST: u64 = 64;

/// How many log bytes a call may still write, and how many it lost.
#[derive(Debug)]
pub struct LogBudget {
    left: u64,
    dropped_lines: u64,
}

impl LogBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> Self {
        LogBudget { left: bytes, dropped_lines: 0 }
    }

    /// Takes a line of `len` bytes from the budget; false when it is spent.
    fn take(&mut self, len: usize) -> bool {
        match self.left.checked_sub(len as u64 + LINE_COST) {
            Some(left) => {
                self.left = left;
                true
            }
            None => {
                self.left = 0;
                self.dropped_lines += 1;
                false
            }
        }
    }

    /// How many lines were dropped because the budget was spent.
    pub fn dropped_lines(&self) -> u64 {
        self.dropped_lines
    }
}

impl Host for CallState {
    fn log(&mut self, level: Level, message: String) {
        if !self.log.take(message.len()) {
            return;
        }
        let call = self.call_id.as_str();
        match level {
            Level::Trace => tracing::trace!(target: "toolmesh::guest", call, "{message}"),
            Level::Debug => tracing::debug!(target: "toolmesh::guest", call, "{message}"),
            Level::Info => tracing::info!(target: "toolmesh::guest", call, "{message}"),
            Level::Warn => tracing::warn!(target: "toolmesh::guest", call, "{message}"),
            Level::Error => tracing::error!(target: "toolmesh::guest", call, "{message}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_runs_out_and_counts_drops() {
        let mut b = LogBudget::new(10 + 2 * LINE_COST);
        assert!(b.take(6));
        assert!(!b.take(6));
        assert!(!b.take(1));
        assert_eq!(b.dropped_lines(), 2);
        let mut empty = LogBudget::new(64 << 10);
        let kept = (0..1_000_000).filter(|_| empty.take(0)).count() as u64;
        assert_eq!(kept, (64 << 10) / LINE_COST, "empty lines spend the budget too");
    }
}
