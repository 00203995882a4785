// Multi-head self-attention over a packed batch: the rows of q, k and v
// (384 wide, 12 heads of 32) are the tokens of several sentences one
// after another; `spans[2t]` and `spans[2t + 1]` are the first row and the
// length of token t's sentence, so a token attends to its own sentence
// only (the mask of a padded batch, without the padding). One invocation
// per (token, head): softmax(q·kᵀ/√32)·v with a running maximum, in one
// pass over the keys.

struct Params {
    rows: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> spans: array<u32>;
@group(0) @binding(4) var<storage, read_write> context: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> p: Params;

const HEADS: u32 = 12u;
// vec4s per row and per head.
const ROW: u32 = 96u;
const HEAD: u32 = 8u;
const SCALE: f32 = 0.17677669529663687;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let token = id.x / HEADS;
    let head = id.x % HEADS;
    if (token >= p.rows) {
        return;
    }
    let first = spans[2u * token];
    let count = spans[2u * token + 1u];
    let at = token * ROW + head * HEAD;
    var query: array<vec4<f32>, 8>;
    for (var d = 0u; d < HEAD; d++) {
        query[d] = q[at + d] * SCALE;
    }
    var best = -3.0e38;
    var sum = 0.0;
    var acc: array<vec4<f32>, 8>;
    for (var j = first; j < first + count; j++) {
        let key = j * ROW + head * HEAD;
        var score = 0.0;
        for (var d = 0u; d < HEAD; d++) {
            score += dot(query[d], k[key + d]);
        }
        let top = max(best, score);
        let rescale = exp(best - top);
        let weight = exp(score - top);
        sum = sum * rescale + weight;
        for (var d = 0u; d < HEAD; d++) {
            acc[d] = acc[d] * rescale + v[key + d] * weight;
        }
        best = top;
    }
    for (var d = 0u; d < HEAD; d++) {
        context[at + d] = acc[d] / sum;
    }
}
