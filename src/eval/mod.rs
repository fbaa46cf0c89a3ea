//! Evaluation harness: the cold-start interactive protocol ([`protocol`]) over the methods
//! ([`method`]), its metrics
//! ([`metrics`]), the baselines ([`baselines`], [`knn`], [`linear`], [`posterior`]) and the meta-RL policy as a
//! [`Recommender`] ([`meta_rl`]), the supervised rating network without and with per-user
//! refitting ([`supervised`]), the aggregated report ([`report`]), and off-policy
//! estimators validated on the synthetic world ([`ope`]).
//!
//! Every method sees the same held-out users, the same candidates and the same seeds: each
//! round it proposes a slate among the user's rated, not-yet-shown items, receives one reward
//! per item, and updates before the next round.
pub mod baselines;
pub mod episode;
pub mod hyper;
pub mod knn;
pub mod linear;
pub mod meta_rl;
pub mod method;
pub mod metrics;
pub mod ope;
pub mod posterior;
pub mod protocol;
pub mod report;
pub mod supervised;

/// An evaluation failure (bad arguments, a method that proposes a non-candidate, an engine
/// error).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

impl From<crate::finetune::FinetuneError> for EvalError {
    fn from(e: crate::finetune::FinetuneError) -> Self {
        EvalError(e.to_string())
    }
}

/// An interactive recommender: reset per user, then alternately propose slates and learn from
/// the rewards of the shown items.
pub trait Recommender {
    /// Starts a new user (cold start); `seed` drives any randomness of the episode.
    fn reset(&mut self, seed: u64);
    /// Up to `k` distinct items among `candidates`, best first.
    fn slate(&mut self, candidates: &[u32], k: usize) -> Result<Vec<u32>, EvalError>;
    /// The user's reward (0 or 1) for a shown item.
    fn update(&mut self, item: u32, reward: f32) -> Result<(), EvalError>;
}

/// The `k` candidates with the highest scores (`scores` indexed by item), best first; ties go
/// to the smaller item index, so the result is deterministic.
pub fn top_k(candidates: &[u32], k: usize, score: impl Fn(u32) -> f64) -> Vec<u32> {
    let mut scored: Vec<(f64, u32)> = candidates.iter().map(|&c| (score(c), c)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(k).map(|(_, c)| c).collect()
}
