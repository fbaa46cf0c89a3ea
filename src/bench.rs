//! Engine benchmarks shared by the CLI (`metarec bench engine`) and the page's self-check:
//! training throughput of the reference policy, with the engine's own work counters; the
//! browser benchmark's adaptation loop; meta-training speed.

use crate::clock::now_ms;
use crate::engine::{Adam, Batch, Engine, Loss, Result, Row};
use crate::meta::{meta_step, policy_config, MetaConfig, PolicyShape, SyntheticSetup};
use crate::model::ModelConfig;
use crate::session::{AdaptConfig, Session};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Throughput of REINFORCE training steps on one engine.
#[derive(Clone, Debug, Serialize)]
pub struct TrainThroughput {
    pub engine: String,
    pub adapter: String,
    pub steps_per_submit: u32,
    /// Steps per second of each timed repetition, sorted ascending.
    pub steps_per_s: Vec<f64>,
    pub median_steps_per_s: f64,
    pub dispatches_per_step: f64,
    pub submits_per_repetition: f64,
    /// Bytes read back per step by the training calls themselves (the multi-step submits).
    pub bytes_read_back_per_step: f64,
}

/// A random batch and item matrix for `cfg` (rewards 0/1, running-mean baseline 0.5).
pub fn random_batch(cfg: &ModelConfig, seed: u64) -> (Batch, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rows = cfg.max_rows;
    let items = cfg.items().max(1);
    let batch = Batch {
        inputs: (0..rows * cfg.input)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect(),
        rows: (0..rows)
            .map(|_| Row {
                action: rng.random_range(0..items as u32),
                reward: rng.random_range(0..2) as f32,
                baseline: 0.5,
                old_logp: 0.0,
            })
            .collect(),
        mask: None,
    };
    let embeddings = (0..cfg.items() * cfg.output)
        .map(|_| rng.random_range(-0.3..0.3))
        .collect();
    (batch, embeddings)
}

/// The loss of the reference training step: REINFORCE with an entropy bonus of 0.01.
pub const REFERENCE_LOSS: Loss = Loss::Reinforce {
    entropy: 0.01,
    temperature: 1.0,
};

/// Work one timed round did, from the engine's counters.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Round {
    pub steps: u32,
    pub ms: f64,
    pub dispatches: u64,
    pub submits: u64,
    pub bytes_read_back: u64,
}

/// Timed rounds of reference training steps on one random batch.
pub struct StepTimer {
    batch: Batch,
}

impl StepTimer {
    /// Loads a random item matrix into `engine`, makes the batch and runs one warm-up step
    /// (pipelines, first submit).
    pub async fn new(engine: &mut impl Engine) -> Result<Self> {
        let (batch, embeddings) = random_batch(engine.config(), 1);
        engine.set_items(&embeddings)?;
        engine.train(&batch, REFERENCE_LOSS, Adam::default(), 1)?;
        engine.stats().await?;
        Ok(StepTimer { batch })
    }

    /// `steps` training steps in one `train` call, then a statistics readback so the GPU's
    /// work is inside the timing. The counters exclude that readback.
    pub async fn round(&self, engine: &mut impl Engine, steps: u32) -> Result<Round> {
        let before = engine.counters();
        let t0 = now_ms();
        engine.train(&self.batch, REFERENCE_LOSS, Adam::default(), steps)?;
        let during = engine.counters();
        engine.stats().await?;
        Ok(Round {
            steps,
            ms: now_ms() - t0,
            dispatches: during.dispatches - before.dispatches,
            submits: during.submits - before.submits,
            bytes_read_back: during.bytes_read_back - before.bytes_read_back,
        })
    }
}

/// Times `repetitions` rounds of `steps_per_submit` REINFORCE steps of `engine` on a random
/// batch; each round ends with a statistics readback so the GPU's work is inside the timing.
pub async fn train_throughput(
    engine: &mut impl Engine,
    steps_per_submit: u32,
    repetitions: u32,
) -> Result<TrainThroughput> {
    let trainer = StepTimer::new(engine).await?;
    let mut rates = Vec::new();
    let mut total = Round::default();
    for _ in 0..repetitions.max(1) {
        let r = trainer.round(engine, steps_per_submit).await?;
        rates.push(r.steps as f64 / (r.ms / 1e3).max(1e-9));
        total.steps += r.steps;
        total.dispatches += r.dispatches;
        total.submits += r.submits;
        total.bytes_read_back += r.bytes_read_back;
    }
    rates.sort_by(f64::total_cmp);
    let total_steps = total.steps as f64;
    let info = engine.info();
    Ok(TrainThroughput {
        engine: info.engine,
        adapter: info.adapter,
        steps_per_submit,
        median_steps_per_s: rates[rates.len() / 2],
        steps_per_s: rates,
        dispatches_per_step: total.dispatches as f64 / total_steps,
        submits_per_repetition: total.submits as f64 / repetitions.max(1) as f64,
        bytes_read_back_per_step: total.bytes_read_back as f64 / total_steps,
    })
}

