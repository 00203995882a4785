// Mean pooling and L2 normalisation: sentence s of the batch is rows
// spans[2s] .. spans[2s] + spans[2s + 1] of x (384 wide); its unit mean
// vector goes to row `first + s` of `out`. One workgroup per sentence.
// `total` and THREADS come from reduce.wgsl or reduce_subgroups.wgsl,
// which gpu.rs puts in front.

struct Params {
    sentences: u32,
    first: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> spans: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> p: Params;

const WIDTH: u32 = 384u;

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) i: u32) {
    let s = group.x;
    if (s >= p.sentences) {
        return;
    }
    let first = spans[2u * s];
    let count = spans[2u * s + 1u];
    var mean: array<f32, 3>;
    for (var row = first; row < first + count; row++) {
        for (var c = 0u; c < 3u; c++) {
            mean[c] += x[row * WIDTH + i + THREADS * c];
        }
    }
    var squares = 0.0;
    for (var c = 0u; c < 3u; c++) {
        mean[c] = mean[c] / f32(max(count, 1u));
        squares += mean[c] * mean[c];
    }
    let norm = max(sqrt(total(i, squares)), 1e-12);
    for (var c = 0u; c < 3u; c++) {
        out[(p.first + s) * WIDTH + i + THREADS * c] = mean[c] / norm;
    }
}
