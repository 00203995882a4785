//! The node's linear-algebra service: the thread pool operations run on,
//! one block of work at a time across all calls, and the weights kept for
//! components between their calls.

use super::LinalgError;
use crate::config::LinalgConfig;
use crate::sandbox::{CallMeter, MemoryBudget, Reservation};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use toolmesh_registry::digest::Digest;

/// Floating-point operations of one block: the unit in which work is
/// scheduled, checked against the deadline and cancelled (tens of
/// milliseconds on a 2-core machine).
pub(crate) const BLOCK_FLOPS: u64 = 1 << 32;

/// Operations of at most this many floating-point operations (well under
/// a tenth of a millisecond) run on the calling thread: handing them to the
/// pool and back would cost more than the work.
pub(crate) const INLINE_FLOPS: u64 = 1 << 22;

/// Bytes of freed matrix buffers the node keeps for reuse (reserved from
/// its memory budget when the first is freed, given back when calls need
/// the memory): a new matrix reuses memory already mapped instead of
/// faulting in fresh pages.
const SPARE_BYTES: u64 = 128 << 20;

/// Freed buffers kept for reuse, up to [`SPARE_BYTES`] of capacity, and
/// the budget they are kept under (none until the first is kept, or when
/// the node could not spare it).
#[derive(Default)]
struct Spares {
    buffers: Vec<Vec<f32>>,
    bytes: u64,
    reservation: Option<Reservation>,
}

/// Weights held for a component: the values, and their share of the
/// node's memory budget.
pub struct WeightsData {
    pub(crate) values: Vec<f32>,
    _reservation: Reservation,
}

/// One kept entry of the weights cache.
struct Kept {
    weights: Arc<WeightsData>,
    used: u64,
}

/// Weights by component and content, least recently used dropped first.
#[derive(Default)]
struct Cache {
    entries: HashMap<(Digest, [u8; 32]), Kept>,
    bytes: u64,
    clock: u64,
}

impl Cache {
    /// Drops the least recently used entry no call holds now; its bytes,
    /// if there was one.
    fn evict_one(&mut self) -> Option<u64> {
        let victim = self
            .entries
            .iter()
            .filter(|(_, kept)| Arc::strong_count(&kept.weights) == 1)
            .min_by_key(|(_, kept)| kept.used)
            .map(|(key, _)| *key)?;
        let kept = self.entries.remove(&victim)?;
        let bytes = bytes_of(&kept.weights.values);
        self.bytes -= bytes;
        Some(bytes)
    }

    /// Bytes of the entries no call holds now.
    fn idle_bytes(&self) -> u64 {
        self.entries
            .values()
            .filter(|kept| Arc::strong_count(&kept.weights) == 1)
            .map(|kept| bytes_of(&kept.weights.values))
            .sum()
    }
}

fn bytes_of(values: &[f32]) -> u64 {
    (values.len() as u64).saturating_mul(4)
}

/// Host linear algebra of a node, shared by its calls.
pub struct LinalgService {
    /// Started by the first operation that needs it.
    pool: std::sync::OnceLock<Result<rayon::ThreadPool, String>>,
    threads: usize,
    /// Held while a block runs, so blocks of concurrent calls take turns
    /// on the pool (first come, first served) and each block's time is its
    /// call's alone.
    turn: tokio::sync::Mutex<()>,
    cache: Mutex<Cache>,
    /// Freed buffers kept for reuse.
    spares: Mutex<Spares>,
    config: LinalgConfig,
    budget: MemoryBudget,
}

