//! The forward pass on the CPU, in plain Rust (inside wasm in the tool):
//! one sentence at a time, so there is no padding and no mask.

use crate::weights::{HEAD_DIM, HEADS, HIDDEN, INTERMEDIATE, LAYER_NORM_EPS, Linear, Model, Norm};

/// The sentence embedding of `ids` (`[CLS] … [SEP]`; at most 512, the
/// positions the model has, or it panics): the mean of the last hidden
/// states, L2-normalised.
pub fn embed(model: &Model, ids: &[u32]) -> Vec<f32> {
    let tokens = ids.len();
    let mut x = Vec::with_capacity(tokens * HIDDEN);
    embed_tokens(model, ids, &mut x);

    let mut q = vec![0.0; tokens * HIDDEN];
    let mut k = vec![0.0; tokens * HIDDEN];
    let mut v = vec![0.0; tokens * HIDDEN];
    let mut context = vec![0.0; tokens * HIDDEN];
    let mut projected = vec![0.0; tokens * HIDDEN];
    let mut inner = vec![0.0; tokens * INTERMEDIATE];
    let mut scores = vec![0.0; tokens];
    for layer in &model.layers {
        linear(&x, layer.query, &mut q);
        linear(&x, layer.key, &mut k);
        linear(&x, layer.value, &mut v);
        attention(&q, &k, &v, &mut scores, &mut context);
        linear(&context, layer.attention_output, &mut projected);
        layer_norm(&mut x, Some(&projected), layer.attention_norm);
        linear(&x, layer.intermediate, &mut inner);
        inner.iter_mut().for_each(|value| *value = gelu(*value));
        linear(&inner, layer.output, &mut projected);
        layer_norm(&mut x, Some(&projected), layer.output_norm);
    }
    mean_pool_normalized(&x)
}

/// Appends the input of the first layer for `ids` to `x`: the summed
/// embeddings, layer-normed.
pub fn embed_tokens(model: &Model, ids: &[u32], x: &mut Vec<f32>) {
    let start = x.len();
    model.embeddings_into(ids, x);
    layer_norm(&mut x[start..], None, model.embedding_norm);
}

/// The mean of `rows` (each `HIDDEN` wide), scaled to unit length.
pub fn mean_pool_normalized(rows: &[f32]) -> Vec<f32> {
    let count = (rows.len() / HIDDEN).max(1);
    let mut mean = vec![0.0f32; HIDDEN];
    for row in rows.chunks_exact(HIDDEN) {
        mean.iter_mut().zip(row).for_each(|(m, r)| *m += r);
    }
    mean.iter_mut().for_each(|m| *m /= count as f32);
    let norm = mean.iter().map(|m| m * m).sum::<f32>().sqrt().max(1e-12);
    mean.iter_mut().for_each(|m| *m /= norm);
    mean
}

/// `x = LayerNorm(x + residual)` row by row.
fn layer_norm(x: &mut [f32], residual: Option<&[f32]>, norm: Norm) {
    for (i, row) in x.chunks_exact_mut(HIDDEN).enumerate() {
        if let Some(residual) = residual {
            row.iter_mut().zip(&residual[i * HIDDEN..(i + 1) * HIDDEN]).for_each(|(x, r)| *x += r);
        }
        let mean = row.iter().sum::<f32>() / HIDDEN as f32;
        let variance = row.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / HIDDEN as f32;
        let scale = 1.0 / (variance + LAYER_NORM_EPS).sqrt();
        for ((x, g), b) in row.iter_mut().zip(norm.gamma.data).zip(norm.beta.data) {
            *x = (*x - mean) * scale * g + b;
        }
    }
}

