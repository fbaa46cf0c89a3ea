// Dense layer backward, fused (dW, db and dX in one dispatch), and the one-row input gradient
// (tiling and one-row path: dense_tile.wgsl, prefixed to this file).

// 1 when the incoming gradient already is dLoss/dZ (every layer but the last: the layer above
// folded our activation's derivative into the dX it wrote), so dW and dX read one tensor
// instead of two; X_ACT is the activation that produced this layer's input (0 for the first
// layer, whose dX is dLoss/dInput), folded into the dX written here.
override DY_IS_DZ: u32 = 0u;
override X_ACT: u32 = 0u;

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

// [X, 1] at (r, i): the layer input, the constant 1 of the bias row at i = IN, 0 past it.
fn x_aug(r: u32, i: u32) -> f32 {
    if (i < IN) {
        return bx[r * IN + i];
    }
    return select(0.0, 1.0, i == IN);
}

// The products' operands for dX = dZ W^T: dZ (rows x OUT) and W^T (OUT x IN).
fn lhs(r: u32, o: u32) -> f32 {
    return dz(r, o);
}

fn lhs_row(o: u32) -> f32 {
    return dz_row(o);
}

fn rhs(o: u32, i: u32) -> f32 {
    return params[W_OFF + i * OUT + o];
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
        if (i0 + TM <= IN) {
            // a tile of X's columns only (every tile but the last): plain loads (x_aug's branch
            // is a masked load per value on SwiftShader; a branch-free x_aug for every tile, a
            // clamped load and a select, was 4% slower per training step there)
            for (var r = 0u; r < dims.rows; r = r + 1u) {
                let x = r * IN + i0;
                fma_quads(bx[x], bx[x + 1u], bx[x + 2u], bx[x + 3u], bx[x + 4u], bx[x + 5u],
                          bx[x + 6u], bx[x + 7u], bx[x + 8u], bx[x + 9u], bx[x + 10u],
                          bx[x + 11u], bx[x + 12u], bx[x + 13u], bx[x + 14u], bx[x + 15u],
                          dz(r, oc), dz(r, oc2));
            }
        } else {
            for (var r = 0u; r < dims.rows; r = r + 1u) {
                fma_quads(x_aug(r, i0), x_aug(r, i0 + 1u), x_aug(r, i0 + 2u), x_aug(r, i0 + 3u),
                          x_aug(r, i0 + 4u), x_aug(r, i0 + 5u), x_aug(r, i0 + 6u),
                          x_aug(r, i0 + 7u), x_aug(r, i0 + 8u), x_aug(r, i0 + 9u),
                          x_aug(r, i0 + 10u), x_aug(r, i0 + 11u), x_aug(r, i0 + 12u),
                          x_aug(r, i0 + 13u), x_aug(r, i0 + 14u), x_aug(r, i0 + 15u), dz(r, oc),
                          dz(r, oc2));
            }
        }
        for (var t = 0u; t < TM; t = t + 1u) {
            let i = i0 + t;
            let v = acc_row(t);
            if (i <= IN) {
                if (o < OUT) {
                    grads[W_OFF + i * OUT + o] = v.x;
                }
                if (o + NI < OUT) {
                    grads[W_OFF + i * OUT + o + NI] = v.y;
                }
            }
        }
    } else {
        let h = g - nw;
        let r0 = (h / tiles_i) * TM;
        let i = (h % tiles_i) * WX + lid.x;
        tile_product(r0, i, IN, OUT);
        for (var t = 0u; t < TM; t = t + 1u) {
            let r = r0 + t;
            let a = acc_row(t);
            if (r < dims.rows) {
                if (i < IN) {
                    var v = a.x;
                    if (X_ACT != 0u) {
                        v = v * d_act(X_ACT, bx[r * IN + i]);
                    }
                    bdx[r * IN + i] = v;
                }
                if (i + NI < IN) {
                    var v = a.y;
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

// dX = dZ W^T for the one row, without the weight gradients (what an input gradient needs):
// one input column per invocation. Grid: (ceil(IN / ROW_WG), 1).
@compute @workgroup_size(64)
fn backward_dx_row(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = wg.x * ROW_WG + lid.x;
    let sum = row_product(i, IN, OUT);
    if (i < IN) {
        var v = sum;
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
    let g = row_product(i, IN, OUT);
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
