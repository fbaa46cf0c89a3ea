//! The plain kernels: every operation of `shaders/` written as the textbook loops, one
//! multiply-add at a time in index order. [`Kernels::Reference`](super::Kernels) runs them; the
//! blocked kernels (`fast.rs`, `kernels.rs`) are tested against them, and the Fisher-vector
//! product (`fisher.rs`) uses them.

use super::{pg_coefficient, CpuEngine};
use crate::engine::backend::Scoring;
use crate::engine::{rng, Batch, EngineError, Loss, Mask, Result, SlateSpec, Slates};
use crate::model::{Head, Layer};

/// Activations of one forward pass: `acts[0]` is the input, `acts[l + 1]` the output of layer l.
pub(super) struct Forward {
    pub(super) rows: usize,
    pub(super) acts: Vec<Vec<f32>>,
}

impl CpuEngine {
    pub(super) fn run_forward(&self, inputs: &[f32]) -> Forward {
        let rows = inputs.len() / self.cfg.input;
        let mut acts = vec![inputs.to_vec()];
        for (l, layer) in self.layers.iter().enumerate() {
            let y = dense_forward(&acts[l], &self.params[self.offsets[l]..], rows, layer);
            acts.push(y);
        }
        Forward { rows, acts }
    }

    /// Raw scores `u · e_j` for every row of MLP outputs `u`.
    pub(super) fn score(&self, user: &[f32], rows: usize) -> Vec<f32> {
        let d = self.cfg.output;
        let n = self.cfg.items();
        let mut out = vec![0.0; rows * n];
        for r in 0..rows {
            let u = &user[r * d..(r + 1) * d];
            for (j, e) in self.items.chunks_exact(d).enumerate() {
                out[r * n + j] = dot(u, e);
            }
        }
        out
    }

    /// Loss gradient w.r.t. the MLP output, and the mean loss and entropy over rows.
    pub(super) fn head_gradient(
        &self,
        fwd: &Forward,
        batch: &Batch,
        loss: Loss,
    ) -> (Vec<f32>, f32, f32) {
        let rows = fwd.rows;
        let out = &fwd.acts[self.layers.len()];
        let inv_b = 1.0 / rows as f32;
        match (loss, self.cfg.head) {
            (Loss::Mse, Head::Regression { low, high }) => {
                let scale = high - low;
                let mut dy = vec![0.0; rows];
                let mut total = 0.0;
                for (r, row) in batch.rows.iter().enumerate() {
                    let err = low + scale * out[r] - row.reward;
                    total += err * err;
                    dy[r] = 2.0 * err * scale * inv_b;
                }
                (dy, total * inv_b, 0.0)
            }
            _ => self.policy_gradient(out, rows, batch, loss),
        }
    }

    fn policy_gradient(
        &self,
        user: &[f32],
        rows: usize,
        batch: &Batch,
        loss: Loss,
    ) -> (Vec<f32>, f32, f32) {
        let (entropy_w, tau) = entropy_and_temperature(loss);
        let d = self.cfg.output;
        let n = self.cfg.items();
        let inv_b = 1.0 / rows as f32;
        let scores = self.score(user, rows);
        let mut du = vec![0.0; rows * d];
        let (mut loss_sum, mut ent_sum) = (0.0, 0.0);
        for (r, row) in batch.rows.iter().enumerate() {
            let lp = masked_log_softmax(&scores[r * n..(r + 1) * n], batch.mask.as_ref(), r, tau);
            let mut h = 0.0;
            for &l in &lp {
                if l != f32::MIN {
                    h -= l.exp() * l;
                }
            }
            let (coef, row_loss) = pg_coefficient(loss, row, lp[row.action as usize]);
            let du_r = &mut du[r * d..(r + 1) * d];
            for (j, e) in self.items.chunks_exact(d).enumerate() {
                if lp[j] == f32::MIN {
                    continue;
                }
                let p = lp[j].exp();
                let onehot = if j == row.action as usize { 1.0 } else { 0.0 };
                let dz = inv_b * (-coef * (onehot - p) + entropy_w * p * (lp[j] + h));
                for (g, &ev) in du_r.iter_mut().zip(e) {
                    *g += dz * ev / tau;
                }
            }
            loss_sum += row_loss - entropy_w * h;
            ent_sum += h;
        }
        (du, loss_sum * inv_b, ent_sum * inv_b)
    }

