//! One call's use of the GPU: its budgets, its queued work, and the
//! operations behind the `gpu` interface.
//!
//! Everything a call asks of the GPU — writes included — is recorded into
//! one pending command encoder; it is submitted only by `read` or `finish`,
//! which wait for it within the call's time budget. So no work of a call
//! runs unwaited for, and a call that ends without reading submits
//! nothing. Bytes stay counted against the quota until the GPU is done
//! with them: a dropped buffer that queued work still uses, and the
//! staging copies of writes, are released after the next completed wait.
//!
//! Every operation that reaches the driver runs on a blocking thread, away
//! from the threads that serve requests, inside wgpu error scopes and
//! `catch_unwind`: a validation error becomes the call's error, a panic in
//! the driver retires the device instead of taking the node down.

use super::device::{GpuDevice, GpuService, Kernel};
use super::driver::{discarded, error_text, panic_text, scoped, wait};
use super::weights::SharedWeights;
use super::{GpuError, GpuLimits, shader};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use toolmesh_registry::digest::Digest;

mod weights;

/// Alignment of buffer sizes, offsets and lengths.
const ALIGN: u64 = wgpu::COPY_BUFFER_ALIGNMENT;

/// Kernels one call may compile (cache hits included).
pub const MAX_KERNELS_PER_CALL: u32 = 64;

/// Invocations one dispatch may run (workgroups × workgroup size).
pub const MAX_INVOCATIONS_PER_DISPATCH: u64 = 1 << 28;

/// A buffer as the guest holds it.
pub struct GpuBuffer {
    buffer: wgpu::Buffer,
    size: u64,
    generation: u64,
    /// The kept weights it is, if it is some: read-only, and counted in
    /// the node's weights memory rather than the call's quota.
    shared: Option<Arc<SharedWeights>>,
}

impl GpuBuffer {
    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether it is weights the device keeps (read-only, not counted in
    /// the call's quota).
    pub fn is_kept(&self) -> bool {
        self.shared.is_some()
    }
}

/// A compiled kernel as the guest holds it.
pub struct GpuKernel {
    kernel: Arc<Kernel>,
    generation: u64,
}

/// The GPU state of one call.
pub(crate) struct GpuCall {
    /// The node's GPU, or why this call has none.
    service: Result<Arc<GpuService>, String>,
    component: Digest,
    device: Option<Arc<GpuDevice>>,
    /// Why this call's device is gone, once it is.
    retired: Option<String>,
    deadline: Instant,
    /// The most bytes one write may pass (the host's transfer cap).
    max_transfer: u64,
    /// Bytes of the call's live buffers.
    bytes: u64,
    /// Bytes the GPU may still use until the next completed wait: staging
    /// copies of writes and buffers dropped while work was queued.
    held: u64,
    /// Buffers dropped while queued work may still use them.
    graveyard: Vec<wgpu::Buffer>,
    /// Kept weights dropped while queued work may still use them: held, so
    /// the device's cache does not count them idle (and evict them while
    /// their memory is still in use) before the work is done.
    weights_in_flight: Vec<Arc<SharedWeights>>,
    dispatches: u32,
    kernels: u32,
    waited: Duration,
    pending: Option<wgpu::CommandEncoder>,
    /// Counts each wait as the call's GPU time, as it ends (so a call
    /// stopped part-way still counts what it waited).
    meter: Arc<crate::sandbox::CallMeter>,
}

impl GpuCall {
    /// The GPU state of a call of `component` that ends by `deadline`;
    /// `service` is the node's GPU or why the call may not use one;
    /// `max_transfer` the most bytes the host copies out of the guest in
    /// one call.
    pub(crate) fn new(
        service: Result<Arc<GpuService>, String>,
        component: Digest,
        deadline: Instant,
        max_transfer: u64,
        meter: Arc<crate::sandbox::CallMeter>,
    ) -> Self {
        GpuCall {
            service,
            component,
            device: None,
            retired: None,
            deadline,
            max_transfer,
            bytes: 0,
            held: 0,
            graveyard: Vec::new(),
            weights_in_flight: Vec::new(),
            dispatches: 0,
            kernels: 0,
            waited: Duration::ZERO,
            pending: None,
            meter,
        }
    }

