//! The learning engine: one trait, two implementations.
//!
//! - [`gpu::GpuEngine`] runs hand-written WGSL kernels (`shaders/*.wgsl`) through `wgpu`, in the
//!   browser (WebGPU) and natively.
//! - [`cpu::CpuEngine`] implements every kernel in plain Rust with the same semantics: the
//!   reference the GPU kernels are tested against, and the fallback when there is no adapter.
//!
//! [`AnyEngine`] picks one at run time. Writes (`set_*`, `train`) only enqueue work; reads are
//! `async` because on the web a GPU readback can only be awaited.

pub mod check;
pub mod cpu;
pub mod fisher;
pub mod fisher_check;
pub mod gpu;
mod host_adam;
pub mod interaction;
pub mod rng;

use crate::model::ModelConfig;
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
#[allow(async_fn_in_trait)]
pub trait Engine {
    /// What this engine runs on.
    fn info(&self) -> EngineInfo;
    /// The model this engine holds.
    fn config(&self) -> &ModelConfig;
    /// Work counters since creation.
    fn counters(&self) -> Counters;

    /// Replaces all parameters (flat layout of [`ModelConfig::offsets`]) and resets Adam;
    /// refuses a wrong count or a non-finite value ([`check_params`], on every engine).
    fn set_params(&mut self, params: &[f32]) -> Result<()>;
    /// Reads all parameters back.
    async fn params(&mut self) -> Result<Vec<f32>>;
    /// Sets the item-embedding matrix (`items × output`, row-major) of a policy head; refuses
    /// a wrong size or a non-finite value ([`check_items`], on every engine).
    fn set_items(&mut self, embeddings: &[f32]) -> Result<()>;
    /// The vector of item `item` in the item matrix (from host memory; no readback).
    fn item_vector(&self, item: u32) -> Result<Vec<f32>>;

    /// MLP outputs (`rows × output`).
    async fn forward(&mut self, inputs: &[f32]) -> Result<Vec<f32>>;
    /// Raw item scores `u · e_j` (`rows × items`).
    async fn scores(&mut self, inputs: &[f32]) -> Result<Vec<f32>>;
    /// Masked, temperature-scaled log-softmax over items (`rows × items`; masked items get
    /// `f32::MIN`).
    async fn log_probs(
        &mut self,
        inputs: &[f32],
        mask: Option<&Mask>,
        temperature: f32,
    ) -> Result<Vec<f32>>;
    /// Draws a slate per row.
    async fn sample(
        &mut self,
        inputs: &[f32],
        mask: Option<&Mask>,
        spec: SlateSpec,
    ) -> Result<Slates>;
    /// [`Engine::sample`] and, per slate position, its item's logit `u · e_j / T` (what a
    /// session reports). The default reads the whole score matrix ([`interaction::scored`]);
    /// the GPU engine takes the logits from its sampler (one submit, 12 bytes per slot).
    async fn sample_scored(
        &mut self,
        inputs: &[f32],
        mask: Option<&Mask>,
        spec: SlateSpec,
    ) -> Result<(Slates, Vec<f32>)> {
        interaction::scored(self, inputs, mask, spec).await
    }

    /// Gradient of `loss` on `batch` w.r.t. all parameters, and the loss; parameters unchanged.
    async fn gradients(&mut self, batch: &Batch, loss: Loss) -> Result<(Vec<f32>, f32)>;
    /// Gradient of `loss` w.r.t. the batch's inputs (`rows × input`), and the loss: what a
    /// per-user context vector that is part of the input adapts along (CAVIA).
    async fn input_gradient(&mut self, batch: &Batch, loss: Loss) -> Result<(Vec<f32>, f32)>;
    /// A context-adapting session's interaction ([`interaction`]): a step on `state` along the
    /// reaction's input gradient, then the next slate at the adapted input.
    async fn adapt_context(
        &mut self,
        step: ContextStep<'_>,
        state: ContextState<'_>,
    ) -> Result<Adapted> {
        interaction::reference(self, step, state).await
    }
    /// Enqueues `steps` optimiser steps on the same batch, with no readback.
    fn train(&mut self, batch: &Batch, loss: Loss, adam: Adam, steps: u32) -> Result<()>;
    /// One training step that also returns the gradient w.r.t. the inputs (from the same pass,
    /// before the update) and the loss: for models whose inputs hold learned embeddings.
    async fn train_with_input_gradient(
        &mut self,
        batch: &Batch,
        loss: Loss,
        adam: Adam,
    ) -> Result<(Vec<f32>, f32)>;
    /// Reads the statistics accumulated by `train`.
    async fn stats(&mut self) -> Result<TrainStats>;
    /// Zeroes the accumulated loss/entropy sums (the Adam step counter is kept).
    fn reset_stats(&mut self) -> Result<()>;

