// Dense layers: forward fused with bias and activation; backward fused (dW, db and dX in one
// dispatch). A layer's block in `params` is (IN + 1) x OUT row-major: W then the bias row, so
// the bias is the weight of an implicit constant-1 input column.
//
// Tiling (both entry points): a workgroup is WX = 64 invocations laid along the columns of the
// result; each invocation owns one column and TM = 16 rows of it, i.e. 16 accumulators in
// registers (a 16 x 64 tile per workgroup). The row index of every operand load comes from the
// workgroup id and loop counters only, so those loads are uniform across the workgroup (one
// broadcast load on GPUs, one scalar load per SIMD vector on CPU implementations such as
// lavapipe and SwiftShader) and are reused by all 16 accumulators' partners; the column
// operand is loaded once per k and reused 16 times, contiguously across invocations
// (coalesced). No workgroup memory and no barriers: the batch is small (K of dW is the batch)
// and every operand row fits in cache. Rows/columns past the edge are clamped for loads (always
// in bounds) and skipped for stores. Keep WX and TM in sync with src/engine/gpu/mod.rs.

override IN: u32 = 1u;
override OUT: u32 = 1u;
override ACT: u32 = 0u;      // 0 identity, 1 relu, 2 sigmoid
override W_OFF: u32 = 0u;    // offset of this layer's block in params

struct Dims {
    rows: u32,
    want_dx: u32,      // 0 for the first layer: nobody needs dLoss/dInput
    _pad1: u32,
    _pad2: u32,
}

const WX: u32 = 64u;   // invocations per workgroup = columns per tile
const TM: u32 = 16u;   // rows per invocation = rows per tile

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> params: array<f32>;

// forward
@group(0) @binding(2) var<storage, read> fx: array<f32>;
@group(0) @binding(3) var<storage, read_write> fy: array<f32>;

fn activate(v: f32) -> f32 {
    switch ACT {
        case 1u: { return max(v, 0.0); }
        case 2u: { return 1.0 / (1.0 + exp(-v)); }
        default: { return v; }
    }
}

// Y[rows x OUT] = act(X[rows x IN] W + b). Grid: (ceil(OUT / WX), ceil(rows / TM)).
@compute @workgroup_size(64)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = wg.x * WX + lid.x;
    let cc = min(c, OUT - 1u);
    let r0 = wg.y * TM;
    var xrow: array<u32, TM>;
    var acc: array<f32, TM>;
    for (var i = 0u; i < TM; i = i + 1u) {
        xrow[i] = min(r0 + i, dims.rows - 1u) * IN;
        acc[i] = 0.0;
    }
    for (var k = 0u; k < IN; k = k + 1u) {
        let b = params[W_OFF + k * OUT + cc];
        for (var i = 0u; i < TM; i = i + 1u) {
            acc[i] = acc[i] + fx[xrow[i] + k] * b;
        }
    }
    let bias = params[W_OFF + IN * OUT + cc];
    if (c < OUT) {
        for (var i = 0u; i < TM; i = i + 1u) {
            let r = r0 + i;
            if (r < dims.rows) {
                fy[r * OUT + c] = activate(acc[i] + bias);
            }
        }
    }
}

// backward
@group(0) @binding(4) var<storage, read> bx: array<f32>;      // layer input, rows x IN
@group(0) @binding(5) var<storage, read> by: array<f32>;      // layer output, rows x OUT
@group(0) @binding(6) var<storage, read> bdy: array<f32>;     // dLoss/dY, rows x OUT
@group(0) @binding(7) var<storage, read_write> grads: array<f32>;
@group(0) @binding(8) var<storage, read_write> bdx: array<f32>; // dLoss/dX, rows x IN

// dLoss/dZ at (r, o): the upstream gradient times the activation's derivative from its output.
fn dz(r: u32, o: u32) -> f32 {
    let i = r * OUT + o;
    let y = by[i];
    var d = 1.0;
    switch ACT {
        case 1u: { d = select(0.0, 1.0, y > 0.0); }
        case 2u: { d = y * (1.0 - y); }
        default: {}
    }
    return bdy[i] * d;
}

// Workgroups [0, nw) compute TM x WX tiles of dW_aug = [X, 1]^T dZ ((IN+1) x OUT, bias row
// included: TM rows i of dW per invocation, uniform, its column o per lane, K = the batch);
// workgroups [nw, nw + nx) compute TM x WX tiles of dX = dZ W^T (rows x IN: TM batch rows per
// invocation, uniform, its input column per lane, K = OUT) when dims.want_dx.
// Grid: nw = ceil((IN+1) / TM) * ceil(OUT / WX), nx = ceil(rows / TM) * ceil(IN / WX).
@compute @workgroup_size(64)
fn backward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let g = linear_group(wg, nwg);
    let tiles_o = (OUT + WX - 1u) / WX;
    let nw = ((IN + 1u + TM - 1u) / TM) * tiles_o;
    let tiles_i = (IN + WX - 1u) / WX;
    var nx = 0u;
    if (dims.want_dx != 0u) {
        nx = ((dims.rows + TM - 1u) / TM) * tiles_i;
    }
    if (g >= nw + nx) {
        return;
    }
    var acc: array<f32, TM>;
    for (var t = 0u; t < TM; t = t + 1u) {
        acc[t] = 0.0;
    }
    if (g < nw) {
        let i0 = (g / tiles_o) * TM;
        let o = (g % tiles_o) * WX + lid.x;
        let oc = min(o, OUT - 1u);
        for (var r = 0u; r < dims.rows; r = r + 1u) {
            let d = dz(r, oc);
            for (var t = 0u; t < TM; t = t + 1u) {
                let i = i0 + t;
                var x = 1.0;
                if (i < IN) {
                    x = bx[r * IN + i];
                }
                acc[t] = acc[t] + x * d;
            }
        }
        if (o < OUT) {
            for (var t = 0u; t < TM; t = t + 1u) {
                let i = i0 + t;
                if (i <= IN) {
                    grads[W_OFF + i * OUT + o] = acc[t];
                }
            }
        }
    } else {
        let h = g - nw;
        let r0 = (h / tiles_i) * TM;
        let i = (h % tiles_i) * WX + lid.x;
        let ic = min(i, IN - 1u);
        var rr: array<u32, TM>;
        for (var t = 0u; t < TM; t = t + 1u) {
            rr[t] = min(r0 + t, dims.rows - 1u);
        }
        for (var o = 0u; o < OUT; o = o + 1u) {
            let w = params[W_OFF + ic * OUT + o];
            for (var t = 0u; t < TM; t = t + 1u) {
                acc[t] = acc[t] + dz(rr[t], o) * w;
            }
        }
        if (i < IN) {
            for (var t = 0u; t < TM; t = t + 1u) {
                let r = r0 + t;
                if (r < dims.rows) {
                    bdx[r * IN + i] = acc[t];
                }
            }
        }
    }
}
