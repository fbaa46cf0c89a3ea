//! The outer loops: one meta-iteration of CAVIA, Reptile or first-order MAML.

use super::federated::{
    adapt_tasks, chained_mean, mean_contribution, outer_update, task_seed, InnerState,
};
use super::{run_episode, Algorithm, MetaConfig, MetaProgress};
use crate::data::UserTask;
use crate::engine::{Batch, Engine, Loss, Mask, Result};
use crate::session::{AdaptConfig, Adapts};

/// One meta-iteration of `cfg.algorithm`: an adapted episode for each task, then one outer
/// update of the shared network.
pub async fn meta_step<T: UserTask>(
    engine: &mut impl Engine,
    tasks: Vec<T>,
    cfg: &MetaConfig,
    iteration: usize,
) -> Result<MetaProgress> {
    match cfg.algorithm {
        Algorithm::Cavia => cavia_step(engine, tasks, cfg, iteration).await,
        Algorithm::Reptile | Algorithm::Fomaml => network_step(engine, tasks, cfg, iteration).await,
    }
}

/// CAVIA: one outer step on all the episodes' transitions (first order: contexts and summaries
/// are treated as inputs).
async fn cavia_step<T: UserTask>(
    engine: &mut impl Engine,
    tasks: Vec<T>,
    cfg: &MetaConfig,
    iteration: usize,
) -> Result<MetaProgress> {
    let adapt = AdaptConfig {
        adapts: Adapts::Context,
        ..cfg.adapt
    };
    let mut batch = Batch::default();
    let mut words = Vec::new();
    let mut rewards = Vec::new();
    for (u, mut task) in tasks.into_iter().enumerate() {
        let ep = run_episode(
            engine,
            &mut task,
            adapt,
            cfg.slate,
            task_seed(cfg, iteration, u),
        )
        .await?;
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
    let loss = if cfg.outer_steps > 1 {
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
    } else {
        Loss::Reinforce {
            entropy,
            temperature,
        }
    };
    batch.mask = Some(mask);
    engine.reset_stats()?;
    engine.train(&batch, loss, cfg.outer, cfg.outer_steps.max(1))?;
    let stats = engine.stats().await?;
    Ok(MetaProgress {
        iteration,
        mean_reward: rewards.iter().sum::<f32>() / rewards.len().max(1) as f32,
        loss: (stats.steps > 0).then_some(stats.last_loss),
        skipped_total: stats.skipped,
    })
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
    cfg: &MetaConfig,
    iteration: usize,
) -> Result<MetaProgress> {
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
        iteration,
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
    Ok(MetaProgress {
        iteration,
        mean_reward: c.rewards.iter().sum::<f32>() / c.rewards.len().max(1) as f32,
        loss: finite.then_some(value),
        skipped_total: c.skipped + u32::from(!finite),
    })
}
