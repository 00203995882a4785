//! A host linear-algebra test component: it sends whatever products,
//! shapes and uploads its caller asks for, so tests written apart from the
//! host can check results against their own arithmetic and throw hostile
//! calls (huge shapes, views past the end, aliasing, floods of uploads,
//! work past the budgets) at it.
use serde_json::{Value, json};
use toolmesh_guest::bindings::toolmesh::tool::linalg as wit;
use toolmesh_guest::linalg::{Activation, Dense, Linalg, LinalgError};
use toolmesh_guest::prelude::*;

#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

/// Arguments of `matmul`.
#[derive(Deserialize, JsonSchema)]
struct Matmul {
    /// The left matrix, as rows.
    a: Vec<Vec<f32>>,
    /// The right matrix, as rows.
    b: Vec<Vec<f32>>,
    /// Multiply by bᵀ instead of b.
    #[serde(default)]
    transpose_b: bool,
    /// Compute `a · a` (or `a · aᵀ`) from one matrix, passed twice.
    #[serde(default)]
    alias: bool,
}

/// Arguments of `linear`.
#[derive(Deserialize, JsonSchema)]
struct Linear {
    /// The input, as rows.
    x: Vec<Vec<f32>>,
    /// The weights as one list of values.
    weights: Vec<f32>,
    /// Where W starts.
    offset: u64,
    /// Rows of W.
    outputs: u32,
    /// Columns of W.
    inputs: u32,
    /// Where the bias starts.
    bias: Option<u64>,
    /// Apply GELU.
    #[serde(default)]
    gelu: bool,
    /// Add x itself to the result (x passed twice).
    #[serde(default)]
    add_x: bool,
    /// The SHA-256 to upload the weights under (their own by default).
    sha256: Option<String>,
}

/// Arguments of `zeros`.
#[derive(Deserialize, JsonSchema)]
struct Zeros {
    /// Rows.
    rows: u32,
    /// Columns.
    cols: u32,
    /// How many to hold at once.
    #[serde(default = "one")]
    count: u32,
}

fn one() -> u32 {
    1
}

/// Arguments of `attention`.
#[derive(Deserialize, JsonSchema)]
struct Attention {
    /// Rows of the one sequence.
    rows: u32,
    /// Columns of q, k and v.
    cols: u32,
    /// Heads.
    heads: u32,
}

/// Arguments of `flood`.
#[derive(Deserialize, JsonSchema)]
struct Flood {
    /// Uploads of distinct weights, one after another.
    count: u32,
    /// Bytes of each.
    bytes: u64,
    /// Keep every finished one alive until the end.
    #[serde(default)]
    hold: bool,
}

/// Arguments of `work`.
#[derive(Deserialize, JsonSchema)]
struct Work {
    /// The size of the square matrices.
    n: u32,
    /// Products to compute, one after another.
    repeat: u32,
}

fn error(e: LinalgError) -> String {
    e.message()
}

fn rows_of(m: &[Vec<f32>]) -> Result<(u32, u32, Vec<f32>), ToolError> {
    let cols = m.first().map_or(0, Vec::len);
    if m.iter().any(|r| r.len() != cols) {
        return Err(ToolError::invalid_arguments("rows of different lengths"));
    }
    Ok((m.len() as u32, cols as u32, m.concat()))
}

fn as_rows(values: Vec<f32>, cols: u32) -> Vec<Vec<f32>> {
    values.chunks(cols.max(1) as usize).map(<[f32]>::to_vec).collect()
}

fn open() -> Result<Linalg, ToolError> {
    Ok(Linalg::open()?)
}

fn budgets(_: NoArgs) -> Result<Value, ToolError> {
    let l = *open()?.limits();
    Ok(json!({
        "max_call_bytes": l.max_call_bytes, "max_op_flops": l.max_op_flops, "max_call_flops": l.max_call_flops,
        "max_weights_bytes": l.max_weights_bytes, "max_transfer": l.max_transfer, "threads": l.threads,
    }))
}

fn matmul(args: Matmul) -> Result<Value, ToolError> {
    let linalg = open()?;
    let (ar, ac, av) = rows_of(&args.a)?;
    let a = linalg.matrix(ar, ac, &av)?;
    let out = if args.alias {
        linalg.matmul(&a, &a, args.transpose_b)?
    } else {
        let (br, bc, bv) = rows_of(&args.b)?;
        let b = linalg.matrix(br, bc, &bv)?;
        linalg.matmul(&a, &b, args.transpose_b)?
    };
    Ok(json!({"c": as_rows(out.to_vec()?, out.cols())}))
}

