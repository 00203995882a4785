//! What one call used of the node: CPU time (of the threads that ran the
//! guest, never the wall clock) and GPU time, measured while it runs, for
//! metering and quotas.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// A call's running totals. Shared between whoever starts the call and the
/// sandbox (or the node across the mesh) that measures it, and read once
/// the call has ended, however it ended.
#[derive(Debug, Default)]
pub struct CallMeter {
    cpu_ns: AtomicU64,
    gpu_ns: AtomicU64,
}

impl CallMeter {
    /// CPU time the call has used.
    pub fn cpu(&self) -> Duration {
        Duration::from_nanos(self.cpu_ns.load(Ordering::Relaxed))
    }

    /// GPU time the call has used: how long it waited for its submitted
    /// GPU work to complete (which includes any wait behind other calls'
    /// work on the same GPU).
    pub fn gpu(&self) -> Duration {
        Duration::from_nanos(self.gpu_ns.load(Ordering::Relaxed))
    }

    /// Counts `time` of CPU.
    pub fn add_cpu(&self, time: Duration) {
        self.cpu_ns.fetch_add(nanos(time), Ordering::Relaxed);
    }

    /// Counts `time` of GPU.
    pub fn add_gpu(&self, time: Duration) {
        self.gpu_ns.fetch_add(nanos(time), Ordering::Relaxed);
    }
}

fn nanos(time: Duration) -> u64 {
    u64::try_from(time.as_nanos()).unwrap_or(u64::MAX)
}

/// The CPU time the calling thread has used.
pub(crate) fn thread_cpu_time() -> Duration {
    let time = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(u64::try_from(time.tv_sec).unwrap_or(0), u32::try_from(time.tv_nsec).unwrap_or(0))
}

/// A future whose polls are timed in CPU time of the thread that polls
/// them, into a [`CallMeter`]. A guest runs inside its store's polls
/// (wasmtime's async fibers), whichever thread polls it, so the sum is the
/// guest's CPU time (plus the host functions it called), however long it
/// waited in between.
pub(crate) struct Metered<'a, F> {
    inner: Pin<Box<F>>,
    meter: &'a CallMeter,
}

impl<'a, F: Future> Metered<'a, F> {
    pub(crate) fn new(inner: F, meter: &'a CallMeter) -> Self {
        Metered { inner: Box::pin(inner), meter }
    }
}

impl<F: Future> Future for Metered<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let started = thread_cpu_time();
        let polled = self.inner.as_mut().poll(cx);
        self.meter.add_cpu(thread_cpu_time().saturating_sub(started));
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cpu_is_counted_while_polled_and_not_while_waiting() {
        let meter = CallMeter::default();
        Metered::new(
            async {
                let start = thread_cpu_time();
                while thread_cpu_time() - start < Duration::from_millis(30) {}
                // Asleep: no CPU.
                tokio::time::sleep(Duration::from_millis(200)).await;
            },
            &meter,
        )
        .await;
        assert!(meter.cpu() >= Duration::from_millis(30), "{:?}", meter.cpu());
        assert!(meter.cpu() < Duration::from_millis(150), "the sleep is not CPU time: {:?}", meter.cpu());
        meter.add_gpu(Duration::from_millis(5));
        assert_eq!(meter.gpu(), Duration::from_millis(5));
    }
}
