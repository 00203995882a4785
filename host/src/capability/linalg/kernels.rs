//! The numeric kernels behind the `linalg` interface, on plain slices: a
//! bounds-checked front to the `gemm` crate's product, and the row-wise
//! epilogues (GELU, residual add, layer norm, softmax) and per-sequence
//! attention built on it. Callers check shapes against the guest's
//! arguments first; the asserts here only keep the one `unsafe` call sound.

use gemm::Parallelism;

/// One operand of [`product`]: values, and the strides (in values) from
/// one row and from one column to the next.
#[derive(Clone, Copy)]
pub(crate) struct Operand<'a> {
    pub(crate) values: &'a [f32],
    pub(crate) row_stride: usize,
    pub(crate) col_stride: usize,
}

impl<'a> Operand<'a> {
    /// A row-major matrix of `cols` columns.
    pub(crate) fn rows(values: &'a [f32], cols: usize) -> Self {
        Operand { values, row_stride: cols, col_stride: 1 }
    }

    /// The transpose of a row-major matrix of `cols` columns.
    pub(crate) fn transposed(values: &'a [f32], cols: usize) -> Self {
        Operand { values, row_stride: 1, col_stride: cols }
    }

    /// Whether an `rows` × `cols` view fits in its values.
    fn fits(&self, rows: usize, cols: usize) -> bool {
        if rows == 0 || cols == 0 {
            return true;
        }
        let last = (rows - 1)
            .checked_mul(self.row_stride)
            .and_then(|r| (cols - 1).checked_mul(self.col_stride).and_then(|c| r.checked_add(c)));
        last.is_some_and(|last| last < self.values.len())
    }
}

/// `dst = lhs · rhs` (`m` × `k` times `k` × `n`), or `dst += lhs · rhs`
/// when `accumulate`; `dst` is row-major with rows `dst_stride` apart.
/// `threads` above 1 spreads the work over the current rayon pool.
///
/// # Panics
/// When a view does not fit its slice (the caller's shape checks failed).
#[allow(clippy::too_many_arguments)]
pub(crate) fn product(
    dst: &mut [f32],
    dst_stride: usize,
    (m, n, k): (usize, usize, usize),
    lhs: Operand<'_>,
    rhs: Operand<'_>,
    accumulate: bool,
    threads: usize,
) {
    let out = Operand { values: dst, row_stride: dst_stride, col_stride: 1 };
    assert!(out.fits(m, n) && lhs.fits(m, k) && rhs.fits(k, n), "a product's view is past its values");
    assert!(m <= 1 || dst_stride >= n, "the product's rows overlap");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.chunks_mut(dst_stride.max(1)).take(m).for_each(|row| row[..n].fill(0.0));
        }
        return;
    }
    let parallelism = if threads > 1 { Parallelism::Rayon(threads) } else { Parallelism::None };
    let signed = |stride: usize| isize::try_from(stride).expect("strides fit isize (they index a slice)");
    // SAFETY: each operand's view — every (row, column) within its shape at
    // its strides — lies inside its slice (asserted above), `dst` is
    // borrowed mutably so it aliases neither input, and `gemm` reads and
    // writes only within those views. It computes
    // dst := alpha·dst + beta·lhs·rhs, reading dst only when `accumulate`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            signed(dst_stride),
            accumulate,
            lhs.values.as_ptr(),
            signed(lhs.col_stride),
            signed(lhs.row_stride),
            rhs.values.as_ptr(),
            signed(rhs.col_stride),
            signed(rhs.row_stride),
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// GELU with the exact error function: `x/2 · (1 + erf(x/√2))`.
#[inline]
pub(crate) fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GELU of every value of `values`, in a loop the compiler vectorises
/// (with AVX2 and FMA where the CPU has them).
pub(crate) fn gelu_all(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { gelu_all_avx2(values) };
    }
    values.iter_mut().for_each(|v| *v = gelu(*v));
}

/// [`gelu_all`] compiled for AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gelu_all_avx2(values: &mut [f32]) {
    values.iter_mut().for_each(|v| *v = gelu(*v));
}

/// `eˣ` without a library call, so loops of it vectorise: `2ⁿ · eʳ` with
/// `r = x − n·ln 2` in [−ln2/2, ln2/2] and `eʳ` by its Taylor series to
/// the 7th power (relative error below 4e-7); arguments are clamped to
/// [−87.3, 88], so it never gives 0 or infinity.
#[inline]
pub(crate) fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.0);
    // Rounded to the nearest integer by adding and taking away 1.5·2²³
    // (plain arithmetic, so it vectorises without SSE4.1's `round`).
    // The low bits of `shifted` hold n itself, so 2ⁿ is made from them
    // with integer arithmetic, no float-to-integer conversion.
    const ROUND: f32 = 12_582_912.0;
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    // ln 2 split in two for an exact product with n.
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r / 5040.0))))));
    let two_to_n = shifted.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23;
    p * f32::from_bits(two_to_n)
}

/// The error function, from the Chebyshev fit of erfc in Numerical Recipes
/// (relative error of erfc below 1.2e-7 everywhere).
#[inline]
fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204 + t * (1.488_515_9 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * exp(poly);
    if x >= 0.0 { 1.0 - erfc } else { erfc - 1.0 }
}

/// `row = LayerNorm(row + add)` with scale `gamma` and shift `beta`.
pub(crate) fn layer_norm_row(row: &mut [f32], add: Option<&[f32]>, gamma: &[f32], beta: &[f32], epsilon: f32) {
    if let Some(add) = add {
        row.iter_mut().zip(add).for_each(|(x, a)| *x += a);
    }
    let width = row.len().max(1) as f32;
    let mean = row.iter().sum::<f32>() / width;
    let variance = row.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / width;
    let scale = 1.0 / (variance + epsilon).sqrt();
    for ((x, g), b) in row.iter_mut().zip(gamma).zip(beta) {
        *x = (*x - mean) * scale * g + b;
    }
}

