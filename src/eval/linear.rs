//! The linear bandits ([`LinUcb`], [`LinTs`]) keep one ridge regression per user over item
//! feature vectors (each item is shown at most once per episode, so per-item arms could not
//! learn); their prior mean is a ridge fit of likes on features over the training users.
use super::{top_k, EvalError, Recommender};
use crate::data::sampling::normal;
use crate::data::{Dataset, Environment, Rating, LIKE_THRESHOLD};
use crate::linalg::{solve_ridge, solve_ridge_columns};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Bayesian linear regression state: `A = λI + Σ x xᵀ`, `b = λ θ₀ + Σ y x`, kept as `A⁻¹`.
#[derive(Clone, Debug, PartialEq)]
pub struct Ridge {
    d: usize,
    ainv: Vec<f64>,
    b: Vec<f64>,
    initial: (Vec<f64>, Vec<f64>),
}

impl Ridge {
    /// A regression of `prior.len()` weights regularised towards `prior` with strength `lambda`.
    pub fn new(prior: &[f64], lambda: f64) -> Self {
        let d = prior.len();
        let mut ainv = vec![0.0; d * d];
        for i in 0..d {
            ainv[i * d + i] = 1.0 / lambda;
        }
        let b: Vec<f64> = prior.iter().map(|p| lambda * p).collect();
        Ridge {
            d,
            initial: (ainv.clone(), b.clone()),
            ainv,
            b,
        }
    }

    /// Back to the prior.
    pub fn reset(&mut self) {
        self.ainv.clone_from(&self.initial.0);
        self.b.clone_from(&self.initial.1);
    }

    fn ainv_x(&self, x: &[f64]) -> Vec<f64> {
        let d = self.d;
        (0..d)
            .map(|i| (0..d).map(|j| self.ainv[i * d + j] * x[j]).sum())
            .collect()
    }

    /// Adds the observation (`x`, `y`) (Sherman–Morrison); an empty `x` (an item without
    /// features, [`Features::row`]) teaches nothing.
    pub fn update(&mut self, x: &[f64], y: f64) {
        if x.is_empty() {
            return;
        }
        let d = self.d;
        let ax = self.ainv_x(x);
        let denom = 1.0 + x.iter().zip(&ax).map(|(a, b)| a * b).sum::<f64>();
        for i in 0..d {
            for j in 0..d {
                self.ainv[i * d + j] -= ax[i] * ax[j] / denom;
            }
        }
        for (b, xi) in self.b.iter_mut().zip(x) {
            *b += y * xi;
        }
    }

    /// Posterior mean `A⁻¹ b`.
    pub fn mean(&self) -> Vec<f64> {
        self.ainv_x(&self.b)
    }

    /// `sqrt(xᵀ A⁻¹ x)`.
    pub fn width(&self, x: &[f64]) -> f64 {
        let ax = self.ainv_x(x);
        x.iter()
            .zip(&ax)
            .map(|(a, b)| a * b)
            .sum::<f64>()
            .max(0.0)
            .sqrt()
    }

    /// A draw from `N(A⁻¹ b, v² A⁻¹)`.
    pub fn sample<R: Rng + ?Sized>(&self, v: f64, rng: &mut R) -> Vec<f64> {
        let d = self.d;
        let mut l = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..=i {
                let s: f64 =
                    self.ainv[i * d + j] - (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum::<f64>();
                l[i * d + j] = if i == j {
                    s.max(0.0).sqrt()
                } else if l[j * d + j] > 0.0 {
                    s / l[j * d + j]
                } else {
                    0.0
                };
            }
        }
        let z: Vec<f64> = (0..d).map(|_| normal(rng)).collect();
        let mean = self.mean();
        (0..d)
            .map(|i| mean[i] + v * (0..=i).map(|k| l[i * d + k] * z[k]).sum::<f64>())
            .collect()
    }
}

/// Item feature vectors for the linear bandits: one row per item, `dim` values each.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    pub dim: usize,
    pub values: Vec<f64>,
}