impl LinalgService {
    /// The service under `config`, reserving memory from `budget`. Its
    /// threads start, and its spare buffers are reserved, when a call
    /// first needs them: a node whose tools never use it pays nothing.
    pub(crate) fn start(config: LinalgConfig, budget: MemoryBudget) -> Result<Arc<Self>, String> {
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        };
        Ok(Arc::new(LinalgService {
            pool: std::sync::OnceLock::new(),
            threads,
            turn: tokio::sync::Mutex::new(()),
            cache: Mutex::default(),
            spares: Mutex::default(),
            config,
            budget,
        }))
    }

    /// The thread pool, started on first use.
    fn pool(&self) -> Result<&rayon::ThreadPool, LinalgError> {
        let threads = self.threads;
        self.pool
            .get_or_init(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("toolmesh-linalg-{i}"))
                    .build()
                    .map_err(|e| format!("cannot start the linear-algebra threads: {e}"))
            })
            .as_ref()
            .map_err(|e| LinalgError::Unavailable(e.clone()))
    }

    /// Gives memory back to the node so that `bytes` are free, if what it
    /// keeps only for speed (the spare buffers, weights no call holds) can
    /// make up the difference: the spares first, then the least recently
    /// used weights, no more than the difference. Called when a call
    /// cannot be admitted; when even all of it would not be enough,
    /// nothing is given back (the call waits for other calls instead).
    pub fn make_room(&self, bytes: u64) {
        let need = bytes.saturating_sub(self.budget.available());
        if need == 0 {
            return;
        }
        let mut spares = self.spares.lock().unwrap_or_else(|e| e.into_inner());
        let mut cache = self.lock_cache();
        let spare = if spares.reservation.is_some() { SPARE_BYTES } else { 0 };
        if spare.saturating_add(cache.idle_bytes()) < need {
            return;
        }
        let mut freed = spare;
        *spares = Spares::default();
        drop(spares);
        while freed < need {
            match cache.evict_one() {
                Some(bytes) => freed += bytes,
                None => break,
            }
        }
    }

    /// `len` zeros, in a freed buffer when one fits (at most 1/16 larger,
    /// so what the caller reserved for `len` values nearly covers it).
    pub(crate) fn zeros(&self, len: usize) -> Vec<f32> {
        let reused = {
            let mut spares = self.spares.lock().unwrap_or_else(|e| e.into_inner());
            let fits = spares
                .buffers
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= len && b.capacity() - len <= len / 16)
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i);
            fits.map(|i| {
                let buffer = spares.buffers.swap_remove(i);
                spares.bytes -= (buffer.capacity() as u64) * 4;
                buffer
            })
        };
        match reused {
            Some(mut buffer) => {
                buffer.clear();
                buffer.resize(len, 0.0);
                buffer
            }
            None => vec![0.0; len],
        }
    }

    /// Keeps a freed buffer for reuse, if there is room.
    pub(crate) fn recycle(&self, buffer: Vec<f32>) {
        let bytes = (buffer.capacity() as u64).saturating_mul(4);
        if bytes == 0 || bytes > SPARE_BYTES {
            return;
        }
        let mut spares = self.spares.lock().unwrap_or_else(|e| e.into_inner());
        if spares.reservation.is_none() {
            match self.budget.try_reserve(SPARE_BYTES) {
                Ok(reservation) => spares.reservation = Some(reservation),
                Err(_) => return,
            }
        }
        while spares.bytes + bytes > SPARE_BYTES && !spares.buffers.is_empty() {
            let oldest = spares.buffers.remove(0);
            spares.bytes -= (oldest.capacity() as u64) * 4;
        }
        if spares.bytes + bytes <= SPARE_BYTES {
            spares.bytes += bytes;
            spares.buffers.push(buffer);
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &LinalgConfig {
        &self.config
    }

    /// Threads an operation runs on.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Bytes of weights kept now, all components together.
    pub fn weights_kept(&self) -> u64 {
        self.lock_cache().bytes
    }

    fn lock_cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves `bytes` of the node's memory, giving back spare buffers and
    /// unused weights to make room if it must.
    pub(crate) fn reserve(&self, bytes: u64) -> Result<Reservation, LinalgError> {
        let busy = |e| LinalgError::QuotaExceeded(format!("the node's memory: {e}"));
        match self.budget.try_reserve(bytes) {
            Ok(reservation) => Ok(reservation),
            Err(crate::sandbox::SandboxError::NodeBusy { .. }) => {
                self.make_room(bytes);
                self.budget.try_reserve(bytes).map_err(busy)
            }
            Err(e) => Err(busy(e)),
        }
    }

    /// `component`'s weights with SHA-256 `hash`, if kept.
    pub(crate) fn find(&self, component: Digest, hash: [u8; 32]) -> Option<Arc<WeightsData>> {
        let mut cache = self.lock_cache();
        cache.clock += 1;
        let now = cache.clock;
        let kept = cache.entries.get_mut(&(component, hash))?;
        kept.used = now;
        Some(kept.weights.clone())
    }

    /// Keeps `values` as `component`'s weights with SHA-256 `hash` (the
    /// copy already kept, if another call finished the same upload first).
    pub(crate) fn keep(
        &self,
        component: Digest,
        hash: [u8; 32],
        values: Vec<f32>,
        reservation: Reservation,
    ) -> Result<Arc<WeightsData>, LinalgError> {
        let bytes = bytes_of(&values);
        let mut cache = self.lock_cache();
        cache.clock += 1;
        let now = cache.clock;
        if let Some(kept) = cache.entries.get_mut(&(component, hash)) {
            kept.used = now;
            return Ok(kept.weights.clone());
        }
        while cache.bytes + bytes > self.config.weights_memory {
            if cache.evict_one().is_none() {
                return Err(LinalgError::QuotaExceeded(format!(
                    "the node keeps {} of weights, all in use; {} more do not fit its {} for weights",
                    crate::sandbox::humanize_bytes(cache.bytes),
                    crate::sandbox::humanize_bytes(bytes),
                    crate::sandbox::humanize_bytes(self.config.weights_memory)
                )));
            }
        }
        let weights = Arc::new(WeightsData { values, _reservation: reservation });
        cache.entries.insert((component, hash), Kept { weights: weights.clone(), used: now });
        cache.bytes += bytes;
        Ok(weights)
    }

    /// Runs `job` away from the async threads, on this service's pool one
    /// block at a time (see [`Runner::block`]); if the returned future is
    /// dropped, the job stops before its next block. A job of at most
    /// [`INLINE_FLOPS`] runs at once on the calling thread instead, whose
    /// CPU time the call's meter counts already.
    pub(crate) async fn run<T, F>(
        self: &Arc<Self>,
        deadline: Instant,
        meter: Arc<CallMeter>,
        flops: u64,
        job: F,
    ) -> Result<T, LinalgError>
    where
        T: Send + 'static,
        F: FnOnce(&Runner) -> Result<T, LinalgError> + Send + 'static,
    {
        let cancelled = Arc::new(AtomicBool::new(false));
        let inline = flops <= INLINE_FLOPS;
        let runner = Runner { service: self.clone(), cancelled: cancelled.clone(), deadline, meter, inline };
        if inline {
            return job(&runner);
        }
        let _stop = StopOnDrop(cancelled);
        match tokio::task::spawn_blocking(move || job(&runner)).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(error = %e, "a linear-algebra operation failed");
                Err(LinalgError::InvalidArgument("the operation failed on the host".into()))
            }
        }
    }
}

