//! The learning engine: one trait, two implementations.
//!
//! - [`gpu::GpuEngine`] runs hand-written WGSL kernels (`shaders/*.wgsl`) through `wgpu`, in the
//!   browser (WebGPU) and natively.
//! - [`cpu::CpuEngine`] implements every kernel in plain Rust with the same semantics: the
//!   reference the GPU kernels are tested against, and the fallback when there is no adapter.
//!
//! [`AnyEngine`] picks one at run time. Writes (`set_*`, `train`) only enqueue work; reads are
//! `async` because on the web a GPU readback can only be awaited.

/// Runs `$body` on the engine an [`AnyEngine`] holds, bound to `$e`.
macro_rules! dispatch {
    ($self:ident, $e:ident => $body:expr) => {
        match $self {
            AnyEngine::Gpu($e) => $body,
            AnyEngine::Cpu($e) => $body,
        }
    };
}

mod backend;
pub mod check;
mod checks;
pub mod cpu;
pub mod fisher;
pub mod fisher_check;
pub mod gpu;
mod host_adam;
pub mod interaction;
pub mod rng;

use crate::model::ModelConfig;
use backend::{Backend, Checked, Rows, Scoring, Wrt};
pub(crate) use checks::{
    check_batch, check_inputs, check_items, check_log_probs, check_optimizer, check_params,
    check_policy, check_sample, check_scores, item_row,
};
pub(crate) use host_adam::{adam_update, AdamState};
pub use interaction::{Adapted, ContextState, ContextStep};
use serde::{Deserialize, Serialize};

/// Largest user-vector width a policy head supports (one workgroup holds the vector).
pub const MAX_ITEM_DIM: usize = 256;
/// Largest slate one sampling call returns.
pub const MAX_SLATE: usize = 64;

/// Everything that can go wrong in the engine, as a typed error.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    #[error("could not open the GPU device: {0}")]
    Device(String),
    #[error("shader validation failed in {shader}: {message}")]
    Shader { shader: String, message: String },
    #[error("GPU readback failed: {0}")]
    Readback(String),
    #[error("invalid model configuration: {0}")]
    Config(String),
    #[error("invalid input: {0}")]
    Input(String),
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),
}

pub type Result<T> = std::result::Result<T, EngineError>;

/// Which engine a caller wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Preference {
    /// GPU when an adapter is there, else CPU.
    #[default]
    Auto,
    Gpu,
    Cpu,
}

/// What an engine runs on.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EngineInfo {
    /// "gpu" or "cpu".
    pub engine: String,
    /// Adapter name (GPU) or "plain Rust" (CPU).
    pub adapter: String,
    /// Backend name, e.g. "vulkan", "browser-webgpu".
    pub backend: String,
    /// Device type as wgpu reports it ("cpu" for software rasterisers such as lavapipe).
    pub device_type: String,
    /// True for software fallback adapters (SwiftShader, lavapipe).
    pub fallback: bool,
}

/// Work counters, for benchmarks and for checking the engine's performance design.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counters {
    pub dispatches: u64,
    pub submits: u64,
    pub bytes_read_back: u64,
    pub train_steps: u64,
}

/// Loss whose gradient a training step follows.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Loss {
    /// `-(r - b) log π(a|x) - β H(π(·|x))`, averaged over rows.
    Reinforce { entropy: f32, temperature: f32 },
    /// PPO clipped surrogate with the stored old log-probabilities, plus the entropy bonus.
    Ppo {
        entropy: f32,
        temperature: f32,
        clip: f32,
    },
    /// Mean squared error of a regression head against `Row::reward` as the target.
    Mse,
}

impl Loss {
    pub(crate) fn temperature(&self) -> f32 {
        match *self {
            Loss::Reinforce { temperature, .. } | Loss::Ppo { temperature, .. } => temperature,
            Loss::Mse => 1.0,
        }
    }
}

/// Adam with decoupled weight decay and optional clipping by global gradient norm.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Adam {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// Clip the global gradient norm to this value; 0 disables clipping.
    pub clip_norm: f32,
}

impl Default for Adam {
    fn default() -> Self {
        Adam {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            clip_norm: 0.0,
        }
    }
}

/// One training example: the action taken in a state, its reward and the baseline.
/// For a regression head only `reward` (the target) is used.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Row {
    pub action: u32,
    pub reward: f32,
    pub baseline: f32,
    /// Log-probability of `action` under the policy that collected it (PPO).
    pub old_logp: f32,
}

/// A training batch: `rows.len()` input vectors laid out row-major in `inputs`, and for a policy
/// head an optional mask of items that may not be chosen (see [`Mask`]).
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub inputs: Vec<f32>,
    pub rows: Vec<Row>,
    pub mask: Option<Mask>,
}

