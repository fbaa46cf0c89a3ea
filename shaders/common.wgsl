// Shared by every kernel: prepended to each shader file when its module is created.
// Workgroup reductions over 256 invocations (two levels of 16); masked items carry the value NEG (= f32::MIN).

const WG: u32 = 256u;
const NEG: f32 = -3.4028234663852886e38;
const TINY: f32 = 1.1754943508222875e-38;

var<workgroup> red_f: array<f32, 256>;
var<workgroup> red_i: array<u32, 256>;

// The reductions fold in two levels, RED = 16 invocations folding 16 values each, then one
// folding their 16 results: 3 barriers and a uniform load instead of a tree's 8 levels (a
// barrier is costly on software adapters, which switch between every invocation group).
const RED: u32 = 16u;   // RED * RED = WG

// Sum of `v` over the workgroup; every invocation gets the (uniform) result.
fn wg_sum(v: f32, lid: u32) -> f32 {
    red_f[lid] = v;
    workgroupBarrier();
    if (lid < RED) {
        var a = 0.0;
        for (var k = 0u; k < RED; k = k + 1u) {
            a = a + red_f[lid * RED + k];
        }
        red_f[lid * RED] = a;
    }
    workgroupBarrier();
    if (lid == 0u) {
        var a = 0.0;
        for (var k = 0u; k < RED; k = k + 1u) {
            a = a + red_f[k * RED];
        }
        red_f[0] = a;
    }
    let r = workgroupUniformLoad(&red_f[0]);
    workgroupBarrier();
    return r;
}

// Maximum of `v` over the workgroup.
fn wg_max(v: f32, lid: u32) -> f32 {
    red_f[lid] = v;
    workgroupBarrier();
    if (lid < RED) {
        var a = red_f[lid * RED];
        for (var k = 1u; k < RED; k = k + 1u) {
            a = max(a, red_f[lid * RED + k]);
        }
        red_f[lid * RED] = a;
    }
    workgroupBarrier();
    if (lid == 0u) {
        var a = red_f[0];
        for (var k = 1u; k < RED; k = k + 1u) {
            a = max(a, red_f[k * RED]);
        }
        red_f[0] = a;
    }
    let r = workgroupUniformLoad(&red_f[0]);
    workgroupBarrier();
    return r;
}

// Arg-max of (v, i) over the workgroup: larger value wins, ties go to the smaller index.
// Returns (i, bits of v) of the winner, uniform (one load of both).
var<workgroup> red_win: vec2<u32>;
fn wg_argmax(v: f32, i: u32, lid: u32) -> vec2<u32> {
    red_f[lid] = v;
    red_i[lid] = i;
    workgroupBarrier();
    if (lid < RED) {
        var bv = red_f[lid * RED];
        var bi = red_i[lid * RED];
        for (var k = 1u; k < RED; k = k + 1u) {
            let ov = red_f[lid * RED + k];
            let oi = red_i[lid * RED + k];
            if (ov > bv || (ov == bv && oi < bi)) {
                bv = ov;
                bi = oi;
            }
        }
        red_f[lid * RED] = bv;
        red_i[lid * RED] = bi;
    }
    workgroupBarrier();
    if (lid == 0u) {
        var bv = red_f[0];
        var bi = red_i[0];
        for (var k = 1u; k < RED; k = k + 1u) {
            let ov = red_f[k * RED];
            let oi = red_i[k * RED];
            if (ov > bv || (ov == bv && oi < bi)) {
                bv = ov;
                bi = oi;
            }
        }
        red_win = vec2<u32>(bi, bitcast<u32>(bv));
    }
    let r = workgroupUniformLoad(&red_win);
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
