// Masked, temperature-scaled log-softmax over the catalog, one workgroup per row:
// out[r, j] = s[r, j] / T - logsumexp_{k unmasked}(s[r, k] / T); masked items get NEG.

struct SoftmaxDims {
    rows: u32,
    items: u32,
    words: u32,        // mask words per row
    use_mask: u32,
    temperature: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> sm: SoftmaxDims;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn open(r: u32, j: u32) -> bool {
    return sm.use_mask == 0u || !bit_set(mask[r * sm.words + j / 32u], j);
}

@compute @workgroup_size(256)
fn log_softmax(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = wg.x;
    let base = r * sm.items;
    var m = NEG;
    for (var j = lid.x; j < sm.items; j = j + WG) {
        if (open(r, j)) {
            m = max(m, scores[base + j] / sm.temperature);
        }
    }
    m = wg_max(m, lid.x);
    var s = 0.0;
    for (var j = lid.x; j < sm.items; j = j + WG) {
        if (open(r, j)) {
            s = s + exp(scores[base + j] / sm.temperature - m);
        }
    }
    s = wg_sum(s, lid.x);
    let log_z = m + log(s);
    let all_masked = m == NEG;
    for (var j = lid.x; j < sm.items; j = j + WG) {
        var v = NEG;
        if (open(r, j) && !all_masked) {
            v = scores[base + j] / sm.temperature - log_z;
        }
        out[base + j] = v;
    }
}
