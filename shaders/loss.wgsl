// Loss gradients. `policy_grad` is the fused policy head, one workgroup per row: item logits
// z_j = u.e_j / T, masked log-softmax, the REINFORCE-with-baseline or PPO-clip gradient with
// an entropy bonus, and its back-projection onto the user vector, dL/du = sum_j dz_j e_j / T.
// `mse_grad` is the regression head (sigmoid output scaled to [low, high]).

override D: u32 = 64u;

@group(0) @binding(0) var<uniform> ld: LossDims;
@group(0) @binding(1) var<storage, read> user: array<f32>;
@group(0) @binding(2) var<storage, read> emb: array<f32>;
@group(0) @binding(3) var<storage, read> rows_in: array<Row>;
@group(0) @binding(4) var<storage, read> mask: array<u32>;
@group(0) @binding(5) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(6) var<storage, read_write> d_user: array<f32>;
@group(0) @binding(7) var<storage, read_write> row_stats: array<f32>;

// Tiling: one workgroup of PG = 64 invocations handles R = 8 rows (a block of the batch), so
// every item embedding it loads is used by 8 rows. Invocation t owns items j = t, t + PG, ...
// for the logits and the softmax sums; the 8 rows' values travel together as two vec4 "row
// quads". Passes:
//   1. z[r, j] = u_r.e_j / T for the 8 rows (u_r staged in workgroup memory as [d][quad], one
//      embedding load per d for 8 FMAs); masked items get NEG; per-row maxima.
//   2. exp(z - m) sums and sum(exp(z - m) (z - m)), so the entropy needs no third pass:
//      H = log S - sum(e (z - m)) / S with S = sum(e).
//   3. dL/dz for a chunk of PC = 256 items into workgroup memory ([item][quad]), then dL/du:
//      each invocation owns 4 embedding columns and every G-th item of the chunk (G = PG /
//      ceil(D / 4)), so per item it reads 2 vec4 of dL/dz and 4 embedding values for 32 FMAs;
//      the G partial sums are added at the end.
// Reductions over the workgroup fold 8 rows at once (4 barriers each). The workgroup is small
// because a software adapter (SwiftShader) runs each group of 4 invocations of a workgroup
// with barriers as a coroutine: 256 invocations made its switches most of the kernel's time.
const R: u32 = 8u;     // rows per workgroup: two vec4 quads
const PG: u32 = 64u;   // invocations per workgroup
const PL: u32 = PG / R;   // invocations per row in the reductions' second level
const PC: u32 = 256u;  // items per chunk of pass 3
var<workgroup> sh4: array<vec4<f32>, 512>;   // pass 1: u[d][quad] (D <= 256); pass 3: dL/dz[item][quad]
var<workgroup> red8: array<f32, 2048>;       // reductions: R x PG; dL/du: [item group][d][row]

fn open(r: u32, j: u32) -> bool {
    return ld.use_mask == 0u || !bit_set(mask[r * ld.words + j / 32u], j);
}

// The tile's 8 rows' values as two vec4 "row quads" (rows 0-3, 4-7). Per-row values live in
// vectors, never in dynamically indexed arrays: a private array indexed by a loop variable is
// memory on software adapters (SwiftShader), which made every access a load or a store.
struct Quads {
    lo: vec4<f32>,
    hi: vec4<f32>,
}

fn quads(v: f32) -> Quads {
    return Quads(vec4(v), vec4(v));
}

