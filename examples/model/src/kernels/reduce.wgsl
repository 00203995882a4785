// The sum of a value over a workgroup of THREADS invocations, for the
// kernels that reduce rows (add_norm.wgsl, pool.wgsl; gpu.rs puts this in
// front of them): a tree in workgroup memory, one barrier a level.
// reduce_subgroups.wgsl does the same with subgroup operations.

const THREADS: u32 = 128u;

var<workgroup> partial: array<f32, 128>;

// The sum of `value` over the workgroup; `i` is the local invocation index.
fn total(i: u32, value: f32) -> f32 {
    partial[i] = value;
    workgroupBarrier();
    for (var stride = THREADS / 2u; stride > 0u; stride = stride / 2u) {
        if (i < stride) {
            partial[i] += partial[i + stride];
        }
        workgroupBarrier();
    }
    let sum = partial[0];
    workgroupBarrier();
    return sum;
}
