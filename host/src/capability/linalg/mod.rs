//! Host linear algebra for tools (`toolmesh:tool/linalg`): matrices and
//! weights held by the host, and products with their epilogues, attention
//! and layer norms run natively on the node's cores with the `gemm` crate.
//!
//! - [`service`]: the node's pool, which runs one block of work at a time
//!   across calls, and the weights it keeps per component and content;
//! - [`call`]: one call's budgets, handles and operations, every shape,
//!   range and budget checked before any work;
//! - `kernels`: the numeric kernels on slices, behind one bounds-checked
//!   front to `gemm`.
//!
//! The interface is linked for every tool and open to every call unless
//! the node's configuration (`[linalg] enabled = false`) closes it; then
//! every function answers `unavailable`, and tools compute in wasm.

pub(crate) mod call;
mod kernels;
pub mod service;

pub use call::{LinalgMatrix, LinalgUpload, LinalgWeights};
pub use service::LinalgService;

use crate::sandbox::CallState;
use crate::sandbox::bindings::toolmesh::tool::linalg as wit;
use wasmtime::component::{Resource, ResourceTable};

/// Why an operation failed; the `linalg-error` of the interface.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinalgError {
    /// The node offers no host linear algebra.
    #[error("no host linear algebra: {0}")]
    Unavailable(String),
    /// Shapes, ranges, handles or content that do not fit.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A budget would be exceeded.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The call ended before the work was done.
    #[error("timeout: {0}")]
    Timeout(String),
}

impl From<LinalgError> for wit::LinalgError {
    fn from(error: LinalgError) -> Self {
        match error {
            LinalgError::Unavailable(m) => wit::LinalgError::Unavailable(m),
            LinalgError::InvalidArgument(m) => wit::LinalgError::InvalidArgument(m),
            LinalgError::QuotaExceeded(m) => wit::LinalgError::QuotaExceeded(m),
            LinalgError::Timeout(m) => wit::LinalgError::Timeout(m),
        }
    }
}

type WitResult<T> = Result<T, wit::LinalgError>;

fn stale() -> wit::LinalgError {
    wit::LinalgError::InvalidArgument("the matrix, weights or upload handle is not valid in this call".into())
}

impl CallState {
    /// Pushes a new matrix's handle (giving back what it holds if the
    /// table refuses it).
    fn push_matrix(&mut self, matrix: LinalgMatrix) -> WitResult<Resource<LinalgMatrix>> {
        let bytes = matrix.values.len() as u64 * 4;
        self.table.push(matrix).map_err(|e| {
            self.linalg.release(bytes);
            wit::LinalgError::QuotaExceeded(e.to_string())
        })
    }

    /// Pushes a new weights handle, likewise.
    fn push_weights(&mut self, weights: LinalgWeights) -> WitResult<Resource<LinalgWeights>> {
        self.table.push(weights).map_err(|e| {
            self.linalg.release(0);
            wit::LinalgError::QuotaExceeded(e.to_string())
        })
    }
}

