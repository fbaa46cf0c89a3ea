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

use crate::clock::now_ms;
use crate::data::{split_ratings, DataError, Dataset, ItemFeatures, Rating};
use crate::engine::{Adam, Batch, Engine, EngineError, EngineInfo, Loss, Row};
use crate::model::{Activation, Head, Init, ModelConfig};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

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

/// A table of rows updated by sparse Adam: only rows with a gradient in a step move.
#[derive(Clone)]
struct Table {
    dim: usize,
    values: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    grad: Vec<f32>,
    touched: Vec<u32>,
    seen: Vec<bool>,
    step: i32,
}

impl Table {
    fn new(rows: usize, dim: usize, std: f32, rng: &mut ChaCha8Rng) -> Self {
        let half = std * 3f32.sqrt();
        let values = (0..rows * dim)
            .map(|_| {
                if half > 0.0 {
                    rng.random_range(-half..half)
                } else {
                    0.0
                }
            })
            .collect();
        Table {
            dim,
            values,
            m: vec![0.0; rows * dim],
            v: vec![0.0; rows * dim],
            grad: vec![0.0; rows * dim],
            touched: Vec::new(),
            seen: vec![false; rows],
            step: 0,
        }
    }

    fn row(&self, r: u32) -> &[f32] {
        let r = r as usize;
        &self.values[r * self.dim..(r + 1) * self.dim]
    }

    /// Adds `g` plus the L2 term `l2 * value * scale` to row `r`'s gradient.
    fn accumulate(&mut self, r: u32, g: impl Iterator<Item = f32>, l2: f32, scale: f32) {
        let ri = r as usize;
        if !self.seen[ri] {
            self.seen[ri] = true;
            self.touched.push(r);
        }
        let span = ri * self.dim..(ri + 1) * self.dim;
        for ((acc, gv), &p) in self.grad[span.clone()]
            .iter_mut()
            .zip(g)
            .zip(&self.values[span])
        {
            *acc += gv + l2 * p * scale;
        }
    }

    fn discard(&mut self) {
        for &r in &self.touched {
            let r = r as usize;
            self.seen[r] = false;
            self.grad[r * self.dim..(r + 1) * self.dim].fill(0.0);
        }
        self.touched.clear();
    }

    fn apply(&mut self, lr: f32) {
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        self.step += 1;
        let (c1, c2) = (1.0 - b1.powi(self.step), 1.0 - b2.powi(self.step));
        for &r in &self.touched {
            let r = r as usize;
            self.seen[r] = false;
            for k in r * self.dim..(r + 1) * self.dim {
                let g = self.grad[k];
                self.grad[k] = 0.0;
                self.m[k] = b1 * self.m[k] + (1.0 - b1) * g;
                self.v[k] = b2 * self.v[k] + (1.0 - b2) * g * g;
                self.values[k] -= lr * (self.m[k] / c1) / ((self.v[k] / c2).sqrt() + eps);
            }
        }
        self.touched.clear();
    }
}

/// The host-side input tables and how they make a network input row.
struct Inputs<'a> {
    cfg: &'a FinetuneConfig,
    users: Table,
    items: Table,
    user_bias: Table,
    item_bias: Table,
    features: &'a ItemFeatures,
}

impl Inputs<'_> {
    fn write_row(&self, r: &Rating, out: &mut Vec<f32>) {
        let user = (self.users.row(r.user), self.user_bias.row(r.user)[0]);
        let item = (self.items.row(r.item), self.item_bias.row(r.item)[0]);
        self.cfg
            .write_input(user, item, self.features.row(r.item), out);
    }

    /// Spreads the input gradient of one batch over the tables.
    fn accumulate(&mut self, batch: &[Rating], d_input: &[f32], width: usize) {
        let l2 = self.cfg.embedding_l2;
        let scale = 1.0 / batch.len() as f32;
        for (r, g) in batch.iter().zip(d_input.chunks_exact(width)) {
            let (gp, gub) = self.cfg.side_gradient(g, self.items.row(r.item), 0);
            let (gq, gib) = self.cfg.side_gradient(g, self.users.row(r.user), 1);
            self.users.accumulate(r.user, gp.into_iter(), l2, scale);
            self.items.accumulate(r.item, gq.into_iter(), l2, scale);
            if self.cfg.biases {
                self.user_bias
                    .accumulate(r.user, std::iter::once(gub), l2, scale);
                self.item_bias
                    .accumulate(r.item, std::iter::once(gib), l2, scale);
            }
        }
    }

    fn tables(&mut self) -> [&mut Table; 4] {
        [
            &mut self.users,
            &mut self.items,
            &mut self.user_bias,
            &mut self.item_bias,
        ]
    }
}

