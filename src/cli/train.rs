//! `metarec train --data PATH --stages finetune,meta [--seed N] [--engine auto|gpu|cpu] [--json]
//! [--out BUNDLE]`: the supervised rating network (test RMSE / MAE on the 80/20 split) and
//! meta-RL across users (`super::train_meta`).
use crate::data::{self, Bundle};
use crate::engine::{AnyEngine, Engine, Preference};
use crate::finetune::{finetune, FinetuneConfig, Progress};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::PathBuf;

/// Arguments of `metarec train`.
#[derive(clap::Args, Clone)]
pub struct Args {
    /// A dataset directory or ratings file (as `metarec data` reads), or `synthetic[:SEED]`.
    #[arg(long)]
    data: PathBuf,
    /// Comma-separated stages to run, in order: `finetune` (supervised rating network),
    /// `meta` (meta-RL policy across users).
    #[arg(long, default_value = "finetune", value_delimiter = ',')]
    stages: Vec<String>,
    /// Seed of the splits, initialisation and batch order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Engine: auto (the GPU when there is an adapter, else the CPU), gpu or cpu.
    #[arg(long, default_value = "auto", value_parser = parse_engine)]
    engine: Preference,
    /// Print one JSON object on stdout (progress still goes to stderr).
    #[arg(long)]
    json: bool,
    /// Write the trained model to this bundle file (catalog, features, safetensors weights,
    /// configuration).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Upper bound on epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Early-stopping patience in epochs.
    #[arg(long)]
    patience: Option<usize>,
    /// Width of the user and item embeddings.
    #[arg(long)]
    embedding_dim: Option<usize>,
    /// Hidden layer widths, comma-separated.
    #[arg(long, value_delimiter = ',')]
    hidden: Option<Vec<usize>>,
    /// Ratings per step.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Adam step size of the MLP.
    #[arg(long)]
    lr: Option<f32>,
    /// Decoupled weight decay of the MLP.
    #[arg(long)]
    weight_decay: Option<f32>,
    /// Adam step size of the embeddings and biases.
    #[arg(long)]
    embedding_lr: Option<f32>,
    /// L2 penalty on the embeddings and biases.
    #[arg(long)]
    embedding_l2: Option<f32>,
    /// Leave the element-wise product of the embeddings out of the input.
    #[arg(long)]
    no_product: bool,
    /// Leave the item features out of the input.
    #[arg(long)]
    no_features: bool,
    /// Meta-iterations of the meta stage.
    #[arg(long, default_value_t = 150)]
    iterations: usize,
    /// Meta stage: the outer loop. `cavia` adapts a per-person context (what the browser
    /// runs); `reptile` and `fomaml` (first-order MAML) adapt the whole network per person.
    #[arg(long, default_value = "cavia", value_parser = parse_algorithm)]
    algorithm: crate::meta::Algorithm,
    /// Meta stage: users (tasks) per meta-iteration.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    users_per_iteration: u64,
    /// Meta stage, Reptile and first-order MAML: Adam step size of a person's own network per
    /// reaction, in the inner loop and on the device (default: the session's, 0.001).
    #[arg(long)]
    param_lr: Option<f32>,
    /// Meta stage, CAVIA: the outer update, `reinforce`, `ppo` (clipped surrogate) or `trpo`
    /// (natural-gradient step within `--max-kl`). Default: `ppo` when `--outer-steps` is above
    /// 1, else `reinforce`.
    #[arg(long, value_parser = crate::meta::Optimizer::parse)]
    optimizer: Option<crate::meta::Optimizer>,
    /// Meta stage, CAVIA with REINFORCE or PPO: Adam steps per meta-iteration on its episodes
    /// (default 1; 4 with `--optimizer ppo`).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    outer_steps: Option<u32>,
    /// Meta stage, TRPO: the KL radius δ of each outer step.
    #[arg(long, default_value_t = 0.01)]
    max_kl: f32,
    /// Meta stage, TRPO: conjugate-gradient iterations.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    cg_iterations: u32,
    /// Meta stage, TRPO: damping λ of the Fisher matrix in CG.
    #[arg(long, default_value_t = 0.1)]
    cg_damping: f32,
    /// Meta stage: write a checkpoint to this file every `--checkpoint-every` iterations, at
    /// the end and on Ctrl-C.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Meta stage: iterations between checkpoints.
    #[arg(long, default_value_t = 10)]
    checkpoint_every: usize,
    /// Meta stage: continue from `--checkpoint` (same data, seed and settings give the same
    /// result as an uninterrupted run).
    #[arg(long)]
    resume: bool,
}

