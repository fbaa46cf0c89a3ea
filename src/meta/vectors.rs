//! The policy's item vectors (content features, collaborative factors, a prior column) and
//! the parameters a policy over them starts from.

use crate::data::ItemFeatures;
use crate::linalg::Whitening;
use crate::model::ModelConfig;
#[cfg(doc)]
use crate::session::Session;
use serde::{Deserialize, Serialize};

/// Strength (in ratings) of the prior that smooths an item's mean rating towards the global one.
pub const QUALITY_PRIOR: f64 = 10.0;

/// Item vectors for the policy, row-major `items × dim`: the item features plus one "quality"
/// column, the item's mean rating smoothed towards the global mean (a prior of
/// [`QUALITY_PRIOR`] ratings) over `ratings` (the training ratings only); every column
/// standardised (zero mean, unit variance; constant columns become zero).
///
/// [`ItemVectors::with_prior`] appends one more column, a prior score per item (the fine-tuned
/// rating network's prediction for a new user), and a policy over such vectors starts at that
/// prior ([`policy_start`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ItemVectors {
    pub values: Vec<f32>,
    pub dim: usize,
    /// Columns of collaborative factors ([`ItemVectors::with_factors`]), after the features.
    pub factors: usize,
    /// The last column is a prior score ([`ItemVectors::with_prior`]).
    pub prior: bool,
    /// The feature and factor columns are whitened by a prior covariance
    /// ([`ItemVectors::whitened`]).
    pub whitened: bool,
}

impl ItemVectors {
    pub fn new(features: &ItemFeatures, ratings: &[crate::data::Rating]) -> Self {
        let n = features.n_items();
        let d0 = features.layout.dim();
        let global =
            ratings.iter().map(|r| r.value as f64).sum::<f64>() / ratings.len().max(1) as f64;
        let mut sum = vec![0.0f64; n];
        let mut count = vec![0.0f64; n];
        for r in ratings.iter().filter(|r| (r.item as usize) < n) {
            sum[r.item as usize] += r.value as f64;
            count[r.item as usize] += 1.0;
        }
        let dim = d0 + 1;
        let mut values = Vec::with_capacity(n * dim);
        for i in 0..n {
            values.extend(&features.values[i * d0..(i + 1) * d0]);
            values.push(((sum[i] + QUALITY_PRIOR * global) / (count[i] + QUALITY_PRIOR)) as f32);
        }
        for c in 0..dim {
            standardise_column(&mut values, dim, c);
        }
        ItemVectors {
            values,
            dim,
            factors: 0,
            prior: false,
            whitened: false,
        }
    }

    /// These vectors with collaborative item factors appended (`factors`, row-major, `dim`
    /// columns per item, e.g. [`crate::data::like_factors`] of the training users): the block
    /// is scaled as a whole so its columns' mean variance is 1, keeping the leading factors
    /// larger than the trailing ones. Must come before [`ItemVectors::with_prior`].
    pub fn with_factors(self, factors: &[f32], dim: usize) -> Self {
        let n = self.values.len() / self.dim.max(1);
        if dim == 0 || factors.len() != n * dim {
            return self;
        }
        let variance: f64 = (0..dim).map(|c| column_moments(factors, dim, c).1).sum();
        let scale = (variance / dim as f64).sqrt();
        let scale = if scale > 1e-12 { 1.0 / scale } else { 0.0 };
        let width = self.dim + dim;
        let mut values = Vec::with_capacity(n * width);
        for (row, f) in self
            .values
            .chunks_exact(self.dim.max(1))
            .zip(factors.chunks_exact(dim))
        {
            values.extend_from_slice(row);
            values.extend(f.iter().map(|&v| (f64::from(v) * scale) as f32));
        }
        ItemVectors {
            values,
            dim: width,
            factors: self.factors + dim,
            prior: self.prior,
            whitened: self.whitened,
        }
    }

    /// These vectors with `scores` (one per item, e.g. the fine-tuned rating network's
    /// predicted rating for a new user), standardised, appended as the last column.
    pub fn with_prior(self, scores: &[f32]) -> Self {
        let dim = self.dim + 1;
        let mut values = Vec::with_capacity(scores.len() * dim);
        for (row, &v) in self.values.chunks_exact(self.dim.max(1)).zip(scores) {
            values.extend_from_slice(row);
            values.push(v);
        }
        standardise_column(&mut values, dim, dim - 1);
        ItemVectors {
            values,
            dim,
            factors: self.factors,
            prior: true,
            whitened: self.whitened,
        }
    }

