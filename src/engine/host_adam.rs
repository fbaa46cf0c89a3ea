//! Adam on host memory: the CPU engine's optimiser, first-order MAML's outer loop and a
//! session's context.

use super::Adam;

/// Adam moments and the number of the step being taken (1 for the first).
pub(crate) struct AdamState<'a> {
    pub m: &'a mut [f32],
    pub v: &'a mut [f32],
    pub step: u32,
}

/// One Adam step on host memory (decoupled weight decay, gradients scaled down to
/// `adam.clip_norm` when their global norm `norm` exceeds it), as the GPU's Adam kernel does it:
/// the CPU engine's optimiser, the outer loop of first-order MAML and a session's context.
pub(crate) fn adam_update(
    params: &mut [f32],
    state: &mut AdamState<'_>,
    grads: &[f32],
    adam: Adam,
    norm: f32,
) {
    let scale = if adam.clip_norm > 0.0 && norm > adam.clip_norm {
        adam.clip_norm / norm
    } else {
        1.0
    };
    let t = state.step as f32;
    let (c1, c2) = (1.0 - adam.beta1.powf(t), 1.0 - adam.beta2.powf(t));
    let moments = params
        .iter_mut()
        .zip(state.m.iter_mut())
        .zip(state.v.iter_mut());
    for (((p, m1), m2), &g) in moments.zip(grads) {
        let g = g * scale;
        *m1 = adam.beta1 * *m1 + (1.0 - adam.beta1) * g;
        *m2 = adam.beta2 * *m2 + (1.0 - adam.beta2) * g * g;
        let update = (*m1 / c1) / ((*m2 / c2).sqrt() + adam.eps) + adam.weight_decay * *p;
        *p -= adam.lr * update;
    }
}
