//! The blocked path of the CPU engine ([`Kernels::Blocked`](super::Kernels)): the reference's
//! math through the micro-kernels of `kernels.rs`, in scratch buffers that live as long as the
//! engine. The activations and scores of the last inputs are kept until the parameters, the
//! item matrix or the inputs change, and with them the softmax of the last slate (its
//! exponentials, maximum and sum under its mask and temperature), so a person's interaction (a
//! slate, its scores, then the reaction's input gradient on the same input and mask) runs the
//! network forward once, reads the item matrix twice, not four times, and takes one exponential
//! per item, not three; an input gradient alone forms no parameter gradient.

use super::reference::{entropy_and_temperature, masked_log_softmax};
use super::{kernels, pg_coefficient, select, CpuEngine};
use crate::engine::backend::{Checked, Scoring};
use crate::engine::{Batch, Loss, Mask, Result, SlateSpec, Slates};
use crate::model::{Activation, Head};

/// Buffers reused from call to call.
#[derive(Default)]
pub(super) struct Scratch {
    /// `acts[0]` the inputs, `acts[l + 1]` the outputs of layer l, of the last forward pass.
    acts: Vec<Vec<f32>>,
    /// Whether `acts` still belong to the parameters (false after they changed).
    forwarded: bool,
    /// Raw scores (`rows × items`) of the inputs in `scored`.
    scores: Vec<f32>,
    /// The inputs `scores` belongs to, while the parameters and items are unchanged.
    scored: Option<Vec<f32>>,
    /// The policy head's gradient w.r.t. the logits (`rows × items`).
    dlogits: Vec<f32>,
    /// Gradient w.r.t. the current layer's output, then (after a backward pass that wants it)
    /// w.r.t. the inputs.
    dy: Vec<f32>,
    dx: Vec<f32>,
    /// A layer's inputs, transposed.
    xt: Vec<f32>,
    grads: Vec<f32>,
    top: Vec<(f32, u32)>,
    /// The mask and temperature of the last slate, while `scores` are still its scores.
    softmax: Option<SoftmaxKey>,
    /// That slate's softmax exponentials (`rows × items`), and its maximum and sum per row.
    ex: Vec<f32>,
    row_softmax: Vec<select::Softmax>,
}

struct SoftmaxKey {
    mask: Option<Vec<u32>>,
    temperature: u32,
}

impl SoftmaxKey {
    fn new(mask: Option<&Mask>, temperature: f32) -> Self {
        SoftmaxKey {
            mask: mask.map(|m| m.words.clone()),
            temperature: temperature.to_bits(),
        }
    }

    fn is(&self, mask: Option<&Mask>, temperature: f32) -> bool {
        self.temperature == temperature.to_bits()
            && self.mask.as_deref() == mask.map(|m| m.words.as_slice())
    }
}

impl Scratch {
    /// Forgets the kept scores (the parameters or the item matrix changed).
    pub(super) fn params_changed(&mut self) {
        self.forwarded = false;
        self.scored = None;
        self.softmax = None;
    }

    /// The parameter gradient of the last backward pass.
    pub(super) fn grads(&self) -> &[f32] {
        &self.grads
    }

    /// Gives back the parameter-gradient buffer [`CpuEngine::fast_step_gradients`] took.
    pub(super) fn reuse_grads(&mut self, grads: Vec<f32>) {
        self.grads = grads;
    }

    /// The input gradient of the last backward pass that wanted it.
    pub(super) fn input_gradient(&self) -> &[f32] {
        &self.dy
    }
}

fn activate(activation: Activation, y: &mut [f32]) {
    match activation {
        Activation::Identity => {}
        Activation::Relu => y.iter_mut().for_each(|v| *v = v.max(0.0)),
        Activation::Sigmoid => y.iter_mut().for_each(|v| *v = activation.apply(*v)),
    }
}

/// The gradients a backward pass computes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    /// The parameters' only.
    Params,
    /// The inputs' only (a person's context): no parameter gradient is formed.
    Input,
    Both,
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

impl CpuEngine {
    /// The forward pass into the scratch activations (kept when they are this input's);
    /// returns the network's outputs.
    pub(super) fn fast_forward(&mut self, inputs: &[f32]) -> &[f32] {
        let s = &mut self.scratch;
        if s.forwarded && s.acts.first().is_some_and(|x| same_bits(x, inputs)) {
            return &s.acts[self.layers.len()];
        }
        let rows = inputs.len() / self.cfg.input;
        s.forwarded = true;
        let acts = &mut s.acts;
        acts.resize_with(self.layers.len() + 1, Vec::new);
        acts[0].clear();
        acts[0].extend_from_slice(inputs);
        for (l, layer) in self.layers.iter().enumerate() {
            let (i_n, o_n) = (layer.inputs, layer.outputs);
            let w = &self.params[self.offsets[l]..self.offsets[l] + layer.param_count()];
            let (done, next) = acts.split_at_mut(l + 1);
            let y = &mut next[0];
            y.clear();
            for _ in 0..rows {
                y.extend_from_slice(&w[i_n * o_n..]);
            }
            kernels::matmul_acc(&done[l], rows, w, i_n, o_n, y);
            activate(layer.activation, y);
        }
        &acts[self.layers.len()]
    }

