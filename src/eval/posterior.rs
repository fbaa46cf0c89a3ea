//! Bayesian user-kNN (`user-posterior`): the new user is taken to be one of the training users,
//! each equally likely a priori and seen through noise; every reaction reweights them by its
//! likelihood, and an item's score is its like probability under that posterior. It is the
//! Bayes-optimal myopic recommender under the training users as an empirical prior, the
//! nonparametric counterpart of a linear bandit's Gaussian prior, and so a measure of what any
//! method learned from those users (meta-RL included) can gain by adapting.
//!
//! Training user v likes item i with probability `p_vi = (1 − ε)·x_vi + ε·q_i`, where `x_vi`
//! is 1 when v liked i and `q_i` the share of training users who liked i. A reaction r to item
//! i multiplies v's weight by `p_vi^β` (like) or `(1 − p_vi)^β` (miss); β < 1 tempers the
//! evidence. Before any reaction every score is `q_i`: the `pop-likes` order.
use super::knn::{liked_items, likers};
use super::{top_k, EvalError, Recommender};
use crate::data::Dataset;

/// The posterior over training users as prototypes (see the module documentation).
pub struct UserPosterior {
    /// Training users who liked each item.
    likers: Vec<Vec<u32>>,
    /// Share of training users who liked each item (`q_i`).
    share: Vec<f64>,
    eps: f64,
    beta: f64,
    /// Log-weight of each training user, up to a constant.
    log_weight: Vec<f64>,
    /// Scratch: each training user's weight relative to the largest.
    weight: Vec<f64>,
    scores: Vec<f64>,
}

impl UserPosterior {
    /// Prototypes from the likes of `users` in `ds`; `eps` ∈ (0, 1) is the noise, `beta` > 0
    /// the tempering of the likelihood.
    pub fn new(ds: &Dataset, users: &[u32], eps: f64, beta: f64) -> Result<Self, EvalError> {
        if !(eps > 0.0 && eps < 1.0 && beta > 0.0 && beta.is_finite()) {
            return Err(EvalError(format!(
                "user-posterior needs 0 < eps < 1 and beta > 0 (got eps {eps}, beta {beta})"
            )));
        }
        if users.is_empty() {
            return Err(EvalError("user-posterior needs training users".into()));
        }
        let likers = likers(&liked_items(ds, users), ds.n_items());
        let share = likers
            .iter()
            .map(|l| l.len() as f64 / users.len() as f64)
            .collect();
        let mut posterior = UserPosterior {
            likers,
            share,
            eps,
            beta,
            log_weight: vec![0.0; users.len()],
            weight: vec![0.0; users.len()],
            scores: vec![0.0; ds.n_items()],
        };
        posterior.rescore();
        Ok(posterior)
    }

    /// Every item's like probability under the current posterior:
    /// `(1 − ε)·Σ_{v liked i} w_v + ε·q_i`.
    fn rescore(&mut self) {
        let max = self.log_weight.iter().copied().fold(f64::MIN, f64::max);
        for (w, l) in self.weight.iter_mut().zip(&self.log_weight) {
            *w = (l - max).exp();
        }
        let total: f64 = self.weight.iter().sum();
        let items = self.likers.iter().zip(&self.share);
        for (score, (likers, q)) in self.scores.iter_mut().zip(items) {
            let mass: f64 = likers.iter().map(|&v| self.weight[v as usize]).sum();
            *score = (1.0 - self.eps) * mass / total + self.eps * q;
        }
    }
}

