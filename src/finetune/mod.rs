//! Stage 1 of training: supervised fine-tuning of the rating network.
//!
//! The network maps `[user embedding, item embedding, their element-wise product, user bias,
//! item bias, item features]` to a rating: an MLP with ReLU hidden layers and one sigmoid unit
//! scaled to the dataset's rating range ([`Head::Regression`]). The MLP is trained by the engine
//! (MSE, Adam with decoupled weight decay); the embeddings and biases live in the input, are
//! updated on the host from the engine's gradient w.r.t. the input
//! ([`Engine::train_with_input_gradient`]) by sparse Adam with L2, only for the users and items
//! in each batch. Item features ([`ItemFeatures`]) count popularity on training ratings only.
//!
//! Ratings are split at random by the seed: 80/20 train/test, then a validation slice of the
//! training ratings; training stops early when the validation RMSE has not improved for
//! `patience` epochs, and the best epoch's parameters are restored before the test ratings are
//! scored. The test ratings are never seen before that.

use crate::data::{DataError, Dataset, ItemFeatures};
use crate::engine::{EngineError, EngineInfo};
use crate::model::{Activation, Head, Init, ModelConfig};
use serde::{Deserialize, Serialize};

mod fit;
mod tables;
mod train;

pub use fit::SupervisedFit;
pub use train::finetune;

/// Hyper-parameters of [`finetune`]. The defaults were chosen on the validation slice of
/// MovieLens 100K (never on its test ratings).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FinetuneConfig {
    /// Seed of the splits, the initialisation and the batch order: same seed, same result.
    pub seed: u64,
    /// Share of all ratings held out for the test figures.
    pub test_fraction: f64,
    /// Share of the training ratings used for early stopping.
    pub validation_fraction: f64,
    /// Width of the user and item embeddings.
    pub embedding_dim: usize,
    /// Feed the element-wise product of the user and item embeddings to the MLP too.
    pub product: bool,
    /// Per-user and per-item biases (1-dim embeddings) in the input.
    pub biases: bool,
    /// Item features (genres, year, popularity) in the input.
    pub features: bool,
    /// Hidden layer widths (ReLU).
    pub hidden: Vec<usize>,
    /// Ratings per training step.
    pub batch_size: usize,
    /// Upper bound on passes over the training ratings.
    pub max_epochs: usize,
    /// Stop after this many epochs without a better validation RMSE.
    pub patience: usize,
    /// Adam step size of the MLP.
    pub lr: f32,
    /// Decoupled weight decay of the MLP.
    pub weight_decay: f32,
    /// Adam step size of the embeddings and biases.
    pub embedding_lr: f32,
    /// L2 penalty on the embeddings and biases, per occurrence in a batch.
    pub embedding_l2: f32,
    /// Embeddings start uniform with this standard deviation.
    pub init_std: f32,
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        FinetuneConfig {
            seed: 1,
            test_fraction: 0.2,
            validation_fraction: 0.1,
            embedding_dim: 128,
            product: true,
            biases: true,
            features: true,
            hidden: vec![64, 32],
            batch_size: 256,
            max_epochs: 40,
            patience: 3,
            lr: 1e-3,
            weight_decay: 1e-4,
            embedding_lr: 1e-3,
            embedding_l2: 2.0,
            init_std: 0.1,
        }
    }
}

/// Everything that can stop [`finetune`].
#[derive(Debug, thiserror::Error)]
pub enum FinetuneError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("invalid fine-tuning configuration: {0}")]
    Config(String),
    #[error("dataset too small to split: {0}")]
    TooSmall(String),
    #[error("training diverged: {0}")]
    Diverged(String),
}

/// Figures of one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based.
    pub epoch: usize,
    /// Mean training MSE over the epoch's steps (steps that were skipped excluded).
    pub train_loss: f64,
    /// RMSE on the validation slice after the epoch.
    pub validation_rmse: f64,
    /// Steps skipped because the loss or a gradient was not finite.
    pub skipped_steps: usize,
    /// Wall-clock seconds of the epoch, validation included.
    pub seconds: f64,
}

/// How many ratings each part has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatingCounts {
    pub train: usize,
    pub validation: usize,
    pub test: usize,
}

/// The outcome of [`finetune`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinetuneReport {
    pub config: FinetuneConfig,
    /// What the MLP ran on.
    pub engine: EngineInfo,
    /// The network's description (input width follows the dataset's features).
    pub model: ModelConfig,
    pub ratings: RatingCounts,
    /// One entry per epoch run.
    pub history: Vec<EpochStats>,
    /// The epoch whose parameters were kept (1-based).
    pub best_epoch: usize,
    pub validation_rmse: f64,
    pub test_rmse: f64,
    pub test_mae: f64,
    /// RMSE on the test ratings of always predicting the training mean.
    pub baseline_test_rmse: f64,
    /// Steps skipped over the whole run (non-finite loss or gradient).
    pub skipped_steps: usize,
    pub seconds: f64,
}

/// What [`finetune`] reports while it runs.
#[derive(Clone, Copy, Debug)]
pub enum Progress<'a> {
    /// Training starts: at most `epochs` epochs of `batches` steps each.
    Start { epochs: usize, batches: usize },
    /// A step of epoch `epoch` (1-based) finished; `batch` steps of it are done.
    Step { epoch: usize, batch: usize },
    /// An epoch finished.
    Epoch(&'a EpochStats),
}

