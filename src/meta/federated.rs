//! The whole-network outer loops (Reptile, first-order MAML) split in two halves, so that the
//! tasks can live on different machines: [`adapt_tasks`] runs the inner loop for some tasks
//! from the shared parameters θ and returns the summed contributions (what a federated client
//! sends back), and [`outer_update`] applies the outer step to the mean contribution (what the
//! server does). Centralised meta-training ([`super::meta_step`]) is both halves over all the
//! iteration's tasks in one process; the Python package's Flower client and server call the same
//! two functions.
//!
//! With [`InnerState::Fresh`] every task adapts from θ with a fresh Adam state, as a new
//! person's session does ([`crate::session::Session::owning`]), and from a seed given by its
//! slot in the iteration ([`task_seed`]), so a task's contribution depends only on θ, the task
//! and its slot: the tasks of an iteration can be split among clients in any way and the
//! weighted mean of the clients' contributions is the centralised one. Centralised Reptile and
//! every federated client run that way. Centralised first-order MAML keeps its earlier inner
//! loop, [`InnerState::Chained`]: the tasks of an iteration continue one Adam state, starting
//! from the outer optimiser's; the browser's in-page meta-training (first-order MAML) is tuned on
//! it, and with fresh states its people's liked genre rose half as much (README, Meta-RL), so
//! federated first-order MAML is not the centralised one.

use super::{run_episode, Algorithm, MetaConfig};
use crate::data::UserTask;
use crate::engine::{AdamState, Engine, EngineError, Loss, OptimizerState, Result};
use crate::session::{AdaptConfig, Adapts};

/// The seed of the episode in slot `slot` of meta-iteration `iteration`.
pub fn task_seed(cfg: &MetaConfig, iteration: usize, slot: usize) -> u32 {
    cfg.seed ^ ((iteration * 7919 + slot) as u32)
}

/// What adapting some tasks from θ produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Contribution {
    /// Σ over the contributing tasks of the adapted network − θ (Reptile) or of the policy
    /// gradient of the episode's query half at the adapted network (first-order MAML), summed
    /// in f64 so that the order of the sums (which tasks a client holds) does not change the
    /// mean once it is rounded to f32.
    pub sum: Vec<f64>,
    /// Tasks in `sum` (first-order MAML leaves out episodes without query rounds).
    pub tasks: usize,
    /// Episodes run.
    pub episodes: usize,
    /// Reward per round of every episode, in order.
    pub rewards: Vec<f32>,
    /// Σ of the losses behind `losses` values: the inner REINFORCE steps' (Reptile) or the
    /// query losses (first-order MAML).
    pub loss_sum: f64,
    pub losses: usize,
    /// Inner steps the engine skipped because their loss or gradient was not finite.
    pub skipped: u32,
}

/// Where each task's inner Adam state starts.
#[derive(Clone, Copy, Debug)]
pub enum InnerState<'a> {
    /// Every task from a zero state (a new person's session; what clients run).
    Fresh,
    /// The first task from this state, each later one from where the previous task left it;
    /// the contributions are summed in f32 as before `Fresh` existed, so centralised first-order
    /// MAML is bit for bit what it was (its mean: [`chained_mean`]).
    Chained(&'a OptimizerState),
}