impl Features {
    /// Rows of `matrix` (row-major, `dim` columns) with a constant 1 appended.
    pub fn with_bias(matrix: &[f32], dim: usize) -> Self {
        let values = matrix
            .chunks(dim.max(1))
            .flat_map(|row| row.iter().map(|&v| f64::from(v)).chain([1.0]))
            .collect();
        Features {
            dim: dim + 1,
            values,
        }
    }

    /// The row of `item` (empty when out of range).
    pub fn row(&self, item: u32) -> &[f64] {
        let s = item as usize * self.dim;
        self.values.get(s..s + self.dim).unwrap_or(&[])
    }

    /// `θᵀx` for the row `x` of `item` (`None` when out of range).
    pub fn score(&self, item: u32, theta: &[f64]) -> Option<f64> {
        let x = self.row(item);
        (!x.is_empty()).then(|| x.iter().zip(theta).map(|(a, b)| a * b).sum())
    }

    /// Ridge fit (strength `lambda`) of the likes of `users` in `ds` on the features: the
    /// bandits' prior mean.
    pub fn fit_likes(&self, ds: &Dataset, users: &[u32], lambda: f64) -> Vec<f64> {
        let ratings = users.iter().flat_map(|&u| ds.user_ratings(u));
        let observations = ratings.map(|r| {
            let like = f64::from(u8::from(r.value >= LIKE_THRESHOLD));
            (r.item, 1.0, like)
        });
        self.ridge_fit(observations, lambda)
    }

    /// Ridge fit (strength `lambda`) of the like indicator on the features over **every**
    /// (training user, catalog item) pair, an unrated item counting as not liked: the bandits'
    /// prior mean on the full-catalog protocol, where it ranks items by their training like
    /// rate (`likes[i]` of `users` training users).
    pub fn fit_catalog_likes(&self, likes: &[u32], users: usize, lambda: f64) -> Vec<f64> {
        let observations = (0u32..)
            .zip(likes)
            .map(|(item, &l)| (item, users as f64, f64::from(l)));
        self.ridge_fit(observations, lambda)
    }

    /// Each of `users`' own ridge fit (strength `lambda`) of their likes on the features, as
    /// the bandits' prior mean is fitted (over their rated items in the observed environment;
    /// over the whole catalog, unrated = not liked, in the catalog one): the hindsight weights
    /// whose spread across training users is the prior covariance of
    /// [`crate::linalg::Whitening`].
    pub fn user_like_weights(
        &self,
        ds: &Dataset,
        users: &[u32],
        env: Environment,
        lambda: f64,
    ) -> Vec<Vec<f64>> {
        let like = |r: &Rating| f64::from(u8::from(r.value >= LIKE_THRESHOLD));
        match env {
            Environment::Observed => users
                .iter()
                .map(|&u| {
                    let ratings = ds.user_ratings(u).iter();
                    self.ridge_fit(ratings.map(|r| (r.item, 1.0, like(r))), lambda)
                })
                .collect(),
            Environment::Catalog => {
                let (d, m) = (self.dim, users.len());
                let everything = (0..ds.n_items() as u32).map(|i| (i, 1.0, 0.0));
                let (gram, _) = self.normal_equations(everything);
                // one right-hand side per user: column k is user k's liked sum
                let mut b = vec![0.0; d * m];
                for (k, &u) in users.iter().enumerate() {
                    for r in ds.user_ratings(u).iter().filter(|r| like(r) > 0.0) {
                        let x = self.row(r.item);
                        for (i, xi) in x.iter().enumerate().take(d) {
                            b[i * m + k] += xi;
                        }
                    }
                }
                let w = solve_ridge_columns(gram, b, m, lambda);
                (0..m)
                    .map(|k| (0..d).map(|i| w[i * m + k]).collect())
                    .collect()
            }
        }
    }

    /// Ridge fit (strength `lambda`) over `(item, weight, target sum)` observations: each adds
    /// `weight · x xᵀ` and `target sum · x` to the normal equations (items out of range skipped).
    fn ridge_fit(
        &self,
        observations: impl Iterator<Item = (u32, f64, f64)>,
        lambda: f64,
    ) -> Vec<f64> {
        let (a, b) = self.normal_equations(observations);
        solve_ridge(a, b, lambda)
    }