    /// Backward pass from the gradient w.r.t. the MLP output to the flat parameter gradient and,
    /// when `want_input`, the gradient w.r.t. the inputs (else empty).
    pub(super) fn backward(
        &self,
        fwd: &Forward,
        d_out: Vec<f32>,
        want_input: bool,
    ) -> (Vec<f32>, Vec<f32>) {
        let mut grads = vec![0.0; self.params.len()];
        let mut dy = d_out;
        for l in (0..self.layers.len()).rev() {
            let layer = &self.layers[l];
            let (x, y) = (&fwd.acts[l], &fwd.acts[l + 1]);
            let w = &self.params[self.offsets[l]..];
            let (i_n, o_n) = (layer.inputs, layer.outputs);
            let dz: Vec<f32> = dy
                .iter()
                .zip(y)
                .map(|(&g, &yv)| g * layer.activation.derivative_from_output(yv))
                .collect();
            let g = &mut grads[self.offsets[l]..self.offsets[l] + layer.param_count()];
            for r in 0..fwd.rows {
                let dz_r = &dz[r * o_n..(r + 1) * o_n];
                for i in 0..i_n {
                    let xv = x[r * i_n + i];
                    for (gw, &dzv) in g[i * o_n..(i + 1) * o_n].iter_mut().zip(dz_r) {
                        *gw += xv * dzv;
                    }
                }
                for (gb, &dzv) in g[i_n * o_n..].iter_mut().zip(dz_r) {
                    *gb += dzv;
                }
            }
            if l > 0 || want_input {
                let mut dx = vec![0.0; fwd.rows * i_n];
                for r in 0..fwd.rows {
                    for i in 0..i_n {
                        dx[r * i_n + i] =
                            dot(&dz[r * o_n..(r + 1) * o_n], &w[i * o_n..(i + 1) * o_n]);
                    }
                }
                dy = dx;
            }
        }
        (grads, if want_input { dy } else { Vec::new() })
    }

    /// One forward and backward pass: the parameter gradient, the input gradient (when
    /// `want_input`, else empty), the loss and the entropy.
    pub(super) fn reference_gradients(
        &self,
        batch: &Batch,
        loss: Loss,
        want_input: bool,
    ) -> (Vec<f32>, Vec<f32>, f32, f32) {
        let fwd = self.run_forward(&batch.inputs);
        let (d_out, value, entropy) = self.head_gradient(&fwd, batch, loss);
        let (grads, d_input) = self.backward(&fwd, d_out, want_input);
        (grads, d_input, value, entropy)
    }

    /// Masked, temperature-scaled log-softmax of every row.
    pub(super) fn reference_log_probs(&self, x: Scoring<'_>, temperature: f32) -> Vec<f32> {
        let (inputs, mask) = (x.inputs, x.mask);
        let n = self.cfg.items();
        let fwd = self.run_forward(inputs);
        let scores = self.score(&fwd.acts[self.layers.len()], fwd.rows);
        (0..fwd.rows)
            .flat_map(|r| masked_log_softmax(&scores[r * n..(r + 1) * n], mask, r, temperature))
            .collect()
    }

