//! Sentence embeddings with all-MiniLM-L6-v2, a 6-layer BERT (22M
//! parameters) trained by sentence-transformers: each text becomes a
//! 384-dimensional unit vector, and texts of similar meaning get vectors
//! with a high cosine.
//!
//! The weights are embedded in the component (`build.rs` finds them;
//! `scripts/fetch-model.sh` fetches them). Per call: the texts are
//! tokenized in the guest ([`tokenizer`]), then run through the model on
//! the GPU through toolmesh's GPU interface ([`gpu`], WGSL kernels in
//! `src/kernels/`), on the node's cores through toolmesh's host linear
//! algebra ([`host`]) or on the CPU inside wasm ([`cpu`]), mean-pooled
//! over their tokens and L2-normalised, as sentence-transformers does.
#![deny(missing_docs)]

pub mod cpu;
pub mod gpu;
pub mod half;
pub mod host;
pub mod tokenizer;
pub mod weights;

mod files {
    //! The model files, found by `build.rs`.
    use crate::weights::Aligned;
    include!(concat!(env!("OUT_DIR"), "/model_files.rs"));
}

use tokenizer::Tokenizer;
use toolmesh_guest::gpu::{DeviceKind, Gpu};
use toolmesh_guest::linalg::Linalg;
use toolmesh_guest::prelude::*;
use weights::{HIDDEN, Model};

/// Tokens the model sees of one text, `[CLS]` and `[SEP]` included
/// (sentence-transformers' `max_seq_length`); the rest is cut off.
pub const MAX_TOKENS: usize = 256;
/// Texts one call may embed (their vectors stay well within a call's
/// default 1 MiB of output).
pub const MAX_TEXTS: usize = 128;
/// Characters one text may have.
pub const MAX_CHARS: usize = 10_000;
/// Characters all texts of a call may have together (`similarity`
/// returns the candidates' texts).
pub const MAX_TOTAL_CHARS: usize = 100_000;
/// Tokens all texts of a call may make together: about 30 seconds on the
/// CPU path of a 2-core machine (about 0.4 TFLOP of work in all).
pub const MAX_TOTAL_TOKENS: usize = 16_384;

/// Where to compute.
#[derive(Deserialize, JsonSchema, Clone, Copy, Default, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// A hardware GPU when granted, else the CPU.
    #[default]
    Auto,
    /// The GPU, with the adapter's optional features where it has them
    /// (weights read in half precision, rows summed by subgroup
    /// operations); fails without one.
    Gpu,
    /// The GPU with core WGSL only: weights in single precision, rows
    /// summed through workgroup memory.
    #[serde(rename = "gpu-f32")]
    GpuF32,
    /// The CPU: the node's host linear algebra where it offers it, else
    /// inside wasm.
    Cpu,
    /// The CPU inside wasm only.
    Wasm,
}

/// Arguments of `embed`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Embed {
    /// The texts to embed: 1 to 128, each at most 10000 characters (100000 in all), cut at 254 word pieces.
    texts: Vec<String>,
    /// Where to compute: `auto` (a hardware GPU when granted, else the CPU), `gpu` (with `f16` weights and subgroup operations where the GPU has them), `gpu-f32` (core WGSL only), `cpu` (the node's host linear algebra, else wasm) or `wasm` (the CPU inside the sandbox only).
    #[serde(default)]
    device: Device,
}

/// Arguments of `similarity`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Similarity {
    /// The text to compare the candidates with (at most 10000 characters).
    query: String,
    /// The texts to rank: 1 to 127, each at most 10000 characters (100000 in all with the query).
    candidates: Vec<String>,
    /// Where to compute: `auto` (a hardware GPU when granted, else the CPU), `gpu` (with `f16` weights and subgroup operations where the GPU has them), `gpu-f32` (core WGSL only), `cpu` (the node's host linear algebra, else wasm) or `wasm` (the CPU inside the sandbox only).
    #[serde(default)]
    device: Device,
}

