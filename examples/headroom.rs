//! How much can any per-user adaptation gain on the cold-start protocol? An upper-bound check
//! for `metarec eval` (EVALUATION.md, "Headroom").
//!
//! For each seed, users are split exactly as `metarec eval` splits them; a latent-factor model
//! (`LatentFactorModel`, default configuration) is fitted on the training users' ratings. Each
//! held-out user's rated items (the candidates of the observed-only environment) are then ranked
//! and the like-rate (rating ≥ 4) of the top 10 is scored — as ten one-item rounds would be if
//! the method knew its ranking in advance — in three ways:
//!
//! - `pop-bayes`: the smoothed mean rating of the training users (no information on the user);
//! - `informed, 10 known`: the user's factors and bias ridge-fitted on the *ratings* (1–5, not
//!   just like / not) of 10 of their items drawn at random, the other items ranked by the model
//!   (more than ten rewards of one-item rounds reveal);
//! - `informed, 80% known`: five folds over the user's items, each fold ranked by a fit on the
//!   other four (on average ≈ 85 ratings of the user known);
//! - `item-kNN, 80% known`: the same folds, each item scored by `item-knn` (co-likes of the
//!   training users) after learning the likes of the other four folds — a neighbourhood model
//!   gains several times what the latent-factor user fit does.
//!
//! The ridge strength is taken as the best of a grid *on the evaluated users themselves*, so
//! the informed rows are optimistic. The gap needed for non-overlapping 95% CIs over these
//! users follows from the per-user spread of the metric.
//!
//! cargo run --release --example headroom -- ../shared/data/ml-100k [SEEDS [DIM REG EPOCHS]]
//!
//! (`DIM REG EPOCHS` configure the latent-factor model: 16, 0.05, 25 by default, as `eps-greedy-mf`.)
use metarec::data::{split_users, FitConfig, LatentFactorModel, SplitFractions};
use metarec::data::{Rating, LIKE_THRESHOLD};
use metarec::eval::baselines::{Features, ItemStats, Ridge};
use metarec::eval::knn::ItemKnn;
use metarec::eval::metrics::{mean_ci, t95};
use metarec::eval::top_k;
use metarec::eval::Recommender;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;

const LAMBDAS: [f64; 4] = [1.0, 3.0, 10.0, 30.0];

/// Like-rate of the top 10 of `items` by `score`.
fn top10(items: &[&Rating], score: impl Fn(u32) -> f64) -> f64 {
    let ids: Vec<u32> = items.iter().map(|r| r.item).collect();
    let top = top_k(&ids, 10, score);
    let liked = items
        .iter()
        .filter(|r| top.contains(&r.item) && r.value >= LIKE_THRESHOLD)
        .count();
    liked as f64 / top.len() as f64
}

/// The model's item part: each item's bias, and its factors with a constant 1 appended (for the
/// user's bias).
struct Items {
    bias: Vec<f64>,
    x: Features,
    mean: f64,
}

impl Items {
    fn new(mf: &LatentFactorModel, mean: f64) -> Self {
        let (mut bias, mut factors) = (Vec::new(), Vec::new());
        for i in 0..mf.n_items() as u32 {
            let (b, f) = mf.item_vector(i).unwrap_or((0.0, &[]));
            bias.push(f64::from(b));
            factors.extend_from_slice(f);
        }
        let dim = factors.len() / bias.len().max(1);
        Items {
            bias,
            x: Features::with_bias(&factors, dim),
            mean,
        }
    }

