//! The Fisher information of the softmax policy over items, for natural-gradient (TRPO) steps.
//!
//! For a batch of states `x_r` (their inputs, masks and the temperature τ), row `r`'s policy is
//! `p_r = softmax(z_r)` over the items its mask leaves open, with logits `z_r = E u(x_r; θ) / τ`.
//! With `J_r = ∂z_r/∂θ`, the Fisher information of the batch is
//!
//! ```text
//! F = (1/B) Σ_r J_rᵀ (diag(p_r) − p_r p_rᵀ) J_r
//! ```
//!
//! and `F·v` is computed without forming `F`: a forward-mode (tangent) pass through the MLP
//! gives `J_r v`, the policy head applies the softmax covariance, and the ordinary backward pass
//! gives `J_rᵀ(·)`. The conjugate gradient then solves `(F + λI) x = g` with those products.
//! On the GPU every product and every CG update stays on the device (`shaders/tangent.wgsl`,
//! `shaders/fisher.wgsl`); the CPU engine is the reference.

use super::backend::{FisherBackend, FisherOp};
use super::{check_log_probs, check_params, AnyEngine, Engine, EngineError, Mask, Result};
use crate::model::ModelConfig;

/// The states a Fisher matrix is taken over.
#[derive(Clone, Copy, Debug)]
pub struct States<'a> {
    /// `rows × input` values, row-major.
    pub inputs: &'a [f32],
    /// Items each row could not choose (already shown).
    pub mask: Option<&'a Mask>,
    /// The policy's softmax temperature.
    pub temperature: f32,
}

/// Conjugate-gradient settings.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cg {
    /// Iterations (a fixed number: the GPU runs them in one submit).
    pub iterations: u32,
    /// λ of `(F + λI)`: keeps the system well conditioned where the batch carries little
    /// information.
    pub damping: f32,
}

impl Default for Cg {
    fn default() -> Self {
        Cg {
            iterations: 10,
            damping: 0.1,
        }
    }
}

/// Natural-gradient operations, on top of [`Engine`]: the arguments checked here, once for all
/// engines (`check_fisher`), the products computed by the engine (its `FisherBackend`).
#[allow(async_fn_in_trait)]
pub trait Fisher: Engine + FisherBackend {
    /// `(F + damping·I) v` on `states`, at the engine's current parameters.
    async fn fisher_product(
        &mut self,
        states: States<'_>,
        v: &[f32],
        damping: f32,
    ) -> Result<Vec<f32>> {
        check_fisher(self.config(), &states, v, damping)?;
        self.fisher(states, FisherOp::Product { v, damping }).await
    }
    /// `x ≈ (F + cg.damping·I)⁻¹ g` by `cg.iterations` steps of conjugate gradient from `x = 0`.
    async fn natural_gradient(
        &mut self,
        states: States<'_>,
        g: &[f32],
        cg: Cg,
    ) -> Result<Vec<f32>> {
        check_fisher(self.config(), &states, g, cg.damping)?;
        self.fisher(states, FisherOp::Solve { g, cg }).await
    }
}

impl<E: Engine + FisherBackend> Fisher for E {}

/// Checks the arguments of a Fisher operation.
fn check_fisher(cfg: &ModelConfig, states: &States<'_>, v: &[f32], damping: f32) -> Result<()> {
    check_log_probs(cfg, states.inputs, states.mask, states.temperature)?;
    check_params(cfg.param_count(), v)?;
    if !(damping.is_finite() && damping >= 0.0) {
        return Err(EngineError::Input(format!(
            "damping must be finite and non-negative, got {damping}"
        )));
    }
    Ok(())
}

/// Conjugate gradient on the host, for the CPU engine: `fvp` gives `(F + λI)·p`. The GPU runs
/// the same recurrence (same guards: a zero curvature or residual stops the progress, not the
/// loop) in `shaders/fisher.wgsl`.
pub(crate) fn conjugate_gradient(
    mut fvp: impl FnMut(&[f32]) -> Vec<f32>,
    g: &[f32],
    iterations: u32,
) -> Vec<f32> {
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let mut x = vec![0.0f32; g.len()];
    let mut r = g.to_vec();
    let mut p = g.to_vec();
    let mut rr = dot(&r, &r);
    for _ in 0..iterations {
        let ap = fvp(&p);
        let pap = dot(&p, &ap);
        let alpha = if pap > 0.0 && rr > 0.0 { rr / pap } else { 0.0 };
        for ((xi, ri), (pi, api)) in x.iter_mut().zip(r.iter_mut()).zip(p.iter().zip(&ap)) {
            *xi += alpha * pi;
            *ri -= alpha * api;
        }
        let rr_new = dot(&r, &r);
        let beta = if rr > 0.0 { rr_new / rr } else { 0.0 };
        for (pi, ri) in p.iter_mut().zip(&r) {
            *pi = ri + beta * *pi;
        }
        rr = rr_new;
    }
    x
}

impl FisherBackend for AnyEngine {
    async fn fisher(&mut self, states: States<'_>, op: FisherOp<'_>) -> Result<Vec<f32>> {
        dispatch!(self, e => e.fisher(states, op).await)
    }
}
