//! Aggregation of runs into a report: per method, each metric's mean and 95% CI, and the
//! reward-per-round curve; as JSON (deterministic: no timings, sorted keys) or markdown.
use super::metrics::{coverage, curve, interactions_to_fraction, mean_ci, EpisodeLog, Stat};
use super::protocol::{Method, Protocol, Run};
use serde::Serialize;
use std::collections::BTreeMap;

/// Rounds over which precision is reported.
pub const PRECISION_ROUNDS: [usize; 3] = [5, 10, 20];

/// One method's figures. Per-user metrics pool the evaluated users of every seed (CI over
/// users); `interactions_to_90` and `coverage` are per seed (CI over seeds).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MethodReport {
    pub precision_at_5_rounds: Stat,
    pub precision_at_10_rounds: Stat,
    pub precision_at_20_rounds: Stat,
    pub cumulative_reward: Stat,
    /// Items shown until the cumulative hit rate of the mean curve reaches 90% of its final
    /// value ([`interactions_to_fraction`]).
    pub interactions_to_90: Stat,
    /// Share of the catalog shown to at least one evaluated user.
    pub coverage: Stat,
    /// Precision over rounds 1–10, one value per seed (mean over that seed's users), and the
    /// CI over those seed means.
    pub precision_at_10_rounds_over_seeds: Stat,
    /// Query-set ranking: NDCG@10 (gain 2^rating − 1) of the later half of each user's
    /// ratings after learning from the earlier half, over users (all seeds).
    pub ndcg_at_10: Stat,
    /// Query-set ranking: Hit@10 (a liked item among the top 10), over users (all seeds).
    pub hit_at_10: Stat,
    /// Mean reward per shown item in each round, over users (all seeds).
    pub curve: Vec<Stat>,
}

/// The whole evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub dataset: String,
    pub rounds: usize,
    pub slate: usize,
    pub seeds: Vec<u64>,
    pub users: String,
    /// Evaluated episodes per method (users × seeds).
    pub episodes: usize,
    pub methods: BTreeMap<String, MethodReport>,
    /// Method names in table order.
    pub order: Vec<String>,
}

fn stat_of(episodes: &[&EpisodeLog], f: impl Fn(&EpisodeLog) -> Option<f64>) -> Stat {
    let v: Vec<f64> = episodes.iter().filter_map(|e| f(e)).collect();
    mean_ci(&v)
}

fn ranking(runs: &[&Run], f: impl Fn(&(f64, f64)) -> f64) -> Stat {
    let v: Vec<f64> = runs.iter().flat_map(|r| &r.ranking).map(f).collect();
    mean_ci(&v)
}

impl Report {
    /// Aggregates `runs` (from [`super::protocol::evaluate`]) of a dataset of `n_items` items.
    pub fn new(dataset: &str, n_items: usize, protocol: &Protocol, runs: &[Run]) -> Self {
        let mut methods = BTreeMap::new();
        let mut order = Vec::new();
        let mut episodes = 0;
        for method in Method::ALL {
            let mine: Vec<&Run> = runs.iter().filter(|r| r.method == method).collect();
            if mine.is_empty() {
                continue;
            }
            let all: Vec<&EpisodeLog> = mine.iter().flat_map(|r| &r.episodes).collect();
            episodes = all.len();
            let per_seed = |f: &dyn Fn(&Run) -> Option<f64>| -> Stat {
                let v: Vec<f64> = mine.iter().filter_map(|r| f(r)).collect();
                mean_ci(&v)
            };
            let k = protocol.slate;
            let report = MethodReport {
                precision_at_5_rounds: stat_of(&all, |e| e.precision(PRECISION_ROUNDS[0])),
                precision_at_10_rounds: stat_of(&all, |e| e.precision(PRECISION_ROUNDS[1])),
                precision_at_20_rounds: stat_of(&all, |e| e.precision(PRECISION_ROUNDS[2])),
                cumulative_reward: stat_of(&all, |e| Some(e.cumulative())),
                interactions_to_90: per_seed(&|r| {
                    let eps: Vec<&EpisodeLog> = r.episodes.iter().collect();
                    let c: Vec<f64> = curve(&eps, protocol.rounds)
                        .iter()
                        .map(|s| s.mean)
                        .take_while(|m| m.is_finite())
                        .collect();
                    interactions_to_fraction(&c, k, 0.9).map(|n| n as f64)
                }),
                coverage: per_seed(&|r| Some(coverage(&r.episodes, n_items))),
                precision_at_10_rounds_over_seeds: per_seed(&|r| {
                    let eps: Vec<&EpisodeLog> = r.episodes.iter().collect();
                    let s = stat_of(&eps, |e| e.precision(PRECISION_ROUNDS[1]));
                    s.mean.is_finite().then_some(s.mean)
                }),
                ndcg_at_10: ranking(&mine, |r| r.0),
                hit_at_10: ranking(&mine, |r| r.1),
                curve: curve(&all, protocol.rounds),
            };
            order.push(method.name().to_string());
            methods.insert(method.name().to_string(), report);
        }
        Report {
            dataset: dataset.to_string(),
            rounds: protocol.rounds,
            slate: protocol.slate,
            seeds: protocol.seeds.clone(),
            users: format!("{:?}", protocol.users),
            episodes,
            methods,
            order,
        }
    }

    /// Pretty JSON; the same runs always give the same bytes.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// A markdown table: one row per method, mean ± 95% CI per metric.
    pub fn markdown(&self) -> String {
        use std::fmt::Write;
        let f = |s: &Stat, digits: usize| format!("{:.digits$} ± {:.digits$}", s.mean, s.ci95);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| method | P@rounds 1–5 | P@rounds 1–10 | P@rounds 1–20 | cumulative reward | interactions to 90% | coverage | P@1–10 over seeds | NDCG@10 (query) | Hit@10 (query) |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
        for name in &self.order {
            if let Some(m) = self.methods.get(name) {
                let _ = writeln!(
                    out,
                    "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    f(&m.precision_at_5_rounds, 3),
                    f(&m.precision_at_10_rounds, 3),
                    f(&m.precision_at_20_rounds, 3),
                    f(&m.cumulative_reward, 2),
                    f(&m.interactions_to_90, 1),
                    f(&m.coverage, 3),
                    f(&m.precision_at_10_rounds_over_seeds, 3),
                    f(&m.ndcg_at_10, 3),
                    f(&m.hit_at_10, 3),
                );
            }
        }
        out
    }
}
