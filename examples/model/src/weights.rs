//! The model's weights: the embedded `model.safetensors`, viewed in place.
//! Only its JSON header is parsed; each tensor is a `&[f32]` into the
//! embedded bytes, checked for dtype, shape and bounds.

use serde::Deserialize;
use std::collections::HashMap;

#[cfg(target_endian = "big")]
compile_error!("the weights are little-endian f32 and are viewed in place");

/// Width of a token's hidden state.
pub const HIDDEN: usize = 384;
/// Attention heads per layer.
pub const HEADS: usize = 12;
/// Width of one head.
pub const HEAD_DIM: usize = HIDDEN / HEADS;
/// Width of the feed-forward layer.
pub const INTERMEDIATE: usize = 1536;
/// Transformer layers.
pub const LAYERS: usize = 6;
/// Tokens in the vocabulary.
pub const VOCAB: usize = 30522;
/// Positions the position embeddings cover.
pub const MAX_POSITIONS: usize = 512;
/// Epsilon of every layer norm.
pub const LAYER_NORM_EPS: f32 = 1e-12;

/// Bytes aligned to 8, so that the f32 tensors inside can be viewed in place.
#[repr(C, align(8))]
pub struct Aligned<B: ?Sized>(pub B);

/// Why the weights cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightsError(pub String);

impl std::fmt::Display for WeightsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "model weights: {}", self.0)
    }
}

fn error(message: impl Into<String>) -> WeightsError {
    WeightsError(message.into())
}

/// One f32 tensor of the file.
#[derive(Debug, Clone, Copy)]
pub struct Tensor<'a> {
    /// Its values, row-major.
    pub data: &'a [f32],
    /// Where they start in the file, in bytes (a multiple of 4).
    pub offset: usize,
}

/// A dense layer `y = x Wᵀ + b`, with `W` stored as `outputs` rows of `inputs`.
#[derive(Debug, Clone, Copy)]
pub struct Linear<'a> {
    /// `W`, `outputs × inputs`.
    pub weight: Tensor<'a>,
    /// `b`, `outputs`.
    pub bias: Tensor<'a>,
    /// Width of its input.
    pub inputs: usize,
    /// Width of its output.
    pub outputs: usize,
}

/// A layer norm's scale and shift.
#[derive(Debug, Clone, Copy)]
pub struct Norm<'a> {
    /// The scale (γ).
    pub gamma: Tensor<'a>,
    /// The shift (β).
    pub beta: Tensor<'a>,
}

/// One transformer layer.
#[derive(Debug, Clone, Copy)]
pub struct Layer<'a> {
    /// Attention queries.
    pub query: Linear<'a>,
    /// Attention keys.
    pub key: Linear<'a>,
    /// Attention values.
    pub value: Linear<'a>,
    /// Projection of the attention's result.
    pub attention_output: Linear<'a>,
    /// Norm after the attention and its residual.
    pub attention_norm: Norm<'a>,
    /// Feed-forward expansion (followed by GELU).
    pub intermediate: Linear<'a>,
    /// Feed-forward projection back.
    pub output: Linear<'a>,
    /// Norm after the feed-forward and its residual.
    pub output_norm: Norm<'a>,
}

/// The whole model, viewed in the safetensors bytes.
#[derive(Debug, Clone)]
pub struct Model<'a> {
    /// The whole safetensors file, which the tensors point into.
    pub bytes: &'a [u8],
    /// Token embeddings, `VOCAB × HIDDEN`.
    pub word: Tensor<'a>,
    /// Position embeddings, `MAX_POSITIONS × HIDDEN`.
    pub position: Tensor<'a>,
    /// Token type embeddings, `2 × HIDDEN` (type 0 is used).
    pub token_type: Tensor<'a>,
    /// Norm of the summed embeddings.
    pub embedding_norm: Norm<'a>,
    /// The transformer layers, in order.
    pub layers: Vec<Layer<'a>>,
}

#[derive(Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [usize; 2],
}

/// The tensors of a safetensors file, by name.
struct File<'a> {
    bytes: &'a [u8],
    data_start: usize,
    entries: HashMap<String, Entry>,
}

