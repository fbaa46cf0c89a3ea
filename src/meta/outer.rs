//! The outer loops: one meta-iteration of CAVIA, Reptile or first-order MAML.

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
        self.cfg.seed ^ ((self.index * 7919 + u) as u32)
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
/// engine, from the shared parameters θ); the outer update is computed on the host from the
/// adapted networks (Reptile) or their query gradients (first-order MAML), and the outer Adam
/// state is kept in the engine's optimiser state between iterations (so checkpoints resume
/// exactly).
async fn network_step<T: UserTask>(
    engine: &mut impl Engine,
    tasks: Vec<T>,
    it: &Iteration<'_>,
) -> Result<MetaProgress> {
    let cfg = it.cfg;
    let theta = engine.params().await?;
    let before = engine.optimizer_state().await?;
    let mut outer = before.clone();
    let words_per_row = engine.config().items().div_ceil(32);
    let loss = Loss::Reinforce {
        entropy: cfg.adapt.entropy,
        temperature: cfg.adapt.temperature,
    };
    engine.reset_stats()?;
    let mut sum = vec![0.0f32; theta.len()];
    let (mut rewards, mut losses) = (Vec::new(), Vec::new());
    let mut contributions = 0usize;
    for (u, mut task) in tasks.into_iter().enumerate() {
        engine.set_params(&theta)?;
        let ep = run_episode(engine, &mut task, it.adapt, cfg.slate, it.seed(u)).await?;
        rewards.extend(&ep.rewards);
        let contribution = match cfg.algorithm {
            Algorithm::Fomaml => {
                let query = ep.batch_from(ep.rewards.len() / 2, words_per_row);
                if query.rows.is_empty() {
                    continue;
                }
                let (grad, value) = engine.gradients(&query, loss).await?;
                losses.push(value);
                grad
            }
            _ => {
                let adapted = engine.params().await?;
                adapted.iter().zip(&theta).map(|(a, t)| a - t).collect()
            }
        };
        for (s, c) in sum.iter_mut().zip(contribution) {
            *s += c;
        }
        contributions += 1;
    }
    let stats = engine.stats().await?;
    let mean: Vec<f32> = sum
        .iter()
        .map(|s| s / contributions.max(1) as f32)
        .collect();
    let mut params = theta.clone();
    let value = match cfg.algorithm {
        Algorithm::Fomaml => {
            let norm = mean.iter().map(|g| g * g).sum::<f32>().sqrt();
            outer.step += 1;
            let mut state = crate::engine::AdamState {
                m: &mut outer.m,
                v: &mut outer.v,
                step: outer.step,
            };
            crate::engine::adam_update(&mut params, &mut state, &mean, cfg.outer, norm);
            losses.iter().sum::<f32>() / losses.len().max(1) as f32
        }
        _ => {
            for (p, d) in params.iter_mut().zip(&mean) {
                *p += cfg.reptile_step * d;
            }
            stats.mean_loss
        }
    };
    let finite = params.iter().all(|p| p.is_finite()) && value.is_finite();
    engine.set_params(if finite { &params } else { &theta })?;
    engine.set_optimizer_state(if finite { &outer } else { &before })?;
    let skipped = stats.skipped + u32::from(!finite);
    Ok(it.progress(&rewards, finite.then_some(value), skipped))
}
