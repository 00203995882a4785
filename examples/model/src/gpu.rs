//! The forward pass on the GPU through toolmesh's GPU interface.
//!
//! All sentences of a call go as one packed batch: their tokens one after
//! another, with each token's sentence span beside them, so attention and
//! pooling see only their own sentence (what a padded batch does with a
//! mask, without computing the padding). A batch larger than the call's
//! GPU budgets allow goes in chunks of whole sentences.
//!
//! The weights are the model's safetensors file, kept by the node on the
//! GPU for the component (uploaded by the first call that finds them
//! missing), in single precision or, where the adapter reads `f16`, in
//! half (half the memory and the bandwidth; products and sums stay
//! `f32`); the kernels find each tensor by its offset in it. The embeddings (a lookup,
//! then a layer norm) are computed on the CPU, and only the pooled,
//! normalised vectors are read back.

use crate::cpu;
use crate::weights::{HIDDEN, INTERMEDIATE, Linear, Model, Norm};
use toolmesh_guest::gpu::{Buffer, Gpu, GpuError, Kernel};
use toolmesh_guest::prelude::*;

/// `out = act(x Wᵀ + b)`, 64×64 tiles.
pub const LINEAR_WGSL: &str = include_str!("kernels/linear.wgsl");
/// `x = LayerNorm(x + r)`, a workgroup per row (after a reduction, see
/// [`with_reduction`]).
pub const ADD_NORM_WGSL: &str = include_str!("kernels/add_norm.wgsl");
/// Self-attention within each sentence, an invocation per token and head.
pub const ATTENTION_WGSL: &str = include_str!("kernels/attention.wgsl");
/// Mean pooling and L2 normalisation, a workgroup per sentence (after a
/// reduction, see [`with_reduction`]).
pub const POOL_WGSL: &str = include_str!("kernels/pool.wgsl");
/// `total`, the sum over a workgroup: a tree in workgroup memory.
pub const REDUCE_WGSL: &str = include_str!("kernels/reduce.wgsl");
/// `total` by subgroup operations, for adapters that have them.
pub const REDUCE_SUBGROUPS_WGSL: &str = include_str!("kernels/reduce_subgroups.wgsl");

/// The entry point of the kernels that reduce, as written.
const REDUCING_MAIN: &str =
    "fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) i: u32) {";

/// Tokens per chunk at most, whatever the budgets allow.
const MAX_CHUNK_TOKENS: usize = 4096;
/// Bytes of activations per token: x, q, k, v, context and a scratch
/// row of `HIDDEN`, and the feed-forward row of `INTERMEDIATE`.
const BYTES_PER_TOKEN: u64 = ((6 * HIDDEN + INTERMEDIATE) * 4) as u64;
/// Rows and columns of one workgroup's tile in `linear.wgsl`.
const LINEAR_TILE: usize = 64;
/// Invocations per workgroup in `attention.wgsl`.
const ATTENTION_GROUP: usize = 64;

/// The compiled kernels.
struct Kernels {
    linear: Kernel,
    add_norm: Kernel,
    attention: Kernel,
    pool: Kernel,
}

/// The model's weights on the GPU: the whole safetensors file as one
/// read-only buffer the node keeps for the component, so it crosses to
/// the GPU once per node rather than once per call; the kernels find each
/// tensor by its offset in it. In half precision the file's 4-byte values
/// are each converted, so offsets stay the same in values.
struct Weights {
    buffer: Buffer,
}

impl Weights {
    /// The node's copy, or the file uploaded (converted to `f16` when
    /// `half`) and kept.
    fn find_or_upload(gpu: &Gpu, model: &Model, half: bool) -> Result<Self, GpuError> {
        let whole = &model.bytes[..model.bytes.len() / 4 * 4];
        let buffer = if half {
            match gpu.find_weights(crate::files::SAFETENSORS_F16_SHA256)? {
                Some(kept) => kept,
                None => gpu.upload_weights(crate::files::SAFETENSORS_F16_SHA256, &crate::half::to_f16_bytes(whole))?,
            }
        } else {
            gpu.weights(crate::files::SAFETENSORS_SHA256, whole)?
        };
        Ok(Weights { buffer })
    }

    /// The offset of `tensor` in the buffer, in values.
    fn at(&self, tensor: crate::weights::Tensor) -> u32 {
        (tensor.offset / 4) as u32
    }
}

/// `source` (a kernel calling `total`) after the reduction: by subgroups
/// when `subgroups`, which takes the subgroup built-ins at its entry
/// point, else by a tree in workgroup memory.
fn with_reduction(source: &str, subgroups: bool) -> String {
    assert!(source.contains(REDUCING_MAIN), "a reducing kernel's entry point is `{REDUCING_MAIN}`");
    if !subgroups {
        return format!("{REDUCE_WGSL}\n{source}");
    }
    let main = "fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) i: u32, \
                @builtin(subgroup_id) subgroup_id: u32, @builtin(num_subgroups) num_subgroups: u32, \
                @builtin(subgroup_invocation_id) lane: u32) {\n    subgroups = vec3(subgroup_id, num_subgroups, lane);";
    format!("{REDUCE_SUBGROUPS_WGSL}\n{}", source.replace(REDUCING_MAIN, main))
}

