//! Meta-RL on MovieLens 100K, observed-only environment (ignored: a benchmark; run with
//! `cargo test --release --features cli --test meta_ml100k -- --ignored --nocapture`; the data
//! is `$METAREC_ML100K`, default ../shared/data/ml-100k, and a missing dataset fails): the policy
//! starts from the rating network fine-tuned on the training users (its ranking for a new user)
//! and is scored on the held-out users there (fine-tuned, not meta-trained) and after
//! meta-training, adapting and fixed. Asserts that every held-out user is scored, that no
//! outer step is skipped, and that meta-training raises the adapting policy's mean reward over
//! its fine-tuned start (for CAVIA significantly, as the README reports).
#![cfg(not(target_arch = "wasm32"))]

use metarec::data::{self, Environment, ObservedTask, RewardMode, SplitFractions};
use metarec::engine::cpu::CpuEngine;
use metarec::engine::Engine;
use metarec::finetune::{FinetuneConfig, SupervisedFit};
use metarec::meta::{
    meta_step, run_episode, Algorithm, MetaConfig, MetaProgress, ObservedSetup, PolicyShape,
};
use metarec::session::AdaptConfig;
use pollster::block_on;

mod common;
use common::ml100k;

fn per_user(
    engine: &mut CpuEngine,
    ds: &data::Dataset,
    users: &[u32],
    adapt: AdaptConfig,
) -> Vec<f32> {
    // sessions that adapt the whole network start every user from the same parameters
    let start = block_on(engine.params()).unwrap();
    users
        .iter()
        .map(|&u| {
            engine.set_params(&start).unwrap();
            let mut task = ObservedTask::for_user(ds, u, RewardMode::default(), 10);
            let ep = block_on(run_episode(engine, &mut task, adapt, 1, 900 + u)).unwrap();
            ep.rewards.iter().sum::<f32>() / ep.rewards.len().max(1) as f32
        })
        .collect()
}

fn mean_ci(v: &[f32]) -> (f64, f64) {
    let v: Vec<f64> = v.iter().map(|&x| f64::from(x)).collect();
    let s = metarec::eval::metrics::mean_ci(&v);
    (s.mean, s.ci95)
}

/// Mean and 95% half-width of the paired differences `a - b` (the same users, the same seeds).
fn paired(a: &[f32], b: &[f32]) -> (f64, f64) {
    let d: Vec<f32> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    mean_ci(&d)
}

#[test]
#[ignore]
fn meta_rl_on_ml100k_held_out_users() {
    let ds = data::load(&ml100k()).unwrap();
    let split = data::split_users(ds.n_users(), SplitFractions::default(), 1).unwrap();
    assert_eq!(
        split.cold_start.len(),
        189,
        "the README's 189 cold-start users"
    );
    // the policy starts from the rating network fine-tuned on the training users' ratings
    let finetune = FinetuneConfig {
        seed: 1,
        ..FinetuneConfig::default()
    };
    let fit = block_on(SupervisedFit::new(&ds, &split.train, &finetune)).unwrap();
    // content features and that prior (no collaborative factors)
    let setup = ObservedSetup::new(&ds, split.train.clone(), 0, 1)
        .with_prior(&block_on(fit.new_user_ratings()).unwrap());
    for algorithm in [Algorithm::Cavia, Algorithm::Reptile, Algorithm::Fomaml] {
        println!("{algorithm:?}");
        let s = run(&setup, &split.cold_start, algorithm);
        for (name, v) in [
            ("fine-tuned+adapt", &s.finetuned.0),
            ("fine-tuned fixed", &s.finetuned.1),
            ("meta+adapt", &s.meta.0),
            ("meta fixed", &s.meta.1),
        ] {
            let (m, ci) = mean_ci(v);
            println!(
                "{name:>16}: {m:.3} ± {ci:.3} (first 10 rounds, {} users)",
                v.len()
            );
            assert_eq!(v.len(), split.cold_start.len(), "{algorithm:?} {name}");
            assert!(
                v.iter().all(|r| (0.0..=1.0).contains(r)),
                "{algorithm:?} {name}: a mean reward outside [0, 1]"
            );
        }
        assert!(
            s.history.iter().all(|p| p.loss.is_some_and(f32::is_finite)),
            "{algorithm:?}: a skipped outer step: {:?}",
            s.history.iter().find(|p| p.loss.is_none())
        );
        let (gain, ci) = paired(&s.meta.0, &s.finetuned.0);
        println!("  meta-training, adapting: {gain:+.3} ± {ci:.3} (paired)");
        assert!(
            gain > 0.0,
            "{algorithm:?}: meta-training lowered the mean reward: {gain:+.3} ± {ci:.3}"
        );
        if algorithm == Algorithm::Cavia {
            assert!(
                gain - ci > 0.0,
                "CAVIA: meta-training's gain is not significant: {gain:+.3} ± {ci:.3}"
            );
        }
    }
}

/// Held-out users' mean reward per round over their first 10 rounds, (adapting, fixed).
type Scores = (Vec<f32>, Vec<f32>);

/// What one meta-training run measured.
struct Measured {
    /// The fine-tuned start, before meta-training.
    finetuned: Scores,
    meta: Scores,
    history: Vec<MetaProgress>,
}

fn run(setup: &ObservedSetup, held: &[u32], algorithm: Algorithm) -> Measured {
    let mut cfg = MetaConfig {
        algorithm,
        iterations: 150,
        users_per_iteration: 16,
        rounds: 20,
        ..MetaConfig::default()
    };
    cfg.adapt.adapts = algorithm.adapts();
    let model = setup.model(&PolicyShape::default(), &cfg);
    let mut engine = CpuEngine::new(&model).unwrap();
    engine.set_params(&setup.start(&model)).unwrap();
    engine.set_items(&setup.vectors.values).unwrap();
    // defaults as chosen on the synthetic world; nothing here is tuned on these users
    let ds = setup.dataset;
    let off = AdaptConfig {
        enabled: false,
        ..cfg.adapt
    };
    let finetuned = (
        per_user(&mut engine, ds, held, cfg.adapt),
        per_user(&mut engine, ds, held, off),
    );
    let t0 = std::time::Instant::now();
    let mut history = Vec::with_capacity(cfg.iterations);
    for it in 0..cfg.iterations {
        let tasks = setup.tasks(&cfg, it, Environment::Observed);
        let p = block_on(meta_step(&mut engine, tasks, &cfg, it)).unwrap();
        if it % 25 == 0 {
            println!(
                "it {it}: reward {:.3} loss {:?} ({:.0?})",
                p.mean_reward,
                p.loss,
                t0.elapsed()
            );
        }
        history.push(p);
    }
    let meta = (
        per_user(&mut engine, ds, held, cfg.adapt),
        per_user(&mut engine, ds, held, off),
    );
    Measured {
        finetuned,
        meta,
        history,
    }
}
