// Shared by every kernel: prepended to each shader file when its module is created.
// Workgroup reductions over 256 invocations; masked items carry the value NEG (= f32::MIN).

const WG: u32 = 256u;
const NEG: f32 = -3.4028234663852886e38;
const TINY: f32 = 1.1754943508222875e-38;

var<workgroup> red_f: array<f32, 256>;
var<workgroup> red_i: array<u32, 256>;

// Sum of `v` over the workgroup; every invocation gets the (uniform) result.
fn wg_sum(v: f32, lid: u32) -> f32 {
    red_f[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red_f[lid] = red_f[lid] + red_f[lid + s];
        }
        workgroupBarrier();
    }
    let r = workgroupUniformLoad(&red_f[0]);
    workgroupBarrier();
    return r;
}

// Maximum of `v` over the workgroup.
fn wg_max(v: f32, lid: u32) -> f32 {
    red_f[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red_f[lid] = max(red_f[lid], red_f[lid + s]);
        }
        workgroupBarrier();
    }
    let r = workgroupUniformLoad(&red_f[0]);
    workgroupBarrier();
    return r;
}

// Arg-max of (v, i) over the workgroup: larger value wins, ties go to the smaller index.
fn wg_argmax(v: f32, i: u32, lid: u32) -> u32 {
    red_f[lid] = v;
    red_i[lid] = i;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            let ov = red_f[lid + s];
            let oi = red_i[lid + s];
            if (ov > red_f[lid] || (ov == red_f[lid] && oi < red_i[lid])) {
                red_f[lid] = ov;
                red_i[lid] = oi;
            }
        }
        workgroupBarrier();
    }
    let r = workgroupUniformLoad(&red_i[0]);
    workgroupBarrier();
    return r;
}

// Bit `j` of a row's mask words: the item was already shown.
fn bit_set(word: u32, j: u32) -> bool {
    return ((word >> (j & 31u)) & 1u) == 1u;
}

// The workgroup ids of a dispatch laid out as (x, y) to exceed 65,535 groups (the host's
// `grid`): an entry point's parameter, next to its own `local_invocation_id`.
struct Grid {
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
}

// Linear workgroup index of such a dispatch.
fn linear_group(g: Grid) -> u32 {
    return g.wg.x + g.wg.y * g.nwg.x;
}

// Whether `x` is finite, from its bits: WGSL lets compilers assume floats are never NaN or
// infinite, so comparisons cannot be trusted to detect them.
fn finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}