/// Per-row bitset over the catalog: bit `j` of row `r` set means item `j` is excluded
/// (already shown). Words are `u32`, `words_per_row = ceil(items / 32)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mask {
    pub words: Vec<u32>,
    pub words_per_row: usize,
}

impl Mask {
    /// An all-clear mask for `rows` rows over `items` items.
    pub fn new(rows: usize, items: usize) -> Self {
        let words_per_row = items.div_ceil(32);
        Mask {
            words: vec![0; rows * words_per_row],
            words_per_row,
        }
    }

    /// Excludes `item` for `row`.
    pub fn set(&mut self, row: usize, item: usize) {
        self.words[row * self.words_per_row + item / 32] |= 1 << (item % 32);
    }

    /// Whether `item` is excluded for `row`.
    pub fn get(&self, row: usize, item: usize) -> bool {
        self.words[row * self.words_per_row + item / 32] & (1 << (item % 32)) != 0
    }
}

/// How to draw a slate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlateSpec {
    pub k: usize,
    pub temperature: f32,
    /// Gumbel-top-k when false (a sample from the Plackett–Luce policy), plain top-k when true.
    pub greedy: bool,
    /// Seed and draw counter of the counter-based RNG: same (seed, draw) → same slate.
    pub seed: u32,
    pub draw: u32,
}

/// Slates drawn for each row: `k` item ids per row and, for each position, the log-probability
/// of that item given the items before it (Plackett–Luce); their sum is the slate's
/// log-propensity.
#[derive(Clone, Debug, PartialEq)]
pub struct Slates {
    pub k: usize,
    pub items: Vec<u32>,
    pub logp: Vec<f32>,
}

/// Training statistics accumulated on the device since the last reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainStats {
    /// Optimiser steps taken in total (the Adam step counter).
    pub step: u32,
    /// Steps accumulated since the last [`Engine::reset_stats`].
    pub steps: u32,
    /// Mean loss over those steps.
    pub mean_loss: f32,
    /// Loss of the latest step.
    pub last_loss: f32,
    /// Mean policy entropy over those steps (0 for regression).
    pub mean_entropy: f32,
    /// Global gradient norm of the latest step, before clipping.
    pub grad_norm: f32,
    /// Steps skipped (not applied) because their loss or gradient was not finite.
    pub skipped: u32,
}

/// Training statistics as the engines accumulate them: `shaders/reduce.wgsl` writes them on the
/// device and `adam.wgsl` reads them; the CPU engine keeps the same. A negative `grad_sq` marks
/// a skipped (non-finite) latest step.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct StepSums {
    pub step: u32,
    pub steps: u32,
    pub loss_sum: f32,
    pub entropy_sum: f32,
    pub last_loss: f32,
    pub grad_sq: f32,
    pub skipped: u32,
}

impl From<StepSums> for TrainStats {
    fn from(s: StepSums) -> Self {
        let n = s.steps.max(1) as f32;
        TrainStats {
            step: s.step,
            steps: s.steps,
            mean_loss: s.loss_sum / n,
            last_loss: s.last_loss,
            mean_entropy: s.entropy_sum / n,
            grad_norm: if s.grad_sq < 0.0 {
                f32::INFINITY
            } else {
                s.grad_sq.sqrt()
            },
            skipped: s.skipped,
        }
    }
}

/// Adam's state, for checkpoints: first and second moments per parameter and the step count.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OptimizerState {
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    pub step: u32,
}

/// A reduction over a vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduce {
    Sum,
    Mean,
    SquaredNorm,
}

/// The operations every engine provides. Shapes follow [`ModelConfig`]; inputs are row-major.
/// Every input is checked here, once for all engines (the `check_*` functions of checks.rs),
/// before the engine's own operation (its sealed `backend::Backend`) runs.
#[allow(async_fn_in_trait)]
pub trait Engine: Backend {
    /// What this engine runs on.
    fn info(&self) -> EngineInfo;
    /// The model this engine holds.
    fn config(&self) -> &ModelConfig;
    /// Work counters since creation.
    fn counters(&self) -> Counters;

    /// Replaces all parameters (flat layout of [`ModelConfig::offsets`]) and resets Adam;
    /// refuses a wrong count or a non-finite value (`check_params`).
    fn set_params(&mut self, params: &[f32]) -> Result<()> {
        check_params(self.config().param_count(), params)?;
        self.load_params(params)
    }
    /// Reads all parameters back.
    async fn params(&mut self) -> Result<Vec<f32>>;
    /// Sets the item-embedding matrix (`items × output`, row-major) of a policy head; refuses
    /// a wrong size or a non-finite value (`check_items`).
    fn set_items(&mut self, embeddings: &[f32]) -> Result<()> {
        check_items(self.config(), embeddings)?;
        self.load_items(embeddings)
    }
    /// The vector of item `item` in the item matrix (from host memory; no readback).
    fn item_vector(&self, item: u32) -> Result<Vec<f32>> {
        check_policy(self.config())?;
        item_row(self.item_matrix(), self.config().output, item)
    }

