//! Metering and quotas: what each caller used of each tool, and the limits
//! that keep one caller from eating the mesh.
//!
//! - [`store`]: where counts live: this process, or a NATS key-value
//!   bucket all gateways of a mesh share.
//! - [`ledger`]: usage per caller and tool, summed across gateways.
//! - [`quota`]: calls per minute, CPU-seconds per hour and calls at once,
//!   per caller, enforced across gateways.
//!
//! A gateway has one [`Metering`]; every call passes through it: admitted
//! (or refused with the quota and when to try again), then recorded with
//! what the sandbox measured (CPU and GPU time) and its bytes.

pub mod ledger;
pub mod quota;
pub mod store;

pub use ledger::{Ledger, Usage, UsageRow};
pub use quota::{Admission, AdmittedCall, Quota, QuotaConfig, QuotaKind, QuotaRefusal, Quotas};
pub use store::{LocalStore, NatsStore, Store, StoreError};

use std::sync::Arc;
use std::time::Duration;

/// The NATS bucket of quota counts: per minute, per hour and running calls.
pub const QUOTA_BUCKET: &str = "toolmesh_quota";

/// The NATS bucket of usage sums.
pub const USAGE_BUCKET: &str = "toolmesh_usage";

/// How long quota counts are kept (the longest window, and some).
const QUOTA_MAX_AGE: Duration = Duration::from_secs(2 * 3600);

/// How often a gateway writes its usage sums out.
const WRITE_EVERY: Duration = Duration::from_secs(1);

/// One gateway's metering and quotas.
pub struct Metering {
    ledger: Ledger,
    quotas: Option<Arc<Quotas>>,
}

impl Metering {
    /// Metering kept in this process, enforcing `quotas` (if any) for the
    /// calls of this gateway alone.
    pub fn local(quotas: Option<QuotaConfig>, gateway: &str) -> Arc<Self> {
        let counts: Arc<dyn Store> = Arc::new(LocalStore::new(Some(QUOTA_MAX_AGE)));
        Self::start(Arc::new(LocalStore::new(None)), counts, quotas, gateway)
    }

    /// Metering shared by the gateways on `client`'s NATS (JetStream
    /// key-value buckets), so quotas hold across them and any one reports
    /// all. Without JetStream it falls back to [`Metering::local`], and
    /// says so.
    pub async fn shared(client: &async_nats::Client, quotas: Option<QuotaConfig>, gateway: &str) -> Arc<Self> {
        let opened = async {
            let usage = NatsStore::open(client, USAGE_BUCKET, Duration::ZERO).await?;
            let counts = NatsStore::open(client, QUOTA_BUCKET, QUOTA_MAX_AGE).await?;
            Ok::<_, StoreError>((usage, counts))
        };
        match opened.await {
            Ok((usage, counts)) => {
                tracing::info!("metering and quotas shared through NATS ({USAGE_BUCKET}, {QUOTA_BUCKET})");
                Self::start(Arc::new(usage), Arc::new(counts), quotas, gateway)
            }
            Err(e) => {
                tracing::warn!(error = %e, "metering and quotas are this gateway's own (no JetStream key-value buckets)");
                Self::local(quotas, gateway)
            }
        }
    }

    fn start(usage: Arc<dyn Store>, counts: Arc<dyn Store>, quotas: Option<QuotaConfig>, gateway: &str) -> Arc<Self> {
        let quotas = quotas.map(|config| Quotas::new(config, counts, gateway.to_owned())).filter(|q| q.any());
        let metering = Arc::new(Metering { ledger: Ledger::new(usage), quotas });
        // Written out in the background while the gateway lives.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&metering);
            runtime.spawn(async move {
                let mut tick = tokio::time::interval(WRITE_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(metering) = weak.upgrade() else { return };
                    if let Err(e) = metering.ledger.write_out().await {
                        tracing::warn!(error = %e, "usage not written out yet");
                    }
                }
            });
        }
        metering
    }

    /// The quotas, when any caller has one.
    pub fn quotas(&self) -> Option<&Arc<Quotas>> {
        self.quotas.as_ref()
    }

    /// Adds one call's `usage` by `caller` of `tool`, here and to the
    /// process's metrics.
    pub fn record(&self, caller: &str, tool: &str, usage: &Usage) {
        self.ledger.record(caller, tool, usage);
        let metrics = &crate::metrics::global().gateway;
        let labels = crate::metrics::UsageLabels {
            caller: metrics.callers.label(caller),
            tool: metrics.usage_tools.label(tool),
        };
        metrics.usage_cpu.get_or_create(&labels).inc_by(usage.cpu_us as f64 / 1e6);
        metrics.usage_gpu.get_or_create(&labels).inc_by(usage.gpu_us as f64 / 1e6);
        metrics.usage_bytes_in.get_or_create(&labels).inc_by(usage.bytes_in);
        metrics.usage_bytes_out.get_or_create(&labels).inc_by(usage.bytes_out);
    }

    /// Counts a call of `tool` refused for `refused`, in the metrics and
    /// the audit log.
    pub fn refused(&self, tool: &str, refused: &QuotaRefusal) {
        let metrics = &crate::metrics::global().gateway;
        let labels = crate::metrics::QuotaLabels {
            caller: metrics.callers.label(&refused.caller),
            quota: refused.quota.as_str().into(),
        };
        metrics.quota_refusals.get_or_create(&labels).inc();
        tracing::info!(
            target: "toolmesh::audit",
            caller = %refused.caller,
            tool,
            quota = refused.quota.as_str(),
            outcome = "over_quota",
            "call"
        );
    }

    /// Every caller's use of every tool, over all gateways sharing the store.
    pub async fn report(&self) -> Result<Vec<UsageRow>, StoreError> {
        self.ledger.report().await
    }
}

impl Default for Metering {
    fn default() -> Self {
        Metering { ledger: Ledger::new(Arc::new(LocalStore::new(None))), quotas: None }
    }
}
