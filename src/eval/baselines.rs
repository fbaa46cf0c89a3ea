//! Baselines for the interactive protocol. Everything they learn before an episode comes from
//! training users only ([`ItemStats`]); within an episode they learn from the user's rewards.
//!
//! The linear bandits and their ridge regression are in [`super::linear`] (re-exported here).
pub use super::linear::{Features, LinTs, LinUcb, Ridge};
use super::{top_k, EvalError, Recommender};
use crate::data::{Dataset, LatentFactorModel, LIKE_THRESHOLD};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Item statistics of the training users.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemStats {
    /// Ratings per item.
    pub count: Vec<u32>,
    /// Likes (rating ≥ 4) per item.
    pub likes: Vec<u32>,
    /// Sum of ratings per item.
    pub sum: Vec<f64>,
    /// Mean of all training ratings.
    pub global_mean: f64,
}

impl ItemStats {
    /// Counts the ratings of `users` (dense indices) in `ds`.
    pub fn new(ds: &Dataset, users: &[u32]) -> Self {
        let n = ds.n_items();
        let mut s = ItemStats {
            count: vec![0; n],
            likes: vec![0; n],
            sum: vec![0.0; n],
            global_mean: 0.0,
        };
        let (mut total, mut ratings) = (0.0, 0usize);
        for &u in users {
            for r in ds.user_ratings(u) {
                let i = r.item as usize;
                s.count[i] += 1;
                s.likes[i] += u32::from(r.value >= LIKE_THRESHOLD);
                s.sum[i] += f64::from(r.value);
                total += f64::from(r.value);
                ratings += 1;
            }
        }
        s.global_mean = if ratings > 0 {
            total / ratings as f64
        } else {
            0.0
        };
        s
    }

    /// Bayesian-smoothed mean rating per item: the global mean as prior with weight
    /// `strength` ratings.
    pub fn smoothed_mean(&self, strength: f64) -> Vec<f64> {
        self.sum
            .iter()
            .zip(&self.count)
            .map(|(&s, &c)| (s + strength * self.global_mean) / (f64::from(c) + strength))
            .collect()
    }
}

/// Uniformly random slates.
pub struct Random {
    rng: ChaCha8Rng,
}

impl Random {
    pub fn new() -> Self {
        Random {
            rng: ChaCha8Rng::seed_from_u64(0),
        }
    }
}

impl Default for Random {
    fn default() -> Self {
        Self::new()
    }
}

impl Recommender for Random {
    fn reset(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
    }
    fn slate(&mut self, candidates: &[u32], k: usize) -> Result<Vec<u32>, EvalError> {
        Ok(random_slate(&mut self.rng, candidates, k))
    }
    fn update(&mut self, _: u32, _: f32) -> Result<(), EvalError> {
        Ok(())
    }
}

/// `k` distinct candidates drawn uniformly.
fn random_slate<R: Rng + ?Sized>(rng: &mut R, candidates: &[u32], k: usize) -> Vec<u32> {
    let mut c = candidates.to_vec();
    let k = k.min(c.len());
    for i in 0..k {
        let j = rng.random_range(i..c.len());
        c.swap(i, j);
    }
    c.truncate(k);
    c
}

/// A fixed score per item (popularity): the same ranking for everyone, no learning.
pub struct Popularity {
    scores: Vec<f64>,
}

impl Popularity {
    /// Ranks by the number of likes among training users.
    pub fn by_likes(stats: &ItemStats) -> Self {
        Popularity {
            scores: stats.likes.iter().map(|&l| f64::from(l)).collect(),
        }
    }
    /// Ranks by the Bayesian-smoothed mean rating ([`ItemStats::smoothed_mean`]).
    pub fn by_smoothed_mean(stats: &ItemStats, strength: f64) -> Self {
        Popularity {
            scores: stats.smoothed_mean(strength),
        }
    }
}

impl Recommender for Popularity {
    fn reset(&mut self, _: u64) {}
    fn slate(&mut self, candidates: &[u32], k: usize) -> Result<Vec<u32>, EvalError> {
        Ok(top_k(candidates, k, |i| {
            self.scores.get(i as usize).copied().unwrap_or(f64::MIN)
        }))
    }
    fn update(&mut self, _: u32, _: f32) -> Result<(), EvalError> {
        Ok(())
    }
}

