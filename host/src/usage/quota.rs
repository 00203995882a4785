//! Quotas per caller: calls per minute, CPU-seconds per hour and calls at
//! once, read from TOML (`--quotas FILE`) and counted in a [`Store`] that
//! all gateways of a mesh share, so a caller's quota holds whichever
//! gateway it calls through.
//!
//! ```toml
//! # Every caller, unless named below.
//! [default]
//! calls_per_minute = 120
//! cpu_seconds_per_hour = 600
//! concurrent_calls = 4
//!
//! # A caller (a token's subject, or an API key's name): its own values
//! # replace the default's; what it leaves out comes from the default.
//! [caller."build-bot"]
//! calls_per_minute = 1000
//! ```
//!
//! Minutes and hours are the clock's (UTC), the same on every gateway. CPU
//! time is counted when a call ends, so calls already running when a
//! caller reaches its CPU quota still finish.

use super::store::{Store, StoreError, modify};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Quotas that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct QuotaFileError {
    path: String,
    message: String,
}

/// The quotas of every caller.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// What applies to a caller not named in `caller`.
    #[serde(default)]
    pub default: Quota,
    /// Callers with quotas of their own.
    #[serde(default)]
    pub caller: BTreeMap<String, Quota>,
}

/// One caller's limits; an absent one is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Calls started per clock minute.
    pub calls_per_minute: Option<u64>,
    /// CPU time its calls may use per clock hour, in seconds.
    pub cpu_seconds_per_hour: Option<f64>,
    /// Calls running at once.
    pub concurrent_calls: Option<u64>,
}

impl Quota {
    fn is_empty(&self) -> bool {
        *self == Quota::default()
    }
}

impl QuotaConfig {
    /// Reads the quotas at `path`.
    pub fn load(path: &Path) -> Result<Self, QuotaFileError> {
        let fail = |message: String| QuotaFileError { path: path.display().to_string(), message };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
        Self::parse(&text).map_err(fail)
    }

    /// Reads quotas from TOML text; a negative or non-finite CPU quota is refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: QuotaConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        for (who, quota) in
            std::iter::once(("default", &config.default)).chain(config.caller.iter().map(|(k, q)| (k.as_str(), q)))
        {
            if let Some(cpu) = quota.cpu_seconds_per_hour
                && !(cpu.is_finite() && cpu >= 0.0)
            {
                return Err(format!("{who}: cpu_seconds_per_hour must be a number of seconds, not {cpu}"));
            }
        }
        Ok(config)
    }

    /// The limits of `caller`: its own, and the default's for what it leaves out.
    pub fn for_caller(&self, caller: &str) -> Quota {
        let default = self.default;
        match self.caller.get(caller) {
            None => default,
            Some(own) => Quota {
                calls_per_minute: own.calls_per_minute.or(default.calls_per_minute),
                cpu_seconds_per_hour: own.cpu_seconds_per_hour.or(default.cpu_seconds_per_hour),
                concurrent_calls: own.concurrent_calls.or(default.concurrent_calls),
            },
        }
    }
}

/// Which quota a call ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    /// Calls per minute.
    CallsPerMinute,
    /// CPU-seconds per hour.
    CpuSecondsPerHour,
    /// Calls at once.
    ConcurrentCalls,
}

impl QuotaKind {
    /// Its name in the quota file and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaKind::CallsPerMinute => "calls_per_minute",
            QuotaKind::CpuSecondsPerHour => "cpu_seconds_per_hour",
            QuotaKind::ConcurrentCalls => "concurrent_calls",
        }
    }
}

/// A call refused because its caller is over a quota.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`{caller}` has used its quota of {limit}; try again in {} s", retry_seconds(*.retry_after))]
pub struct QuotaRefusal {
    /// Who called.
    pub caller: String,
    /// Which quota.
    pub quota: QuotaKind,
    /// The quota, in words (`5 calls per minute`).
    pub limit: String,
    /// When a call may succeed again.
    pub retry_after: Duration,
}