/// Predicted ratings for `ratings`, in order.
async fn predict(
    engine: &mut impl Engine,
    inputs: &Inputs<'_>,
    ratings: &[Rating],
) -> Result<Vec<f32>, FinetuneError> {
    let cfg = engine.config().clone();
    let (low, high) = match cfg.head {
        Head::Regression { low, high } => (low, high),
        Head::Policy { .. } => {
            return Err(FinetuneError::Config(
                "fine-tuning needs an engine with a regression head".into(),
            ))
        }
    };
    let mut out = Vec::with_capacity(ratings.len());
    let mut x = Vec::with_capacity(cfg.max_rows * cfg.input);
    for chunk in ratings.chunks(cfg.max_rows) {
        x.clear();
        for r in chunk {
            inputs.write_row(r, &mut x);
        }
        let y = engine.forward(&x).await?;
        out.extend(y.iter().map(|v| low + (high - low) * v));
    }
    Ok(out)
}

/// RMSE and MAE of `predictions` against `ratings`.
fn errors(predictions: &[f32], ratings: &[Rating]) -> (f64, f64) {
    let n = ratings.len().max(1) as f64;
    let (mut se, mut ae) = (0.0, 0.0);
    for (p, r) in predictions.iter().zip(ratings) {
        let e = f64::from(p - r.value);
        se += e * e;
        ae += e.abs();
    }
    ((se / n).sqrt(), ae / n)
}

