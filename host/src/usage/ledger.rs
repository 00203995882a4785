//! Metering: what each caller used of each tool (calls, errors, CPU and
//! GPU time, bytes in and out), summed in a [`Store`] that the gateways of
//! a mesh share, so a report from any of them covers all.
//!
//! Calls are added up in memory and written to the store about once a
//! second (and before every report), one document per caller and tool,
//! by compare-and-swap: a gateway's writes never undo another's.

use super::store::{Store, StoreError, modify};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What calls used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    /// Calls made.
    pub calls: u64,
    /// Calls that ended in an error (the tool's, a limit's or the host's).
    pub errors: u64,
    /// CPU time of the sandboxes that ran them, in microseconds.
    pub cpu_us: u64,
    /// GPU time, in microseconds.
    pub gpu_us: u64,
    /// Bytes of arguments.
    pub bytes_in: u64,
    /// Bytes of results.
    pub bytes_out: u64,
}

impl Usage {
    /// Adds `other` to these sums.
    pub fn add(&mut self, other: &Usage) {
        self.calls = self.calls.saturating_add(other.calls);
        self.errors = self.errors.saturating_add(other.errors);
        self.cpu_us = self.cpu_us.saturating_add(other.cpu_us);
        self.gpu_us = self.gpu_us.saturating_add(other.gpu_us);
        self.bytes_in = self.bytes_in.saturating_add(other.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(other.bytes_out);
    }
}

/// One caller's use of one tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    /// Who called.
    pub caller: String,
    /// The tool's catalog name.
    pub tool: String,
    /// What its calls used.
    #[serde(flatten)]
    pub usage: Usage,
}

/// Distinct (caller, tool) pairs kept between writes; past this, a pair's
/// calls are written at once rather than held.
const MAX_PENDING: usize = 10_000;

/// Sums of usage, in memory until written to the store.
pub struct Ledger {
    pending: Mutex<HashMap<(String, String), Usage>>,
    store: Arc<dyn Store>,
    /// One write-out at a time.
    writing: tokio::sync::Mutex<()>,
}

impl Ledger {
    /// A ledger whose sums are kept in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Ledger { pending: Mutex::default(), store, writing: tokio::sync::Mutex::new(()) }
    }

    /// Adds one call's `usage` by `caller` of `tool`.
    pub fn record(&self, caller: &str, tool: &str, usage: &Usage) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let key = (caller.to_owned(), tool.to_owned());
        if pending.len() >= MAX_PENDING && !pending.contains_key(&key) {
            drop(pending);
            // Rare: a burst of distinct pairs. Written on its own.
            let (store, usage, key) = (self.store.clone(), *usage, key);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(e) = add(store.as_ref(), &key.0, &key.1, &usage).await {
                        tracing::warn!(error = %e, "usage not counted");
                    }
                });
            }
            return;
        }
        pending.entry(key).or_default().add(usage);
    }

    /// Writes what was recorded since the last write to the store; what
    /// cannot be written now is kept for the next time.
    pub async fn write_out(&self) -> Result<(), StoreError> {
        let _one = self.writing.lock().await;
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let mut failed = None;
        let mut unwritten = Vec::new();
        for ((caller, tool), usage) in taken {
            if failed.is_some() {
                unwritten.push(((caller, tool), usage));
                continue;
            }
            if let Err(e) = add(self.store.as_ref(), &caller, &tool, &usage).await {
                failed = Some(e);
                unwritten.push(((caller, tool), usage));
            }
        }
        if !unwritten.is_empty() {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for (key, usage) in unwritten {
                pending.entry(key).or_default().add(&usage);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Every caller's use of every tool, as the store holds it (after
    /// writing this gateway's latest), sorted by caller and tool.
    pub async fn report(&self) -> Result<Vec<UsageRow>, StoreError> {
        self.write_out().await?;
        let mut rows: Vec<UsageRow> = self
            .store
            .scan("u.")
            .await?
            .into_iter()
            .filter_map(|(_, document)| serde_json::from_value(document).ok())
            .collect();
        rows.sort_by(|a, b| (&a.caller, &a.tool).cmp(&(&b.caller, &b.tool)));
        Ok(rows)
    }
}

/// Adds `usage` to the stored sums of `caller`'s calls of `tool`.
async fn add(store: &dyn Store, caller: &str, tool: &str, usage: &Usage) -> Result<(), StoreError> {
    let pair = [caller.as_bytes(), &[0], tool.as_bytes()].concat();
    let key = format!("u.{}", &toolmesh_registry::digest::Digest::of(&pair).hex()[..32]);
    modify(store, &key, |current| {
        let mut sums = current
            .and_then(|v| serde_json::from_value::<UsageRow>(v.clone()).ok())
            .filter(|row| row.caller == caller && row.tool == tool)
            .map(|row| row.usage)
            .unwrap_or_default();
        sums.add(usage);
        let row = UsageRow { caller: caller.to_owned(), tool: tool.to_owned(), usage: sums };
        Ok::<_, ()>((serde_json::to_value(row).unwrap_or(Value::Null), ()))
    })
    .await?
    .ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::store::LocalStore;

    #[tokio::test]
    async fn two_gateways_sum_into_one_report() {
        let store: Arc<dyn Store> = Arc::new(LocalStore::new(None));
        let (a, b) = (Ledger::new(store.clone()), Ledger::new(store.clone()));
        let call = Usage { calls: 1, errors: 0, cpu_us: 1000, gpu_us: 0, bytes_in: 10, bytes_out: 20 };
        a.record("alice", "examples.text.count", &call);
        a.record("alice", "examples.text.count", &call);
        b.record("alice", "examples.text.count", &Usage { errors: 1, ..call });
        b.record("bob", "examples.text.count", &call);
        b.write_out().await.unwrap();
        let rows = a.report().await.unwrap();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!((rows[0].caller.as_str(), rows[0].usage.calls, rows[0].usage.errors), ("alice", 3, 1));
        assert_eq!((rows[0].usage.cpu_us, rows[0].usage.bytes_in, rows[0].usage.bytes_out), (3000, 30, 60));
        assert_eq!((rows[1].caller.as_str(), rows[1].usage.calls), ("bob", 1));
        // Written once: a second report adds nothing.
        assert_eq!(b.report().await.unwrap(), rows);
    }
}
