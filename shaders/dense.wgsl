// Dense layers: forward fused with bias and activation; backward fused (dW, db and dX in one
// dispatch). A layer's block in `params` is (IN + 1) x OUT row-major: W then the bias row, so
// the bias is the weight of an implicit constant-1 input column.
//
// Tiling (both entry points): a workgroup is NI = 32 invocations laid along the WX = 64 columns
// of a 16 x 64 tile of the result; each invocation owns two columns (c and c + 32) and TM = 16
// rows of them, i.e. 32 accumulators in registers as 2 x 4 vec4 "row quads". The operand indexed by
// the tile's rows (X for the forward, dZ for dX, X^T for dW) is staged in workgroup memory in
// chunks of KC = 128 values of k, transposed as [k][quad], with coalesced loads; the inner loop
// then reads 4 vec4 at one workgroup-uniform address (a broadcast) and two elements of the
// column operand per k, contiguous across invocations (coalesced), for 32 FMAs. Two barriers
// per chunk: layers up to 128 wide need one chunk, the batch (the K of dW) needs one per 128
// rows. Rows/columns past the edge are clamped or zeroed for loads and skipped for stores.
// Keep WX and TM in sync with src/engine/gpu/mod.rs.

override IN: u32 = 1u;
override OUT: u32 = 1u;
override ACT: u32 = 0u;      // 0 identity, 1 relu, 2 sigmoid
override W_OFF: u32 = 0u;    // offset of this layer's block in params
// backward only: 1 when the incoming gradient already is dLoss/dZ (every layer but the last:
// the layer above folded our activation's derivative into the dX it wrote), so dW and dX read
// one tensor instead of two; X_ACT is the activation that produced this layer's input (0 for
// the first layer, whose dX is dLoss/dInput), folded into the dX written here.
override DY_IS_DZ: u32 = 0u;
override X_ACT: u32 = 0u;

const NI: u32 = 32u;   // invocations per workgroup
const WX: u32 = 64u;   // columns per tile: two per invocation, NI apart
const TM: u32 = 16u;   // rows per invocation = rows per tile (4 vec4 quads)
const KC: u32 = 128u;  // values of k staged per chunk

var<workgroup> stage: array<vec4<f32>, 512>;   // KC x TM: [k][quad], 8 KiB
// The invocation's 2 x TM accumulators: its two columns' 4 row quads each.
var<private> acc: array<vec4<f32>, 4>;
var<private> acc2: array<vec4<f32>, 4>;

// acc += stage[k] * a and acc2 += stage[k] * b over the 4 row quads: 32 FMAs for one k.
fn fma_quads(k: u32, a: f32, b: f32) {
    for (var q = 0u; q < 4u; q = q + 1u) {
        let x = stage[k * 4u + q];
        acc[q] = acc[q] + x * a;
        acc2[q] = acc2[q] + x * b;
    }
}

