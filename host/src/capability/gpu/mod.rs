//! GPU compute for tools (`toolmesh:tool/gpu`): buffers and WGSL compute
//! kernels run through wgpu on the node's adapter, under per-call budgets.
//!
//! - [`device`]: the adapter chosen at start and the device calls share,
//!   replaced when it is lost or stuck;
//! - [`shader`]: WGSL checked by naga before the GPU sees it, compute only,
//!   loops bounded;
//! - [`call`]: one call's budgets and queued work, and the operations;
//! - `driver`: error scopes, bounded waits and error words for work run on
//!   the driver.
//!
//! The interface is linked for every tool. A call whose grant has no GPU,
//! or on a node without an adapter, gets `no-adapter` from every function,
//! so a tool can fall back to the CPU; the placement of tools that import
//! it (they are published as needing a GPU) is what keeps them on GPU
//! nodes.

pub(crate) mod call;
pub mod device;
mod driver;
mod shader;
mod weights;

pub use call::{GpuBuffer, GpuKernel};
pub use device::{AdapterSummary, GpuService, NoGpu};
pub use weights::GpuUpload;

use crate::sandbox::CallState;
use crate::sandbox::bindings::toolmesh::tool::gpu as wit;
use std::time::Duration;
use wasmtime::component::Resource;

/// What one call may use of the GPU. Set by the node's policy (`[gpu]`),
/// then clamped to what the device supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuLimits {
    /// Largest single buffer, in bytes.
    pub max_buffer_size: u64,
    /// Bytes of all live buffers of a call together.
    pub max_total_bytes: u64,
    /// Dispatches per call.
    pub max_dispatches: u32,
    /// Time a call may wait for the GPU, all waits together.
    pub time_budget: Duration,
    /// Loop iterations one shader invocation may run, over all its loops.
    pub max_loop_iterations: u32,
    /// Workgroups per dimension of one dispatch (from the device).
    pub max_workgroups_per_dimension: u32,
    /// Invocations per workgroup (from the device).
    pub max_invocations_per_workgroup: u32,
    /// Storage buffers one kernel may bind (from the device).
    pub max_bindings: u32,
    /// `var<workgroup>` bytes per workgroup (from the device).
    pub max_workgroup_memory: u32,
    /// Bytes of weights the node keeps on the GPU for components, all
    /// together (not counted in any call's quota).
    pub weights_memory: u64,
}

impl Default for GpuLimits {
    fn default() -> Self {
        GpuLimits {
            max_buffer_size: 256 << 20,
            max_total_bytes: 1 << 30,
            max_dispatches: 10_000,
            time_budget: Duration::from_secs(10),
            max_loop_iterations: 1 << 24,
            max_workgroups_per_dimension: u32::MAX,
            max_invocations_per_workgroup: u32::MAX,
            max_bindings: u32::MAX,
            max_workgroup_memory: u32::MAX,
            weights_memory: 1 << 30,
        }
    }
}

impl GpuLimits {
    /// These limits, no larger than what `device` supports.
    pub(crate) fn within(&self, device: &wgpu::Limits) -> GpuLimits {
        GpuLimits {
            max_buffer_size: self
                .max_buffer_size
                .min(device.max_buffer_size)
                .min(device.max_storage_buffer_binding_size),
            max_workgroups_per_dimension: self
                .max_workgroups_per_dimension
                .min(device.max_compute_workgroups_per_dimension),
            max_invocations_per_workgroup: self
                .max_invocations_per_workgroup
                .min(device.max_compute_invocations_per_workgroup),
            max_bindings: self.max_bindings.min(device.max_storage_buffers_per_shader_stage),
            max_workgroup_memory: self.max_workgroup_memory.min(device.max_compute_workgroup_storage_size),
            ..self.clone()
        }
    }
}

/// Why a GPU operation failed; the `gpu-error` of the interface.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    /// No adapter, or no GPU granted to the call.
    #[error("no GPU: {0}")]
    NoAdapter(String),
    /// The WGSL did not validate or is not a compute shader.
    #[error("invalid shader: {0}")]
    InvalidShader(String),
    /// An argument out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A budget would be exceeded.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The GPU work ran past its time budget.
    #[error("timeout: {0}")]
    Timeout(String),
    /// The device failed or was replaced.
    #[error("device lost: {0}")]
    DeviceLost(String),
}

impl From<GpuError> for wit::GpuError {
    fn from(error: GpuError) -> Self {
        match error {
            GpuError::NoAdapter(m) => wit::GpuError::NoAdapter(m),
            GpuError::InvalidShader(m) => wit::GpuError::InvalidShader(m),
            GpuError::InvalidArgument(m) => wit::GpuError::InvalidArgument(m),
            GpuError::QuotaExceeded(m) => wit::GpuError::QuotaExceeded(m),
            GpuError::Timeout(m) => wit::GpuError::Timeout(m),
            GpuError::DeviceLost(m) => wit::GpuError::DeviceLost(m),
        }
    }
}

type WitResult<T> = Result<T, wit::GpuError>;

fn stale() -> wit::GpuError {
    wit::GpuError::InvalidArgument("the buffer or kernel handle is not valid in this call".into())
}

impl CallState {
    fn gpu_buffer(&self, handle: &Resource<GpuBuffer>) -> WitResult<&GpuBuffer> {
        self.table.get(handle).map_err(|_| stale())
    }

    /// A handle for `buffer`; when the table is full, its bytes are
    /// released (it is dropped unused).
    fn push_buffer(&mut self, buffer: GpuBuffer) -> WitResult<Resource<GpuBuffer>> {
        let counted = if buffer.is_kept() { 0 } else { buffer.size() };
        self.table.push(buffer).map_err(|e| {
            self.gpu.uncount(counted);
            wit::GpuError::QuotaExceeded(e.to_string())
        })
    }
}