/// `source` reading its `weights` binding as `f16` (converted to `f32` as
/// read) instead of `f32`.
fn with_f16_weights(source: &str) -> String {
    let declared = "var<storage, read> weights: array<f32>;";
    let read = "return weights[i];";
    assert!(source.contains(declared) && source.contains(read), "a kernel reads its weights only through `weight`");
    let body =
        source.replace(declared, "var<storage, read> weights: array<f16>;").replace(read, "return f32(weights[i]);");
    format!("enable f16;\n{body}")
}

/// The activations of one chunk, sized for the largest.
struct Activations {
    x: Buffer,
    q: Buffer,
    k: Buffer,
    v: Buffer,
    context: Buffer,
    scratch: Buffer,
    inner: Buffer,
}

impl Activations {
    fn new(gpu: &Gpu, tokens: usize) -> Result<Self, GpuError> {
        let row = |width: usize| gpu.zeroed((tokens * width * 4) as u64);
        Ok(Activations {
            x: row(HIDDEN)?,
            q: row(HIDDEN)?,
            k: row(HIDDEN)?,
            v: row(HIDDEN)?,
            context: row(HIDDEN)?,
            scratch: row(HIDDEN)?,
            inner: row(INTERMEDIATE)?,
        })
    }
}

/// Optional features of the adapter the forward pass uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct Features {
    /// Read the weights as `f16` (the adapter must have `f16`).
    pub half: bool,
    /// Sum rows by subgroup operations (the adapter must have `subgroups`).
    pub subgroups: bool,
}

/// The embeddings of every sentence of `ids` (each `[CLS] … [SEP]`, at
/// most 512 tokens) on `gpu`, in order, using `features`.
pub fn embed(gpu: &Gpu, model: &Model, ids: &[Vec<u32>], features: Features) -> Result<Vec<Vec<f32>>, ToolError> {
    let Features { half, subgroups } = features;
    let weights = Weights::find_or_upload(gpu, model, half)?;
    let out_bytes = (ids.len().max(1) * HIDDEN * 4) as u64;
    let chunk = chunk_tokens(gpu, out_bytes)?;
    if let Some(long) = ids.iter().find(|s| s.len() > chunk) {
        return Err(ToolError::failed(format!(
            "the GPU budgets of this call fit {chunk} tokens at once, a text has {}",
            long.len()
        )));
    }
    let weighted = |source: &str| if half { with_f16_weights(source) } else { source.to_owned() };
    let kernels = Kernels {
        linear: gpu.kernel(&weighted(LINEAR_WGSL), "main")?,
        add_norm: gpu.kernel(&weighted(&with_reduction(ADD_NORM_WGSL, subgroups)), "main")?,
        attention: gpu.kernel(ATTENTION_WGSL, "main")?,
        pool: gpu.kernel(&with_reduction(POOL_WGSL, subgroups), "main")?,
    };
    let largest = chunks(ids, chunk).map(|c| c.iter().map(Vec::len).sum::<usize>()).max().unwrap_or(0);
    let act = Activations::new(gpu, largest.max(1))?;
    let out = gpu.zeroed(out_bytes)?;
    let mut first = 0;
    for sentences in chunks(ids, chunk) {
        run_chunk(gpu, model, &weights, &kernels, &act, sentences, first, &out)?;
        first += sentences.len();
    }
    let values = out.read_f32()?;
    Ok(values.chunks_exact(HIDDEN).take(ids.len()).map(<[f32]>::to_vec).collect())
}

/// Tokens one chunk may hold within the call's GPU budgets, given
/// `fixed` bytes that stay for the whole call.
fn chunk_tokens(gpu: &Gpu, fixed: u64) -> Result<usize, ToolError> {
    let limits = &gpu.info().limits;
    let by_buffer = limits.max_buffer_size / (INTERMEDIATE * 4) as u64;
    // Spans and parameter buffers are small; leave them a mebibyte.
    let by_total = limits.max_total_bytes.saturating_sub(fixed + (1 << 20)) / BYTES_PER_TOKEN;
    let tokens = (by_buffer.min(by_total) as usize).min(MAX_CHUNK_TOKENS);
    if tokens < crate::MAX_TOKENS {
        return Err(ToolError::failed(format!(
            "the GPU budgets of this call ({} bytes a buffer, {} in all) are too small for this model",
            limits.max_buffer_size, limits.max_total_bytes
        )));
    }
    Ok(tokens)
}

/// Consecutive runs of whole sentences of at most `tokens` tokens each
/// (a longer sentence alone).
fn chunks(ids: &[Vec<u32>], tokens: usize) -> impl Iterator<Item = &[Vec<u32>]> {
    let mut rest = ids;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut total = 0;
        let count = rest
            .iter()
            .take_while(|s| {
                total += s.len();
                total <= tokens
            })
            .count()
            .max(1);
        let (chunk, tail) = rest.split_at(count);
        rest = tail;
        Some(chunk)
    })
}

