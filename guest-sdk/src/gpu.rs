//! GPU compute from a tool: buffers of `f32`/`u32`, WGSL kernels, and a
//! plain way to fall back to the CPU.
//!
//! ```ignore
//! use toolmesh_guest::gpu::{Gpu, Kernel};
//!
//! const DOUBLE: &str = "@group(0) @binding(0) var<storage, read_write> v: array<f32>;
//!     @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {
//!         if id.x < arrayLength(&v) { v[id.x] = v[id.x] * 2.0; }
//!     }";
//!
//! fn double(values: &[f32]) -> Vec<f32> {
//!     match Gpu::open() {
//!         Ok(gpu) => {
//!             let buffer = gpu.upload_f32(values).unwrap();
//!             let kernel = gpu.kernel(DOUBLE, "main").unwrap();
//!             kernel.dispatch(&[&buffer], (values.len() as u32).div_ceil(64)).unwrap();
//!             buffer.read_f32().unwrap()
//!         }
//!         // No GPU granted on this node, or none there: the same on the CPU.
//!         Err(_) => values.iter().map(|v| v * 2.0).collect(),
//!     }
//! }
//! ```
//!
//! A tool that uses this module imports `toolmesh:tool/gpu`, and is
//! published as needing a GPU: it runs only on nodes that grant one. A tool
//! that falls back to the CPU, as above, says so once with
//! [`gpu_optional!`](crate::gpu_optional): it then runs everywhere, on a
//! GPU where a node grants one (placement prefers those nodes) and on the
//! CPU elsewhere (`tool run` without `--gpu`, nodes without a GPU). Work is queued: [`Kernel::dispatch`]
//! returns at once, and reads wait for what was queued before them.

use crate::bindings::toolmesh::tool::gpu as wit;

/// The most bytes sent to the host in one write, below the host's own cap
/// (`limits.max-transfer`): large uploads go in pieces.
const WRITE_CHUNK: u64 = 1 << 20;

pub use wit::{AdapterInfo, DeviceKind, GpuError, Limits};

impl GpuError {
    /// What went wrong, in words: its kind, then the host's message.
    pub fn message(&self) -> String {
        let (kind, message) = match self {
            GpuError::NoAdapter(m) => ("no GPU", m),
            GpuError::InvalidShader(m) => ("invalid shader", m),
            GpuError::InvalidArgument(m) => ("invalid GPU argument", m),
            GpuError::QuotaExceeded(m) => ("GPU quota exceeded", m),
            GpuError::Timeout(m) => ("GPU timeout", m),
            GpuError::DeviceLost(m) => ("GPU device lost", m),
        };
        format!("{kind}: {message}")
    }
}

impl From<GpuError> for crate::ToolError {
    fn from(error: GpuError) -> Self {
        crate::ToolError::Failed(error.message())
    }
}

/// The GPU this call may use: proof that one was granted and found.
#[derive(Debug, Clone)]
pub struct Gpu {
    info: AdapterInfo,
}

impl Gpu {
    /// The call's GPU, or why there is none (`GpuError::NoAdapter` when
    /// the node grants no GPU or has no adapter: fall back to the CPU).
    pub fn open() -> Result<Gpu, GpuError> {
        Ok(Gpu { info: wit::adapter()? })
    }

    /// The adapter's name, kind and this call's budgets.
    pub fn info(&self) -> &AdapterInfo {
        &self.info
    }

    /// The optional features kernels may use here, in WGSL's words: `f16`
    /// (`enable f16;`), `subgroups`.
    pub fn features(&self) -> Result<Vec<String>, GpuError> {
        wit::features()
    }

    /// Whether kernels may use `feature` (`f16`, `subgroups`) here.
    pub fn has(&self, feature: &str) -> bool {
        self.features().is_ok_and(|all| all.iter().any(|f| f == feature))
    }