fn parse_algorithm(s: &str) -> Result<crate::meta::Algorithm, String> {
    use crate::meta::Algorithm;
    match s {
        "cavia" => Ok(Algorithm::Cavia),
        "reptile" => Ok(Algorithm::Reptile),
        "fomaml" => Ok(Algorithm::Fomaml),
        _ => Err(format!("expected cavia, reptile or fomaml, found {s:?}")),
    }
}

fn parse_engine(s: &str) -> Result<Preference, String> {
    match s {
        "auto" => Ok(Preference::Auto),
        "gpu" => Ok(Preference::Gpu),
        "cpu" => Ok(Preference::Cpu),
        _ => Err(format!("expected auto, gpu or cpu, found {s:?}")),
    }
}

#[derive(Serialize)]
struct Output<'a> {
    stages: &'a [String],
    dataset: String,
    seed: u64,
    engine: String,
    adapter: String,
    /// Why the CPU engine was used under `--engine auto`, when it was.
    fallback: Option<String>,
    test_rmse: f64,
    test_mae: f64,
    validation_rmse: f64,
    baseline_test_rmse: f64,
    best_epoch: usize,
    epochs: usize,
    meta_iterations: usize,
    skipped_steps: usize,
    seconds: f64,
    report: &'a crate::finetune::FinetuneReport,
}

/// The `--json` object of a run with the meta stage (test figures are those of the fine-tune
/// stage when it ran too).
#[derive(Serialize)]
struct MetaRun<'a> {
    stages: &'a [String],
    seed: u64,
    engine: String,
    test_rmse: Option<f64>,
    test_mae: Option<f64>,
    meta_iterations: usize,
    seconds: f64,
    #[serde(flatten)]
    optimizer: super::train_meta::OptimizerSummary,
    meta: super::train_meta::MetaOutput,
}

/// Runs `metarec train`.
pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    for stage in &args.stages {
        if !["finetune", "meta"].contains(&stage.as_str()) {
            return Err(format!("unknown stage {stage:?}; expected finetune or meta").into());
        }
    }
    if args.stages.iter().any(|s| s == "meta") {
        return run_with_meta(&args);
    }
    run_finetune_figures(&args).map(|_| ())
}

/// The fine-tune stage: trains, prints its report (JSON or a line), writes `--out`; returns the
/// test RMSE and MAE.
fn run_finetune_figures(args: &Args) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let dataset = match super::data::synthetic_seed(&args.data)? {
        Some(seed) => data::World::generate(data::WorldConfig {
            seed,
            ..Default::default()
        })?
        .dataset(seed)?,
        None => data::load(&args.data)?,
    };
    let defaults = FinetuneConfig::default();
    let config = FinetuneConfig {
        seed: args.seed,
        max_epochs: args.epochs.unwrap_or(defaults.max_epochs),
        patience: args.patience.unwrap_or(defaults.patience),
        embedding_dim: args.embedding_dim.unwrap_or(defaults.embedding_dim),
        hidden: args.hidden.clone().unwrap_or(defaults.hidden.clone()),
        batch_size: args.batch_size.unwrap_or(defaults.batch_size),
        lr: args.lr.unwrap_or(defaults.lr),
        weight_decay: args.weight_decay.unwrap_or(defaults.weight_decay),
        embedding_lr: args.embedding_lr.unwrap_or(defaults.embedding_lr),
        embedding_l2: args.embedding_l2.unwrap_or(defaults.embedding_l2),
        product: !args.no_product,
        features: !args.no_features,
        ..defaults
    };
    let model = config.model(&dataset);
    let (mut engine, fallback) = pollster::block_on(AnyEngine::new(&model, args.engine))?;
    let info = engine.info();
    if let Some(reason) = &fallback {
        eprintln!("no usable GPU ({reason}); training on the CPU engine");
    }
    eprintln!(
        "finetune: {} ({} users, {} items, {} ratings) on {} ({}), seed {}",
        dataset.name,
        dataset.n_users(),
        dataset.n_items(),
        dataset.ratings.len(),
        info.engine,
        info.adapter,
        args.seed
    );
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} steps, {elapsed_precise}, ETA {eta}",
        )?
        .progress_chars("=> "),
    );
    let mut max_epochs = 0;
    let trained = pollster::block_on(finetune(&mut engine, &dataset, &config, |p| match p {
        Progress::Start { epochs, batches } => {
            max_epochs = epochs;
            bar.set_length(batches as u64);
            bar.set_prefix(format!("epoch 1/{epochs}"));
        }
        Progress::Step { batch, .. } => bar.set_position(batch as u64),
        Progress::Epoch(s) => {
            let line = format!(
                "epoch {:>3}  train loss {:.4}  validation RMSE {:.4}  {:.1} s{}",
                s.epoch,
                s.train_loss,
                s.validation_rmse,
                s.seconds,
                if s.skipped_steps > 0 {
                    format!("  ({} steps skipped: non-finite loss)", s.skipped_steps)
                } else {
                    String::new()
                }
            );
            // a hidden bar (stderr not a terminal) prints nothing, so print the line directly
            if bar.is_hidden() {
                eprintln!("{line}");
            } else {
                bar.println(line);
            }
            bar.reset();
            bar.set_prefix(format!("epoch {}/{max_epochs}", s.epoch + 1));
        }
    }));
    bar.finish_and_clear();
    let trained = trained?;
    let report = &trained.report;
    if let Some(path) = &args.out {
        let mut bundle = Bundle::from_catalog(&dataset.catalog, &[]);
        bundle.features = Some(trained.features.clone());
        bundle.set_weights(&trained.tensors())?;
        bundle.config = Some(serde_json::to_string(&serde_json::json!({
            "stage": "finetune",
            "model": report.model,
            "finetune": report.config,
        }))?);
        bundle.write(path)?;
        eprintln!("wrote {}", path.display());
    }
    let out = Output {
        stages: &args.stages,
        dataset: dataset.name.clone(),
        seed: args.seed,
        engine: info.engine.clone(),
        adapter: info.adapter.clone(),
        fallback,
        test_rmse: report.test_rmse,
        test_mae: report.test_mae,
        validation_rmse: report.validation_rmse,
        baseline_test_rmse: report.baseline_test_rmse,
        best_epoch: report.best_epoch,
        epochs: report.history.len(),
        meta_iterations: 0,
        skipped_steps: report.skipped_steps,
        seconds: report.seconds,
        report,
    };
    super::print_output(args.json, &out, || {
        format!(
            "test RMSE {:.4}  MAE {:.4}  (training-mean baseline RMSE {:.4}); best epoch {} of {}, validation RMSE {:.4}; {} engine, {:.1} s\n",
            report.test_rmse,
            report.test_mae,
            report.baseline_test_rmse,
            report.best_epoch,
            report.history.len(),
            report.validation_rmse,
            info.engine,
            report.seconds
        )
    })?;
    Ok((report.test_rmse, report.test_mae))
}

