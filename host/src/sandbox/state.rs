//! Everything one call's store holds: its WASI context (clocks and random
//! unless a grant opens more), resource limiter, captured output, and the
//! per-call state of the capabilities it was granted.

use super::error::SandboxError;
use super::stdio::CapturedOutput;
use crate::capability::CallSetup;
use crate::capability::gpu::GpuService;
use crate::capability::gpu::call::GpuCall;
use crate::capability::http::HttpHooks;
use crate::capability::linalg::LinalgService;
use crate::capability::linalg::call::LinalgCall;
use crate::capability::log::LogBudget;
use crate::capability::progress::ProgressSink;
use crate::capability::scratch::ScratchDir;
use crate::config::Limits;
use crate::grant::Grant;
use std::sync::Arc;
use std::time::Instant;
use toolmesh_registry::digest::Digest;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Which limit the limiter enforced, remembered so the error can say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitHit {
    Memory { desired: u64 },
    Table { desired: u64 },
}

/// Caps memories and tables of one call, and records which cap was hit.
pub(crate) struct CallLimiter {
    memory_cap: u64,
    memory_in_use: u64,
    table_cap: u64,
    instances: usize,
    tables: usize,
    memories: usize,
    pub(crate) hit: Option<LimitHit>,
}

impl CallLimiter {
    pub(crate) fn new(limits: &Limits) -> Self {
        CallLimiter {
            memory_cap: limits.memory,
            memory_in_use: 0,
            table_cap: u64::from(limits.table_elements),
            instances: limits.instances as usize,
            tables: limits.tables as usize,
            memories: limits.memories as usize,
            hit: None,
        }
    }
}

/// The error a limiter raises to stop the guest at once.
#[derive(Debug, thiserror::Error)]
#[error("resource limit reached")]
pub(crate) struct LimitReached;

impl ResourceLimiter for CallLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        // The cap covers all of the call's memories together. Growth past
        // it fails the guest's `memory.grow` (its allocator sees "out of
        // memory", which an interpreter turns into an ordinary exception);
        // a guest that traps instead is reported as over its limit.
        let total = self.memory_in_use - current as u64 + desired as u64;
        if total > self.memory_cap {
            self.hit = Some(LimitHit::Memory { desired: total });
            return Ok(false);
        }
        self.memory_in_use = total;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > self.table_cap {
            self.hit = Some(LimitHit::Table { desired: desired as u64 });
            return Err(wasmtime::Error::new(LimitReached));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.memories
    }
}

/// What a call's GPU and linear-algebra capabilities are made from: the
/// node's GPU and linear-algebra service (or why it has none) and the
/// component, whose kernels and weights are kept apart.
pub(crate) struct GpuContext {
    pub(crate) service: Result<Arc<GpuService>, String>,
    pub(crate) linalg: Result<Arc<LinalgService>, String>,
    pub(crate) component: Digest,
    /// Counts the call's GPU time as it waits for its work, and its
    /// linear algebra's CPU time.
    pub(crate) meter: Arc<super::CallMeter>,
}

/// The data of one call's store.
pub(crate) struct CallState {
    pub(crate) call_id: String,
    pub(crate) deadline: Instant,
    pub(crate) limiter: CallLimiter,
    pub(crate) stdout: CapturedOutput,
    pub(crate) stderr: CapturedOutput,
    pub(crate) log: LogBudget,
    pub(crate) progress: Option<ProgressSink>,
    pub(crate) http: HttpHooks,
    pub(crate) scratch: Option<ScratchDir>,
    pub(crate) gpu: GpuCall,
    /// The call's host linear algebra.
    pub(crate) linalg: LinalgCall,
    /// What `wasi:config/store` answers with.
    pub(crate) config: crate::capability::ConfigValues,
    /// The call's calls to other tools.
    pub(crate) tools: crate::capability::tools::ToolCalls,
    /// The call's questions to its client and their answers.
    pub(crate) ask: Arc<crate::capability::ask::Asking>,
    /// The resources the call reported changed, and who hears of them.
    pub(crate) updates: crate::capability::resource_updates::Reported,
    /// The most bytes the host copies out of the guest in one transfer.
    pub(crate) transfer_limit: u64,
    wasi: WasiCtx,
    http_ctx: WasiHttpCtx,
    pub(crate) table: ResourceTable,
}

impl CallState {
    pub(crate) fn new(
        call_id: String,
        limits: &Limits,
        progress: Option<ProgressSink>,
        grant: &Grant,
        gpu: GpuContext,
        tools: Option<Arc<dyn crate::capability::tools::ToolCaller>>,
    ) -> Result<Self, SandboxError> {
        let cap = usize::try_from(limits.log).unwrap_or(usize::MAX);
        let stdout = CapturedOutput::new(cap);
        let stderr = CapturedOutput::new(cap);
        // Deny by default: no preopened directories, no environment, no
        // arguments, stdin closed, no sockets or name lookups (the builder's
        // defaults, restated here so a change upstream cannot widen them);
        // then each capability adds what the grant gives.
        let mut wasi = WasiCtx::builder();
        wasi.stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        let deadline = Instant::now() + limits.timeout;
        let linalg = LinalgCall::new(gpu.linalg, gpu.component, super::transfer_cap(limits), gpu.meter.clone());
        let gpu = GpuCall::new(gpu.service, gpu.component, deadline, super::transfer_cap(limits), gpu.meter);
        let mut setup = CallSetup::new(wasi, grant, gpu, linalg)?;
        Ok(CallState {
            deadline,
            limiter: CallLimiter::new(limits),
            log: LogBudget::new(limits.log),
            call_id,
            stdout,
            stderr,
            progress,
            http: setup.http,
            scratch: setup.scratch,
            gpu: setup.gpu,
            linalg: setup.linalg,
            config: setup.config,
            tools: crate::capability::tools::ToolCalls::new(tools),
            ask: Arc::default(),
            updates: Default::default(),
            transfer_limit: super::transfer_cap(limits),
            wasi: setup.wasi.build(),
            http_ctx: WasiHttpCtx::new(),
            table: ResourceTable::new(),
        })
    }
}

impl CallState {
    /// Readies a session's state for its next call: a new id, deadline,
    /// progress sink, calls to tools, log budget, meter and linear-algebra
    /// work budget; what the instance holds (memory, files in its scratch
    /// directory, host matrices) stays.
    pub(crate) fn resume(
        &mut self,
        call_id: String,
        limits: &Limits,
        progress: Option<ProgressSink>,
        tools: Option<Arc<dyn crate::capability::tools::ToolCaller>>,
        meter: Arc<super::CallMeter>,
    ) {
        self.linalg.resume(meter, super::transfer_cap(limits));
        self.call_id = call_id;
        self.deadline = Instant::now() + limits.timeout;
        self.progress = progress;
        self.tools = crate::capability::tools::ToolCalls::new(tools);
        self.log = LogBudget::new(limits.log);
        self.limiter.hit = None;
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http_ctx, table: &mut self.table, hooks: &mut self.http }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// The shared types interface has no functions to implement.
impl super::bindings::toolmesh::tool::types::Host for CallState {}
