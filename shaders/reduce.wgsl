// Reductions. `reduce` sums, averages or takes the squared norm of a vector (one workgroup,
// tree reduction). `step_stats` closes a training step on the GPU: squared gradient norm for
// clipping, the batch's mean loss and entropy accumulated, the Adam step counter advanced —
// or, when the loss or the gradient is not finite, the step counted as skipped.

override MODE: u32 = 0u;   // 0 sum, 1 mean, 2 squared norm

@group(0) @binding(0) var<uniform> rd: ReduceDims;
@group(0) @binding(1) var<storage, read> data: array<f32>;
@group(0) @binding(2) var<storage, read_write> result: array<f32>;

@compute @workgroup_size(256)
fn reduce(@builtin(local_invocation_id) lid: vec3<u32>) {
    var acc = 0.0;
    for (var i = lid.x; i < rd.n; i = i + WG) {
        let v = data[i];
        if (MODE == 2u) {
            acc = acc + v * v;
        } else {
            acc = acc + v;
        }
    }
    let total = wg_sum(acc, lid.x);
    if (lid.x == 0u) {
        if (MODE == 1u) {
            result[0] = total / f32(max(rd.n, 1u));
        } else {
            result[0] = total;
        }
    }
}

@group(0) @binding(3) var<uniform> st: StatDims;
@group(0) @binding(4) var<storage, read> grads: array<f32>;
@group(0) @binding(5) var<storage, read> row_stats: array<f32>;
@group(0) @binding(6) var<storage, read_write> stats: StepSums;

@compute @workgroup_size(256)
fn step_stats(@builtin(local_invocation_id) lid: vec3<u32>) {
    var sq = 0.0;
    for (var i = lid.x; i < st.n_params; i = i + WG) {
        let g = grads[i];
        sq = sq + g * g;
    }
    sq = wg_sum(sq, lid.x);
    var loss = 0.0;
    var ent = 0.0;
    for (var r = lid.x; r < st.rows; r = r + WG) {
        loss = loss + row_stats[2u * r];
        ent = ent + row_stats[2u * r + 1u];
    }
    loss = wg_sum(loss, lid.x);
    ent = wg_sum(ent, lid.x);
    if (lid.x == 0u) {
        let inv = 1.0 / f32(st.rows);
        if (finite(sq) && finite(loss * inv)) {
            stats.step = stats.step + 1u;
            stats.steps = stats.steps + 1u;
            stats.grad_sq = sq;
            stats.last_loss = loss * inv;
            stats.loss_sum = stats.loss_sum + loss * inv;
            stats.entropy_sum = stats.entropy_sum + ent * inv;
        } else {
            // mark the step for adam.wgsl to skip: a negative grad_sq
            stats.skipped = stats.skipped + 1u;
            stats.grad_sq = -1.0;
        }
    }
}
