// Rows over the catalog, one workgroup per row, with the masked, temperature-scaled softmax:
// `log_softmax` writes out[r, j] = s[r, j] / T - logsumexp_{k unmasked}(s[r, k] / T) (masked
// items get NEG); `sample` draws a slate. Gumbel-top-k: perturb each unmasked item's logit s/T
// with Gumbel noise from a counter-based hash of (seed, draw, row, item) and keep the K largest
// (a draw from the Plackett-Luce policy); greedy top-k adds no noise. Each position's
// log-propensity is log p(item | items before it).

@group(0) @binding(0) var<uniform> rd: RowDims;
// the logits s = u.e_j: read, or written by `sample_partial` when it computes them (SCORE)
@group(0) @binding(1) var<storage, read_write> scores: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<u32>;
// log_softmax
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// sample
@group(0) @binding(4) var<storage, read_write> out_items: array<u32>;
@group(0) @binding(5) var<storage, read_write> out_logp: array<f32>;

const MAX_K: u32 = 64u;

fn open(r: u32, j: u32) -> bool {
    return rd.use_mask == 0u || !bit_set(mask[r * rd.words + j / 32u], j);
}

// Row r's softmax normaliser: (m, S) with m the largest unmasked s/T (NEG when every item is
// masked) and S = sum over unmasked items of exp(s/T - m).
fn normaliser(r: u32, lid: u32) -> vec2<f32> {
    let base = r * rd.items;
    var m = NEG;
    for (var j = lid; j < rd.items; j = j + WG) {
        if (open(r, j)) {
            m = max(m, scores[base + j] / rd.temperature);
        }
    }
    m = wg_max(m, lid);
    var s = 0.0;
    for (var j = lid; j < rd.items; j = j + WG) {
        if (open(r, j)) {
            s = s + exp(scores[base + j] / rd.temperature - m);
        }
    }
    return vec2<f32>(m, wg_sum(s, lid));
}

@compute @workgroup_size(256)
fn log_softmax(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = wg.x;
    let base = r * rd.items;
    let ms = normaliser(r, lid.x);
    let log_z = ms.x + log(ms.y);
    let all_masked = ms.x == NEG;
    for (var j = lid.x; j < rd.items; j = j + WG) {
        var v = NEG;
        if (open(r, j) && !all_masked) {
            v = scores[base + j] / rd.temperature - log_z;
        }
        out[base + j] = v;
    }
}

// PCG hash (Jarzynski & Olano 2020); mirrored in src/engine/rng.rs.
fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

fn gumbel(row: u32, item: u32) -> f32 {
    let h = pcg(item ^ pcg(row ^ pcg(rd.seed ^ pcg(rd.draw))));
    let u = (f32(h >> 8u) + 0.5) * (1.0 / 16777216.0);
    return -log(-log(u));
}

// Slate sampling over many workgroups. `sample_partial`, grid (chunks, rows): each workgroup
// takes CHUNK = 4096 items of a row (16 per invocation, in registers), computes each item's
// logit z = s/T and its key (z plus the Gumbel noise, or z when greedy) once, the chunk's softmax
// partials (max m_g and sum exp(z - m_g)) and the chunk's K largest keys (K rounds of a
// workgroup arg-max over the invocations' best keys; the winner's owner retires it) and the mass
// of its items not among those K. `sample_merge`, one workgroup per row: the row's maximum logit
// from the partials, then K rounds over the chunks' candidates, each taking the largest key
// ordered after the previous pick (key descending, item ascending: the order of the CPU
// reference); then the slate's log-propensities log p(item | items before it), each position's
// normaliser summed without subtracting: the mass of the items the slate does not hold (the
// chunks' rest and the candidates not picked), plus the slate's from its end backwards.
// With SCORE = 1 (a catalog in one tile), `sample_partial` computes its items' logits
// s = u_r.e_j itself (as score.wgsl does, D = the width of u) and writes them to `scores` for
// `sample_merge`, so no scoring dispatch precedes it.
// With V4 = 1 (D a multiple of 4, set from the host) the passes over the item matrix read it
// as vec4s (`emb4`, the same buffer): four FMAs per load.
// With STATS = 1 as well (the pipeline of an interaction's slate: one row, V4), each chunk also
// leaves what the gradient of a reaction to this slate needs (loss.wgsl `head_cached`), so
// that an interaction reads the item matrix once: part_sum holds the chunk's
// A_g = sum_j exp(z_j - m_g) e_j (D values). Each invocation stages the weights of its items
// p, p + 1, p + 2, p + 3 as one vec4 entry, STAGE items at a time; invocation t then adds the
// four columns 4 (t % D4) .. of the entries t / D4, t / D4 + G, ... (G = WG / D4 groups), the
// items the chunk has just scored.
override SCORE: u32 = 0u;
override STATS: u32 = 0u;
override D: u32 = 64u;
override V4: u32 = 0u;
override D4: u32 = max(D / 4u, 1u);   // (1 when unused: D < 4)
@group(0) @binding(10) var<storage, read> user: array<f32>;
@group(0) @binding(11) var<storage, read> emb: array<f32>;
@group(0) @binding(13) var<storage, read> emb4: array<vec4<f32>>;
var<workgroup> u_s: array<f32, 256>;
var<workgroup> u4_s: array<vec4<f32>, 64>;
const CHUNK: u32 = 4096u;
const PER: u32 = 16u;   // CHUNK / WG items per invocation
const NONE: u32 = 0xffffffffu;
@group(0) @binding(6) var<storage, read_write> out_score: array<f32>;
@group(0) @binding(7) var<storage, read_write> part_norm: array<vec4<f32>>;   // m_g, S_g, rest_g
var<workgroup> pick_z: array<f32, 64>;
@group(0) @binding(8) var<storage, read_write> part_key: array<f32>;
@group(0) @binding(9) var<storage, read_write> part_item: array<u32>;
@group(0) @binding(12) var<storage, read_write> part_sum: array<f32>;   // [chunk][D]
const STAGE: u32 = 2048u;
var<workgroup> stage_w: array<vec4<f32>, 512>;   // STAGE items' exp(z - m_g), four to an entry