    /// Takes the GPU away from the call: every operation answers
    /// `no-adapter` with `why`.
    pub(crate) fn deny(&mut self, why: &str) {
        self.service = Err(why.to_owned());
    }

    /// The node's GPU, if this call may use it.
    pub(crate) fn service(&self) -> Result<&Arc<GpuService>, GpuError> {
        self.service.as_ref().map_err(|why| GpuError::NoAdapter(why.clone()))
    }

    /// The most bytes one write may pass.
    pub(crate) fn max_transfer(&self) -> u64 {
        self.max_transfer
    }

    fn limits(&self) -> Result<GpuLimits, GpuError> {
        Ok(self.service()?.limits().clone())
    }

    /// The call's device, taken from the node on first use (on a blocking
    /// thread: opening a device waits for the driver).
    async fn device(&mut self) -> Result<Arc<GpuDevice>, GpuError> {
        if let Some(why) = &self.retired {
            return Err(GpuError::DeviceLost(why.clone()));
        }
        if let Some(device) = &self.device {
            if device.is_lost() {
                let why = "the GPU device was lost or replaced during this call".to_owned();
                self.retired = Some(why.clone());
                return Err(GpuError::DeviceLost(why));
            }
            return Ok(device.clone());
        }
        let service = self.service()?.clone();
        let device = tokio::task::spawn_blocking(move || service.device())
            .await
            .map_err(|e| GpuError::DeviceLost(format!("the GPU worker failed: {e}")))?
            .map_err(GpuError::DeviceLost)?;
        self.device = Some(device.clone());
        Ok(device)
    }

    /// Runs `job` on a blocking thread inside error scopes; a panic, a
    /// timeout or a lost device retires the device.
    async fn job<T: Send + 'static>(
        &mut self,
        job: impl FnOnce(&GpuDevice) -> Result<T, GpuError> + Send + 'static,
    ) -> Result<T, GpuError> {
        let device = self.device().await?;
        let generation = device.generation;
        let outcome = tokio::task::spawn_blocking(move || {
            std::panic::catch_unwind(AssertUnwindSafe(|| scoped(&device, || job(&device))))
        })
        .await;
        let (why, timed_out) = match outcome {
            Ok(Ok(Err(GpuError::Timeout(why)))) => (why, true),
            Ok(Ok(Err(GpuError::DeviceLost(why)))) => (why, false),
            Ok(Ok(result)) => return result,
            Ok(Err(panic)) => (format!("the GPU driver failed: {}", panic_text(&panic)), false),
            Err(join) => (format!("the GPU worker failed: {join}"), false),
        };
        if let Ok(service) = &self.service {
            service.retire(generation, &why);
        }
        self.retired = Some(why.clone());
        Err(if timed_out { GpuError::Timeout(why) } else { GpuError::DeviceLost(why) })
    }

    /// How long the next wait may last (the rest of the GPU time budget
    /// and of the call's time, whichever ends first), and what to say if
    /// it runs out.
    fn wait_allowance(&self) -> Result<(Duration, String), GpuError> {
        let limit = self.limits()?.time_budget;
        let budget = limit.saturating_sub(self.waited);
        let call = self.deadline.saturating_duration_since(Instant::now());
        let why = if budget <= call {
            format!("the call's GPU work ran past its time budget ({} ms)", limit.as_millis())
        } else {
            "the call's time limit ran out while it waited for the GPU".to_owned()
        };
        let left = budget.min(call);
        if left.is_zero() {
            return Err(GpuError::Timeout(why));
        }
        Ok((left, why))
    }

    /// Checks that `more` bytes fit the call's quota with what it holds.
    fn fits(&self, more: u64, what: &str) -> Result<(), GpuError> {
        let limits = self.limits()?;
        let total = self.bytes.saturating_add(self.held).saturating_add(more);
        if total > limits.max_total_bytes {
            return Err(GpuError::QuotaExceeded(format!(
                "{more} more bytes ({what}) would put the call's GPU memory at {total} bytes, over its quota of {} bytes",
                limits.max_total_bytes
            )));
        }
        Ok(())
    }