/// Sets its flag when dropped: the job's future was dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What a job uses to run its blocks.
pub(crate) struct Runner {
    service: Arc<LinalgService>,
    cancelled: Arc<AtomicBool>,
    deadline: Instant,
    meter: Arc<CallMeter>,
    /// Runs its blocks on the calling thread.
    inline: bool,
}

impl Runner {
    /// Threads a block may spread over.
    pub(crate) fn threads(&self) -> usize {
        if self.inline { 1 } else { self.service.threads }
    }

    /// Runs `f` on each of `items`, spread over the pool's threads when the
    /// block has more than one.
    pub(crate) fn each<T: Send>(&self, items: Vec<T>, f: impl Fn(T) + Sync + Send) {
        use rayon::prelude::*;
        if self.threads() > 1 {
            items.into_par_iter().for_each(f);
        } else {
            items.into_iter().for_each(f);
        }
    }

    /// `f` of each of `items`, in order, spread like [`Runner::each`].
    pub(crate) fn map<T: Send, R: Send>(&self, items: Vec<T>, f: impl Fn(T) -> R + Sync + Send) -> Vec<R> {
        use rayon::prelude::*;
        if self.threads() > 1 { items.into_par_iter().map(f).collect() } else { items.into_iter().map(f).collect() }
    }

    /// Runs one block of work on the pool, after the blocks of other calls
    /// queued before it, unless the call is over. Its time on the pool
    /// (wall-clock time × threads) counts as the call's CPU time.
    pub(crate) fn block<R: Send>(&self, work: impl FnOnce() -> R + Send) -> Result<R, LinalgError> {
        self.check()?;
        if self.inline {
            return Ok(work());
        }
        let _turn = self.service.turn.blocking_lock();
        self.check()?;
        let started = Instant::now();
        let result = self.service.pool()?.install(work);
        let spent = started.elapsed();
        self.meter.add_cpu(spent.saturating_mul(u32::try_from(self.service.threads).unwrap_or(u32::MAX)));
        Ok(result)
    }

    fn check(&self) -> Result<(), LinalgError> {
        if self.cancelled.load(Ordering::Relaxed) {
            return Err(LinalgError::Timeout("the call ended before the operation was done".into()));
        }
        if Instant::now() >= self.deadline {
            return Err(LinalgError::Timeout("the call's time ran out before the operation was done".into()));
        }
        Ok(())
    }
}

