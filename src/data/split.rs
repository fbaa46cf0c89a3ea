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

/// Indices into a rating list, split into train and test; each list is sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatingSplit {
    /// Training rating indices.
    pub train: Vec<usize>,
    /// Test rating indices.
    pub test: Vec<usize>,
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
    let n_train = share(n_users, fractions.train);
    let n_val = share(n_users, fractions.validation).min(n_users - n_train);
    let ([train, validation], cold_start) =
        shuffled_parts((0..n).collect(), seed, [n_train, n_val]);
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
    check_fraction("support", support_fraction)?;
    let ratings = dataset.user_ratings(user);
    Ok(ratings.split_at(share(ratings.len(), support_fraction)))
}

/// Splits rating indices `0..n_ratings` at random by `seed`, `round(test_fraction * n)` to
/// test (the default use is 0.2 for an 80/20 RMSE split).
pub fn split_ratings(
    n_ratings: usize,
    test_fraction: f64,
    seed: u64,
) -> Result<RatingSplit, DataError> {
    check_fraction("test", test_fraction)?;
    let n_test = share(n_ratings, test_fraction);
    let ([test], train) = shuffled_parts((0..n_ratings).collect(), seed, [n_test]);
    Ok(RatingSplit { train, test })
}

/// `round(fraction * n)`, at most `n`.
fn share(n: usize, fraction: f64) -> usize {
    ((n as f64 * fraction).round() as usize).min(n)
}

/// An error unless the `what` fraction is within 0..=1.
fn check_fraction(what: &str, fraction: f64) -> Result<(), DataError> {
    if (0.0..=1.0).contains(&fraction) {
        Ok(())
    } else {
        Err(DataError::Argument(format!(
            "{what} fraction {fraction} is outside 0..=1"
        )))
    }
}

/// `items` shuffled by `seed` and cut into parts of `sizes` in order, and the rest; each part
/// sorted.
fn shuffled_parts<T: Ord, const N: usize>(
    mut items: Vec<T>,
    seed: u64,
    sizes: [usize; N],
) -> ([Vec<T>; N], Vec<T>) {
    items.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let parts = sizes.map(|size| {
        let rest = items.split_off(size);
        let mut part = std::mem::replace(&mut items, rest);
        part.sort_unstable();
        part
    });
    items.sort_unstable();
    (parts, items)
}