/// Runs the inner loop of `cfg.algorithm` (Reptile or first-order MAML) for `tasks`, each
/// `(slot, task)` adapting the whole network from `theta` (its Adam state as `inner` says), and
/// returns the summed contributions. The engine is left holding `theta` and a fresh optimiser
/// state.
pub async fn adapt_tasks<T: UserTask>(
    engine: &mut impl Engine,
    theta: &[f32],
    tasks: Vec<(usize, T)>,
    cfg: &MetaConfig,
    iteration: usize,
    inner: InnerState<'_>,
) -> Result<Contribution> {
    if cfg.algorithm == Algorithm::Cavia {
        return Err(EngineError::Input(
            "CAVIA adapts a context, not the network: it has no per-task parameter delta".into(),
        ));
    }
    let adapt = AdaptConfig {
        adapts: Adapts::Network,
        ..cfg.adapt
    };
    let fresh = OptimizerState {
        m: vec![0.0; theta.len()],
        v: vec![0.0; theta.len()],
        step: 0,
    };
    let words_per_row = engine.config().items().div_ceil(32);
    let loss = Loss::Reinforce {
        entropy: cfg.adapt.entropy,
        temperature: cfg.adapt.temperature,
    };
    let mut out = Contribution {
        sum: vec![0.0; theta.len()],
        tasks: 0,
        episodes: 0,
        rewards: Vec::new(),
        loss_sum: 0.0,
        losses: 0,
        skipped: 0,
    };
    engine.reset_stats()?;
    if let InnerState::Chained(start) = inner {
        engine.set_optimizer_state(start)?;
    }
    for (slot, mut task) in tasks {
        engine.set_params(theta)?;
        if let InnerState::Fresh = inner {
            engine.set_optimizer_state(&fresh)?;
        }
        let seed = task_seed(cfg, iteration, slot);
        let ep = run_episode(engine, &mut task, adapt, cfg.slate, seed).await?;
        out.episodes += 1;
        out.rewards.extend(&ep.rewards);
        let contribution = match cfg.algorithm {
            Algorithm::Fomaml => {
                let query = ep.batch_from(ep.rewards.len() / 2, words_per_row);
                if query.rows.is_empty() {
                    continue;
                }
                let (grad, value) = engine.gradients(&query, loss).await?;
                out.loss_sum += f64::from(value);
                out.losses += 1;
                grad
            }
            _ => {
                let adapted = engine.params().await?;
                adapted.iter().zip(theta).map(|(a, t)| a - t).collect()
            }
        };
        for (s, c) in out.sum.iter_mut().zip(contribution) {
            *s = match inner {
                InnerState::Fresh => *s + f64::from(c),
                // the earlier f32 sums, bit for bit (see `InnerState::Chained`)
                InnerState::Chained(_) => f64::from(*s as f32 + c),
            };
        }
        out.tasks += 1;
    }
    let stats = engine.stats().await?;
    if cfg.algorithm == Algorithm::Reptile {
        out.loss_sum = f64::from(stats.mean_loss) * f64::from(stats.steps);
        out.losses = stats.steps as usize;
    }
    out.skipped = stats.skipped;
    engine.set_params(theta)?;
    engine.set_optimizer_state(&fresh)?;
    Ok(out)
}

/// The mean contribution of `sum` over `tasks` tasks, rounded to f32 (zeros without tasks).
pub fn mean_contribution(sum: &[f64], tasks: usize) -> Vec<f32> {
    sum.iter()
        .map(|s| (s / tasks.max(1) as f64) as f32)
        .collect()
}

/// The mean of a [`InnerState::Chained`] run's f32 sums, divided in f32 as before.
pub fn chained_mean(sum: &[f64], tasks: usize) -> Vec<f32> {
    sum.iter()
        .map(|s| *s as f32 / tasks.max(1) as f32)
        .collect()
}