    /// Reads Adam's state (for a checkpoint).
    async fn optimizer_state(&mut self) -> Result<OptimizerState>;
    /// Restores Adam's state from a checkpoint (after `set_params`, which resets it).
    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()>;

    /// A reduction over `data`, computed on this engine.
    async fn reduce(&mut self, data: &[f32], op: Reduce) -> Result<f32>;
}

/// Checks a batch against the model before any engine touches it.
pub(crate) fn check_batch(cfg: &ModelConfig, batch: &Batch, loss: Loss) -> Result<usize> {
    let rows = batch.rows.len();
    check_inputs(cfg, &batch.inputs)?;
    if batch.inputs.len() != rows * cfg.input {
        return Err(EngineError::Input(format!(
            "batch has {rows} rows but {} input values (expected {})",
            batch.inputs.len(),
            rows * cfg.input
        )));
    }
    if let Some((r, _)) = batch.rows.iter().enumerate().find(|(_, row)| {
        !(row.reward.is_finite() && row.baseline.is_finite() && row.old_logp.is_finite())
    }) {
        return Err(EngineError::Input(format!(
            "row {r}: reward, baseline and old log-probability must be finite"
        )));
    }
    let items = cfg.items();
    match (loss, cfg.head) {
        (Loss::Mse, crate::model::Head::Regression { .. }) => {}
        (Loss::Mse, _) => {
            return Err(EngineError::Input(
                "MSE needs a regression head; this model has a policy head".into(),
            ))
        }
        (_, crate::model::Head::Regression { .. }) => {
            return Err(EngineError::Input(
                "policy-gradient losses need a policy head; this model has a regression head"
                    .into(),
            ))
        }
        _ => {
            if let Some(r) = batch.rows.iter().find(|r| r.action as usize >= items) {
                return Err(EngineError::Input(format!(
                    "action {} is outside the catalog of {items} items",
                    r.action
                )));
            }
            if loss.temperature().is_nan() || loss.temperature() <= 0.0 {
                return Err(EngineError::Input("temperature must be positive".into()));
            }
        }
    }
    if let Some(m) = &batch.mask {
        check_mask(cfg, m, rows)?;
        if let Some((r, row)) = batch
            .rows
            .iter()
            .enumerate()
            .find(|(r, row)| m.get(*r, row.action as usize))
        {
            return Err(EngineError::Input(format!(
                "row {r}: action {} is masked, so the policy could not have chosen it",
                row.action
            )));
        }
    }
    Ok(rows)
}

/// Checks an input matrix: a whole number of rows, within the allocated batch size, finite.
pub(crate) fn check_inputs(cfg: &ModelConfig, inputs: &[f32]) -> Result<usize> {
    if inputs.is_empty() || inputs.len() % cfg.input != 0 {
        return Err(EngineError::Input(format!(
            "inputs must be a non-empty multiple of the input width {}, got {} values",
            cfg.input,
            inputs.len()
        )));
    }
    let rows = inputs.len() / cfg.input;
    if rows > cfg.max_rows {
        return Err(EngineError::Input(format!(
            "{rows} rows exceed the model's max_rows {}",
            cfg.max_rows
        )));
    }
    if let Some(i) = inputs.iter().position(|v| !v.is_finite()) {
        return Err(EngineError::Input(format!(
            "input value {i} (row {}) is not finite",
            i / cfg.input
        )));
    }
    Ok(rows)
}