// Workgroup-wide max (op 0) or sum (op 1) of each of the 8 rows' values; every invocation gets
// them.
fn reduce8(v: Quads, t: u32, op: u32) -> Quads {
    red8[t] = v.lo.x;
    red8[PG + t] = v.lo.y;
    red8[2u * PG + t] = v.lo.z;
    red8[3u * PG + t] = v.lo.w;
    red8[4u * PG + t] = v.hi.x;
    red8[5u * PG + t] = v.hi.y;
    red8[6u * PG + t] = v.hi.z;
    red8[7u * PG + t] = v.hi.w;
    workgroupBarrier();
    // invocation t folds row t / PL, entries (t % PL) + PL k, into entry t % PL
    let rr = t / PL;
    let p = t % PL;
    var a = red8[rr * PG + p];
    for (var k = 1u; k < PG / PL; k = k + 1u) {
        let b = red8[rr * PG + p + PL * k];
        a = select(a + b, max(a, b), op == 0u);
    }
    red8[rr * PG + p] = a;
    workgroupBarrier();
    if (t < R) {
        var b = red8[t * PG];
        for (var k = 1u; k < PL; k = k + 1u) {
            let c = red8[t * PG + k];
            b = select(b + c, max(b, c), op == 0u);
        }
        red8[t * PG] = b;
    }
    workgroupBarrier();
    let out = Quads(
        vec4(red8[0], red8[PG], red8[2u * PG], red8[3u * PG]),
        vec4(red8[4u * PG], red8[5u * PG], red8[6u * PG], red8[7u * PG]),
    );
    workgroupBarrier();
    return out;
}

fn quad_get(a: vec4<f32>, b: vec4<f32>, r: u32) -> f32 {
    if (r < 4u) {
        return a[r];
    }
    return b[r - 4u];
}

// Whether item j is open for each of the four rows r .. r + 3 (rows clamped to the batch).
fn open4(r: u32, j: u32) -> vec4<bool> {
    if (ld.use_mask == 0u) {
        return vec4(true);
    }
    let last = ld.rows - 1u;
    return vec4(open(min(r, last), j), open(min(r + 1u, last), j), open(min(r + 2u, last), j),
                open(min(r + 3u, last), j));
}

// z[r0 + k][j] for the tile's rows k < nrows (nrows >= 1 always), from scratch / into it; rows
// past the batch read NEG.
fn store8(r0: u32, nrows: u32, j: u32, v: Quads) {
    let n = ld.items;
    let b = r0 * n + j;
    scratch[b] = v.lo.x;
    if (nrows > 1u) { scratch[b + n] = v.lo.y; }
    if (nrows > 2u) { scratch[b + 2u * n] = v.lo.z; }
    if (nrows > 3u) { scratch[b + 3u * n] = v.lo.w; }
    if (nrows > 4u) { scratch[b + 4u * n] = v.hi.x; }
    if (nrows > 5u) { scratch[b + 5u * n] = v.hi.y; }
    if (nrows > 6u) { scratch[b + 6u * n] = v.hi.z; }
    if (nrows > 7u) { scratch[b + 7u * n] = v.hi.w; }
}

fn load8(r0: u32, nrows: u32, j: u32) -> Quads {
    let n = ld.items;
    let b = r0 * n + j;
    var v = quads(NEG);
    v.lo.x = scratch[b];
    if (nrows > 1u) { v.lo.y = scratch[b + n]; }
    if (nrows > 2u) { v.lo.z = scratch[b + 2u * n]; }
    if (nrows > 3u) { v.lo.w = scratch[b + 3u * n]; }
    if (nrows > 4u) { v.hi.x = scratch[b + 4u * n]; }
    if (nrows > 5u) { v.hi.y = scratch[b + 5u * n]; }
    if (nrows > 6u) { v.hi.z = scratch[b + 6u * n]; }
    if (nrows > 7u) { v.hi.w = scratch[b + 7u * n]; }
    return v;
}

// Row k of the tile (clamped to the batch).
fn tile_row(r0: u32, nrows: u32, k: u32) -> Row {
    return rows_in[r0 + min(k, nrows - 1u)];
}

// The actions of the four rows k .. k + 3 of the tile.
fn actions4(r0: u32, nrows: u32, k: u32) -> vec4<u32> {
    return vec4(tile_row(r0, nrows, k).action, tile_row(r0, nrows, k + 1u).action,
                tile_row(r0, nrows, k + 2u).action, tile_row(r0, nrows, k + 3u).action);
}

// Item a's embedding value d for each of the four actions.
fn emb4(a: vec4<u32>, d: u32) -> vec4<f32> {
    return vec4(emb[a.x * D + d], emb[a.y * D + d], emb[a.z * D + d], emb[a.w * D + d]);
}

