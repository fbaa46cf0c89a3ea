//! The cold-start interactive protocols.
//!
//! For each seed: users are split 70/10/20 (train / validation / cold start) by
//! [`split_users`]; every method is fitted on the training users only; each evaluated user
//! (cold start by default, validation for choosing hyperparameters) runs an episode of
//! `rounds` rounds in the protocol's [`Environment`] (observed: candidates are the user's
//! rated, not-yet-shown items; catalog: every item not yet shown, unrated = miss; reward =
//! rating ≥ 4); each round the method shows `slate` items and learns every reward before the
//! next round.
use super::baselines::{EpsilonGreedyMf, Features, ItemStats, LinTs, LinUcb, Popularity, Random};
pub use super::episode::{episode_seed, rank_query, run_episode, RANK_K, SUPPORT_FRACTION};
pub use super::hyper::Hyper;
use super::knn::{ItemKnn, UserKnn};
use super::meta_rl::{ready, MetaRl, Trained};
pub use super::method::Method;
use super::metrics::EpisodeLog;
use super::posterior::UserPosterior;
use super::supervised::Supervised;
use super::{EvalError, Recommender};
use crate::data::{
    split_users, Dataset, Environment, FitConfig, LatentFactorModel, RewardMode, SplitFractions,
};
use crate::finetune::{FinetuneConfig, SupervisedFit};
use crate::linalg::Whitening;
use crate::meta::{Algorithm, MetaConfig, ObservedSetup, Optimizer};
use crate::session::{AdaptConfig, Adapts};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Which users are evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Users {
    /// Held-out cold-start users (the report).
    ColdStart,
    /// Validation users (hyperparameter choice).
    Validation,
}

/// The protocol's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Protocol {
    /// Which items an episode may show.
    pub environment: Environment,
    /// Rounds per episode T.
    pub rounds: usize,
    /// Items per round K.
    pub slate: usize,
    /// One user split and one set of fits per seed.
    pub seeds: Vec<u64>,
    pub users: Users,
    /// Share of each seed's training users the methods learn from (a seeded random subset;
    /// 1: all of them), for learning curves over the size of the training population.
    pub train_fraction: f64,
    pub hyper: Hyper,
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol {
            environment: Environment::Observed,
            rounds: 20,
            slate: 1,
            seeds: (1..=5).collect(),
            users: Users::ColdStart,
            train_fraction: 1.0,
            hyper: Hyper::default(),
        }
    }
}

impl Protocol {
    /// The method to beat: `pop-bayes` when candidates are the user's rated items (it ranks
    /// well-rated items first), `pop-likes` on the whole catalog (where `pop-bayes` ranks
    /// obscure well-rated items nobody watches).
    pub fn bar(&self) -> Method {
        match self.environment {
            Environment::Observed => Method::PopularityBayes,
            Environment::Catalog => Method::PopularityLikes,
        }
    }
}

/// What the methods learn from the training users of one seed.
pub struct Prepared {
    pub train: Vec<u32>,
    pub evaluated: Vec<u32>,
    stats: ItemStats,
    /// The protocol's bar as a score per item, the neighbourhood methods' fallback.
    bar: Vec<f64>,
    features: Features,
    prior: Vec<f64>,
    /// The features and prior mean of `linucb-cov` and `lin-ts-cov`: whitened.
    whitened: Option<(Features, Vec<f64>)>,
    mf: Option<LatentFactorModel>,
    supervised: Option<SupervisedFit>,
    meta: Option<Trained>,
    reptile: Option<Trained>,
    trpo: Option<Trained>,
    fomaml: Option<Trained>,
    /// The policy at its initial weights (RL from scratch).
    scratch: Option<Trained>,
    seed: u64,
}

