// Rows over the catalog, one workgroup per row, with the masked, temperature-scaled softmax:
// `log_softmax` writes out[r, j] = s[r, j] / T - logsumexp_{k unmasked}(s[r, k] / T) (masked
// items get NEG); `sample` draws a slate. Gumbel-top-k: perturb each unmasked item's logit s/T
// with Gumbel noise from a counter-based hash of (seed, draw, row, item) and keep the K largest
// (a draw from the Plackett-Luce policy); greedy top-k adds no noise. Each position's
// log-propensity is log p(item | items before it).

@group(0) @binding(0) var<uniform> rd: RowDims;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<u32>;
// log_softmax
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// sample
@group(0) @binding(4) var<storage, read_write> out_items: array<u32>;
@group(0) @binding(5) var<storage, read_write> out_logp: array<f32>;

const MAX_K: u32 = 64u;
var<workgroup> chosen: array<u32, 64>;
var<workgroup> rest: f32;

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

@compute @workgroup_size(256)
fn sample(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = wg.x;
    let base = r * rd.items;
    let ms = normaliser(r, lid.x);
    let m = ms.x;
    if (lid.x == 0u) {
        rest = ms.y;
    }
    let k_max = min(rd.k, MAX_K);
    for (var kk = 0u; kk < k_max; kk = kk + 1u) {
        var best_v = NEG;
        var best_i = 0xffffffffu;
        for (var j = lid.x; j < rd.items; j = j + WG) {
            if (!open(r, j)) {
                continue;
            }
            var taken = false;
            for (var c = 0u; c < kk; c = c + 1u) {
                if (chosen[c] == j) {
                    taken = true;
                }
            }
            if (taken) {
                continue;
            }
            var key = scores[base + j] / rd.temperature;
            if (rd.greedy == 0u) {
                key = key + gumbel(r, j);
            }
            if (best_i == 0xffffffffu || key > best_v) {
                best_v = key;
                best_i = j;
            }
        }
        let a = wg_argmax(best_v, best_i, lid.x);
        if (lid.x == 0u) {
            let z = scores[base + a] / rd.temperature;
            out_items[r * rd.k + kk] = a;
            out_logp[r * rd.k + kk] = z - m - log(rest);
            rest = max(rest - exp(z - m), TINY);
            chosen[kk] = a;
        }
        workgroupBarrier();
    }
}
