//! Supervised fine-tuning (stage 1) on the synthetic world: it learns (test RMSE well below the
//! training-mean baseline), the same seed gives the same run, the GPU engine follows the CPU
//! engine, and bad inputs are refused clearly. The MovieLens 100K figure is a benchmark, not a
//! test: `metarec train --data ../shared/data/ml-100k --stages finetune --json` (README).
#![cfg(not(target_arch = "wasm32"))]

use metarec::data::{self, Dataset, World, WorldConfig};
use metarec::engine::cpu::CpuEngine;
use metarec::engine::gpu::GpuEngine;
use metarec::finetune::{finetune, FinetuneConfig, FinetuneError, Finetuned};
use pollster::block_on;
use std::path::Path;

mod common;

fn world(users: usize, items: usize) -> Dataset {
    World::generate(WorldConfig {
        n_items: items,
        n_users: users,
        style_dim: 4,
        seed: 5,
    })
    .unwrap()
    .dataset(5)
    .unwrap()
}

fn small_config(seed: u64) -> FinetuneConfig {
    FinetuneConfig {
        seed,
        embedding_dim: 8,
        hidden: vec![32],
        batch_size: 128,
        max_epochs: 20,
        patience: 2,
        embedding_l2: 1.0,
        embedding_lr: 0.01,
        ..FinetuneConfig::default()
    }
}

fn run_cpu(dataset: &Dataset, config: &FinetuneConfig) -> Finetuned {
    let mut engine = CpuEngine::new(&config.model(dataset)).unwrap();
    block_on(finetune(&mut engine, dataset, config, |_| {})).unwrap()
}

#[test]
fn learns_well_below_the_mean_baseline() {
    let dataset = world(200, 200);
    let config = small_config(3);
    let a = run_cpu(&dataset, &config);
    let r = &a.report;
    eprintln!(
        "synthetic: {} ratings, test RMSE {:.4} MAE {:.4}, baseline {:.4}, best epoch {} of {}",
        dataset.ratings.len(),
        r.test_rmse,
        r.test_mae,
        r.baseline_test_rmse,
        r.best_epoch,
        r.history.len()
    );
    // stars are rounded from a noisy utility (noise ≈ 0.45 stars, rounding ≈ 0.29), so no model
    // gets far below ≈ 0.6 × the baseline here; 0.78 / 0.90 was measured
    assert!(
        r.test_rmse < 0.9 * r.baseline_test_rmse,
        "test RMSE {} is not well below the mean baseline {}",
        r.test_rmse,
        r.baseline_test_rmse
    );
    assert!(r.test_mae < r.test_rmse + 1e-9);
    assert_eq!(r.skipped_steps, 0);
    assert!(r.best_epoch >= 1 && r.best_epoch <= r.history.len());
    assert_eq!(
        r.ratings.train + r.ratings.validation + r.ratings.test,
        dataset.ratings.len()
    );
    // the validation RMSE kept is the best epoch's
    let best = r
        .history
        .iter()
        .map(|e| e.validation_rmse)
        .fold(f64::INFINITY, f64::min);
    assert_eq!(best, r.validation_rmse);
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let dataset = world(60, 80);
    let config = FinetuneConfig {
        max_epochs: 3,
        ..small_config(3)
    };
    let a = run_cpu(&dataset, &config);
    let b = run_cpu(&dataset, &config);
    assert_eq!(a.params, b.params);
    assert_eq!(a.user_embeddings, b.user_embeddings);
    assert_eq!(a.item_embeddings, b.item_embeddings);
    assert_eq!(a.user_bias, b.user_bias);
    assert_eq!(a.report.test_rmse, b.report.test_rmse);
    let losses = |f: &Finetuned| -> Vec<(f64, f64)> {
        f.report
            .history
            .iter()
            .map(|e| (e.train_loss, e.validation_rmse))
            .collect()
    };
    assert_eq!(losses(&a), losses(&b));
    // another seed: another split and initialisation
    let c = run_cpu(&dataset, &FinetuneConfig { seed: 4, ..config });
    assert_ne!(a.report.test_rmse, c.report.test_rmse);
}

#[test]
fn gpu_engine_follows_the_cpu_engine() {
    let dataset = world(40, 60);
    let config = FinetuneConfig {
        max_epochs: 2,
        patience: 5,
        ..small_config(2)
    };
    let ctx = common::gpu_context();
    let mut gpu = block_on(GpuEngine::new(&ctx, &config.model(&dataset))).unwrap();
    let g = block_on(finetune(&mut gpu, &dataset, &config, |_| {})).unwrap();
    let c = run_cpu(&dataset, &config);
    assert_eq!(g.report.engine.engine, "gpu");
    assert_eq!(g.report.history.len(), c.report.history.len());
    for (eg, ec) in g.report.history.iter().zip(&c.report.history) {
        assert!(
            (eg.validation_rmse - ec.validation_rmse).abs() < 1e-3,
            "epoch {}: GPU validation RMSE {} vs CPU {}",
            eg.epoch,
            eg.validation_rmse,
            ec.validation_rmse
        );
    }
    assert!((g.report.test_rmse - c.report.test_rmse).abs() < 1e-3);
}

