// The sum of a value over a workgroup of THREADS invocations, by
// subgroups, where the adapter has them: each subgroup adds its values in
// one operation, and every invocation adds the subgroups' sums — two
// barriers instead of one a level of reduce.wgsl's tree. gpu.rs adds the
// subgroup built-ins to the kernel's entry point, which sets `subgroups`.

const THREADS: u32 = 128u;

var<workgroup> partial: array<f32, 128>;

// (subgroup id, number of subgroups, invocation within its subgroup).
var<private> subgroups: vec3<u32>;

// The sum of `value` over the workgroup; `i` is the local invocation index.
fn total(i: u32, value: f32) -> f32 {
    let sum = subgroupAdd(value);
    if (subgroups.z == 0u) {
        partial[subgroups.x] = sum;
    }
    workgroupBarrier();
    var all = 0.0;
    for (var s = 0u; s < subgroups.y; s++) {
        all += partial[s];
    }
    workgroupBarrier();
    return all;
}