/// ε-greedy over a latent-factor model fitted on training users: the new user's factor vector
/// is a ridge fit, on the item factors, of the rewards so far (liked = +1, not liked = -1,
/// minus the item bias); the score is item bias + user · item factors. With probability ε a
/// round's slate is uniformly random instead.
pub struct EpsilonGreedyMf {
    bias: Vec<f64>,
    factors: Features,
    ridge: Ridge,
    epsilon: f64,
    rng: ChaCha8Rng,
}

impl EpsilonGreedyMf {
    /// From a fitted model; `lambda`: ridge strength of the user vector.
    pub fn new(model: &LatentFactorModel, lambda: f64, epsilon: f64) -> Self {
        let n = model.n_items();
        let mut bias = Vec::with_capacity(n);
        let mut values = Vec::new();
        let mut dim = 0;
        for i in 0..n {
            let (b, f) = model.item_vector(i as u32).unwrap_or((0.0, &[]));
            dim = f.len();
            bias.push(f64::from(b));
            values.extend(f.iter().map(|&v| f64::from(v)));
        }
        EpsilonGreedyMf {
            bias,
            factors: Features { dim, values },
            ridge: Ridge::new(&vec![0.0; dim], lambda),
            epsilon,
            rng: ChaCha8Rng::seed_from_u64(0),
        }
    }
}

impl Recommender for EpsilonGreedyMf {
    fn reset(&mut self, seed: u64) {
        self.ridge.reset();
        self.rng = ChaCha8Rng::seed_from_u64(seed);
    }
    fn slate(&mut self, candidates: &[u32], k: usize) -> Result<Vec<u32>, EvalError> {
        if self.rng.random::<f64>() < self.epsilon {
            return Ok(random_slate(&mut self.rng, candidates, k));
        }
        let p = self.ridge.mean();
        Ok(top_k(candidates, k, |i| {
            let b = self.bias.get(i as usize).copied().unwrap_or(f64::MIN);
            b + self.factors.score(i, &p).unwrap_or(0.0)
        }))
    }
    fn update(&mut self, item: u32, reward: f32) -> Result<(), EvalError> {
        let y = if reward > 0.5 { 1.0 } else { -1.0 };
        let b = self.bias.get(item as usize).copied().unwrap_or(0.0);
        self.ridge.update(self.factors.row(item), y - b);
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::data::dataset::{Format, Source};
    use crate::data::{Catalog, FitConfig, IdMap, ItemMeta, Rating, RatingScale};

    /// A dataset of `(user, item, rating)` over `n_items` items without metadata.
    pub(in crate::eval) fn tiny(
        n_users: u32,
        n_items: u32,
        ratings: &[(u32, u32, f32)],
    ) -> Dataset {
        let mut users = IdMap::new();
        for u in 0..n_users {
            users.insert(&u.to_string()).unwrap();
        }
        let mut catalog = Catalog::default();
        for i in 0..n_items {
            catalog.ids.insert(&i.to_string()).unwrap();
            catalog.items.push(ItemMeta::default());
        }
        let ratings = ratings
            .iter()
            .enumerate()
            .map(|(t, &(user, item, value))| Rating {
                user,
                item,
                value,
                timestamp: Some(t as i64),
            })
            .collect();
        let source = Source {
            name: "tiny".into(),
            format: Format::Synthetic,
            scale: RatingScale { min: 1.0, max: 5.0 },
            label: "tiny".into(),
        };
        Dataset::from_parts(source, users, catalog, ratings).unwrap()
    }

    pub(in crate::eval) fn all_users(ds: &Dataset) -> Vec<u32> {
        (0..ds.n_users() as u32).collect()
    }

    #[test]
    fn popularity_picks_the_most_liked_item() {
        // item 2: three likes; item 0: two likes and many ratings; item 1: one like
        let ds = tiny(
            4,
            3,
            &[
                (0, 0, 5.0),
                (1, 0, 4.0),
                (2, 0, 1.0),
                (3, 0, 1.0),
                (0, 1, 5.0),
                (1, 2, 4.0),
                (2, 2, 5.0),
                (3, 2, 4.0),
            ],
        );
        let stats = ItemStats::new(&ds, &all_users(&ds));
        let mut p = Popularity::by_likes(&stats);
        assert_eq!(p.slate(&[0, 1, 2], 2).unwrap(), vec![2, 0]);
        assert_eq!(p.slate(&[0, 1], 1).unwrap(), vec![0]);
    }

    #[test]
    fn smoothed_mean_prefers_many_good_ratings_to_one_perfect() {
        // item 0: one 5; item 1: twenty 4.5s (as 4 and 5); item 2: twenty 2s
        let mut r = vec![(0, 0, 5.0)];
        for u in 0..20 {
            r.push((u, 1, if u % 2 == 0 { 4.0 } else { 5.0 }));
            r.push((u, 2, 2.0));
        }
        let ds = tiny(20, 3, &r);
        let stats = ItemStats::new(&ds, &all_users(&ds));
        let m = stats.smoothed_mean(10.0);
        let global = (5.0 + 20.0 * 4.5 + 20.0 * 2.0) / 41.0;
        assert!((m[0] - (5.0 + 10.0 * global) / 11.0).abs() < 1e-9);
        assert_eq!(
            Popularity::by_smoothed_mean(&stats, 10.0)
                .slate(&[0, 1, 2], 3)
                .unwrap(),
            vec![1, 0, 2]
        );
        // without the prior, the single perfect rating wins
        assert_eq!(
            Popularity::by_smoothed_mean(&stats, 0.0)
                .slate(&[0, 1, 2], 1)
                .unwrap(),
            vec![0]
        );
    }

    #[test]
    fn random_slates_are_distinct_candidates_and_seeded() {
        let mut r = Random::new();
        r.reset(3);
        let a = r.slate(&[4, 5, 6, 7, 8], 3).unwrap();
        r.reset(3);
        assert_eq!(r.slate(&[4, 5, 6, 7, 8], 3).unwrap(), a);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let s = r.slate(&[4, 5, 6, 7, 8], 2).unwrap();
            assert_eq!(s.len(), 2);
            assert_ne!(s[0], s[1]);
            seen.extend(s);
        }
        assert_eq!(seen.len(), 5);
        assert_eq!(r.slate(&[1], 3).unwrap(), vec![1]);
    }