    /// A zeroed buffer of `size` bytes, counted against the call's quota.
    pub(crate) async fn create(&mut self, size: u64) -> Result<GpuBuffer, GpuError> {
        let limits = self.limits()?;
        if size == 0 || !size.is_multiple_of(ALIGN) {
            return Err(GpuError::InvalidArgument(format!(
                "a buffer's size must be a positive multiple of 4, not {size}"
            )));
        }
        if size > limits.max_buffer_size {
            return Err(GpuError::QuotaExceeded(format!(
                "a buffer of {size} bytes is over the largest allowed, {} bytes",
                limits.max_buffer_size
            )));
        }
        self.fits(size, "a new buffer")?;
        let buffer = self
            .job(move |device| {
                Ok(device.device.create_buffer(&wgpu::BufferDescriptor {
                    label: None,
                    size,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::UNIFORM
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }))
            })
            .await?;
        self.bytes += size;
        let generation = self.device.as_ref().map_or(0, |d| d.generation);
        Ok(GpuBuffer { buffer, size, generation, shared: None })
    }

    /// Releases `bytes` counted for something dropped before the guest
    /// held it (and before any work could use it).
    pub(crate) fn uncount(&mut self, bytes: u64) {
        self.bytes = self.bytes.saturating_sub(bytes);
    }

    /// Takes back a dropped buffer: its bytes are released now if no work
    /// is queued, else after the next completed wait.
    pub(crate) fn release(&mut self, buffer: GpuBuffer) {
        if let Some(shared) = buffer.shared {
            if self.pending.is_some() {
                self.weights_in_flight.push(shared);
            }
            return;
        }
        self.bytes = self.bytes.saturating_sub(buffer.size);
        if self.pending.is_some() {
            self.held += buffer.size;
            self.graveyard.push(buffer.buffer);
        }
    }

    /// Queues a write of `data` at `offset` of `buffer`, after the work
    /// queued before it.
    pub(crate) async fn write(&mut self, buffer: &GpuBuffer, offset: u64, data: Vec<u8>) -> Result<(), GpuError> {
        let length = data.len() as u64;
        if buffer.shared.is_some() {
            return Err(GpuError::InvalidArgument("kept weights are read-only: they take no writes".into()));
        }
        self.check_range(buffer, offset, length)?;
        if length == 0 {
            return Ok(());
        }
        self.check_generation(buffer.generation).await?;
        self.fits(length, "a write's staging copy")?;
        let pending = self.pending.take();
        let target = buffer.buffer.clone();
        let encoder = self
            .job(move |device| {
                let staging = device.device.create_buffer(&wgpu::BufferDescriptor {
                    label: None,
                    size: length,
                    usage: wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: true,
                });
                staging
                    .slice(..)
                    .get_mapped_range_mut()
                    .map_err(|e| GpuError::DeviceLost(format!("cannot stage the write: {e}")))?
                    .copy_from_slice(&data);
                staging.unmap();
                let mut encoder = pending.unwrap_or_else(|| device.device.create_command_encoder(&Default::default()));
                encoder.copy_buffer_to_buffer(&staging, 0, &target, offset, length);
                Ok(encoder)
            })
            .await
            .map_err(discarded)?;
        self.held += length;
        self.pending = Some(encoder);
        Ok(())
    }

