//! Matrix product on the GPU through toolmesh's GPU interface: a tiled
//! WGSL kernel (`matmul.wgsl`); on the CPU through the node's host linear
//! algebra when no GPU is granted or when asked for, or inside wasm where
//! the node offers no host linear algebra (or when asked for).
use toolmesh_guest::gpu::Gpu;
use toolmesh_guest::linalg::Linalg;
use toolmesh_guest::prelude::*;

/// The kernel; the benchmark runs the same file natively.
pub const WGSL: &str = include_str!("matmul.wgsl");

/// Rows and columns of one workgroup's tile of the result.
pub const TILE: u32 = 16;

/// Where to compute.
#[derive(Deserialize, JsonSchema, Clone, Copy, Default, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum Device {
    /// The GPU when granted, else the CPU.
    #[default]
    Auto,
    /// The GPU; fails without one.
    Gpu,
    /// The CPU: the node's host linear algebra where it offers it, else
    /// inside wasm.
    Cpu,
    /// The CPU inside wasm only.
    Wasm,
}

/// Arguments of `matmul`.
#[derive(Deserialize, JsonSchema)]
struct Multiply {
    /// The left matrix, as rows (m rows of k numbers).
    a: Vec<Vec<f32>>,
    /// The right matrix, as rows (k rows of n numbers).
    b: Vec<Vec<f32>>,
    /// Where to compute.
    #[serde(default)]
    device: Device,
}

/// Arguments of `matmul_bench`.
#[derive(Deserialize, JsonSchema)]
struct Bench {
    /// The size of the square matrices, 1 to 2048.
    #[schemars(range(min = 1, max = 2048))]
    n: u32,
    /// Seed of the generated matrices.
    #[serde(default)]
    seed: u32,
    /// Where to compute.
    #[serde(default)]
    device: Device,
}

/// The product and where it was computed.
#[derive(Serialize, JsonSchema)]
struct Product {
    /// The result, as rows.
    c: Vec<Vec<f32>>,
    /// `gpu: <adapter>`, `cpu` (host linear algebra) or `wasm`.
    device: String,
}

/// A summary of a generated product.
#[derive(Serialize, JsonSchema)]
struct BenchResult {
    /// The size of the matrices.
    n: u32,
    /// `gpu: <adapter>`, `cpu` (host linear algebra) or `wasm`.
    device: String,
    /// The sum of all entries of the product.
    sum: f64,
    /// The first and last entries of the product.
    corners: [f32; 2],
    /// Milliseconds spent on the product (upload, compute, read back).
    ms: f64,
    /// Through host linear algebra: milliseconds of the product alone
    /// (the one host call), without sending the matrices and reading back.
    product_ms: Option<f64>,
}

/// A row-major matrix.
struct Matrix {
    rows: usize,
    cols: usize,
    values: Vec<f32>,
}

impl Matrix {
    fn from_rows(rows: Vec<Vec<f32>>, name: &str) -> Result<Matrix, ToolError> {
        let cols = rows.first().map_or(0, Vec::len);
        if rows.is_empty() || cols == 0 {
            return Err(ToolError::invalid_arguments(format!("{name}: a matrix needs at least one row and column")));
        }
        if let Some(i) = rows.iter().position(|r| r.len() != cols) {
            return Err(ToolError::invalid_arguments(format!(
                "{name}: row {i} has {} numbers, row 0 has {cols}",
                rows[i].len()
            )));
        }
        Ok(Matrix { rows: rows.len(), cols, values: rows.into_iter().flatten().collect() })
    }

