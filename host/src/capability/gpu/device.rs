//! The node's GPU: the adapter chosen at start, and the device calls share,
//! replaced when it is lost or stuck.
//!
//! Calls take the current device when they first touch the GPU and keep it
//! for the rest of the call. A timeout, a device loss or a panic inside
//! wgpu retires that device: the calls on it fail with `device-lost`, and
//! the next call gets a fresh device on the same adapter.
//!
//! A retired device may still be running abandoned work (a runaway shader
//! runs until its loops reach their bound). It is kept, not dropped —
//! dropping a device waits for its queue — and let go once its queue is
//! seen empty. While [`MAX_RETIRED`] retired devices are still busy, no
//! new device is opened and GPU calls fail with `device-lost`: the node
//! goes on serving everything else.

use super::GpuLimits;
use super::weights::WeightsCache;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use toolmesh_registry::digest::Digest;

/// Compiled kernels kept per device, all components together.
const PIPELINES_KEPT: usize = 256;

/// Retired devices still busy with abandoned work before the node stops
/// opening new ones.
pub const MAX_RETIRED: usize = 4;

/// Optional features a device is opened with where the adapter has them:
/// half-precision floats in shaders (and 16-bit storage) and subgroup
/// operations. Neither lets a kernel reach memory it is not bound to.
pub const OPTIONAL_FEATURES: wgpu::Features = wgpu::Features::SHADER_F16.union(wgpu::Features::SUBGROUP);

/// The adapter a node offers, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSummary {
    /// Its name (`llvmpipe (LLVM 15.0.6, 256 bits)`, `NVIDIA H100 80GB HBM3`).
    pub name: String,
    /// The API behind it (`vulkan`).
    pub backend: String,
    /// `discrete`, `integrated`, `virtual`, `cpu` or `other`.
    pub kind: &'static str,
    /// The driver and its version.
    pub driver: String,
}

/// Why the node has no usable GPU.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct NoGpu(pub String);

/// The node's GPU adapter and its current device.
pub struct GpuService {
    adapter: wgpu::Adapter,
    summary: AdapterSummary,
    limits: GpuLimits,
    device_limits: wgpu::Limits,
    /// The optional features its devices have (of [`OPTIONAL_FEATURES`]).
    features: wgpu::Features,
    current: Mutex<Option<Arc<GpuDevice>>>,
    next_generation: AtomicU64,
    /// Devices retired while their queues may still be busy.
    retired: Mutex<Vec<Arc<GpuDevice>>>,
}

/// One logical device with its queue and kernel cache.
pub(crate) struct GpuDevice {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) generation: u64,
    lost: Arc<AtomicBool>,
    pipelines: Mutex<HashMap<(Digest, Digest), Arc<Kernel>>>,
    /// Weights kept for components on this device.
    pub(crate) weights: WeightsCache,
}

/// A compiled compute pipeline and the bindings it expects.
pub(crate) struct Kernel {
    pub(crate) pipeline: wgpu::ComputePipeline,
    /// The layout of group 0; `None` for a kernel that binds nothing.
    pub(crate) layout: Option<wgpu::BindGroupLayout>,
    pub(crate) bindings: Vec<u32>,
    /// The bindings it may write (`var<storage, read_write>`), sorted.
    pub(crate) writable: Vec<u32>,
    pub(crate) workgroup_invocations: u64,
}

impl GpuService {
    /// Chooses an adapter (a real GPU before a virtual one, a software
    /// adapter last) and opens a device on it, with its limits clamped to
    /// `limits`. Blocks for the driver (tens of milliseconds).
    pub fn start(limits: GpuLimits) -> Result<Arc<Self>, NoGpu> {
        let adapter = best_adapter().ok_or_else(|| {
            NoGpu("no GPU adapter found (no Vulkan driver; on Debian, `apt-get install mesa-vulkan-drivers` gives a CPU one)".into())
        })?;
        let info = adapter.get_info();
        let summary = AdapterSummary {
            name: info.name.clone(),
            backend: info.backend.to_string(),
            kind: kind_name(info.device_type),
            driver: [info.driver.as_str(), info.driver_info.as_str()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
        };
        let device_limits = clamp_limits(&adapter.limits(), &limits);
        let features = adapter.features() & OPTIONAL_FEATURES;
        let limits = limits.within(&device_limits);
        let service = GpuService {
            adapter,
            summary,
            limits,
            device_limits,
            features,
            current: Mutex::new(None),
            next_generation: AtomicU64::new(1),
            retired: Mutex::new(Vec::new()),
        };
        // Open the first device now, so a broken driver shows at start.
        service.device().map_err(|e| NoGpu(format!("cannot open the GPU {}: {e}", service.summary.name)))?;
        tracing::info!(adapter = %service.summary.name, kind = service.summary.kind, backend = %service.summary.backend, features = ?service.feature_names(), "GPU ready");
        Ok(Arc::new(service))
    }

    /// The adapter, in words.
    pub fn summary(&self) -> &AdapterSummary {
        &self.summary
    }

    /// The optional features kernels may use.
    pub fn features(&self) -> wgpu::Features {
        self.features
    }

    /// The optional features kernels may use, in WGSL's words: `f16`
    /// (`enable f16;`), `subgroups`.
    pub fn feature_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if self.features.contains(wgpu::Features::SHADER_F16) {
            names.push("f16".to_owned());
        }
        if self.features.contains(wgpu::Features::SUBGROUP) {
            names.push("subgroups".to_owned());
        }
        names
    }

