// C = A × B for row-major f32 matrices: A is m×k, B is k×n, C is m×n.
// Each 16×16 workgroup computes one 16×16 tile of C, staging tiles of A
// and B in workgroup memory.

struct Dims {
    m: u32,
    k: u32,
    n: u32,
    pad: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<storage, read> dims: Dims;

const TILE: u32 = 16u;

var<workgroup> tile_a: array<array<f32, 16>, 16>;
var<workgroup> tile_b: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) global: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let row = global.y;
    let col = global.x;
    var sum = 0.0;
    let tiles = (dims.k + TILE - 1u) / TILE;
    for (var t = 0u; t < tiles; t++) {
        let a_col = t * TILE + local.x;
        let b_row = t * TILE + local.y;
        var va = 0.0;
        if (row < dims.m && a_col < dims.k) {
            va = a[row * dims.k + a_col];
        }
        var vb = 0.0;
        if (b_row < dims.k && col < dims.n) {
            vb = b[b_row * dims.n + col];
        }
        tile_a[local.y][local.x] = va;
        tile_b[local.y][local.x] = vb;
        workgroupBarrier();
        for (var i = 0u; i < TILE; i++) {
            sum += tile_a[local.y][i] * tile_b[i][local.x];
        }
        workgroupBarrier();
    }
    if (row < dims.m && col < dims.n) {
        c[row * dims.n + col] = sum;
    }
}