/// The embeddings of `embed`.
#[derive(Serialize, JsonSchema)]
struct Embeddings {
    /// One unit vector of 384 numbers per text, in the order given.
    embeddings: Vec<Vec<f32>>,
    /// The length of each vector (384).
    dimensions: usize,
    /// Where they were computed: `gpu: <adapter>`, `cpu` (host linear algebra) or `wasm`.
    device: String,
    /// Tokens the model saw of each text, `[CLS]` and `[SEP]` included (at most 256).
    tokens: Vec<usize>,
}

/// One candidate of `similarity` with its score.
#[derive(Serialize, JsonSchema)]
struct Match {
    /// The candidate's text.
    text: String,
    /// Its position in `candidates`.
    index: usize,
    /// Cosine similarity with the query, -1 to 1.
    score: f32,
}

/// The result of `similarity`.
#[derive(Serialize, JsonSchema)]
struct Ranking {
    /// The candidates, most similar first.
    ranked: Vec<Match>,
    /// Where the embeddings were computed: `gpu: <adapter>`, `cpu` (host linear algebra) or `wasm`.
    device: String,
}

/// Refuses texts too long one by one or together; `name(i)` names text
/// `i` in messages.
fn check_lengths(texts: &[&str], name: impl Fn(usize) -> String) -> Result<(), ToolError> {
    let mut total = 0;
    for (i, text) in texts.iter().enumerate() {
        let chars = text.chars().count();
        if chars > MAX_CHARS {
            return Err(ToolError::invalid_arguments(format!(
                "{}: {chars} characters; at most {MAX_CHARS} per text",
                name(i)
            )));
        }
        total += chars;
    }
    if total > MAX_TOTAL_CHARS {
        return Err(ToolError::invalid_arguments(format!(
            "the texts have {total} characters in all; at most {MAX_TOTAL_CHARS} per call"
        )));
    }
    Ok(())
}

/// The token ids of each text, as the model sees them.
pub fn tokenize(texts: &[&str]) -> Result<Vec<Vec<u32>>, ToolError> {
    let tokenizer = Tokenizer::embedded().map_err(ToolError::failed)?;
    Ok(texts.iter().map(|t| tokenizer.encode(t, MAX_TOKENS)).collect())
}

/// What [`embed_texts`] computed.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// One unit vector of `HIDDEN` numbers per text.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens the model saw of each text.
    pub tokens: Vec<usize>,
    /// Where: `gpu: <adapter>`, `cpu` (host linear algebra) or `wasm`.
    pub device: String,
}

/// The embeddings of `texts` on `device`, with the token counts and the
/// device's name.
///
/// `auto` uses the GPU only when it is not a software adapter (such as
/// lavapipe): on those the CPU is faster. The CPU is the node's host
/// linear algebra where it offers it, else the loops in wasm.
pub fn embed_texts(texts: &[&str], device: Device) -> Result<Embedded, ToolError> {
    let ids = tokenize(texts)?;
    let tokens: Vec<usize> = ids.iter().map(Vec::len).collect();
    let total: usize = tokens.iter().sum();
    if total > MAX_TOTAL_TOKENS {
        return Err(ToolError::invalid_arguments(format!(
            "the texts make {total} tokens; at most {MAX_TOTAL_TOKENS} per call (at most {MAX_TOKENS} per text)"
        )));
    }
    let model = Model::embedded().map_err(ToolError::failed)?;
    if matches!(device, Device::Auto | Device::Gpu | Device::GpuF32) {
        let required = device != Device::Auto;
        match Gpu::open() {
            Ok(gpu) if required || gpu.info().kind != DeviceKind::Cpu => {
                let core = device == Device::GpuF32;
                let features =
                    gpu::Features { half: !core && gpu.has("f16"), subgroups: !core && gpu.has("subgroups") };
                let vectors = gpu::embed(&gpu, &model, &ids, features)?;
                let name = &gpu.info().name;
                let used: Vec<&str> = [(features.half, "f16 weights"), (features.subgroups, "subgroups")]
                    .iter()
                    .filter(|u| u.0)
                    .map(|u| u.1)
                    .collect();
                let device =
                    if used.is_empty() { format!("gpu: {name}") } else { format!("gpu: {name} ({})", used.join(", ")) };
                return Ok(Embedded { vectors, tokens, device });
            }
            Ok(_) => {}
            Err(e) if required => return Err(e.into()),
            Err(_) => {}
        }
    }
    if device != Device::Wasm
        && let Ok(linalg) = Linalg::open()
    {
        let vectors = host::embed(&linalg, &model, &ids)?;
        return Ok(Embedded { vectors, tokens, device: "cpu".into() });
    }
    let vectors = ids.iter().map(|ids| cpu::embed(&model, ids)).collect();
    Ok(Embedded { vectors, tokens, device: "wasm".into() })
}