/// The outer step on the mean contribution `mean` (Σ contributions / tasks): Reptile moves θ
/// `cfg.reptile_step` of the way along it; first-order MAML takes an Adam step
/// (`cfg.outer`, state `outer`) with it as the gradient. Returns the new parameters, or `None`
/// (θ and `outer` unchanged) when they would not be finite.
pub fn outer_update(
    theta: &[f32],
    mean: &[f32],
    cfg: &MetaConfig,
    outer: &mut OptimizerState,
) -> Result<Option<Vec<f32>>> {
    if mean.len() != theta.len() || outer.m.len() != theta.len() || outer.v.len() != theta.len() {
        return Err(EngineError::Input(format!(
            "the outer step needs {} values in the mean contribution and the Adam state, got {}, {} and {}",
            theta.len(),
            mean.len(),
            outer.m.len(),
            outer.v.len()
        )));
    }
    let mut params = theta.to_vec();
    let mut state = outer.clone();
    match cfg.algorithm {
        Algorithm::Fomaml => {
            let norm = mean.iter().map(|g| g * g).sum::<f32>().sqrt();
            state.step += 1;
            let mut adam = AdamState {
                m: &mut state.m,
                v: &mut state.v,
                step: state.step,
            };
            crate::engine::adam_update(&mut params, &mut adam, mean, cfg.outer, norm);
        }
        Algorithm::Reptile => {
            for (p, d) in params.iter_mut().zip(mean) {
                *p += cfg.reptile_step * d;
            }
        }
        Algorithm::Cavia => {
            return Err(EngineError::Input(
                "CAVIA's outer step is a policy-gradient step on the engine, not a parameter delta"
                    .into(),
            ))
        }
    }
    if !params.iter().all(|p| p.is_finite()) {
        return Ok(None);
    }
    *outer = state;
    Ok(Some(params))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{ObservedTask, RewardMode, World, WorldConfig};
    use crate::engine::cpu::CpuEngine;
    use crate::meta::{meta_step, shard_users, SyntheticSetup};
    use std::future::Future;

    fn ready<F: Future>(f: F) -> F::Output {
        crate::engine::cpu::ready(f).expect("the CPU engine answers at once")
    }

    /// Three clients, each holding every third user, adapt their part of an iteration's tasks;
    /// the weighted mean of their contributions and the server's outer step give the
    /// centralised step's parameters (Reptile; and first-order MAML when its centralised inner
    /// loop runs fresh states too, which `meta_step` does not: checked through `adapt_tasks`).
    #[test]
    fn clients_holding_shards_reach_the_centralised_step() {
        let world = WorldConfig {
            n_items: 60,
            n_users: 30,
            style_dim: 2,
            seed: 5,
        };
        let ds = World::generate(world).unwrap().dataset(5).unwrap();
        let users: Vec<u32> = (0..ds.n_users() as u32).collect();
        for algorithm in [Algorithm::Reptile, Algorithm::Fomaml] {
            let cfg = MetaConfig {
                algorithm,
                users_per_iteration: 7,
                rounds: 6,
                reptile_step: 0.5,
                ..MetaConfig::default()
            };
            let setup = SyntheticSetup::new(world, &Default::default(), &cfg).unwrap();
            let task = |u: u32| ObservedTask::for_user(&ds, u, RewardMode::default(), cfg.rounds);
            let mut central = CpuEngine::new(&setup.model).unwrap();
            central.set_items(&setup.items).unwrap();
            let mut client = CpuEngine::new(&setup.model).unwrap();
            client.set_items(&setup.items).unwrap();
            let mut theta = ready(central.params()).unwrap();
            let mut outer = ready(central.optimizer_state()).unwrap();
            let mut central_outer = outer.clone();
            for it in 0..3 {
                let all: Vec<(usize, ObservedTask)> =
                    crate::meta::iteration_users(&users, &cfg, it)
                        .into_iter()
                        .map(|(slot, u)| (slot, task(u)))
                        .collect();
                let expected = if algorithm == Algorithm::Reptile {
                    // the centralised meta-iteration itself
                    let tasks = all.into_iter().map(|(_, t)| t).collect();
                    ready(meta_step(&mut central, tasks, &cfg, it)).unwrap();
                    ready(central.params()).unwrap()
                } else {
                    // every task of the iteration in one process, fresh states
                    let start = ready(central.params()).unwrap();
                    let c = ready(adapt_tasks(
                        &mut central,
                        &start,
                        all,
                        &cfg,
                        it,
                        InnerState::Fresh,
                    ))
                    .unwrap();
                    let mean = mean_contribution(&c.sum, c.tasks);
                    let next = outer_update(&start, &mean, &cfg, &mut central_outer)
                        .unwrap()
                        .unwrap();
                    central.set_params(&next).unwrap();
                    next
                };
                let (mut sum, mut n) = (vec![0.0f64; theta.len()], 0);
                for c in 0..3 {
                    let mine = shard_users(&users, 3, c, &cfg, it)
                        .into_iter()
                        .map(|(slot, u)| (slot, task(u)))
                        .collect();
                    let inner = InnerState::Fresh;
                    let part =
                        ready(adapt_tasks(&mut client, &theta, mine, &cfg, it, inner)).unwrap();
                    sum.iter_mut().zip(&part.sum).for_each(|(s, p)| *s += p);
                    n += part.tasks;
                }
                assert_eq!(n, 7);
                let mean = mean_contribution(&sum, n);
                theta = outer_update(&theta, &mean, &cfg, &mut outer)
                    .unwrap()
                    .unwrap();
                let gap = expected
                    .iter()
                    .zip(&theta)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                // the f64 sums make the means equal whatever the order of the sums
                assert!(gap == 0.0, "{algorithm:?} iteration {it}: gap {gap}");
            }
        }
    }

    #[test]
    fn cavia_has_no_parameter_delta() {
        let cfg = MetaConfig::default();
        let mut outer = OptimizerState {
            m: vec![0.0; 2],
            v: vec![0.0; 2],
            step: 0,
        };
        let err = outer_update(&[0.0; 2], &[0.0; 2], &cfg, &mut outer).unwrap_err();
        assert!(err.to_string().contains("CAVIA"), "{err}");
        let reptile = MetaConfig {
            algorithm: Algorithm::Reptile,
            ..cfg
        };
        let err = outer_update(&[0.0; 2], &[0.0; 3], &reptile, &mut outer).unwrap_err();
        assert!(err.to_string().contains("needs 2 values"), "{err}");
    }
}
