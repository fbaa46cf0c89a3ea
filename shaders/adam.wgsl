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
