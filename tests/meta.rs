//! Meta-RL on a small synthetic world: meta-training raises the click rate of users never seen
//! in training; checkpoints resume exactly; GPU and CPU engines follow the same curve.
#![cfg(not(target_arch = "wasm32"))]

use metarec::data::{ItemFeatures, World, WorldConfig};
use metarec::engine::cpu::CpuEngine;
use metarec::engine::fisher::Fisher;
use metarec::engine::gpu::GpuEngine;
use metarec::engine::Engine;
use metarec::meta::{
    meta_step, policy_config, run, run_episode, Algorithm, Checkpoint, Hooks, ItemVectors,
    MetaConfig, MetaProgress, PolicyShape, SyntheticSetup,
};
use metarec::session::AdaptConfig;
use pollster::block_on;

mod common;

/// Mean reward over the first `rounds` rounds, per held-out user (same task seeds for every
/// policy, so comparisons are paired). Sessions that adapt the whole network start every user
/// from the engine's current parameters.
fn first_rounds(
    engine: &mut CpuEngine,
    world: &World,
    users: &[u32],
    adapt: AdaptConfig,
    rounds: usize,
) -> Vec<f32> {
    let start = block_on(engine.params()).unwrap();
    users
        .iter()
        .map(|&u| {
            engine.set_params(&start).unwrap();
            let mut task = world.task(u, rounds, 1000 + u as u64);
            let ep = block_on(run_episode(engine, &mut task, adapt, 1, 500 + u)).unwrap();
            ep.rewards.iter().sum::<f32>() / rounds as f32
        })
        .collect()
}

/// Mean and 95% half-width of the paired differences `a - b`.
fn paired(a: &[f32], b: &[f32]) -> (f64, f64) {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| (x - y) as f64).collect();
    let s = metarec::eval::metrics::mean_ci(&d);
    (s.mean, s.ci95)
}

#[test]
fn meta_training_raises_the_click_rate_of_held_out_users() {
    for algorithm in [Algorithm::Cavia, Algorithm::Reptile, Algorithm::Fomaml] {
        raises_the_click_rate(algorithm);
    }
}

fn raises_the_click_rate(algorithm: Algorithm) {
    let world = World::generate(WorldConfig {
        n_items: 300,
        n_users: 400,
        style_dim: 4,
        seed: 3,
    })
    .unwrap();
    let ratings = world.dataset(3).unwrap();
    let features = ItemFeatures::build(&world.catalog, &ratings.ratings);
    let vectors = ItemVectors::new(&features, &ratings.ratings);
    let mut cfg = MetaConfig {
        algorithm,
        iterations: 40,
        users_per_iteration: 8,
        rounds: 20,
        ..MetaConfig::default()
    };
    cfg.adapt.adapts = algorithm.adapts();
    let model = policy_config(
        &PolicyShape::default(),
        world.catalog.len(),
        vectors.dim,
        cfg.rows(),
    );
    let mut engine = CpuEngine::new(&model).unwrap();
    engine.set_items(&vectors.values).unwrap();
    let held_out: Vec<u32> = (250..400).collect();
    let fixed = AdaptConfig {
        enabled: false,
        ..cfg.adapt
    };
    let before = first_rounds(&mut engine, &world, &held_out, cfg.adapt, 10);
    for it in 0..cfg.iterations {
        let users = (it * cfg.users_per_iteration..(it + 1) * cfg.users_per_iteration)
            .map(|u| (u % 250) as u32);
        let tasks: Vec<_> = users
            .map(|u| world.task(u, cfg.rounds, (it * 1000) as u64 + u as u64))
            .collect();
        block_on(meta_step(&mut engine, tasks, &cfg, it)).unwrap();
    }
    let adapted = first_rounds(&mut engine, &world, &held_out, cfg.adapt, 10);
    let frozen = first_rounds(&mut engine, &world, &held_out, fixed, 10);
    let (gain_meta, ci_meta) = paired(&adapted, &before);
    let (gain_adapt, ci_adapt) = paired(&adapted, &frozen);
    println!(
        "{algorithm:?}: clicks per round, rounds 1-10, 150 held-out users: meta-training {gain_meta:+.3} ± {ci_meta:.3}, on-device adaptation {gain_adapt:+.3} ± {ci_adapt:.3}"
    );
    assert!(
        gain_meta - ci_meta > 0.0,
        "{algorithm:?} meta-training: {gain_meta:+.3} ± {ci_meta:.3}"
    );
    if algorithm == Algorithm::Fomaml {
        // adapting the whole network from the meta-learned start, within 10 interactions
        assert!(
            gain_adapt - ci_adapt > 0.0,
            "on-device adaptation: {gain_adapt:+.3} ± {ci_adapt:.3}"
        );
    }
}

fn small() -> (SyntheticSetup, MetaConfig) {
    let cfg = MetaConfig {
        users_per_iteration: 3,
        rounds: 6,
        ..MetaConfig::default()
    };
    let world = WorldConfig {
        n_items: 70,
        n_users: 30,
        style_dim: 2,
        seed: 21,
    };
    (
        SyntheticSetup::new(world, &PolicyShape::default(), &cfg).unwrap(),
        cfg,
    )
}

fn iterate(
    engine: &mut impl Fisher,
    setup: &SyntheticSetup,
    cfg: &MetaConfig,
    its: std::ops::Range<usize>,
) -> Vec<MetaProgress> {
    its.map(|it| block_on(meta_step(engine, setup.tasks(cfg, it), cfg, it)).unwrap())
        .collect()
}

#[test]
fn a_resumed_run_ends_exactly_where_an_uninterrupted_one_does() {
    for algorithm in [Algorithm::Cavia, Algorithm::Reptile, Algorithm::Fomaml] {
        resumes_exactly(algorithm);
    }
}