impl Recommender for UserPosterior {
    fn reset(&mut self, _: u64) {
        self.log_weight.fill(0.0);
        self.rescore();
    }
    fn slate(&mut self, candidates: &[u32], k: usize) -> Result<Vec<u32>, EvalError> {
        Ok(top_k(candidates, k, |i| {
            self.scores.get(i as usize).copied().unwrap_or(f64::MIN)
        }))
    }
    /// Only the item's likers change weight relative to everyone else: every other user has
    /// the same `p_vi = ε·q_i` for it, a common factor that the normalisation removes.
    fn update(&mut self, item: u32, reward: f32) -> Result<(), EvalError> {
        let Some(likers) = self.likers.get(item as usize) else {
            return Ok(());
        };
        if likers.is_empty() {
            return Ok(());
        }
        let low = self.eps * self.share[item as usize];
        let high = 1.0 - self.eps + low;
        let step = self.beta
            * if reward > 0.5 {
                (high / low).ln()
            } else {
                ((1.0 - high) / (1.0 - low)).ln()
            };
        for &v in likers {
            self.log_weight[v as usize] += step;
        }
        self.rescore();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::baselines::tests::{all_users, tiny};

    /// Users 0–2 like items 0 and 1, user 3 likes items 2 and 3, user 4 likes 0 and 3.
    fn world() -> Dataset {
        let mut r = Vec::new();
        for u in 0..3 {
            r.extend([(u, 0, 5.0), (u, 1, 4.0)]);
        }
        r.extend([
            (3, 2, 5.0),
            (3, 3, 5.0),
            (4, 0, 4.0),
            (4, 3, 5.0),
            (4, 1, 1.0),
        ]);
        tiny(5, 4, &r)
    }

    #[test]
    fn starts_with_the_like_shares_and_follows_the_posterior() {
        let ds = world();
        let mut p = UserPosterior::new(&ds, &all_users(&ds), 0.1, 1.0).unwrap();
        p.reset(0);
        // shares: item 0 4/5, item 1 3/5, item 2 1/5, item 3 2/5
        for (s, q) in p.scores.iter().zip([0.8, 0.6, 0.2, 0.4]) {
            assert!((s - q).abs() < 1e-12, "{s} vs {q}");
        }
        assert_eq!(p.slate(&[0, 1, 2, 3], 4).unwrap(), vec![0, 1, 3, 2]);
        // a miss on item 0: its likers (users 0, 1, 2, 4) each get weight
        // (1 − p_high) / (1 − p_low) with p_low = 0.1·0.8 = 0.08, p_high = 0.98
        p.update(0, 0.0).unwrap();
        let r = 0.02 / 0.92;
        let total = 4.0 * r + 1.0;
        // item 3: liked by users 3 (weight 1) and 4 (weight r)
        let want3 = 0.9 * (1.0 + r) / total + 0.1 * 0.4;
        assert!((p.scores[3] - want3).abs() < 1e-12);
        // item 2 (user 3 only) now beats item 1 (users 0–2)
        assert_eq!(p.slate(&[1, 2, 3], 3).unwrap(), vec![3, 2, 1]);
        // a like on item 3 puts user 3 and 4's items first; reset forgets it all
        p.update(3, 1.0).unwrap();
        assert_eq!(p.slate(&[1, 2], 1).unwrap(), vec![2]);
        p.reset(1);
        assert_eq!(p.slate(&[0, 1, 2, 3], 1).unwrap(), vec![0]);
    }

    #[test]
    fn tempering_moves_the_posterior_less() {
        let ds = world();
        let users = all_users(&ds);
        let mut sharp = UserPosterior::new(&ds, &users, 0.1, 1.0).unwrap();
        let mut soft = UserPosterior::new(&ds, &users, 0.1, 0.3).unwrap();
        for p in [&mut sharp, &mut soft] {
            p.update(2, 1.0).unwrap();
        }
        // both raise item 3 (user 3's other like), the tempered one by less
        assert!(sharp.scores[3] > soft.scores[3] && soft.scores[3] > 0.4);
    }

    #[test]
    fn refuses_bad_settings() {
        let ds = world();
        let users = all_users(&ds);
        for (eps, beta) in [(0.0, 1.0), (1.0, 1.0), (0.1, 0.0), (0.1, f64::NAN)] {
            assert!(UserPosterior::new(&ds, &users, eps, beta).is_err());
        }
        assert!(UserPosterior::new(&ds, &[], 0.1, 1.0).is_err());
    }
}
