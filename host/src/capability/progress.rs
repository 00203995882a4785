//! `toolmesh:tool/progress`: progress reports from a tool, handed to
//! whoever made the call (the CLI, or the gateway relaying them to an MCP
//! client).
//!
//! A tool may report as often as it likes; what reaches the caller is
//! bounded. [`ProgressQueue`] keeps at most [`QUEUE_LEN`] reports, the
//! newest replacing the last queued one once it is full (latest wins), so
//! a tool that reports in a tight loop costs a fixed amount of memory and
//! never waits for a slow consumer.

use crate::sandbox::CallState;
use crate::sandbox::bindings::toolmesh::tool::progress::Host;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

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

/// Receives a call's progress reports. It is called on the call's own
/// thread and must not block.
pub type ProgressSink = Arc<dyn Fn(Progress) + Send + Sync>;

/// Longest progress message passed on, in bytes.
const MAX_MESSAGE: usize = 1024;

/// `message` cut to [`MAX_MESSAGE`] bytes (at a character's boundary).
pub fn clip_message(message: &str) -> String {
    let mut cut = message.len().min(MAX_MESSAGE);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    message[..cut].to_owned()
}

/// Reports a [`ProgressQueue`] holds at most.
pub const QUEUE_LEN: usize = 16;

/// A bounded, coalescing queue of progress reports between a call (which
/// pushes without ever waiting) and a relay (which takes them at its own
/// pace).
#[derive(Debug, Default)]
pub struct ProgressQueue {
    state: Mutex<QueueState>,
    ready: Notify,
}

#[derive(Debug, Default)]
struct QueueState {
    reports: VecDeque<Progress>,
    closed: bool,
    coalesced: u64,
}

impl ProgressQueue {
    /// An empty, open queue.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Queues `report`; when the queue is full it replaces the newest
    /// queued report instead, so the latest is always kept.
    pub fn push(&self, report: Progress) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.closed {
            return;
        }
        if state.reports.len() < QUEUE_LEN {
            state.reports.push_back(report);
        } else if let Some(last) = state.reports.back_mut() {
            *last = report;
            state.coalesced += 1;
        }
        drop(state);
        self.ready.notify_one();
    }

    /// The oldest queued report, if any.
    pub fn pop(&self) -> Option<Progress> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).reports.pop_front()
    }

    /// Ends the queue: later pushes are ignored, and [`Self::next`] returns
    /// `None` once the queued reports are taken.
    pub fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.ready.notify_one();
    }

    /// Whether [`Self::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).closed
    }

    /// How many reports were merged into a later one because the queue was full.
    pub fn coalesced(&self) -> u64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).coalesced
    }

    /// Waits for the next report; `None` once the queue is closed and empty.
    pub async fn next(&self) -> Option<Progress> {
        loop {
            let notified = self.ready.notified();
            {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(report) = state.reports.pop_front() {
                    return Some(report);
                }
                if state.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// A sink that pushes into this queue.
    pub fn sink(self: &Arc<Self>) -> ProgressSink {
        let queue = self.clone();
        Arc::new(move |report| queue.push(report))
    }
}

impl Host for CallState {
    fn report(&mut self, done: f64, total: Option<f64>, message: Option<String>) {
        // Non-finite numbers are not valid JSON; drop such reports.
        if !done.is_finite() || total.is_some_and(|t| !t.is_finite()) {
            return;
        }
        if let Some(sink) = &self.progress {
            let message = message.map(|m| clip_message(&m));
            sink(Progress { done, total, message });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(done: u32) -> Progress {
        Progress { done: f64::from(done), total: None, message: None }
    }

    #[test]
    fn a_flood_keeps_the_first_reports_and_the_latest() {
        let queue = ProgressQueue::new();
        for i in 1..=1_000_000 {
            queue.push(report(i));
        }
        let kept: Vec<f64> = std::iter::from_fn(|| queue.pop()).map(|p| p.done).collect();
        assert_eq!(kept.len(), QUEUE_LEN);
        assert_eq!(&kept[..QUEUE_LEN - 1], &(1..QUEUE_LEN as u32).map(f64::from).collect::<Vec<_>>()[..]);
        assert_eq!(kept[QUEUE_LEN - 1], 1_000_000.0);
        assert_eq!(queue.coalesced(), 1_000_000 - QUEUE_LEN as u64);
    }

    #[tokio::test]
    async fn next_drains_then_ends_after_close() {
        let queue = ProgressQueue::new();
        let sink = queue.sink();
        sink(report(1));
        sink(report(2));
        queue.close();
        sink(report(3));
        assert_eq!(queue.next().await, Some(report(1)));
        assert_eq!(queue.next().await, Some(report(2)));
        assert_eq!(queue.next().await, None);
    }

    #[tokio::test]
    async fn next_wakes_on_a_later_push() {
        let queue = ProgressQueue::new();
        let waiter = tokio::spawn({
            let queue = queue.clone();
            async move { queue.next().await }
        });
        tokio::task::yield_now().await;
        queue.push(report(7));
        assert_eq!(waiter.await.unwrap(), Some(report(7)));
    }
}