// Stages the weights exp(z - m) of this invocation's items p0 .. p0 + STAGE / WG - 1 (0 when
// closed), four to an entry.
fn stage(z: array<f32, 16>, m: f32, p0: u32, lid: u32) {
    for (var q = 0u; q < STAGE / WG / 4u; q = q + 1u) {
        var w = vec4(0.0);
        let p = p0 + 4u * q;
        if (z[p] != NEG) {
            w.x = exp(z[p] - m);
        }
        if (z[p + 1u] != NEG) {
            w.y = exp(z[p + 1u] - m);
        }
        if (z[p + 2u] != NEG) {
            w.z = exp(z[p + 2u] - m);
        }
        if (z[p + 3u] != NEG) {
            w.w = exp(z[p + 3u] - m);
        }
        stage_w[q * WG + lid] = w;
    }
}

// A chunk's A_g (see above) into part_sum[cell], from its items' logits `z` (16 per
// invocation, NEG when closed) and its maximum `m`; D a multiple of 4 (V4).
fn chunk_sums(z: array<f32, 16>, m: f32, j0: u32, cell: u32, lid: u32) {
    let groups = WG / D4;
    let col = lid % D4;
    let grp = lid / D4;
    let last = rd.items - 1u;
    let per = STAGE / WG;
    var acc = vec4(0.0);
    for (var p0 = 0u; p0 < PER; p0 = p0 + per) {
        let s0 = j0 + p0 * WG;
        if (s0 >= rd.items) {
            break;
        }
        stage(z, m, p0, lid);
        workgroupBarrier();
        if (grp < groups) {
            for (var e = grp; e < STAGE / 4u; e = e + groups) {
                let w = stage_w[e];
                let j = s0 + 4u * (e / WG) * WG + e % WG;
                acc = acc + w.x * emb4[min(j, last) * D4 + col];
                acc = acc + w.y * emb4[min(j + WG, last) * D4 + col];
                acc = acc + w.z * emb4[min(j + 2u * WG, last) * D4 + col];
                acc = acc + w.w * emb4[min(j + 3u * WG, last) * D4 + col];
            }
        }
        workgroupBarrier();
    }
    if (grp < groups) {
        stage_w[grp * D4 + col] = acc;
    }
    workgroupBarrier();
    if (lid < D4) {
        var t = vec4(0.0);
        for (var g = 0u; g < groups; g = g + 1u) {
            t = t + stage_w[g * D4 + lid];
        }
        let o = cell * D + 4u * lid;
        part_sum[o] = t.x;
        part_sum[o + 1u] = t.y;
        part_sum[o + 2u] = t.z;
        part_sum[o + 3u] = t.w;
    }
}