/// Checks a parameter vector for a network of `count` parameters: its length, every value finite.
pub(crate) fn check_params(count: usize, params: &[f32]) -> Result<()> {
    if params.len() != count {
        return Err(EngineError::Input(format!(
            "expected {count} parameters, got {}",
            params.len()
        )));
    }
    if let Some(i) = params.iter().position(|v| !v.is_finite()) {
        return Err(EngineError::Input(format!("parameter {i} is not finite")));
    }
    Ok(())
}

/// Checks an item matrix for a policy model: `items × output` values, every value finite.
pub(crate) fn check_items(cfg: &ModelConfig, embeddings: &[f32]) -> Result<()> {
    let n = check_policy(cfg)?;
    let d = cfg.output;
    if embeddings.len() != n * d {
        return Err(EngineError::Input(format!(
            "item matrix must be {n} × {d} = {} values, got {}",
            n * d,
            embeddings.len()
        )));
    }
    if let Some(i) = embeddings.iter().position(|v| !v.is_finite()) {
        return Err(EngineError::Input(format!(
            "item embedding value {i} (item {}) is not finite",
            i / d
        )));
    }
    Ok(())
}

/// Checks a restored optimiser state against the parameter count.
pub(crate) fn check_optimizer(params: usize, state: &OptimizerState) -> Result<()> {
    if state.m.len() != params || state.v.len() != params {
        return Err(EngineError::Input(format!(
            "optimiser state has {} / {} moments for {params} parameters",
            state.m.len(),
            state.v.len()
        )));
    }
    if state.v.iter().chain(&state.m).any(|x| !x.is_finite()) || state.v.iter().any(|&x| x < 0.0) {
        return Err(EngineError::Input("optimiser state is not finite".into()));
    }
    Ok(())
}

pub(crate) fn check_mask(cfg: &ModelConfig, mask: &Mask, rows: usize) -> Result<()> {
    let wpr = cfg.items().div_ceil(32);
    if mask.words_per_row != wpr || mask.words.len() != rows * wpr {
        return Err(EngineError::Input(format!(
            "mask must have {wpr} words per row for {rows} rows"
        )));
    }
    Ok(())
}

/// Checks the arguments of `log_probs`; returns (items, rows).
pub(crate) fn check_log_probs(
    cfg: &ModelConfig,
    inputs: &[f32],
    mask: Option<&Mask>,
    temperature: f32,
) -> Result<(usize, usize)> {
    let n = check_policy(cfg)?;
    let rows = check_inputs(cfg, inputs)?;
    if let Some(m) = mask {
        check_mask(cfg, m, rows)?;
    }
    if temperature.is_nan() || temperature <= 0.0 {
        return Err(EngineError::Input("temperature must be positive".into()));
    }
    Ok((n, rows))
}

/// Checks the arguments of `sample`; returns (items, rows).
pub(crate) fn check_sample(
    cfg: &ModelConfig,
    inputs: &[f32],
    mask: Option<&Mask>,
    spec: &SlateSpec,
) -> Result<(usize, usize)> {
    let (n, rows) = check_log_probs(cfg, inputs, mask, spec.temperature)?;
    check_slate(spec, n)?;
    if let Some(m) = mask {
        for r in 0..rows {
            let open = (0..n).filter(|&j| !m.get(r, j)).count();
            if open < spec.k {
                return Err(EngineError::Input(format!(
                    "row {r} has {open} unmasked items, fewer than the slate size {}",
                    spec.k
                )));
            }
        }
    }
    Ok((n, rows))
}

pub(crate) fn check_policy(cfg: &ModelConfig) -> Result<usize> {
    match cfg.head {
        crate::model::Head::Policy { items } => Ok(items),
        _ => Err(EngineError::Input(
            "this operation needs a policy head".into(),
        )),
    }
}

