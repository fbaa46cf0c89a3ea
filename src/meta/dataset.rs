//! Meta-training on a dataset's training users (observed-only episodes): the user split, the
//! policy's item vectors (content features, collaborative factors and the fine-tuned rating
//! network's prediction for a new user as a prior column) and its start, and the users of each
//! meta-iteration. `metarec train --stages meta` and the Python package both start here.

use super::{ItemVectors, MetaConfig, ObservedSetup, PolicyShape, DATASET_FACTORS};
use crate::data::{
    split_users, Dataset, ObservedTask, Rating, RewardMode, SplitFractions, UserSplit,
};
use crate::engine::cpu::ready;
use crate::eval::EvalError;
use crate::finetune::{FinetuneConfig, SupervisedFit};
use crate::model::ModelConfig;

/// What meta-training on a dataset starts from.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetSetup {
    /// The users split by the seed (70 / 10 / 20); meta-training sees `split.train` only.
    pub split: UserSplit,
    /// The training users' ratings.
    pub train_ratings: Vec<Rating>,
    pub vectors: ItemVectors,
    pub model: ModelConfig,
    /// The policy's start: it ranks as the fine-tuned rating network does for a new user.
    pub start: Vec<f32>,
}

impl DatasetSetup {
    /// Splits the users of `dataset` by `seed`, fine-tunes the rating network on the training
    /// users' ratings (`finetune`, its seed set to `seed`) and builds the policy of `shape` over
    /// the item vectors, sized for `cfg`'s batches.
    pub fn new(
        dataset: &Dataset,
        seed: u64,
        finetune: &FinetuneConfig,
        shape: &PolicyShape,
        cfg: &MetaConfig,
    ) -> Result<Self, EvalError> {
        let split = split_users(dataset.n_users(), SplitFractions::default(), seed)
            .map_err(|e| EvalError(e.to_string()))?;
        if split.train.is_empty() {
            return Err(EvalError("too few users to split".into()));
        }
        let finetune = FinetuneConfig {
            seed,
            ..finetune.clone()
        };
        let error = |e: &dyn std::fmt::Display| EvalError(e.to_string());
        let fit = ready(SupervisedFit::new(dataset, &split.train, &finetune))
            .map_err(|e| error(&e))?
            .map_err(|e| error(&e))?;
        let prior = ready(fit.new_user_ratings())
            .map_err(|e| error(&e))?
            .map_err(|e| error(&e))?;
        let observed = ObservedSetup::new(dataset, split.train.clone(), DATASET_FACTORS, seed)
            .with_prior(&prior);
        let model = observed.model(shape, cfg);
        Ok(DatasetSetup {
            start: observed.start(&model),
            split,
            train_ratings: observed.train_ratings,
            vectors: observed.vectors,
            model,
        })
    }

    /// The episodes of meta-iteration `iteration`: the training users cycled in order,
    /// `cfg.users_per_iteration` at a time.
    pub fn tasks(
        &self,
        dataset: &Dataset,
        cfg: &MetaConfig,
        iteration: usize,
    ) -> Vec<ObservedTask> {
        iteration_users(&self.split.train, cfg, iteration)
            .into_iter()
            .map(|(_, u)| ObservedTask::for_user(dataset, u, RewardMode::default(), cfg.rounds))
            .collect()
    }
}

/// The users of meta-iteration `iteration` as (slot, user): slot k holds
/// `users[(iteration · cfg.users_per_iteration + k) mod users.len()]`.
pub fn iteration_users(users: &[u32], cfg: &MetaConfig, iteration: usize) -> Vec<(usize, u32)> {
    if users.is_empty() {
        return Vec::new();
    }
    (0..cfg.users_per_iteration)
        .map(|k| {
            (
                k,
                users[(iteration * cfg.users_per_iteration + k) % users.len()],
            )
        })
        .collect()
}

/// The part of meta-iteration `iteration`'s users held by client `client` of `clients` when
/// the users are dealt out round-robin (client c holds `users[i]` for every i ≡ c mod
/// `clients`): the (slot, user) pairs of [`iteration_users`] whose position is the client's.
/// Over all clients these are exactly the centralised iteration's slots.
pub fn shard_users(
    users: &[u32],
    clients: usize,
    client: usize,
    cfg: &MetaConfig,
    iteration: usize,
) -> Vec<(usize, u32)> {
    if users.is_empty() || clients == 0 {
        return Vec::new();
    }
    (0..cfg.users_per_iteration)
        .map(|k| (k, (iteration * cfg.users_per_iteration + k) % users.len()))
        .filter(|&(_, i)| i % clients == client)
        .map(|(k, i)| (k, users[i]))
        .collect()
}
