//! One call's use of host linear algebra: its budgets (bytes held, work
//! done) and the matrices, weights and uploads it holds; the operations,
//! each checked in full before any work, are in `ops`.

mod ops;

use super::LinalgError;
use super::service::{LinalgService, WeightsData};
use crate::sandbox::{CallMeter, Reservation};
use sha2::{Digest as _, Sha256};
use std::sync::Arc;
use toolmesh_registry::digest::Digest;

/// Rows one attention sequence may have (its scores take rows² values).
pub const MAX_SEQUENCE: usize = 2048;

/// Matrices, weights and uploads one call may hold at once (handles).
pub const MAX_HANDLES: u32 = 4096;

/// A matrix held for the guest; its buffer goes back to the service's
/// spares when it is dropped.
pub struct LinalgMatrix {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) values: Arc<Vec<f32>>,
    service: Arc<LinalgService>,
    _reservation: Reservation,
}

impl Drop for LinalgMatrix {
    fn drop(&mut self) {
        let values = std::mem::take(&mut self.values);
        if let Ok(buffer) = Arc::try_unwrap(values) {
            self.service.recycle(buffer);
        }
    }
}

/// Weights as the guest holds them.
pub struct LinalgWeights {
    pub(crate) data: Arc<WeightsData>,
}

/// An upload under way.
pub struct LinalgUpload {
    hash: [u8; 32],
    length: u64,
    written: u64,
    values: Vec<f32>,
    /// Up to three bytes of a value split between writes.
    partial: Vec<u8>,
    hasher: Sha256,
    reservation: Reservation,
}

/// The linear-algebra state of one call.
pub(crate) struct LinalgCall {
    service: Result<Arc<LinalgService>, String>,
    component: Digest,
    pub(crate) meter: Arc<CallMeter>,
    /// The most bytes one function call may pass to the host.
    max_transfer: u64,
    /// Bytes of live matrices and unfinished uploads.
    bytes: u64,
    /// Floating-point operations of the call so far.
    flops: u64,
    /// Live handles.
    handles: u32,
}

fn invalid(message: impl Into<String>) -> LinalgError {
    LinalgError::InvalidArgument(message.into())
}

/// `a × b`, or an error naming `what` when it overflows.
fn times(a: u64, b: u64, what: &str) -> Result<u64, LinalgError> {
    a.checked_mul(b).ok_or_else(|| LinalgError::QuotaExceeded(format!("{what} is too large")))
}

impl LinalgCall {
    /// The state of a call of `component`; `service` is the node's, or why
    /// it has none.
    pub(crate) fn new(
        service: Result<Arc<LinalgService>, String>,
        component: Digest,
        max_transfer: u64,
        meter: Arc<CallMeter>,
    ) -> Self {
        LinalgCall { service, component, meter, max_transfer, bytes: 0, flops: 0, handles: 0 }
    }

    /// Readies a session's state for its next call: new work budget,
    /// meter and transfer size.
    pub(crate) fn resume(&mut self, meter: Arc<CallMeter>, max_transfer: u64) {
        self.meter = meter;
        self.max_transfer = max_transfer;
        self.flops = 0;
    }

    /// The node's service, if this call may use it.
    pub(crate) fn service(&self) -> Result<&Arc<LinalgService>, LinalgError> {
        self.service.as_ref().map_err(|why| LinalgError::Unavailable(why.clone()))
    }

    /// The most bytes one function call may pass to the host.
    pub(crate) fn max_transfer(&self) -> u64 {
        self.max_transfer
    }

    /// Counts `bytes` more held by the call and one more handle.
    fn hold(&mut self, bytes: u64) -> Result<Reservation, LinalgError> {
        let service = self.service()?.clone();
        let limit = service.config().max_call_bytes;
        if self.handles >= MAX_HANDLES {
            return Err(LinalgError::QuotaExceeded(format!("a call holds at most {MAX_HANDLES} handles")));
        }
        if self.bytes.saturating_add(bytes) > limit {
            return Err(LinalgError::QuotaExceeded(format!(
                "{} more would take the call's matrices past its {}",
                crate::sandbox::humanize_bytes(bytes),
                crate::sandbox::humanize_bytes(limit)
            )));
        }
        let reservation = service.reserve(bytes)?;
        self.bytes += bytes;
        self.handles += 1;
        Ok(reservation)
    }