    /// The scores of the last forward pass (run on `inputs`), kept or computed.
    fn scores_of_forward(&mut self, inputs: &[f32]) {
        if self
            .scratch
            .scored
            .as_deref()
            .is_some_and(|s| same_bits(s, inputs))
        {
            return;
        }
        let (d, n) = (self.cfg.output, self.cfg.items());
        let rows = inputs.len() / self.cfg.input;
        let s = &mut self.scratch;
        s.softmax = None;
        s.scores.clear();
        s.scores.resize(rows * n, 0.0);
        kernels::dots(
            &s.acts[self.layers.len()],
            rows,
            &self.items,
            n,
            d,
            &mut s.scores,
        );
        let scored = s.scored.get_or_insert_with(Vec::new);
        scored.clear();
        scored.extend_from_slice(inputs);
    }

    /// Raw scores of `inputs` (`rows × items`), kept or computed.
    pub(super) fn fast_scores(&mut self, inputs: &[f32]) -> &[f32] {
        let kept = self
            .scratch
            .scored
            .as_deref()
            .is_some_and(|s| same_bits(s, inputs));
        if !kept {
            self.fast_forward(inputs);
            self.scores_of_forward(inputs);
        }
        &self.scratch.scores
    }

    pub(super) fn fast_log_probs(&mut self, x: Scoring<'_>, temperature: f32) -> Vec<f32> {
        let (inputs, mask) = (x.inputs, x.mask);
        let n = self.cfg.items();
        let scores = self.fast_scores(inputs);
        let rows = scores.len() / n;
        let mut out = Vec::with_capacity(rows * n);
        for r in 0..rows {
            out.extend(masked_log_softmax(
                &scores[r * n..(r + 1) * n],
                mask,
                r,
                temperature,
            ));
        }
        out
    }

    pub(super) fn fast_sample(&mut self, x: Scoring<'_>, spec: SlateSpec) -> Result<Slates> {
        let (inputs, mask) = (x.inputs, x.mask);
        let n = self.cfg.items();
        self.fast_scores(inputs);
        let s = &mut self.scratch;
        let rows = s.scores.len() / n;
        let mut items = Vec::with_capacity(rows * spec.k);
        let mut logp = Vec::with_capacity(rows * spec.k);
        s.softmax = None;
        s.ex.resize(rows * n, 0.0);
        s.row_softmax.clear();
        for r in 0..rows {
            let open = |j: usize| mask.is_none_or(|m| !m.get(r, j));
            let row = &s.scores[r * n..(r + 1) * n];
            let ex = &mut s.ex[r * n..(r + 1) * n];
            let (top, items, logp) = (&mut s.top, &mut items, &mut logp);
            let sm = select::slate(row, open, &spec, r as u32, top, items, logp, ex)?;
            s.row_softmax.push(sm);
        }
        s.softmax = Some(SoftmaxKey::new(mask, spec.temperature));
        Ok(Slates {
            k: spec.k,
            items,
            logp,
        })
    }

    /// A forward and backward pass on `batch`: the gradients `want` asks for in the scratch
    /// space; returns the loss and the entropy.
    pub(super) fn fast_gradients(&mut self, batch: &Batch, loss: Loss, want: Want) -> (f32, f32) {
        self.fast_forward(&batch.inputs);
        let rows = batch.rows.len();
        let value = match (loss, self.cfg.head) {
            (Loss::Mse, Head::Regression { low, high }) => {
                let scale = high - low;
                let inv_b = 1.0 / rows as f32;
                let s = &mut self.scratch;
                let out = &s.acts[self.layers.len()];
                s.dy.clear();
                let mut total = 0.0;
                for (r, row) in batch.rows.iter().enumerate() {
                    let err = low + scale * out[r] - row.reward;
                    total += err * err;
                    s.dy.push(2.0 * err * scale * inv_b);
                }
                (total * inv_b, 0.0)
            }
            _ => self.policy_head(batch, loss),
        };
        self.fast_backward(rows, want);
        value
    }

