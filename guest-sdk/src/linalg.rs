//! Host linear algebra from a tool: matrices and weights the host holds,
//! and products (with bias, GELU and a residual add), attention and layer
//! norms that the host runs natively on the node's cores — much faster
//! than the same loops in wasm. The pieces of a small transformer or MLP.
//!
//! ```ignore
//! use toolmesh_guest::linalg::{Activation, Dense, Linalg};
//!
//! // The weights' SHA-256, computed when the tool is built (build.rs).
//! const WEIGHTS_SHA256: &str = env!("WEIGHTS_SHA256");
//! static WEIGHTS: &[u8] = include_bytes!("weights.bin");
//!
//! fn mlp(input: &[f32], rows: u32) -> Result<Vec<f32>, ToolError> {
//!     let linalg = Linalg::open()?; // Err(Unavailable): compute in wasm instead
//!     let weights = linalg.weights(WEIGHTS_SHA256, WEIGHTS)?; // uploaded once per node
//!     let x = linalg.matrix(rows, 64, input)?;
//!     let hidden = Dense { weights: &weights, offset: 0, outputs: 256, inputs: 64, bias: Some(16_384) };
//!     let out = Dense { weights: &weights, offset: 16_640, outputs: 8, inputs: 256, bias: Some(18_688) };
//!     let h = linalg.linear(&x, &hidden, Activation::Gelu, None)?;
//!     Ok(linalg.linear(&h, &out, Activation::None, None)?.to_vec()?)
//! }
//! ```
//!
//! Weights are kept by the node per component and content, so later calls
//! (and other instances) of the same tool find them without uploading:
//! [`Linalg::weights`] looks first and uploads only what is missing.
//! Every call may use this interface unless the node turns it off; then
//! [`Linalg::open`] answers `Unavailable`.

use crate::bindings::toolmesh::tool::linalg as wit;

pub use wit::{Activation, Limits, LinalgError};

/// The most bytes sent to the host in one call, below the host's own cap
/// (`limits.max-transfer`): large matrices and weights go in pieces.
const CHUNK: u64 = 1 << 20;

impl LinalgError {
    /// What went wrong, in words: its kind, then the host's message.
    pub fn message(&self) -> String {
        let (kind, message) = match self {
            LinalgError::Unavailable(m) => ("no host linear algebra", m),
            LinalgError::InvalidArgument(m) => ("invalid linear-algebra argument", m),
            LinalgError::QuotaExceeded(m) => ("linear-algebra quota exceeded", m),
            LinalgError::Timeout(m) => ("linear-algebra timeout", m),
        };
        format!("{kind}: {message}")
    }
}

impl From<LinalgError> for crate::ToolError {
    fn from(error: LinalgError) -> Self {
        crate::ToolError::Failed(error.message())
    }
}

/// Host linear algebra for this call: proof that the node offers it.
#[derive(Debug, Clone)]
pub struct Linalg {
    limits: Limits,
}

impl Linalg {
    /// The call's host linear algebra, or why there is none.
    pub fn open() -> Result<Linalg, LinalgError> {
        Ok(Linalg { limits: wit::budgets()? })
    }

    /// This call's budgets.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Bytes per transfer: under the host's cap, with room for the other
    /// arguments.
    fn chunk(&self) -> usize {
        let cap = self.limits.max_transfer.saturating_sub(4096) / 2;
        cap.clamp(4, CHUNK) as usize & !3
    }

    /// A `rows` × `cols` matrix holding `values` (row by row), sent in
    /// pieces when large.
    pub fn matrix(&self, rows: u32, cols: u32, values: &[f32]) -> Result<Matrix, LinalgError> {
        let expected = rows as usize * cols as usize;
        if cols as usize * 4 > self.chunk() {
            return Err(LinalgError::InvalidArgument(format!(
                "rows of {cols} values are wider than one transfer ({} bytes)",
                self.chunk()
            )));
        }
        if values.len() != expected {
            return Err(LinalgError::InvalidArgument(format!("{} values for a {rows} × {cols} matrix", values.len())));
        }
        let matrix = Matrix { inner: wit::Matrix::zeros(rows, cols)?, rows, cols, chunk: self.chunk() };
        matrix.write_rows(0, values)?;
        Ok(matrix)
    }

    /// The component's weights with SHA-256 `sha256` (64 hex digits): the
    /// copy the node keeps, or `bytes` (little-endian `f32`s, whose SHA-256
    /// that must be) uploaded in pieces.
    pub fn weights(&self, sha256: &str, bytes: &[u8]) -> Result<Weights, LinalgError> {
        if let Some(kept) = wit::Weights::find(sha256) {
            return Ok(Weights(kept));
        }
        let upload = wit::Upload::start(sha256, bytes.len() as u64)?;
        for piece in bytes.chunks(self.chunk()) {
            upload.write(piece)?;
        }
        Ok(Weights(wit::Upload::finish(upload)?))
    }