@group(0) @binding(0) var<uniform> dims: DenseDims;
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
@compute @workgroup_size(32)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = wg.x * WX + lid.x;
    let cc = min(c, OUT - 1u);
    let cc2 = min(c + NI, OUT - 1u);
    let r0 = wg.y * TM;
    for (var k0 = 0u; k0 < IN; k0 = k0 + KC) {
        let kn = min(KC, IN - k0);
        // stage X[r0 .. r0 + TM][k0 .. k0 + KC] as [k][quad]; lanes read consecutive k
        for (var idx = lid.x; idx < KC * TM; idx = idx + NI) {
            let kk = idx % KC;
            let i = idx / KC;
            var v = 0.0;
            if (kk < kn) {
                v = fx[min(r0 + i, dims.rows - 1u) * IN + k0 + kk];
            }
            stage[kk * 4u + i / 4u][i % 4u] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < kn; kk = kk + 1u) {
            let b = params[W_OFF + (k0 + kk) * OUT + cc];
            let b2 = params[W_OFF + (k0 + kk) * OUT + cc2];
            fma_quads(kk, b, b2);
        }
        workgroupBarrier();
    }
    let bias = params[W_OFF + IN * OUT + cc];
    let bias2 = params[W_OFF + IN * OUT + cc2];
    for (var i = 0u; i < TM; i = i + 1u) {
        let r = r0 + i;
        if (r < dims.rows) {
            if (c < OUT) {
                fy[r * OUT + c] = activate(acc[i / 4u][i % 4u] + bias);
            }
            if (c + NI < OUT) {
                fy[r * OUT + c + NI] = activate(acc2[i / 4u][i % 4u] + bias2);
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

// Derivative of activation `act` from its output y.
fn d_act(act: u32, y: f32) -> f32 {
    switch act {
        case 1u: { return select(0.0, 1.0, y > 0.0); }
        case 2u: { return y * (1.0 - y); }
        default: { return 1.0; }
    }
}

// dLoss/dZ at (r, o): the upstream gradient times the activation's derivative from its output
// (already applied by the layer above when DY_IS_DZ).
fn dz(r: u32, o: u32) -> f32 {
    let i = r * OUT + o;
    if (DY_IS_DZ != 0u) {
        return bdy[i];
    }
    return bdy[i] * d_act(ACT, by[i]);
}

// Workgroups [0, nw) compute TM x WX tiles of dW_aug = [X, 1]^T dZ ((IN+1) x OUT, bias row
// included: TM rows i of dW per invocation, uniform, its two columns o per lane, K = the
// batch); workgroups [nw, nw + nx) compute TM x WX tiles of dX = dZ W^T (rows x IN: TM batch
// rows per invocation, uniform, its two input columns per lane, K = OUT) when dims.want_dx.
// Grid: nw = ceil((IN+1) / TM) * ceil(OUT / WX), nx = ceil(rows / TM) * ceil(IN / WX).
@compute @workgroup_size(32)
fn backward(grid: Grid, @builtin(local_invocation_id) lid: vec3<u32>) {
    let g = linear_group(grid);
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
    if (g < nw) {
        let i0 = (g / tiles_o) * TM;
        let o = (g % tiles_o) * WX + lid.x;
        let oc = min(o, OUT - 1u);
        let oc2 = min(o + NI, OUT - 1u);
        for (var b0 = 0u; b0 < dims.rows; b0 = b0 + KC) {
            let bn = min(KC, dims.rows - b0);
            // stage [X, 1][b0 .. b0 + KC][i0 .. i0 + TM] as [row][quad]; lanes read consecutive i
            for (var idx = lid.x; idx < KC * TM; idx = idx + NI) {
                let t = idx % TM;
                let rr = idx / TM;
                let i = i0 + t;
                var v = 0.0;
                if (rr < bn) {
                    if (i < IN) {
                        v = bx[(b0 + rr) * IN + i];
                    } else if (i == IN) {
                        v = 1.0;
                    }
                }
                stage[rr * 4u + t / 4u][t % 4u] = v;
            }
            workgroupBarrier();
            for (var rr = 0u; rr < bn; rr = rr + 1u) {
                let d = dz(b0 + rr, oc);
                let d2 = dz(b0 + rr, oc2);
                fma_quads(rr, d, d2);
            }
            workgroupBarrier();
        }
        for (var t = 0u; t < TM; t = t + 1u) {
            let i = i0 + t;
            if (i <= IN) {
                if (o < OUT) {
                    grads[W_OFF + i * OUT + o] = acc[t / 4u][t % 4u];
                }
                if (o + NI < OUT) {
                    grads[W_OFF + i * OUT + o + NI] = acc2[t / 4u][t % 4u];
                }
            }
        }
    } else {
        let h = g - nw;
        let r0 = (h / tiles_i) * TM;
        let i = (h % tiles_i) * WX + lid.x;
        let ic = min(i, IN - 1u);
        let ic2 = min(i + NI, IN - 1u);
        for (var o0 = 0u; o0 < OUT; o0 = o0 + KC) {
            let on = min(KC, OUT - o0);
            // stage dZ[r0 .. r0 + TM][o0 .. o0 + KC] as [o][quad]; lanes read consecutive o
            for (var idx = lid.x; idx < KC * TM; idx = idx + NI) {
                let oo = idx % KC;
                let t = idx / KC;
                var v = 0.0;
                if (oo < on) {
                    v = dz(min(r0 + t, dims.rows - 1u), o0 + oo);
                }
                stage[oo * 4u + t / 4u][t % 4u] = v;
            }
            workgroupBarrier();
            for (var oo = 0u; oo < on; oo = oo + 1u) {
                let w = params[W_OFF + ic * OUT + o0 + oo];
                let w2 = params[W_OFF + ic2 * OUT + o0 + oo];
                fma_quads(oo, w, w2);
            }
            workgroupBarrier();
        }
        for (var t = 0u; t < TM; t = t + 1u) {
            let r = r0 + t;
            if (r < dims.rows) {
                if (i < IN) {
                    var v = acc[t / 4u][t % 4u];
                    if (X_ACT != 0u) {
                        v = v * d_act(X_ACT, bx[r * IN + i]);
                    }
                    bdx[r * IN + i] = v;
                }
                if (i + NI < IN) {
                    var v = acc2[t / 4u][t % 4u];
                    if (X_ACT != 0u) {
                        v = v * d_act(X_ACT, bx[r * IN + i + NI]);
                    }
                    bdx[r * IN + i + NI] = v;
                }
            }
        }
    }
}

// The last layer of a one-row input gradient: its dLoss/dY is the sum of SHARES vectors (loss.wgsl
// head_back's per-chunk shares, so no dispatch sums them first); 0: one vector.
override SHARES: u32 = 0u;

// dLoss/dZ at output o of the one row (see SHARES).
fn dz_row(o: u32) -> f32 {
    if (SHARES == 0u) {
        return dz(0u, o);
    }
    var g = 0.0;
    for (var s = 0u; s < SHARES; s = s + 1u) {
        g = g + bdy[s * OUT + o];
    }
    return g * d_act(ACT, by[o]);
}

// One-row path (a matrix-vector product, for a batch of one row: the 16-row tiles above would
// compute 15 rows for nothing). Both entry points give each of ROW_WG = 64 invocations one
// output value and stage the shared vector in workgroup memory in chunks of ROW_KC values.
const ROW_WG: u32 = 64u;
const ROW_KC: u32 = 2048u;
var<workgroup> row_v: array<f32, 2048>;   // 8 KiB

// y = act(x W + b) for the one row. Grid: (ceil(OUT / ROW_WG), 1).
@compute @workgroup_size(64)
fn forward_row(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = wg.x * ROW_WG + lid.x;
    let cc = min(c, OUT - 1u);
    var acc = 0.0;
    for (var k0 = 0u; k0 < IN; k0 = k0 + ROW_KC) {
        let kn = min(ROW_KC, IN - k0);
        for (var kk = lid.x; kk < kn; kk = kk + ROW_WG) {
            row_v[kk] = fx[k0 + kk];
        }
        workgroupBarrier();
        for (var kk = 0u; kk < kn; kk = kk + 1u) {
            acc = acc + row_v[kk] * params[W_OFF + (k0 + kk) * OUT + cc];
        }
        workgroupBarrier();
    }
    if (c < OUT) {
        fy[c] = activate(acc + params[W_OFF + IN * OUT + c]);
    }
}

// (dZ W^T)[i] for the one row: input column i of this invocation (clamped at the edge); call in
// uniform control flow (barriers).
fn dx_row(i: u32, lid: u32) -> f32 {
    let ic = min(i, IN - 1u);
    var acc = 0.0;
    for (var o0 = 0u; o0 < OUT; o0 = o0 + ROW_KC) {
        let on = min(ROW_KC, OUT - o0);
        for (var oo = lid; oo < on; oo = oo + ROW_WG) {
            row_v[oo] = dz_row(o0 + oo);
        }
        workgroupBarrier();
        for (var oo = 0u; oo < on; oo = oo + 1u) {
            acc = acc + row_v[oo] * params[W_OFF + ic * OUT + o0 + oo];
        }
        workgroupBarrier();
    }
    return acc;
}

// dX = dZ W^T for the one row, without the weight gradients (what an input gradient needs):
// one input column per invocation. Grid: (ceil(IN / ROW_WG), 1).
@compute @workgroup_size(64)
fn backward_dx_row(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = wg.x * ROW_WG + lid.x;
    let acc = dx_row(i, lid.x);
    if (i < IN) {
        var v = acc;
        if (X_ACT != 0u) {
            v = v * d_act(X_ACT, bx[i]);
        }
        bdx[i] = v;
    }
}

// The first layer of a session's interaction: its dX = dLoss/dInput (the context's gradient,
// read back), then, as the invocation that computed it, one Adam step (no clipping) on the
// session's context (the first cd.context values of the network input), so that the next
// forward pass runs in the same submit; the rest of the input becomes the next feedback summary.
// The same arithmetic as the host's `adam_update`. Grid: (ceil(IN / ROW_WG), 1).
@group(0) @binding(9) var<uniform> cd: ContextDims;
@group(0) @binding(10) var<storage, read_write> ctx_in: array<f32>;
@group(0) @binding(11) var<storage, read_write> ctx_m: array<f32>;
@group(0) @binding(12) var<storage, read_write> ctx_v: array<f32>;
@group(0) @binding(13) var<storage, read> ctx_tail: array<f32>;

@compute @workgroup_size(64)
fn backward_dx_row_context(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = wg.x * ROW_WG + lid.x;
    let g = dx_row(i, lid.x);
    if (i >= IN) {
        return;
    }
    bdx[i] = g;
    if (i >= cd.context) {
        ctx_in[i] = ctx_tail[i - cd.context];
        return;
    }
    let t = f32(cd.step);
    let c1 = 1.0 - pow(cd.beta1, t);
    let c2 = 1.0 - pow(cd.beta2, t);
    let m = cd.beta1 * ctx_m[i] + (1.0 - cd.beta1) * g;
    let v = cd.beta2 * ctx_v[i] + (1.0 - cd.beta2) * g * g;
    ctx_m[i] = m;
    ctx_v[i] = v;
    let p = ctx_in[i];
    ctx_in[i] = p - cd.lr * ((m / c1) / (sqrt(v / c2) + cd.eps) + cd.weight_decay * p);
}
