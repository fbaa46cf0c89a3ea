// Slate sampling, one workgroup per row. Gumbel-top-k: perturb each unmasked item's
// logit s/T with Gumbel noise from a counter-based hash of (seed, draw, row, item) and keep
// the K largest (a draw from the Plackett-Luce policy); greedy top-k adds no noise. Each
// position's log-propensity is log p(item | items before it).

struct SampleDims {
    rows: u32,
    items: u32,
    words: u32,
    use_mask: u32,
    k: u32,
    greedy: u32,
    seed: u32,
    draw: u32,
    temperature: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> sp: SampleDims;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<u32>;
@group(0) @binding(3) var<storage, read_write> out_items: array<u32>;
@group(0) @binding(4) var<storage, read_write> out_logp: array<f32>;

const MAX_K: u32 = 64u;
var<workgroup> chosen: array<u32, 64>;
var<workgroup> rest: f32;

// PCG hash (Jarzynski & Olano 2020); mirrored in src/engine/rng.rs.
fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

fn gumbel(row: u32, item: u32) -> f32 {
    let h = pcg(item ^ pcg(row ^ pcg(sp.seed ^ pcg(sp.draw))));
    let u = (f32(h >> 8u) + 0.5) * (1.0 / 16777216.0);
    return -log(-log(u));
}

fn open(r: u32, j: u32) -> bool {
    return sp.use_mask == 0u || !bit_set(mask[r * sp.words + j / 32u], j);
}

@compute @workgroup_size(256)
fn sample(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = wg.x;
    let base = r * sp.items;
    var m = NEG;
    for (var j = lid.x; j < sp.items; j = j + WG) {
        if (open(r, j)) {
            m = max(m, scores[base + j] / sp.temperature);
        }
    }
    m = wg_max(m, lid.x);
    var s = 0.0;
    for (var j = lid.x; j < sp.items; j = j + WG) {
        if (open(r, j)) {
            s = s + exp(scores[base + j] / sp.temperature - m);
        }
    }
    s = wg_sum(s, lid.x);
    if (lid.x == 0u) {
        rest = s;
    }
    let k_max = min(sp.k, MAX_K);
    for (var kk = 0u; kk < k_max; kk = kk + 1u) {
        var best_v = NEG;
        var best_i = 0xffffffffu;
        for (var j = lid.x; j < sp.items; j = j + WG) {
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
            var key = scores[base + j] / sp.temperature;
            if (sp.greedy == 0u) {
                key = key + gumbel(r, j);
            }
            if (best_i == 0xffffffffu || key > best_v) {
                best_v = key;
                best_i = j;
            }
        }
        let a = wg_argmax(best_v, best_i, lid.x);
        if (lid.x == 0u) {
            let z = scores[base + a] / sp.temperature;
            out_items[r * sp.k + kk] = a;
            out_logp[r * sp.k + kk] = z - m - log(rest);
            rest = max(rest - exp(z - m), TINY);
            chosen[kk] = a;
        }
        workgroupBarrier();
    }
}