    #[test]
    fn epsilon_greedy_mf_learns_the_users_taste() {
        // two kinds of users: kind A likes items 0-4 and dislikes 5-9, kind B the reverse
        let mut r = Vec::new();
        for u in 0..60 {
            for i in 0..10 {
                let a_likes = i < 5;
                let liked = (u % 2 == 0) == a_likes;
                r.push((u, i, if liked { 5.0 } else { 1.0 }));
            }
        }
        let ds = tiny(60, 10, &r);
        let cfg = FitConfig {
            dim: 4,
            epochs: 200,
            learning_rate: 0.02,
            test_fraction: 0.0,
            ..FitConfig::default()
        };
        let model = LatentFactorModel::fit(&ds, cfg).unwrap();
        let mut mf = EpsilonGreedyMf::new(&model, 1.0, 0.0);
        mf.reset(0);
        mf.update(7, 1.0).unwrap();
        mf.update(2, 0.0).unwrap();
        let s = mf.slate(&[0, 1, 3, 4, 5, 6, 8, 9], 3).unwrap();
        assert!(s.iter().all(|&i| i >= 5), "{s:?}");
        mf.reset(0);
        mf.update(2, 1.0).unwrap();
        mf.update(7, 0.0).unwrap();
        let s = mf.slate(&[0, 1, 3, 4, 5, 6, 8, 9], 3).unwrap();
        assert!(s.iter().all(|&i| i < 5), "{s:?}");
        // ε = 1: always random
        let mut explore = EpsilonGreedyMf::new(&model, 1.0, 1.0);
        explore.reset(1);
        let firsts: std::collections::HashSet<u32> = (0..50)
            .map(|_| explore.slate(&[0, 1, 2, 3], 1).unwrap()[0])
            .collect();
        assert_eq!(firsts.len(), 4);
    }
}
