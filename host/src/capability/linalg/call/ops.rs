//! The operations of host linear algebra on one call's state: each checks
//! shapes, ranges and its work before any, then runs on the service.

use super::{LinalgCall, LinalgMatrix, LinalgWeights, MAX_SEQUENCE, invalid, times};
use crate::capability::linalg::LinalgError;
use crate::capability::linalg::kernels::{self, Operand};
use crate::capability::linalg::service::{BLOCK_FLOPS, Runner, row_blocks};
use std::sync::Arc;
use std::time::Instant;

impl LinalgCall {
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
        if 4 * longest * longest * d as u64 > BLOCK_FLOPS {
            return Err(invalid(format!(
                "one head of a sequence of {longest} rows with {d} columns is more work than one step allows \
                 (4 · rows² · columns at most {}): use more heads or shorter sequences",
                BLOCK_FLOPS
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
                while let Some(step) = steps.next_if(|_| work < BLOCK_FLOPS) {
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
