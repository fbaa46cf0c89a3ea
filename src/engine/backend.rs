//! What each engine implements: the operations on arguments that [`Engine`] and [`Fisher`] have
//! checked. The public traits run every input check once, the same for every engine (the
//! `check_*` functions of `engine/mod.rs`), then call these. The traits here are sealed (public
//! in a private module): outside the crate no one can name them, so no caller reaches an engine
//! with unchecked arguments.

#[cfg(doc)]
use super::{fisher::Fisher, Engine};
use super::{
    fisher::{Cg, States},
    Adam, Adapted, Batch, ContextState, ContextStep, Loss, Mask, OptimizerState, Result, SlateSpec,
    Slates,
};

/// Input rows that passed the checks: `rows` rows of the model's input width, all finite.
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    pub inputs: &'a [f32],
    pub rows: usize,
}

/// A read over the catalog that passed the checks: the rows, the catalog size and the rows'
/// mask (its shape checked).
#[derive(Clone, Copy)]
pub struct Scoring<'a> {
    pub inputs: &'a [f32],
    pub rows: usize,
    pub items: usize,
    pub mask: Option<&'a Mask>,
}

/// A batch that passed the checks for `loss`, with its row count.
#[derive(Clone, Copy)]
pub struct Checked<'a> {
    pub batch: &'a Batch,
    pub loss: Loss,
    pub rows: usize,
}

/// Which gradient a backward pass returns.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Wrt {
    /// The parameters'.
    Params,
    /// The inputs' (`rows × input`).
    Input,
}

/// A Fisher operation on checked arguments.
#[derive(Clone, Copy)]
pub enum FisherOp<'a> {
    /// `(F + damping·I) v`.
    Product { v: &'a [f32], damping: f32 },
    /// `(F + cg.damping·I)⁻¹ g` by conjugate gradient.
    Solve { g: &'a [f32], cg: Cg },
}

/// The engine operations behind [`Engine`]'s checks.
#[allow(async_fn_in_trait)]
pub trait Backend {
    /// Replaces all parameters and resets Adam.
    fn load_params(&mut self, params: &[f32]) -> Result<()>;
    /// Replaces the item matrix.
    fn load_items(&mut self, embeddings: &[f32]) -> Result<()>;
    /// The host copy of the item matrix (`items × output`).
    fn item_matrix(&self) -> &[f32];
    /// MLP outputs.
    async fn forward_rows(&mut self, x: Rows<'_>) -> Result<Vec<f32>>;
    /// Raw item scores (the mask is unused).
    async fn score_rows(&mut self, s: Scoring<'_>) -> Result<Vec<f32>>;
    /// Masked, temperature-scaled log-softmax over items.
    async fn log_prob_rows(&mut self, s: Scoring<'_>, temperature: f32) -> Result<Vec<f32>>;
    /// A slate per row.
    async fn sample_rows(&mut self, s: Scoring<'_>, spec: SlateSpec) -> Result<Slates>;
    /// A slate per row and each position's logit `u · e_j / T`; by default (the reference) from
    /// the whole score matrix.
    async fn sample_scored_rows(
        &mut self,
        s: Scoring<'_>,
        spec: SlateSpec,
    ) -> Result<(Slates, Vec<f32>)> {
        let slate = self.sample_rows(s, spec).await?;
        let all = self.score_rows(s).await?;
        let scores = slate
            .items
            .iter()
            .enumerate()
            .map(|(p, &j)| all[p / spec.k.max(1) * s.items + j as usize] / spec.temperature)
            .collect();
        Ok((slate, scores))
    }
    /// The gradient `wrt` and the loss; parameters unchanged.
    async fn gradient(&mut self, b: Checked<'_>, wrt: Wrt) -> Result<(Vec<f32>, f32)>;
    /// Enqueues `steps` optimiser steps.
    fn train_steps(&mut self, b: Checked<'_>, adam: Adam, steps: u32) -> Result<()>;
    /// One optimiser step, returning the input gradient of its pass and the loss.
    async fn train_step_input(&mut self, b: Checked<'_>, adam: Adam) -> Result<(Vec<f32>, f32)>;
    /// A context-adapting session's interaction.
    async fn adapt(&mut self, step: ContextStep<'_>, state: ContextState<'_>) -> Result<Adapted>;
    /// Restores Adam's state.
    fn load_optimizer_state(&mut self, state: &OptimizerState) -> Result<()>;
}

/// The Fisher operations behind [`Fisher`]'s checks.
#[allow(async_fn_in_trait)]
pub trait FisherBackend {
    async fn fisher(&mut self, states: States<'_>, op: FisherOp<'_>) -> Result<Vec<f32>>;
}
