//! TRPO as CAVIA's outer update on a small synthetic world: no accepted step exceeds the KL
//! radius (on both engines), and the line search rejects a full step that overshoots and
//! accepts a shorter one.
#![cfg(not(target_arch = "wasm32"))]

use metarec::data::WorldConfig;
use metarec::engine::cpu::CpuEngine;
use metarec::engine::fisher::Fisher;
use metarec::engine::gpu::{GpuContext, GpuEngine};
use metarec::engine::{Batch, Engine, Loss, Mask};
use metarec::meta::{
    meta_step, run_episode, trpo_step, MetaConfig, Optimizer, PolicyShape, SyntheticSetup,
    TrpoConfig,
};
use metarec::session::{AdaptConfig, Adapts};
use pollster::block_on;

fn setup(max_kl: f32) -> (SyntheticSetup, MetaConfig) {
    let cfg = MetaConfig {
        users_per_iteration: 4,
        rounds: 8,
        optimizer: Optimizer::Trpo,
        trpo: TrpoConfig {
            max_kl,
            ..TrpoConfig::default()
        },
        seed: 5,
        ..MetaConfig::default()
    };
    let world = WorldConfig {
        n_items: 60,
        n_users: 40,
        seed: 9,
        ..WorldConfig::default()
    };
    let setup = SyntheticSetup::new(world, &PolicyShape::default(), &cfg).unwrap();
    (setup, cfg)
}

/// Meta-iterations of CAVIA with TRPO; every accepted step's measured KL within the radius.
fn kl_within_radius(
    engine: &mut impl Fisher,
    setup: &SyntheticSetup,
    cfg: &MetaConfig,
    its: usize,
) {
    engine.set_items(&setup.items).unwrap();
    let mut accepted = 0;
    for it in 0..its {
        let p = block_on(meta_step(engine, setup.tasks(cfg, it), cfg, it)).unwrap();
        let backtracks = p.backtracks.expect("TRPO reports its line search");
        println!("iteration {it}: kl {:?}, backtracks {backtracks}", p.kl);
        if let Some(kl) = p.kl {
            assert!(
                (0.0..=cfg.trpo.max_kl).contains(&kl),
                "iteration {it}: accepted KL {kl} outside [0, {}]",
                cfg.trpo.max_kl
            );
            accepted += 1;
        }
    }
    assert!(
        accepted > 0,
        "no TRPO step was accepted in {its} iterations"
    );
}

#[test]
fn trpo_steps_never_exceed_the_kl_radius_on_the_cpu_engine() {
    let (setup, cfg) = setup(0.01);
    let mut engine = CpuEngine::new(&setup.model).unwrap();
    kl_within_radius(&mut engine, &setup, &cfg, 12);
}

#[test]
fn trpo_steps_never_exceed_the_kl_radius_on_the_gpu_engine() {
    let (setup, cfg) = setup(0.01);
    let ctx = block_on(GpuContext::new()).expect("a wgpu adapter (Mesa lavapipe)");
    let mut engine = block_on(GpuEngine::new(&ctx, &setup.model)).unwrap();
    kl_within_radius(&mut engine, &setup, &cfg, 4);
}

/// One CAVIA batch of episodes from the synthetic world, at the engine's parameters.
fn batch(engine: &mut CpuEngine, setup: &SyntheticSetup, cfg: &MetaConfig) -> Batch {
    let adapt = AdaptConfig {
        adapts: Adapts::Context,
        ..cfg.adapt
    };
    let words_per_row = setup.model.items().div_ceil(32);
    let mut batch = Batch::default();
    let mut words = Vec::new();
    for (u, mut task) in setup.tasks(cfg, 0).into_iter().enumerate() {
        let ep = block_on(run_episode(engine, &mut task, adapt, cfg.slate, u as u32)).unwrap();
        let b = ep.batch_from(0, words_per_row);
        batch.inputs.extend(b.inputs);
        batch.rows.extend(b.rows);
        words.extend(b.mask.map(|m| m.words).unwrap_or_default());
    }
    batch.mask = Some(Mask {
        words,
        words_per_row,
    });
    batch
}

#[test]
fn the_line_search_rejects_an_overshooting_full_step_and_accepts_a_shorter_one() {
    let (setup, cfg) = setup(0.01);
    let mut engine = CpuEngine::new(&setup.model).unwrap();
    engine.set_items(&setup.items).unwrap();
    let batch = batch(&mut engine, &setup, &cfg);
    let loss = Loss::Reinforce {
        entropy: cfg.adapt.entropy,
        temperature: cfg.adapt.temperature,
    };
    let temperature = cfg.adapt.temperature;
    let theta = block_on(engine.params()).unwrap();
    let old = block_on(engine.log_probs(&batch.inputs, batch.mask.as_ref(), temperature)).unwrap();
    let step = block_on(trpo_step(&mut engine, &batch, loss, &cfg.trpo)).unwrap();
    println!("{step:?}");
    // the full step (KL = δ in the quadratic model) overshoots; its half is accepted
    assert!(step.accepted && step.backtracks == 1, "{step:?}");
    assert!(
        step.kl <= cfg.trpo.max_kl && step.improvement > 0.0,
        "{step:?}"
    );
    // the rejected full step, rebuilt from the accepted half: its measured KL exceeds δ
    let half = block_on(engine.params()).unwrap();
    let full: Vec<f32> = theta
        .iter()
        .zip(&half)
        .map(|(t, h)| t + 2.0 * (h - t))
        .collect();
    engine.set_params(&full).unwrap();
    let new = block_on(engine.log_probs(&batch.inputs, batch.mask.as_ref(), temperature)).unwrap();
    let items = setup.model.items();
    let kl: f64 = (0..batch.rows.len())
        .map(|r| {
            (0..items)
                .filter(|&j| old[r * items + j] != f32::MIN)
                .map(|j| {
                    let (o, n) = (old[r * items + j] as f64, new[r * items + j] as f64);
                    o.exp() * (o - n)
                })
                .sum::<f64>()
        })
        .sum::<f64>()
        / batch.rows.len() as f64;
    println!(
        "full step: measured KL {kl:.5} (radius {})",
        cfg.trpo.max_kl
    );
    assert!(kl > f64::from(cfg.trpo.max_kl), "full step KL {kl}");
}

#[cfg(feature = "cli")]
#[test]
fn cli_reports_the_optimizer_and_trpo_figures() {
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_metarec"))
            .args([
                "train",
                "--data",
                "synthetic:3",
                "--stages",
                "meta",
                "--json",
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[
        "--optimizer",
        "trpo",
        "--iterations",
        "1",
        "--engine",
        "gpu",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["optimizer"], "trpo");
    assert_eq!(v["kl_radius"], 0.01);
    let max_kl = v["max_kl"].as_f64().expect("an accepted step");
    let mean_kl = v["mean_kl"].as_f64().unwrap();
    assert!(0.0 <= mean_kl && mean_kl <= max_kl && max_kl <= 0.01, "{v}");
    assert!(v["line_search_backtracks"].as_u64().is_some(), "{v}");
    assert_eq!(v["meta_iterations"], 1);
    // TRPO is CAVIA's outer update, one step per iteration
    let out = run(&["--optimizer", "trpo", "--algorithm", "fomaml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CAVIA"));
    let out = run(&["--optimizer", "trpo", "--outer-steps", "3"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--outer-steps"));
    let out = run(&["--optimizer", "trpo", "--max-kl", "0"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("KL radius"));
}
