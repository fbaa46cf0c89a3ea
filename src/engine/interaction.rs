//! One interaction of a context-adapting session (CAVIA) in one engine call
//! ([`super::Engine::adapt_context`]): after a reaction, one REINFORCE step on the person's
//! context vector (Adam, no clipping), then the next slate drawn at the adapted input, with each
//! position's logit. The GPU engine runs it in one submit and reads back only the context's
//! gradient and the slate; [`reference`] composes it from the other engine operations (the CPU
//! engine's implementation and the definition the GPU is checked against).

use super::{
    adam_update, check_batch, check_sample, Adam, AdamState, Batch, Engine, EngineError, Loss,
    Mask, Result, SlateSpec, Slates,
};
use crate::model::ModelConfig;

/// The state the step changes: the context (the first `context.len()` values of the network's
/// input), its Adam moments and the number of Adam steps taken so far.
pub struct ContextState<'a> {
    pub context: &'a mut [f32],
    pub m: &'a mut [f32],
    pub v: &'a mut [f32],
    pub step: &'a mut u32,
}

/// One interaction: the reaction and what the next slate is drawn with.
#[derive(Clone, Copy)]
pub struct ContextStep<'a> {
    /// The reaction: one row at the input `[context, summary]` it was made at, with the mask of
    /// that time.
    pub batch: &'a Batch,
    pub loss: Loss,
    /// The context's optimiser (`clip_norm` must be 0: the step is not clipped).
    pub adam: Adam,
    /// The next input after the context: the updated feedback summary.
    pub next_tail: &'a [f32],
    /// The items the next slate may not hold.
    pub next_mask: &'a Mask,
    pub spec: SlateSpec,
}

/// The next slate and, per position, its item's logit `u · e_j / T`; the reaction's loss.
#[derive(Clone, Debug, PartialEq)]
pub struct Adapted {
    pub slate: Slates,
    pub scores: Vec<f32>,
    pub loss: f32,
}

/// Checks a step against the model and the state before any engine touches it.
pub(crate) fn check(cfg: &ModelConfig, step: &ContextStep, state: &ContextState) -> Result<()> {
    if check_batch(cfg, step.batch, step.loss)?.rows != 1 {
        return Err(EngineError::Input(
            "a context step takes one reaction (one row)".into(),
        ));
    }
    let c = state.context.len();
    if c + step.next_tail.len() != cfg.input {
        return Err(EngineError::Input(format!(
            "context ({c}) and next summary ({}) must fill the input width {}",
            step.next_tail.len(),
            cfg.input
        )));
    }
    if state.m.len() != c || state.v.len() != c {
        return Err(EngineError::Input(format!(
            "the context's Adam moments must have {c} values each"
        )));
    }
    if step.adam.clip_norm != 0.0 {
        return Err(EngineError::Input(
            "a context step is not clipped: clip_norm must be 0".into(),
        ));
    }
    check_sample(
        cfg,
        &next_input(state, step),
        Some(step.next_mask),
        &step.spec,
    )?;
    Ok(())
}

/// The input the next slate is drawn at: the context, then the next summary.
fn next_input(state: &ContextState, step: &ContextStep) -> Vec<f32> {
    state
        .context
        .iter()
        .chain(step.next_tail)
        .copied()
        .collect()
}

/// The host's Adam step on the context along `grad` (its first `context.len()` values).
pub(crate) fn host_step(grad: &[f32], adam: Adam, state: &mut ContextState) {
    *state.step += 1;
    let mut moments = AdamState {
        m: state.m,
        v: state.v,
        step: *state.step,
    };
    let c = state.context.len();
    adam_update(state.context, &mut moments, &grad[..c], adam, 0.0);
}

/// The interaction from the other engine operations: the input gradient, the host's Adam step,
/// the slate, and the slate's logits from one forward pass.
pub async fn reference<E: Engine + ?Sized>(
    engine: &mut E,
    step: ContextStep<'_>,
    mut state: ContextState<'_>,
) -> Result<Adapted> {
    check(engine.config(), &step, &state)?;
    let (grad, loss) = engine.input_gradient(step.batch, step.loss).await?;
    host_step(&grad, step.adam, &mut state);
    let input = next_input(&state, &step);
    let (slate, scores) = engine
        .sample_scored(&input, Some(step.next_mask), step.spec)
        .await?;
    Ok(Adapted {
        slate,
        scores,
        loss,
    })
}