/// One head of self-attention over one sequence: `q`, `k` and `v` are the
/// sequence's `rows` rows of `cols` values (the head's `d` columns from
/// column `at`); `out` (`rows` × `d`) gets `softmax(q·kᵀ/√d)·v`. `scores`
/// holds at least `rows²` values.
pub(crate) fn attention_head(
    (q, k, v): (&[f32], &[f32], &[f32]),
    (rows, cols): (usize, usize),
    (at, d): (usize, usize),
    out: &mut [f32],
    scores: &mut [f32],
) {
    let scale = 1.0 / (d as f32).sqrt();
    let scores = &mut scores[..rows * rows];
    // scores = q_h · k_hᵀ (rows × rows)
    product(
        scores,
        rows,
        (rows, rows, d),
        Operand { values: &q[at..], row_stride: cols, col_stride: 1 },
        Operand { values: &k[at..], row_stride: 1, col_stride: cols },
        false,
        1,
    );
    for row in scores.chunks_exact_mut(rows) {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, s| m.max(s * scale));
        let mut sum = 0.0;
        for s in row.iter_mut() {
            *s = exp(*s * scale - max);
            sum += *s;
        }
        let inverse = 1.0 / sum;
        row.iter_mut().for_each(|s| *s *= inverse);
    }
    // out = scores · v_h (rows × d)
    product(
        out,
        d,
        (rows, d, rows),
        Operand::rows(scores, rows),
        Operand { values: &v[at..], row_stride: cols, col_stride: 1 },
        false,
        1,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    fn values(count: usize, seed: u32) -> Vec<f32> {
        (0..count)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn products_match_the_naive_one_plain_transposed_and_accumulated() {
        let (m, n, k) = (37, 29, 53);
        let (a, b) = (values(m * k, 1), values(k * n, 2));
        let expected = naive(&a, &b, m, n, k);
        let mut c = vec![0.0; m * n];
        product(&mut c, n, (m, n, k), Operand::rows(&a, k), Operand::rows(&b, n), false, 1);
        assert!(c.iter().zip(&expected).all(|(x, y)| (x - y).abs() < 1e-4));
        // bᵀ stored row-major (n × k), read transposed.
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let mut c2 = vec![1.0; m * n];
        product(&mut c2, n, (m, n, k), Operand::rows(&a, k), Operand::transposed(&bt, k), true, 2);
        assert!(c2.iter().zip(&expected).all(|(x, y)| (x - (y + 1.0)).abs() < 1e-4), "accumulated onto ones");
    }

    #[test]
    #[should_panic(expected = "past its values")]
    fn a_view_past_its_values_is_refused_before_the_product() {
        let (a, b) = (vec![0.0; 6], vec![0.0; 6]);
        let mut c = vec![0.0; 4];
        product(&mut c, 2, (2, 2, 4), Operand::rows(&a, 4), Operand::rows(&b, 2), false, 1);
    }

    #[test]
    fn attention_of_one_row_returns_its_value_and_rows_weigh_by_similarity() {
        let (q, k, v) = (values(4, 3), values(4, 4), values(4, 5));
        for head in 0..2 {
            let mut out = vec![0.0; 2];
            attention_head((&q, &k, &v), (1, 4), (head * 2, 2), &mut out, &mut [0.0; 1]);
            assert_eq!(out, v[head * 2..head * 2 + 2], "a lone row attends only to itself");
        }
        // Two rows, one head: the weights are a softmax, so each output
        // lies between the two values.
        let (q, k, v) = (vec![1.0, 0.0, 0.0, 1.0], vec![1.0, 0.0, 0.0, 1.0], vec![10.0, 0.0, 0.0, 10.0]);
        let mut out = vec![0.0; 4];
        attention_head((&q, &k, &v), (2, 2), (0, 2), &mut out, &mut [0.0; 4]);
        let w = 1.0 / (1.0 + (-1.0f32 / 2f32.sqrt()).exp());
        assert!((out[0] - 10.0 * w).abs() < 1e-4 && (out[1] - 10.0 * (1.0 - w)).abs() < 1e-4, "{out:?}");
    }

    #[test]
    fn exp_without_the_library_is_close_everywhere() {
        for i in -8730..=8800 {
            let x = i as f32 / 100.0;
            let (got, expected) = (exp(x), x.exp());
            assert!((got - expected).abs() <= expected * 4e-7, "exp({x}) = {got}, not {expected}");
        }
        assert!(exp(-1000.0) > 0.0 && exp(-1000.0) == exp(-87.3));
        assert!(exp(1000.0).is_finite() && exp(1000.0) == exp(88.0));
    }

    #[test]
    fn layer_norm_and_gelu_agree_with_their_definitions() {
        let mut row = vec![1.0, 2.0, 3.0, 4.0];
        layer_norm_row(&mut row, Some(&[1.0; 4]), &[2.0; 4], &[0.5; 4], 0.0);
        let sd = 1.25f32.sqrt();
        let expected: Vec<f32> = [-1.5f32, -0.5, 0.5, 1.5].iter().map(|c| c / sd * 2.0 + 0.5).collect();
        assert!(row.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-5), "{row:?}");
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-5 && gelu(0.0) == 0.0 && (gelu(-3.0) + 0.004_049_6).abs() < 1e-5);
    }
}