    /// `(Σ weight · x xᵀ, Σ target sum · x)` over `(item, weight, target sum)` observations
    /// (items out of range skipped).
    fn normal_equations(
        &self,
        observations: impl Iterator<Item = (u32, f64, f64)>,
    ) -> (Vec<f64>, Vec<f64>) {
        let d = self.dim;
        let mut a = vec![0.0; d * d];
        let mut b = vec![0.0; d];
        for (item, weight, target) in observations {
            let x = self.row(item);
            if x.len() != d {
                continue;
            }
            for i in 0..d {
                b[i] += target * x[i];
                for j in 0..d {
                    a[i * d + j] += weight * x[i] * x[j];
                }
            }
        }
        (a, b)
    }
}

/// LinUCB over item features: score `θ̂ᵀx + α·sqrt(xᵀA⁻¹x)`.
pub struct LinUcb {
    features: Features,
    ridge: Ridge,
    alpha: f64,
}

impl LinUcb {
    /// `prior`: prior mean of the weights; `lambda`: its strength; `alpha`: exploration.
    pub fn new(features: Features, prior: &[f64], lambda: f64, alpha: f64) -> Self {
        LinUcb {
            ridge: Ridge::new(prior, lambda),
            features,
            alpha,
        }
    }
}

impl Recommender for LinUcb {
    fn reset(&mut self, _: u64) {
        self.ridge.reset();
    }
    fn slate(&mut self, candidates: &[u32], k: usize) -> Result<Vec<u32>, EvalError> {
        let theta = self.ridge.mean();
        Ok(top_k(candidates, k, |i| {
            let width = || self.ridge.width(self.features.row(i));
            let score = self.features.score(i, &theta);
            score.map_or(f64::MIN, |m| m + self.alpha * width())
        }))
    }
    fn update(&mut self, item: u32, reward: f32) -> Result<(), EvalError> {
        self.ridge
            .update(self.features.row(item), f64::from(reward));
        Ok(())
    }
}

/// Linear Thompson sampling over item features: each round ranks by `θ̃ᵀx` for one draw
/// `θ̃ ~ N(θ̂, v² A⁻¹)`.
pub struct LinTs {
    features: Features,
    ridge: Ridge,
    scale: f64,
    rng: ChaCha8Rng,
}

impl LinTs {
    /// `prior`, `lambda` as for [`LinUcb`]; `scale`: the posterior scale `v`.
    pub fn new(features: Features, prior: &[f64], lambda: f64, scale: f64) -> Self {
        LinTs {
            ridge: Ridge::new(prior, lambda),
            features,
            scale,
            rng: ChaCha8Rng::seed_from_u64(0),
        }
    }
}