    /// Deterministic values in [-1, 1) from `seed`.
    fn generated(n: usize, seed: u32) -> Matrix {
        let mut state = u64::from(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let values = (0..n * n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect();
        Matrix { rows: n, cols: n, values }
    }
}

/// C = A × B on the CPU, in the loop order that reads memory in sequence.
fn cpu_product(a: &Matrix, b: &Matrix) -> Vec<f32> {
    let mut c = vec![0.0f32; a.rows * b.cols];
    for i in 0..a.rows {
        let out = &mut c[i * b.cols..(i + 1) * b.cols];
        for k in 0..a.cols {
            let x = a.values[i * a.cols + k];
            let row = &b.values[k * b.cols..(k + 1) * b.cols];
            for (o, y) in out.iter_mut().zip(row) {
                *o += x * y;
            }
        }
    }
    c
}

/// C = A × B through the GPU interface.
fn gpu_product(gpu: &Gpu, a: &Matrix, b: &Matrix) -> Result<Vec<f32>, ToolError> {
    let dims = [a.rows as u32, a.cols as u32, b.cols as u32, 0];
    let ga = gpu.upload_f32(&a.values)?;
    let gb = gpu.upload_f32(&b.values)?;
    let gc = gpu.zeroed((a.rows * b.cols * 4) as u64)?;
    let gd = gpu.upload_u32(&dims)?;
    let kernel = gpu.kernel(WGSL, "main")?;
    kernel.dispatch(&[&ga, &gb, &gc, &gd], (dims[2].div_ceil(TILE), dims[0].div_ceil(TILE)))?;
    Ok(gc.read_f32()?)
}

/// C = A × B through the host's linear algebra, and the milliseconds of
/// the product alone.
fn host_product(linalg: &Linalg, a: &Matrix, b: &Matrix) -> Result<(Vec<f32>, f64), ToolError> {
    let ha = linalg.matrix(a.rows as u32, a.cols as u32, &a.values)?;
    let hb = linalg.matrix(b.rows as u32, b.cols as u32, &b.values)?;
    let started = std::time::Instant::now();
    let c = linalg.matmul(&ha, &hb, false)?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok((c.to_vec()?, ms))
}

/// The product on the device asked for, that device's name, and the
/// milliseconds of the host's product alone when it ran there.
fn product(a: &Matrix, b: &Matrix, device: Device) -> Result<(Vec<f32>, String, Option<f64>), ToolError> {
    if matches!(device, Device::Auto | Device::Gpu) {
        match Gpu::open() {
            Ok(gpu) => return Ok((gpu_product(&gpu, a, b)?, format!("gpu: {}", gpu.info().name), None)),
            Err(e) if device == Device::Gpu => return Err(e.into()),
            Err(_) => {}
        }
    }
    if device != Device::Wasm
        && let Ok(linalg) = Linalg::open()
    {
        let (c, ms) = host_product(&linalg, a, b)?;
        return Ok((c, "cpu".into(), Some(ms)));
    }
    Ok((cpu_product(a, b), "wasm".into(), None))
}

fn multiply(args: Multiply) -> Result<Json<Product>, ToolError> {
    let a = Matrix::from_rows(args.a, "a")?;
    let b = Matrix::from_rows(args.b, "b")?;
    if a.cols != b.rows {
        return Err(ToolError::invalid_arguments(format!(
            "a is {}×{} and b is {}×{}: a's columns must equal b's rows",
            a.rows, a.cols, b.rows, b.cols
        )));
    }
    let (c, device, _) = product(&a, &b, args.device)?;
    Ok(Json(Product { c: c.chunks(b.cols).map(<[f32]>::to_vec).collect(), device }))
}

fn bench(args: Bench) -> Result<Json<BenchResult>, ToolError> {
    if !(1..=2048).contains(&args.n) {
        return Err(ToolError::invalid_arguments("n: must be 1 to 2048"));
    }
    let n = args.n as usize;
    let (a, b) = (Matrix::generated(n, args.seed), Matrix::generated(n, args.seed.wrapping_add(1)));
    let started = std::time::Instant::now();
    let (c, device, product_ms) = product(&a, &b, args.device)?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(Json(BenchResult {
        n: args.n,
        device,
        sum: c.iter().map(|&v| f64::from(v)).sum(),
        corners: [c[0], c[c.len() - 1]],
        ms,
        product_ms,
    }))
}

fn tools() -> Vec<Tool> {
    vec![
        Tool::new(
            "matmul",
            "Multiplies two matrices of numbers (a: m×k rows, b: k×n rows) and returns the m×n product. \
             Runs on the GPU when the node grants one, else on the CPU (the node's host linear algebra, or inside wasm); `device` forces one (`gpu`, `cpu`, `wasm`).",
            multiply,
        )
        .read_only()
        .idempotent(),
        Tool::new(
            "matmul_bench",
            "Multiplies two generated n×n matrices (n up to 2048) and reports the sum of the product and the time \
             taken, on the GPU or the CPU.",
            bench,
        )
        .read_only()
        .idempotent(),
    ]
}

toolmesh_guest::export_tools!(tools);
// Every GPU path has a CPU one: nodes without a GPU run it too.
toolmesh_guest::gpu_optional!();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_product_is_right() {
        let a = Matrix::from_rows(vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]], "a").unwrap();
        let b = Matrix::from_rows(vec![vec![7.0, 8.0], vec![9.0, 10.0], vec![11.0, 12.0]], "b").unwrap();
        assert_eq!(cpu_product(&a, &b), [58.0, 64.0, 139.0, 154.0]);
    }

    #[test]
    fn ragged_and_mismatched_matrices_are_refused() {
        assert!(Matrix::from_rows(vec![vec![1.0], vec![1.0, 2.0]], "a").is_err());
        assert!(Matrix::from_rows(vec![], "a").is_err());
    }

    #[test]
    fn generated_matrices_are_deterministic_and_bounded() {
        let m = Matrix::generated(8, 3);
        assert_eq!(m.values, Matrix::generated(8, 3).values);
        assert_ne!(m.values, Matrix::generated(8, 4).values);
        assert!(m.values.iter().all(|v| (-1.0..1.0).contains(v)));
    }
}