impl QuotaRefusal {
    /// Whole seconds to wait, at least one (the `Retry-After` value).
    pub fn retry_seconds(&self) -> u64 {
        retry_seconds(self.retry_after)
    }
}

fn retry_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0).max(u64::from(wait.is_zero()))
}

/// How long a gateway's count of running calls stays believed without
/// another word from it: a gateway that stopped while calls ran gives
/// their slots back after this. A gateway with calls running writes its
/// counts again every [`RENEW_EVERY`].
const LEASE: Duration = Duration::from_secs(5 * 60);

/// How often a gateway renews its counts of running calls.
const RENEW_EVERY: Duration = Duration::from_secs(60);

/// Counts calls against quotas, in a store shared by the gateways that
/// enforce them together.
///
/// Each gateway keeps its own count of each caller's running calls in
/// memory and writes that count, whole, into its entry of the caller's
/// running-calls document: a write that fails (the store unreachable, the
/// reply lost) leaves the entry behind for a moment, and the next write,
/// or the renewal, puts it right. Nothing is ever counted twice or lost.
pub struct Quotas {
    config: QuotaConfig,
    store: Arc<dyn Store>,
    /// This gateway's name in the running-calls documents.
    gateway: String,
    /// This gateway's running calls per caller (callers with a
    /// calls-at-once quota only).
    running: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

/// A call let through: give it back with [`Quotas::end`] (or by dropping it,
/// which gives back its slot later, in a task).
pub struct Admission {
    caller: String,
    /// Whether it holds a slot among the caller's concurrent calls.
    holds_slot: bool,
    quotas: Option<Arc<Quotas>>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(quotas) = self.quotas.take().filter(|_| self.holds_slot)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let caller = std::mem::take(&mut self.caller);
            runtime.spawn(async move { quotas.release(&caller).await });
        }
    }
}

/// An admission made before the MCP layer reads the call (by the HTTP
/// edge, so a refusal is a `429`), handed to the handler that runs it.
#[derive(Clone)]
pub struct AdmittedCall(Arc<std::sync::Mutex<Option<Admission>>>);

impl AdmittedCall {
    /// Carries `admission` to the handler.
    pub fn new(admission: Admission) -> Self {
        AdmittedCall(Arc::new(std::sync::Mutex::new(Some(admission))))
    }

    /// The admission, for the one handler that runs the call.
    pub fn take(&self) -> Option<Admission> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// The time now on the clock every gateway shares.
fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// A caller's key part: the same on every gateway, whatever characters
/// its name holds.
fn caller_key(caller: &str) -> String {
    toolmesh_registry::digest::Digest::of(caller.as_bytes()).hex()[..32].to_owned()
}

impl Quotas {
    /// Enforces `config` with counts in `store`, as gateway `gateway`.
    pub fn new(config: QuotaConfig, store: Arc<dyn Store>, gateway: String) -> Arc<Self> {
        let quotas = Arc::new(Quotas { config, store, gateway, running: Default::default() });
        // While calls run, their counts are renewed before the lease ends.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&quotas);
            runtime.spawn(async move {
                loop {
                    tokio::time::sleep(RENEW_EVERY).await;
                    let Some(quotas) = weak.upgrade() else { return };
                    let callers: Vec<String> = quotas.lock_running().keys().cloned().collect();
                    for caller in callers {
                        quotas.write_running(&caller, None).await.ok();
                    }
                }
            });
        }
        quotas
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, u64>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes this gateway's count of `caller`'s running calls into the
    /// shared document; with `limit`, refuses (and writes nothing) when
    /// the calls of every gateway together would be over it.
    async fn write_running(&self, caller: &str, limit: Option<u64>) -> Result<Result<(), QuotaRefusal>, StoreError> {
        let key = format!("active.{}", caller_key(caller));
        let now = now();
        modify(self.store.as_ref(), &key, |current| {
            let mut document = live_entries(current, now);
            let mine = self.lock_running().get(caller).copied().unwrap_or(0);
            if let Some(limit) = limit {
                let others: u64 = document
                    .as_object()
                    .map(|e| e.iter().filter(|(g, _)| **g != self.gateway).filter_map(|(_, v)| v["n"].as_u64()).sum())
                    .unwrap_or(0);
                if others + mine > limit {
                    return Err(refusal(caller, QuotaKind::ConcurrentCalls, limit, now));
                }
            }
            match document.as_object_mut() {
                Some(entries) if mine == 0 => {
                    entries.remove(&self.gateway);
                }
                _ => document[&self.gateway] = json!({"n": mine, "until": (now + LEASE).as_secs()}),
            }
            Ok((document, ()))
        })
        .await
    }