    /// Puts these vectors in the coordinates of `whitening` (`e' = Lᵀe`, [`Whitening`]: a
    /// prior covariance of user weights over them, fitted across training users, becomes
    /// isotropic). Must come after [`ItemVectors::with_factors`] and before
    /// [`ItemVectors::with_prior`] (the prior column stays as it is); nothing changes when the
    /// widths differ or there is a prior column already.
    pub fn whiten(&mut self, whitening: &Whitening) {
        if self.prior || whitening.dim() != self.dim {
            return;
        }
        self.values = whitening.vectors(&self.values);
        self.whitened = true;
    }
}

/// What an item vector is made of, recorded with a trained policy so that whoever uses it
/// (the page, a [`Session`]) knows the design meta-training used: `features` content columns
/// (genres, year, popularity, smoothed mean rating and, where embedded, the text), then
/// `factors` collaborative factors, then the prior column when `prior`; the features and
/// factors in whitened coordinates when `whitened`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemVectorParts {
    pub features: usize,
    pub factors: usize,
    pub prior: bool,
    /// The features and factors are whitened by a prior covariance ([`ItemVectors::whitened`]).
    #[serde(default)]
    pub whitened: bool,
}

impl ItemVectors {
    /// The parts of these vectors.
    pub fn parts(&self) -> ItemVectorParts {
        ItemVectorParts {
            features: self.dim - self.factors - usize::from(self.prior),
            factors: self.factors,
            prior: self.prior,
            whitened: self.whitened,
        }
    }
}

/// Collaborative factors in the item vectors of a policy meta-trained on a dataset (and in
/// `metarec eval`'s by default).
pub const DATASET_FACTORS: usize = 32;

/// Standardises column `c` of the row-major `values` (`dim` columns) in place: zero mean, unit
/// variance; a constant column becomes zero.
fn standardise_column(values: &mut [f32], dim: usize, c: usize) {
    let n = values.len() / dim;
    let (mean, variance) = column_moments(values, dim, c);
    let sd = variance.sqrt();
    for i in 0..n {
        let v = &mut values[i * dim + c];
        *v = if sd > 1e-9 {
            ((*v as f64 - mean) / sd) as f32
        } else {
            0.0
        };
    }
}

/// Mean and (population) variance of column `c` of the row-major `values` (`dim` columns).
fn column_moments(values: &[f32], dim: usize, c: usize) -> (f64, f64) {
    let n = (values.len() / dim).max(1) as f64;
    let col = values.iter().skip(c).step_by(dim).map(|&v| f64::from(v));
    let mean = col.clone().sum::<f64>() / n;
    (mean, col.map(|v| (v - mean).powi(2)).sum::<f64>() / n)
}

/// Logit scale of the prior column in a policy's start ([`policy_start`]): the start samples
/// items in proportion to `exp(PRIOR_SCALE × standardised prior / temperature)`.
pub const PRIOR_SCALE: f32 = 2.0;

/// The parameters a policy over `vectors` starts meta-training from. With a prior column the
/// policy starts *at the prior*: the output layer's weights are zero and its bias is
/// [`PRIOR_SCALE`] on the prior column, so every item's logit is `PRIOR_SCALE ×` its prior,
/// whatever the person's context (a network initialised from the fine-tuned rating network:
/// its ranking for a new user); meta-training then learns how the context and the feedback move
/// away from it. Without one, the configured random initialisation.
pub fn policy_start(model: &ModelConfig, vectors: &ItemVectors) -> Vec<f32> {
    let mut params = model.init_params();
    if let (true, Some(last), Some(&offset)) =
        (vectors.prior, model.layers().last(), model.offsets().last())
    {
        let weights = last.inputs * last.outputs;
        params[offset..offset + weights].fill(0.0);
        let bias = &mut params[offset + weights..offset + weights + last.outputs];
        bias.fill(0.0);
        bias[last.outputs - 1] = PRIOR_SCALE;
    }
    params
}