/// Runs the model on `sentences` and writes their vectors at rows
/// `first…` of `out`.
#[allow(clippy::too_many_arguments)]
fn run_chunk(
    gpu: &Gpu,
    model: &Model,
    weights: &Weights,
    kernels: &Kernels,
    act: &Activations,
    sentences: &[Vec<u32>],
    first: usize,
    out: &Buffer,
) -> Result<(), GpuError> {
    let rows: usize = sentences.iter().map(Vec::len).sum();
    let mut x = Vec::with_capacity(rows * HIDDEN);
    let mut token_spans = Vec::with_capacity(rows * 2);
    let mut sentence_spans = Vec::with_capacity(sentences.len() * 2);
    for ids in sentences {
        let start = (x.len() / HIDDEN) as u32;
        cpu::embed_tokens(model, ids, &mut x);
        let span = [start, ids.len() as u32];
        sentence_spans.extend(span);
        for _ in ids {
            token_spans.extend(span);
        }
    }
    act.x.write_f32(&x)?;
    let token_spans = gpu.upload_u32(&token_spans)?;
    let sentence_spans = gpu.upload_u32(&sentence_spans)?;
    let rows32 = rows as u32;

    let linear = |input: &Buffer, layer: Linear, output: &Buffer, gelu: bool| -> Result<(), GpuError> {
        let params = [
            rows32,
            layer.inputs as u32,
            layer.outputs as u32,
            weights.at(layer.weight),
            weights.at(layer.bias),
            u32::from(gelu),
        ];
        let params = gpu.upload_u32(&params)?;
        let groups = ((layer.outputs.div_ceil(LINEAR_TILE)) as u32, rows.div_ceil(LINEAR_TILE) as u32);
        kernels.linear.dispatch(&[input, &weights.buffer, output, &params], groups)
    };
    let add_norm = |residual: &Buffer, norm: Norm| -> Result<(), GpuError> {
        let params = gpu.upload_u32(&[rows32, weights.at(norm.gamma), weights.at(norm.beta), 0])?;
        kernels.add_norm.dispatch(&[&act.x, residual, &weights.buffer, &params], rows32)
    };
    let attention_params = gpu.upload_u32(&[rows32, 0, 0, 0])?;
    let attention_groups = (rows * crate::weights::HEADS).div_ceil(ATTENTION_GROUP) as u32;

    for layer in &model.layers {
        linear(&act.x, layer.query, &act.q, false)?;
        linear(&act.x, layer.key, &act.k, false)?;
        linear(&act.x, layer.value, &act.v, false)?;
        kernels
            .attention
            .dispatch(&[&act.q, &act.k, &act.v, &token_spans, &act.context, &attention_params], attention_groups)?;
        linear(&act.context, layer.attention_output, &act.scratch, false)?;
        add_norm(&act.scratch, layer.attention_norm)?;
        linear(&act.x, layer.intermediate, &act.inner, true)?;
        linear(&act.inner, layer.output, &act.scratch, false)?;
        add_norm(&act.scratch, layer.output_norm)?;
    }
    let params = gpu.upload_u32(&[sentences.len() as u32, first as u32, 0, 0])?;
    kernels.pool.dispatch(&[&act.x, &sentence_spans, out, &params], sentences.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::chunks;

    #[test]
    fn reducing_kernels_take_either_reduction() {
        for source in [super::ADD_NORM_WGSL, super::POOL_WGSL] {
            let tree = super::with_reduction(source, false);
            assert!(tree.contains("fn total(") && !tree.contains("subgroupAdd") && !tree.contains("@builtin(subgroup"));
            let subgroups = super::with_reduction(source, true);
            assert!(subgroups.contains("subgroupAdd") && subgroups.contains("@builtin(subgroup_id)"));
            assert_eq!(subgroups.matches("subgroups = vec3(").count(), 1, "the entry point sets them");
        }
    }

    #[test]
    fn the_f16_kernels_differ_only_in_how_they_read_weights() {
        for source in [super::LINEAR_WGSL, &super::with_reduction(super::ADD_NORM_WGSL, true)] {
            let half = super::with_f16_weights(source);
            assert!(
                half.starts_with("enable f16;\n") && half.contains("array<f16>") && half.contains("f32(weights[i])")
            );
            assert!(!half.contains("array<f32>;\n\n// Value"), "the weights binding is still f32");
            assert_eq!(half.matches("weights[").count(), 1, "weights are read in one place");
        }
    }

    #[test]
    fn chunks_hold_whole_sentences_within_the_token_budget() {
        let ids: Vec<Vec<u32>> = [3, 4, 2, 5, 1].iter().map(|&n| vec![0; n]).collect();
        let sizes: Vec<Vec<usize>> = chunks(&ids, 7).map(|c| c.iter().map(Vec::len).collect()).collect();
        assert_eq!(sizes, [vec![3, 4], vec![2, 5], vec![1]]);
        // A sentence larger than the budget goes alone.
        let sizes: Vec<usize> = chunks(&ids, 2).map(<[Vec<u32>]>::len).collect();
        assert_eq!(sizes, [1, 1, 1, 1, 1]);
        assert_eq!(chunks(&[], 7).count(), 0);
    }
}