/// `--stages meta` (optionally after `finetune`, whose test figures are reported alongside).
fn run_with_meta(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let t0 = std::time::Instant::now();
    if args.stages.iter().any(|s| s == "finetune") && args.out.is_some() {
        return Err("--out with both stages: run `--stages finetune` and `--stages meta` separately (they train different networks)".into());
    }
    let (test_rmse, test_mae) = if args.stages.iter().any(|s| s == "finetune") {
        let ft = Args {
            stages: vec!["finetune".into()],
            json: false,
            out: None,
            ..args.clone()
        };
        let figures = run_finetune_figures(&ft)?;
        (Some(figures.0), Some(figures.1))
    } else {
        (None, None)
    };
    let mut cfg = crate::meta::MetaConfig {
        algorithm: args.algorithm,
        iterations: args.iterations,
        users_per_iteration: args.users_per_iteration as usize,
        seed: args.seed as u32,
        ..Default::default()
    };
    super::train_meta::set_optimizer(
        &mut cfg,
        args.optimizer,
        args.outer_steps,
        crate::meta::TrpoConfig {
            max_kl: args.max_kl,
            cg: crate::engine::fisher::Cg {
                iterations: args.cg_iterations,
                damping: args.cg_damping,
            },
            ..Default::default()
        },
    )?;
    cfg.adapt.adapts = args.algorithm.adapts();
    if let Some(lr) = args.param_lr {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(format!("--param-lr must be a positive number, got {lr}").into());
        }
        cfg.adapt.param_lr = lr;
    }
    let meta = super::train_meta::run(
        super::train_meta::MetaArgs {
            data: &args.data,
            seed: args.seed,
            engine: args.engine,
            checkpoint: args.checkpoint.clone(),
            every: args.checkpoint_every,
            resume: args.resume,
            out: args.out.as_deref(),
        },
        &cfg,
    )?;
    let out = MetaRun {
        stages: &args.stages,
        seed: args.seed,
        engine: meta.engine.clone(),
        test_rmse,
        test_mae,
        meta_iterations: meta.meta_iterations,
        seconds: t0.elapsed().as_secs_f64(),
        optimizer: super::train_meta::OptimizerSummary::new(&cfg, &meta.history),
        meta,
    };
    super::print_output(args.json, &out, || {
        format!(
            "meta: {} iterations{}, mean reward per round over the last 10: {:.3}; {} engine, {:.1} s\n",
            out.meta_iterations,
            if out.meta.completed { "" } else { " (interrupted)" },
            out.meta.final_mean_reward,
            out.engine,
            out.seconds
        )
    })?;
    Ok(())
}