#[test]
fn a_dataset_too_small_to_split_is_refused_clearly() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data/generic/tab_no_header.tsv");
    let dataset = data::load(&path).unwrap();
    let config = small_config(1);
    let mut engine = CpuEngine::new(&config.model(&dataset)).unwrap();
    let err = block_on(finetune(&mut engine, &dataset, &config, |_| {})).unwrap_err();
    assert!(matches!(err, FinetuneError::TooSmall(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("too small to split"), "{msg}");
    assert!(msg.contains("validation"), "{msg}");
}

#[test]
fn an_engine_for_another_model_and_a_bad_config_are_refused() {
    let dataset = world(20, 30);
    let config = small_config(1);
    let other = FinetuneConfig {
        embedding_dim: 4,
        ..config.clone()
    };
    let mut engine = CpuEngine::new(&other.model(&dataset)).unwrap();
    let err = block_on(finetune(&mut engine, &dataset, &config, |_| {})).unwrap_err();
    assert!(matches!(err, FinetuneError::Config(_)), "{err}");
    let bad = FinetuneConfig {
        test_fraction: 1.5,
        ..config.clone()
    };
    let mut engine = CpuEngine::new(&bad.model(&dataset)).unwrap();
    let err = block_on(finetune(&mut engine, &dataset, &bad, |_| {})).unwrap_err();
    assert!(err.to_string().contains("fractions"), "{err}");
}

#[test]
fn non_finite_training_is_caught_not_reported() {
    // a step size this large overflows the MLP within a few steps: steps with a non-finite loss
    // are skipped and counted, and a run that keeps diverging stops with a clear error; either
    // way no NaN figure comes out
    let dataset = world(30, 40);
    let config = FinetuneConfig {
        lr: 1e30,
        max_epochs: 2,
        ..small_config(1)
    };
    let mut engine = CpuEngine::new(&config.model(&dataset)).unwrap();
    match block_on(finetune(&mut engine, &dataset, &config, |_| {})) {
        Ok(f) => {
            eprintln!("{} steps skipped", f.report.skipped_steps);
            assert!(f.report.skipped_steps > 0, "no step was skipped");
            assert!(f.report.test_rmse.is_finite() && f.report.test_mae.is_finite());
        }
        Err(e) => {
            assert!(matches!(e, FinetuneError::Diverged(_)), "{e}");
            assert!(e.to_string().contains("diverged"), "{e}");
        }
    }
}

#[cfg(feature = "cli")]
fn metarec(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_metarec"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run metarec")
}

#[cfg(feature = "cli")]
#[test]
fn cli_prints_one_json_object_and_writes_a_bundle() {
    let dir = std::env::temp_dir().join(format!("metarec-finetune-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bundle = dir.join("model.bundle");
    let out = metarec(&[
        "train",
        "--data",
        "synthetic:2",
        "--stages",
        "finetune",
        "--engine",
        "cpu",
        "--epochs",
        "1",
        "--embedding-dim",
        "4",
        "--hidden",
        "8",
        "--json",
        "--out",
        bundle.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("validation RMSE"),
        "per-epoch figures: {stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "test_rmse",
        "test_mae",
        "meta_iterations",
        "engine",
        "seconds",
    ] {
        assert!(v.get(key).is_some(), "key {key} missing in {v}");
    }
    assert_eq!(v["meta_iterations"], 0);
    assert_eq!(v["engine"], "cpu");
    assert!(v["test_rmse"].as_f64().is_some_and(f64::is_finite));
    let b = data::Bundle::read(&bundle).unwrap();
    let params = b.weight("params").unwrap().unwrap();
    let users = b.weight("user_embeddings").unwrap().unwrap();
    assert_eq!(users.shape, vec![1000, 4]);
    assert!(!params.values.is_empty());
    assert!(b.config.unwrap().contains("\"finetune\""));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(feature = "cli")]
#[test]
fn cli_meta_stage_checkpoints_resumes_and_writes_a_policy_bundle() {
    let dir = std::env::temp_dir().join(format!("metarec-meta-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ckpt, bundle) = (dir.join("meta.ckpt"), dir.join("policy.bundle"));
    let common = [
        "train",
        "--data",
        "synthetic:5",
        "--stages",
        "meta",
        "--engine",
        "cpu",
        "--json",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--checkpoint-every",
        "2",
    ];
    let out = metarec(&[&common[..], &["--iterations", "2"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["meta_iterations"], 2);
    assert_eq!(v["engine"], "cpu");
    assert!(v["test_rmse"].is_null() && v["seconds"].as_f64().is_some());
    let saved = metarec::meta::Checkpoint::from_bytes(&std::fs::read(&ckpt).unwrap()).unwrap();
    assert_eq!(saved.iteration, 2);
    let out = metarec(
        &[
            &common[..],
            &[
                "--iterations",
                "3",
                "--resume",
                "--out",
                bundle.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["meta_iterations"], 3, "2 resumed + 1 new");
    let policy =
        metarec::policy::Policy::from_bundle(&data::Bundle::read(&bundle).unwrap()).unwrap();
    assert_eq!(policy.model.items(), 2000);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(feature = "cli")]
#[test]
fn cli_refuses_unknown_stages() {
    let out = metarec(&["train", "--data", "synthetic", "--stages", "pretrain"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown stage"));
}