    /// A zeroed buffer of `bytes` bytes (rounded up to a multiple of 4,
    /// at least 4).
    pub fn zeroed(&self, bytes: u64) -> Result<Buffer, GpuError> {
        Ok(Buffer { inner: wit::Buffer::create(bytes.max(4).next_multiple_of(4))?, chunk: self.chunk() })
    }

    /// Bytes per write: under the host's transfer cap, with room for the
    /// call's other arguments, a multiple of 8.
    fn chunk(&self) -> usize {
        let cap = self.info.limits.max_transfer.saturating_sub(4096) / 2;
        cap.clamp(8, WRITE_CHUNK) as usize & !7
    }

    /// A buffer holding `values`.
    pub fn upload_f32(&self, values: &[f32]) -> Result<Buffer, GpuError> {
        self.upload_bytes(&values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())
    }

    /// A buffer holding `values`.
    pub fn upload_u32(&self, values: &[u32]) -> Result<Buffer, GpuError> {
        self.upload_bytes(&values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())
    }

    /// A buffer holding `bytes`, padded with zeros to a multiple of 4
    /// (an empty upload gives a 4-byte zeroed buffer: GPU buffers are never
    /// empty).
    pub fn upload_bytes(&self, bytes: &[u8]) -> Result<Buffer, GpuError> {
        let size = bytes.len().max(4).next_multiple_of(4);
        if size <= self.chunk() {
            let mut padded = bytes.to_vec();
            padded.resize(size, 0);
            return Ok(Buffer { inner: wit::Buffer::from_bytes(&padded)?, chunk: self.chunk() });
        }
        let buffer = self.zeroed(size as u64)?;
        buffer.write_bytes(0, bytes)?;
        Ok(buffer)
    }

    /// The component's weights with SHA-256 `sha256` (64 hex digits) as a
    /// read-only buffer: the copy the node keeps on the GPU, or `bytes`
    /// (a multiple of 4, whose SHA-256 that must be) uploaded and kept for
    /// the component's later calls. Kernels bind it as
    /// `var<storage, read>`.
    pub fn weights(&self, sha256: &str, bytes: &[u8]) -> Result<Buffer, GpuError> {
        match self.find_weights(sha256)? {
            Some(kept) => Ok(kept),
            None => self.upload_weights(sha256, bytes),
        }
    }

    /// The component's weights with SHA-256 `sha256`, if the node keeps
    /// them on the GPU (for weights that cost work to make).
    pub fn find_weights(&self, sha256: &str) -> Result<Option<Buffer>, GpuError> {
        Ok(wit::Buffer::find_weights(sha256)?.map(|inner| Buffer { inner, chunk: self.chunk() }))
    }

    /// Uploads `bytes` (a multiple of 4, whose SHA-256 `sha256` must be)
    /// in pieces as weights the node keeps for the component.
    pub fn upload_weights(&self, sha256: &str, bytes: &[u8]) -> Result<Buffer, GpuError> {
        let upload = wit::WeightsUpload::start(sha256, bytes.len() as u64)?;
        for piece in bytes.chunks(self.chunk()) {
            upload.write(piece)?;
        }
        Ok(Buffer { inner: wit::WeightsUpload::finish(upload)?, chunk: self.chunk() })
    }

    /// Validates and compiles the compute entry point `entry` of `wgsl`.
    pub fn kernel(&self, wgsl: &str, entry: &str) -> Result<Kernel, GpuError> {
        Ok(Kernel(wit::Kernel::compile(wgsl, entry)?))
    }

    /// Waits until all queued work is done.
    pub fn finish(&self) -> Result<(), GpuError> {
        wit::finish()
    }
}

/// A GPU buffer; freed when dropped.
#[derive(Debug)]
pub struct Buffer {
    inner: wit::Buffer,
    /// Bytes per write.
    chunk: usize,
}

