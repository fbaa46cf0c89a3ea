//! A biased latent-factor model (matrix factorisation fitted by SGD), the reward model of the
//! simulated environment.
//!
//! Known bias, by construction: it is fitted to *observed* ratings, which are missing not at
//! random (people rate what they chose to watch, mostly things they like). Extrapolated to the
//! whole catalog it predicts ratings near the observed mean for items a user would never have
//! picked, so simulated users like arbitrary catalog items more than real ones would.
//! [`FitReport::mean_prediction_all`] against [`FitReport::mean_observed`] shows the effect's
//! size; [`FitReport::test_rmse`] is the model's error on held-out ratings.
use super::dataset::{Dataset, Rating};
use super::error::DataError;
use super::sampling::normal;
use super::split::split_ratings;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Hyper-parameters of [`LatentFactorModel::fit`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitConfig {
    /// Latent dimensions.
    pub dim: usize,
    /// Passes over the training ratings.
    pub epochs: usize,
    /// SGD step size.
    pub learning_rate: f32,
    /// L2 regularisation.
    pub regularization: f32,
    /// Share of ratings held out to measure the fit.
    pub test_fraction: f64,
    /// Seed of initialisation, shuffling and the held-out split.
    pub seed: u64,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            dim: 16,
            epochs: 25,
            learning_rate: 0.01,
            regularization: 0.05,
            test_fraction: 0.1,
            seed: 0,
        }
    }
}

/// How well the model fits, and how biased it is (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct FitReport {
    /// RMSE on the training ratings.
    pub train_rmse: f64,
    /// RMSE on the held-out ratings.
    pub test_rmse: f64,
    /// Mean observed rating.
    pub mean_observed: f64,
    /// Mean prediction over random (user, item) pairs of the whole catalog.
    pub mean_prediction_all: f64,
}

/// rating(u, i) ≈ mean + b_u + b_i + p_u · q_i, clamped to the dataset's scale.
#[derive(Debug, Clone, PartialEq)]
pub struct LatentFactorModel {
    dim: usize,
    mean: f32,
    user_bias: Vec<f32>,
    item_bias: Vec<f32>,
    user_factors: Vec<f32>,
    item_factors: Vec<f32>,
    min: f32,
    max: f32,
    /// Fit quality and bias figures.
    pub report: FitReport,
}

impl LatentFactorModel {
    /// Fits the model to `dataset` by SGD on a `1 - test_fraction` random share of the ratings.
    pub fn fit(dataset: &Dataset, config: FitConfig) -> Result<Self, DataError> {
        if config.dim == 0 || !config.learning_rate.is_finite() || dataset.ratings.is_empty() {
            return Err(DataError::Argument(
                "latent-factor fit needs dim > 0, a finite learning rate and some ratings".into(),
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let split = split_ratings(dataset.ratings.len(), config.test_fraction, config.seed)?;
        let train: Vec<Rating> = split.train.iter().map(|&i| dataset.ratings[i]).collect();
        let test: Vec<Rating> = split.test.iter().map(|&i| dataset.ratings[i]).collect();
        let k = config.dim;
        let init = |n: usize, rng: &mut ChaCha8Rng| -> Vec<f32> {
            (0..n * k).map(|_| 0.1 * normal(rng) as f32).collect()
        };
        let mean_observed = dataset
            .ratings
            .iter()
            .map(|r| f64::from(r.value))
            .sum::<f64>()
            / dataset.ratings.len() as f64;
        let base = if train.is_empty() {
            mean_observed as f32
        } else {
            (train.iter().map(|r| f64::from(r.value)).sum::<f64>() / train.len() as f64) as f32
        };
        let mut m = LatentFactorModel {
            dim: k,
            mean: base,
            user_bias: vec![0.0; dataset.n_users()],
            item_bias: vec![0.0; dataset.n_items()],
            user_factors: init(dataset.n_users(), &mut rng),
            item_factors: init(dataset.n_items(), &mut rng),
            min: dataset.scale.min,
            max: dataset.scale.max,
            report: FitReport {
                train_rmse: 0.0,
                test_rmse: 0.0,
                mean_observed,
                mean_prediction_all: 0.0,
            },
        };
        let (lr, reg) = (config.learning_rate, config.regularization);
        let mut order: Vec<usize> = (0..train.len()).collect();
        for _ in 0..config.epochs {
            rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut rng);
            for &t in &order {
                let r = train[t];
                let (u, i) = (r.user as usize, r.item as usize);
                let e = r.value - m.raw(u, i);
                m.user_bias[u] += lr * (e - reg * m.user_bias[u]);
                m.item_bias[i] += lr * (e - reg * m.item_bias[i]);
                for d in 0..k {
                    let pu = m.user_factors[u * k + d];
                    let qi = m.item_factors[i * k + d];
                    m.user_factors[u * k + d] += lr * (e * qi - reg * pu);
                    m.item_factors[i * k + d] += lr * (e * pu - reg * qi);
                }
            }
        }
        m.report.train_rmse = m.rmse(&train);
        m.report.test_rmse = m.rmse(&test);
        let pairs = 20_000;
        let sum: f64 = (0..pairs)
            .map(|_| {
                let u = rng.random_range(0..dataset.n_users()) as u32;
                let i = rng.random_range(0..dataset.n_items()) as u32;
                f64::from(m.predict(u, i))
            })
            .sum();
        m.report.mean_prediction_all = sum / f64::from(pairs);
        Ok(m)
    }

    fn raw(&self, u: usize, i: usize) -> f32 {
        let k = self.dim;
        let dot: f32 = (0..k)
            .map(|d| self.user_factors[u * k + d] * self.item_factors[i * k + d])
            .sum();
        self.mean + self.user_bias[u] + self.item_bias[i] + dot
    }

    /// Predicted rating of dense `user` for dense `item`, clamped to the scale; the global
    /// mean for out-of-range indices.
    pub fn predict(&self, user: u32, item: u32) -> f32 {
        let (u, i) = (user as usize, item as usize);
        if u >= self.user_bias.len() || i >= self.item_bias.len() {
            return self.mean.clamp(self.min, self.max);
        }
        self.raw(u, i).clamp(self.min, self.max)
    }

    /// Root mean squared error of the (clamped) predictions on `ratings`.
    pub fn rmse(&self, ratings: &[Rating]) -> f64 {
        if ratings.is_empty() {
            return 0.0;
        }
        let se: f64 = ratings
            .iter()
            .map(|r| f64::from(self.predict(r.user, r.item) - r.value).powi(2))
            .sum();
        (se / ratings.len() as f64).sqrt()
    }

    /// The bias and latent factors of dense `item` (`None` when out of range).
    pub fn item_vector(&self, item: u32) -> Option<(f32, &[f32])> {
        let i = item as usize;
        let bias = *self.item_bias.get(i)?;
        let factors = self.item_factors.get(i * self.dim..(i + 1) * self.dim)?;
        Some((bias, factors))
    }

    /// Number of items the model knows.
    pub fn n_items(&self) -> usize {
        self.item_bias.len()
    }

    /// The rating scale predictions are clamped to, as (min, max).
    pub fn scale(&self) -> (f32, f32) {
        (self.min, self.max)
    }
}