/// Trains the rating network on `dataset` with `engine`, which must have been created from
/// [`FinetuneConfig::model`] for this dataset and config. `progress` hears about every step and
/// epoch. Steps whose loss or input gradient is not finite are skipped (the MLP goes back to its
/// last good parameters, the embeddings are not touched) and counted; a run whose steps are all
/// skipped for a whole epoch stops with [`FinetuneError::Diverged`].
pub async fn finetune(
    engine: &mut impl Engine,
    dataset: &Dataset,
    config: &FinetuneConfig,
    mut progress: impl FnMut(Progress<'_>),
) -> Result<Finetuned, FinetuneError> {
    let start = now_ms();
    config.validate()?;
    let model = config.model(dataset);
    if *engine.config() != model {
        return Err(FinetuneError::Config(
            "the engine's model is not FinetuneConfig::model(dataset)".into(),
        ));
    }
    // splits: test, then a validation slice of the training ratings
    let n = dataset.ratings.len();
    let outer = split_ratings(n, config.test_fraction, config.seed)?;
    let inner = split_ratings(
        outer.train.len(),
        config.validation_fraction,
        config.seed ^ 0x5eed_7a11,
    )?;
    let pick = |idx: &[usize], from: &[usize]| -> Vec<Rating> {
        idx.iter().map(|&i| dataset.ratings[from[i]]).collect()
    };
    let all: Vec<usize> = (0..n).collect();
    let test = pick(&outer.test, &all);
    let train = pick(&inner.train, &outer.train);
    let validation = pick(&inner.test, &outer.train);
    if train.is_empty() || validation.is_empty() || test.is_empty() {
        return Err(FinetuneError::TooSmall(format!(
            "{n} ratings give {} training, {} validation and {} test ratings; each part needs at least one",
            train.len(),
            validation.len(),
            test.len()
        )));
    }
    let features = ItemFeatures::build(&dataset.catalog, &train);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let d = config.embedding_dim;
    let mut inputs = Inputs {
        cfg: config,
        users: Table::new(dataset.n_users(), d, config.init_std, &mut rng),
        items: Table::new(dataset.n_items(), d, config.init_std, &mut rng),
        user_bias: Table::new(dataset.n_users(), 1, 0.0, &mut rng),
        item_bias: Table::new(dataset.n_items(), 1, 0.0, &mut rng),
        features: &features,
    };
    // the output unit starts at the training mean
    let mean = train.iter().map(|r| f64::from(r.value)).sum::<f64>() / train.len() as f64;
    let (low, high) = (f64::from(dataset.scale.min), f64::from(dataset.scale.max));
    let p = ((mean - low) / (high - low)).clamp(0.01, 0.99);
    let mut params = model.init_params();
    if let Some(b) = params.last_mut() {
        *b = (p / (1.0 - p)).ln() as f32;
    }
    engine.set_params(&params)?;

    let adam = Adam {
        lr: config.lr,
        weight_decay: config.weight_decay,
        ..Adam::default()
    };
    let width = model.input;
    let batches = train.len().div_ceil(config.batch_size);
    progress(Progress::Start {
        epochs: config.max_epochs,
        batches,
    });
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut history = Vec::new();
    let mut best: Option<(f64, usize, Vec<f32>, Vec<Table>)> = None;
    let mut good_params = params;
    let mut x = Vec::with_capacity(config.batch_size * width);
    let mut batch_ratings = Vec::with_capacity(config.batch_size);
    let mut skipped_total = 0;
    for epoch in 1..=config.max_epochs {
        let epoch_start = now_ms();
        order.shuffle(&mut rng);
        let (mut loss_sum, mut steps, mut skipped) = (0.0f64, 0usize, 0usize);
        for (b, chunk) in order.chunks(config.batch_size).enumerate() {
            x.clear();
            batch_ratings.clear();
            let mut rows = Vec::with_capacity(chunk.len());
            for &i in chunk {
                let r = train[i];
                inputs.write_row(&r, &mut x);
                batch_ratings.push(r);
                rows.push(Row {
                    reward: r.value,
                    ..Row::default()
                });
            }
            let batch = Batch {
                inputs: std::mem::take(&mut x),
                rows,
                mask: None,
            };
            let (d_input, loss) = engine
                .train_with_input_gradient(&batch, Loss::Mse, adam)
                .await?;
            x = batch.inputs;
            if loss.is_finite() && d_input.iter().all(|g| g.is_finite()) {
                inputs.accumulate(&batch_ratings, &d_input, width);
                for t in inputs.tables() {
                    t.apply(config.embedding_lr);
                }
                loss_sum += f64::from(loss);
                steps += 1;
                // keep a recent good copy of the MLP to fall back to
                if steps % 64 == 0 {
                    let now = engine.params().await?;
                    if now.iter().all(|v| v.is_finite()) {
                        good_params = now;
                    }
                }
            } else {
                engine.set_params(&good_params)?;
                for t in inputs.tables() {
                    t.discard();
                }
                skipped += 1;
            }
            progress(Progress::Step {
                epoch,
                batch: b + 1,
            });
        }
        skipped_total += skipped;
        if steps == 0 {
            return Err(FinetuneError::Diverged(format!(
                "every step of epoch {epoch} had a non-finite loss or gradient"
            )));
        }
        let now = engine.params().await?;
        if now.iter().all(|v| v.is_finite()) {
            good_params = now;
        } else {
            engine.set_params(&good_params)?;
        }
        let predictions = predict(engine, &inputs, &validation).await?;
        let (validation_rmse, _) = errors(&predictions, &validation);
        if !validation_rmse.is_finite() {
            return Err(FinetuneError::Diverged(format!(
                "validation RMSE is not finite after epoch {epoch}"
            )));
        }
        let stats = EpochStats {
            epoch,
            train_loss: loss_sum / steps as f64,
            validation_rmse,
            skipped_steps: skipped,
            seconds: (now_ms() - epoch_start) / 1e3,
        };
        progress(Progress::Epoch(&stats));
        history.push(stats);
        let improved = best.as_ref().is_none_or(|b| validation_rmse < b.0);
        if improved {
            let tables = inputs.tables().map(|t| t.clone()).to_vec();
            best = Some((validation_rmse, epoch, good_params.clone(), tables));
        } else if best
            .as_ref()
            .is_some_and(|b| epoch - b.1 >= config.patience)
        {
            break;
        }
    }
    let Some((validation_rmse, best_epoch, best_params, tables)) = best else {
        return Err(FinetuneError::Diverged("no epoch finished".into()));
    };
    engine.set_params(&best_params)?;
    let [users, items, user_bias, item_bias]: [Table; 4] = tables
        .try_into()
        .map_err(|_| FinetuneError::Config("internal: four tables expected".into()))?;
    inputs.users = users;
    inputs.items = items;
    inputs.user_bias = user_bias;
    inputs.item_bias = item_bias;
    let predictions = predict(engine, &inputs, &test).await?;
    let (test_rmse, test_mae) = errors(&predictions, &test);
    let baseline = vec![mean as f32; test.len()];
    let (baseline_test_rmse, _) = errors(&baseline, &test);
    let report = FinetuneReport {
        config: config.clone(),
        engine: engine.info(),
        model,
        ratings: RatingCounts {
            train: train.len(),
            validation: validation.len(),
            test: test.len(),
        },
        history,
        best_epoch,
        validation_rmse,
        test_rmse,
        test_mae,
        baseline_test_rmse,
        skipped_steps: skipped_total,
        seconds: (now_ms() - start) / 1e3,
    };
    let Inputs {
        users,
        items,
        user_bias,
        item_bias,
        ..
    } = inputs;
    Ok(Finetuned {
        report,
        params: best_params,
        user_embeddings: users.values,
        item_embeddings: items.values,
        user_bias: user_bias.values,
        item_bias: item_bias.values,
        features,
    })
}
