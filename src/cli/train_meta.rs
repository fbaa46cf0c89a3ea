//! `metarec train --stages meta`: meta-RL across users (`--algorithm`: CAVIA, Reptile or
//! first-order MAML, all first order) on the synthetic world or on a dataset's training users
//! (observed-only episodes; the policy starts from the rating network fine-tuned on those
//! users' ratings), with checkpoints, Ctrl-C that checkpoints before it stops, `--resume`, and
//! the policy written to a bundle.

use crate::data::{self, Bundle};
use crate::engine::{AnyEngine, Engine, Preference};
use crate::finetune::FinetuneConfig;
use crate::meta::{
    self, Checkpoint, Hooks, MetaConfig, MetaProgress, Optimizer, PolicyShape, TrpoConfig,
};
use crate::policy::Policy;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Meta-stage settings from the command line.
pub(super) struct MetaArgs<'a> {
    pub data: &'a Path,
    pub seed: u64,
    pub engine: Preference,
    pub checkpoint: Option<PathBuf>,
    pub every: usize,
    pub resume: bool,
    pub out: Option<&'a Path>,
}

#[derive(Serialize)]
pub(super) struct MetaOutput {
    pub engine: String,
    pub adapter: String,
    pub meta_iterations: usize,
    pub completed: bool,
    /// Mean reward per round over the last 10 meta-iterations' training episodes.
    pub final_mean_reward: f32,
    pub skipped_steps: u32,
    pub seconds: f64,
    pub history: Vec<MetaProgress>,
    /// Seconds since the start of meta-training at the end of each iteration of `history`
    /// run in this process (the learning curve against wall-clock time).
    pub elapsed: Vec<f64>,
}

/// The outer optimiser of a run and, for TRPO, what its steps did.
#[derive(Serialize)]
pub(super) struct OptimizerSummary {
    pub optimizer: &'static str,
    /// TRPO: the KL radius δ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kl_radius: Option<f32>,
    /// TRPO: mean and largest measured mean KL(old ‖ new) over the accepted steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_kl: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_kl: Option<f32>,
    /// TRPO: steps the line search rejected, over the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_search_backtracks: Option<u32>,
    /// TRPO: meta-iterations whose step was accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_steps: Option<usize>,
}

impl OptimizerSummary {
    pub fn new(cfg: &MetaConfig, history: &[MetaProgress]) -> Self {
        let trpo = cfg.optimizer == Optimizer::Trpo;
        let kls: Vec<f32> = history.iter().filter_map(|p| p.kl).collect();
        OptimizerSummary {
            optimizer: cfg.optimizer.name(),
            kl_radius: trpo.then_some(cfg.trpo.max_kl),
            mean_kl: (trpo && !kls.is_empty()).then(|| kls.iter().sum::<f32>() / kls.len() as f32),
            max_kl: (trpo && !kls.is_empty()).then(|| kls.iter().fold(0f32, |m, &k| m.max(k))),
            line_search_backtracks: trpo.then(|| history.iter().filter_map(|p| p.backtracks).sum()),
            accepted_steps: trpo.then_some(kls.len()),
        }
    }
}

/// Sets the outer optimiser of `cfg` from the command line: `ppo` when unnamed and
/// `outer_steps` is above 1 (as before `--optimizer`), 4 PPO steps when unstated.
pub(super) fn set_optimizer(
    cfg: &mut MetaConfig,
    optimizer: Option<Optimizer>,
    outer_steps: Option<u32>,
    trpo: TrpoConfig,
) -> Result<(), String> {
    let optimizer = optimizer.unwrap_or(match outer_steps {
        Some(n) if n > 1 => Optimizer::Ppo,
        _ => Optimizer::Reinforce,
    });
    if optimizer != Optimizer::Reinforce && cfg.algorithm != crate::meta::Algorithm::Cavia {
        return Err(format!(
            "--optimizer {} is CAVIA's outer update; reptile and fomaml take REINFORCE steps",
            optimizer.name()
        ));
    }
    if optimizer == Optimizer::Trpo && outer_steps.is_some() {
        return Err(
            "--outer-steps applies to reinforce and ppo; TRPO takes one step per \
                    meta-iteration"
                .into(),
        );
    }
    trpo.validate()?;
    cfg.optimizer = optimizer;
    cfg.outer_steps = outer_steps.unwrap_or(if optimizer == Optimizer::Ppo { 4 } else { 1 });
    cfg.trpo = trpo;
    Ok(())
}

/// The tasks a run draws from: the synthetic world, or a dataset's training users.
enum Source {
    Synthetic(meta::SyntheticSetup),
    Observed {
        dataset: data::Dataset,
        /// The split, the item vectors, the policy's model and its start (the fine-tuned
        /// rating network's ranking for a new user).
        setup: meta::DatasetSetup,
    },
}