    /// Counts one more (`+1`) or one fewer (`-1`) running call of `caller` here.
    fn count_running(&self, caller: &str, delta: i64) {
        let mut running = self.lock_running();
        let count = running.entry(caller.to_owned()).or_default();
        *count = count.saturating_add_signed(delta);
        if *count == 0 {
            running.remove(caller);
        }
    }

    /// Whether any caller has a quota.
    pub fn any(&self) -> bool {
        !self.config.default.is_empty() || self.config.caller.values().any(|q| !q.is_empty())
    }

    /// Whether `caller` is over a quota now, without counting a call (for
    /// an early answer at the HTTP edge).
    pub async fn check(&self, caller: &str) -> Result<(), QuotaRefusal> {
        let quota = self.config.for_caller(caller);
        if quota.is_empty() {
            return Ok(());
        }
        let key = caller_key(caller);
        let now = now();
        if let Some(limit) = quota.concurrent_calls {
            let running = self.read(&format!("active.{key}")).await.map_or(0, |v| running(&v, now));
            if running >= limit {
                return Err(refusal(caller, QuotaKind::ConcurrentCalls, limit, now));
            }
        }
        self.check_cpu(caller, &key, &quota, now).await?;
        if let Some(limit) = quota.calls_per_minute {
            let calls = self.read(&calls_key(&key, now)).await.and_then(|v| v.as_u64()).unwrap_or(0);
            if calls >= limit {
                return Err(refusal(caller, QuotaKind::CallsPerMinute, limit, now));
            }
        }
        Ok(())
    }

    /// Counts a call of `caller` against its quotas, or says which one it
    /// is over. A store that cannot be reached lets calls through (with a
    /// warning): quotas protect the mesh, they never stop it.
    pub async fn admit(self: &Arc<Self>, caller: &str) -> Result<Admission, QuotaRefusal> {
        let mut admission = Admission { caller: caller.to_owned(), holds_slot: false, quotas: Some(self.clone()) };
        let quota = self.config.for_caller(caller);
        if quota.is_empty() {
            return Ok(admission);
        }
        let key = caller_key(caller);
        let now = now();
        self.check_cpu(caller, &key, &quota, now).await?;
        if let Some(limit) = quota.concurrent_calls {
            // Counted here first, so the count written is always whole.
            self.count_running(caller, 1);
            admission.holds_slot = true;
            match self.write_running(caller, Some(limit)).await {
                Ok(Ok(())) => {}
                // Nothing was written: taken off this gateway's count at once.
                Ok(Err(refused)) => {
                    admission.holds_slot = false;
                    self.count_running(caller, -1);
                    return Err(refused);
                }
                Err(e) => tracing::warn!(error = %e, "cannot share the count of running calls; let through"),
            }
        }
        if let Some(limit) = quota.calls_per_minute {
            let counted = modify(self.store.as_ref(), &calls_key(&key, now), |current| {
                let calls = current.and_then(Value::as_u64).unwrap_or(0);
                if calls >= limit {
                    return Err(refusal(caller, QuotaKind::CallsPerMinute, limit, now));
                }
                Ok((json!(calls + 1), ()))
            })
            .await;
            match counted {
                Ok(Ok(())) => {}
                Ok(Err(refused)) => {
                    if admission.holds_slot {
                        admission.holds_slot = false;
                        self.release(caller).await;
                    }
                    return Err(refused);
                }
                Err(e) => tracing::warn!(error = %e, "cannot count a call; let through"),
            }
        }
        Ok(admission)
    }