// A row's policy-gradient weight on (onehot(a) - p) and its loss, from log π(a) = `lp_a`:
// REINFORCE (advantage, -advantage · log π(a)) or, for PPO (ld.kind 1), the clipped
// surrogate's (advantage · ratio and -ratio · advantage where the ratio is inside the clip,
// else 0 and the clipped term).
fn pg_terms(lp_a: f32, row: Row) -> vec2<f32> {
    let adv = row.reward - row.baseline;
    if (ld.kind != 1u) {
        return vec2<f32>(adv, -adv * lp_a);
    }
    let ratio = exp(lp_a - row.old_logp);
    let s1 = ratio * adv;
    let s2 = clamp(ratio, 1.0 - ld.clip, 1.0 + ld.clip) * adv;
    if (s1 <= s2) {
        return vec2<f32>(adv * ratio, -s1);
    }
    return vec2<f32>(0.0, -s2);
}

// pg_terms for the four rows k .. k + 3: (weights, losses).
fn pg_terms4(lp_a: vec4<f32>, r0: u32, nrows: u32, k: u32) -> array<vec4<f32>, 2> {
    let p0 = pg_terms(lp_a.x, tile_row(r0, nrows, k));
    let p1 = pg_terms(lp_a.y, tile_row(r0, nrows, k + 1u));
    let p2 = pg_terms(lp_a.z, tile_row(r0, nrows, k + 2u));
    let p3 = pg_terms(lp_a.w, tile_row(r0, nrows, k + 3u));
    return array(vec4(p0.x, p1.x, p2.x, p3.x), vec4(p0.y, p1.y, p2.y, p3.y));
}

// dL/dz of the four rows' quad at item j (z, log Z, entropy, weights, actions of the quad);
// 0 where z is NEG (masked, or a row past the batch).
fn dl_dz(j: u32, z: vec4<f32>, log_z: vec4<f32>, h: vec4<f32>, coef: vec4<f32>,
         act: vec4<u32>) -> vec4<f32> {
    let inv_b = 1.0 / f32(ld.rows);
    let lp = z - log_z;
    let p = exp(lp);
    let onehot = select(vec4(0.0), vec4(1.0), vec4(j) == act);
    let g = inv_b * (-coef * (onehot - p) + ld.entropy * p * (lp + h));
    return select(g, vec4(0.0), z == vec4(NEG));
}

// Item group ig's partial sums of dL/du for column d, the 8 rows: red8[(ig * D + d) * R + r].
fn put_rows(ig: u32, d: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (d < D) {
        let o = (ig * D + d) * R;
        red8[o] = lo.x;
        red8[o + 1u] = lo.y;
        red8[o + 2u] = lo.z;
        red8[o + 3u] = lo.w;
        red8[o + 4u] = hi.x;
        red8[o + 5u] = hi.y;
        red8[o + 6u] = hi.z;
        red8[o + 7u] = hi.w;
    }
}

