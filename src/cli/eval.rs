//! `metarec eval --data PATH|synthetic[:SEED]`: the cold-start interactive protocol over the
//! chosen methods and seeds (see `EVALUATION.md`); a markdown table, or JSON, and optionally
//! the reward-per-round curves as SVG.
use super::chart;
use crate::data::{self, Dataset};
use crate::eval::protocol::{evaluate, evaluated_users, Hyper, Method, Protocol, Users};
use crate::eval::report::Report;
use std::path::{Path, PathBuf};

/// Arguments of `metarec eval`.
#[derive(clap::Args)]
pub struct Args {
    /// A dataset (as for `metarec data`) or `synthetic[:SEED]` (the synthetic world's logged
    /// ratings).
    #[arg(long)]
    data: PathBuf,
    /// Which items an episode may show: `observed` (the user's rated items) or `catalog` (every
    /// item; unrated items are misses).
    #[arg(long, default_value = "observed", value_parser = ["observed", "catalog"])]
    protocol: String,
    /// Comma-separated methods (default: all): random, pop-likes, pop-bayes, item-knn,
    /// user-knn, user-posterior (Bayesian user-kNN), eps-greedy-mf, linucb, lin-ts, linucb-cov,
    /// lin-ts-cov (the bandits over item vectors whitened by the training users' prior
    /// covariance), sup-fixed, sup-finetune, meta-rl, meta-rl-fixed, meta-rl-trpo,
    /// meta-rl-reptile, meta-rl-fomaml, rl-scratch.
    #[arg(long, value_delimiter = ',')]
    methods: Vec<String>,
    /// Number of seeds (user splits and fits): 1..=N.
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// Rounds per episode T.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Items per round K.
    #[arg(long, default_value_t = 1)]
    slate: usize,
    /// Evaluate the validation users instead of the cold-start users (for choosing
    /// hyperparameters).
    #[arg(long)]
    validation: bool,
    /// Exploration rate of eps-greedy-mf.
    #[arg(long)]
    epsilon: Option<f64>,
    /// Ridge strength of the eps-greedy-mf user vector.
    #[arg(long)]
    mf_lambda: Option<f64>,
    /// LinUCB exploration bonus.
    #[arg(long)]
    alpha: Option<f64>,
    /// Posterior scale of lin-ts.
    #[arg(long)]
    ts_scale: Option<f64>,
    /// Prior strength of the linear bandits.
    #[arg(long)]
    bandit_lambda: Option<f64>,
    /// Neighbours that vote in user-knn.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    neighbours: Option<u32>,
    /// Share of each seed's training users the methods learn from, a seeded random subset
    /// (learning curves over the training population; the evaluated users stay the same).
    #[arg(long, default_value_t = 1.0)]
    train_fraction: f64,
    /// Noise of user-posterior's prototypes (0 < eps < 1).
    #[arg(long)]
    posterior_eps: Option<f64>,
    /// Tempering of user-posterior's likelihood (> 0; 1 is plain Bayes).
    #[arg(long)]
    posterior_beta: Option<f64>,
    /// Collaborative factors (SVD of the training like-matrix) in the item vectors of the
    /// linear bandits and the meta-RL policy; 0 for content features only.
    #[arg(long)]
    factors: Option<usize>,
    /// Gradient steps of sup-finetune's user refit after each round.
    #[arg(long)]
    user_fit_steps: Option<usize>,
    /// Step size of sup-finetune's user refit.
    #[arg(long)]
    user_fit_lr: Option<f32>,
    /// L2 pull of sup-finetune's user refit towards the mean training user.
    #[arg(long)]
    user_fit_l2: Option<f32>,
    /// Adam step size per reaction of the context adaptation (meta-rl), in meta-training's
    /// inner loop and per held-out user.
    #[arg(long)]
    context_lr: Option<f32>,
    /// Adam step size per reaction of the whole-network adaptation (meta-rl-reptile,
    /// meta-rl-fomaml, rl-scratch), in meta-training's inner loop and per held-out user.
    #[arg(long)]
    param_lr: Option<f32>,
    /// Hidden layer widths of the meta-RL policy network (comma-separated).
    #[arg(long, value_delimiter = ',')]
    hidden: Vec<usize>,
    /// Outer Adam step size of meta-training.
    #[arg(long)]
    outer_lr: Option<f32>,
    /// Training users per meta-iteration.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    users_per_iteration: Option<u32>,
    /// Outer steps per CAVIA meta-iteration with REINFORCE or PPO (more than 1 without
    /// `--optimizer`: PPO-clipped reuse of the batch).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    outer_steps: Option<u32>,
    /// The outer update of meta-rl's CAVIA: reinforce, ppo or trpo (meta-rl-trpo is always
    /// trpo).
    #[arg(long, value_parser = crate::meta::Optimizer::parse)]
    optimizer: Option<crate::meta::Optimizer>,
    /// TRPO's KL radius δ (meta-rl-trpo, or meta-rl with `--optimizer trpo`).
    #[arg(long)]
    max_kl: Option<f32>,
    /// Entropy bonus of the meta-RL policy's policy-gradient losses.
    #[arg(long)]
    entropy: Option<f32>,
    /// Softmax temperature of the meta-RL policies, in meta-training and per held-out user.
    #[arg(long)]
    temperature: Option<f32>,
    /// κ of the meta-RL policy's feedback summary: its sums are divided by (reactions + κ).
    #[arg(long)]
    summary_prior: Option<f32>,
    /// How the meta-RL policy's feedback summary normalises its sums: mean (divided by
    /// reactions + κ) or ridge (times (κI + Σ e eᵀ)⁻¹ over the item vectors reacted to).
    #[arg(long, value_parser = ["mean", "ridge"])]
    summary: Option<String>,
    /// Start meta-RL from the prior plus the feedback summary read as a linear bandit's
    /// evidence, weights LIKED,MISSED (needs hidden layers of 4 × item-vector width).
    #[arg(long, value_delimiter = ',')]
    feedback_start: Vec<f32>,
    /// Whiten the meta-RL policies' item vectors by the prior covariance of linucb-cov and
    /// lin-ts-cov: the covariance across training users of their own ridge weights over the
    /// vectors, so that an isotropic prior over the new coordinates is that fitted prior.
    #[arg(long)]
    prior_covariance: bool,
    /// Shrinkage of that prior covariance (scaled to a mean eigenvalue of 1) towards the
    /// identity, in (0, 1]; 1 is no whitening.
    #[arg(long)]
    covariance_shrinkage: Option<f64>,
    /// Meta-training iterations of meta-rl.
    #[arg(long)]
    meta_iterations: Option<usize>,
    /// Upper bound on the epochs of the supervised rating network (sup-fixed, sup-finetune,
    /// and the start of the meta-trained policies).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    finetune_epochs: Option<u32>,
    /// Width of the supervised rating network's user and item embeddings.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    finetune_embedding_dim: Option<u32>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Write the reward-per-round curves to this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// Loads `path` or generates the synthetic world's ratings for `synthetic[:SEED]`.
fn load(path: &Path) -> Result<Dataset, Box<dyn std::error::Error>> {
    let text = path.to_str().unwrap_or_default();
    if !path.exists() {
        if let Some(rest) = text.strip_prefix("synthetic") {
            let seed = match rest.strip_prefix(':') {
                None if rest.is_empty() => 0,
                Some(s) => s
                    .parse::<u64>()
                    .map_err(|_| format!("expected synthetic:SEED (an integer), found {text:?}"))?,
                None => return Err(format!("no such dataset: {text:?}").into()),
            };
            let world = data::World::generate(data::WorldConfig {
                seed,
                ..Default::default()
            })?;
            return Ok(world.dataset(seed)?);
        }
    }
    Ok(data::load(path)?)
}

/// The protocol and methods `args` ask for.
fn setup(args: &Args) -> Result<(Protocol, Vec<Method>), Box<dyn std::error::Error>> {
    if args.seeds == 0 || args.rounds == 0 || args.slate == 0 {
        return Err("--seeds, --rounds and --slate must be at least 1".into());
    }
    let methods = if args.methods.is_empty() {
        Method::ALL.to_vec()
    } else {
        args.methods
            .iter()
            .map(|m| Method::parse(m.trim()))
            .collect::<Result<_, _>>()?
    };
    let environment = if args.protocol == "catalog" {
        data::Environment::Catalog
    } else {
        data::Environment::Observed
    };
    let mut p = Protocol {
        environment,
        hyper: Hyper::for_environment(environment),
        train_fraction: args.train_fraction,
        rounds: args.rounds,
        slate: args.slate,
        seeds: (1..=args.seeds).collect(),
        users: if args.validation {
            Users::Validation
        } else {
            Users::ColdStart
        },
    };
    let h = &mut p.hyper;
    h.epsilon = args.epsilon.unwrap_or(h.epsilon);
    h.mf_lambda = args.mf_lambda.unwrap_or(h.mf_lambda);
    h.alpha = args.alpha.unwrap_or(h.alpha);
    h.ts_scale = args.ts_scale.unwrap_or(h.ts_scale);
    h.bandit_lambda = args.bandit_lambda.unwrap_or(h.bandit_lambda);
    h.neighbours = args.neighbours.map_or(h.neighbours, |n| n as usize);
    h.posterior_eps = args.posterior_eps.unwrap_or(h.posterior_eps);
    h.posterior_beta = args.posterior_beta.unwrap_or(h.posterior_beta);
    h.factors = args.factors.unwrap_or(h.factors);
    h.user_fit.steps = args.user_fit_steps.unwrap_or(h.user_fit.steps);
    h.user_fit.lr = args.user_fit_lr.unwrap_or(h.user_fit.lr);
    h.user_fit.l2 = args.user_fit_l2.unwrap_or(h.user_fit.l2);
    h.meta.adapt.param_lr = args.param_lr.unwrap_or(h.meta.adapt.param_lr);
    h.meta.adapt.lr = args.context_lr.unwrap_or(h.meta.adapt.lr);
    if !args.hidden.is_empty() {
        h.shape.hidden.clone_from(&args.hidden);
    }
    h.meta.outer.lr = args.outer_lr.unwrap_or(h.meta.outer.lr);
    h.meta.users_per_iteration = args
        .users_per_iteration
        .map_or(h.meta.users_per_iteration, |n| n as usize);
    let trpo = crate::meta::TrpoConfig {
        max_kl: args.max_kl.unwrap_or(h.meta.trpo.max_kl),
        ..h.meta.trpo
    };
    super::train_meta::set_optimizer(&mut h.meta, args.optimizer, args.outer_steps, trpo)?;
    h.meta.adapt.entropy = args.entropy.unwrap_or(h.meta.adapt.entropy);
    h.meta.adapt.temperature = args.temperature.unwrap_or(h.meta.adapt.temperature);
    if !(h.meta.adapt.temperature.is_finite() && h.meta.adapt.temperature > 0.0) {
        return Err("--temperature must be a positive number".into());
    }
    h.meta.adapt.summary_prior = args.summary_prior.unwrap_or(h.meta.adapt.summary_prior);
    if !(h.meta.adapt.summary_prior.is_finite() && h.meta.adapt.summary_prior > 0.0) {
        return Err("--summary-prior must be a positive number".into());
    }
    match args.summary.as_deref() {
        Some("ridge") => h.meta.adapt.summary = crate::session::Summary::Ridge,
        Some(_) => h.meta.adapt.summary = crate::session::Summary::Mean,
        None => {}
    }
    h.feedback_start = match args.feedback_start[..] {
        [] => None,
        [liked, missed] => Some((liked, missed)),
        _ => return Err("--feedback-start takes two numbers: LIKED,MISSED".into()),
    };
    h.policy_covariance = args.prior_covariance;
    h.covariance_shrinkage = args.covariance_shrinkage.unwrap_or(h.covariance_shrinkage);
    if !(h.covariance_shrinkage > 0.0 && h.covariance_shrinkage <= 1.0) {
        return Err("--covariance-shrinkage must be in (0, 1]".into());
    }
    h.meta.iterations = args.meta_iterations.unwrap_or(h.meta.iterations);
    if let Some(epochs) = args.finetune_epochs {
        h.supervised.max_epochs = epochs as usize;
    }
    if let Some(dim) = args.finetune_embedding_dim {
        h.supervised.embedding_dim = dim as usize;
    }
    Ok((p, methods))
}

/// Runs `metarec eval`.
pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let ds = load(&args.data)?;
    let (protocol, methods) = setup(&args)?;
    let users: usize = evaluated_users(&ds, &protocol)?.iter().sum();
    let bar = indicatif::ProgressBar::new((users * methods.len()) as u64);
    bar.set_style(indicatif::ProgressStyle::with_template(
        "{bar:40} {pos}/{len} episodes (users x seeds x methods) {elapsed}",
    )?);
    let runs = evaluate(&ds, &protocol, &methods, &|| bar.inc(1))?;
    bar.finish_and_clear();
    let report = Report::new(&ds.name, ds.n_items(), &protocol, &runs);
    if let Some(path) = &args.plot {
        plot(&report, path)?;
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        println!(
            "{} — {} protocol, {:?} users, T = {}, K = {}, seeds {:?}, {} episodes per method (mean ± 95% CI)\n",
            report.dataset,
            report.protocol,
            protocol.users,
            report.rounds,
            report.slate,
            report.seeds,
            report.episodes
        );
        print!("{}", report.markdown());
    }
    Ok(())
}

/// Draws each method's reward-per-round curve.
fn plot(report: &Report, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let series: Vec<(String, Vec<(f64, f64)>)> = report
        .order
        .iter()
        .filter_map(|name| Some((name.clone(), report.methods.get(name)?)))
        .map(|(name, m)| {
            let points = m
                .curve
                .iter()
                .enumerate()
                .filter(|(_, s)| s.mean.is_finite())
                .map(|(t, s)| ((t + 1) as f64, s.mean))
                .collect();
            (name, points)
        })
        .collect();
    let caption = format!(
        "{}: reward per shown item by round (K = {})",
        report.dataset, report.slate
    );
    let lines = chart::Lines {
        caption: &caption,
        x_desc: "round",
        y_desc: "mean reward per item",
        x: 1f64..report.rounds.max(2) as f64,
        y: 0f64..(chart::y_max(&series) * 1.1).max(0.1),
        series,
    };
    chart::draw(&root, &lines)?;
    root.present()?;
    Ok(())
}
