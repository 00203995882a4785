//! Weights kept on the GPU for a component: read-only buffers uploaded
//! once, checked against their SHA-256 and shared by the component's later
//! calls and instances, so a model's weights cross to the GPU once per
//! device rather than once per call.
//!
//! Each device keeps its own (they are its buffers), keyed by component
//! and content: a component never sees another's. The node's GPU weights
//! memory bounds them all together; when a new upload does not fit, the
//! least recently used that no call holds go first, and if that is not
//! enough the upload is refused.

use super::GpuError;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use toolmesh_registry::digest::Digest;

/// A SHA-256.
pub(crate) type Hash = [u8; 32];

/// One component's weights on the device.
pub(crate) struct SharedWeights {
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) size: u64,
}

/// A kept entry and when it was last found or kept.
struct Kept {
    weights: Arc<SharedWeights>,
    used: u64,
}

/// The weights a device keeps, by component and content.
#[derive(Default)]
pub(crate) struct WeightsCache {
    inner: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    kept: HashMap<(Digest, Hash), Kept>,
    /// Bytes of everything kept.
    bytes: u64,
    /// A counter standing for time, for least-recently-used order.
    clock: u64,
}

impl CacheState {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }
}

impl WeightsCache {
    /// The component's weights with SHA-256 `hash`, if kept.
    pub(crate) fn find(&self, component: Digest, hash: Hash) -> Option<Arc<SharedWeights>> {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = state.tick();
        let kept = state.kept.get_mut(&(component, hash))?;
        kept.used = now;
        Some(kept.weights.clone())
    }

    /// Keeps `weights` for the component under `hash` within `memory`
    /// bytes in all, making room by dropping the least recently used
    /// weights that no call holds. Weights already kept under that key (a
    /// concurrent upload of the same content) win; `weights` is dropped.
    pub(crate) fn keep(
        &self,
        component: Digest,
        hash: Hash,
        weights: SharedWeights,
        memory: u64,
    ) -> Result<Arc<SharedWeights>, GpuError> {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = state.tick();
        if let Some(kept) = state.kept.get_mut(&(component, hash)) {
            kept.used = now;
            return Ok(kept.weights.clone());
        }
        let size = weights.size;
        let idle: u64 =
            state.kept.values().filter(|k| Arc::strong_count(&k.weights) == 1).map(|k| k.weights.size).sum();
        if state.bytes - idle + size > memory {
            return Err(GpuError::QuotaExceeded(format!(
                "{} of weights do not fit the node's GPU weights memory ({} in all, {} of it held by calls)",
                crate::sandbox::humanize_bytes(size),
                crate::sandbox::humanize_bytes(memory),
                crate::sandbox::humanize_bytes(state.bytes - idle)
            )));
        }
        while state.bytes + size > memory {
            let Some(oldest) = state
                .kept
                .iter()
                .filter(|(_, k)| Arc::strong_count(&k.weights) == 1)
                .min_by_key(|(_, k)| k.used)
                .map(|(key, _)| *key)
            else {
                break;
            };
            if let Some(gone) = state.kept.remove(&oldest) {
                state.bytes -= gone.weights.size;
                tracing::debug!(bytes = gone.weights.size, "dropped idle GPU weights to make room");
            }
        }
        let weights = Arc::new(weights);
        state.bytes += size;
        state.kept.insert((component, hash), Kept { weights: weights.clone(), used: now });
        Ok(weights)
    }
}

/// An upload under way: the device buffer it is written into (mapped, not
/// yet usable by kernels), and what was written so far.
pub struct GpuUpload {
    pub(crate) hash: Hash,
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) length: u64,
    /// Bytes received.
    pub(crate) written: u64,
    /// Bytes copied into the buffer (a multiple of 8 until the last).
    pub(crate) copied: u64,
    /// Bytes received and not yet copied (0 or 4).
    pub(crate) tail: Vec<u8>,
    /// Bytes counted against the call's quota for it.
    pub(crate) counted: u64,
    pub(crate) hasher: Sha256,
    pub(crate) generation: u64,
}

impl GpuUpload {
    /// A fresh upload of `length` bytes with SHA-256 `hash` into `buffer`,
    /// counted as `counted` bytes against the call's quota.
    pub(crate) fn new(hash: Hash, buffer: wgpu::Buffer, length: u64, counted: u64, generation: u64) -> Self {
        GpuUpload {
            hash,
            buffer,
            length,
            written: 0,
            copied: 0,
            tail: Vec::new(),
            counted,
            hasher: Sha256::new(),
            generation,
        }
    }

    /// Whether what was written has the length and SHA-256 the upload was
    /// started with; the error says how it differs.
    pub(crate) fn check(self) -> Result<(Hash, wgpu::Buffer, u64), GpuError> {
        if self.written != self.length {
            return Err(GpuError::InvalidArgument(format!(
                "{} bytes written of an upload of {}",
                self.written, self.length
            )));
        }
        let hash: Hash = self.hasher.finalize().into();
        if hash != self.hash {
            return Err(GpuError::InvalidArgument(format!(
                "the upload's SHA-256 is {}, not the {} it was started with",
                hex::encode(hash),
                hex::encode(self.hash)
            )));
        }
        Ok((hash, self.buffer, self.length))
    }
}

/// A SHA-256 as 64 hex digits.
pub(crate) fn parse_hash(text: &str) -> Result<Hash, GpuError> {
    Digest::from_hex(text).map(|digest| *digest.as_bytes()).ok_or_else(|| {
        GpuError::InvalidArgument(format!(
            "`{}` is not a SHA-256 (64 hex digits)",
            text.chars().take(80).collect::<String>()
        ))
    })
}