impl Buffer {
    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.inner.size()
    }

    /// Replaces its start with `values`, after the queued work.
    pub fn write_f32(&self, values: &[f32]) -> Result<(), GpuError> {
        self.write_bytes(0, &values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())
    }

    /// Writes `bytes` at `offset` (a multiple of 4), after the queued work;
    /// a length that is not a multiple of 4 is padded with zeros, which must
    /// fit in the buffer too.
    pub fn write_bytes(&self, offset: u64, bytes: &[u8]) -> Result<(), GpuError> {
        let mut at = offset;
        for chunk in bytes.chunks(self.chunk) {
            if chunk.len().is_multiple_of(4) {
                self.inner.write(at, chunk)?;
            } else {
                let mut padded = chunk.to_vec();
                padded.resize(chunk.len().next_multiple_of(4), 0);
                self.inner.write(at, &padded)?;
            }
            at += chunk.len() as u64;
        }
        Ok(())
    }

    /// Waits for the queued work and reads the whole buffer as `f32`s.
    pub fn read_f32(&self) -> Result<Vec<f32>, GpuError> {
        let bytes = self.inner.read(0, self.size())?;
        Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    /// Waits for the queued work and reads the whole buffer as `u32`s.
    pub fn read_u32(&self) -> Result<Vec<u32>, GpuError> {
        let bytes = self.inner.read(0, self.size())?;
        Ok(bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    /// Waits for the queued work and reads `length` bytes at `offset`.
    pub fn read_bytes(&self, offset: u64, length: u64) -> Result<Vec<u8>, GpuError> {
        self.inner.read(offset, length)
    }
}

/// How many workgroups a dispatch runs: `n` for (n, 1, 1), or all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workgroups(pub u32, pub u32, pub u32);

impl From<u32> for Workgroups {
    fn from(x: u32) -> Self {
        Workgroups(x, 1, 1)
    }
}

impl From<(u32, u32)> for Workgroups {
    fn from((x, y): (u32, u32)) -> Self {
        Workgroups(x, y, 1)
    }
}

impl From<(u32, u32, u32)> for Workgroups {
    fn from((x, y, z): (u32, u32, u32)) -> Self {
        Workgroups(x, y, z)
    }
}

/// A compiled compute kernel.
#[derive(Debug)]
pub struct Kernel(wit::Kernel);

impl Kernel {
    /// Queues a dispatch with `buffers[i]` at `@binding(i)` of group 0.
    pub fn dispatch(&self, buffers: &[&Buffer], workgroups: impl Into<Workgroups>) -> Result<(), GpuError> {
        let bound: Vec<(u32, &Buffer)> = buffers.iter().enumerate().map(|(i, b)| (i as u32, *b)).collect();
        self.dispatch_at(&bound, workgroups)
    }

    /// Queues a dispatch with each buffer at the `@binding` index given.
    pub fn dispatch_at(&self, buffers: &[(u32, &Buffer)], workgroups: impl Into<Workgroups>) -> Result<(), GpuError> {
        let Workgroups(x, y, z) = workgroups.into();
        let bindings: Vec<wit::Binding> =
            buffers.iter().map(|(index, buffer)| wit::Binding { index: *index, buffer: &buffer.inner }).collect();
        self.0.dispatch(&bindings, (x, y, z))
    }
}

/// Declares that this component runs without a GPU: every call that gets
/// no adapter (`Gpu::open` fails) takes a CPU path. Nodes without a GPU
/// then run it too, and gateways place its calls on GPU nodes first. Use it
/// once per component, at the top level of the crate.
///
/// It writes `optional` into the component's `toolmesh:gpu` custom
/// section; a `tool.toml` with `gpu = "required"` overrides it.
#[macro_export]
macro_rules! gpu_optional {
    () => {
        #[cfg(target_family = "wasm")]
        #[unsafe(link_section = "toolmesh:gpu")]
        #[used]
        static __TOOLMESH_GPU_OPTIONAL: [u8; 8] = *b"optional";
    };
}