/// A seeded random `fraction` ∈ (0, 1] of `users` (at least one), sorted; all of them at 1.
fn subsample(mut users: Vec<u32>, fraction: f64, seed: u64) -> Result<Vec<u32>, EvalError> {
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(EvalError(format!(
            "the training fraction must be in (0, 1], got {fraction}"
        )));
    }
    if fraction < 1.0 {
        let keep = ((users.len() as f64 * fraction).round() as usize).max(1);
        users.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x7472_6169_6e00));
        users.truncate(keep);
        users.sort_unstable();
    }
    Ok(users)
}

/// Item-kNN keeps an items × items similarity matrix; larger catalogs are refused.
const MAX_KNN_ITEMS: usize = 20_000;

impl Prepared {
    /// Splits the users by `seed` and fits what `methods` need on the training users.
    pub fn new(
        ds: &Dataset,
        protocol: &Protocol,
        methods: &[Method],
        seed: u64,
    ) -> Result<Self, EvalError> {
        let fail = |e: crate::data::DataError| EvalError(e.to_string());
        let mut split = split_users(ds.n_users(), SplitFractions::default(), seed).map_err(fail)?;
        split.train = subsample(split.train, protocol.train_fraction, seed)?;
        if split.train.is_empty() {
            return Err(EvalError("too few users to split".into()));
        }
        let evaluated = match protocol.users {
            Users::ColdStart => split.cold_start,
            Users::Validation => split.validation,
        };
        let h = &protocol.hyper;
        let env = protocol.environment;
        let mut setup = ObservedSetup::new(ds, split.train, h.factors, seed);
        let train = &setup.train;
        let stats = ItemStats::new(ds, train);
        let vectors = &setup.vectors;
        let features = Features::with_bias(&vectors.values, vectors.dim);
        let needs = |m: &[Method]| methods.iter().any(|x| m.contains(x));
        let meta_rl = [
            Method::MetaRl,
            Method::MetaRlFixed,
            Method::MetaRlTrpo,
            Method::MetaRlReptile,
            Method::MetaRlFomaml,
        ];
        let cov_bandits = [Method::LinUcbCov, Method::LinTsCov];
        let prior = match (
            needs(&[Method::LinUcb, Method::LinTs]) || needs(&cov_bandits),
            env,
        ) {
            (false, _) => Vec::new(),
            (true, Environment::Observed) => features.fit_likes(ds, train, 1.0),
            (true, Environment::Catalog) => {
                features.fit_catalog_likes(&stats.likes, train.len(), 1.0)
            }
        };
        let whitening = if needs(&cov_bandits) || (h.policy_covariance && needs(&meta_rl)) {
            let weights = features.user_like_weights(ds, train, env, 1.0);
            let w = Whitening::fit(&weights, vectors.dim, h.covariance_shrinkage);
            Some(w.ok_or_else(|| {
                EvalError(format!(
                    "no prior covariance from {} training users: it needs at least two whose \
                     weights differ, and a covariance shrinkage in (0, 1] (got {})",
                    train.len(),
                    h.covariance_shrinkage
                ))
            })?)
        } else {
            None
        };
        // the whitened bandits: the same prior mean (θ' = L⁻¹θ on the vectors' weights, the
        // bias weight kept), so that only the prior's covariance differs
        let whitened = match &whitening {
            Some(w) if needs(&cov_bandits) => {
                let values = w.vectors(&vectors.values);
                let mut mean = w.weights(&prior[..vectors.dim]);
                mean.extend(&prior[vectors.dim..]);
                Some((Features::with_bias(&values, vectors.dim), mean))
            }
            _ => None,
        };
        if let (Some(w), true) = (&whitening, h.policy_covariance) {
            setup.vectors.whiten(w);
        }
        let mf = if needs(&[Method::EpsilonGreedyMf]) {
            // the fit reads only the ratings, the counts and the scale
            let mut train_ds = ds.clone();
            train_ds.ratings = setup.train_ratings.clone();
            let cfg = FitConfig {
                seed,
                ..FitConfig::default()
            };
            Some(LatentFactorModel::fit(&train_ds, cfg).map_err(fail)?)
        } else {
            None
        };
        if needs(&[Method::ItemKnn]) && ds.n_items() > MAX_KNN_ITEMS {
            return Err(EvalError(format!(
                "item-knn keeps an items x items matrix; {} items is more than {MAX_KNN_ITEMS}",
                ds.n_items()
            )));
        }
        let observed_meta = needs(&meta_rl) && env == Environment::Observed;
        let supervised = if needs(&[Method::SupFixed, Method::SupFinetune]) || observed_meta {
            let cfg = FinetuneConfig {
                seed,
                ..h.supervised.clone()
            };
            Some(ready(SupervisedFit::new(ds, train, &cfg))??)
        } else {
            None
        };
        // the meta-trained policies start from the bar's ranking for a new user: the fine-tuned
        // network's predicted rating (observed) or the training like count (catalog)
        let start_scores = match (env, &supervised) {
            (Environment::Observed, Some(fit)) if observed_meta => {
                Some(ready(fit.new_user_ratings())?.map_err(super::meta_rl::engine_error)?)
            }
            (Environment::Catalog, _) if needs(&meta_rl) => {
                Some(stats.likes.iter().map(|&l| (1.0 + l as f32).ln()).collect())
            }
            _ => None,
        };
        let with_prior = start_scores.map(|p| setup.clone().with_prior(&p));
        let with_prior = with_prior.as_ref().unwrap_or(&setup);
        let meta_trained = |wanted: &[Method], algorithm, optimizer| {
            if !needs(wanted) {
                return Ok(None);
            }
            let cfg = MetaConfig {
                seed: seed as u32,
                algorithm,
                optimizer,
                ..h.meta.clone()
            };
            Trained::meta_train(with_prior, &h.shape, &cfg, env, h.feedback_start).map(Some)
        };
        let (cavia, reinforce, meta_rl) = (Algorithm::Cavia, Optimizer::Reinforce, &meta_rl[..2]);
        let meta = meta_trained(meta_rl, cavia, h.meta.optimizer)?;
        let trpo = meta_trained(&[Method::MetaRlTrpo], cavia, Optimizer::Trpo)?;
        let reptile = meta_trained(&[Method::MetaRlReptile], Algorithm::Reptile, reinforce)?;
        let fomaml = meta_trained(&[Method::MetaRlFomaml], Algorithm::Fomaml, reinforce)?;
        // no prior and no meta-iterations: the network keeps its random initial weights
        let scratch = if needs(&[Method::RlScratch]) {
            let cfg = MetaConfig {
                seed: seed as u32,
                iterations: 0,
                ..h.meta.clone()
            };
            Some(Trained::meta_train(&setup, &h.shape, &cfg, env, None)?)
        } else {
            None
        };
        let bar = match env {
            Environment::Observed => stats.smoothed_mean(h.prior_strength),
            Environment::Catalog => stats.likes.iter().map(|&l| f64::from(l)).collect(),
        };
        Ok(Prepared {
            stats,
            bar,
            train: train.clone(),
            evaluated,
            features,
            prior,
            whitened,
            mf,
            supervised,
            meta,
            reptile,
            trpo,
            fomaml,
            scratch,
            seed,
        })
    }