    /// Ridge fit (strength `lambda`) of the user's factors and bias on `known` ratings; returns
    /// the predicted rating of an item.
    fn fit(&self, known: &[&Rating], lambda: f64) -> impl Fn(u32) -> f64 + '_ {
        let mut ridge = Ridge::new(&vec![0.0; self.x.dim], lambda);
        for r in known {
            let b = self.bias[r.item as usize];
            ridge.update(self.x.row(r.item), f64::from(r.value) - self.mean - b);
        }
        let theta = ridge.mean();
        move |item| {
            let dot: f64 = self
                .x
                .row(item)
                .iter()
                .zip(&theta)
                .map(|(a, t)| a * t)
                .sum();
            self.mean + self.bias[item as usize] + dot
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(
        args.next()
            .ok_or("usage: headroom DATA_DIR [SEEDS [DIM REG EPOCHS]]")?,
    );
    let seeds: u64 = args.next().map_or(Ok(5), |s| s.parse())?;
    let dim: usize = args.next().map_or(Ok(16), |s| s.parse())?;
    let reg: f32 = args.next().map_or(Ok(0.05), |s| s.parse())?;
    let epochs: usize = args.next().map_or(Ok(25), |s| s.parse())?;
    let ds = metarec::data::load(&path)?;
    // rows: pop-bayes, then per lambda: informed 10 known (vs pop on the same rest), 80% known
    let mut pop = Vec::new();
    let mut pop_rest = Vec::new();
    let mut ten = vec![Vec::new(); LAMBDAS.len()];
    let mut most = vec![Vec::new(); LAMBDAS.len()];
    let mut knn_most = Vec::new();
    for seed in 1..=seeds {
        let split = split_users(ds.n_users(), SplitFractions::default(), seed)?;
        let mut train_ds = ds.clone();
        train_ds.ratings = split
            .train
            .iter()
            .flat_map(|&u| ds.user_ratings(u))
            .copied()
            .collect();
        let stats = ItemStats::new(&ds, &split.train);
        let smoothed = stats.smoothed_mean(10.0);
        let pop_score = |i: u32| smoothed[i as usize];
        let mf = LatentFactorModel::fit(
            &train_ds,
            FitConfig {
                seed,
                dim,
                regularization: reg,
                epochs,
                ..FitConfig::default()
            },
        )?;
        let items = Items::new(&mf, stats.global_mean);
        let mut knn = ItemKnn::new(&ds, &split.train, smoothed.clone());
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for &u in &split.cold_start {
            let mut rated: Vec<&Rating> = ds.user_ratings(u).iter().collect();
            if rated.len() < 20 {
                continue;
            }
            rated.shuffle(&mut rng);
            pop.push(top10(&rated, pop_score));
            let mut scores = vec![0.0; ds.n_items()];
            for fold in 0..5 {
                knn.reset(0);
                let known = (0..rated.len()).filter(|i| i % 5 != fold).map(|i| rated[i]);
                for r in known {
                    knn.update(r.item, f32::from(u8::from(r.value >= LIKE_THRESHOLD)))?;
                }
                let fold_items: Vec<u32> = (fold..rated.len())
                    .step_by(5)
                    .map(|i| rated[i].item)
                    .collect();
                // rank the fold; its relative rank becomes the score (the folds interleave)
                let ranked = knn.slate(&fold_items, fold_items.len())?;
                for (rank, item) in ranked.iter().enumerate() {
                    scores[*item as usize] = -(rank as f64) / fold_items.len() as f64;
                }
            }
            knn_most.push(top10(&rated, |i| scores[i as usize]));
            let (known, rest) = rated.split_at(10);
            pop_rest.push(top10(rest, pop_score));
            for (k, &lambda) in LAMBDAS.iter().enumerate() {
                ten[k].push(top10(rest, items.fit(known, lambda)));
                // five folds: each item scored by a fit on the other folds
                let mut scores = vec![0.0; ds.n_items()];
                for fold in 0..5 {
                    let train: Vec<&Rating> = (0..rated.len())
                        .filter(|i| i % 5 != fold)
                        .map(|i| rated[i])
                        .collect();
                    let predict = items.fit(&train, lambda);
                    for i in (fold..rated.len()).step_by(5) {
                        scores[rated[i].item as usize] = predict(rated[i].item);
                    }
                }
                most[k].push(top10(&rated, |i| scores[i as usize]));
            }
        }
        eprintln!("seed {seed}: {} held-out users", split.cold_start.len());
    }
    let show = |name: &str, v: &[f64], base: &[f64]| {
        let s = mean_ci(v);
        let d: Vec<f64> = v.iter().zip(base).map(|(a, b)| a - b).collect();
        let g = mean_ci(&d);
        println!(
            "{name:<32} {:.3} ± {:.3}   gain over pop-bayes {:+.3} ± {:.3} (paired)",
            s.mean, s.ci95, g.mean, g.ci95
        );
    };
    println!(
        "P@10 over {} held-out users (seeds 1–{seeds} pooled)",
        pop.len()
    );
    show("pop-bayes", &pop, &pop);
    for (k, lambda) in LAMBDAS.iter().enumerate() {
        show(
            &format!("informed, 10 known, λ {lambda}"),
            &ten[k],
            &pop_rest,
        );
        show(&format!("informed, 80% known, λ {lambda}"), &most[k], &pop);
    }
    show("item-kNN, 80% known", &knn_most, &pop);
    let ci = mean_ci(&pop).ci95;
    let sd = ci / t95(pop.len() - 1) * (pop.len() as f64).sqrt();
    println!(
        "per-user sd of pop-bayes P@10: {sd:.3}; two 95% CIs of {} users stop overlapping at a gap of {:.3}",
        pop.len(),
        2.0 * ci
    );
    Ok(())
}
