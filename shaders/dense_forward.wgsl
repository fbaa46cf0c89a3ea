// Dense layer forward, fused with bias and activation (tiling and one-row path: dense_tile.wgsl,
// prefixed to this file).

@group(0) @binding(2) var<storage, read> fx: array<f32>;
@group(0) @binding(3) var<storage, read_write> fy: array<f32>;

// The products' operands: X (rows x IN) and W (IN x OUT).
fn lhs(r: u32, k: u32) -> f32 {
    return fx[r * IN + k];
}

fn lhs_row(k: u32) -> f32 {
    return fx[k];
}

fn rhs(k: u32, c: u32) -> f32 {
    return params[W_OFF + k * OUT + c];
}

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
    let r0 = wg.y * TM;
    tile_product(r0, c, OUT, IN);
    let bias = params[W_OFF + IN * OUT + min(c, OUT - 1u)];
    let bias2 = params[W_OFF + IN * OUT + min(c + NI, OUT - 1u)];
    for (var i = 0u; i < TM; i = i + 1u) {
        let r = r0 + i;
        let v = acc_row(i);
        if (r < dims.rows) {
            if (c < OUT) {
                fy[r * OUT + c] = activate(v.x + bias);
            }
            if (c + NI < OUT) {
                fy[r * OUT + c + NI] = activate(v.y + bias2);
            }
        }
    }
}

// y = act(x W + b) for the one row. Grid: (ceil(OUT / ROW_WG), 1).
@compute @workgroup_size(64)
fn forward_row(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = wg.x * ROW_WG + lid.x;
    let sum = row_product(c, OUT, IN);
    if (c < OUT) {
        fy[c] = activate(sum + params[W_OFF + IN * OUT + c]);
    }
}