    /// MLP outputs (`rows × output`).
    async fn forward(&mut self, inputs: &[f32]) -> Result<Vec<f32>> {
        let rows = check_inputs(self.config(), inputs)?;
        self.forward_rows(Rows { inputs, rows }).await
    }
    /// Raw item scores `u · e_j` (`rows × items`).
    async fn scores(&mut self, inputs: &[f32]) -> Result<Vec<f32>> {
        let s = check_scores(self.config(), inputs)?;
        self.score_rows(s).await
    }
    /// Masked, temperature-scaled log-softmax over items (`rows × items`; masked items get
    /// `f32::MIN`).
    async fn log_probs(
        &mut self,
        inputs: &[f32],
        mask: Option<&Mask>,
        temperature: f32,
    ) -> Result<Vec<f32>> {
        let s = check_log_probs(self.config(), inputs, mask, temperature)?;
        self.log_prob_rows(s, temperature).await
    }
    /// Draws a slate per row.
    async fn sample(
        &mut self,
        inputs: &[f32],
        mask: Option<&Mask>,
        spec: SlateSpec,
    ) -> Result<Slates> {
        let s = check_sample(self.config(), inputs, mask, &spec)?;
        self.sample_rows(s, spec).await
    }

    /// [`Engine::sample`] and, per slate position, its item's logit `u · e_j / T` (what a
    /// session reports). The reference reads the whole score matrix
    /// ([`Backend::sample_scored_rows`]'s default); the GPU engine takes the logits from its
    /// sampler (one submit, 12 bytes per slot).
    async fn sample_scored(
        &mut self,
        inputs: &[f32],
        mask: Option<&Mask>,
        spec: SlateSpec,
    ) -> Result<(Slates, Vec<f32>)> {
        let s = check_sample(self.config(), inputs, mask, &spec)?;
        self.sample_scored_rows(s, spec).await
    }

    /// Gradient of `loss` on `batch` w.r.t. all parameters, and the loss; parameters unchanged.
    async fn gradients(&mut self, batch: &Batch, loss: Loss) -> Result<(Vec<f32>, f32)> {
        let b = check_batch(self.config(), batch, loss)?;
        self.gradient(b, Wrt::Params).await
    }
    /// Gradient of `loss` w.r.t. the batch's inputs (`rows × input`), and the loss: what a
    /// per-user context vector that is part of the input adapts along (CAVIA).
    async fn input_gradient(&mut self, batch: &Batch, loss: Loss) -> Result<(Vec<f32>, f32)> {
        let b = check_batch(self.config(), batch, loss)?;
        self.gradient(b, Wrt::Input).await
    }
    /// A context-adapting session's interaction ([`interaction`]): a step on `state` along the
    /// reaction's input gradient, then the next slate at the adapted input.
    async fn adapt_context(
        &mut self,
        step: ContextStep<'_>,
        state: ContextState<'_>,
    ) -> Result<Adapted> {
        interaction::check(self.config(), &step, &state)?;
        self.adapt(step, state).await
    }
    /// Enqueues `steps` optimiser steps on the same batch, with no readback.
    fn train(&mut self, batch: &Batch, loss: Loss, adam: Adam, steps: u32) -> Result<()> {
        let b = check_batch(self.config(), batch, loss)?;
        self.train_steps(b, adam, steps)
    }
    /// One training step that also returns the gradient w.r.t. the inputs (from the same pass,
    /// before the update) and the loss: for models whose inputs hold learned embeddings.
    async fn train_with_input_gradient(
        &mut self,
        batch: &Batch,
        loss: Loss,
        adam: Adam,
    ) -> Result<(Vec<f32>, f32)> {
        let b = check_batch(self.config(), batch, loss)?;
        self.train_step_input(b, adam).await
    }
    /// Reads the statistics accumulated by `train`.
    async fn stats(&mut self) -> Result<TrainStats>;
    /// Zeroes the accumulated loss/entropy sums (the Adam step counter is kept).
    fn reset_stats(&mut self) -> Result<()>;

    /// Reads Adam's state (for a checkpoint).
    async fn optimizer_state(&mut self) -> Result<OptimizerState>;
    /// Restores Adam's state from a checkpoint (after `set_params`, which resets it).
    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        check_optimizer(self.config().param_count(), state)?;
        self.load_optimizer_state(state)
    }

    /// A reduction over `data`, computed on this engine.
    async fn reduce(&mut self, data: &[f32], op: Reduce) -> Result<f32>;
}