/// Multi-head self-attention over all tokens: `context` gets, per head,
/// the softmax(q·kᵀ/√d)-weighted sum of the values.
#[cfg_attr(target_arch = "wasm32", target_feature(enable = "simd128"))]
fn attention(q: &[f32], k: &[f32], v: &[f32], scores: &mut [f32], context: &mut [f32]) {
    let scale = 1.0 / (HEAD_DIM as f32).sqrt();
    context.fill(0.0);
    for head in 0..HEADS {
        let span = head * HEAD_DIM..(head + 1) * HEAD_DIM;
        for (i, out) in context.chunks_exact_mut(HIDDEN).enumerate() {
            let query = &q[i * HIDDEN..][span.clone()];
            let mut max = f32::NEG_INFINITY;
            for (score, key) in scores.iter_mut().zip(k.chunks_exact(HIDDEN)) {
                *score = dot(query, &key[span.clone()]) * scale;
                max = max.max(*score);
            }
            let mut sum = 0.0;
            for score in scores.iter_mut() {
                *score = (*score - max).exp();
                sum += *score;
            }
            let out = &mut out[span.clone()];
            for (score, value) in scores.iter().zip(v.chunks_exact(HIDDEN)) {
                let weight = score / sum;
                out.iter_mut().zip(&value[span.clone()]).for_each(|(o, v)| *o += weight * v);
            }
        }
    }
}

/// Rows of `W` (outputs) per tile of [`linear`]: a tile of up to 32 × 1536
/// floats stays in cache while every row of `x` passes it.
const OUTPUT_TILE: usize = 32;

/// `out = x Wᵀ + b` for every row of `x`. `W` goes in tiles of
/// [`OUTPUT_TILE`] rows, and `x` in blocks of four rows against each, two
/// rows of `W` at a time, so each value loaded serves several products (in
/// wasm SIMD inside the component; natively, where only the tests run, in
/// lanes the compiler vectorises).
#[cfg_attr(target_arch = "wasm32", target_feature(enable = "simd128"))]
pub fn linear(x: &[f32], layer: Linear, out: &mut [f32]) {
    let (inputs, outputs) = (layer.inputs, layer.outputs);
    let (weight, bias) = (layer.weight.data, layer.bias.data);
    let rows = x.len() / inputs;
    debug_assert_eq!(out.len(), rows * outputs);
    for tile in (0..outputs).step_by(OUTPUT_TILE) {
        let tile = tile..(tile + OUTPUT_TILE).min(outputs);
        let mut row = 0;
        while row + 4 <= rows {
            let xs = [0, 1, 2, 3].map(|i| &x[(row + i) * inputs..(row + i + 1) * inputs]);
            let mut o = tile.start;
            while o < tile.end {
                let pair = o + 1 < tile.end;
                let sums = if pair {
                    dot4x2(xs, [&weight[o * inputs..(o + 1) * inputs], &weight[(o + 1) * inputs..(o + 2) * inputs]])
                } else {
                    [dot4(xs, &weight[o * inputs..(o + 1) * inputs]), [0.0; 4]]
                };
                for (j, sums) in sums.iter().enumerate().take(if pair { 2 } else { 1 }) {
                    for (i, sum) in sums.iter().enumerate() {
                        out[(row + i) * outputs + o + j] = sum + bias[o + j];
                    }
                }
                o += 2;
            }
            row += 4;
        }
        for row in row..rows {
            let xr = &x[row * inputs..(row + 1) * inputs];
            for o in tile.clone() {
                out[row * outputs + o] = dot(xr, &weight[o * inputs..(o + 1) * inputs]) + bias[o];
            }
        }
    }
}

/// Lanes of partial sums in the dot products.
const LANES: usize = 8;

/// Eight dot products, of four rows with two `w`s, in wasm SIMD: each
/// value loaded serves two or four products.
#[cfg(target_arch = "wasm32")]
#[inline]
#[target_feature(enable = "simd128")]
fn dot4x2(x: [&[f32]; 4], w: [&[f32]; 2]) -> [[f32; 4]; 2] {
    use core::arch::wasm32::{f32x4_add, f32x4_extract_lane, f32x4_mul, f32x4_splat, v128, v128_load};
    let n = w[0].len();
    let whole = n / 4 * 4;
    assert!(w[1].len() == n && x.iter().all(|x| x.len() >= n));
    let mut acc = [[f32x4_splat(0.0); 4]; 2];
    for k in (0..whole).step_by(4) {
        // SAFETY: k + 4 <= whole <= the length of both `w`s and of every
        // row of `x` (asserted above); v128_load has no alignment requirement.
        let wv =
            unsafe { [v128_load(w[0].as_ptr().add(k).cast::<v128>()), v128_load(w[1].as_ptr().add(k).cast::<v128>())] };
        for i in 0..4 {
            // SAFETY: as above.
            let xv = unsafe { v128_load(x[i].as_ptr().add(k).cast::<v128>()) };
            acc[0][i] = f32x4_add(acc[0][i], f32x4_mul(xv, wv[0]));
            acc[1][i] = f32x4_add(acc[1][i], f32x4_mul(xv, wv[1]));
        }
    }
    let mut sums = [[0.0f32; 4]; 2];
    for j in 0..2 {
        for i in 0..4 {
            let a = acc[j][i];
            let lanes = (f32x4_extract_lane::<0>(a) + f32x4_extract_lane::<1>(a))
                + (f32x4_extract_lane::<2>(a) + f32x4_extract_lane::<3>(a));
            sums[j][i] = lanes + dot(&x[i][whole..n], &w[j][whole..]);
        }
    }
    sums
}