// Grid: (ceil(rows / R), 1).
@compute @workgroup_size(64)
fn policy_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r0 = wg.x * R;
    let t = lid.x;
    // rows past the batch compute with u = 0 and store nothing
    let nrows = min(R, ld.rows - r0);
    for (var i = t; i < D * 2u; i = i + PG) {
        let d = i / 2u;
        let q = (i % 2u) * 4u;
        var v = vec4(0.0);
        for (var c = 0u; c < 4u; c = c + 1u) {
            if (q + c < nrows) {
                v[c] = user[(r0 + q + c) * D + d];
            }
        }
        sh4[i] = v;
    }
    workgroupBarrier();

    // the action's logit for each row (uniform; same arithmetic as pass 1)
    let act_lo = actions4(r0, nrows, 0u);
    let act_hi = actions4(r0, nrows, 4u);
    var za_lo = vec4(0.0);
    var za_hi = vec4(0.0);
    for (var d = 0u; d < D; d = d + 1u) {
        za_lo = za_lo + sh4[d * 2u] * emb4(act_lo, d);
        za_hi = za_hi + sh4[d * 2u + 1u] * emb4(act_hi, d);
    }
    za_lo = za_lo / ld.temperature;
    za_hi = za_hi / ld.temperature;

    // 1. logits and per-row maxima
    var m = quads(NEG);
    // two items per invocation per step (j and j + PG): each staged u quad read feeds 8 FMAs
    for (var j = t; j < ld.items; j = j + 2u * PG) {
        let j2 = j + PG;
        let jc = min(j2, ld.items - 1u);
        var a0 = vec4(0.0);
        var a1 = vec4(0.0);
        var b0 = vec4(0.0);
        var b1 = vec4(0.0);
        for (var d = 0u; d < D; d = d + 1u) {
            let u0 = sh4[d * 2u];
            let u1 = sh4[d * 2u + 1u];
            let e = emb[j * D + d];
            let f = emb[jc * D + d];
            a0 = a0 + u0 * e;
            a1 = a1 + u1 * e;
            b0 = b0 + u0 * f;
            b1 = b1 + u1 * f;
        }
        let za = Quads(select(vec4(NEG), a0 / ld.temperature, open4(r0, j)),
                       select(vec4(NEG), a1 / ld.temperature, open4(r0 + 4u, j)));
        m = Quads(max(m.lo, za.lo), max(m.hi, za.hi));
        store8(r0, nrows, j, za);
        if (j2 < ld.items) {
            let zb = Quads(select(vec4(NEG), b0 / ld.temperature, open4(r0, j2)),
                           select(vec4(NEG), b1 / ld.temperature, open4(r0 + 4u, j2)));
            m = Quads(max(m.lo, zb.lo), max(m.hi, zb.hi));
            store8(r0, nrows, j2, zb);
        }
    }
    m = reduce8(m, t, 0u);

    // 2. softmax sums (same invocation reads back what it wrote: no barrier needed)
    var s = quads(0.0);
    var sz = quads(0.0);
    for (var j = t; j < ld.items; j = j + PG) {
        let z = load8(r0, nrows, j);
        let xl = z.lo - m.lo;
        let xh = z.hi - m.hi;
        let el = select(exp(xl), vec4(0.0), z.lo == vec4(NEG));
        let eh = select(exp(xh), vec4(0.0), z.hi == vec4(NEG));
        s = Quads(s.lo + el, s.hi + eh);
        sz = Quads(sz.lo + select(el * xl, vec4(0.0), z.lo == vec4(NEG)),
                   sz.hi + select(eh * xh, vec4(0.0), z.hi == vec4(NEG)));
    }
    s = reduce8(s, t, 1u);
    sz = reduce8(sz, t, 1u);

    // per-row log-partition, entropy and policy-gradient weight on (onehot(a) - p)
    let ls_lo = log(s.lo);
    let ls_hi = log(s.hi);
    let lz_lo = m.lo + ls_lo;
    let lz_hi = m.hi + ls_hi;
    let h_lo = select(vec4(0.0), ls_lo - sz.lo / s.lo, s.lo > vec4(0.0));
    let h_hi = select(vec4(0.0), ls_hi - sz.hi / s.hi, s.hi > vec4(0.0));
    let pg_lo = pg_terms4(za_lo - lz_lo, r0, nrows, 0u);
    let pg_hi = pg_terms4(za_hi - lz_hi, r0, nrows, 4u);

    // 3. dL/dz by chunks of PC items, staged as [item][quad], then dL/du: invocation t owns the
    // embedding columns 4 dg .. 4 dg + 3 (dg = t % DG) and the chunk's items ig, ig + G, ...
    // (ig = t / DG), so each staged pair of quads it reads feeds 32 FMAs (4 columns x 8 rows).
    let dgroups = (D + 3u) / 4u;
    let igroups = max(PG / dgroups, 1u);
    let dg = t % dgroups;
    let ig = t / dgroups;
    // column 4 dg + c: c{c}l (rows 0-3), c{c}h (rows 4-7)
    var c0l = vec4(0.0);
    var c0h = vec4(0.0);
    var c1l = vec4(0.0);
    var c1h = vec4(0.0);
    var c2l = vec4(0.0);
    var c2h = vec4(0.0);
    var c3l = vec4(0.0);
    var c3h = vec4(0.0);
    for (var c0 = 0u; c0 < ld.items; c0 = c0 + PC) {
        for (var jl = t; jl < PC; jl = jl + PG) {
            let j = c0 + jl;
            var g = quads(0.0);
            if (j < ld.items) {
                let z = load8(r0, nrows, j);
                g = Quads(dl_dz(j, z.lo, lz_lo, h_lo, pg_lo[0], act_lo),
                          dl_dz(j, z.hi, lz_hi, h_hi, pg_hi[0], act_hi));
            }
            sh4[2u * jl] = g.lo;
            sh4[2u * jl + 1u] = g.hi;
        }
        workgroupBarrier();
        if (ig < igroups && dg < dgroups) {
            let n = min(PC, ld.items - c0);
            for (var jj = ig; jj < n; jj = jj + igroups) {
                let g0 = sh4[2u * jj];
                let g1 = sh4[2u * jj + 1u];
                let base = (c0 + jj) * D;
                let e0 = emb[base + min(4u * dg, D - 1u)];
                let e1 = emb[base + min(4u * dg + 1u, D - 1u)];
                let e2 = emb[base + min(4u * dg + 2u, D - 1u)];
                let e3 = emb[base + min(4u * dg + 3u, D - 1u)];
                c0l = c0l + g0 * e0;
                c0h = c0h + g1 * e0;
                c1l = c1l + g0 * e1;
                c1h = c1h + g1 * e1;
                c2l = c2l + g0 * e2;
                c2h = c2h + g1 * e2;
                c3l = c3l + g0 * e3;
                c3h = c3h + g1 * e3;
            }
        }
        workgroupBarrier();
    }
    // add the item groups' partial sums (igroups x D x R <= 2048 values: D <= 4 PG / igroups)
    if (ig < igroups && dg < dgroups) {
        put_rows(ig, 4u * dg, c0l, c0h);
        put_rows(ig, 4u * dg + 1u, c1l, c1h);
        put_rows(ig, 4u * dg + 2u, c2l, c2h);
        put_rows(ig, 4u * dg + 3u, c3l, c3h);
    }
    workgroupBarrier();
    for (var i = t; i < R * D; i = i + PG) {
        let r = i % R;
        let dd = i / R;
        var sum = 0.0;
        for (var g2 = 0u; g2 < igroups; g2 = g2 + 1u) {
            sum = sum + red8[(g2 * D + dd) * R + r];
        }
        if (r < nrows) {
            d_user[(r0 + r) * D + dd] = sum / ld.temperature;
        }
    }
    if (t == 0u) {
        for (var r = 0u; r < nrows; r = r + 1u) {
            let h = quad_get(h_lo, h_hi, r);
            row_stats[2u * (r0 + r)] = quad_get(pg_lo[1], pg_hi[1], r) - ld.entropy * h;
            row_stats[2u * (r0 + r) + 1u] = h;
        }
    }
}