    /// Gumbel-top-k (or greedy top-k): `k` scans over every row's keys.
    pub(super) fn reference_sample(&self, x: Scoring<'_>, spec: SlateSpec) -> Result<Slates> {
        let (inputs, mask) = (x.inputs, x.mask);
        let n = self.cfg.items();
        let fwd = self.run_forward(inputs);
        let rows = fwd.rows;
        let scores = self.score(&fwd.acts[self.layers.len()], rows);
        let mut items = Vec::with_capacity(rows * spec.k);
        let mut logp = Vec::with_capacity(rows * spec.k);
        for r in 0..rows {
            let s = &scores[r * n..(r + 1) * n];
            let open = |j: usize| mask.is_none_or(|m| !m.get(r, j));
            let z = |j: usize| s[j] / spec.temperature;
            let max = (0..n).filter(|&j| open(j)).map(z).fold(f32::MIN, f32::max);
            let keys: Vec<f32> = (0..n)
                .map(|j| {
                    let noise = if spec.greedy {
                        0.0
                    } else {
                        rng::gumbel(spec.seed, spec.draw, r as u32, j as u32)
                    };
                    z(j) + noise
                })
                .collect();
            let mut chosen: Vec<usize> = Vec::with_capacity(spec.k);
            for _ in 0..spec.k {
                let mut best: Option<usize> = None;
                for j in (0..n).filter(|&j| open(j) && !chosen.contains(&j)) {
                    if best.is_none_or(|b| keys[j] > keys[b]) {
                        best = Some(j);
                    }
                }
                let a = best.ok_or_else(|| EngineError::Input("no item left to choose".into()))?;
                chosen.push(a);
                items.push(a as u32);
            }
            logp.extend(slate_log_propensities(
                &chosen,
                z,
                max,
                |j| open(j) && !chosen.contains(&j),
                n,
            ));
        }
        Ok(Slates {
            k: spec.k,
            items,
            logp,
        })
    }
}

/// The entropy weight and the temperature of a policy-gradient loss.
pub(super) fn entropy_and_temperature(loss: Loss) -> (f32, f32) {
    match loss {
        Loss::Reinforce {
            entropy,
            temperature,
        }
        | Loss::Ppo {
            entropy,
            temperature,
            ..
        } => (entropy, temperature),
        Loss::Mse => unreachable!("checked by check_batch"),
    }
}

/// `act(X W + b)` for one layer whose `(inputs + 1) × outputs` block starts at `w[0]`.
fn dense_forward(x: &[f32], w: &[f32], rows: usize, layer: &Layer) -> Vec<f32> {
    let (i_n, o_n) = (layer.inputs, layer.outputs);
    let mut y = vec![0.0; rows * o_n];
    for r in 0..rows {
        let y_r = &mut y[r * o_n..(r + 1) * o_n];
        y_r.copy_from_slice(&w[i_n * o_n..(i_n + 1) * o_n]);
        for i in 0..i_n {
            let xv = x[r * i_n + i];
            for (yv, &wv) in y_r.iter_mut().zip(&w[i * o_n..(i + 1) * o_n]) {
                *yv += xv * wv;
            }
        }
        for yv in y_r.iter_mut() {
            *yv = layer.activation.apply(*yv);
        }
    }
    y
}

pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Log-softmax of `scores / tau` over the items row `r` of `mask` leaves in; masked items (and
/// every item of a fully masked row) get `f32::MIN`.
pub(super) fn masked_log_softmax(
    scores: &[f32],
    mask: Option<&Mask>,
    r: usize,
    tau: f32,
) -> Vec<f32> {
    let open = |j: usize| mask.is_none_or(|m| !m.get(r, j));
    let max = (0..scores.len())
        .filter(|&j| open(j))
        .map(|j| scores[j] / tau)
        .fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return vec![f32::MIN; scores.len()];
    }
    let sum: f32 = (0..scores.len())
        .filter(|&j| open(j))
        .map(|j| (scores[j] / tau - max).exp())
        .sum();
    let log_z = max + sum.ln();
    (0..scores.len())
        .map(|j| {
            if open(j) {
                scores[j] / tau - log_z
            } else {
                f32::MIN
            }
        })
        .collect()
}

/// The log-propensities of a slate `chosen` (in order) under the softmax of `z` (maximum `max`):
/// position p's normaliser is the mass of the items not chosen before it, summed without
/// subtracting (the `unchosen` items in index order, then the slate from its end backwards), so
/// that it stays accurate when one item holds nearly all the mass.
pub(super) fn slate_log_propensities(
    chosen: &[usize],
    z: impl Fn(usize) -> f32,
    max: f32,
    unchosen: impl Fn(usize) -> bool,
    n: usize,
) -> Vec<f32> {
    let mut rest: f32 = (0..n)
        .filter(|&j| unchosen(j))
        .map(|j| (z(j) - max).exp())
        .sum();
    let mut lp = vec![0.0; chosen.len()];
    for (p, &a) in chosen.iter().enumerate().rev() {
        rest += (z(a) - max).exp();
        lp[p] = z(a) - max - rest.max(f32::MIN_POSITIVE).ln();
    }
    lp
}
