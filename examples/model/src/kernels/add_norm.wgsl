// x = LayerNorm(x + r) · γ + β, row by row (rows of 384), with γ and β at
// `gamma` and `beta` floats into `weights`. One workgroup per row, three
// values per invocation. `total` and THREADS come from reduce.wgsl or
// reduce_subgroups.wgsl, which gpu.rs puts in front.

struct Params {
    rows: u32,
    gamma: u32,
    beta: u32,
    pad: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> r: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;

// Value `i` of the weights (the model reads `f16` weights through it too).
fn weight(i: u32) -> f32 {
    return weights[i];
}

@group(0) @binding(3) var<storage, read> p: Params;

const WIDTH: u32 = 384u;
const EPS: f32 = 1e-12;

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) i: u32) {
    let row = group.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * WIDTH;
    var v: array<f32, 3>;
    for (var c = 0u; c < 3u; c++) {
        let at = base + i + THREADS * c;
        v[c] = x[at] + r[at];
    }
    let mean = total(i, v[0] + v[1] + v[2]) / f32(WIDTH);
    var squares = 0.0;
    for (var c = 0u; c < 3u; c++) {
        squares += (v[c] - mean) * (v[c] - mean);
    }
    let variance = total(i, squares) / f32(WIDTH);
    let scale = 1.0 / sqrt(variance + EPS);
    for (var c = 0u; c < 3u; c++) {
        let d = i + THREADS * c;
        x[base + d] = (v[c] - mean) * scale * weight(p.gamma + d) + weight(p.beta + d);
    }
}