    /// A fresh recommender for `method` (which must have been prepared).
    pub fn build(
        &self,
        ds: &Dataset,
        method: Method,
        hyper: &Hyper,
    ) -> Result<Box<dyn Recommender>, EvalError> {
        let missing = || EvalError(format!("{} was not prepared", method.name()));
        let h = hyper;
        Ok(match method {
            Method::Random => Box::new(Random::new()),
            Method::PopularityLikes => Box::new(Popularity::by_likes(&self.stats)),
            Method::PopularityBayes => {
                Box::new(Popularity::by_smoothed_mean(&self.stats, h.prior_strength))
            }
            Method::ItemKnn => Box::new(ItemKnn::new(ds, &self.train, self.bar.clone())),
            Method::UserKnn => Box::new(UserKnn::new(
                ds,
                &self.train,
                self.bar.clone(),
                h.neighbours,
            )),
            Method::UserPosterior => Box::new(UserPosterior::new(
                ds,
                &self.train,
                h.posterior_eps,
                h.posterior_beta,
            )?),
            Method::EpsilonGreedyMf => Box::new(EpsilonGreedyMf::new(
                self.mf.as_ref().ok_or_else(missing)?,
                h.mf_lambda,
                h.epsilon,
            )),
            Method::LinUcb | Method::LinTs | Method::LinUcbCov | Method::LinTsCov => {
                let (features, prior) = match method {
                    Method::LinUcbCov | Method::LinTsCov => {
                        self.whitened.clone().ok_or_else(missing)?
                    }
                    _ => (self.features.clone(), self.prior.clone()),
                };
                if matches!(method, Method::LinUcb | Method::LinUcbCov) {
                    Box::new(LinUcb::new(features, &prior, h.bandit_lambda, h.alpha))
                } else {
                    Box::new(LinTs::new(features, &prior, h.bandit_lambda, h.ts_scale))
                }
            }
            Method::SupFixed | Method::SupFinetune => Box::new(Supervised::new(
                self.supervised.as_ref().ok_or_else(missing)?,
                (method == Method::SupFinetune).then_some(h.user_fit),
            )?),
            Method::MetaRl | Method::MetaRlFixed | Method::MetaRlTrpo => {
                let adapt = AdaptConfig {
                    enabled: method != Method::MetaRlFixed,
                    ..h.meta.adapt
                };
                let trained = [&self.meta, &self.trpo][usize::from(method == Method::MetaRlTrpo)];
                Box::new(MetaRl::new(trained.as_ref().ok_or_else(missing)?, adapt)?)
            }
            Method::MetaRlReptile | Method::MetaRlFomaml | Method::RlScratch => {
                let trained = match method {
                    Method::MetaRlReptile => &self.reptile,
                    Method::MetaRlFomaml => &self.fomaml,
                    _ => &self.scratch,
                };
                let adapt = AdaptConfig {
                    adapts: Adapts::Network,
                    ..h.meta.adapt
                };
                Box::new(MetaRl::new(trained.as_ref().ok_or_else(missing)?, adapt)?)
            }
        })
    }