pub(super) fn run(a: MetaArgs, cfg: &MetaConfig) -> Result<MetaOutput, Box<dyn std::error::Error>> {
    let shape = PolicyShape::default();
    let source = match super::data::synthetic_seed(a.data)? {
        Some(seed) => Source::Synthetic(meta::SyntheticSetup::new(
            data::WorldConfig {
                seed,
                ..Default::default()
            },
            &shape,
            cfg,
        )?),
        None => {
            let dataset = data::load(a.data)?;
            let t = std::time::Instant::now();
            eprintln!(
                "meta: fine-tuning the rating network on the training users' ratings (the policy's start)"
            );
            let finetune = FinetuneConfig::default();
            let setup = meta::DatasetSetup::new(&dataset, a.seed, &finetune, &shape, cfg)?;
            eprintln!(
                "meta: fine-tuned on {} training users in {:.1} s",
                setup.split.train.len(),
                t.elapsed().as_secs_f64()
            );
            Source::Observed { dataset, setup }
        }
    };
    let (model, items, parts) = match &source {
        Source::Synthetic(s) => (&s.model, &s.items, s.parts),
        Source::Observed { setup, .. } => {
            (&setup.model, &setup.vectors.values, setup.vectors.parts())
        }
    };
    let (mut engine, fallback) = pollster::block_on(AnyEngine::new(model, a.engine))?;
    if let Some(reason) = &fallback {
        eprintln!("no usable GPU ({reason}); meta-training on the CPU engine");
    }
    engine.set_items(items)?;
    if let Source::Observed { setup, .. } = &source {
        engine.set_params(&setup.start)?;
    }
    let start = match (&a.checkpoint, a.resume) {
        (Some(path), true) => {
            let c = Checkpoint::from_bytes(
                &std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?,
            )?;
            eprintln!(
                "resuming from {} at iteration {}",
                path.display(),
                c.iteration
            );
            Some(c)
        }
        (None, true) => return Err("--resume needs --checkpoint FILE".into()),
        _ => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .map_err(|e| format!("could not install the Ctrl-C handler: {e}"))?;
    let info = engine.info();
    eprintln!(
        "meta: {} iterations × {} users × {} rounds on {} ({})",
        cfg.iterations, cfg.users_per_iteration, cfg.rounds, info.engine, info.adapter
    );
    let bar = ProgressBar::new(cfg.iterations as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "meta [{bar:30}] {pos}/{len} iterations, {elapsed_precise}, ETA {eta}  {msg}",
        )?
        .progress_chars("=> "),
    );
    let t0 = std::time::Instant::now();
    let elapsed = std::cell::RefCell::new(Vec::new());
    let hooks = Hooks {
        on_progress: |p: &MetaProgress| {
            elapsed.borrow_mut().push(t0.elapsed().as_secs_f64());
            let loss = p.loss.map_or("skipped".into(), |l| format!("{l:.3}"));
            bar.set_position(p.iteration as u64 + 1);
            bar.set_message(format!("reward {:.3} loss {loss}", p.mean_reward));
            if bar.is_hidden() && (p.iteration + 1) % 10 == 0 {
                eprintln!(
                    "iteration {:>4}  reward {:.3}  loss {loss}",
                    p.iteration + 1,
                    p.mean_reward,
                );
            }
        },
        should_stop: || stop.load(Ordering::SeqCst),
        save: |c: &Checkpoint| match &a.checkpoint {
            Some(path) => c
                .write(path)
                .map_err(|e| crate::engine::EngineError::Input(format!("{}: {e}", path.display()))),
            None => Ok(()),
        },
        every: a.every,
    };
    let result = match &source {
        Source::Synthetic(s) => pollster::block_on(meta::run(
            &mut engine,
            cfg,
            start,
            |it| s.tasks(cfg, it),
            hooks,
        ))?,
        Source::Observed { dataset, setup, .. } => pollster::block_on(meta::run(
            &mut engine,
            cfg,
            start,
            |it| setup.tasks(dataset, cfg, it),
            hooks,
        ))?,
    };
    bar.finish_and_clear();
    if !result.completed {
        eprintln!(
            "interrupted: checkpoint written{}",
            a.checkpoint
                .as_ref()
                .map(|p| format!(" to {} (continue with --resume)", p.display()))
                .unwrap_or_default()
        );
    }
    if let Some(path) = a.out {
        let policy =
            pollster::block_on(Policy::from_engine(&mut engine, items.clone(), cfg.adapt))?
                .with_parts(parts);
        let mut bundle = match &source {
            Source::Synthetic(s) => Bundle::from_catalog(&s.world.catalog, &s.ratings.ratings),
            Source::Observed { dataset, setup, .. } => {
                Bundle::from_catalog(&dataset.catalog, &setup.train_ratings)
            }
        };
        policy.store(&mut bundle)?;
        bundle.write(path)?;
        eprintln!("wrote {}", path.display());
    }
    let last = &result.history[result.history.len().saturating_sub(10)..];
    Ok(MetaOutput {
        engine: info.engine,
        adapter: info.adapter,
        meta_iterations: result.history.len(),
        completed: result.completed,
        final_mean_reward: last.iter().map(|p| p.mean_reward).sum::<f32>()
            / last.len().max(1) as f32,
        skipped_steps: result.history.last().map_or(0, |p| p.skipped_total),
        seconds: t0.elapsed().as_secs_f64(),
        history: result.history,
        elapsed: elapsed.into_inner(),
    })
}
