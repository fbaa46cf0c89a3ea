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
override SCORE: u32 = 0u;
override D: u32 = 64u;
@group(0) @binding(10) var<storage, read> user: array<f32>;
@group(0) @binding(11) var<storage, read> emb: array<f32>;
var<workgroup> u_s: array<f32, 256>;
const CHUNK: u32 = 4096u;
const PER: u32 = 16u;   // CHUNK / WG items per invocation
const NONE: u32 = 0xffffffffu;
@group(0) @binding(6) var<storage, read_write> out_score: array<f32>;
@group(0) @binding(7) var<storage, read_write> part_norm: array<vec4<f32>>;   // m_g, S_g, rest_g
var<workgroup> pick_z: array<f32, 64>;
@group(0) @binding(8) var<storage, read_write> part_key: array<f32>;
@group(0) @binding(9) var<storage, read_write> part_item: array<u32>;

@compute @workgroup_size(256)
fn sample_partial(grid: Grid, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = grid.wg.y;
    let j0 = grid.wg.x * CHUNK;
    let base = r * rd.items;
    // item j0 + p * WG + lid.x: its logit and key (NEG when masked, past the end or retired)
    var z: array<f32, 16>;
    var key: array<f32, 16>;
    if (SCORE != 0u && lid.x < D) {
        u_s[lid.x] = user[r * D + lid.x];
    }
    workgroupBarrier();
    var m = NEG;
    for (var p = 0u; p < PER; p = p + 1u) {
        let j = j0 + p * WG + lid.x;
        z[p] = NEG;
        key[p] = NEG;
        if (SCORE != 0u && j < rd.items) {
            var acc = 0.0;
            for (var d = 0u; d < D; d = d + 1u) {
                acc = acc + u_s[d] * emb[j * D + d];
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
