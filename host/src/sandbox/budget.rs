//! The node's memory budget: every call reserves the most memory it may
//! come to use (guest memories, the host's copies of its result, error and
//! output, its stacks) before it starts, and gives it back once its result
//! has been shaped for the caller (the reservation travels with the result,
//! see [`super::CallOutput`]).
//! A call that cannot get its share in time is refused with
//! [`SandboxError::NodeBusy`], so a node under hostile load answers "busy"
//! instead of meeting the kernel's OOM killer.

use super::error::SandboxError;
use crate::config::{Limits, SandboxConfig};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget is counted in units of this many bytes.
const UNIT: u64 = 64 << 10;

/// Host memory a call costs beyond its limits: store, instance and WASI
/// state, and the request and response buffers around it.
const CALL_OVERHEAD: u64 = 1 << 20;

/// Bytes of host memory a result may take per byte the guest returned,
/// while the call's reservation is held: the text lifted out of the guest,
/// the parsed JSON tree (a `serde_json::Value` takes up to ~16 bytes per
/// byte of dense JSON such as `[0,0,…]`), the structured-content copy of
/// it, and the MCP text and base64 copies.
const RESULT_EXPANSION: u64 = 36;

/// Bytes reserved for calls running on this node. Clones share one budget.
#[derive(Clone)]
pub struct MemoryBudget {
    total: u64,
    units: Arc<Semaphore>,
}

/// A call's share of the budget, given back when dropped.
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
}

impl MemoryBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> Self {
        let units = (bytes / UNIT).min(Semaphore::MAX_PERMITS as u64) as usize;
        MemoryBudget { total: units as u64 * UNIT, units: Arc::new(Semaphore::new(units)) }
    }

    /// The whole budget in bytes.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes not reserved right now.
    pub fn available(&self) -> u64 {
        self.units.available_permits() as u64 * UNIT
    }

    /// Reserves `bytes`, waiting at most `wait` for running calls to give
    /// memory back.
    pub async fn reserve(&self, bytes: u64, wait: Duration) -> Result<Reservation, SandboxError> {
        let busy = || SandboxError::NodeBusy { needed: bytes, budget: self.total };
        let units = self.units_of(bytes)?;
        let permit = match self.units.clone().try_acquire_many_owned(units) {
            Ok(permit) => permit,
            Err(_) => tokio::time::timeout(wait, self.units.clone().acquire_many_owned(units))
                .await
                .map_err(|_| busy())?
                .map_err(|_| busy())?,
        };
        Ok(Reservation { _permit: permit })
    }

    /// Reserves `bytes` if the budget has them now, without waiting.
    pub fn try_reserve(&self, bytes: u64) -> Result<Reservation, SandboxError> {
        let units = self.units_of(bytes)?;
        let permit = self
            .units
            .clone()
            .try_acquire_many_owned(units)
            .map_err(|_| SandboxError::NodeBusy { needed: bytes, budget: self.total })?;
        Ok(Reservation { _permit: permit })
    }

    /// The units `bytes` take, or why they never fit.
    fn units_of(&self, bytes: u64) -> Result<u32, SandboxError> {
        let too_large =
            || SandboxError::LimitAboveMaximum { what: "memory a call reserves", asked: bytes, max: self.total };
        let units = u32::try_from(bytes.div_ceil(UNIT)).map_err(|_| too_large())?;
        if u64::from(units) * UNIT > self.total {
            return Err(too_large());
        }
        Ok(units)
    }
}

/// The most memory one call under `limits` may cost the node: its guest
/// memories, the host's copies of its result and captured output, and its
/// stacks.
pub fn call_cost(limits: &Limits, config: &SandboxConfig) -> u64 {
    limits
        .memory
        .saturating_add(limits.output.saturating_mul(RESULT_EXPANSION))
        // stdout and stderr are each kept up to the log limit.
        .saturating_add(limits.log.saturating_mul(2))
        // The fiber stack the call runs on (see `engine::build`).
        .saturating_add(config.max_wasm_stack.saturating_add(2 << 20))
        .saturating_add(CALL_OVERHEAD)
}

/// The default budget: three quarters of the memory this process may use
/// (the machine's RAM, or its cgroup's limit when lower).
pub fn machine_default() -> u64 {
    let total = physical_memory().unwrap_or(4 << 30);
    let total = cgroup_limit().map_or(total, |limit| limit.min(total));
    total / 4 * 3
}

/// `MemTotal` of `/proc/meminfo`.
fn physical_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The memory limit of this process's cgroup (v2), if it has one.
fn cgroup_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_then_refuse() {
        let budget = MemoryBudget::new(10 << 20);
        let first = budget.reserve(6 << 20, Duration::ZERO).await.unwrap();
        assert_eq!(budget.available(), 4 << 20);
        let refused = budget.reserve(6 << 20, Duration::from_millis(20)).await.err().unwrap();
        assert!(
            matches!(refused, SandboxError::NodeBusy { needed, budget } if needed == 6 << 20 && budget == 10 << 20)
        );
        drop(first);
        let second = budget.reserve(6 << 20, Duration::ZERO).await;
        assert!(second.is_ok(), "memory given back is reserved again");
    }

    #[test]
    fn try_reserve_takes_what_is_free_now_or_refuses() {
        let budget = MemoryBudget::new(8 << 20);
        let shared = budget.clone();
        let held = shared.try_reserve(6 << 20).unwrap();
        assert_eq!(budget.available(), 2 << 20, "clones share one budget");
        assert!(matches!(budget.try_reserve(4 << 20), Err(SandboxError::NodeBusy { .. })));
        drop(held);
        assert!(budget.try_reserve(4 << 20).is_ok());
        assert!(matches!(budget.try_reserve(9 << 20), Err(SandboxError::LimitAboveMaximum { .. })));
    }

    #[tokio::test]
    async fn a_waiting_call_gets_memory_given_back() {
        let budget = std::sync::Arc::new(MemoryBudget::new(8 << 20));
        let held = budget.reserve(8 << 20, Duration::ZERO).await.unwrap();
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(8 << 20, Duration::from_secs(10)).await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        assert!(waiter.await.unwrap());
    }

    #[tokio::test]
    async fn more_than_the_whole_budget_is_refused_at_once() {
        let budget = MemoryBudget::new(4 << 20);
        let started = std::time::Instant::now();
        let refused = budget.reserve(5 << 20, Duration::from_secs(60)).await.err().unwrap();
        assert!(matches!(refused, SandboxError::LimitAboveMaximum { .. }), "{refused}");
        assert!(started.elapsed() < Duration::from_secs(30), "refused without waiting");
    }

    #[test]
    fn the_default_cost_covers_memory_output_and_stacks() {
        let config = SandboxConfig::default();
        let cost = call_cost(&config.limits, &config);
        assert_eq!(cost, (256 << 20) + 36 * (1 << 20) + 2 * (64 << 10) + (10 << 20) + (1 << 20));
        assert!(machine_default() > 0);
    }
}