    /// Ends an admitted call that used `cpu`: its slot back, its CPU time counted.
    pub async fn end(&self, mut admission: Admission, cpu: Duration) {
        admission.quotas = None;
        if admission.holds_slot {
            self.release(&admission.caller).await;
        }
        if self.config.for_caller(&admission.caller).cpu_seconds_per_hour.is_none() || cpu.is_zero() {
            return;
        }
        let key = format!("cpu.{}.{}", caller_key(&admission.caller), now().as_secs() / 3600);
        let micros = u64::try_from(cpu.as_micros()).unwrap_or(u64::MAX);
        let added = modify(self.store.as_ref(), &key, |current| {
            Ok::<_, ()>((json!(current.and_then(Value::as_u64).unwrap_or(0).saturating_add(micros)), ()))
        })
        .await;
        if let Err(e) = added {
            tracing::warn!(error = %e, "cannot count a call's CPU time");
        }
    }

    async fn release(&self, caller: &str) {
        self.count_running(caller, -1);
        if let Err(e) = self.write_running(caller, None).await {
            tracing::warn!(error = %e, "cannot share the count of running calls (the next write puts it right)");
        }
    }

    async fn check_cpu(&self, caller: &str, key: &str, quota: &Quota, now: Duration) -> Result<(), QuotaRefusal> {
        let Some(limit) = quota.cpu_seconds_per_hour else { return Ok(()) };
        let used =
            self.read(&format!("cpu.{key}.{}", now.as_secs() / 3600)).await.and_then(|v| v.as_u64()).unwrap_or(0);
        if used as f64 >= limit * 1e6 {
            return Err(refusal(caller, QuotaKind::CpuSecondsPerHour, limit, now));
        }
        Ok(())
    }

    async fn read(&self, key: &str) -> Option<Value> {
        match self.store.get(key).await {
            Ok(found) => found.map(|(value, _)| value),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a quota count; let through");
                None
            }
        }
    }
}

fn calls_key(caller_key: &str, now: Duration) -> String {
    format!("calls.{caller_key}.{}", now.as_secs() / 60)
}

/// The running-calls document without the entries of gateways whose lease ran out.
fn live_entries(current: Option<&Value>, now: Duration) -> Value {
    let mut document = current.filter(|v| v.is_object()).cloned().unwrap_or_else(|| json!({}));
    if let Some(entries) = document.as_object_mut() {
        entries.retain(|_, entry| entry["until"].as_u64().is_some_and(|until| until > now.as_secs()));
    }
    document
}

/// Calls running for a caller, over all gateways whose lease holds.
fn running(document: &Value, now: Duration) -> u64 {
    live_entries(Some(document), now).as_object().map_or(0, |e| e.values().filter_map(|v| v["n"].as_u64()).sum())
}

