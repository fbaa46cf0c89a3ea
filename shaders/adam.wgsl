// Adam over the flat parameter buffer in one dispatch: bias correction, decoupled weight
// decay, and clipping by the global gradient norm that `step_stats` (reduce.wgsl) computed on
// the GPU for this step, together with the step counter. A step whose gradient is not finite
// is skipped.

@group(0) @binding(0) var<uniform> ap: AdamParams;
@group(0) @binding(1) var<storage, read_write> params: array<f32>;
@group(0) @binding(2) var<storage, read> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> m1: array<f32>;
@group(0) @binding(4) var<storage, read_write> m2: array<f32>;
@group(0) @binding(5) var<storage, read> stats: StepSums;

// Each invocation updates PER = 4 elements, WG apart (coalesced), so the clipping scale and the
// bias corrections (two pow) are computed once per 4 elements. Grid: ceil(n / (4 * 256)) groups.
const PER: u32 = 4u;

@compute @workgroup_size(256)
fn adam(grid: Grid, @builtin(local_invocation_id) lid: vec3<u32>) {
    let first = linear_group(grid) * WG * PER + lid.x;
    if (first >= ap.n) {
        return;
    }
    if (stats.grad_sq < 0.0) {
        return; // step_stats skipped this step: parameters and moments stay as they were
    }
    let norm = sqrt(stats.grad_sq);
    var scale = 1.0;
    if (ap.clip_norm > 0.0 && norm > ap.clip_norm) {
        scale = ap.clip_norm / norm;
    }
    let t = f32(stats.step);
    let c1 = 1.0 - pow(ap.beta1, t);
    let c2 = 1.0 - pow(ap.beta2, t);
    for (var k = 0u; k < PER; k = k + 1u) {
        let i = first + k * WG;
        if (i < ap.n) {
            let g = grads[i] * scale;
            let m = ap.beta1 * m1[i] + (1.0 - ap.beta1) * g;
            let v = ap.beta2 * m2[i] + (1.0 - ap.beta2) * g * g;
            m1[i] = m;
            m2[i] = v;
            let p = params[i];
            let update = (m / c1) / (sqrt(v / c2) + ap.eps) + ap.weight_decay * p;
            params[i] = p - ap.lr * update;
        }
    }
}

// context_step: a session's context (the first cd.context values of the network input) takes
// one Adam step (no clipping) along the input gradient, on the device, so that the next
// forward pass runs in the same submit; the rest of the input becomes the next feedback
// summary. The same arithmetic as the host's `adam_update`. Grid: ceil(cd.width / WG).
@group(0) @binding(6) var<uniform> cd: ContextDims;
@group(0) @binding(7) var<storage, read_write> ctx_in: array<f32>;
@group(0) @binding(8) var<storage, read> ctx_grad: array<f32>;
@group(0) @binding(9) var<storage, read_write> ctx_m: array<f32>;
@group(0) @binding(10) var<storage, read_write> ctx_v: array<f32>;
@group(0) @binding(11) var<storage, read> ctx_tail: array<f32>;

@compute @workgroup_size(256)
fn context_step(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= cd.width) {
        return;
    }
    if (i >= cd.context) {
        ctx_in[i] = ctx_tail[i - cd.context];
        return;
    }
    let t = f32(cd.step);
    let c1 = 1.0 - pow(cd.beta1, t);
    let c2 = 1.0 - pow(cd.beta2, t);
    let g = ctx_grad[i];
    let m = cd.beta1 * ctx_m[i] + (1.0 - cd.beta1) * g;
    let v = cd.beta2 * ctx_v[i] + (1.0 - cd.beta2) * g * g;
    ctx_m[i] = m;
    ctx_v[i] = v;
    let p = ctx_in[i];
    ctx_in[i] = p - cd.lr * ((m / c1) / (sqrt(v / c2) + cd.eps) + cd.weight_decay * p);
}