    /// The budgets of one call, clamped to the device.
    pub fn limits(&self) -> &GpuLimits {
        &self.limits
    }

    /// The current device, opening a new one if the last was retired.
    /// May block on the driver: call it off async threads.
    pub(crate) fn device(&self) -> Result<Arc<GpuDevice>, String> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(device) = current.as_ref().filter(|d| !d.lost.load(Ordering::Relaxed)) {
            return Ok(device.clone());
        }
        // Lost through wgpu's callback rather than retired here: keep it
        // until its queue is empty, like a retired one.
        if let Some(lost) = current.take() {
            self.retired.lock().unwrap_or_else(|e| e.into_inner()).push(lost);
        }
        let busy = self.sweep_retired();
        if busy >= MAX_RETIRED {
            return Err(format!(
                "the GPU is still busy with work abandoned by {busy} earlier calls that ran past their budgets; \
                 try again later"
            ));
        }
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("toolmesh"),
            required_limits: self.device_limits.clone(),
            required_features: self.features,
            memory_hints: wgpu::MemoryHints::MemoryUsage,
            ..Default::default()
        };
        let (device, queue) =
            pollster::block_on(self.adapter.request_device(&descriptor)).map_err(|e| e.to_string())?;
        let lost = Arc::new(AtomicBool::new(false));
        let flag = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            flag.store(true, Ordering::Relaxed);
            tracing::warn!(?reason, %message, generation, "GPU device lost");
        });
        // Errors are caught per operation with error scopes; anything that
        // escapes them is logged instead of wgpu's default panic.
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            tracing::warn!(%error, generation, "uncaptured GPU error");
        }));
        if generation > 1 {
            tracing::warn!(generation, "opened a new GPU device after the last was retired");
        }
        let made = Arc::new(GpuDevice {
            device,
            queue,
            generation,
            lost,
            pipelines: Mutex::new(HashMap::new()),
            weights: WeightsCache::default(),
        });
        *current = Some(made.clone());
        Ok(made)
    }

    /// Retires device `generation` (stuck, lost or panicked), so the next
    /// call opens a fresh one. Work still queued on it is abandoned.
    pub(crate) fn retire(&self, generation: u64, why: &str) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(device) = current.as_ref().filter(|d| d.generation == generation) {
            tracing::warn!(generation, why, "retiring the GPU device");
            device.lost.store(true, Ordering::Relaxed);
            self.retired.lock().unwrap_or_else(|e| e.into_inner()).push(device.clone());
            *current = None;
        }
    }

    /// Lets go of retired devices whose queues are empty (dropping them
    /// then does not wait); returns how many are still busy.
    fn sweep_retired(&self) -> usize {
        let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        retired.retain(|d| !matches!(d.device.poll(wgpu::PollType::Poll), Ok(wgpu::PollStatus::QueueEmpty)));
        retired.len()
    }
}

impl Drop for GpuService {
    fn drop(&mut self) {
        // Dropping a busy device waits for its queue, which after a runaway
        // shader may take long: a process that is ending leaves them be.
        for device in self.retired.get_mut().unwrap_or_else(|e| e.into_inner()).drain(..) {
            std::mem::forget(device);
        }
    }
}

impl GpuDevice {
    /// Whether the device was lost or retired.
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// The kernel of `component` for `key` (a digest of its source and
    /// entry point), compiled by `make` on a miss. Kernels are never shared
    /// between components.
    pub(crate) fn kernel(
        &self,
        component: &Digest,
        key: Digest,
        make: impl FnOnce() -> Result<Kernel, String>,
    ) -> Result<Arc<Kernel>, String> {
        let id = (*component, key);
        if let Some(kernel) = self.pipelines.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
            return Ok(kernel.clone());
        }
        let kernel = Arc::new(make()?);
        let mut pipelines = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        if pipelines.len() >= PIPELINES_KEPT {
            pipelines.clear();
        }
        pipelines.insert(id, kernel.clone());
        Ok(kernel)
    }
}

/// The adapter a node uses: of the Vulkan adapters found, a real GPU before
/// a virtual one, a software adapter last. Blocks for the driver.
pub fn best_adapter() -> Option<wgpu::Adapter> {
    let instance = wgpu::Instance::new(
        wgpu::InstanceDescriptor {
            backends: wgpu::Backends::VULKAN,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        }
        .with_env(),
    );
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN));
    adapters.into_iter().min_by_key(|a| rank(a.get_info().device_type))
}

/// Lower is preferred: real GPUs first, software last.
fn rank(kind: wgpu::DeviceType) -> u8 {
    match kind {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn kind_name(kind: wgpu::DeviceType) -> &'static str {
    match kind {
        wgpu::DeviceType::DiscreteGpu => "discrete",
        wgpu::DeviceType::IntegratedGpu => "integrated",
        wgpu::DeviceType::VirtualGpu => "virtual",
        wgpu::DeviceType::Cpu => "cpu",
        wgpu::DeviceType::Other => "other",
    }
}

/// The device limits to ask for: what the adapter supports, with buffer
/// sizes no larger than the policy grants one buffer.
fn clamp_limits(adapter: &wgpu::Limits, limits: &GpuLimits) -> wgpu::Limits {
    let mut out = adapter.clone();
    out.max_buffer_size = out.max_buffer_size.min(limits.max_buffer_size);
    out.max_storage_buffer_binding_size = out.max_storage_buffer_binding_size.min(limits.max_buffer_size);
    out.max_uniform_buffer_binding_size = out.max_uniform_buffer_binding_size.min(limits.max_buffer_size);
    out
}