    /// Waits for the queued work, then reads `length` bytes at `offset`.
    pub(crate) async fn read(&mut self, buffer: &GpuBuffer, offset: u64, length: u64) -> Result<Vec<u8>, GpuError> {
        self.check_range(buffer, offset, length)?;
        self.check_generation(buffer.generation).await?;
        self.fits(length, "a read's staging copy")?;
        let (allowance, why) = self.wait_allowance()?;
        let pending = self.pending.take();
        let source = buffer.buffer.clone();
        let started = Instant::now();
        let result = self
            .job(move |device| {
                let mut encoder = pending.unwrap_or_else(|| device.device.create_command_encoder(&Default::default()));
                let staging = (length > 0).then(|| {
                    let staging = device.device.create_buffer(&wgpu::BufferDescriptor {
                        label: None,
                        size: length,
                        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    });
                    encoder.copy_buffer_to_buffer(&source, offset, &staging, 0, length);
                    staging
                });
                let index = device.queue.submit([encoder.finish()]);
                let Some(staging) = staging else {
                    wait(device, index, allowance, why)?;
                    return Ok(Vec::new());
                };
                let (sender, receiver) = std::sync::mpsc::channel();
                staging.slice(..).map_async(wgpu::MapMode::Read, move |mapped| {
                    let _ = sender.send(mapped);
                });
                wait(device, index, allowance, why.clone())?;
                // Another call's poll may run the callback a little later.
                let left = allowance.saturating_sub(started.elapsed()).max(Duration::from_millis(100));
                match receiver.recv_timeout(left) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(GpuError::DeviceLost(format!("cannot read the buffer back: {e}"))),
                    Err(_) => return Err(GpuError::Timeout(why)),
                }
                let bytes = staging
                    .slice(..)
                    .get_mapped_range()
                    .map_err(|e| GpuError::DeviceLost(format!("cannot read the buffer back: {e}")))?
                    .to_vec();
                staging.unmap();
                Ok(bytes)
            })
            .await;
        let spent = started.elapsed();
        self.waited += spent;
        self.meter.add_gpu(spent);
        self.settled();
        result.map_err(discarded)
    }

    /// Waits until all queued work is done.
    pub(crate) async fn finish(&mut self) -> Result<(), GpuError> {
        let Some(encoder) = self.pending.take() else {
            self.service()?;
            return Ok(());
        };
        let (allowance, why) = self.wait_allowance()?;
        let started = Instant::now();
        let result = self
            .job(move |device| {
                let index = device.queue.submit([encoder.finish()]);
                wait(device, index, allowance, why)
            })
            .await;
        let spent = started.elapsed();
        self.waited += spent;
        self.meter.add_gpu(spent);
        self.settled();
        result.map_err(discarded)
    }

    /// After a wait (or a failed submission) nothing of the call is in
    /// flight: what the GPU held is released.
    fn settled(&mut self) {
        self.graveyard.clear();
        self.weights_in_flight.clear();
        self.held = 0;
    }

    /// Validates and compiles a kernel, or takes it from the device's cache.
    pub(crate) async fn compile(&mut self, source: String, entry: String) -> Result<GpuKernel, GpuError> {
        let limits = self.limits()?;
        if self.kernels >= MAX_KERNELS_PER_CALL {
            return Err(GpuError::QuotaExceeded(format!(
                "the call has compiled {MAX_KERNELS_PER_CALL} kernels, the most allowed"
            )));
        }
        self.kernels += 1;
        let component = self.component;
        let features = self.service()?.features();
        let key = Digest::of(format!("{entry}\n{}\n{source}", limits.max_loop_iterations).as_bytes());
        let kernel = self
            .job(move |device| {
                device
                    .kernel(&component, key, || {
                        let checked = shader::check(&source, &entry, limits.max_loop_iterations, features)?;
                        // Checked in a scope of its own, so a pipeline wgpu
                        // refuses is never cached.
                        let scope = device.device.push_error_scope(wgpu::ErrorFilter::Validation);
                        let module = device.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                            label: None,
                            source: wgpu::ShaderSource::Naga(std::borrow::Cow::Owned(checked.module)),
                        });
                        let pipeline = device.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                            label: None,
                            layout: None,
                            module: &module,
                            entry_point: Some(&entry),
                            compilation_options: Default::default(),
                            cache: None,
                        });
                        let layout = (!checked.bindings.is_empty()).then(|| pipeline.get_bind_group_layout(0));
                        if let Some(error) = pollster::block_on(scope.pop()) {
                            return Err(error_text(&error));
                        }
                        Ok(Kernel {
                            pipeline,
                            layout,
                            bindings: checked.bindings,
                            writable: checked.writable,
                            workgroup_invocations: checked.workgroup_invocations,
                        })
                    })
                    .map_err(GpuError::InvalidShader)
            })
            .await?;
        let generation = self.device.as_ref().map_or(0, |d| d.generation);
        Ok(GpuKernel { kernel, generation })
    }

    /// Queues one dispatch of `kernel` over `workgroups` with `bindings`.
    pub(crate) async fn dispatch(
        &mut self,
        kernel: &GpuKernel,
        bindings: Vec<(u32, &GpuBuffer)>,
        workgroups: (u32, u32, u32),
    ) -> Result<(), GpuError> {
        let limits = self.limits()?;
        if self.dispatches >= limits.max_dispatches {
            return Err(GpuError::QuotaExceeded(format!(
                "the call has made its {} dispatches, the most allowed",
                limits.max_dispatches
            )));
        }
        self.check_generation(kernel.generation).await?;
        for (_, buffer) in &bindings {
            self.check_generation(buffer.generation).await?;
        }
        let (x, y, z) = workgroups;
        let most = limits.max_workgroups_per_dimension;
        if x.max(y).max(z) > most {
            return Err(GpuError::InvalidArgument(format!("{x}×{y}×{z} workgroups: at most {most} in each dimension")));
        }
        let invocations = u64::from(x) * u64::from(y) * u64::from(z) * kernel.kernel.workgroup_invocations;
        if invocations > MAX_INVOCATIONS_PER_DISPATCH {
            return Err(GpuError::QuotaExceeded(format!(
                "{invocations} invocations in one dispatch, over the {MAX_INVOCATIONS_PER_DISPATCH} allowed"
            )));
        }
        let mut given: Vec<u32> = bindings.iter().map(|(index, _)| *index).collect();
        given.sort_unstable();
        if given != kernel.kernel.bindings {
            return Err(GpuError::InvalidArgument(format!(
                "the kernel binds @binding {:?} of group 0, and the dispatch gives {:?}",
                kernel.kernel.bindings, given
            )));
        }
        if let Some((index, _)) =
            bindings.iter().find(|(index, b)| b.shared.is_some() && kernel.kernel.writable.binary_search(index).is_ok())
        {
            return Err(GpuError::InvalidArgument(format!(
                "kept weights are read-only, and the kernel may write @binding({index}): declare it \
                 `var<storage, read>`"
            )));
        }
        self.dispatches += 1;
        if invocations == 0 {
            return Ok(());
        }
        let buffers: Vec<(u32, wgpu::Buffer)> = bindings.iter().map(|(i, b)| (*i, b.buffer.clone())).collect();
        let compiled = kernel.kernel.clone();
        let pending = self.pending.take();
        let encoder = self
            .job(move |device| {
                let group = compiled.layout.as_ref().map(|layout| {
                    let entries: Vec<wgpu::BindGroupEntry> = buffers
                        .iter()
                        .map(|(binding, buffer)| wgpu::BindGroupEntry {
                            binding: *binding,
                            resource: buffer.as_entire_binding(),
                        })
                        .collect();
                    device.device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: None,
                        layout,
                        entries: &entries,
                    })
                });
                let mut encoder = pending.unwrap_or_else(|| device.device.create_command_encoder(&Default::default()));
                {
                    let mut pass = encoder.begin_compute_pass(&Default::default());
                    pass.set_pipeline(&compiled.pipeline);
                    if let Some(group) = &group {
                        pass.set_bind_group(0, group, &[]);
                    }
                    pass.dispatch_workgroups(x, y, z);
                }
                Ok(encoder)
            })
            .await
            .map_err(discarded)?;
        self.pending = Some(encoder);
        Ok(())
    }

    /// Refuses a buffer or kernel of a device this call no longer uses.
    pub(super) async fn check_generation(&mut self, generation: u64) -> Result<(), GpuError> {
        let device = self.device().await?;
        if generation != device.generation {
            return Err(GpuError::DeviceLost("the kernel or buffer belongs to a GPU device that is gone".into()));
        }
        Ok(())
    }

    fn check_range(&self, buffer: &GpuBuffer, offset: u64, length: u64) -> Result<(), GpuError> {
        if !offset.is_multiple_of(ALIGN) || !length.is_multiple_of(ALIGN) {
            return Err(GpuError::InvalidArgument(format!(
                "offset {offset} and length {length} must be multiples of 4"
            )));
        }
        if offset.checked_add(length).is_none_or(|end| end > buffer.size) {
            return Err(GpuError::InvalidArgument(format!(
                "{length} bytes at offset {offset} run past the end of a {}-byte buffer",
                buffer.size
            )));
        }
        Ok(())
    }
}