@group(0) @binding(8) var<uniform> md: MseDims;
@group(0) @binding(9) var<storage, read> pred: array<f32>;
@group(0) @binding(10) var<storage, read> targets: array<Row>;
@group(0) @binding(11) var<storage, read_write> d_pred: array<f32>;
@group(0) @binding(12) var<storage, read_write> mse_stats: array<f32>;

// One invocation per row: loss (low + (high - low) y - target)^2 and its gradient w.r.t. y.
@compute @workgroup_size(256)
fn mse_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if (r >= md.rows) {
        return;
    }
    let scale = md.high - md.low;
    let err = md.low + scale * pred[r] - targets[r].reward;
    d_pred[r] = 2.0 * err * scale / f32(md.rows);
    mse_stats[2u * r] = err * err;
    mse_stats[2u * r + 1u] = 0.0;
}

// The policy head for a batch of one row, over many workgroups (policy_grad's 8-row tile in one
// workgroup would leave the whole catalog to one workgroup and compute 7 rows for nothing);
// z = s/T, masked items excluded.
//   head_stats (grid: ceil(items / HCHUNK)): per chunk the logits s_j = u.e_j (written to
//     `s_logits`, as score.wgsl computes them), m_g = max z, sum exp(z - m_g) and
//     sum exp(z - m_g) (z - m_g);
//   head_back (grid: chunks): every workgroup merges the chunks' statistics (log-partition,
//     entropy, the weight on (onehot(a) - p), as policy_grad computes them; the first one
//     writes the loss), then the chunk's share of sum_j dL/dz_j e_j / T;
//   head_reduce (one workgroup): dL/du = the shares' sum (a one-row input gradient skips it:
//     the last layer's dense.wgsl `backward_dx_row` sums the shares itself, SHARES).
const HCHUNK: u32 = 1024u;
@group(0) @binding(13) var<storage, read_write> s_logits: array<f32>;
@group(0) @binding(14) var<storage, read_write> head_part: array<vec4<f32>>;
@group(0) @binding(16) var<storage, read_write> du_part: array<f32>;
var<workgroup> hg: array<f32, 1024>;

