//! The outer loops: one meta-iteration of CAVIA, Reptile or first-order MAML.

use super::federated::{
    adapt_tasks, chained_mean, mean_contribution, outer_update, task_seed, InnerState,
};
use super::{run_episode, trpo_step, Algorithm, MetaConfig, MetaProgress, Optimizer};
use crate::data::UserTask;
use crate::engine::fisher::Fisher;
use crate::engine::{Batch, Engine, EngineError, Loss, Mask, Result};
use crate::session::AdaptConfig;

/// One meta-iteration's settings, as both outer loops read them.
struct Iteration<'a> {
    cfg: &'a MetaConfig,
    /// The episodes' adaptation: what the algorithm adapts, with `cfg.adapt`'s settings.
    adapt: AdaptConfig,
    index: usize,
}

impl Iteration<'_> {
    /// The episode seed of the `u`-th task.
    fn seed(&self, u: usize) -> u32 {
        task_seed(self.cfg, self.index, u)
    }

    /// The progress report of this iteration.
    fn progress(&self, rewards: &[f32], loss: Option<f32>, skipped_total: u32) -> MetaProgress {
        MetaProgress {
            iteration: self.index,
            mean_reward: rewards.iter().sum::<f32>() / rewards.len().max(1) as f32,
            loss,
            skipped_total,
            kl: None,
            backtracks: None,
        }
    }
}

/// One meta-iteration of `cfg.algorithm`: an adapted episode for each task, then one outer
/// update of the shared network.
pub async fn meta_step<T: UserTask>(
    engine: &mut impl Fisher,
    tasks: Vec<T>,
    cfg: &MetaConfig,
    iteration: usize,
) -> Result<MetaProgress> {
    let it = Iteration {
        cfg,
        adapt: AdaptConfig {
            adapts: cfg.algorithm.adapts(),
            ..cfg.adapt
        },
        index: iteration,
    };
    match cfg.algorithm {
        Algorithm::Cavia => cavia_step(engine, tasks, &it).await,
        Algorithm::Reptile | Algorithm::Fomaml if cfg.optimizer != Optimizer::Reinforce => {
            Err(EngineError::Input(format!(
                "the {} optimiser is CAVIA's outer update; Reptile and first-order MAML take \
                 REINFORCE steps",
                cfg.optimizer.name()
            )))
        }
        Algorithm::Reptile | Algorithm::Fomaml => network_step(engine, tasks, &it).await,
    }
}

/// CAVIA: one outer step on all the episodes' transitions (first order: contexts and summaries
/// are treated as inputs).
async fn cavia_step<T: UserTask>(
    engine: &mut impl Fisher,
    tasks: Vec<T>,
    it: &Iteration<'_>,
) -> Result<MetaProgress> {
    let cfg = it.cfg;
    let mut batch = Batch::default();
    let mut words = Vec::new();
    let mut rewards = Vec::new();
    for (u, mut task) in tasks.into_iter().enumerate() {
        let ep = run_episode(engine, &mut task, it.adapt, cfg.slate, it.seed(u)).await?;
        batch.inputs.extend(ep.inputs);
        batch.rows.extend(ep.rows);
        words.extend(ep.masks);
        rewards.extend(ep.rewards);
    }
    let items = engine.config().items();
    let mask = Mask {
        words,
        words_per_row: items.div_ceil(32),
    };
    let (entropy, temperature) = (cfg.adapt.entropy, cfg.adapt.temperature);
    let reinforce = Loss::Reinforce {
        entropy,
        temperature,
    };
    let loss = match cfg.optimizer {
        Optimizer::Reinforce => reinforce,
        Optimizer::Ppo => {
            // The ratio's reference is π_old(a | x) under each row's own mask (a slate's later
            // items were drawn with its earlier ones excluded, so their propensities differ).
            let logp = engine
                .log_probs(&batch.inputs, Some(&mask), temperature)
                .await?;
            for (r, row) in batch.rows.iter_mut().enumerate() {
                row.old_logp = logp[r * items + row.action as usize];
            }
            Loss::Ppo {
                entropy,
                temperature,
                clip: 0.2,
            }
        }
        Optimizer::Trpo => {
            batch.mask = Some(mask);
            let skipped = engine.stats().await?.skipped;
            let step = trpo_step(engine, &batch, reinforce, &cfg.trpo).await?;
            let finite = step.loss.is_finite();
            return Ok(MetaProgress {
                kl: step.accepted.then_some(step.kl),
                backtracks: Some(step.backtracks),
                ..it.progress(
                    &rewards,
                    finite.then_some(step.loss),
                    skipped + u32::from(!finite),
                )
            });
        }
    };
    batch.mask = Some(mask);
    engine.reset_stats()?;
    engine.train(&batch, loss, cfg.outer, cfg.outer_steps.max(1))?;
    let stats = engine.stats().await?;
    let loss = (stats.steps > 0).then_some(stats.last_loss);
    Ok(it.progress(&rewards, loss, stats.skipped))
}

/// Reptile and first-order MAML: each task adapts a copy of the whole network (in the
/// engine, from the shared parameters θ; Adam state: [`InnerState`]); the outer update is computed
/// on the host from the adapted networks (Reptile) or their query gradients (first-order MAML),
/// and the outer Adam state is kept in the engine's optimiser state between iterations (so
/// checkpoints resume exactly). Both halves are [`super::federated`]'s, which federated clients
/// and servers run apart.
async fn network_step<T: UserTask>(
    engine: &mut impl Engine,
    tasks: Vec<T>,
    it: &Iteration<'_>,
) -> Result<MetaProgress> {
    let cfg = it.cfg;
    let theta = engine.params().await?;
    let before = engine.optimizer_state().await?;
    // Reptile: every task from a fresh Adam state, as federated clients run it; first-order
    // MAML: its earlier chained inner state (see `federated`)
    let inner = match cfg.algorithm {
        Algorithm::Fomaml => InnerState::Chained(&before),
        _ => InnerState::Fresh,
    };
    let c = adapt_tasks(
        engine,
        &theta,
        tasks.into_iter().enumerate().collect(),
        cfg,
        it.index,
        inner,
    )
    .await?;
    let mean = match inner {
        InnerState::Fresh => mean_contribution(&c.sum, c.tasks),
        InnerState::Chained(_) => chained_mean(&c.sum, c.tasks),
    };
    let value = (c.loss_sum / c.losses.max(1) as f64) as f32;
    let mut outer = before.clone();
    let updated = outer_update(&theta, &mean, cfg, &mut outer)?.filter(|_| value.is_finite());
    let finite = updated.is_some();
    engine.set_params(updated.as_deref().unwrap_or(&theta))?;
    engine.set_optimizer_state(if finite { &outer } else { &before })?;
    Ok(it.progress(
        &c.rewards,
        finite.then_some(value),
        c.skipped + u32::from(!finite),
    ))
}