/// Eight dot products, of four rows with two `w`s.
#[cfg(not(target_arch = "wasm32"))]
#[inline(always)]
fn dot4x2(x: [&[f32]; 4], w: [&[f32]; 2]) -> [[f32; 4]; 2] {
    [dot4(x, w[0]), dot4(x, w[1])]
}

/// Four dot products with the same `w`, in wasm SIMD: one `f32x4`
/// accumulator per row.
#[cfg(target_arch = "wasm32")]
#[inline]
#[target_feature(enable = "simd128")]
fn dot4(x: [&[f32]; 4], w: &[f32]) -> [f32; 4] {
    use core::arch::wasm32::{f32x4_add, f32x4_extract_lane, f32x4_mul, f32x4_splat, v128, v128_load};
    let whole = w.len() / 4 * 4;
    assert!(x.iter().all(|x| x.len() >= w.len()));
    let mut acc = [f32x4_splat(0.0); 4];
    for k in (0..whole).step_by(4) {
        // SAFETY: k + 4 <= whole <= the length of `w` and of every row of
        // `x` (asserted above); v128_load has no alignment requirement.
        let wv = unsafe { v128_load(w.as_ptr().add(k).cast::<v128>()) };
        for (acc, x) in acc.iter_mut().zip(&x) {
            // SAFETY: as above.
            let xv = unsafe { v128_load(x.as_ptr().add(k).cast::<v128>()) };
            *acc = f32x4_add(*acc, f32x4_mul(xv, wv));
        }
    }
    let mut sums = [0.0f32; 4];
    for ((sum, acc), x) in sums.iter_mut().zip(acc).zip(&x) {
        let lanes = (f32x4_extract_lane::<0>(acc) + f32x4_extract_lane::<1>(acc))
            + (f32x4_extract_lane::<2>(acc) + f32x4_extract_lane::<3>(acc));
        *sum = lanes + dot(&x[whole..w.len()], &w[whole..]);
    }
    sums
}

/// Four dot products with the same `w`.
#[cfg(not(target_arch = "wasm32"))]
#[inline(always)]
fn dot4(x: [&[f32]; 4], w: &[f32]) -> [f32; 4] {
    let mut acc = [[0.0f32; LANES]; 4];
    let whole = w.len() / LANES * LANES;
    for (c, wc) in w[..whole].chunks_exact(LANES).enumerate() {
        for (acc, x) in acc.iter_mut().zip(&x) {
            let xc = &x[c * LANES..(c + 1) * LANES];
            for lane in 0..LANES {
                acc[lane] += xc[lane] * wc[lane];
            }
        }
    }
    let mut sums = acc.map(|a| a.iter().sum::<f32>());
    for (sum, x) in sums.iter_mut().zip(&x) {
        *sum += dot(&x[whole..], &w[whole..]);
    }
    sums
}

/// A dot product with several partial sums.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let whole = a.len().min(b.len()) / LANES * LANES;
    for (ac, bc) in a[..whole].chunks_exact(LANES).zip(b[..whole].chunks_exact(LANES)) {
        for lane in 0..LANES {
            acc[lane] += ac[lane] * bc[lane];
        }
    }
    let tail: f32 = a[whole..].iter().zip(&b[whole..]).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// GELU with the exact error function: `x/2 · (1 + erf(x/√2))`.
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// The error function, from the Chebyshev fit of erfc in Numerical Recipes
/// (relative error of erfc below 1.2e-7 everywhere). `gelu.wgsl` uses the
/// same fit.
pub fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204 + t * (1.488_515_9 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 { 1.0 - erfc } else { erfc - 1.0 }
}
