//! One call's use of host linear algebra: its budgets (bytes held, work
//! done), the matrices, weights and uploads it holds, and the operations,
//! each checked in full before any work.

use super::LinalgError;
use super::kernels::{self, Operand};
use super::service::{LinalgService, Runner, WeightsData, row_blocks};
use crate::sandbox::{CallMeter, Reservation};
use sha2::{Digest as _, Sha256};
use std::sync::Arc;
use std::time::Instant;
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

    /// Runs `job` producing `rows` × `cols` values under `deadline`, for a
    /// new matrix.
    async fn produce<F>(
        &mut self,
        op: &'static str,
        deadline: Instant,
        flops: u64,
        (rows, cols): (usize, usize),
        job: F,
    ) -> Result<LinalgMatrix, LinalgError>
    where
        F: FnOnce(&Runner, &mut [f32]) -> Result<(), LinalgError> + Send + 'static,
    {
        self.charge(flops)?;
        let count = times(rows as u64, cols as u64, "the result")?;
        let bytes = times(count, 4, "the result")?;
        // The reservation goes with the buffer into the job, so memory a
        // job still holds after its call ended stays counted.
        let reservation = self.hold(bytes)?;
        let service = self.service()?.clone();
        let mut values = service.zeros(count as usize);
        let started = Instant::now();
        let done = service
            .run(deadline, self.meter.clone(), flops, move |runner| {
                job(runner, &mut values)?;
                Ok((values, reservation))
            })
            .await;
        tracing::debug!(
            op,
            rows,
            cols,
            flops,
            ms = started.elapsed().as_secs_f64() * 1000.0,
            ok = done.is_ok(),
            "linear algebra"
        );
        match done {
            Ok((values, reservation)) => {
                Ok(LinalgMatrix { rows, cols, values: Arc::new(values), service, _reservation: reservation })
            }
            Err(e) => {
                self.release(bytes);
                Err(e)
            }
        }
    }

    /// `activation(x · Wᵀ + b) + add`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn linear(
        &mut self,
        deadline: Instant,
        x: &LinalgMatrix,
        weights: &LinalgWeights,
        (offset, outputs, inputs, bias): (u64, u32, u32, Option<u64>),
        gelu: bool,
        add: Option<&LinalgMatrix>,
    ) -> Result<LinalgMatrix, LinalgError> {
        let (outputs, inputs) = (outputs as usize, inputs as usize);
        if x.cols != inputs || outputs == 0 {
            return Err(invalid(format!(
                "x has {} columns; the layer takes {inputs} and gives {outputs} (at least 1)",
                x.cols
            )));
        }
        let held = weights.data.values.len() as u64;
        let w = range(offset, times(outputs as u64, inputs as u64, "the layer")?, held, "W")?;
        let b = bias.map(|at| range(at, outputs as u64, held, "the bias")).transpose()?;
        if let Some(add) = add
            && (add.rows, add.cols) != (x.rows, outputs)
        {
            return Err(invalid(format!("add is {} × {}; the result is {} × {outputs}", add.rows, add.cols, x.rows)));
        }
        let per_row = times(2 * outputs as u64, inputs as u64, "the product")?;
        let flops = times(per_row, x.rows as u64, "the product")?;
        let (xv, wv, addv) = (x.values.clone(), weights.data.clone(), add.map(|a| a.values.clone()));
        self.produce("linear", deadline, flops, (x.rows, outputs), move |runner, out| {
            let (w, threads) = (&wv.values[w], runner.threads());
            for block in row_blocks(xv.len() / inputs, per_row) {
                let dst = &mut out[block.start * outputs..block.end * outputs];
                runner.block(|| {
                    // Rows in pieces, for the epilogues to spread over the threads.
                    let piece = block.len().div_ceil(threads * 4).max(1) * outputs;
                    if let Some(b) = &b {
                        let bias = &wv.values[b.clone()];
                        runner.each(dst.chunks_mut(piece).collect(), |rows| {
                            rows.chunks_exact_mut(outputs).for_each(|row| row.copy_from_slice(bias));
                        });
                    }
                    let lhs = Operand::rows(&xv[block.start * inputs..block.end * inputs], inputs);
                    let shape = (block.len(), outputs, inputs);
                    kernels::product(dst, outputs, shape, lhs, Operand::transposed(w, inputs), b.is_some(), threads);
                    let add = addv.as_ref().map(|add| &add[block.start * outputs..block.end * outputs]);
                    if gelu || add.is_some() {
                        runner.each(dst.chunks_mut(piece).enumerate().collect(), |(i, rows)| {
                            if gelu {
                                kernels::gelu_all(rows);
                            }
                            if let Some(add) = add {
                                let add = &add[i * piece..i * piece + rows.len()];
                                rows.iter_mut().zip(add).for_each(|(v, a)| *v += a);
                            }
                        });
                    }
                })?;
            }
            Ok(())
        })
        .await
    }

    /// `a · b` or `a · bᵀ`.
    pub(crate) async fn matmul(
        &mut self,
        deadline: Instant,
        a: &LinalgMatrix,
        b: &LinalgMatrix,
        transpose_b: bool,
    ) -> Result<LinalgMatrix, LinalgError> {
        let (k, n) = if transpose_b { (b.cols, b.rows) } else { (b.rows, b.cols) };
        if a.cols != k {
            return Err(invalid(format!(
                "a is {} × {} and b{} is {k} × {n}: the inner sizes differ",
                a.rows,
                a.cols,
                if transpose_b { "ᵀ" } else { "" }
            )));
        }
        let per_row = times(2 * n as u64, k as u64, "the product")?;
        let flops = times(per_row, a.rows as u64, "the product")?;
        let (av, bv) = (a.values.clone(), b.values.clone());
        self.produce("matmul", deadline, flops, (a.rows, n), move |runner, out| {
            let rhs = if transpose_b { Operand::transposed(&bv, k) } else { Operand::rows(&bv, n) };
            let threads = runner.threads();
            for block in row_blocks(av.len() / k, per_row) {
                let dst = &mut out[block.start * n..block.end * n];
                let lhs = Operand::rows(&av[block.start * k..block.end * k], k);
                runner.block(|| kernels::product(dst, n, (block.len(), n, k), lhs, rhs, false, threads))?;
            }
            Ok(())
        })
        .await
    }

    /// Self-attention over sequences of `lengths` rows.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn attention(
        &mut self,
        deadline: Instant,
        q: &LinalgMatrix,
        k: &LinalgMatrix,
        v: &LinalgMatrix,
        heads: u32,
        lengths: Vec<u32>,
    ) -> Result<LinalgMatrix, LinalgError> {
        let (rows, cols, heads) = (q.rows, q.cols, heads as usize);
        if (k.rows, k.cols) != (rows, cols) || (v.rows, v.cols) != (rows, cols) {
            return Err(invalid("q, k and v must have one shape"));
        }
        if heads == 0 || !cols.is_multiple_of(heads) {
            return Err(invalid(format!("{cols} columns do not split into {heads} heads")));
        }
        let total: u64 = lengths.iter().map(|&l| u64::from(l)).sum();
        if total != rows as u64 || lengths.contains(&0) {
            return Err(invalid(format!("the lengths add up to {total} rows (each at least 1); q has {rows}")));
        }
        if let Some(long) = lengths.iter().find(|&&l| l as usize > MAX_SEQUENCE) {
            return Err(invalid(format!("a sequence of {long} rows; at most {MAX_SEQUENCE}")));
        }
        let d = cols / heads;
        let longest = lengths.iter().copied().max().unwrap_or(0) as u64;
        // One head of one sequence is the smallest step of the work.
        if 4 * longest * longest * d as u64 > super::service::BLOCK_FLOPS {
            return Err(invalid(format!(
                "one head of a sequence of {longest} rows with {d} columns is more work than one step allows \
                 (4 · rows² · columns at most {}): use more heads or shorter sequences",
                super::service::BLOCK_FLOPS
            )));
        }
        let mut flops = 0u64;
        for &l in &lengths {
            let l = u64::from(l);
            flops = flops.saturating_add((4 * l * l).saturating_mul(cols as u64) + 5 * l * l * heads as u64);
        }
        // Each thread's scores and one head's output, held while it runs.
        let service = self.service()?.clone();
        let threads = service.threads() as u64;
        let scratch =
            service.reserve(threads.saturating_mul(longest * longest + longest * d as u64).saturating_mul(4))?;
        let (qv, kv, vv) = (q.values.clone(), k.values.clone(), v.values.clone());
        self.produce("attention", deadline, flops, (rows, cols), move |runner, out| {
            let _scratch = scratch;
            // (first row, rows, head) of every step, in groups of about a
            // block's work, each group's steps spread over the threads.
            let mut steps = Vec::with_capacity(lengths.len() * heads);
            let mut start = 0;
            for &l in &lengths {
                steps.extend((0..heads).map(|h| (start, l as usize, h)));
                start += l as usize;
            }
            let mut steps = steps.into_iter().peekable();
            while steps.peek().is_some() {
                let (mut group, mut work) = (Vec::new(), 0u64);
                while let Some(step) = steps.next_if(|_| work < super::service::BLOCK_FLOPS) {
                    work += 4 * (step.1 * step.1 * d) as u64;
                    group.push(step);
                }
                let done: Vec<_> = runner.block(|| {
                    runner.map(group, |(s, n, h)| {
                        let span = s * cols..(s + n) * cols;
                        let mut scores = vec![0.0; n * n];
                        let mut head = vec![0.0; n * d];
                        let inputs = (&qv[span.clone()], &kv[span.clone()], &vv[span]);
                        kernels::attention_head(inputs, (n, cols), (h * d, d), &mut head, &mut scores);
                        (s, h, head)
                    })
                })?;
                for (s, h, head) in done {
                    for (i, row) in head.chunks_exact(d).enumerate() {
                        out[(s + i) * cols + h * d..][..d].copy_from_slice(row);
                    }
                }
            }
            Ok(())
        })
        .await
    }

    /// Layer norm of each row of `x` (+ `add`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn layer_norm(
        &mut self,
        deadline: Instant,
        x: &LinalgMatrix,
        add: Option<&LinalgMatrix>,
        weights: &LinalgWeights,
        (scale, shift): (u64, u64),
        epsilon: f32,
    ) -> Result<LinalgMatrix, LinalgError> {
        if let Some(add) = add
            && (add.rows, add.cols) != (x.rows, x.cols)
        {
            return Err(invalid(format!("add is {} × {}; x is {} × {}", add.rows, add.cols, x.rows, x.cols)));
        }
        if !(epsilon.is_finite() && epsilon >= 0.0) {
            return Err(invalid(format!("epsilon {epsilon} is not a finite number ≥ 0")));
        }
        let held = weights.data.values.len() as u64;
        let gamma = range(scale, x.cols as u64, held, "the scale")?;
        let beta = range(shift, x.cols as u64, held, "the shift")?;
        let flops = times(8 * x.cols as u64, x.rows as u64, "the norm")?;
        let (xv, av, wv, cols) = (x.values.clone(), add.map(|a| a.values.clone()), weights.data.clone(), x.cols);
        self.produce("layer-norm", deadline, flops, (x.rows, x.cols), move |runner, out| {
            out.copy_from_slice(&xv);
            let (gamma, beta) = (&wv.values[gamma], &wv.values[beta]);
            runner.block(|| {
                runner.each(out.chunks_mut(cols).enumerate().collect(), |(i, row)| {
                    let add = av.as_ref().map(|a| &a[i * cols..(i + 1) * cols]);
                    kernels::layer_norm_row(row, add, gamma, beta, epsilon);
                });
            })
        })
        .await
    }
}

/// `count` values from `at` of weights holding `held`, as a range.
fn range(at: u64, count: u64, held: u64, what: &str) -> Result<std::ops::Range<usize>, LinalgError> {
    match at.checked_add(count) {
        Some(end) if end <= held => Ok(at as usize..end as usize),
        _ => Err(invalid(format!("{what}: values {at}..{at}+{count} are past the weights' {held}"))),
    }
}

/// A SHA-256 as 64 hex digits.
fn parse_hash(text: &str) -> Result<[u8; 32], LinalgError> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(text, &mut hash).map_err(|_| {
        invalid(format!("`{}` is not a SHA-256 (64 hex digits)", text.chars().take(80).collect::<String>()))
    })?;
    Ok(hash)
}