fn embed(args: Embed) -> Result<Json<Embeddings>, ToolError> {
    if args.texts.is_empty() || args.texts.len() > MAX_TEXTS {
        return Err(ToolError::invalid_arguments(format!(
            "texts: {} given; 1 to {MAX_TEXTS} per call",
            args.texts.len()
        )));
    }
    let texts: Vec<&str> = args.texts.iter().map(String::as_str).collect();
    check_lengths(&texts, |i| format!("texts[{i}]"))?;
    let Embedded { vectors, tokens, device } = embed_texts(&texts, args.device)?;
    Ok(Json(Embeddings { embeddings: vectors, dimensions: HIDDEN, device, tokens }))
}

fn similarity(args: Similarity) -> Result<Json<Ranking>, ToolError> {
    if args.candidates.is_empty() || args.candidates.len() >= MAX_TEXTS {
        return Err(ToolError::invalid_arguments(format!(
            "candidates: {} given; 1 to {} per call",
            args.candidates.len(),
            MAX_TEXTS - 1
        )));
    }
    let texts: Vec<&str> = std::iter::once(&args.query).chain(&args.candidates).map(String::as_str).collect();
    check_lengths(&texts, |i| if i == 0 { "query".into() } else { format!("candidates[{}]", i - 1) })?;
    let Embedded { vectors, device, .. } = embed_texts(&texts, args.device)?;
    let (query, candidates) = vectors.split_first().ok_or_else(|| ToolError::failed("no embeddings came back"))?;
    let mut ranked: Vec<Match> = args
        .candidates
        .into_iter()
        .zip(candidates)
        .enumerate()
        .map(|(index, (text, vector))| Match { text, index, score: cosine(query, vector) })
        .collect();
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
    Ok(Json(Ranking { ranked, device }))
}

/// The cosine of two vectors (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norms = a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norms > 0.0 { dot / norms } else { 0.0 }
}

/// The tools of the component.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn tools() -> Vec<Tool> {
    vec![
        Tool::new(
            "embed",
            "Embeds texts as 384-dimensional unit vectors with the sentence-transformers model all-MiniLM-L6-v2 \
             (English; texts past 256 tokens are cut). Similar meanings give vectors with a high dot product. \
             Runs on the node's GPU when one is granted (a hardware one: on a software adapter the CPU is faster), \
             else on the CPU; `device` forces either.",
            embed,
        )
        .title("Sentence embeddings")
        .read_only()
        .idempotent(),
        Tool::new(
            "similarity",
            "Ranks candidate texts by semantic similarity to a query: the cosine of their all-MiniLM-L6-v2 \
             sentence embeddings, most similar first.",
            similarity,
        )
        .title("Semantic similarity")
        .read_only()
        .idempotent(),
    ]
}

// Exported only in the component: natively (the unit tests) the rlib has
// no host to call it, and the export names do not link into a native cdylib.
#[cfg(target_arch = "wasm32")]
toolmesh_guest::export_tools!(tools);
// Every GPU path has a CPU one: nodes without a GPU run it too.
toolmesh_guest::gpu_optional!();

#[cfg(test)]
mod tests;
