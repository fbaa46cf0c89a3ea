//! Deterministic splits: users into train / validation / cold-start, each user's ratings into
//! support / query by time, and ratings into train / test at random (for RMSE).
use super::dataset::{Dataset, Rating};
use super::error::DataError;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Shares of users in each part of a [`UserSplit`]; they must be non-negative and sum to 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitFractions {
    /// Share of training users.
    pub train: f64,
    /// Share of validation users.
    pub validation: f64,
    /// Share of held-out cold-start users.
    pub cold_start: f64,
}

impl Default for SplitFractions {
    /// 70 / 10 / 20.
    fn default() -> Self {
        SplitFractions {
            train: 0.7,
            validation: 0.1,
            cold_start: 0.2,
        }
    }
}

/// A partition of dense user indices; each list is sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSplit {
    /// Users the model trains on.
    pub train: Vec<u32>,
    /// Users for model selection.
    pub validation: Vec<u32>,
    /// Held-out users, never seen in training (cold start).
    pub cold_start: Vec<u32>,
}

/// Splits users `0..n_users` at random by `seed`. Part sizes are the rounded shares of
/// `n_users` (validation rounded, cold start takes the rest), so they always add up.
pub fn split_users(
    n_users: usize,
    fractions: SplitFractions,
    seed: u64,
) -> Result<UserSplit, DataError> {
    let f = [fractions.train, fractions.validation, fractions.cold_start];
    if f.iter().any(|x| !x.is_finite() || *x < 0.0) || (f.iter().sum::<f64>() - 1.0).abs() > 1e-6 {
        return Err(DataError::Argument(format!(
            "split fractions {f:?} must be non-negative and sum to 1"
        )));
    }
    let n =
        u32::try_from(n_users).map_err(|_| DataError::Argument("more than 2^32 users".into()))?;
    let mut users: Vec<u32> = (0..n).collect();
    users.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n_train = ((n_users as f64 * fractions.train).round() as usize).min(n_users);
    let n_val = ((n_users as f64 * fractions.validation).round() as usize).min(n_users - n_train);
    let mut cold_start = users.split_off(n_train + n_val);
    let mut validation = users.split_off(n_train);
    let mut train = users;
    train.sort_unstable();
    validation.sort_unstable();
    cold_start.sort_unstable();
    Ok(UserSplit {
        train,
        validation,
        cold_start,
    })
}

/// Splits one user's ratings by time: the earliest `round(support_fraction * n)` are the
/// support set (what the learner adapts on), the rest the query set. Uses the dataset's time
/// order ([`Dataset::user_ratings`]).
pub fn support_query(
    dataset: &Dataset,
    user: u32,
    support_fraction: f64,
) -> Result<(&[Rating], &[Rating]), DataError> {
    if !(0.0..=1.0).contains(&support_fraction) {
        return Err(DataError::Argument(format!(
            "support fraction {support_fraction} is outside 0..=1"
        )));
    }
    let ratings = dataset.user_ratings(user);
    let k = ((ratings.len() as f64 * support_fraction).round() as usize).min(ratings.len());
    Ok(ratings.split_at(k))
}

/// Indices into a rating list, split into train and test; each list is sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatingSplit {
    /// Training rating indices.
    pub train: Vec<usize>,
    /// Test rating indices.
    pub test: Vec<usize>,
}

/// Splits rating indices `0..n_ratings` at random by `seed`, `round(test_fraction * n)` to
/// test (the default use is 0.2 for an 80/20 RMSE split).
pub fn split_ratings(
    n_ratings: usize,
    test_fraction: f64,
    seed: u64,
) -> Result<RatingSplit, DataError> {
    if !(0.0..=1.0).contains(&test_fraction) {
        return Err(DataError::Argument(format!(
            "test fraction {test_fraction} is outside 0..=1"
        )));
    }
    let mut idx: Vec<usize> = (0..n_ratings).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n_test = ((n_ratings as f64 * test_fraction).round() as usize).min(n_ratings);
    let mut train = idx.split_off(n_test);
    let mut test = idx;
    train.sort_unstable();
    test.sort_unstable();
    Ok(RatingSplit { train, test })
}
