//! The training loop of [`finetune`]: epochs of shuffled batches, early stopping on the
//! validation slice, test scores of the best epoch.

use super::tables::{Inputs, Table};
use super::{
    EpochStats, FinetuneConfig, FinetuneError, FinetuneReport, Finetuned, Progress, RatingCounts,
};
use crate::clock::now_ms;
use crate::data::{split_ratings, Dataset, ItemFeatures, Rating};
use crate::engine::{Adam, Batch, Engine, Loss, Row};
use crate::model::Head;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

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