@compute @workgroup_size(256)
fn sample_partial(grid: Grid, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = grid.wg.y;
    let j0 = grid.wg.x * CHUNK;
    let base = r * rd.items;
    // item j0 + p * WG + lid.x: its logit and key (NEG when masked, past the end or retired)
    var z: array<f32, 16>;
    var key: array<f32, 16>;
    if (SCORE != 0u && V4 == 0u && lid.x < D) {
        u_s[lid.x] = user[r * D + lid.x];
    }
    if (SCORE != 0u && V4 != 0u && lid.x < D4) {
        let u0 = r * D + 4u * lid.x;
        u4_s[lid.x] = vec4(user[u0], user[u0 + 1u], user[u0 + 2u], user[u0 + 3u]);
    }
    workgroupBarrier();
    var m = NEG;
    for (var p = 0u; p < PER; p = p + 1u) {
        let j = j0 + p * WG + lid.x;
        z[p] = NEG;
        key[p] = NEG;
        if (SCORE != 0u && j < rd.items) {
            var acc = 0.0;
            if (V4 != 0u) {
                var a4 = vec4(0.0);
                for (var d = 0u; d < D4; d = d + 1u) {
                    a4 = a4 + u4_s[d] * emb4[j * D4 + d];
                }
                acc = (a4.x + a4.y) + (a4.z + a4.w);
            } else {
                for (var d = 0u; d < D; d = d + 1u) {
                    acc = acc + u_s[d] * emb[j * D + d];
                }
            }
            scores[base + j] = acc;
        }
        if (j < rd.items && open(r, j)) {
            z[p] = scores[base + j] / rd.temperature;
            m = max(m, z[p]);
            key[p] = z[p];
            if (rd.greedy == 0u) {
                key[p] = key[p] + gumbel(r, j);
            }
        }
    }
    m = wg_max(m, lid.x);
    var s = 0.0;
    for (var p = 0u; p < PER; p = p + 1u) {
        if (z[p] != NEG) {
            s = s + exp(z[p] - m);
        }
    }
    s = wg_sum(s, lid.x);
    let cell = linear_group(grid);
    if (SCORE != 0u && STATS != 0u) {
        chunk_sums(z, m, j0, cell, lid.x);
    }
    let k_max = min(rd.k, MAX_K);
    for (var kk = 0u; kk < k_max; kk = kk + 1u) {
        var best_v = NEG;
        var best_s = NONE;
        for (var p = 0u; p < PER; p = p + 1u) {
            if (key[p] != NEG && (best_s == NONE || key[p] > best_v)) {
                best_v = key[p];
                best_s = p * WG + lid.x;
            }
        }
        let a = wg_argmax(best_v, best_s, lid.x);
        if (a.x != NONE && a.x % WG == lid.x) {
            key[a.x / WG] = NEG;
        }
        if (lid.x == 0u) {
            part_key[cell * rd.k + kk] = bitcast<f32>(a.y);
            part_item[cell * rd.k + kk] = select(NONE, j0 + a.x, a.x != NONE);
        }
    }
    // the mass of the chunk's items not among its K candidates
    var t = 0.0;
    for (var p = 0u; p < PER; p = p + 1u) {
        if (key[p] != NEG) {
            t = t + exp(z[p] - m);
        }
    }
    t = wg_sum(t, lid.x);
    if (lid.x == 0u) {
        part_norm[cell] = vec4<f32>(m, s, t, 0.0);
    }
}

@compute @workgroup_size(256)
fn sample_merge(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = wg.x;
    let base = r * rd.items;
    let chunks = (rd.items + CHUNK - 1u) / CHUNK;
    var m = NEG;
    for (var g = lid.x; g < chunks; g = g + WG) {
        let p = part_norm[r * chunks + g];
        if (p.y > 0.0) {
            m = max(m, p.x);
        }
    }
    m = wg_max(m, lid.x);
    let n_cand = chunks * rd.k;
    let c0 = r * n_cand;
    var prev_v = NEG;
    var prev_i = NONE;
    let k_max = min(rd.k, MAX_K);
    for (var kk = 0u; kk < k_max; kk = kk + 1u) {
        var best_v = NEG;
        var best_i = NONE;
        for (var c = lid.x; c < n_cand; c = c + WG) {
            let i = part_item[c0 + c];
            let v = part_key[c0 + c];
            let after = kk == 0u || v < prev_v || (v == prev_v && i > prev_i);
            if (i != NONE && after && (best_i == NONE || v > best_v || (v == best_v && i < best_i))) {
                best_v = v;
                best_i = i;
            }
        }
        let a = wg_argmax(best_v, best_i, lid.x);
        prev_i = a.x;
        prev_v = bitcast<f32>(a.y);
        if (lid.x == 0u) {
            let zz = scores[base + a.x] / rd.temperature;
            out_items[r * rd.k + kk] = a.x;
            out_score[r * rd.k + kk] = zz;
            pick_z[kk] = zz;   // read by this invocation only, below
        }
    }
    // the mass the slate does not hold: each chunk's rest and the candidates ordered after the
    // last pick
    var rest = 0.0;
    for (var g = lid.x; g < chunks; g = g + WG) {
        let p = part_norm[r * chunks + g];
        if (p.y > 0.0) {
            rest = rest + p.z * exp(p.x - m);
        }
    }
    for (var c = lid.x; c < n_cand; c = c + WG) {
        let i = part_item[c0 + c];
        let v = part_key[c0 + c];
        if (i != NONE && (v < prev_v || (v == prev_v && i > prev_i))) {
            rest = rest + exp(scores[base + i] / rd.temperature - m);
        }
    }
    rest = wg_sum(rest, lid.x);
    if (lid.x == 0u) {
        for (var kk = k_max; kk > 0u; kk = kk - 1u) {
            rest = rest + exp(pick_z[kk - 1u] - m);
            out_logp[r * rd.k + kk - 1u] = pick_z[kk - 1u] - m - log(max(rest, TINY));
        }
    }
}
