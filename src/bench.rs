//! Engine benchmarks shared by the CLI (`metarec bench engine`) and the page's self-check:
//! training throughput of the reference policy, with the engine's own work counters.

use crate::clock::now_ms;
use crate::engine::{Adam, Batch, Engine, Loss, Result, Row};
use crate::model::ModelConfig;
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

/// Times `repetitions` rounds of `steps_per_submit` REINFORCE steps of `engine` on a random
/// batch; each round ends with a statistics readback so the GPU's work is inside the timing.
pub async fn train_throughput(
    engine: &mut impl Engine,
    steps_per_submit: u32,
    repetitions: u32,
) -> Result<TrainThroughput> {
    let cfg = engine.config().clone();
    let (batch, embeddings) = random_batch(&cfg, 1);
    engine.set_items(&embeddings)?;
    let loss = Loss::Reinforce {
        entropy: 0.01,
        temperature: 1.0,
    };
    let adam = Adam::default();
    engine.train(&batch, loss, adam, 1)?; // warm-up: pipelines, first submit
    engine.stats().await?;
    let mut rates = Vec::new();
    let mut per_step = (0u64, 0u64, 0u64);
    for _ in 0..repetitions.max(1) {
        let before = engine.counters();
        let t0 = now_ms();
        engine.train(&batch, loss, adam, steps_per_submit)?;
        let during = engine.counters();
        engine.stats().await?;
        let ms = now_ms() - t0;
        rates.push(steps_per_submit as f64 / (ms / 1e3).max(1e-9));
        per_step.0 += during.dispatches - before.dispatches;
        per_step.1 += during.submits - before.submits;
        per_step.2 += during.bytes_read_back - before.bytes_read_back;
    }
    rates.sort_by(f64::total_cmp);
    let total_steps = (steps_per_submit * repetitions.max(1)) as f64;
    let info = engine.info();
    Ok(TrainThroughput {
        engine: info.engine,
        adapter: info.adapter,
        steps_per_submit,
        median_steps_per_s: rates[rates.len() / 2],
        steps_per_s: rates,
        dispatches_per_step: per_step.0 as f64 / total_steps,
        submits_per_repetition: per_step.1 as f64 / repetitions.max(1) as f64,
        bytes_read_back_per_step: per_step.2 as f64 / total_steps,
    })
}
