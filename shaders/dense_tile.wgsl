// The dense layers' shared tiling, prefixed to dense_forward.wgsl and dense_backward.wgsl. Each
// of those defines the operands of its products: `lhs(r, k)` (indexed by the result's rows),
// `rhs(k, c)` (by its columns) and `lhs_row(k)` (the one-row path's vector). A layer's block
// in `params` is (IN + 1) x OUT row-major: W then the bias row, so the bias is the weight of an
// implicit constant-1 input column.
//
// Tiling (`tile_product`): a workgroup is NI = 32 invocations laid along the WX = 64 columns
// of a 16 x 64 tile of the result; each invocation owns two columns (c and c + 32) and TM = 16
// rows of them, i.e. 32 accumulators in registers as 2 x 4 vec4 "row quads". The operand indexed by
// the tile's rows (X for the forward, dZ for dX; dense_backward.wgsl's dW loop stages [X, 1]^T
// the same way) is staged in workgroup memory in
// chunks of KC = 128 values of k, transposed as [k][quad], with coalesced loads; the inner loop
// then reads 4 vec4 at one workgroup-uniform address (a broadcast) and two elements of the
// column operand per k, contiguous across invocations (coalesced), for 32 FMAs. Two barriers
// per chunk: layers up to 128 wide need one chunk, the batch (the K of dW) needs one per 128
// rows. Rows/columns past the edge are clamped or zeroed for loads and skipped for stores.
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
const KC: u32 = 128u;  // values of k staged per chunk
const ROW_WG: u32 = 64u;

var<workgroup> stage: array<vec4<f32>, 512>;   // KC x TM: [k][quad], 8 KiB
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

// a += stage[k] * a and b += stage[k] * b over the 4 row quads: 32 FMAs for one k.
fn fma_quads(k: u32, a: f32, b: f32) {
    let x0 = stage[k * 4u];
    let x1 = stage[k * 4u + 1u];
    let x2 = stage[k * 4u + 2u];
    let x3 = stage[k * 4u + 3u];
    a0 = a0 + x0 * a;
    a1 = a1 + x1 * a;
    a2 = a2 + x2 * a;
    a3 = a3 + x3 * a;
    b0 = b0 + x0 * b;
    b1 = b1 + x1 * b;
    b2 = b2 + x2 * b;
    b3 = b3 + x3 * b;
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

// acc, acc2 += lhs[r0 .. r0 + TM][0 .. kdim] rhs[0 .. kdim][c and c + NI] (rows past dims.rows
// clamped, columns past ncols clamped). Call in uniform control flow (barriers).
fn tile_product(r0: u32, c: u32, ncols: u32, kdim: u32, lane: u32) {
    let cc = min(c, ncols - 1u);
    let cc2 = min(c + NI, ncols - 1u);
    for (var k0 = 0u; k0 < kdim; k0 = k0 + KC) {
        let kn = min(KC, kdim - k0);
        // stage lhs[r0 .. r0 + TM][k0 .. k0 + KC] as [k][quad]; lanes read consecutive k
        for (var idx = lane; idx < KC * TM; idx = idx + NI) {
            let kk = idx % KC;
            let t = idx / KC;
            var v = 0.0;
            if (kk < kn) {
                v = lhs(min(r0 + t, dims.rows - 1u), k0 + kk);
            }
            stage[kk * 4u + t / 4u][t % 4u] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < kn; kk = kk + 1u) {
            fma_quads(kk, rhs(k0 + kk, cc), rhs(k0 + kk, cc2));
        }
        workgroupBarrier();
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