    /// Counts one more handle that holds no bytes (weights).
    fn hold_handle(&mut self) -> bool {
        if self.handles >= MAX_HANDLES {
            return false;
        }
        self.handles += 1;
        true
    }

    /// Gives back what a dropped matrix, upload or weights handle held.
    pub(crate) fn release(&mut self, bytes: u64) {
        self.bytes = self.bytes.saturating_sub(bytes);
        self.handles = self.handles.saturating_sub(1);
    }

    /// Counts `flops` of work before it is done.
    fn charge(&mut self, flops: u64) -> Result<(), LinalgError> {
        let config = self.service()?.config();
        if flops > config.max_op_flops {
            return Err(LinalgError::QuotaExceeded(format!(
                "the operation takes {flops} floating-point operations; at most {} each",
                config.max_op_flops
            )));
        }
        let total = self.flops.saturating_add(flops);
        if total > config.max_call_flops {
            return Err(LinalgError::QuotaExceeded(format!(
                "the call's operations would take {total} floating-point operations; at most {} a call",
                config.max_call_flops
            )));
        }
        self.flops = total;
        Ok(())
    }

    /// A matrix of `rows` × `cols` with `values` (zeros when `None`).
    pub(crate) fn matrix(
        &mut self,
        rows: u32,
        cols: u32,
        values: Option<Vec<f32>>,
    ) -> Result<LinalgMatrix, LinalgError> {
        if rows == 0 || cols == 0 {
            return Err(invalid(format!("a matrix of {rows} × {cols}: both must be at least 1")));
        }
        let count = times(u64::from(rows), u64::from(cols), "the matrix")?;
        if let Some(values) = &values
            && values.len() as u64 != count
        {
            return Err(invalid(format!("{} values given for a {rows} × {cols} matrix", values.len())));
        }
        let reservation = self.hold(times(count, 4, "the matrix")?)?;
        let service = self.service()?.clone();
        let values = values.unwrap_or_else(|| service.zeros(count as usize));
        Ok(LinalgMatrix {
            rows: rows as usize,
            cols: cols as usize,
            values: Arc::new(values),
            service,
            _reservation: reservation,
        })
    }

    /// Forgets a dropped matrix.
    pub(crate) fn drop_matrix(&mut self, matrix: LinalgMatrix) {
        self.release(matrix.values.len() as u64 * 4);
    }

    /// Overwrites whole rows of `matrix` from `row` on.
    pub(crate) fn write_rows(matrix: &mut LinalgMatrix, row: u32, data: Vec<f32>) -> Result<(), LinalgError> {
        let row = row as usize;
        if !data.len().is_multiple_of(matrix.cols) {
            return Err(invalid(format!("{} values are not whole rows of {}", data.len(), matrix.cols)));
        }
        let count = data.len() / matrix.cols;
        if row.checked_add(count).is_none_or(|end| end > matrix.rows) {
            return Err(invalid(format!("rows {row}..{} are past the matrix's {} rows", row + count, matrix.rows)));
        }
        let start = row * matrix.cols;
        Arc::make_mut(&mut matrix.values)[start..start + data.len()].copy_from_slice(&data);
        Ok(())
    }

    /// `count` whole rows of `matrix` from `row` on, at most the call's
    /// transfer size.
    pub(crate) fn read_rows(&self, matrix: &LinalgMatrix, row: u32, count: u32) -> Result<Vec<f32>, LinalgError> {
        let (row, count) = (row as usize, count as usize);
        if row.checked_add(count).is_none_or(|end| end > matrix.rows) {
            return Err(invalid(format!("rows {row}..{} are past the matrix's {} rows", row + count, matrix.rows)));
        }
        let bytes = (count * matrix.cols) as u64 * 4;
        if bytes > self.max_transfer {
            return Err(LinalgError::QuotaExceeded(format!(
                "{bytes} bytes in one read; at most {} (read fewer rows at a time)",
                self.max_transfer
            )));
        }
        Ok(matrix.values[row * matrix.cols..(row + count) * matrix.cols].to_vec())
    }