impl Recommender for LinTs {
    fn reset(&mut self, seed: u64) {
        self.ridge.reset();
        self.rng = ChaCha8Rng::seed_from_u64(seed);
    }
    fn slate(&mut self, candidates: &[u32], k: usize) -> Result<Vec<u32>, EvalError> {
        let theta = self.ridge.sample(self.scale, &mut self.rng);
        Ok(top_k(candidates, k, |i| {
            self.features.score(i, &theta).unwrap_or(f64::MIN)
        }))
    }
    fn update(&mut self, item: u32, reward: f32) -> Result<(), EvalError> {
        self.ridge
            .update(self.features.row(item), f64::from(reward));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With one-hot features, the full-catalog prior is each item's like rate among the
    /// training users (unrated = not liked), so it ranks as `pop-likes` does.
    #[test]
    fn catalog_prior_is_the_like_rate() {
        let features = Features::with_bias(&[1.0, 0.0, 0.0, 1.0, 0.0, 0.0], 2);
        // 10 training users: item 0 liked by 6, item 1 by 2, item 2 by none
        let theta = features.fit_catalog_likes(&[6, 2, 0], 10, 1e-9);
        let rate = |i: u32| features.score(i, &theta).unwrap_or(0.0);
        for (item, want) in [(0, 0.6), (1, 0.2), (2, 0.0)] {
            assert!(
                (rate(item) - want).abs() < 1e-6,
                "item {item}: {}",
                rate(item)
            );
        }
    }

    /// Each training user's own fit is the observed prior fit over that user alone, and on the
    /// catalog the users' own fits (strength λ) average to the pooled prior fit (strength
    /// users × λ): the same model, fitted per user.
    #[test]
    fn user_weights_are_the_prior_fit_per_user() {
        let ds = crate::data::WorldConfig::small_dataset(40, 30, 3).unwrap();
        let n = ds.n_items();
        let values: Vec<f32> = (0..n * 3)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 3.0)
            .collect();
        let features = Features::with_bias(&values, 3);
        let users: Vec<u32> = (0..20).collect();
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9);
        let own = features.user_like_weights(&ds, &users, Environment::Observed, 2.0);
        for (&u, w) in users.iter().zip(&own) {
            assert!(close(w, &features.fit_likes(&ds, &[u], 2.0)), "user {u}");
        }
        let own = features.user_like_weights(&ds, &users, Environment::Catalog, 2.0);
        assert_eq!((own.len(), own[0].len()), (20, 4));
        let mean: Vec<f64> = (0..4)
            .map(|i| own.iter().map(|w| w[i]).sum::<f64>() / 20.0)
            .collect();
        let mut likes = vec![0u32; n];
        for &u in &users {
            for r in ds
                .user_ratings(u)
                .iter()
                .filter(|r| r.value >= LIKE_THRESHOLD)
            {
                likes[r.item as usize] += 1;
            }
        }
        assert!(likes.iter().any(|&l| l > 0));
        let pooled = features.fit_catalog_likes(&likes, 20, 40.0);
        assert!(close(&mean, &pooled), "{mean:?} {pooled:?}");
    }

    #[test]
    fn ridge_matches_the_closed_form() {
        // one weight, prior 1 with strength 2; observations (x=1,y=3), (x=2,y=2):
        // θ = (2·1 + 1·3 + 2·2) / (2 + 1 + 4) = 9/7
        let mut r = Ridge::new(&[1.0], 2.0);
        r.update(&[1.0], 3.0);
        r.update(&[2.0], 2.0);
        assert!((r.mean()[0] - 9.0 / 7.0).abs() < 1e-12);
        assert!((r.width(&[1.0]) - (1.0f64 / 7.0).sqrt()).abs() < 1e-12);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert!((r.sample(0.0, &mut rng)[0] - 9.0 / 7.0).abs() < 1e-12);
        r.reset();
        assert_eq!(r.mean(), vec![1.0]);
    }

    /// Three one-hot arms plus a bias column; arm 1 always pays, the others never.
    fn arms() -> Features {
        Features::with_bias(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], 3)
    }

    fn play(rec: &mut dyn Recommender, rounds: usize) -> Vec<u32> {
        rec.reset(7);
        (0..rounds)
            .map(|_| {
                let arm = rec.slate(&[0, 1, 2], 1).unwrap()[0];
                rec.update(arm, f32::from(u8::from(arm == 1))).unwrap();
                arm
            })
            .collect()
    }

    #[test]
    fn linucb_converges_to_the_best_arm() {
        let mut ucb = LinUcb::new(arms(), &[0.0; 4], 1.0, 0.5);
        let picks = play(&mut ucb, 60);
        assert!(
            picks[..10].iter().any(|&a| a != 1),
            "it explores: {picks:?}"
        );
        assert!(picks[40..].iter().all(|&a| a == 1), "{picks:?}");
    }

    #[test]
    fn thompson_sampling_converges_to_the_best_arm() {
        let mut ts = LinTs::new(arms(), &[0.0; 4], 1.0, 0.3);
        let picks = play(&mut ts, 100);
        let best = picks[60..].iter().filter(|&&a| a == 1).count();
        assert!(best >= 38, "{best} of 40: {picks:?}");
    }
}
