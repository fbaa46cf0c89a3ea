//! The outer policy update of CAVIA ([`Optimizer`]): REINFORCE, PPO-clip, or TRPO — a
//! natural-gradient step ([`crate::engine::fisher`]) scaled to a KL radius and accepted by a
//! backtracking line search only where the surrogate improves and the measured mean
//! KL(old ‖ new) stays within the radius.

use crate::engine::fisher::{Cg, Fisher, States};
use crate::engine::{Batch, EngineError, Loss, Result};
use serde::{Deserialize, Serialize};

/// How CAVIA's outer step updates the shared network from a batch of episodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// Policy gradient with the per-round baselines, [`super::MetaConfig::outer_steps`] Adam
    /// steps.
    #[default]
    Reinforce,
    /// PPO's clipped surrogate, the batch reused for `outer_steps` Adam steps.
    Ppo,
    /// A trust-region natural-gradient step ([`TrpoConfig`]).
    Trpo,
}

impl Optimizer {
    /// The command-line / JS name.
    pub fn name(self) -> &'static str {
        match self {
            Optimizer::Reinforce => "reinforce",
            Optimizer::Ppo => "ppo",
            Optimizer::Trpo => "trpo",
        }
    }

    /// Parses `reinforce`, `ppo` or `trpo`.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        match s {
            "reinforce" => Ok(Optimizer::Reinforce),
            "ppo" => Ok(Optimizer::Ppo),
            "trpo" => Ok(Optimizer::Trpo),
            _ => Err(format!("expected reinforce, ppo or trpo, found {s:?}")),
        }
    }
}

/// TRPO's settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrpoConfig {
    /// The KL radius δ: every accepted step has a measured mean KL(old ‖ new) ≤ δ.
    pub max_kl: f32,
    /// The conjugate gradient that solves `(F + λI) s = g`.
    pub cg: Cg,
    /// Halvings of the step the line search tries after the full one.
    pub backtracks: u32,
}

impl Default for TrpoConfig {
    fn default() -> Self {
        TrpoConfig {
            max_kl: 0.01,
            cg: Cg::default(),
            backtracks: 10,
        }
    }
}

impl TrpoConfig {
    /// Refuses a radius or damping that is not positive and finite.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(self.max_kl.is_finite() && self.max_kl > 0.0) {
            return Err(format!(
                "the KL radius must be positive, got {}",
                self.max_kl
            ));
        }
        if !(self.cg.damping.is_finite() && self.cg.damping >= 0.0) {
            return Err(format!(
                "the CG damping must be non-negative, got {}",
                self.cg.damping
            ));
        }
        if self.cg.iterations == 0 {
            return Err("TRPO needs at least one CG iteration".into());
        }
        Ok(())
    }
}

/// What one TRPO step did.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrpoStep {
    /// Whether a step was accepted (else the parameters are unchanged).
    pub accepted: bool,
    /// Measured mean KL(old ‖ new) of the accepted step (0 when none was).
    pub kl: f32,
    /// Steps the line search rejected before accepting one (all of them when none was).
    pub backtracks: u32,
    /// Surrogate improvement of the accepted step (0 when none was).
    pub improvement: f32,
    /// The policy-gradient loss at the old parameters (REINFORCE form, with the entropy term).
    pub loss: f32,
}

/// The surrogate `mean_r π(a_r|x_r)/π_old(a_r|x_r) · A_r + β mean_r H(π(·|x_r))` and the mean
/// KL(old ‖ new) from the rows' log-probabilities over the catalog (`f32::MIN` where masked).
fn surrogate_and_kl(
    batch: &Batch,
    old: &[f32],
    new: &[f32],
    items: usize,
    entropy: f32,
) -> (f32, f32) {
    let rows = batch.rows.len().max(1) as f64;
    let (mut surrogate, mut kl) = (0f64, 0f64);
    for (r, row) in batch.rows.iter().enumerate() {
        let (lo, ln) = (
            &old[r * items..(r + 1) * items],
            &new[r * items..(r + 1) * items],
        );
        let a = row.action as usize;
        let ratio = (f64::from(ln[a]) - f64::from(lo[a])).exp();
        let mut h = 0f64;
        for (&o, &n) in lo.iter().zip(ln) {
            if o == f32::MIN {
                continue;
            }
            let (o, n) = (f64::from(o), f64::from(n));
            kl += o.exp() * (o - n);
            h -= n.exp() * n;
        }
        surrogate += ratio * f64::from(row.reward - row.baseline) + f64::from(entropy) * h;
    }
    ((surrogate / rows) as f32, (kl / rows) as f32)
}

/// One TRPO update of the engine's parameters on `batch` (its mask, and the temperature and
/// entropy weight of `loss`, a [`Loss::Reinforce`]): the natural gradient `s` of the surrogate by
/// CG on Fisher-vector products, the step `sqrt(2δ / sᵀFs) · s`, then halvings of it until one
/// improves the surrogate with a measured mean KL ≤ δ. The parameters end at the accepted step,
/// or where they were when none is accepted.
pub async fn trpo_step(
    engine: &mut impl Fisher,
    batch: &Batch,
    loss: Loss,
    cfg: &TrpoConfig,
) -> Result<TrpoStep> {
    cfg.validate().map_err(EngineError::Input)?;
    let Loss::Reinforce {
        entropy,
        temperature,
    } = loss
    else {
        return Err(EngineError::Input(
            "TRPO's surrogate is the REINFORCE loss's".into(),
        ));
    };
    let items = engine.config().items();
    let states = States {
        inputs: &batch.inputs,
        mask: batch.mask.as_ref(),
        temperature,
    };
    let theta = engine.params().await?;
    let (grad, value) = engine.gradients(batch, loss).await?;
    let rejected = TrpoStep {
        accepted: false,
        kl: 0.0,
        backtracks: 0,
        improvement: 0.0,
        loss: value,
    };
    if !(value.is_finite() && grad.iter().all(|g| g.is_finite())) {
        return Ok(rejected);
    }
    // the surrogate's gradient is minus the loss's
    let g: Vec<f32> = grad.iter().map(|x| -x).collect();
    let s = engine.natural_gradient(states, &g, cfg.cg).await?;
    let fs = engine.fisher_product(states, &s, 0.0).await?;
    let shs: f32 = s.iter().zip(&fs).map(|(a, b)| a * b).sum();
    if !(shs.is_finite() && shs > 0.0) {
        return Ok(rejected);
    }
    let scale = (2.0 * cfg.max_kl / shs).sqrt();
    let old = engine
        .log_probs(states.inputs, states.mask, temperature)
        .await?;
    let (before, _) = surrogate_and_kl(batch, &old, &old, items, entropy);
    let mut frac = 1.0f32;
    for k in 0..=cfg.backtracks {
        let candidate: Vec<f32> = theta
            .iter()
            .zip(&s)
            .map(|(t, d)| t + frac * scale * d)
            .collect();
        if candidate.iter().all(|p| p.is_finite()) {
            engine.set_params(&candidate)?;
            let new = engine
                .log_probs(states.inputs, states.mask, temperature)
                .await?;
            let (after, kl) = surrogate_and_kl(batch, &old, &new, items, entropy);
            if kl.is_finite() && after.is_finite() && kl <= cfg.max_kl && after > before {
                return Ok(TrpoStep {
                    accepted: true,
                    kl: kl.max(0.0),
                    backtracks: k,
                    improvement: after - before,
                    loss: value,
                });
            }
        }
        frac *= 0.5;
    }
    engine.set_params(&theta)?;
    Ok(TrpoStep {
        backtracks: cfg.backtracks + 1,
        ..rejected
    })
}