    /// The component's kept weights with SHA-256 `sha256`.
    pub(crate) fn find(&mut self, sha256: &str) -> Option<LinalgWeights> {
        let hash = parse_hash(sha256).ok()?;
        let data = self.service().ok()?.find(self.component, hash)?;
        self.hold_handle().then_some(LinalgWeights { data })
    }

    /// Starts an upload of `length` bytes with SHA-256 `sha256`.
    pub(crate) fn start(&mut self, sha256: &str, length: u64) -> Result<LinalgUpload, LinalgError> {
        let hash = parse_hash(sha256)?;
        let limit = self.service()?.config().max_weights_bytes;
        if length == 0 || !length.is_multiple_of(4) {
            return Err(invalid(format!("{length} bytes are not whole f32 values (a multiple of 4, at least 4)")));
        }
        if length > limit {
            return Err(LinalgError::QuotaExceeded(format!(
                "{} of weights; at most {} each",
                crate::sandbox::humanize_bytes(length),
                crate::sandbox::humanize_bytes(limit)
            )));
        }
        let reservation = self.hold(length)?;
        Ok(LinalgUpload {
            hash,
            length,
            written: 0,
            values: Vec::new(),
            partial: Vec::with_capacity(4),
            hasher: Sha256::new(),
            reservation,
        })
    }

    /// Appends `data` to `upload`.
    pub(crate) fn write(upload: &mut LinalgUpload, data: &[u8]) -> Result<(), LinalgError> {
        if upload.written.saturating_add(data.len() as u64) > upload.length {
            return Err(invalid(format!(
                "{} bytes written of an upload of {}",
                upload.written.saturating_add(data.len() as u64),
                upload.length
            )));
        }
        if upload.values.capacity() == 0 {
            upload.values.reserve_exact((upload.length / 4) as usize);
        }
        upload.hasher.update(data);
        upload.written += data.len() as u64;
        let mut rest = data;
        if !upload.partial.is_empty() {
            let need = (4 - upload.partial.len()).min(rest.len());
            upload.partial.extend_from_slice(&rest[..need]);
            rest = &rest[need..];
            if upload.partial.len() == 4 {
                let bytes: [u8; 4] = upload.partial[..].try_into().unwrap_or_default();
                upload.values.push(f32::from_le_bytes(bytes));
                upload.partial.clear();
            }
        }
        let whole = rest.len() / 4 * 4;
        upload.values.extend(rest[..whole].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
        upload.partial.extend_from_slice(&rest[whole..]);
        Ok(())
    }

    /// Checks and keeps a finished upload's weights.
    pub(crate) fn finish(&mut self, upload: LinalgUpload) -> Result<LinalgWeights, LinalgError> {
        self.release(upload.length);
        if upload.written != upload.length {
            return Err(invalid(format!("{} bytes written of an upload of {}", upload.written, upload.length)));
        }
        let hash: [u8; 32] = upload.hasher.finalize().into();
        if hash != upload.hash {
            return Err(invalid(format!(
                "the upload's SHA-256 is {}, not the {} it was started with",
                hex::encode(hash),
                hex::encode(upload.hash)
            )));
        }
        let data = self.service()?.keep(self.component, hash, upload.values, upload.reservation)?;
        if !self.hold_handle() {
            return Err(LinalgError::QuotaExceeded(format!("a call holds at most {MAX_HANDLES} handles")));
        }
        Ok(LinalgWeights { data })
    }

    /// Forgets a dropped upload.
    pub(crate) fn drop_upload(&mut self, upload: LinalgUpload) {
        self.release(upload.length);
    }
}

/// A SHA-256 as 64 hex digits.
fn parse_hash(text: &str) -> Result<[u8; 32], LinalgError> {
    Digest::from_hex(text).map(|digest| *digest.as_bytes()).ok_or_else(|| {
        invalid(format!("`{}` is not a SHA-256 (64 hex digits)", text.chars().take(80).collect::<String>()))
    })
}