impl wit::Host for CallState {
    async fn adapter(&mut self) -> WitResult<wit::AdapterInfo> {
        let service = self.gpu.service()?;
        let summary = service.summary();
        let l = service.limits();
        Ok(wit::AdapterInfo {
            name: summary.name.clone(),
            backend: summary.backend.clone(),
            kind: match summary.kind {
                "discrete" => wit::DeviceKind::Discrete,
                "integrated" => wit::DeviceKind::Integrated,
                "virtual" => wit::DeviceKind::VirtualGpu,
                "cpu" => wit::DeviceKind::Cpu,
                _ => wit::DeviceKind::Other,
            },
            driver: summary.driver.clone(),
            limits: wit::Limits {
                max_buffer_size: l.max_buffer_size,
                max_total_bytes: l.max_total_bytes,
                max_dispatches: l.max_dispatches,
                max_workgroups_per_dimension: l.max_workgroups_per_dimension,
                max_invocations_per_workgroup: l.max_invocations_per_workgroup,
                max_bindings: l.max_bindings,
                max_workgroup_memory: l.max_workgroup_memory,
                time_budget_ms: u64::try_from(l.time_budget.as_millis()).unwrap_or(u64::MAX),
                max_loop_iterations: l.max_loop_iterations,
                max_transfer: self.gpu.max_transfer(),
            },
        })
    }

    async fn features(&mut self) -> WitResult<Vec<String>> {
        Ok(self.gpu.service()?.feature_names())
    }

    async fn finish(&mut self) -> WitResult<()> {
        Ok(self.gpu.finish().await?)
    }
}

impl wit::HostBuffer for CallState {
    async fn create(&mut self, size: u64) -> WitResult<Resource<GpuBuffer>> {
        let buffer = self.gpu.create(size).await?;
        self.push_buffer(buffer)
    }

    async fn from_bytes(&mut self, data: Vec<u8>) -> WitResult<Resource<GpuBuffer>> {
        let buffer = self.gpu.create(data.len() as u64).await?;
        if let Err(e) = self.gpu.write(&buffer, 0, data).await {
            self.gpu.release(buffer);
            return Err(e.into());
        }
        self.push_buffer(buffer)
    }

    async fn size(&mut self, handle: Resource<GpuBuffer>) -> u64 {
        self.gpu_buffer(&handle).map_or(0, GpuBuffer::size)
    }

    async fn write(&mut self, handle: Resource<GpuBuffer>, offset: u64, data: Vec<u8>) -> WitResult<()> {
        let buffer = self.table.get(&handle).map_err(|_| stale())?;
        Ok(self.gpu.write(buffer, offset, data).await?)
    }

    async fn read(&mut self, handle: Resource<GpuBuffer>, offset: u64, length: u64) -> WitResult<Vec<u8>> {
        let buffer = self.table.get(&handle).map_err(|_| stale())?;
        Ok(self.gpu.read(buffer, offset, length).await?)
    }

    async fn find_weights(&mut self, sha256: String) -> WitResult<Option<Resource<GpuBuffer>>> {
        match self.gpu.find_weights(&sha256).await? {
            Some(buffer) => Ok(Some(self.push_buffer(buffer)?)),
            None => Ok(None),
        }
    }

    async fn drop(&mut self, handle: Resource<GpuBuffer>) -> wasmtime::Result<()> {
        let buffer = self.table.delete(handle)?;
        self.gpu.release(buffer);
        Ok(())
    }
}

impl wit::HostWeightsUpload for CallState {
    async fn start(&mut self, sha256: String, length: u64) -> WitResult<Resource<GpuUpload>> {
        let upload = self.gpu.start_upload(&sha256, length).await?;
        let counted = upload.counted;
        self.table.push(upload).map_err(|e| {
            self.gpu.uncount(counted);
            wit::GpuError::QuotaExceeded(e.to_string())
        })
    }

    async fn write(&mut self, handle: Resource<GpuUpload>, data: Vec<u8>) -> WitResult<()> {
        let upload = self.table.get_mut(&handle).map_err(|_| stale())?;
        Ok(self.gpu.write_upload(upload, data).await?)
    }

    async fn finish(&mut self, handle: Resource<GpuUpload>) -> WitResult<Resource<GpuBuffer>> {
        let upload = self.table.delete(handle).map_err(|_| stale())?;
        let buffer = self.gpu.finish_upload(upload).await?;
        self.push_buffer(buffer)
    }

    async fn drop(&mut self, handle: Resource<GpuUpload>) -> wasmtime::Result<()> {
        let upload = self.table.delete(handle)?;
        self.gpu.drop_upload(upload);
        Ok(())
    }
}

impl wit::HostKernel for CallState {
    async fn compile(&mut self, wgsl: String, entry_point: String) -> WitResult<Resource<GpuKernel>> {
        let kernel = self.gpu.compile(wgsl, entry_point).await?;
        self.table.push(kernel).map_err(|e| wit::GpuError::QuotaExceeded(e.to_string()))
    }

    async fn dispatch(
        &mut self,
        handle: Resource<GpuKernel>,
        bindings: Vec<wit::Binding>,
        workgroups: (u32, u32, u32),
    ) -> WitResult<()> {
        let kernel = self.table.get(&handle).map_err(|_| stale())?;
        let mut buffers = Vec::with_capacity(bindings.len());
        for binding in &bindings {
            buffers.push((binding.index, self.table.get(&binding.buffer).map_err(|_| stale())?));
        }
        Ok(self.gpu.dispatch(kernel, buffers, workgroups).await?)
    }

    async fn drop(&mut self, handle: Resource<GpuKernel>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}
