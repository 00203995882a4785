//! The one wasmtime engine of a process, and the ticker that drives its
//! epoch-based deadlines.

use super::error::SandboxError;
use crate::config::{Allocator, SandboxConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances; a running call notices a deadline or a
/// cancellation within one tick.
pub const TICK: Duration = Duration::from_millis(10);

/// Bytes of each linear memory, table and fiber stack kept resident (reset
/// in place) when a pooled instance is freed.
const KEEP_RESIDENT: usize = 1 << 20;

/// Which compiler an engine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Cranelift: optimised code, compiled in ~100 ms for a small tool.
    Optimized,
    /// Winch: a baseline compiler, several times faster to compile, slower
    /// code; serves a tool's first calls while Cranelift compiles it.
    Baseline,
}

/// Builds an engine for `config`: component model, epoch interruption,
/// async calls, and the configured stack size. The optimising engine uses
/// the configured allocator; the baseline engine, which only serves a
/// tool's first calls, allocates on demand so it reserves no second pool.
pub fn build(config: &SandboxConfig, tier: Tier) -> Result<Engine, SandboxError> {
    let max_stack = usize::try_from(config.max_wasm_stack)
        .map_err(|_| SandboxError::Engine("max_wasm_stack is too large".into()))?;
    let max_memory =
        usize::try_from(config.limits.memory).map_err(|_| SandboxError::Engine("memory limit is too large".into()))?;
    let mut c = Config::new();
    c.wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(max_stack)
        // Host functions and WASI run on the call's fiber stack too.
        .async_stack_size(max_stack + (2 << 20))
        .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(64));
    if tier == Tier::Baseline {
        c.strategy(wasmtime::Strategy::Winch);
    }
    if config.allocator == Allocator::Pooling && tier == Tier::Optimized {
        // Calls run on the stacks; sessions keep their instances between calls.
        let stacks = config.max_concurrent_calls.max(1);
        let slots = stacks.saturating_add(config.sessions.max);
        let l = &config.limits;
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(l.instances))
            .total_memories(slots.saturating_mul(l.memories))
            .total_tables(slots.saturating_mul(l.tables))
            .total_stacks(stacks)
            .max_core_instances_per_component(l.instances)
            .max_memories_per_component(l.memories)
            .max_tables_per_component(l.tables)
            .max_memory_size(max_memory)
            .table_elements(l.table_elements as usize)
            // Reset small instances in place instead of unmapping their
            // pages: each `madvise` costs a TLB shootdown on every core and
            // the next instance faults the pages back in. With PAGEMAP_SCAN
            // (Linux 6.7+) only the pages the call dirtied are reset, not
            // the whole resident megabyte.
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT)
            .async_stack_keep_resident(KEEP_RESIDENT)
            .pagemap_scan(wasmtime::Enabled::Auto)
            // Memory beyond what is kept resident is given back as soon as
            // the call ends, so the node's memory budget stays true.
            .decommit_batch_size(1);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&c).map_err(|e| SandboxError::Engine(format!("{e:#}")))
}

/// Advances an engine's epoch every [`TICK`] on a background thread, until dropped.
pub struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    /// Starts ticking `engine`.
    pub fn start(engine: Engine) -> Result<Self, SandboxError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("toolmesh-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| SandboxError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Ticker { stop, thread: Some(thread) })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
