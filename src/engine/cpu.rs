//! The CPU engine: every kernel of `shaders/` in plain Rust, with the same semantics.
//! It is the reference the GPU kernels are tested against and the fallback without an adapter.

use super::{
    adam_update, check_batch, check_inputs, check_items, check_log_probs, check_optimizer,
    check_params, check_policy, check_sample, rng, Adam, AdamState, Batch, Counters, Engine,
    EngineError, EngineInfo, Loss, Mask, OptimizerState, Reduce, Result, Row, SlateSpec, Slates,
    TrainStats,
};
use crate::model::{Head, Layer, ModelConfig};

mod fisher;

/// Runs a future that is ready when first polled, as the CPU engine's are, without an executor
/// (evaluation, the Python package, dataset setup); an engine that does not answer at once
/// (a GPU engine) is an error.
pub fn ready<F: std::future::Future>(f: F) -> Result<F::Output> {
    use std::task::{Context, Poll, Waker};
    match std::pin::pin!(f)
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(v) => Ok(v),
        Poll::Pending => Err(EngineError::Input(
            "the engine did not answer at once: this runs on the CPU engine".into(),
        )),
    }
}

/// Plain-Rust engine. Holds parameters, Adam moments and the item matrix in memory.
pub struct CpuEngine {
    cfg: ModelConfig,
    layers: Vec<Layer>,
    offsets: Vec<usize>,
    params: Vec<f32>,
    adam_m: Vec<f32>,
    adam_v: Vec<f32>,
    items: Vec<f32>,
    stats: Accumulated,
    counters: Counters,
}

#[derive(Default)]
struct Accumulated {
    step: u32,
    steps: u32,
    loss_sum: f32,
    entropy_sum: f32,
    last_loss: f32,
    grad_norm: f32,
    skipped: u32,
}

/// Activations of one forward pass: `acts[0]` is the input, `acts[l + 1]` the output of layer l.
struct Forward {
    rows: usize,
    acts: Vec<Vec<f32>>,
}

impl CpuEngine {
    /// Creates the engine with the configuration's initial parameters and a zero item matrix.
    pub fn new(cfg: &ModelConfig) -> Result<Self> {
        cfg.validate().map_err(EngineError::Config)?;
        let params = cfg.init_params();
        let n = params.len();
        Ok(CpuEngine {
            layers: cfg.layers(),
            offsets: cfg.offsets(),
            params,
            adam_m: vec![0.0; n],
            adam_v: vec![0.0; n],
            items: vec![0.0; cfg.items() * cfg.output],
            stats: Accumulated::default(),
            counters: Counters::default(),
            cfg: cfg.clone(),
        })
    }

    fn run_forward(&self, inputs: &[f32]) -> Forward {
        let rows = inputs.len() / self.cfg.input;
        let mut acts = vec![inputs.to_vec()];
        for (l, layer) in self.layers.iter().enumerate() {
            let y = dense_forward(&acts[l], &self.params[self.offsets[l]..], rows, layer);
            acts.push(y);
        }
        Forward { rows, acts }
    }