// Item j's z = s/T, NEG when masked.
fn head_z(j: u32) -> f32 {
    if (!open(0u, j)) {
        return NEG;
    }
    return s_logits[j] / ld.temperature;
}

@compute @workgroup_size(256)
fn head_stats(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let j0 = wg.x * HCHUNK;
    // u in workgroup memory (D <= 256 = WG)
    if (lid.x < D) {
        hg[lid.x] = user[lid.x];
    }
    workgroupBarrier();
    var z: array<f32, 4>;
    var m = NEG;
    for (var p = 0u; p < 4u; p = p + 1u) {
        let j = j0 + p * WG + lid.x;
        z[p] = NEG;
        if (j < ld.items) {
            var acc = 0.0;
            for (var d = 0u; d < D; d = d + 1u) {
                acc = acc + hg[d] * emb[j * D + d];
            }
            s_logits[j] = acc;
            if (open(0u, j)) {
                z[p] = acc / ld.temperature;
                m = max(m, z[p]);
            }
        }
    }
    m = wg_max(m, lid.x);
    var s = 0.0;
    var sz = 0.0;
    for (var p = 0u; p < 4u; p = p + 1u) {
        if (z[p] != NEG) {
            let x = z[p] - m;
            let e = exp(x);
            s = s + e;
            sz = sz + e * x;
        }
    }
    s = wg_sum(s, lid.x);
    sz = wg_sum(sz, lid.x);
    if (lid.x == 0u) {
        head_part[wg.x] = vec4<f32>(m, s, sz, 0.0);
    }
}

// The row's log-partition, entropy and policy-gradient weight from the chunks' statistics
// (uniform over the workgroup); the first workgroup (`first`) writes the loss and entropy.
fn head_merge(lid: u32, first: bool) -> vec3<f32> {
    let chunks = (ld.items + HCHUNK - 1u) / HCHUNK;
    var m = NEG;
    for (var g = lid; g < chunks; g = g + WG) {
        let p = head_part[g];
        if (p.y > 0.0) {
            m = max(m, p.x);
        }
    }
    m = wg_max(m, lid);
    var s = 0.0;
    var sz = 0.0;
    for (var g = lid; g < chunks; g = g + WG) {
        let p = head_part[g];
        if (p.y > 0.0) {
            // sum exp(z - m)(z - m) over the chunk = w (sz_g + (m_g - m) s_g), w = exp(m_g - m)
            let w = exp(p.x - m);
            s = s + p.y * w;
            sz = sz + w * (p.z + (p.x - m) * p.y);
        }
    }
    s = wg_sum(s, lid);
    sz = wg_sum(sz, lid);
    let ls = log(s);
    let log_z = m + ls;
    let h = select(0.0, ls - sz / s, s > 0.0);
    let row = rows_in[0];
    let pg = pg_terms(s_logits[row.action] / ld.temperature - log_z, row);
    if (first && lid == 0u) {
        row_stats[0] = pg.y - ld.entropy * h;
        row_stats[1] = h;
    }
    return vec3<f32>(log_z, h, pg.x);
}