/// What `handle` names in `table`, or `stale`.
fn get<'a, T: 'static>(table: &'a ResourceTable, handle: &Resource<T>) -> WitResult<&'a T> {
    table.get(handle).map_err(|_| stale())
}

/// What `handle` names in `table`, if one is given.
fn get_some<'a, T: 'static>(table: &'a ResourceTable, handle: &Option<Resource<T>>) -> WitResult<Option<&'a T>> {
    handle.as_ref().map(|h| get(table, h)).transpose()
}

impl wit::Host for CallState {
    async fn budgets(&mut self) -> WitResult<wit::Limits> {
        let service = self.linalg.service()?;
        let config = service.config();
        Ok(wit::Limits {
            max_call_bytes: config.max_call_bytes,
            max_op_flops: config.max_op_flops,
            max_call_flops: config.max_call_flops,
            max_weights_bytes: config.max_weights_bytes,
            max_transfer: self.linalg.max_transfer(),
            threads: u32::try_from(service.threads()).unwrap_or(u32::MAX),
        })
    }

    async fn linear(
        &mut self,
        x: Resource<LinalgMatrix>,
        layer: wit::Dense,
        activation: wit::Activation,
        add: Option<Resource<LinalgMatrix>>,
    ) -> WitResult<Resource<LinalgMatrix>> {
        let (x, weights) = (get(&self.table, &x)?, get(&self.table, &layer.weights)?);
        let add = get_some(&self.table, &add)?;
        let shape = (layer.offset, layer.outputs, layer.inputs, layer.bias);
        let gelu = matches!(activation, wit::Activation::Gelu);
        let out = self.linalg.linear(self.deadline, x, weights, shape, gelu, add).await?;
        self.push_matrix(out)
    }

    async fn matmul(
        &mut self,
        a: Resource<LinalgMatrix>,
        b: Resource<LinalgMatrix>,
        transpose_b: bool,
    ) -> WitResult<Resource<LinalgMatrix>> {
        let (a, b) = (get(&self.table, &a)?, get(&self.table, &b)?);
        let out = self.linalg.matmul(self.deadline, a, b, transpose_b).await?;
        self.push_matrix(out)
    }

    async fn attention(
        &mut self,
        q: Resource<LinalgMatrix>,
        k: Resource<LinalgMatrix>,
        v: Resource<LinalgMatrix>,
        heads: u32,
        lengths: Vec<u32>,
    ) -> WitResult<Resource<LinalgMatrix>> {
        let (q, k, v) = (get(&self.table, &q)?, get(&self.table, &k)?, get(&self.table, &v)?);
        let out = self.linalg.attention(self.deadline, q, k, v, heads, lengths).await?;
        self.push_matrix(out)
    }

    async fn layer_norm(
        &mut self,
        x: Resource<LinalgMatrix>,
        add: Option<Resource<LinalgMatrix>>,
        weights: Resource<LinalgWeights>,
        scale: u64,
        shift: u64,
        epsilon: f32,
    ) -> WitResult<Resource<LinalgMatrix>> {
        let (x, weights) = (get(&self.table, &x)?, get(&self.table, &weights)?);
        let add = get_some(&self.table, &add)?;
        let out = self.linalg.layer_norm(self.deadline, x, add, weights, (scale, shift), epsilon).await?;
        self.push_matrix(out)
    }
}

impl wit::HostMatrix for CallState {
    async fn zeros(&mut self, rows: u32, cols: u32) -> WitResult<Resource<LinalgMatrix>> {
        let matrix = self.linalg.matrix(rows, cols, None)?;
        self.push_matrix(matrix)
    }

    async fn from_list(&mut self, rows: u32, cols: u32, data: Vec<f32>) -> WitResult<Resource<LinalgMatrix>> {
        let matrix = self.linalg.matrix(rows, cols, Some(data))?;
        self.push_matrix(matrix)
    }

    async fn rows(&mut self, handle: Resource<LinalgMatrix>) -> u32 {
        get(&self.table, &handle).map_or(0, |m| m.rows as u32)
    }

    async fn cols(&mut self, handle: Resource<LinalgMatrix>) -> u32 {
        get(&self.table, &handle).map_or(0, |m| m.cols as u32)
    }

    async fn write_rows(&mut self, handle: Resource<LinalgMatrix>, row: u32, data: Vec<f32>) -> WitResult<()> {
        let matrix = self.table.get_mut(&handle).map_err(|_| stale())?;
        Ok(call::LinalgCall::write_rows(matrix, row, data)?)
    }

    async fn read_rows(&mut self, handle: Resource<LinalgMatrix>, row: u32, count: u32) -> WitResult<Vec<f32>> {
        Ok(self.linalg.read_rows(get(&self.table, &handle)?, row, count)?)
    }

    async fn drop(&mut self, handle: Resource<LinalgMatrix>) -> wasmtime::Result<()> {
        let matrix = self.table.delete(handle)?;
        self.linalg.drop_matrix(matrix);
        Ok(())
    }
}

impl wit::HostWeights for CallState {
    async fn find(&mut self, sha256: String) -> Option<Resource<LinalgWeights>> {
        let weights = self.linalg.find(&sha256)?;
        self.push_weights(weights).ok()
    }

    async fn len(&mut self, handle: Resource<LinalgWeights>) -> u64 {
        get(&self.table, &handle).map_or(0, |w| w.data.values.len() as u64)
    }

    async fn drop(&mut self, handle: Resource<LinalgWeights>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        self.linalg.release(0);
        Ok(())
    }
}

impl wit::HostUpload for CallState {
    async fn start(&mut self, sha256: String, length: u64) -> WitResult<Resource<LinalgUpload>> {
        let upload = self.linalg.start(&sha256, length)?;
        let bytes = length;
        self.table.push(upload).map_err(|e| {
            self.linalg.release(bytes);
            wit::LinalgError::QuotaExceeded(e.to_string())
        })
    }

    async fn write(&mut self, handle: Resource<LinalgUpload>, data: Vec<u8>) -> WitResult<()> {
        let upload = self.table.get_mut(&handle).map_err(|_| stale())?;
        Ok(call::LinalgCall::write(upload, &data)?)
    }

    async fn finish(&mut self, handle: Resource<LinalgUpload>) -> WitResult<Resource<LinalgWeights>> {
        let upload = self.table.delete(handle).map_err(|_| stale())?;
        let weights = self.linalg.finish(upload)?;
        self.push_weights(weights)
    }

    async fn drop(&mut self, handle: Resource<LinalgUpload>) -> wasmtime::Result<()> {
        let upload = self.table.delete(handle)?;
        self.linalg.drop_upload(upload);
        Ok(())
    }
}
