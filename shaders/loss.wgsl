// Loss gradients. `policy_grad` is the fused policy head, one workgroup per row: item logits
// z_j = u.e_j / T, masked log-softmax, the REINFORCE-with-baseline or PPO-clip gradient with
// an entropy bonus, and its back-projection onto the user vector, dL/du = sum_j dz_j e_j / T.
// `mse_grad` is the regression head (sigmoid output scaled to [low, high]).

override D: u32 = 64u;

struct LossDims {
    rows: u32,
    items: u32,
    words: u32,
    use_mask: u32,
    kind: u32,          // 0 REINFORCE, 1 PPO
    entropy: f32,       // entropy bonus weight
    temperature: f32,
    clip: f32,          // PPO clip epsilon
}

struct Row {
    action: u32,
    reward: f32,
    baseline: f32,
    old_logp: f32,
}

@group(0) @binding(0) var<uniform> ld: LossDims;
@group(0) @binding(1) var<storage, read> user: array<f32>;
@group(0) @binding(2) var<storage, read> emb: array<f32>;
@group(0) @binding(3) var<storage, read> rows_in: array<Row>;
@group(0) @binding(4) var<storage, read> mask: array<u32>;
@group(0) @binding(5) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(6) var<storage, read_write> d_user: array<f32>;
@group(0) @binding(7) var<storage, read_write> row_stats: array<f32>;

var<workgroup> u_s: array<f32, 256>;

fn open(r: u32, j: u32) -> bool {
    return ld.use_mask == 0u || !bit_set(mask[r * ld.words + j / 32u], j);
}

@compute @workgroup_size(256)
fn policy_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = wg.x;
    let t = lid.x;
    let base = r * ld.items;
    let inv_b = 1.0 / f32(ld.rows);
    if (t < D) {
        u_s[t] = user[r * D + t];
    }
    workgroupBarrier();

    // logits and their max
    var m = NEG;
    for (var j = t; j < ld.items; j = j + WG) {
        var z = NEG;
        if (open(r, j)) {
            var acc = 0.0;
            for (var d = 0u; d < D; d = d + 1u) {
                acc = acc + u_s[d] * emb[j * D + d];
            }
            z = acc / ld.temperature;
            m = max(m, z);
        }
        scratch[base + j] = z;
    }
    m = wg_max(m, t);
    var s = 0.0;
    for (var j = t; j < ld.items; j = j + WG) {
        let z = scratch[base + j];
        if (z != NEG) {
            s = s + exp(z - m);
        }
    }
    let log_z = m + log(wg_sum(s, t));
    var h = 0.0;
    for (var j = t; j < ld.items; j = j + WG) {
        let z = scratch[base + j];
        if (z != NEG) {
            let lp = z - log_z;
            h = h - exp(lp) * lp;
        }
    }
    h = wg_sum(h, t);
    storageBarrier();
    workgroupBarrier();

    // policy-gradient weight on (onehot(a) - p)
    let row = rows_in[r];
    let lp_a = scratch[base + row.action] - log_z;
    let adv = row.reward - row.baseline;
    var coef = adv;
    var row_loss = -adv * lp_a;
    if (ld.kind == 1u) {
        let ratio = exp(lp_a - row.old_logp);
        let clipped = clamp(ratio, 1.0 - ld.clip, 1.0 + ld.clip);
        let s1 = ratio * adv;
        let s2 = clipped * adv;
        if (s1 <= s2) {
            coef = adv * ratio;
            row_loss = -s1;
        } else {
            coef = 0.0;
            row_loss = -s2;
        }
    }
    storageBarrier();
    workgroupBarrier();

    // dL/dz_j, written over the logits
    for (var j = t; j < ld.items; j = j + WG) {
        let z = scratch[base + j];
        var g = 0.0;
        if (z != NEG) {
            let lp = z - log_z;
            let p = exp(lp);
            let onehot = select(0.0, 1.0, j == row.action);
            g = inv_b * (-coef * (onehot - p) + ld.entropy * p * (lp + h));
        }
        scratch[base + j] = g;
    }
    storageBarrier();
    workgroupBarrier();

    // dL/du: G groups of D invocations each sum a strided share of the items
    let groups = WG / D;
    var acc = 0.0;
    if (t < groups * D) {
        let d = t % D;
        for (var j = t / D; j < ld.items; j = j + groups) {
            acc = acc + scratch[base + j] * emb[j * D + d];
        }
    }
    red_f[t] = acc;
    workgroupBarrier();
    if (t < D) {
        var sum = 0.0;
        for (var g2 = 0u; g2 < groups; g2 = g2 + 1u) {
            sum = sum + red_f[g2 * D + t];
        }
        d_user[r * D + t] = sum / ld.temperature;
    }
    if (t == 0u) {
        row_stats[2u * r] = row_loss - ld.entropy * h;
        row_stats[2u * r + 1u] = h;
    }
}

struct MseDims {
    rows: u32,
    low: f32,
    high: f32,
    _pad: u32,
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
