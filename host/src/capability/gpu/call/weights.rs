//! Weights kept on the GPU, as a call meets them: finding them, and
//! uploads written piece by piece into a mapped buffer, checked against
//! their SHA-256 and handed to the device's cache.

use super::super::weights::{GpuUpload, SharedWeights, parse_hash};
use super::{ALIGN, GpuBuffer, GpuCall};
use crate::capability::gpu::GpuError;
use sha2::Digest as _;

/// Alignment of the start of a mapped range.
const MAP_ALIGN: usize = wgpu::MAP_ALIGNMENT as usize;

impl GpuCall {
    /// The component's kept weights with SHA-256 `sha256`, if the device
    /// has them.
    pub(crate) async fn find_weights(&mut self, sha256: &str) -> Result<Option<GpuBuffer>, GpuError> {
        let hash = parse_hash(sha256)?;
        let device = self.device().await?;
        Ok(device.weights.find(self.component, hash).map(|shared| GpuBuffer {
            buffer: shared.buffer.clone(),
            size: shared.size,
            generation: device.generation,
            shared: Some(shared),
        }))
    }

    /// Starts an upload of `length` bytes of weights with SHA-256
    /// `sha256`, counted against the call's quota until it is finished.
    pub(crate) async fn start_upload(&mut self, sha256: &str, length: u64) -> Result<GpuUpload, GpuError> {
        let hash = parse_hash(sha256)?;
        let limits = self.limits()?;
        if length == 0 || !length.is_multiple_of(ALIGN) {
            return Err(GpuError::InvalidArgument(format!(
                "weights must be a positive multiple of 4 bytes, not {length}"
            )));
        }
        let most = limits.max_buffer_size.min(limits.weights_memory);
        if length > most {
            return Err(GpuError::QuotaExceeded(format!(
                "{} of weights are over the most one upload may hold, {}",
                crate::sandbox::humanize_bytes(length),
                crate::sandbox::humanize_bytes(most)
            )));
        }
        // While it is written, the device buffer has a staging copy of
        // the same size: both count.
        let counted = length.saturating_mul(2);
        self.fits(counted, "an upload of weights and its staging copy")?;
        let buffer = self
            .job(move |device| {
                Ok(device.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("weights"),
                    size: length,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: true,
                }))
            })
            .await?;
        self.bytes += counted;
        let generation = self.device.as_ref().map_or(0, |d| d.generation);
        Ok(GpuUpload::new(hash, buffer, length, counted, generation))
    }

    /// Appends `data` (a multiple of 4 bytes) to `upload`.
    pub(crate) async fn write_upload(&mut self, upload: &mut GpuUpload, data: Vec<u8>) -> Result<(), GpuError> {
        let length = data.len() as u64;
        let end = upload.written.saturating_add(length);
        if end > upload.length {
            return Err(GpuError::InvalidArgument(format!("{end} bytes written of an upload of {}", upload.length)));
        }
        if !length.is_multiple_of(ALIGN) {
            return Err(GpuError::InvalidArgument(format!(
                "an upload's pieces must be multiples of 4 bytes, not {length}"
            )));
        }
        if length == 0 {
            return Ok(());
        }
        // Mapped ranges start at multiples of 8: up to 4 bytes wait for
        // the next piece (or the end).
        let mut bytes = std::mem::take(&mut upload.tail);
        bytes.extend_from_slice(&data);
        drop(data);
        let whole = bytes.len() / MAP_ALIGN * MAP_ALIGN;
        upload.tail = bytes.split_off(whole);
        self.copy_in(upload, bytes).await?;
        upload.written = end;
        Ok(())
    }

    /// Copies `bytes` into `upload`'s buffer after what was copied before
    /// (at a multiple of 8), hashing them on the way.
    async fn copy_in(&mut self, upload: &mut GpuUpload, bytes: Vec<u8>) -> Result<(), GpuError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.check_generation(upload.generation).await?;
        let (start, end) = (upload.copied, upload.copied + bytes.len() as u64);
        let buffer = upload.buffer.clone();
        let mut hasher = std::mem::take(&mut upload.hasher);
        upload.hasher = self
            .job(move |_| {
                hasher.update(&bytes);
                buffer
                    .slice(start..end)
                    .get_mapped_range_mut()
                    .map_err(|e| GpuError::InvalidArgument(format!("cannot write the weights: {e}")))?
                    .copy_from_slice(&bytes);
                Ok(hasher)
            })
            .await?;
        upload.copied = end;
        Ok(())
    }

    /// Checks a finished upload and keeps its weights on the device for
    /// the component: a read-only buffer.
    pub(crate) async fn finish_upload(&mut self, mut upload: GpuUpload) -> Result<GpuBuffer, GpuError> {
        self.bytes = self.bytes.saturating_sub(upload.counted);
        let tail = std::mem::take(&mut upload.tail);
        self.copy_in(&mut upload, tail).await?;
        let generation = upload.generation;
        let (hash, buffer, size) = upload.check()?;
        let (component, memory) = (self.component, self.limits()?.weights_memory);
        let shared = self
            .job(move |device| {
                buffer.unmap();
                device.weights.keep(component, hash, SharedWeights { buffer, size }, memory)
            })
            .await?;
        Ok(GpuBuffer { buffer: shared.buffer.clone(), size: shared.size, generation, shared: Some(shared) })
    }

    /// Forgets a dropped upload.
    pub(crate) fn drop_upload(&mut self, upload: GpuUpload) {
        self.bytes = self.bytes.saturating_sub(upload.counted);
    }
}
