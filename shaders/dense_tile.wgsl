// The dense layers' shared tiling, prefixed to dense_forward.wgsl and dense_backward.wgsl. Each
// of those defines the operands of its products: `lhs(r, k)` (indexed by the result's rows),
// `rhs(k, c)` (by its columns) and `lhs_row(k)` (the one-row path's vector). A layer's block
// in `params` is (IN + 1) x OUT row-major: W then the bias row, so the bias is the weight of an
// implicit constant-1 input column.
//
// Tiling (`tile_product`): a workgroup is NI = 32 invocations laid along the WX = 64 columns
// of a 16 x 64 tile of the result; each invocation owns two columns (c and c + 32) and TM = 16
// rows of them, i.e. 32 accumulators in registers as 2 x 4 vec4 "row quads". Per k it reads the
// 16 values of the operand indexed by the tile's rows (X for the forward, dZ for dX,
// dense_backward.wgsl's dW loop [X, 1]^T) at workgroup-uniform addresses (broadcasts) and two
// elements of the column operand, contiguous across invocations (coalesced), for 32 FMAs. No
// workgroup memory and no barriers: a software adapter (SwiftShader) runs the invocations of a
// workgroup with barriers as coroutines, and the staging they served cost more than it saved
// (the training step's dense kernels 14% faster without). Rows/columns past the edge are
// clamped for loads and skipped for stores.
// Keep WX and TM in sync with src/engine/gpu/mod.rs.
//
// One-row path (`row_product`, a matrix-vector product for a batch of one row: the 16-row tiles
// would compute 15 rows for nothing): each of ROW_WG = 64 invocations computes one output value.

override IN: u32 = 1u;
override OUT: u32 = 1u;
override ACT: u32 = 0u;      // 0 identity, 1 relu, 2 sigmoid
override W_OFF: u32 = 0u;    // offset of this layer's block in params

const NI: u32 = 32u;   // invocations per workgroup
const WX: u32 = 64u;   // columns per tile: two per invocation, NI apart
const TM: u32 = 16u;   // rows per invocation = rows per tile (4 vec4 quads)
const ROW_WG: u32 = 64u;

// The invocation's 2 x TM accumulators: its two columns' 4 row quads each, as eight named
// vectors rather than arrays: a dynamically indexed private array lives in memory on software
// adapters (SwiftShader), which made every FMA a load and a store.
var<private> a0: vec4<f32>;
var<private> a1: vec4<f32>;
var<private> a2: vec4<f32>;
var<private> a3: vec4<f32>;
var<private> b0: vec4<f32>;
var<private> b1: vec4<f32>;
var<private> b2: vec4<f32>;
var<private> b3: vec4<f32>;

@group(0) @binding(0) var<uniform> dims: DenseDims;
@group(0) @binding(1) var<storage, read> params: array<f32>;

// The 16 rows' values x0 .. x15 of one k times the two columns' a and b, into the
// accumulators: 32 FMAs.
fn fma_quads(x0: f32, x1: f32, x2: f32, x3: f32, x4: f32, x5: f32, x6: f32, x7: f32, x8: f32,
             x9: f32, x10: f32, x11: f32, x12: f32, x13: f32, x14: f32, x15: f32, a: f32,
             b: f32) {
    let q0 = vec4(x0, x1, x2, x3);
    let q1 = vec4(x4, x5, x6, x7);
    let q2 = vec4(x8, x9, x10, x11);
    let q3 = vec4(x12, x13, x14, x15);
    a0 = a0 + q0 * a;
    a1 = a1 + q1 * a;
    a2 = a2 + q2 * a;
    a3 = a3 + q3 * a;
    b0 = b0 + q0 * b;
    b1 = b1 + q1 * b;
    b2 = b2 + q2 * b;
    b3 = b3 + q3 * b;
}

// Row i of the tile: the accumulators of the invocation's two columns.
fn acc_row(i: u32) -> vec2<f32> {
    var x = a0;
    var y = b0;
    switch i / 4u {
        case 1u: { x = a1; y = b1; }
        case 2u: { x = a2; y = b2; }
        case 3u: { x = a3; y = b3; }
        default: {}
    }
    return vec2<f32>(x[i % 4u], y[i % 4u]);
}

// The accumulators += lhs[r0 .. r0 + TM][0 .. kdim] rhs[0 .. kdim][c and c + NI] (rows past
// dims.rows clamped, columns past ncols clamped).
fn tile_product(r0: u32, c: u32, ncols: u32, kdim: u32) {
    let cc = min(c, ncols - 1u);
    let cc2 = min(c + NI, ncols - 1u);
    let last = dims.rows - 1u;
    for (var k = 0u; k < kdim; k = k + 1u) {
        fma_quads(lhs(min(r0, last), k), lhs(min(r0 + 1u, last), k), lhs(min(r0 + 2u, last), k),
                  lhs(min(r0 + 3u, last), k), lhs(min(r0 + 4u, last), k), lhs(min(r0 + 5u, last), k),
                  lhs(min(r0 + 6u, last), k), lhs(min(r0 + 7u, last), k), lhs(min(r0 + 8u, last), k),
                  lhs(min(r0 + 9u, last), k), lhs(min(r0 + 10u, last), k),
                  lhs(min(r0 + 11u, last), k), lhs(min(r0 + 12u, last), k),
                  lhs(min(r0 + 13u, last), k), lhs(min(r0 + 14u, last), k),
                  lhs(min(r0 + 15u, last), k), rhs(k, cc), rhs(k, cc2));
    }
}

// sum_k lhs_row(k) rhs(k, c) over k < kdim for the one row, column c clamped to ncols. Every
// invocation reads the same lhs_row(k) (a broadcast load): no workgroup staging, no barriers.
fn row_product(c: u32, ncols: u32, kdim: u32) -> f32 {
    let cc = min(c, ncols - 1u);
    var sum = 0.0;
    for (var k = 0u; k < kdim; k = k + 1u) {
        sum = sum + lhs_row(k) * rhs(k, cc);
    }
    return sum;
}