    /// The episode seed of `user`.
    pub fn episode_seed(&self, user: u32) -> u64 {
        episode_seed(self.seed, user)
    }
}

/// The episodes of one method under one seed, in user order, and the query-set rankings
/// (NDCG@10, Hit@10) of the users that had one.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub method: Method,
    pub seed: u64,
    pub episodes: Vec<EpisodeLog>,
    pub ranking: Vec<(f64, f64)>,
}

/// Runs `methods` under `protocol` on `ds`; `progress` is called after every episode
/// (seeds × methods × evaluated users in all). Runs are ordered by seed, then method.
///
/// Natively the seeds run in parallel, one per available core (each seed's split, fits and
/// episodes depend on nothing else, so the runs are the same as one seed after another); on
/// wasm they run in turn.
pub fn evaluate(
    ds: &Dataset,
    protocol: &Protocol,
    methods: &[Method],
    progress: &(dyn Fn() + Sync),
) -> Result<Vec<Run>, EvalError> {
    if protocol.rounds == 0 || protocol.slate == 0 {
        return Err(EvalError("rounds and slate must be at least 1".into()));
    }
    let seeds = &protocol.seeds;
    let next = AtomicUsize::new(0);
    // each worker takes the next seed until none is left or one fails
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&seed) = seeds.get(i) else { break };
            let runs = evaluate_seed(ds, protocol, methods, seed, progress);
            let failed = runs.is_err();
            done.push((i, runs));
            if failed {
                break;
            }
        }
        done
    };
    let workers = if cfg!(target_arch = "wasm32") {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    let mut done = if workers.min(seeds.len()) <= 1 {
        work()
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers.min(seeds.len()))
                .map(|_| s.spawn(work))
                .collect();
            let mut done = Vec::new();
            for h in handles {
                done.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
            }
            done
        })
    };
    done.sort_by_key(|&(i, _)| i);
    let mut runs = Vec::new();
    for (_, r) in done {
        runs.extend(r?);
    }
    Ok(runs)
}