/// A trained model: the MLP parameters and the tables that make its input.
#[derive(Clone, Debug, PartialEq)]
pub struct Finetuned {
    pub report: FinetuneReport,
    /// Flat MLP parameters ([`ModelConfig::offsets`] layout).
    pub params: Vec<f32>,
    /// `users × embedding_dim`.
    pub user_embeddings: Vec<f32>,
    /// `items × embedding_dim`.
    pub item_embeddings: Vec<f32>,
    /// One per user (zeros when biases are off).
    pub user_bias: Vec<f32>,
    /// One per item (zeros when biases are off).
    pub item_bias: Vec<f32>,
    /// The item feature matrix the model was trained with.
    pub features: ItemFeatures,
}

impl Finetuned {
    /// Named tensors (name, shape, values) for a bundle's safetensors weights.
    pub fn tensors(&self) -> Vec<(&'static str, Vec<usize>, &[f32])> {
        let d = self.report.config.embedding_dim;
        vec![
            ("params", vec![self.params.len()], &self.params[..]),
            (
                "user_embeddings",
                vec![self.user_bias.len(), d],
                &self.user_embeddings[..],
            ),
            (
                "item_embeddings",
                vec![self.item_bias.len(), d],
                &self.item_embeddings[..],
            ),
            ("user_bias", vec![self.user_bias.len()], &self.user_bias[..]),
            ("item_bias", vec![self.item_bias.len()], &self.item_bias[..]),
        ]
    }
}

impl FinetuneConfig {
    /// Input width for item features of `feature_dim` columns.
    pub fn input_width(&self, feature_dim: usize) -> usize {
        let d = self.embedding_dim;
        2 * d
            + if self.product { d } else { 0 }
            + if self.biases { 2 } else { 0 }
            + if self.features { feature_dim } else { 0 }
    }

    /// The network [`finetune`] trains on `dataset`: create the engine from this.
    pub fn model(&self, dataset: &Dataset) -> ModelConfig {
        let feature_dim =
            crate::data::features::FeatureLayout::new(dataset.catalog.genres.len(), 0).dim();
        ModelConfig {
            input: self.input_width(feature_dim),
            hidden: self.hidden.clone(),
            output: 1,
            hidden_activation: Activation::Relu,
            output_activation: Activation::Sigmoid,
            head: Head::Regression {
                low: dataset.scale.min,
                high: dataset.scale.max,
            },
            init: Init::He,
            seed: self.seed,
            max_rows: self.batch_size.max(1),
        }
    }

    /// Appends the network input of one (user, item) pair: `user` and `item` are (embedding,
    /// bias), `features` the item's feature row.
    pub fn write_input(
        &self,
        (p, user_bias): (&[f32], f32),
        (q, item_bias): (&[f32], f32),
        features: &[f32],
        out: &mut Vec<f32>,
    ) {
        out.extend_from_slice(p);
        out.extend_from_slice(q);
        if self.product {
            out.extend(p.iter().zip(q).map(|(a, b)| a * b));
        }
        if self.biases {
            out.push(user_bias);
            out.push(item_bias);
        }
        if self.features {
            out.extend_from_slice(features);
        }
    }

    /// The gradient w.r.t. the user's embedding and bias from `g`, the gradient w.r.t. one
    /// input row of [`FinetuneConfig::write_input`] whose item embedding was `q`.
    pub fn user_gradient(&self, g: &[f32], q: &[f32]) -> (Vec<f32>, f32) {
        self.side_gradient(g, q, 0)
    }

    /// [`FinetuneConfig::user_gradient`] for side 0 (user) or 1 (item); `other` is the other
    /// side's embedding.
    fn side_gradient(&self, g: &[f32], other: &[f32], side: usize) -> (Vec<f32>, f32) {
        let d = self.embedding_dim;
        let mut own = g[side * d..(side + 1) * d].to_vec();
        let mut at = 2 * d;
        if self.product {
            for ((a, x), o) in own.iter_mut().zip(&g[at..at + d]).zip(other) {
                *a += x * o;
            }
            at += d;
        }
        (own, if self.biases { g[at + side] } else { 0.0 })
    }

    fn validate(&self) -> Result<(), FinetuneError> {
        let bad = |m: &str| Err(FinetuneError::Config(m.into()));
        let frac = |f: f64| f.is_finite() && f > 0.0 && f < 1.0;
        if !frac(self.test_fraction) || !frac(self.validation_fraction) {
            return bad("test and validation fractions must be strictly between 0 and 1");
        }
        if self.embedding_dim == 0 || self.batch_size == 0 || self.max_epochs == 0 {
            return bad("embedding_dim, batch_size and max_epochs must be at least 1");
        }
        let rates = [
            self.lr,
            self.weight_decay,
            self.embedding_lr,
            self.embedding_l2,
            self.init_std,
        ];
        if rates.iter().any(|x| !x.is_finite() || *x < 0.0) || self.lr == 0.0 {
            return bad("learning rates, penalties and init_std must be finite and non-negative (lr positive)");
        }
        Ok(())
    }
}