/// Row `item` of a host copy of the item matrix (`items × d`).
pub(crate) fn item_row(items: &[f32], d: usize, item: u32) -> Result<Vec<f32>> {
    let i = item as usize;
    items
        .get(i * d..(i + 1) * d)
        .map(<[f32]>::to_vec)
        .ok_or_else(|| {
            EngineError::Input(format!(
                "item {item} is outside the catalog of {} items",
                items.len() / d.max(1)
            ))
        })
}

pub(crate) fn check_slate(spec: &SlateSpec, items: usize) -> Result<()> {
    if spec.k == 0 || spec.k > MAX_SLATE || spec.k > items {
        return Err(EngineError::Input(format!(
            "slate size must be in 1..={} and at most the catalog size {items}, got {}",
            MAX_SLATE, spec.k
        )));
    }
    if spec.temperature.is_nan() || spec.temperature <= 0.0 {
        return Err(EngineError::Input("temperature must be positive".into()));
    }
    Ok(())
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

macro_rules! dispatch {
    ($self:ident, $e:ident => $body:expr) => {
        match $self {
            AnyEngine::Gpu($e) => $body,
            AnyEngine::Cpu($e) => $body,
        }
    };
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
    fn set_params(&mut self, params: &[f32]) -> Result<()> {
        dispatch!(self, e => e.set_params(params))
    }
    async fn params(&mut self) -> Result<Vec<f32>> {
        dispatch!(self, e => e.params().await)
    }
    fn set_items(&mut self, embeddings: &[f32]) -> Result<()> {
        dispatch!(self, e => e.set_items(embeddings))
    }
    fn item_vector(&self, item: u32) -> Result<Vec<f32>> {
        dispatch!(self, e => e.item_vector(item))
    }
    async fn forward(&mut self, inputs: &[f32]) -> Result<Vec<f32>> {
        dispatch!(self, e => e.forward(inputs).await)
    }
    async fn scores(&mut self, inputs: &[f32]) -> Result<Vec<f32>> {
        dispatch!(self, e => e.scores(inputs).await)
    }
    async fn log_probs(
        &mut self,
        inputs: &[f32],
        mask: Option<&Mask>,
        temperature: f32,
    ) -> Result<Vec<f32>> {
        dispatch!(self, e => e.log_probs(inputs, mask, temperature).await)
    }
    async fn sample(
        &mut self,
        inputs: &[f32],
        mask: Option<&Mask>,
        spec: SlateSpec,
    ) -> Result<Slates> {
        dispatch!(self, e => e.sample(inputs, mask, spec).await)
    }
    async fn sample_scored(
        &mut self,
        inputs: &[f32],
        mask: Option<&Mask>,
        spec: SlateSpec,
    ) -> Result<(Slates, Vec<f32>)> {
        dispatch!(self, e => e.sample_scored(inputs, mask, spec).await)
    }
    async fn gradients(&mut self, batch: &Batch, loss: Loss) -> Result<(Vec<f32>, f32)> {
        dispatch!(self, e => e.gradients(batch, loss).await)
    }
    async fn input_gradient(&mut self, batch: &Batch, loss: Loss) -> Result<(Vec<f32>, f32)> {
        dispatch!(self, e => e.input_gradient(batch, loss).await)
    }
    async fn adapt_context(
        &mut self,
        step: ContextStep<'_>,
        state: ContextState<'_>,
    ) -> Result<Adapted> {
        dispatch!(self, e => e.adapt_context(step, state).await)
    }
    fn train(&mut self, batch: &Batch, loss: Loss, adam: Adam, steps: u32) -> Result<()> {
        dispatch!(self, e => e.train(batch, loss, adam, steps))
    }
    async fn train_with_input_gradient(
        &mut self,
        batch: &Batch,
        loss: Loss,
        adam: Adam,
    ) -> Result<(Vec<f32>, f32)> {
        dispatch!(self, e => e.train_with_input_gradient(batch, loss, adam).await)
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
    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        dispatch!(self, e => e.set_optimizer_state(state))
    }
    async fn reduce(&mut self, data: &[f32], op: Reduce) -> Result<f32> {
        dispatch!(self, e => e.reduce(data, op).await)
    }
}