/// `n` random item vectors of width `dim` (uniform in ±0.3), row-major: a synthetic catalog.
pub fn random_items(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n * dim).map(|_| rng.random_range(-0.3..0.3)).collect()
}

/// One person's adaptation loop on a synthetic catalog of random item vectors, with
/// [`adaptation_model`]'s network: each interaction is one reaction to the top item of the last
/// list ([`Session::feedback`], one adaptation step), then a new top-k read back
/// ([`Session::recommend`]), exactly as the page does per click.
pub struct Adaptation {
    session: Session,
    top: Vec<u32>,
    k: usize,
}

impl Adaptation {
    /// Loads the reference network (fresh parameters) and `items` random item vectors into
    /// `engine`, whose configuration must be [`adaptation_model`]`(items)`, and reads the
    /// first list (the warm-up).
    pub async fn new(engine: &mut impl Engine, k: usize, seed: u32) -> Result<Self> {
        let cfg = engine.config().clone();
        engine.set_items(&random_items(cfg.items(), cfg.output, seed as u64))?;
        let mut session = Session::new(&cfg, AdaptConfig::default(), seed);
        let top = session.recommend(engine, k, false).await?;
        Ok(Adaptation {
            top: top.iter().map(|r| r.item).collect(),
            session,
            k,
        })
    }

    /// One reaction (`reward` to the first item of the current list), then the new list
    /// ([`Session::react`]: one engine call, one submit on the GPU).
    pub async fn interact(&mut self, engine: &mut impl Engine, reward: f32) -> Result<Phases> {
        let t0 = now_ms();
        let next = self
            .session
            .react(engine, self.top[0], reward, self.k, false)
            .await?;
        self.top = next.iter().map(|r| r.item).collect();
        Ok(Phases {
            top: self.top.clone(),
            ms: now_ms() - t0,
        })
    }

    /// A list without a reaction (the recommend-only path): the top-k item indices.
    pub async fn recommend(&mut self, engine: &mut impl Engine) -> Result<Vec<u32>> {
        let list = self.session.recommend(engine, self.k, false).await?;
        Ok(list.iter().map(|r| r.item).collect())
    }
}

/// What one interaction of [`Adaptation`] returned, and how long it took.
#[derive(Clone, Debug, Serialize)]
pub struct Phases {
    /// The new top-k item indices.
    pub top: Vec<u32>,
    /// The reaction, the adaptation step and the new list, read back.
    pub ms: f64,
}

/// The network of the adaptation benchmark over `items` items, one row: the reference
/// policy's layers (hidden 256-256, item vectors of 64) behind a session's input, a 128-value
/// context plus the feedback summary ([`crate::session::summary_width`]).
pub fn adaptation_model(items: usize) -> ModelConfig {
    let reference = ModelConfig::reference_policy();
    let shape = PolicyShape {
        context: reference.input,
        hidden: reference.hidden.clone(),
    };
    policy_config(&shape, items, reference.output, 1)
}

/// Meta-training speed on the synthetic world, with the engine's counters per iteration.
#[derive(Clone, Debug, Serialize)]
pub struct MetaThroughput {
    pub engine: String,
    pub adapter: String,
    /// Timed meta-iterations (after one untimed warm-up iteration).
    pub iterations: usize,
    pub users_per_iteration: usize,
    pub rounds: usize,
    pub items: usize,
    pub seconds: f64,
    pub iterations_per_s: f64,
    pub dispatches_per_iteration: f64,
    pub submits_per_iteration: f64,
    pub bytes_read_back_per_iteration: f64,
}

/// Times `iterations` meta-iterations ([`meta_step`]) of `engine`, built for `setup.model`,
/// after one warm-up iteration.
pub async fn meta_throughput(
    engine: &mut impl crate::engine::fisher::Fisher,
    setup: &SyntheticSetup,
    cfg: &MetaConfig,
    iterations: usize,
) -> Result<MetaThroughput> {
    engine.set_items(&setup.items)?;
    meta_step(engine, setup.tasks(cfg, 0), cfg, 0).await?;
    let before = engine.counters();
    let t0 = now_ms();
    for it in 1..=iterations.max(1) {
        meta_step(engine, setup.tasks(cfg, it), cfg, it).await?;
    }
    let seconds = (now_ms() - t0) / 1e3;
    let after = engine.counters();
    let n = iterations.max(1) as f64;
    let info = engine.info();
    Ok(MetaThroughput {
        engine: info.engine,
        adapter: info.adapter,
        iterations: iterations.max(1),
        users_per_iteration: cfg.users_per_iteration,
        rounds: cfg.rounds,
        items: setup.model.items(),
        seconds,
        iterations_per_s: n / seconds.max(1e-9),
        dispatches_per_iteration: (after.dispatches - before.dispatches) as f64 / n,
        submits_per_iteration: (after.submits - before.submits) as f64 / n,
        bytes_read_back_per_iteration: (after.bytes_read_back - before.bytes_read_back) as f64 / n,
    })
}