/// An engine chosen at run time.
pub enum AnyEngine {
    Gpu(Box<gpu::GpuEngine>),
    Cpu(Box<cpu::CpuEngine>),
}

/// Why the CPU engine was chosen, when it was.
pub type Fallback = Option<String>;

impl AnyEngine {
    /// Creates the preferred engine. With [`Preference::Auto`] a missing adapter or device falls
    /// back to the CPU engine and the reason is returned; with [`Preference::Gpu`] it is an error.
    pub async fn new(cfg: &ModelConfig, pref: Preference) -> Result<(Self, Fallback)> {
        if pref == Preference::Cpu {
            return Ok((AnyEngine::Cpu(Box::new(cpu::CpuEngine::new(cfg)?)), None));
        }
        let gpu = match gpu::GpuContext::new().await {
            Ok(ctx) => gpu::GpuEngine::new(&ctx, cfg).await,
            Err(e) => Err(e),
        };
        match (gpu, pref) {
            (Ok(g), _) => Ok((AnyEngine::Gpu(Box::new(g)), None)),
            (Err(e), Preference::Gpu) => Err(e),
            (Err(e), _) => Ok((
                AnyEngine::Cpu(Box::new(cpu::CpuEngine::new(cfg)?)),
                Some(e.to_string()),
            )),
        }
    }
}

impl Engine for AnyEngine {
    fn info(&self) -> EngineInfo {
        dispatch!(self, e => e.info())
    }
    fn config(&self) -> &ModelConfig {
        dispatch!(self, e => e.config())
    }
    fn counters(&self) -> Counters {
        dispatch!(self, e => e.counters())
    }
    async fn params(&mut self) -> Result<Vec<f32>> {
        dispatch!(self, e => e.params().await)
    }
    async fn stats(&mut self) -> Result<TrainStats> {
        dispatch!(self, e => e.stats().await)
    }
    fn reset_stats(&mut self) -> Result<()> {
        dispatch!(self, e => e.reset_stats())
    }
    async fn optimizer_state(&mut self) -> Result<OptimizerState> {
        dispatch!(self, e => e.optimizer_state().await)
    }
    async fn reduce(&mut self, data: &[f32], op: Reduce) -> Result<f32> {
        dispatch!(self, e => e.reduce(data, op).await)
    }
}

/// The checks ran in [`Engine`]'s methods on the `AnyEngine`; the chosen engine runs the rest.
impl Backend for AnyEngine {
    fn load_params(&mut self, params: &[f32]) -> Result<()> {
        dispatch!(self, e => e.load_params(params))
    }
    fn load_items(&mut self, embeddings: &[f32]) -> Result<()> {
        dispatch!(self, e => e.load_items(embeddings))
    }
    fn item_matrix(&self) -> &[f32] {
        dispatch!(self, e => e.item_matrix())
    }
    async fn forward_rows(&mut self, x: Rows<'_>) -> Result<Vec<f32>> {
        dispatch!(self, e => e.forward_rows(x).await)
    }
    async fn score_rows(&mut self, s: Scoring<'_>) -> Result<Vec<f32>> {
        dispatch!(self, e => e.score_rows(s).await)
    }
    async fn log_prob_rows(&mut self, s: Scoring<'_>, temperature: f32) -> Result<Vec<f32>> {
        dispatch!(self, e => e.log_prob_rows(s, temperature).await)
    }
    async fn sample_rows(&mut self, s: Scoring<'_>, spec: SlateSpec) -> Result<Slates> {
        dispatch!(self, e => e.sample_rows(s, spec).await)
    }
    async fn sample_scored_rows(
        &mut self,
        s: Scoring<'_>,
        spec: SlateSpec,
    ) -> Result<(Slates, Vec<f32>)> {
        dispatch!(self, e => e.sample_scored_rows(s, spec).await)
    }
    async fn gradient(&mut self, b: Checked<'_>, wrt: Wrt) -> Result<(Vec<f32>, f32)> {
        dispatch!(self, e => e.gradient(b, wrt).await)
    }
    fn train_steps(&mut self, b: Checked<'_>, adam: Adam, steps: u32) -> Result<()> {
        dispatch!(self, e => e.train_steps(b, adam, steps))
    }
    async fn train_step_input(&mut self, b: Checked<'_>, adam: Adam) -> Result<(Vec<f32>, f32)> {
        dispatch!(self, e => e.train_step_input(b, adam).await)
    }
    async fn adapt(&mut self, step: ContextStep<'_>, state: ContextState<'_>) -> Result<Adapted> {
        dispatch!(self, e => e.adapt(step, state).await)
    }
    fn load_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        dispatch!(self, e => e.load_optimizer_state(state))
    }
}
