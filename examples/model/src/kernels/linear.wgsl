// A dense layer: out = act(x · Wᵀ + b), for x row-major (rows × inputs)
// and W row-major (outputs × inputs) at `w_offset` floats into `weights`,
// b at `b_offset`; act is the identity, or GELU when `gelu` is 1.
//
// Each 16×16 workgroup computes a 64×64 tile of `out`, a 4×4 block per
// invocation held in four vec4 accumulators, staging 64×16 slices of x and
// W in workgroup memory as vec4s of four rows (of x) or four outputs (of W).

struct Params {
    rows: u32,
    inputs: u32,
    outputs: u32,
    w_offset: u32,
    b_offset: u32,
    gelu: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weights: array<f32>;

// Value `i` of the weights (the model reads `f16` weights through it too).
fn weight(i: u32) -> f32 {
    return weights[i];
}
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> p: Params;

const TILE: u32 = 64u;
const DEPTH: u32 = 16u;

// xs[k][g]: x at column k0 + k of rows 4g … 4g + 3 of the tile; ws alike
// for outputs.
var<workgroup> xs: array<array<vec4<f32>, 16>, 16>;
var<workgroup> ws: array<array<vec4<f32>, 16>, 16>;

fn x_at(row: u32, k: u32) -> f32 {
    if (row < p.rows && k < p.inputs) {
        return x[row * p.inputs + k];
    }
    return 0.0;
}

fn w_at(col: u32, k: u32) -> f32 {
    if (col < p.outputs && k < p.inputs) {
        return weight(p.w_offset + col * p.inputs + k);
    }
    return 0.0;
}

// The error function: the Chebyshev fit of erfc from Numerical Recipes
// (relative error below 1.2e-7), as `erf` in cpu.rs.
fn erf(v: f32) -> f32 {
    let z = abs(v);
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.2655122 + t * (1.0000237 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
        + t * (0.27886807 + t * (-1.1352040 + t * (1.4885159 + t * (-0.82215223 + t * 0.17087277))))))));
    let erfc = t * exp(poly);
    return select(erfc - 1.0, 1.0 - erfc, v >= 0.0);
}

fn gelu(v: f32) -> f32 {
    return 0.5 * v * (1.0 + erf(v * 0.70710678));
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let row0 = group.y * TILE;
    let col0 = group.x * TILE;
    let flat = local.y * 16u + local.x;
    // What this invocation stages: column `k` of rows (outputs) 4g … 4g + 3.
    let k = flat % DEPTH;
    let g = flat / DEPTH;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.inputs; k0 += DEPTH) {
        let r = row0 + 4u * g;
        xs[k][g] = vec4<f32>(x_at(r, k0 + k), x_at(r + 1u, k0 + k), x_at(r + 2u, k0 + k), x_at(r + 3u, k0 + k));
        let c = col0 + 4u * g;
        ws[k][g] = vec4<f32>(w_at(c, k0 + k), w_at(c + 1u, k0 + k), w_at(c + 2u, k0 + k), w_at(c + 3u, k0 + k));
        workgroupBarrier();
        for (var kk = 0u; kk < DEPTH; kk++) {
            let a = xs[kk][local.y];
            let b = ws[kk][local.x];
            acc0 += a.x * b;
            acc1 += a.y * b;
            acc2 += a.z * b;
            acc3 += a.w * b;
        }
        workgroupBarrier();
    }
    let row = row0 + 4u * local.y;
    let col = col0 + 4u * local.x;
    store(row, col, acc0);
    store(row + 1u, col, acc1);
    store(row + 2u, col, acc2);
    store(row + 3u, col, acc3);
}

// Writes four outputs of `row` from `col` on, with bias and activation.
fn store(row: u32, col: u32, values: vec4<f32>) {
    if (row >= p.rows) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (col + j < p.outputs) {
            var v = values[j] + weight(p.b_offset + col + j);
            if (p.gelu == 1u) {
                v = gelu(v);
            }
            out[row * p.outputs + col + j] = v;
        }
    }
}