    /// Raw scores `u · e_j` for every row of MLP outputs `u`.
    fn score(&self, user: &[f32], rows: usize) -> Vec<f32> {
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
    fn head_gradient(&self, fwd: &Forward, batch: &Batch, loss: Loss) -> (Vec<f32>, f32, f32) {
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
        let (entropy_w, tau) = match loss {
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
        };
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
    fn backward(&self, fwd: &Forward, d_out: Vec<f32>, want_input: bool) -> (Vec<f32>, Vec<f32>) {
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

    /// One optimiser step; returns the input gradient (when `want_input`) and the loss.
    fn train_step(
        &mut self,
        batch: &Batch,
        loss: Loss,
        adam: Adam,
        want_input: bool,
    ) -> (Vec<f32>, f32) {
        let fwd = self.run_forward(&batch.inputs);
        let (d_out, value, entropy) = self.head_gradient(&fwd, batch, loss);
        let (grads, d_input) = self.backward(&fwd, d_out, want_input);
        let sq: f32 = grads.iter().map(|g| g * g).sum();
        if !(sq.is_finite() && value.is_finite()) {
            self.stats.skipped += 1;
            self.stats.grad_norm = f32::INFINITY;
            return (d_input, value);
        }
        self.adam_step(&grads, adam, sq.sqrt());
        self.stats.steps += 1;
        self.stats.loss_sum += value;
        self.stats.entropy_sum += entropy;
        self.stats.last_loss = value;
        self.counters.train_steps += 1;
        (d_input, value)
    }

    fn adam_step(&mut self, grads: &[f32], adam: Adam, norm: f32) {
        self.stats.grad_norm = norm;
        self.stats.step += 1;
        let mut state = AdamState {
            m: &mut self.adam_m,
            v: &mut self.adam_v,
            step: self.stats.step,
        };
        adam_update(&mut self.params, &mut state, grads, adam, norm);
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

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Log-softmax of `scores / tau` over the items row `r` of `mask` leaves in; masked items (and
/// every item of a fully masked row) get `f32::MIN`.
fn masked_log_softmax(scores: &[f32], mask: Option<&Mask>, r: usize, tau: f32) -> Vec<f32> {
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

/// The policy-gradient weight on `(onehot(a) - p)` and the row's surrogate loss (without the
/// entropy term), given `log π(a)`.
pub(crate) fn pg_coefficient(loss: Loss, row: &Row, logp_a: f32) -> (f32, f32) {
    let adv = row.reward - row.baseline;
    match loss {
        Loss::Ppo { clip, .. } => {
            let ratio = (logp_a - row.old_logp).exp();
            let clipped = ratio.clamp(1.0 - clip, 1.0 + clip);
            let (s1, s2) = (ratio * adv, clipped * adv);
            if s1 <= s2 {
                (adv * ratio, -s1)
            } else {
                (0.0, -s2)
            }
        }
        _ => (adv, -adv * logp_a),
    }
}

impl Engine for CpuEngine {
    fn info(&self) -> EngineInfo {
        EngineInfo {
            engine: "cpu".into(),
            adapter: "plain Rust".into(),
            backend: "cpu".into(),
            device_type: "cpu".into(),
            fallback: false,
        }
    }

    fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    fn counters(&self) -> Counters {
        self.counters
    }

    fn set_params(&mut self, params: &[f32]) -> Result<()> {
        check_params(self.params.len(), params)?;
        self.params.copy_from_slice(params);
        self.adam_m.fill(0.0);
        self.adam_v.fill(0.0);
        self.stats = Accumulated::default();
        Ok(())
    }

    async fn params(&mut self) -> Result<Vec<f32>> {
        Ok(self.params.clone())
    }

    fn set_items(&mut self, embeddings: &[f32]) -> Result<()> {
        check_items(&self.cfg, embeddings)?;
        self.items.copy_from_slice(embeddings);
        Ok(())
    }

    fn item_vector(&self, item: u32) -> Result<Vec<f32>> {
        check_policy(&self.cfg)?;
        super::item_row(&self.items, self.cfg.output, item)
    }

    async fn forward(&mut self, inputs: &[f32]) -> Result<Vec<f32>> {
        check_inputs(&self.cfg, inputs)?;
        let mut fwd = self.run_forward(inputs);
        Ok(fwd.acts.pop().unwrap_or_default())
    }

    async fn scores(&mut self, inputs: &[f32]) -> Result<Vec<f32>> {
        check_policy(&self.cfg)?;
        let rows = check_inputs(&self.cfg, inputs)?;
        let fwd = self.run_forward(inputs);
        Ok(self.score(&fwd.acts[self.layers.len()], rows))
    }

    async fn log_probs(
        &mut self,
        inputs: &[f32],
        mask: Option<&Mask>,
        temperature: f32,
    ) -> Result<Vec<f32>> {
        let (n, rows) = check_log_probs(&self.cfg, inputs, mask, temperature)?;
        let scores = self.scores(inputs).await?;
        Ok((0..rows)
            .flat_map(|r| masked_log_softmax(&scores[r * n..(r + 1) * n], mask, r, temperature))
            .collect())
    }

    async fn sample(
        &mut self,
        inputs: &[f32],
        mask: Option<&Mask>,
        spec: SlateSpec,
    ) -> Result<Slates> {
        let (n, rows) = check_sample(&self.cfg, inputs, mask, &spec)?;
        let scores = self.scores(inputs).await?;
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
            // position p's normaliser is the mass of the items not chosen before it, summed
            // without subtracting (the unchosen items, then the slate from its end backwards)
            let mut rest: f32 = (0..n)
                .filter(|&j| open(j) && !chosen.contains(&j))
                .map(|j| (z(j) - max).exp())
                .sum();
            let mut lp = vec![0.0; spec.k];
            for (p, &a) in chosen.iter().enumerate().rev() {
                rest += (z(a) - max).exp();
                lp[p] = z(a) - max - rest.max(f32::MIN_POSITIVE).ln();
            }
            logp.extend(lp);
        }
        Ok(Slates {
            k: spec.k,
            items,
            logp,
        })
    }

    async fn gradients(&mut self, batch: &Batch, loss: Loss) -> Result<(Vec<f32>, f32)> {
        check_batch(&self.cfg, batch, loss)?;
        let fwd = self.run_forward(&batch.inputs);
        let (d_out, value, _) = self.head_gradient(&fwd, batch, loss);
        Ok((self.backward(&fwd, d_out, false).0, value))
    }

    async fn input_gradient(&mut self, batch: &Batch, loss: Loss) -> Result<(Vec<f32>, f32)> {
        check_batch(&self.cfg, batch, loss)?;
        let fwd = self.run_forward(&batch.inputs);
        let (d_out, value, _) = self.head_gradient(&fwd, batch, loss);
        Ok((self.backward(&fwd, d_out, true).1, value))
    }

    fn train(&mut self, batch: &Batch, loss: Loss, adam: Adam, steps: u32) -> Result<()> {
        check_batch(&self.cfg, batch, loss)?;
        for _ in 0..steps {
            self.train_step(batch, loss, adam, false);
        }
        Ok(())
    }

    async fn train_with_input_gradient(
        &mut self,
        batch: &Batch,
        loss: Loss,
        adam: Adam,
    ) -> Result<(Vec<f32>, f32)> {
        check_batch(&self.cfg, batch, loss)?;
        Ok(self.train_step(batch, loss, adam, true))
    }

    async fn stats(&mut self) -> Result<TrainStats> {
        let s = &self.stats;
        let n = s.steps.max(1) as f32;
        Ok(TrainStats {
            step: s.step,
            steps: s.steps,
            mean_loss: s.loss_sum / n,
            last_loss: s.last_loss,
            mean_entropy: s.entropy_sum / n,
            grad_norm: s.grad_norm,
            skipped: s.skipped,
        })
    }

    fn reset_stats(&mut self) -> Result<()> {
        self.stats.steps = 0;
        self.stats.loss_sum = 0.0;
        self.stats.entropy_sum = 0.0;
        Ok(())
    }

    async fn optimizer_state(&mut self) -> Result<OptimizerState> {
        Ok(OptimizerState {
            m: self.adam_m.clone(),
            v: self.adam_v.clone(),
            step: self.stats.step,
        })
    }

    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        check_optimizer(self.params.len(), state)?;
        self.adam_m.copy_from_slice(&state.m);
        self.adam_v.copy_from_slice(&state.v);
        self.stats.step = state.step;
        Ok(())
    }

    async fn reduce(&mut self, data: &[f32], op: Reduce) -> Result<f32> {
        Ok(reduce(data, op))
    }
}

/// A reduction in f64, the reference for the GPU's tree reductions.
pub fn reduce(data: &[f32], op: Reduce) -> f32 {
    let sum: f64 = match op {
        Reduce::SquaredNorm => data.iter().map(|&x| (x as f64) * (x as f64)).sum(),
        _ => data.iter().map(|&x| x as f64).sum(),
    };
    match op {
        Reduce::Mean if !data.is_empty() => (sum / data.len() as f64) as f32,
        _ => sum as f32,
    }
}