impl<'a> File<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, WeightsError> {
        let header_len = bytes.get(..8).ok_or_else(|| error("shorter than a safetensors header"))?;
        let header_len = u64::from_le_bytes(header_len.try_into().map_err(|_| error("bad header length"))?);
        let data_start = usize::try_from(header_len)
            .ok()
            .and_then(|n| n.checked_add(8))
            .filter(|&n| n <= bytes.len())
            .ok_or_else(|| error("the header runs past the end of the file"))?;
        let mut entries: HashMap<String, serde_json::Value> =
            serde_json::from_slice(&bytes[8..data_start]).map_err(|e| error(format!("the header is not JSON: {e}")))?;
        entries.remove("__metadata__");
        let entries = entries
            .into_iter()
            .map(|(name, value)| {
                let entry: Entry = serde_json::from_value(value).map_err(|e| error(format!("{name}: {e}")))?;
                Ok((name, entry))
            })
            .collect::<Result<_, WeightsError>>()?;
        Ok(File { bytes, data_start, entries })
    }

    /// The f32 tensor `name`, which must have `shape`.
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor<'a>, WeightsError> {
        let entry = self.entries.get(name).ok_or_else(|| error(format!("no tensor {name}")))?;
        if entry.dtype != "F32" || entry.shape != shape {
            return Err(error(format!("{name} is {} {:?}, expected F32 {shape:?}", entry.dtype, entry.shape)));
        }
        let [start, end] = entry.data_offsets;
        let (start, end) = (self.data_start + start, self.data_start + end);
        let count = shape.iter().product::<usize>();
        if start > end || end > self.bytes.len() || end - start != count * 4 {
            return Err(error(format!("{name}: its data offsets do not fit the file or its shape")));
        }
        // SAFETY: every bit pattern is a valid f32; `align_to` puts only
        // the aligned middle in the f32 slice, and we refuse anything else.
        let (before, data, after) = unsafe { self.bytes[start..end].align_to::<f32>() };
        if !before.is_empty() || !after.is_empty() {
            return Err(error(format!("{name} is not 4-byte aligned in memory")));
        }
        Ok(Tensor { data, offset: start })
    }

    fn linear(&self, prefix: &str, inputs: usize, outputs: usize) -> Result<Linear<'a>, WeightsError> {
        Ok(Linear {
            weight: self.tensor(&format!("{prefix}.weight"), &[outputs, inputs])?,
            bias: self.tensor(&format!("{prefix}.bias"), &[outputs])?,
            inputs,
            outputs,
        })
    }

    fn norm(&self, prefix: &str) -> Result<Norm<'a>, WeightsError> {
        Ok(Norm {
            gamma: self.tensor(&format!("{prefix}.weight"), &[HIDDEN])?,
            beta: self.tensor(&format!("{prefix}.bias"), &[HIDDEN])?,
        })
    }
}

impl<'a> Model<'a> {
    /// The model embedded in this crate.
    pub fn embedded() -> Result<Model<'static>, WeightsError> {
        Model::parse(&crate::files::SAFETENSORS.0)
    }

    /// The model in the safetensors `bytes` of a BERT of this shape.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WeightsError> {
        let file = File::parse(bytes)?;
        let layers = (0..LAYERS)
            .map(|i| {
                let p = format!("encoder.layer.{i}");
                Ok(Layer {
                    query: file.linear(&format!("{p}.attention.self.query"), HIDDEN, HIDDEN)?,
                    key: file.linear(&format!("{p}.attention.self.key"), HIDDEN, HIDDEN)?,
                    value: file.linear(&format!("{p}.attention.self.value"), HIDDEN, HIDDEN)?,
                    attention_output: file.linear(&format!("{p}.attention.output.dense"), HIDDEN, HIDDEN)?,
                    attention_norm: file.norm(&format!("{p}.attention.output.LayerNorm"))?,
                    intermediate: file.linear(&format!("{p}.intermediate.dense"), HIDDEN, INTERMEDIATE)?,
                    output: file.linear(&format!("{p}.output.dense"), INTERMEDIATE, HIDDEN)?,
                    output_norm: file.norm(&format!("{p}.output.LayerNorm"))?,
                })
            })
            .collect::<Result<_, WeightsError>>()?;
        Ok(Model {
            bytes,
            word: file.tensor("embeddings.word_embeddings.weight", &[VOCAB, HIDDEN])?,
            position: file.tensor("embeddings.position_embeddings.weight", &[MAX_POSITIONS, HIDDEN])?,
            token_type: file.tensor("embeddings.token_type_embeddings.weight", &[2, HIDDEN])?,
            embedding_norm: file.norm("embeddings.LayerNorm")?,
            layers,
        })
    }

    /// The sum of the token, position and type-0 embeddings of `ids`, one
    /// row of `HIDDEN` per token (before the embedding norm).
    pub fn embeddings_into(&self, ids: &[u32], out: &mut Vec<f32>) {
        let kind = &self.token_type.data[..HIDDEN];
        for (position, &id) in ids.iter().enumerate() {
            let id = (id as usize).min(VOCAB - 1);
            let word = &self.word.data[id * HIDDEN..(id + 1) * HIDDEN];
            let place = &self.position.data[position * HIDDEN..(position + 1) * HIDDEN];
            out.extend(word.iter().zip(place).zip(kind).map(|((w, p), k)| w + p + k));
        }
    }
}
