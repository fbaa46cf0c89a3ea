//! The CPU engine: every kernel of `shaders/` in Rust, with the same semantics. It is the
//! reference the GPU kernels are tested against and the fallback without an adapter.
//!
//! Two sets of kernels ([`Kernels`]): `reference.rs` holds the plain loops, one multiply-add at
//! a time; `fast.rs` (the default) runs the same math through the blocked micro-kernels of
//! `kernels.rs`, with scratch buffers kept between calls and one pass over the catalog per
//! sampling call (`select.rs`). The two agree to f32 rounding (`tests/cpu_kernels.rs`).

use super::backend::{Backend, Checked, Rows, Scoring, Wrt};
use super::{
    adam_update, interaction, Adam, AdamState, Adapted, ContextState, ContextStep, Counters,
    Engine, EngineError, EngineInfo, Loss, OptimizerState, Reduce, Result, Row, SlateSpec, Slates,
    StepSums, TrainStats,
};
use crate::model::{Layer, ModelConfig};
use serde::{Deserialize, Serialize};

mod fast;
mod fisher;
mod kernels;
mod reference;
mod select;

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

/// Which kernels a [`CpuEngine`] runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kernels {
    /// The plain loops, one multiply-add at a time in index order: the reference.
    Reference,
    /// Register-blocked micro-kernels that LLVM vectorises (SSE2 / NEON / wasm `simd128`),
    /// scratch buffers reused between calls, one pass over the catalog per slate.
    #[default]
    Blocked,
}

/// Rust engine. Holds parameters, Adam moments and the item matrix in memory.
pub struct CpuEngine {
    cfg: ModelConfig,
    layers: Vec<Layer>,
    offsets: Vec<usize>,
    params: Vec<f32>,
    adam_m: Vec<f32>,
    adam_v: Vec<f32>,
    items: Vec<f32>,
    stats: StepSums,
    counters: Counters,
    kernels: Kernels,
    scratch: fast::Scratch,
}

impl CpuEngine {
    /// Creates the engine, with the blocked kernels, the configuration's initial parameters and
    /// a zero item matrix.
    pub fn new(cfg: &ModelConfig) -> Result<Self> {
        Self::with_kernels(cfg, Kernels::Blocked)
    }

