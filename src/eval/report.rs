//! Aggregation of runs into a report: per method, each metric's mean and 95% CI, the paired
//! differences to every other method, and the reward-per-round curve; as JSON (deterministic:
//! no timings, sorted keys) or markdown.
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
    /// Paired differences (this method − the other) against every other method of the run.
    pub paired: BTreeMap<String, Paired>,
}

/// One method against another on the same episodes (same seeds, users and splits): mean and
/// 95% CI of the per-episode difference.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Paired {
    pub precision_at_10_rounds: Stat,
}

/// Per-episode paired differences of P@rounds 1–10 between two methods' runs: episodes are
/// matched by seed and by position (the same users in the same order); an episode that has no
/// value for either method is left out.
pub fn paired_precision(mine: &[&Run], other: &[&Run]) -> Stat {
    let mut diffs = Vec::new();
    for a in mine {
        let Some(b) = other.iter().find(|b| b.seed == a.seed) else {
            continue;
        };
        for (x, y) in a.episodes.iter().zip(&b.episodes) {
            if let (Some(x), Some(y)) = (
                x.precision(PRECISION_ROUNDS[1]),
                y.precision(PRECISION_ROUNDS[1]),
            ) {
                diffs.push(x - y);
            }
        }
    }
    mean_ci(&diffs)
}

/// The method's own no-adaptation ablation: the same model that never learns from the user.
fn ablation(method: Method) -> Option<Method> {
    match method {
        Method::MetaRl => Some(Method::MetaRlFixed),
        Method::SupFinetune => Some(Method::SupFixed),
        _ => None,
    }
}

/// The whole evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub dataset: String,
    /// The protocol's environment (`observed` or `catalog`).
    pub protocol: String,
    /// The method to beat on this protocol.
    pub bar: String,
    pub rounds: usize,
    pub slate: usize,
    pub seeds: Vec<u64>,
    pub users: String,
    /// Share of the training users the methods learned from.
    pub train_fraction: f64,
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
        let of =
            |method: Method| -> Vec<&Run> { runs.iter().filter(|r| r.method == method).collect() };
        for method in Method::ALL {
            let mine = of(method);
            if mine.is_empty() {
                continue;
            }
            let paired = Method::ALL
                .into_iter()
                .filter(|&m| m != method)
                .map(|m| (m, of(m)))
                .filter(|(_, other)| !other.is_empty())
                .map(|(m, other)| {
                    let precision_at_10_rounds = paired_precision(&mine, &other);
                    (
                        m.name().to_string(),
                        Paired {
                            precision_at_10_rounds,
                        },
                    )
                })
                .collect();
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
                paired,
            };
            order.push(method.name().to_string());
            methods.insert(method.name().to_string(), report);
        }
        Report {
            dataset: dataset.to_string(),
            protocol: protocol.environment.name().to_string(),
            bar: protocol.bar().name().to_string(),
            rounds: protocol.rounds,
            slate: protocol.slate,
            seeds: protocol.seeds.clone(),
            users: format!("{:?}", protocol.users),
            train_fraction: protocol.train_fraction,
            episodes,
            methods,
            order,
        }
    }

    /// Pretty JSON; the same runs always give the same bytes.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// A markdown table: one row per method, mean ± 95% CI per metric, and the paired
    /// difference of P@rounds 1–10 to the bar and to the method's own no-adaptation ablation.
    pub fn markdown(&self) -> String {
        use std::fmt::Write;
        let f = |s: &Stat, digits: usize| format!("{:.digits$} ± {:.digits$}", s.mean, s.ci95);
        let delta = |m: &MethodReport, other: Option<&str>| {
            other
                .and_then(|o| m.paired.get(o))
                .map(|p| {
                    let s = &p.precision_at_10_rounds;
                    format!("{:+.3} ± {:.3}", s.mean, s.ci95)
                })
                .unwrap_or_else(|| "—".into())
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| method | P@rounds 1–5 | P@rounds 1–10 | Δ vs {} (paired) | Δ vs own ablation (paired) | P@rounds 1–20 | cumulative reward | interactions to 90% | coverage | P@1–10 over seeds | NDCG@10 (query) | Hit@10 (query) |",
            self.bar
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        for name in &self.order {
            if let Some(m) = self.methods.get(name) {
                let own = Method::parse(name)
                    .ok()
                    .and_then(ablation)
                    .map(Method::name);
                let _ = writeln!(
                    out,
                    "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    f(&m.precision_at_5_rounds, 3),
                    f(&m.precision_at_10_rounds, 3),
                    delta(m, Some(self.bar.as_str())),
                    delta(m, own),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(method: Method, seed: u64, hits: &[&[f64]]) -> Run {
        Run {
            method,
            seed,
            episodes: hits
                .iter()
                .map(|h| EpisodeLog {
                    hits: h.to_vec(),
                    shown: vec![1; h.len()],
                    items: Vec::new(),
                })
                .collect(),
            ranking: Vec::new(),
        }
    }

    /// Episodes are paired by seed and position: differences 0.5, 0, 1 and 0.5 (mean 0.5,
    /// sd sqrt(1/6), n = 4: CI 3.182 · sqrt(1/6) / 2), although the unpaired means overlap.
    #[test]
    fn paired_differences_by_hand() {
        let a = [
            run(Method::MetaRl, 1, &[&[1.0, 1.0], &[1.0, 0.0]]),
            run(Method::MetaRl, 2, &[&[1.0, 1.0], &[1.0, 1.0]]),
        ];
        let b = [
            run(Method::PopularityLikes, 2, &[&[0.0, 0.0], &[1.0, 0.0]]),
            run(Method::PopularityLikes, 1, &[&[1.0, 0.0], &[1.0, 0.0]]),
        ];
        let s = paired_precision(&a.iter().collect::<Vec<_>>(), &b.iter().collect::<Vec<_>>());
        assert_eq!(s.n, 4);
        assert!((s.mean - 0.5).abs() < 1e-12);
        let want = 3.182 * (1.0f64 / 6.0).sqrt() / 2.0;
        assert!((s.ci95 - want).abs() < 1e-9, "{} vs {want}", s.ci95);
        // the report carries it both ways, and the markdown shows it against the bar
        let runs: Vec<Run> = a.iter().chain(&b).cloned().collect();
        let protocol = Protocol {
            environment: crate::data::Environment::Catalog,
            rounds: 2,
            seeds: vec![1, 2],
            ..Protocol::default()
        };
        let report = Report::new("hand", 4, &protocol, &runs);
        let back = &report.methods["pop-likes"].paired["meta-rl"].precision_at_10_rounds;
        assert!((back.mean + 0.5).abs() < 1e-12);
        assert!(report.to_json().contains("\"paired\""));
        assert!(report.markdown().contains("+0.500 ±"));
        assert_eq!(report.bar, "pop-likes");
    }
}