    /// The policy head: logits, masked softmax, REINFORCE / PPO with the entropy bonus, and the
    /// gradient w.r.t. the user vectors (into `scratch.dy`); returns the mean loss and entropy.
    fn policy_head(&mut self, batch: &Batch, loss: Loss) -> (f32, f32) {
        let (entropy_w, tau) = entropy_and_temperature(loss);
        let (d, n) = (self.cfg.output, self.cfg.items());
        let rows = batch.rows.len();
        let inv_b = 1.0 / rows as f32;
        self.scores_of_forward(&batch.inputs);
        let s = &mut self.scratch;
        let kept = s
            .softmax
            .as_ref()
            .is_some_and(|k| k.is(batch.mask.as_ref(), tau))
            && s.row_softmax.len() == rows;
        s.dlogits.clear();
        s.dlogits.resize(rows * n, 0.0);
        let (mut loss_sum, mut ent_sum) = (0.0, 0.0);
        for (r, row) in batch.rows.iter().enumerate() {
            let open = |j: usize| batch.mask.as_ref().is_none_or(|m| !m.get(r, j));
            let z = &s.scores[r * n..(r + 1) * n];
            let dz = &mut s.dlogits[r * n..(r + 1) * n];
            let (max, sum) = if kept {
                // the last slate's softmax: the values this row would compute
                dz.copy_from_slice(&s.ex[r * n..(r + 1) * n]);
                (s.row_softmax[r].max, s.row_softmax[r].sum)
            } else {
                let mut max = f32::NEG_INFINITY;
                for (j, &v) in z.iter().enumerate() {
                    if open(j) {
                        max = max.max(v / tau);
                    }
                }
                if max == f32::NEG_INFINITY {
                    // every item masked: no gradient, as in the reference
                    loss_sum += pg_coefficient(loss, row, f32::MIN).1;
                    continue;
                }
                let mut sum = 0.0;
                for (j, (g, &v)) in dz.iter_mut().zip(z).enumerate() {
                    if open(j) {
                        *g = (v / tau - max).exp();
                        sum += *g;
                    }
                }
                (max, sum)
            };
            let log_z = max + sum.ln();
            let inv_sum = 1.0 / sum;
            let mut h = 0.0;
            for (j, (&e, &v)) in dz.iter().zip(z).enumerate() {
                if open(j) {
                    h -= e * inv_sum * (v / tau - log_z);
                }
            }
            let a = row.action as usize;
            let (coef, row_loss) = pg_coefficient(loss, row, z[a] / tau - log_z);
            for (j, (g, &v)) in dz.iter_mut().zip(z).enumerate() {
                if open(j) {
                    let p = *g * inv_sum;
                    let onehot = if j == a { 1.0 } else { 0.0 };
                    let lp = v / tau - log_z;
                    *g = inv_b * (-coef * (onehot - p) + entropy_w * p * (lp + h)) / tau;
                }
            }
            loss_sum += row_loss - entropy_w * h;
            ent_sum += h;
        }
        s.dy.clear();
        s.dy.resize(rows * d, 0.0);
        kernels::matmul_acc(&s.dlogits, rows, &self.items, n, d, &mut s.dy);
        (loss_sum * inv_b, ent_sum * inv_b)
    }

    /// From the gradient w.r.t. the network's output (`scratch.dy`) to the parameter gradient
    /// (in `scratch.grads`) and the input gradient (left in `scratch.dy`), as `want` asks.
    fn fast_backward(&mut self, rows: usize, want: Want) {
        let s = &mut self.scratch;
        let want_params = want != Want::Input;
        let want_input = want != Want::Params;
        if want_params {
            s.grads.clear();
            s.grads.resize(self.params.len(), 0.0);
        }
        for l in (0..self.layers.len()).rev() {
            let layer = &self.layers[l];
            let (i_n, o_n) = (layer.inputs, layer.outputs);
            let (x, y) = (&s.acts[l], &s.acts[l + 1]);
            if layer.activation != Activation::Identity {
                for (g, &yv) in s.dy.iter_mut().zip(y) {
                    *g *= layer.activation.derivative_from_output(yv);
                }
            }
            let off = self.offsets[l];
            if want_params {
                let (gw, gb) = s.grads[off..off + layer.param_count()].split_at_mut(i_n * o_n);
                kernels::transpose(x, rows, i_n, &mut s.xt);
                kernels::matmul_acc(&s.xt, i_n, &s.dy, rows, o_n, gw);
                for dz in s.dy.chunks_exact(o_n) {
                    kernels::axpy(gb, 1.0, dz);
                }
            }
            if l > 0 || want_input {
                s.dx.clear();
                s.dx.resize(rows * i_n, 0.0);
                let w = &self.params[off..off + i_n * o_n];
                kernels::dots(&s.dy, rows, w, i_n, o_n, &mut s.dx);
                std::mem::swap(&mut s.dy, &mut s.dx);
            }
        }
    }

    /// The gradients of one optimiser step on the blocked path: the parameters' (the scratch
    /// buffer, given back by [`Scratch::reuse_grads`]) and their squared norm, the inputs' (when
    /// `want_input`), the loss and the entropy.
    pub(super) fn fast_step_gradients(
        &mut self,
        b: Checked<'_>,
        want_input: bool,
    ) -> (Vec<f32>, f32, Vec<f32>, f32, f32) {
        let want = if want_input { Want::Both } else { Want::Params };
        let (value, entropy) = self.fast_gradients(b.batch, b.loss, want);
        let d_input = if want_input {
            self.scratch.dy.clone()
        } else {
            Vec::new()
        };
        let grads = std::mem::take(&mut self.scratch.grads);
        let sq = kernels::dot(&grads, &grads);
        (grads, sq, d_input, value, entropy)
    }
}
