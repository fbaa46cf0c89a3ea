// Fisher-vector products of the softmax policy over items, and conjugate gradient on them, all
// on the device (see src/engine/fisher.rs).
//
// fisher_head: one workgroup per row r. With the MLP output u and its tangent du (tangent.wgsl),
// logits z_j = u·e_j / τ and their tangents t_j = du·e_j / τ over the open items, p = softmax(z):
//   dL/du = (1/B) (1/τ) Σ_j p_j (t_j − Σ_k p_k t_k) e_j
// i.e. the softmax covariance applied to J·v, projected back to u; dense.wgsl's backward then
// gives Jᵀ(·) in `grads`. `zs` and `ts` (rows × items scratch: the engine's logits and log-prob
// buffers) hold exp(z_j − max) and t_j between the passes.
//
// The CG kernels run over the flat parameter vector; `scal` holds [r·r, p·Ap, r_new·r_new, _].

override D: u32 = 1u;        // width of u
override SLOT: u32 = 0u;     // dot: which scalar it writes

@group(0) @binding(0) var<uniform> hd: HeadDims;
@group(0) @binding(1) var<storage, read> u: array<f32>;
@group(0) @binding(2) var<storage, read> du: array<f32>;
@group(0) @binding(3) var<storage, read> emb: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<u32>;
@group(0) @binding(5) var<storage, read_write> zs: array<f32>;
@group(0) @binding(6) var<storage, read_write> ts: array<f32>;
@group(0) @binding(7) var<storage, read_write> d_out: array<f32>;

fn is_open(r: u32, j: u32) -> bool {
    return hd.use_mask == 0u || !bit_set(mask[r * hd.words + j / 32u], j);
}

@compute @workgroup_size(256)
fn fisher_head(grid: Grid, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = linear_group(grid);
    if (r >= hd.rows) {
        return;
    }
    let n = hd.items;
    let inv_t = 1.0 / hd.temperature;
    let base = r * n;
    var mx = NEG;
    for (var j = lid.x; j < n; j = j + WG) {
        var z = NEG;
        var t = 0.0;
        if (is_open(r, j)) {
            var a = 0.0;
            var b = 0.0;
            for (var k = 0u; k < D; k = k + 1u) {
                let e = emb[j * D + k];
                a = a + u[r * D + k] * e;
                b = b + du[r * D + k] * e;
            }
            z = a * inv_t;
            t = b * inv_t;
            mx = max(mx, z);
        }
        zs[base + j] = z;
        ts[base + j] = t;
    }
    let m = wg_max(mx, lid.x);
    var s = 0.0;
    var st = 0.0;
    for (var j = lid.x; j < n; j = j + WG) {
        var e = 0.0;
        if (is_open(r, j)) {
            e = exp(zs[base + j] - m);
        }
        zs[base + j] = e;
        s = s + e;
        st = st + e * ts[base + j];
    }
    let total = wg_sum(s, lid.x);
    let total_t = wg_sum(st, lid.x);
    storageBarrier();
    var mean_t = 0.0;
    var scale = 0.0;
    if (total > 0.0) {
        mean_t = total_t / total;
        scale = hd.inv_rows * inv_t / total;
    }
    for (var k = lid.x; k < D; k = k + WG) {
        var acc = 0.0;
        for (var j = 0u; j < n; j = j + 1u) {
            acc = acc + zs[base + j] * (ts[base + j] - mean_t) * emb[j * D + k];
        }
        d_out[r * D + k] = acc * scale;
    }
}

@group(0) @binding(8) var<uniform> cg: CgDims;
@group(0) @binding(9) var<storage, read> grads: array<f32>;
@group(0) @binding(10) var<storage, read_write> cg_p: array<f32>;
@group(0) @binding(11) var<storage, read_write> cg_ap: array<f32>;
@group(0) @binding(12) var<storage, read_write> cg_x: array<f32>;
@group(0) @binding(13) var<storage, read_write> cg_r: array<f32>;
@group(0) @binding(14) var<storage, read_write> scal: array<f32, 4>;

// Ap = F p + λ p (F p is the backward pass's output in `grads`). 256 x 4 values per workgroup.
@compute @workgroup_size(256)
fn damp(grid: Grid, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i0 = linear_group(grid) * 1024u + lid.x;
    for (var q = 0u; q < 4u; q = q + 1u) {
        let i = i0 + q * 256u;
        if (i < cg.n) {
            cg_ap[i] = grads[i] + cg.damping * cg_p[i];
        }
    }
}

// scal[SLOT] = a · b over the whole vector, one workgroup: SLOT 0 r·r (start), 1 p·Ap, 2 r·r.
@compute @workgroup_size(256)
fn cg_dot(@builtin(local_invocation_id) lid: vec3<u32>) {
    var acc = 0.0;
    for (var i = lid.x; i < cg.n; i = i + WG) {
        switch SLOT {
            case 1u: { acc = acc + cg_p[i] * cg_ap[i]; }
            default: { acc = acc + cg_r[i] * cg_r[i]; }
        }
    }
    let total = wg_sum(acc, lid.x);
    if (lid.x == 0u) {
        scal[SLOT] = total;
    }
}

// x += α p, r −= α Ap with α = r·r / p·Ap (0 when either is not positive).
@compute @workgroup_size(256)
fn update_xr(grid: Grid, @builtin(local_invocation_id) lid: vec3<u32>) {
    let rr = scal[0];
    let pap = scal[1];
    var alpha = 0.0;
    if (pap > 0.0 && rr > 0.0) {
        alpha = rr / pap;
    }
    let i0 = linear_group(grid) * 1024u + lid.x;
    for (var q = 0u; q < 4u; q = q + 1u) {
        let i = i0 + q * 256u;
        if (i < cg.n) {
            cg_x[i] = cg_x[i] + alpha * cg_p[i];
            cg_r[i] = cg_r[i] - alpha * cg_ap[i];
        }
    }
}

// p = r + β p with β = r_new·r_new / r·r (0 when r·r is not positive).
@compute @workgroup_size(256)
fn update_p(grid: Grid, @builtin(local_invocation_id) lid: vec3<u32>) {
    let rr = scal[0];
    var beta = 0.0;
    if (rr > 0.0) {
        beta = scal[2] / rr;
    }
    let i0 = linear_group(grid) * 1024u + lid.x;
    for (var q = 0u; q < 4u; q = q + 1u) {
        let i = i0 + q * 256u;
        if (i < cg.n) {
            cg_p[i] = cg_r[i] + beta * cg_p[i];
        }
    }
}

// r·r ← r_new·r_new for the next iteration (its own dispatch: update_p reads the old value).
@compute @workgroup_size(1)
fn shift() {
    scal[0] = scal[2];
}