@compute @workgroup_size(256)
fn head_back(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let j0 = wg.x * HCHUNK;
    let merged = head_merge(lid.x, wg.x == 0u);
    let log_z = merged.x;
    let h = merged.y;
    let coef = merged.z;
    let a = rows_in[0].action;
    for (var p = 0u; p < 4u; p = p + 1u) {
        let slot = p * WG + lid.x;
        let j = j0 + slot;
        var g = 0.0;
        if (j < ld.items) {
            let z = head_z(j);
            if (z != NEG) {
                let lp = z - log_z;
                let pr = exp(lp);
                let onehot = select(0.0, 1.0, j == a);
                g = -coef * (onehot - pr) + ld.entropy * pr * (lp + h);
            }
        }
        hg[slot] = g;
    }
    workgroupBarrier();
    // invocation t: column d = t % D of the items ig, ig + G, ... (ig = t / D, G = WG / D)
    let groups = WG / D;
    let d = lid.x % D;
    let ig = lid.x / D;
    let n = min(HCHUNK, ld.items - j0);
    var acc = 0.0;
    if (ig < groups) {
        for (var jj = ig; jj < n; jj = jj + groups) {
            acc = acc + hg[jj] * emb[(j0 + jj) * D + d];
        }
    }
    workgroupBarrier();
    if (ig < groups) {
        hg[ig * D + d] = acc;
    }
    workgroupBarrier();
    if (lid.x < D) {
        var sum = 0.0;
        for (var g2 = 0u; g2 < groups; g2 = g2 + 1u) {
            sum = sum + hg[g2 * D + lid.x];
        }
        du_part[wg.x * D + lid.x] = sum / ld.temperature;
    }
}

@compute @workgroup_size(256)
fn head_reduce(@builtin(local_invocation_id) lid: vec3<u32>) {
    let chunks = (ld.items + HCHUNK - 1u) / HCHUNK;
    for (var d = lid.x; d < D; d = d + WG) {
        var sum = 0.0;
        for (var g = 0u; g < chunks; g = g + 1u) {
            sum = sum + du_part[g * D + d];
        }
        d_user[d] = sum;
    }
}

// The one-row policy head without an entropy bonus, from the statistics the sampler left when
// it drew the slate the reaction is to (softmax.wgsl `sample_partial` with STATS, at the same
// input, mask and temperature: the host checks that), so the interaction reads the item matrix
// once. One workgroup and no barrier: every invocation merges the chunks' (m_g, S_g) itself
// (log-partition and policy-gradient weight, as `head_merge`), then invocation d writes
// dL/du_d = -coef (e_a,d - P_d) / T, P = sum_j p_j e_j = sum_g exp(m_g - log Z) A_g. The loss
// goes to row_stats[0]; the entropy is not computed (an interaction reads back the loss only).
override SCHUNK: u32 = 4096u;   // the sampler's chunk (softmax.wgsl CHUNK)
@group(0) @binding(17) var<storage, read> slate_norm: array<vec4<f32>>;
@group(0) @binding(18) var<storage, read> slate_sum: array<f32>;

@compute @workgroup_size(256)
fn head_cached(@builtin(local_invocation_id) lid: vec3<u32>) {
    let chunks = (ld.items + SCHUNK - 1u) / SCHUNK;
    var m = NEG;
    for (var g = 0u; g < chunks; g = g + 1u) {
        let p = slate_norm[g];
        if (p.y > 0.0) {
            m = max(m, p.x);
        }
    }
    var s = 0.0;
    for (var g = 0u; g < chunks; g = g + 1u) {
        let p = slate_norm[g];
        if (p.y > 0.0) {
            s = s + p.y * exp(p.x - m);
        }
    }
    let log_z = m + log(s);
    let row = rows_in[0];
    let a = row.action;
    var za = 0.0;
    for (var d = 0u; d < D; d = d + 1u) {
        za = za + user[d] * emb[a * D + d];
    }
    let pg = pg_terms(za / ld.temperature - log_z, row);
    if (lid.x == 0u) {
        row_stats[0] = pg.y;
    }
    let d = lid.x;
    if (d < D) {
        var pd = 0.0;
        for (var g = 0u; g < chunks; g = g + 1u) {
            let p = slate_norm[g];
            if (p.y > 0.0) {
                pd = pd + exp(p.x - log_z) * slate_sum[g * D + d];
            }
        }
        d_user[d] = -pg.x * (emb[a * D + d] - pd) / ld.temperature;
    }
}
