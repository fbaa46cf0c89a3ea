//! One user's episode of the interactive protocol ([`run_episode`]) and the query-set ranking
//! of a user's later ratings after learning the earlier ones ([`rank_query`]).
use super::metrics::{hit_at, ndcg_at, EpisodeLog};
use super::{EvalError, Recommender};
use crate::data::{support_query, Dataset, Shown, UserTask, LIKE_THRESHOLD};

/// The episode seed of `user` under the protocol seed `seed`.
pub fn episode_seed(seed: u64, user: u32) -> u64 {
    seed.wrapping_mul(1_000_003).wrapping_add(u64::from(user))
}

/// Runs one episode of `rec` on `task` with slates of `k`: each round the method proposes up
/// to `k` candidates, the task answers, and the method learns every reward.
pub fn run_episode(
    rec: &mut dyn Recommender,
    task: &mut impl UserTask,
    k: usize,
    seed: u64,
) -> Result<EpisodeLog, EvalError> {
    rec.reset(seed);
    let mut log = EpisodeLog::default();
    while !task.done() {
        let slate = rec.slate(task.candidates(), k)?;
        if slate.is_empty() || slate.len() > k {
            return Err(EvalError(format!(
                "the method proposed {} items for a slate of {k}",
                slate.len()
            )));
        }
        let shown: Vec<Shown> = slate
            .iter()
            .map(|&item| Shown {
                item,
                propensity: 1.0,
            })
            .collect();
        let rewards = task.step(&shown).map_err(|e| EvalError(e.to_string()))?;
        for (&item, &r) in slate.iter().zip(&rewards) {
            rec.update(item, r)?;
        }
        log.hits.push(rewards.iter().map(|&r| f64::from(r)).sum());
        log.shown.push(slate.len());
        log.items.extend(&slate);
    }
    Ok(log)
}

/// Share of each user's ratings (earliest first) given to a method before it ranks the rest.
pub const SUPPORT_FRACTION: f64 = 0.5;

/// Query-set ranking of one user: reset, learn the rewards of the user's earliest ratings
/// (the support set, [`SUPPORT_FRACTION`]), then rank the remaining rated items (the query
/// set) with one slate of `k`. Returns (NDCG@k with gain 2^rating − 1, Hit@k), or `None` when
/// the query set is empty or has no gain.
pub fn rank_query(
    rec: &mut dyn Recommender,
    ds: &Dataset,
    user: u32,
    k: usize,
    seed: u64,
) -> Result<Option<(f64, f64)>, EvalError> {
    let (support, query) =
        support_query(ds, user, SUPPORT_FRACTION).map_err(|e| EvalError(e.to_string()))?;
    if query.is_empty() {
        return Ok(None);
    }
    rec.reset(seed);
    for r in support {
        rec.update(r.item, f32::from(u8::from(r.value >= LIKE_THRESHOLD)))?;
    }
    let mut candidates: Vec<u32> = query.iter().map(|r| r.item).collect();
    candidates.sort_unstable();
    let ranked = rec.slate(&candidates, k)?;
    let rating = |item: u32| query.iter().find(|r| r.item == item).map(|r| r.value);
    let ranked: Vec<f32> = ranked
        .iter()
        .map(|&i| rating(i).ok_or_else(|| EvalError(format!("item {i} is not in the query set"))))
        .collect::<Result<_, _>>()?;
    let all: Vec<f32> = query.iter().map(|r| r.value).collect();
    Ok(ndcg_at(&ranked, &all, k).map(|n| (n, hit_at(&ranked, k, LIKE_THRESHOLD))))
}

/// Items ranked in the query-set protocol.
pub const RANK_K: usize = 10;