fn resumes_exactly(algorithm: Algorithm) {
    let (setup, mut cfg) = small();
    cfg.iterations = 6;
    cfg.algorithm = algorithm;
    cfg.adapt.adapts = algorithm.adapts();
    let fresh = || {
        let mut e = CpuEngine::new(&setup.model).unwrap();
        e.set_items(&setup.items).unwrap();
        e
    };
    let run_with =
        |engine: &mut CpuEngine, start, stop_after: usize, saved: &mut Vec<Checkpoint>| {
            let done = std::cell::Cell::new(0);
            let hooks = Hooks {
                on_progress: |_: &MetaProgress| done.set(done.get() + 1),
                should_stop: || done.get() >= stop_after,
                save: |c: &Checkpoint| {
                    saved.push(c.clone());
                    Ok(())
                },
                every: 2,
            };
            block_on(run(engine, &cfg, start, |it| setup.tasks(&cfg, it), hooks)).unwrap()
        };
    let mut straight = fresh();
    let all = run_with(&mut straight, None, usize::MAX, &mut Vec::new());
    assert!(all.completed);

    // interrupted after 3 iterations (as Ctrl-C would): a checkpoint is written first
    let mut saved = Vec::new();
    let head = run_with(&mut fresh(), None, 3, &mut saved);
    assert!(!head.completed);
    let ckpt = saved.last().unwrap().clone();
    assert_eq!(ckpt.iteration, 3);
    let dir =
        std::env::temp_dir().join(format!("metarec-ckpt-{}-{algorithm:?}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("meta.ckpt");
    ckpt.write(&path).unwrap();
    let ckpt = Checkpoint::from_bytes(&std::fs::read(&path).unwrap()).unwrap();

    let mut resumed = fresh();
    let rest = run_with(&mut resumed, Some(ckpt), usize::MAX, &mut Vec::new());
    assert!(rest.completed);
    assert_eq!(rest.history, all.history, "{algorithm:?}");
    assert_ne!(
        block_on(straight.params()).unwrap(),
        setup.model.init_params(),
        "{algorithm:?} changed nothing"
    );
    assert_eq!(
        block_on(resumed.params()).unwrap(),
        block_on(straight.params()).unwrap()
    );
    assert!(Checkpoint::from_bytes(br#"{"format":1}"#).is_err());
    std::fs::remove_dir_all(dir).unwrap();
}

/// A skipped (non-finite) outer step is part of the history a checkpoint carries: the
/// checkpoint still reads back, and the run resumed from it ends where an uninterrupted one does.
#[test]
fn a_checkpoint_after_a_skipped_step_reads_back_and_resumes_exactly() {
    let (setup, mut cfg) = small();
    cfg.algorithm = Algorithm::Reptile;
    cfg.adapt.adapts = Algorithm::Reptile.adapts();
    // iteration 1 moves the network infinitely far towards its adaptation: not finite, skipped
    let cfg_at = |it: usize| MetaConfig {
        reptile_step: if it == 1 {
            f32::INFINITY
        } else {
            cfg.reptile_step
        },
        ..cfg.clone()
    };
    let fresh = || {
        let mut e = CpuEngine::new(&setup.model).unwrap();
        e.set_items(&setup.items).unwrap();
        e
    };
    let step = |engine: &mut CpuEngine, it: usize| {
        let c = cfg_at(it);
        block_on(meta_step(engine, setup.tasks(&c, it), &c, it)).unwrap()
    };
    let mut straight = fresh();
    let all: Vec<MetaProgress> = (0..5).map(|it| step(&mut straight, it)).collect();
    assert_eq!(all[1].loss, None, "{:?}", all[1]);
    assert_eq!(all[1].skipped_total, 1, "{:?}", all[1]);
    assert!(all[0].loss.is_some() && all[2].loss.is_some(), "{all:?}");

    let mut head = fresh();
    let history: Vec<MetaProgress> = (0..3).map(|it| step(&mut head, it)).collect();
    let bytes = block_on(Checkpoint::capture(&mut head, 3, &history))
        .unwrap()
        .to_bytes()
        .unwrap();
    let ckpt = Checkpoint::from_bytes(&bytes).unwrap();
    assert_eq!(ckpt.history, history);

    let mut resumed = fresh();
    ckpt.restore_into(&mut resumed).unwrap();
    let mut rest = ckpt.history;
    rest.extend((3..5).map(|it| step(&mut resumed, it)));
    assert_eq!(rest, all);
    assert_eq!(
        block_on(resumed.params()).unwrap(),
        block_on(straight.params()).unwrap()
    );
}

#[test]
fn gpu_and_cpu_engines_follow_the_same_meta_training_curve() {
    let (setup, cfg) = small();
    let ctx = common::gpu_context();
    let mut gpu = block_on(GpuEngine::new(&ctx, &setup.model)).unwrap();
    let mut cpu = CpuEngine::new(&setup.model).unwrap();
    gpu.set_items(&setup.items).unwrap();
    cpu.set_items(&setup.items).unwrap();
    let g = iterate(&mut gpu, &setup, &cfg, 0..4);
    let c = iterate(&mut cpu, &setup, &cfg, 0..4);
    for (a, b) in g.iter().zip(&c) {
        assert_eq!(
            a.mean_reward, b.mean_reward,
            "iteration {}: same slates, same clicks",
            a.iteration
        );
        let (Some(ga), Some(ca)) = (a.loss, b.loss) else {
            panic!("a step was skipped: {a:?} vs {b:?}");
        };
        assert!(
            (ga - ca).abs() <= 1e-4 * ca.abs().max(1.0),
            "{a:?} vs {b:?}"
        );
    }
}