/// Splits `rows` rows of `flops_per_row` each into ranges of at most
/// [`BLOCK_FLOPS`] (at least one row each).
pub(crate) fn row_blocks(rows: usize, flops_per_row: u64) -> impl Iterator<Item = std::ops::Range<usize>> {
    let per_block = usize::try_from(BLOCK_FLOPS / flops_per_row.max(1)).unwrap_or(usize::MAX).max(1);
    (0..rows).step_by(per_block).map(move |start| start..(start + per_block).min(rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn service(weights_memory: u64) -> Arc<LinalgService> {
        let config = LinalgConfig { weights_memory, threads: 2, ..LinalgConfig::default() };
        LinalgService::start(config, MemoryBudget::new(256 << 20)).unwrap()
    }

    #[test]
    fn weights_are_shared_by_content_and_the_unused_go_first() {
        let service = service(8 << 10);
        let a = Digest::of(b"component a");
        let r = || service.reserve(4 << 10).unwrap();
        let first = service.keep(a, [1; 32], vec![1.0; 1024], r()).unwrap();
        let again = service.keep(a, [1; 32], vec![2.0; 1024], r()).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "one copy per content");
        assert!(service.find(Digest::of(b"component b"), [1; 32]).is_none(), "kept per component");
        let second = service.keep(a, [2; 32], vec![3.0; 1024], r()).unwrap();
        assert_eq!(service.weights_kept(), 8 << 10);
        // Both in use: a third does not fit.
        assert!(matches!(service.keep(a, [3; 32], vec![0.0; 1024], r()), Err(LinalgError::QuotaExceeded(_))));
        drop((first, again));
        let _third = service.keep(a, [3; 32], vec![4.0; 1024], r()).unwrap();
        assert!(service.find(a, [1; 32]).is_none(), "the unused one was dropped");
        assert!(service.find(a, [2; 32]).is_some());
        drop(second);
    }

    #[test]
    fn memory_kept_for_speed_is_taken_when_first_used_and_given_back_when_calls_need_it() {
        let service = service(64 << 20);
        let budget = service.budget.clone();
        assert_eq!(budget.available(), budget.total(), "nothing reserved before any use");
        assert!(service.pool.get().is_none(), "no threads before any use");
        service.recycle(vec![0.0; 1024]);
        assert_eq!(budget.available(), budget.total() - SPARE_BYTES, "spares reserved with the first");
        let a = Digest::of(b"component a");
        let idle = service.keep(a, [1; 32], vec![1.0; 4 << 20], service.reserve(16 << 20).unwrap()).unwrap();
        let held = service.keep(a, [2; 32], vec![1.0; 4 << 20], service.reserve(16 << 20).unwrap()).unwrap();
        drop(idle);
        // A call needing more than all that could be given back: nothing
        // goes (it waits for other calls instead).
        service.make_room(budget.total());
        assert_eq!(budget.available(), budget.total() - SPARE_BYTES - (32 << 20));
        assert!(service.find(a, [1; 32]).is_some());
        // A call needing nearly all the budget: spares and the idle
        // weights go, the held ones stay.
        service.make_room(budget.total() - (16 << 20));
        assert_eq!(budget.available(), budget.total() - (16 << 20));
        assert!(service.find(a, [1; 32]).is_none() && service.find(a, [2; 32]).is_some());
        drop(held);
    }

    #[test]
    fn blocks_stop_once_the_call_is_over_and_count_their_time() {
        let service = service(1 << 20);
        let meter = Arc::new(CallMeter::default());
        let runner = Runner {
            service: service.clone(),
            cancelled: Arc::new(AtomicBool::new(false)),
            deadline: Instant::now() + Duration::from_secs(60),
            meter: meter.clone(),
            inline: false,
        };
        let spun = runner.block(|| {
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(20) {}
            7
        });
        assert_eq!(spun.unwrap(), 7);
        assert!(meter.cpu() >= Duration::from_millis(40), "two threads' time: {:?}", meter.cpu());
        runner.cancelled.store(true, Ordering::Relaxed);
        assert!(matches!(runner.block(|| ()), Err(LinalgError::Timeout(_))));
        let late = Runner { deadline: Instant::now(), cancelled: Arc::new(AtomicBool::new(false)), ..runner };
        assert!(matches!(late.block(|| ()), Err(LinalgError::Timeout(_))));
        // A small job runs on the calling thread, one thread wide, still
        // within its deadline.
        let here = std::thread::current().id();
        let inline = Runner { deadline: Instant::now() + Duration::from_secs(60), inline: true, ..late };
        assert_eq!(inline.threads(), 1);
        assert_eq!(inline.block(|| std::thread::current().id()).unwrap(), here);
        assert_eq!(inline.map(vec![1, 2, 3], |i| i * 2), vec![2, 4, 6]);
        let blocks: Vec<_> = row_blocks(10, BLOCK_FLOPS / 4).collect();
        assert_eq!(blocks, vec![0..4, 4..8, 8..10]);
        assert_eq!(row_blocks(3, u64::MAX).count(), 3, "at least a row a block");
    }
}
