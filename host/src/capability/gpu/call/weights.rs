//! Weights kept on the GPU, as a call meets them: finding them, and
//! uploads written piece by piece into a mapped buffer, checked against
//! their SHA-256 and handed to the device's cache.

use super::super::weights::{GpuUpload, SharedWeights, parse_hash};
use super::{ALIGN, GpuBuffer, GpuCall};
use crate::capability::gpu::GpuError;
use sha2::Digest as _;

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
        self.fits(length, "an upload of weights")?;
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
        self.bytes += length;
        let generation = self.device.as_ref().map_or(0, |d| d.generation);
        Ok(GpuUpload::new(hash, buffer, length, generation))
    }

    /// Appends `data` to `upload`.
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
        self.check_generation(upload.generation).await?;
        let (start, buffer) = (upload.written, upload.buffer.clone());
        let data = self
            .job(move |_| {
                buffer
                    .slice(start..start + length)
                    .get_mapped_range_mut()
                    .map_err(|e| GpuError::DeviceLost(format!("cannot write the weights: {e}")))?
                    .copy_from_slice(&data);
                Ok(data)
            })
            .await?;
        upload.hasher.update(&data);
        upload.written = end;
        Ok(())
    }

    /// Checks a finished upload and keeps its weights on the device for
    /// the component: a read-only buffer.
    pub(crate) async fn finish_upload(&mut self, upload: GpuUpload) -> Result<GpuBuffer, GpuError> {
        self.bytes = self.bytes.saturating_sub(upload.length);
        let generation = upload.generation;
        let (hash, buffer, size) = upload.check()?;
        self.check_generation(generation).await?;
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
        self.bytes = self.bytes.saturating_sub(upload.length);
    }
}