    /// `activation(x · Wᵀ + b) + add` for the dense layer `layer`.
    pub fn linear(
        &self,
        x: &Matrix,
        layer: &Dense<'_>,
        activation: Activation,
        add: Option<&Matrix>,
    ) -> Result<Matrix, LinalgError> {
        let dense = wit::Dense {
            weights: &layer.weights.0,
            offset: layer.offset,
            outputs: layer.outputs,
            inputs: layer.inputs,
            bias: layer.bias,
        };
        let out = wit::linear(&x.inner, &dense, activation, add.map(|a| &a.inner))?;
        Ok(self.wrap(out, x.rows, layer.outputs))
    }

    /// `a · b`, or `a · bᵀ` when `transpose_b`.
    pub fn matmul(&self, a: &Matrix, b: &Matrix, transpose_b: bool) -> Result<Matrix, LinalgError> {
        let cols = if transpose_b { b.rows } else { b.cols };
        Ok(self.wrap(wit::matmul(&a.inner, &b.inner, transpose_b)?, a.rows, cols))
    }

    /// Multi-head self-attention of sequences of `lengths` rows, one after
    /// another (see the interface's `attention`).
    pub fn attention(
        &self,
        q: &Matrix,
        k: &Matrix,
        v: &Matrix,
        heads: u32,
        lengths: &[u32],
    ) -> Result<Matrix, LinalgError> {
        Ok(self.wrap(wit::attention(&q.inner, &k.inner, &v.inner, heads, lengths)?, q.rows, q.cols))
    }

    /// Layer norm of each row of `x` (plus `add`), with its scale and shift
    /// from values `scale` and `shift` of `weights`.
    pub fn layer_norm(
        &self,
        x: &Matrix,
        add: Option<&Matrix>,
        weights: &Weights,
        (scale, shift): (u64, u64),
        epsilon: f32,
    ) -> Result<Matrix, LinalgError> {
        let out = wit::layer_norm(&x.inner, add.map(|a| &a.inner), &weights.0, scale, shift, epsilon)?;
        Ok(self.wrap(out, x.rows, x.cols))
    }

    fn wrap(&self, inner: wit::Matrix, rows: u32, cols: u32) -> Matrix {
        Matrix { inner, rows, cols, chunk: self.chunk() }
    }
}

/// A matrix the host holds; freed when dropped.
#[derive(Debug)]
pub struct Matrix {
    inner: wit::Matrix,
    rows: u32,
    cols: u32,
    chunk: usize,
}

impl Matrix {
    /// Its number of rows.
    pub fn rows(&self) -> u32 {
        self.rows
    }

    /// Its number of columns.
    pub fn cols(&self) -> u32 {
        self.cols
    }

    /// Rows per transfer.
    fn rows_per_chunk(&self) -> usize {
        (self.chunk / 4 / self.cols.max(1) as usize).max(1)
    }

    /// Overwrites whole rows from `row` on with `values`, in pieces.
    pub fn write_rows(&self, row: u32, values: &[f32]) -> Result<(), LinalgError> {
        let width = self.cols as usize;
        for (i, piece) in values.chunks(self.rows_per_chunk() * width).enumerate() {
            self.inner.write_rows(row + (i * self.rows_per_chunk()) as u32, piece)?;
        }
        Ok(())
    }

    /// All of its values, row by row, read in pieces.
    pub fn to_vec(&self) -> Result<Vec<f32>, LinalgError> {
        let mut values = Vec::with_capacity(self.rows as usize * self.cols as usize);
        let step = self.rows_per_chunk() as u32;
        let mut row = 0;
        while row < self.rows {
            let count = step.min(self.rows - row);
            values.extend(self.inner.read_rows(row, count)?);
            row += count;
        }
        Ok(values)
    }
}

/// Weights the node keeps for the component.
#[derive(Debug)]
pub struct Weights(wit::Weights);

impl Weights {
    /// How many `f32` values they hold.
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// Whether they hold none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A dense layer inside [`Weights`]: `W` (`outputs` rows of `inputs`
/// values) from value `offset` on, and its bias (`outputs` values) from
/// value `bias` on, when it has one.
#[derive(Debug, Clone, Copy)]
pub struct Dense<'a> {
    /// The weights holding it.
    pub weights: &'a Weights,
    /// Where `W` starts, in values.
    pub offset: u64,
    /// Rows of `W`: the width of the output.
    pub outputs: u32,
    /// Columns of `W`: the width of the input.
    pub inputs: u32,
    /// Where the bias starts, in values.
    pub bias: Option<u64>,
}