fn refusal(caller: &str, quota: QuotaKind, limit: impl std::fmt::Display, now: Duration) -> QuotaRefusal {
    let (limit, retry_after) = match quota {
        QuotaKind::CallsPerMinute => {
            (format!("{limit} calls per minute"), Duration::from_secs(60 - now.as_secs() % 60))
        }
        QuotaKind::ConcurrentCalls => (format!("{limit} calls at once"), Duration::from_secs(1)),
        QuotaKind::CpuSecondsPerHour => {
            (format!("{limit} CPU-seconds per hour"), Duration::from_secs(3600 - now.as_secs() % 3600))
        }
    };
    QuotaRefusal { caller: caller.to_owned(), quota, limit, retry_after }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::store::LocalStore;

    fn quotas(text: &str, store: &Arc<LocalStore>, gateway: &str) -> Arc<Quotas> {
        Quotas::new(QuotaConfig::parse(text).unwrap(), store.clone(), gateway.into())
    }

    #[test]
    fn callers_inherit_what_they_leave_out() {
        let config = QuotaConfig::parse(
            "[default]\ncalls_per_minute = 5\nconcurrent_calls = 2\n[caller.bot]\ncalls_per_minute = 100\n",
        )
        .unwrap();
        assert_eq!(config.for_caller("bot").calls_per_minute, Some(100));
        assert_eq!(config.for_caller("bot").concurrent_calls, Some(2));
        assert_eq!(config.for_caller("alice").calls_per_minute, Some(5));
        assert_eq!(config.for_caller("alice").cpu_seconds_per_hour, None);
        assert!(QuotaConfig::parse("[default]\ncpu_seconds_per_hour = -1\n").is_err());
        assert!(QuotaConfig::parse("[default]\ncalls_per_hour = 5\n").is_err(), "unknown quotas are refused");
    }

    #[tokio::test]
    async fn calls_per_minute_are_shared_by_gateways_on_one_store() {
        let store = Arc::new(LocalStore::new(None));
        let (a, b) = (
            quotas("[default]\ncalls_per_minute = 3\n", &store, "ga"),
            quotas("[default]\ncalls_per_minute = 3\n", &store, "gb"),
        );
        // A minute boundary between the calls would reset the count.
        while now().as_secs() % 60 > 55 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for gateway in [&a, &b, &a] {
            let admitted = gateway.admit("alice").await.unwrap();
            gateway.end(admitted, Duration::ZERO).await;
        }
        let refused = b.admit("alice").await.err().unwrap();
        assert_eq!(refused.quota, QuotaKind::CallsPerMinute);
        assert!((1..=60).contains(&refused.retry_seconds()), "{refused}");
        assert!(refused.to_string().contains("3 calls per minute"), "{refused}");
        assert_eq!(a.check("alice").await.unwrap_err().quota, QuotaKind::CallsPerMinute);
        assert!(a.admit("bob").await.is_ok(), "another caller is unaffected");
    }

    #[tokio::test]
    async fn concurrent_calls_are_given_back_when_calls_end_or_are_dropped() {
        let store = Arc::new(LocalStore::new(None));
        let (a, b) = (
            quotas("[default]\nconcurrent_calls = 2\n", &store, "ga"),
            quotas("[default]\nconcurrent_calls = 2\n", &store, "gb"),
        );
        let first = a.admit("alice").await.unwrap();
        let second = b.admit("alice").await.unwrap();
        assert_eq!(a.admit("alice").await.err().unwrap().quota, QuotaKind::ConcurrentCalls);
        a.end(first, Duration::ZERO).await;
        let third = a.admit("alice").await.unwrap();
        drop(second);
        // Given back by a task.
        let mut tries = 0;
        while b.check("alice").await.is_err() {
            tries += 1;
            assert!(tries < 100, "the dropped call's slot came back");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(third);
    }

    #[tokio::test]
    async fn a_lost_write_is_put_right_by_the_next() {
        let store = Arc::new(LocalStore::new(None));
        let q = quotas("[default]\nconcurrent_calls = 1\n", &store, "ga");
        let first = q.admit("alice").await.unwrap();
        // Another writer scribbles a wrong count over this gateway's entry
        // (as a write whose reply was lost would leave it).
        let key = format!("active.{}", caller_key("alice"));
        let (_, revision) = store.get(&key).await.unwrap().unwrap();
        let until = (now() + LEASE).as_secs();
        assert!(store.swap(&key, json!({"ga": {"n": 7, "until": until}}), Some(revision)).await.unwrap());
        q.end(first, Duration::ZERO).await;
        // The count written on release is this gateway's own: none running.
        assert!(q.admit("alice").await.is_ok(), "the slot came back");
    }

    #[tokio::test]
    async fn cpu_time_counts_when_calls_end() {
        let store = Arc::new(LocalStore::new(None));
        let q = quotas("[default]\ncpu_seconds_per_hour = 0.5\n", &store, "ga");
        while now().as_secs() % 3600 > 3590 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let admitted = q.admit("alice").await.unwrap();
        q.end(admitted, Duration::from_millis(300)).await;
        let admitted = q.admit("alice").await.unwrap();
        q.end(admitted, Duration::from_millis(300)).await;
        let refused = q.admit("alice").await.err().unwrap();
        assert_eq!(refused.quota, QuotaKind::CpuSecondsPerHour);
        assert!(refused.to_string().contains("0.5 CPU-seconds per hour"), "{refused}");
    }
}