/// The SHA-256 of `bytes`, in hex (small inputs only: it is plain Rust in wasm).
fn sha256(bytes: &[u8]) -> String {
    // FIPS 180-4, enough for a test component.
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
        0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
        0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
        0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
        0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
        0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
        0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] =
        [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    let mut data = bytes.to_vec();
    data.push(0x80);
    while data.len() % 64 != 56 {
        data.push(0);
    }
    data.extend((bytes.len() as u64 * 8).to_be_bytes());
    for block in data.chunks(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([block[4 * i], block[4 * i + 1], block[4 * i + 2], block[4 * i + 3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let mut v = h;
        for i in 0..64 {
            let s1 = v[4].rotate_right(6) ^ v[4].rotate_right(11) ^ v[4].rotate_right(25);
            let ch = (v[4] & v[5]) ^ (!v[4] & v[6]);
            let t1 = v[7].wrapping_add(s1).wrapping_add(ch).wrapping_add(K[i]).wrapping_add(w[i]);
            let s0 = v[0].rotate_right(2) ^ v[0].rotate_right(13) ^ v[0].rotate_right(22);
            let maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
            let t2 = s0.wrapping_add(maj);
            v = [t1.wrapping_add(t2), v[0], v[1], v[2], v[3].wrapping_add(t1), v[4], v[5], v[6]];
        }
        for (h, v) in h.iter_mut().zip(v) {
            *h = h.wrapping_add(v);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

fn bytes_of(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn linear(args: Linear) -> Result<Value, ToolError> {
    let linalg = open()?;
    let bytes = bytes_of(&args.weights);
    let hash = args.sha256.clone().unwrap_or_else(|| sha256(&bytes));
    let weights = linalg.weights(&hash, &bytes)?;
    let (xr, xc, xv) = rows_of(&args.x)?;
    let x = linalg.matrix(xr, xc, &xv)?;
    let layer =
        Dense { weights: &weights, offset: args.offset, outputs: args.outputs, inputs: args.inputs, bias: args.bias };
    let activation = if args.gelu { Activation::Gelu } else { Activation::None };
    let out = linalg.linear(&x, &layer, activation, args.add_x.then_some(&x))?;
    Ok(json!({"c": as_rows(out.to_vec()?, out.cols())}))
}

/// Hostile shapes and ranges, each sent to the host: what each answered.
fn shapes(_: NoArgs) -> Result<Value, ToolError> {
    let linalg = open()?;
    let bytes = bytes_of(&[1.0; 64]);
    let weights = linalg.weights(&sha256(&bytes), &bytes)?;
    let x = linalg.matrix(2, 8, &[1.0; 16])?;
    let y = linalg.matrix(3, 5, &[1.0; 15])?;
    let mut answers = Vec::new();
    let mut push = |r: Result<(), LinalgError>| answers.push(r.err().map_or_else(|| "ok".to_owned(), error));
    push(wit::Matrix::zeros(u32::MAX, u32::MAX).map(drop));
    push(wit::Matrix::zeros(0, 4).map(drop));
    push(wit::Matrix::from_list(2, 2, &[1.0; 3]).map(drop));
    push(linalg.matmul(&x, &y, false).map(drop));
    let dense = |offset, outputs, inputs, bias| Dense { weights: &weights, offset, outputs, inputs, bias };
    push(linalg.linear(&x, &dense(0, 8, 9, None), Activation::None, None).map(drop));
    push(linalg.linear(&x, &dense(60, 1, 8, None), Activation::None, None).map(drop));
    push(linalg.linear(&x, &dense(u64::MAX - 3, 1, 8, None), Activation::None, None).map(drop));
    push(linalg.linear(&x, &dense(0, 4, 8, Some(62)), Activation::None, None).map(drop));
    push(linalg.linear(&x, &dense(0, u32::MAX, 8, None), Activation::None, None).map(drop));
    push(linalg.linear(&x, &dense(0, 4, 8, None), Activation::None, Some(&y)).map(drop));
    push(linalg.attention(&x, &x, &x, 3, &[2]).map(drop));
    push(linalg.attention(&x, &x, &x, 2, &[1, 2]).map(drop));
    push(linalg.attention(&x, &x, &x, 2, &[0, 2]).map(drop));
    push(linalg.attention(&x, &x, &y, 2, &[2]).map(drop));
    push(linalg.layer_norm(&x, None, &weights, (60, 0), 1e-5).map(drop));
    push(linalg.layer_norm(&x, Some(&y), &weights, (0, 8), 1e-5).map(drop));
    push(linalg.layer_norm(&x, None, &weights, (0, 8), f32::NAN).map(drop));
    push(x.write_rows(1, &[1.0; 16]));
    push(wit::Matrix::zeros(2, 8).and_then(|m| m.read_rows(1, 2)).map(drop));
    // The same matrix as input and residual, and as both factors: fine.
    push(linalg.linear(&x, &dense(0, 8, 8, Some(0)), Activation::Gelu, Some(&x)).map(drop));
    Ok(json!({"answers": answers}))
}

/// Uploads gone wrong: a wrong hash, too many bytes, too few, a bad hash.
fn uploads(_: NoArgs) -> Result<Value, ToolError> {
    let bytes = bytes_of(&[2.0; 16]);
    let mut answers = Vec::new();
    let mut push = |r: Result<(), LinalgError>| answers.push(r.err().map_or_else(|| "ok".to_owned(), error));
    let wrong = "0".repeat(64);
    push(wit::Upload::start(&wrong, 64).and_then(|u| {
        u.write(&bytes)?;
        wit::Upload::finish(u).map(drop)
    }));
    push(wit::Upload::start(&sha256(&bytes), 64).and_then(|u| u.write(&[bytes.clone(), vec![0; 4]].concat())));
    push(wit::Upload::start(&sha256(&bytes), 64).and_then(|u| {
        u.write(&bytes[..60])?;
        wit::Upload::finish(u).map(drop)
    }));
    push(wit::Upload::start("not a hash", 64).map(drop));
    push(wit::Upload::start(&sha256(&bytes), 63).map(drop));
    push(wit::Upload::start(&sha256(&bytes), u64::MAX - 3).map(drop));
    // Written in odd pieces, it is whole and found again.
    push(wit::Upload::start(&sha256(&bytes), 64).and_then(|u| {
        for piece in bytes.chunks(7) {
            u.write(piece)?;
        }
        wit::Upload::finish(u).map(drop)
    }));
    push(
        wit::Weights::find(&sha256(&bytes))
            .map(|w| assert_eq!(w.len(), 16))
            .ok_or(LinalgError::InvalidArgument("not kept".into())),
    );
    Ok(json!({"answers": answers}))
}

fn zeros(args: Zeros) -> Result<Value, ToolError> {
    open()?;
    let mut held = Vec::new();
    for _ in 0..args.count {
        held.push(wit::Matrix::zeros(args.rows, args.cols)?);
    }
    Ok(json!({"held": held.len()}))
}

/// Attention over one sequence of zeros (the same matrix as q, k and v):
/// `ok`, or what the host answered.
fn attention(args: Attention) -> Result<Value, ToolError> {
    open()?;
    let x = wit::Matrix::zeros(args.rows, args.cols)?;
    let answer = match wit::attention(&x, &x, &x, args.heads, &[args.rows]) {
        Ok(_) => "ok".to_owned(),
        Err(e) => error(e),
    };
    Ok(json!({"answer": answer}))
}

/// Uploads `count` distinct weights: how many were kept, and the first error.
fn flood(args: Flood) -> Result<Value, ToolError> {
    let linalg = open()?;
    let (mut kept, mut held, mut first_error) = (0, Vec::new(), None);
    for i in 0..args.count {
        let mut values = vec![i as f32; (args.bytes / 4) as usize];
        values[0] = f32::from_bits(0x7f80_0000 ^ i.rotate_left(7));
        let bytes = bytes_of(&values);
        match linalg.weights(&sha256(&bytes), &bytes) {
            Ok(w) => {
                kept += 1;
                if args.hold {
                    held.push(w);
                }
            }
            Err(e) => {
                first_error.get_or_insert(error(e));
            }
        }
    }
    Ok(json!({"kept": kept, "error": first_error}))
}

/// `repeat` products of n × n matrices: how many were done, and why the rest were not.
fn work(args: Work) -> Result<Value, ToolError> {
    let linalg = open()?;
    let count = args.n as usize * args.n as usize;
    let a = linalg.matrix(args.n, args.n, &vec![0.5; count])?;
    let mut done = 0;
    for _ in 0..args.repeat {
        match linalg.matmul(&a, &a, false) {
            Ok(_) => done += 1,
            Err(e) => return Ok(json!({"done": done, "error": error(e)})),
        }
    }
    Ok(json!({"done": done, "error": null}))
}

fn tools() -> Vec<Tool> {
    vec![
        Tool::new("budgets", "This call's linear-algebra budgets.", budgets),
        Tool::new("matmul", "a · b (or a · bᵀ) on the host.", matmul),
        Tool::new("linear", "act(x · Wᵀ + b) (+ x) on the host, with weights uploaded first.", linear),
        Tool::new("shapes", "Hostile shapes and ranges: what the host answered each.", shapes),
        Tool::new("uploads", "Uploads gone wrong: what the host answered each.", uploads),
        Tool::new("zeros", "Holds `count` matrices of rows × cols.", zeros),
        Tool::new("flood", "Uploads many distinct weights.", flood),
        Tool::new("attention", "Attention over one sequence of zeros.", attention),
        Tool::new("work", "Many large products, one after another.", work),
    ]
}

toolmesh_guest::export_tools!(tools);