    /// Creates the engine with the given kernels.
    pub fn with_kernels(cfg: &ModelConfig, kernels: Kernels) -> Result<Self> {
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
            stats: StepSums::default(),
            counters: Counters::default(),
            cfg: cfg.clone(),
            kernels,
            scratch: fast::Scratch::default(),
        })
    }

    /// The kernels this engine runs.
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// One optimiser step; returns the input gradient (when `want_input`) and the loss.
    fn train_step(&mut self, b: Checked<'_>, adam: Adam, want_input: bool) -> (Vec<f32>, f32) {
        let (grads, sq, d_input, value, entropy) = match self.kernels {
            Kernels::Reference => {
                let (grads, d_input, value, entropy) =
                    self.reference_gradients(b.batch, b.loss, want_input);
                let sq = grads.iter().map(|g| g * g).sum();
                (grads, sq, d_input, value, entropy)
            }
            Kernels::Blocked => self.fast_step_gradients(b, want_input),
        };
        self.apply_step(&grads, sq, value, entropy, adam);
        if self.kernels == Kernels::Blocked {
            self.scratch.reuse_grads(grads);
        }
        (d_input, value)
    }

    /// Applies a step's gradient (squared norm `sq`) with Adam and records its statistics, or
    /// skips it when the loss or the gradient is not finite.
    fn apply_step(&mut self, grads: &[f32], sq: f32, value: f32, entropy: f32, adam: Adam) {
        if !(sq.is_finite() && value.is_finite()) {
            self.stats.skipped += 1;
            self.stats.grad_sq = -1.0;
            return;
        }
        let norm = sq.sqrt();
        self.stats.grad_sq = sq;
        self.stats.step += 1;
        let mut state = AdamState {
            m: &mut self.adam_m,
            v: &mut self.adam_v,
            step: self.stats.step,
        };
        adam_update(&mut self.params, &mut state, grads, adam, norm);
        self.scratch.params_changed();
        self.stats.steps += 1;
        self.stats.loss_sum += value;
        self.stats.entropy_sum += entropy;
        self.stats.last_loss = value;
        self.counters.train_steps += 1;
    }
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
        let kernels = match self.kernels {
            Kernels::Reference => "reference",
            Kernels::Blocked => "blocked",
        };
        EngineInfo {
            engine: "cpu".into(),
            adapter: format!("plain Rust ({kernels} kernels)"),
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

    async fn params(&mut self) -> Result<Vec<f32>> {
        Ok(self.params.clone())
    }

    async fn stats(&mut self) -> Result<TrainStats> {
        Ok(self.stats.into())
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

    async fn reduce(&mut self, data: &[f32], op: Reduce) -> Result<f32> {
        Ok(reduce(data, op))
    }
}

impl Backend for CpuEngine {
    fn load_params(&mut self, params: &[f32]) -> Result<()> {
        self.params.copy_from_slice(params);
        self.adam_m.fill(0.0);
        self.adam_v.fill(0.0);
        self.stats = StepSums::default();
        self.scratch.params_changed();
        Ok(())
    }

    fn load_items(&mut self, embeddings: &[f32]) -> Result<()> {
        self.items.copy_from_slice(embeddings);
        self.scratch.params_changed();
        Ok(())
    }

    fn item_matrix(&self) -> &[f32] {
        &self.items
    }

    async fn forward_rows(&mut self, x: Rows<'_>) -> Result<Vec<f32>> {
        Ok(match self.kernels {
            Kernels::Reference => self.run_forward(x.inputs).acts.pop().unwrap_or_default(),
            Kernels::Blocked => self.fast_forward(x.inputs).to_vec(),
        })
    }

    async fn score_rows(&mut self, s: Scoring<'_>) -> Result<Vec<f32>> {
        Ok(match self.kernels {
            Kernels::Reference => {
                let fwd = self.run_forward(s.inputs);
                self.score(&fwd.acts[self.layers.len()], s.rows)
            }
            Kernels::Blocked => self.fast_scores(s.inputs).to_vec(),
        })
    }

    async fn log_prob_rows(&mut self, s: Scoring<'_>, temperature: f32) -> Result<Vec<f32>> {
        Ok(match self.kernels {
            Kernels::Reference => self.reference_log_probs(s, temperature),
            Kernels::Blocked => self.fast_log_probs(s, temperature),
        })
    }

    async fn sample_rows(&mut self, s: Scoring<'_>, spec: SlateSpec) -> Result<Slates> {
        match self.kernels {
            Kernels::Reference => self.reference_sample(s, spec),
            Kernels::Blocked => self.fast_sample(s, spec),
        }
    }

    async fn gradient(&mut self, b: Checked<'_>, wrt: Wrt) -> Result<(Vec<f32>, f32)> {
        let want_input = wrt == Wrt::Input;
        Ok(match (self.kernels, wrt) {
            (Kernels::Reference, _) => {
                let (grads, d_input, value, _) =
                    self.reference_gradients(b.batch, b.loss, want_input);
                (if want_input { d_input } else { grads }, value)
            }
            (Kernels::Blocked, Wrt::Params) => {
                let (value, _) = self.fast_gradients(b.batch, b.loss, fast::Want::Params);
                (self.scratch.grads().to_vec(), value)
            }
            (Kernels::Blocked, Wrt::Input) => {
                let (value, _) = self.fast_gradients(b.batch, b.loss, fast::Want::Input);
                (self.scratch.input_gradient().to_vec(), value)
            }
        })
    }

    fn train_steps(&mut self, b: Checked<'_>, adam: Adam, steps: u32) -> Result<()> {
        for _ in 0..steps {
            self.train_step(b, adam, false);
        }
        Ok(())
    }

    async fn train_step_input(&mut self, b: Checked<'_>, adam: Adam) -> Result<(Vec<f32>, f32)> {
        Ok(self.train_step(b, adam, true))
    }

    async fn adapt(&mut self, step: ContextStep<'_>, state: ContextState<'_>) -> Result<Adapted> {
        interaction::reference(self, step, state).await
    }

    fn load_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        self.adam_m.copy_from_slice(&state.m);
        self.adam_v.copy_from_slice(&state.v);
        self.stats.step = state.step;
        Ok(())
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