/// A policy start that also reads the feedback summary as a linear bandit's evidence term: on
/// top of [`policy_start`] (the prior), the hidden layers' first `4 × item_dim` units carry the
/// summary's liked and missed sums through unchanged (a ReLU pair `relu(x)`, `relu(−x)` per
/// value) and the output adds `liked ×` the liked sum `− missed ×` the missed sum to the user
/// vector. With a large [`crate::session::AdaptConfig::summary_prior`] κ the sums are divided
/// by about κ, so an item's logit is the prior plus `(liked × Σ_liked e − missed × Σ_missed e)
/// · e_item / κ`: the greedy ranking of a ridge regression of rewards on the item vectors at
/// its first order. Meta-training then learns from there. `None` when a hidden layer has
/// fewer than `4 × item_dim` units.
pub fn feedback_start(
    model: &ModelConfig,
    vectors: &ItemVectors,
    liked: f32,
    missed: f32,
) -> Option<Vec<f32>> {
    let d = vectors.dim;
    let layers = model.layers();
    let offsets = model.offsets();
    let (output, hidden) = layers.split_last()?;
    if hidden.is_empty() || hidden.iter().any(|l| l.outputs < 4 * d) || model.output != d {
        return None;
    }
    let context = model.input.checked_sub(crate::session::summary_width(d))?;
    let mut params = policy_start(model, vectors);
    for (l, (layer, &offset)) in hidden.iter().zip(&offsets).enumerate() {
        for unit in 0..4 * d {
            for i in 0..=layer.inputs {
                params[offset + i * layer.outputs + unit] = 0.0;
            }
            // the first layer splits each summary value into relu(x), relu(−x); later
            // layers pass those units on
            let (input, weight) = match l {
                0 => (context + unit / 2, if unit % 2 == 0 { 1.0 } else { -1.0 }),
                _ => (unit, 1.0),
            };
            params[offset + input * layer.outputs + unit] = weight;
        }
    }
    let o = *offsets.last()?;
    for k in 0..d {
        params[o + (2 * k) * output.outputs + k] = liked;
        params[o + (2 * k + 1) * output.outputs + k] = -liked;
        params[o + (2 * d + 2 * k) * output.outputs + k] = -missed;
        params[o + (2 * d + 2 * k + 1) * output.outputs + k] = missed;
    }
    Some(params)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::engine::cpu::CpuEngine;
    use crate::engine::Engine;
    use crate::meta::{policy_config, PolicyShape};
    use crate::session::{AdaptConfig, Session};
    use pollster::block_on;

    /// Item vectors of three columns for `n` items, spread over −5/3…5/3.
    fn three_columns(n: usize) -> Vec<f32> {
        (0..n * 3)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0)
            .collect()
    }

    /// Greedy ranking of every item by a fresh session, after `likes` reactions of 1.
    fn ranking(model: &ModelConfig, params: &[f32], items: &[f32], likes: &[u32]) -> Vec<u32> {
        let mut engine = CpuEngine::new(model).unwrap();
        engine.set_params(params).unwrap();
        engine.set_items(items).unwrap();
        let mut session = Session::new(model, AdaptConfig::default(), 5);
        for &item in likes {
            block_on(session.feedback(&mut engine, item, 1.0)).unwrap();
        }
        let n = model.items() - likes.len();
        block_on(session.recommend(&mut engine, n, true))
            .unwrap()
            .iter()
            .map(|r| r.item)
            .collect()
    }

    /// Collaborative factors are appended as one block, scaled to a mean column variance of
    /// 1 with their relative sizes kept, before the prior column; the parts add up.
    #[test]
    fn factors_are_one_scaled_block_before_the_prior() {
        let n = 6;
        let plain = ItemVectors {
            values: (0..n * 2).map(|i| i as f32).collect(),
            dim: 2,
            factors: 0,
            prior: false,
            whitened: false,
        };
        // column 0 has 4 times the spread of column 1
        let factors: Vec<f32> = (0..n)
            .flat_map(|i| [4.0 * (i as f32 - 2.5), i as f32 - 2.5])
            .collect();
        let v = plain
            .with_factors(&factors, 2)
            .with_prior(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(v.dim, 5);
        let column = |c: usize| -> Vec<f32> { v.values.chunks(5).map(|r| r[c]).collect() };
        let var = |c: usize| column(c).iter().map(|x| x * x).sum::<f32>() / n as f32;
        assert!(((var(2) + var(3)) / 2.0 - 1.0).abs() < 1e-5);
        assert!((var(2) / var(3) - 16.0).abs() < 1e-3);
        assert_eq!(column(0), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(
            v.parts(),
            ItemVectorParts {
                features: 2,
                factors: 2,
                prior: true,
                whitened: false
            }
        );
    }

    #[test]
    fn a_policy_over_a_prior_starts_at_the_prior_whatever_the_person_did() {
        let n = 40;
        let values = three_columns(n);
        let scores: Vec<f32> = (0..n).map(|i| ((i * 13 % 40) as f32) * 0.1 + 1.0).collect();
        let plain = ItemVectors {
            values: values.clone(),
            dim: 3,
            factors: 0,
            prior: false,
            whitened: false,
        };
        let vectors = plain.clone().with_prior(&scores);
        assert_eq!(vectors.dim, 4);
        let column: Vec<f32> = vectors.values.chunks(4).map(|r| r[3]).collect();
        let mean = column.iter().sum::<f32>() / n as f32;
        let var = column.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n as f32;
        assert!(
            mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
            "{mean} {var}"
        );
        for (row, old) in vectors.values.chunks(4).zip(values.chunks(3)) {
            assert_eq!(&row[..3], old, "the other columns are kept");
        }

        let mut by_prior: Vec<u32> = (0..n as u32).collect();
        by_prior.sort_by(|&a, &b| scores[b as usize].total_cmp(&scores[a as usize]));
        let model = policy_config(&PolicyShape::default(), n, vectors.dim, 8);
        let start = policy_start(&model, &vectors);
        assert_eq!(ranking(&model, &start, &vectors.values, &[]), by_prior);
        // reactions change the context and the feedback summary, not the start's ranking
        let likes = [by_prior[30], by_prior[35]];
        let rest: Vec<u32> = by_prior
            .iter()
            .copied()
            .filter(|i| !likes.contains(i))
            .collect();
        assert_eq!(ranking(&model, &start, &vectors.values, &likes), rest);
        // without a prior the start is the random initialisation, which ranks otherwise
        let plain_model = policy_config(&PolicyShape::default(), n, plain.dim, 8);
        let random = policy_start(&plain_model, &plain);
        assert_eq!(random, plain_model.init_params());
        assert_ne!(ranking(&plain_model, &random, &plain.values, &[]), by_prior);
    }

    /// The feedback start scores every item by the prior plus (liked × Σ_liked e −
    /// missed × Σ_missed e) · e / (reactions + κ), after any reactions.
    #[test]
    fn a_feedback_start_scores_the_prior_plus_the_summary_read_linearly() {
        let n = 30;
        let values = three_columns(n);
        let scores: Vec<f32> = (0..n).map(|i| ((i * 13 % 30) as f32) * 0.1).collect();
        let vectors = ItemVectors {
            values,
            dim: 3,
            factors: 0,
            prior: false,
            whitened: false,
        }
        .with_prior(&scores);
        let d = vectors.dim;
        let shape = PolicyShape {
            context: 4,
            hidden: vec![4 * d, 4 * d + 3],
        };
        let model = policy_config(&shape, n, d, 8);
        let (liked, missed) = (1.5, 0.5);
        let start = feedback_start(&model, &vectors, liked, missed).unwrap();
        let config = AdaptConfig {
            summary_prior: 7.0,
            ..AdaptConfig::default()
        };
        let mut engine = CpuEngine::new(&model).unwrap();
        engine.set_params(&start).unwrap();
        engine.set_items(&vectors.values).unwrap();
        let mut session = Session::new(&model, config, 3);
        let reactions = [(4u32, 1.0f32), (9, 0.0), (17, 1.0)];
        for &(item, reward) in &reactions {
            block_on(session.feedback(&mut engine, item, reward)).unwrap();
        }
        let got = block_on(engine.scores(&session.input())).unwrap();
        let e = |i: u32| &vectors.values[i as usize * d..(i as usize + 1) * d];
        let mut user = vec![0.0f32; d];
        user[d - 1] = PRIOR_SCALE;
        let scale = 1.0 / (reactions.len() as f32 + 7.0);
        for &(item, reward) in &reactions {
            let w = if reward > 0.5 { liked } else { -missed };
            for (u, v) in user.iter_mut().zip(e(item)) {
                *u += w * v * scale;
            }
        }
        for (j, &g) in got.iter().enumerate() {
            let want: f32 = user.iter().zip(e(j as u32)).map(|(u, v)| u * v).sum();
            assert!((g - want).abs() < 1e-4, "item {j}: {g} vs {want}");
        }
        let narrow = PolicyShape {
            context: 4,
            hidden: vec![4 * d, 4 * d - 1],
        };
        let narrow = policy_config(&narrow, n, d, 8);
        assert_eq!(feedback_start(&narrow, &vectors, liked, missed), None);
    }
}