/// The runs of `methods` under one `seed`, in method order.
fn evaluate_seed(
    ds: &Dataset,
    protocol: &Protocol,
    methods: &[Method],
    seed: u64,
    progress: &(dyn Fn() + Sync),
) -> Result<Vec<Run>, EvalError> {
    let prepared = Prepared::new(ds, protocol, methods, seed)?;
    let mut runs = Vec::with_capacity(methods.len());
    for &method in methods {
        let mut rec = prepared.build(ds, method, &protocol.hyper)?;
        let mut episodes = Vec::with_capacity(prepared.evaluated.len());
        let mut ranking = Vec::new();
        for &user in &prepared.evaluated {
            let seed = prepared.episode_seed(user);
            ranking.extend(rank_query(rec.as_mut(), ds, user, RANK_K, seed)?);
            let mut task =
                protocol
                    .environment
                    .task(ds, user, RewardMode::default(), protocol.rounds);
            episodes.push(run_episode(rec.as_mut(), &mut task, protocol.slate, seed)?);
            progress();
        }
        runs.push(Run {
            method,
            seed,
            episodes,
            ranking,
        });
    }
    Ok(runs)
}

/// Evaluated users per seed (for sizing a progress bar).
pub fn evaluated_users(ds: &Dataset, protocol: &Protocol) -> Result<Vec<usize>, EvalError> {
    protocol
        .seeds
        .iter()
        .map(|&s| {
            let split = split_users(ds.n_users(), SplitFractions::default(), s)
                .map_err(|e| EvalError(e.to_string()))?;
            Ok(match protocol.users {
                Users::ColdStart => split.cold_start.len(),
                Users::Validation => split.validation.len(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::WorldConfig;
    use crate::eval::report::Report;

    fn small() -> Dataset {
        WorldConfig::small_dataset(120, 60, 3).unwrap()
    }

    fn quick() -> Protocol {
        let mut p = Protocol {
            rounds: 6,
            slate: 2,
            seeds: vec![1, 2],
            ..Protocol::default()
        };
        p.hyper.meta.iterations = 2;
        p.hyper.meta.users_per_iteration = 4;
        p.hyper.meta.rounds = 6;
        p.hyper.supervised = FinetuneConfig {
            embedding_dim: 4,
            hidden: vec![8],
            max_epochs: 2,
            ..FinetuneConfig::default()
        };
        p
    }

    #[test]
    fn every_method_runs_the_protocol_deterministically() {
        let ds = small();
        let p = quick();
        let episodes = AtomicUsize::new(0);
        let count = || {
            episodes.fetch_add(1, Ordering::Relaxed);
        };
        let runs = evaluate(&ds, &p, &Method::ALL, &count).unwrap();
        let episodes = episodes.into_inner();
        let users: usize = evaluated_users(&ds, &p).unwrap().iter().sum();
        assert_eq!(episodes, users * Method::ALL.len());
        assert_eq!(runs.len(), 2 * Method::ALL.len());
        for run in &runs {
            for e in &run.episodes {
                assert!(!e.hits.is_empty() && e.hits.len() <= 6);
                assert!(e.shown.iter().all(|&s| (1..=2).contains(&s)));
                let distinct: std::collections::HashSet<_> = e.items.iter().collect();
                assert_eq!(distinct.len(), e.items.len(), "{:?} repeats", run.method);
            }
        }
        let again = evaluate(&ds, &p, &Method::ALL, &|| {}).unwrap();
        assert_eq!(runs, again);
        let json = Report::new("small", ds.n_items(), &p, &runs).to_json();
        assert_eq!(
            json,
            Report::new("small", ds.n_items(), &p, &again).to_json()
        );
        assert!(json.contains("\"meta-rl-fixed\""));
        assert!(runs.iter().all(|r| !r.ranking.is_empty()));
        for (ndcg, hit) in runs.iter().flat_map(|r| &r.ranking) {
            assert!((0.0..=1.0).contains(ndcg) && (*hit == 0.0 || *hit == 1.0));
        }
    }

    /// With `policy_covariance` the policy's item vectors (before the prior column) are the
    /// whitened bandits' (before the bias); without it, the plain bandits'.
    #[test]
    fn the_policy_and_the_whitened_bandits_share_the_whitened_vectors() {
        let ds = small();
        let mut p = quick();
        p.environment = Environment::Catalog;
        p.hyper.meta.iterations = 0;
        let methods = [Method::MetaRl, Method::LinTsCov];
        let policy_rows = |p: &Protocol| {
            let prepared = Prepared::new(&ds, p, &methods, 1).unwrap();
            let (features, _) = prepared.whitened.unwrap();
            let items = prepared.meta.unwrap().items;
            let d = features.dim - 1;
            let rows: Vec<Vec<f32>> = items.chunks(d + 1).map(|r| r[..d].to_vec()).collect();
            let row = |f: &Features, i: usize| -> Vec<f32> {
                f.row(i as u32)[..d].iter().map(|&v| v as f32).collect()
            };
            let same = |f: &Features| (0..rows.len()).all(|i| rows[i] == row(f, i));
            (same(&features), same(&prepared.features))
        };
        assert_eq!(policy_rows(&p), (false, true));
        p.hyper.policy_covariance = true;
        assert_eq!(policy_rows(&p), (true, false));
    }

    /// Shows every candidate at once, breaking the slate size.
    struct Greedy;
    impl Recommender for Greedy {
        fn reset(&mut self, _: u64) {}
        fn slate(&mut self, candidates: &[u32], _: usize) -> Result<Vec<u32>, EvalError> {
            Ok(candidates.to_vec())
        }
        fn update(&mut self, _: u32, _: f32) -> Result<(), EvalError> {
            Ok(())
        }
    }

    #[test]
    fn a_training_fraction_is_a_seeded_subset() {
        let users: Vec<u32> = (0..100).collect();
        let half = subsample(users.clone(), 0.5, 3).unwrap();
        assert_eq!(half.len(), 50);
        assert!(half.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(half, subsample(users.clone(), 0.5, 3).unwrap());
        assert_ne!(half, subsample(users.clone(), 0.5, 4).unwrap());
        assert_ne!(half, (0..50).collect::<Vec<u32>>());
        assert_eq!(subsample(users.clone(), 1.0, 3).unwrap(), users);
        assert_eq!(subsample(users.clone(), 0.001, 3).unwrap().len(), 1);
        for bad in [0.0, -0.5, 1.5, f64::NAN] {
            assert!(subsample(users.clone(), bad, 3).is_err());
        }
        // the protocol learns from the subset: fewer training users, same evaluated users
        let ds = small();
        let mut p = quick();
        let all = Prepared::new(&ds, &p, &[Method::PopularityLikes], 1).unwrap();
        p.train_fraction = 0.5;
        let part = Prepared::new(&ds, &p, &[Method::PopularityLikes], 1).unwrap();
        assert_eq!(
            part.train.len(),
            (all.train.len() as f64 * 0.5).round() as usize
        );
        assert!(part.train.iter().all(|u| all.train.contains(u)));
        assert_eq!(part.evaluated, all.evaluated);
    }

    #[test]
    fn oversized_slates_are_refused() {
        let ds = small();
        let mut task = Environment::Observed.task(&ds, 0, RewardMode::default(), 5);
        assert!(run_episode(&mut Greedy, &mut task, 1, 0).is_err());
        assert!(Method::parse("nope").is_err());
        assert_eq!(Method::parse("lin-ts").unwrap(), Method::LinTs);
    }
}
