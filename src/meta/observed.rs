//! A dataset's training users set up for meta-training (observed-only or full-catalog
//! episodes), next to [`super::SyntheticSetup`].

use super::{iteration_users, policy_config, policy_start, ItemVectors, MetaConfig, PolicyShape};
use crate::data::{
    like_factors, Dataset, Environment, ItemFeatures, ObservedTask, Rating, RewardMode,
};
use crate::model::ModelConfig;

/// The training users of a dataset, their ratings, and the item vectors a policy meta-trained
/// on them sees (content features and collaborative factors of those users, and optionally a
/// prior column: [`ItemVectors`]), built from the training users' ratings only.
#[derive(Clone)]
pub struct ObservedSetup<'a> {
    pub dataset: &'a Dataset,
    pub train: Vec<u32>,
    pub train_ratings: Vec<Rating>,
    pub vectors: ItemVectors,
}

impl<'a> ObservedSetup<'a> {
    /// Item vectors of content features and `factors` collaborative factors (seeded by `seed`)
    /// of the `train` users (dense indices) of `dataset`.
    pub fn new(dataset: &'a Dataset, train: Vec<u32>, factors: usize, seed: u64) -> Self {
        let train_ratings: Vec<Rating> = train
            .iter()
            .flat_map(|&u| dataset.user_ratings(u))
            .copied()
            .collect();
        let features = ItemFeatures::build(&dataset.catalog, &train_ratings);
        let vectors = ItemVectors::new(&features, &train_ratings)
            .with_factors(&like_factors(dataset, &train, factors, seed), factors);
        ObservedSetup {
            dataset,
            train,
            train_ratings,
            vectors,
        }
    }

    /// This setup with the prior column `scores` (the bar's ranking for a new user) in the item
    /// vectors: the policy starts at that ranking ([`policy_start`]).
    pub fn with_prior(self, scores: &[f32]) -> Self {
        ObservedSetup {
            vectors: self.vectors.with_prior(scores),
            ..self
        }
    }

    /// The policy's model description.
    pub fn model(&self, shape: &PolicyShape, cfg: &MetaConfig) -> ModelConfig {
        policy_config(shape, self.dataset.n_items(), self.vectors.dim, cfg.rows())
    }

    /// The policy's start for `model` (from [`ObservedSetup::model`]).
    pub fn start(&self, model: &ModelConfig) -> Vec<f32> {
        policy_start(model, &self.vectors)
    }

    /// The tasks of meta-iteration `iteration` in `env`: consecutive training users, wrapping
    /// around.
    pub fn tasks(&self, cfg: &MetaConfig, iteration: usize, env: Environment) -> Vec<ObservedTask> {
        iteration_users(&self.train, cfg, iteration)
            .into_iter()
            .map(|(_, u)| env.task(self.dataset, u, RewardMode::default(), cfg.rounds))
            .collect()
    }
}
