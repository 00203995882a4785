//! The forward pass on the node's CPU cores through toolmesh's host linear
//! algebra: the host runs every product, the attention and the layer norms
//! natively; the tool looks up the embeddings and pools the result.
//!
//! All sentences of a call go as one packed batch, their tokens one after
//! another (no padding): the dense layers see every token at once, and
//! attention stays within each sentence by their lengths. The weights are
//! the embedded `model.safetensors` itself, uploaded once per node (the
//! host keeps them for this component by their SHA-256) and addressed by
//! each tensor's offset in it.

use crate::cpu;
use crate::weights::{HEADS, HIDDEN, LAYER_NORM_EPS, Linear, Model, Norm};
use toolmesh_guest::linalg::{Activation, Dense, Linalg, LinalgError, Matrix, Weights};

/// The embeddings of each sentence of `ids` (at least one, each at most
/// 512 tokens), pooled and L2-normalised.
pub fn embed(linalg: &Linalg, model: &Model, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, LinalgError> {
    let whole = model.bytes.len() / 4 * 4;
    let weights = linalg.weights(crate::files::SAFETENSORS_SHA256, &model.bytes[..whole])?;
    let lengths: Vec<u32> = ids.iter().map(|ids| ids.len() as u32).collect();
    let tokens: usize = ids.iter().map(Vec::len).sum();
    let mut input = Vec::with_capacity(tokens * HIDDEN);
    for ids in ids {
        cpu::embed_tokens(model, ids, &mut input);
    }
    let rows = tokens as u32;
    let mut x = linalg.matrix(rows, HIDDEN as u32, &input)?;
    for layer in &model.layers {
        let dense = |layer: Linear| dense(&weights, layer);
        let q = linalg.linear(&x, &dense(layer.query), Activation::None, None)?;
        let k = linalg.linear(&x, &dense(layer.key), Activation::None, None)?;
        let v = linalg.linear(&x, &dense(layer.value), Activation::None, None)?;
        let context = linalg.attention(&q, &k, &v, HEADS as u32, &lengths)?;
        let attended = linalg.linear(&context, &dense(layer.attention_output), Activation::None, Some(&x))?;
        x = norm(linalg, &attended, &weights, layer.attention_norm)?;
        let inner = linalg.linear(&x, &dense(layer.intermediate), Activation::Gelu, None)?;
        let out = linalg.linear(&inner, &dense(layer.output), Activation::None, Some(&x))?;
        x = norm(linalg, &out, &weights, layer.output_norm)?;
    }
    let hidden = x.to_vec()?;
    let mut vectors = Vec::with_capacity(ids.len());
    let mut start = 0;
    for ids in ids {
        let end = start + ids.len() * HIDDEN;
        vectors.push(cpu::mean_pool_normalized(&hidden[start..end]));
        start = end;
    }
    Ok(vectors)
}

/// The layer `layer` as a view into the uploaded file.
fn dense<'a>(weights: &'a Weights, layer: Linear) -> Dense<'a> {
    Dense {
        weights,
        offset: (layer.weight.offset / 4) as u64,
        outputs: layer.outputs as u32,
        inputs: layer.inputs as u32,
        bias: Some((layer.bias.offset / 4) as u64),
    }
}

/// `LayerNorm(x)` with `norm`'s scale and shift in the uploaded file.
fn norm(linalg: &Linalg, x: &Matrix, weights: &Weights, norm: Norm) -> Result<Matrix, LinalgError> {
    let at = ((norm.gamma.offset / 4) as u64, (norm.beta.offset / 4) as u64);
    linalg.layer_norm(x, None, weights, at, LAYER_NORM_EPS)
}
