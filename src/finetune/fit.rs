//! The rating network fitted on training users, and what a new user starts from: the
//! supervised stage as the cold-start methods use it (`sup-fixed` / `sup-finetune` in
//! [`crate::eval::supervised`], the prior a meta-trained policy starts from).

use super::{finetune, FinetuneConfig, FinetuneError, Finetuned};
use crate::data::{Dataset, LIKE_THRESHOLD};
use crate::engine::cpu::CpuEngine;
use crate::engine::{Engine, EngineError};

/// The rating network fitted on training users, and what a new user starts from.
#[derive(Clone)]
pub struct SupervisedFit {
    pub fit: Finetuned,
    /// Mean embedding and bias of the training users.
    pub start: (Vec<f32>, f32),
    /// Rating targets of a reward of 0 and of 1 (the training users' mean not-liked / liked
    /// rating).
    pub targets: [f32; 2],
}

impl SupervisedFit {
    /// Fine-tunes on the ratings of `train` users (dense indices) with `config`, on the CPU
    /// engine.
    pub async fn new(
        ds: &Dataset,
        train: &[u32],
        config: &FinetuneConfig,
    ) -> Result<Self, FinetuneError> {
        let mut train_ds = ds.clone();
        // fine-tuning reads only the ratings, the catalog and the scale
        train_ds.ratings = train
            .iter()
            .flat_map(|&u| ds.user_ratings(u))
            .copied()
            .collect();
        let model = config.model(&train_ds);
        let mut engine = CpuEngine::new(&model)?;
        let fit = finetune(&mut engine, &train_ds, config, |_| {}).await?;
        let d = config.embedding_dim;
        let n = train.len() as f32;
        let mut mean = vec![0.0f32; d];
        let mut bias = 0.0f32;
        for &u in train {
            let u = u as usize;
            for (m, v) in mean
                .iter_mut()
                .zip(&fit.user_embeddings[u * d..(u + 1) * d])
            {
                *m += v / n;
            }
            bias += fit.user_bias[u] / n;
        }
        let mut sums = [(0.0f64, 0usize); 2];
        for r in &train_ds.ratings {
            let s = &mut sums[usize::from(r.value >= LIKE_THRESHOLD)];
            s.0 += f64::from(r.value);
            s.1 += 1;
        }
        let target = |(sum, n): (f64, usize)| (sum / n.max(1) as f64) as f32;
        Ok(SupervisedFit {
            fit,
            start: (mean, bias),
            targets: [target(sums[0]), target(sums[1])],
        })
    }

    /// A CPU engine holding the fitted network.
    pub fn engine(&self) -> Result<CpuEngine, EngineError> {
        let mut engine = CpuEngine::new(&self.fit.report.model)?;
        engine.set_params(&self.fit.params)?;
        Ok(engine)
    }

    /// Embedding and bias of `item`.
    pub fn item(&self, item: u32) -> (&[f32], f32) {
        let d = self.fit.report.config.embedding_dim;
        let i = item as usize;
        (
            &self.fit.item_embeddings[i * d..(i + 1) * d],
            self.fit.item_bias[i],
        )
    }

    /// Network inputs of `user` (embedding, bias) with each of `items`.
    pub fn inputs(&self, user: (&[f32], f32), items: impl Iterator<Item = u32>) -> Vec<f32> {
        let mut x = Vec::new();
        for item in items {
            let features = self.fit.features.row(item);
            self.fit
                .report
                .config
                .write_input(user, self.item(item), features, &mut x);
        }
        x
    }

    /// The network's output for `user` with each of `items` on `engine` (from
    /// [`SupervisedFit::engine`]).
    pub async fn predict(
        &self,
        engine: &mut impl Engine,
        user: (&[f32], f32),
        items: &[u32],
    ) -> Result<Vec<f32>, EngineError> {
        let rows = engine.config().max_rows;
        let mut predicted = Vec::with_capacity(items.len());
        for chunk in items.chunks(rows) {
            let x = self.inputs(user, chunk.iter().copied());
            predicted.extend(engine.forward(&x).await?);
        }
        Ok(predicted)
    }

    /// The network's predicted rating of every item for a new user (the training users' mean
    /// embedding and bias): `sup-fixed`'s ranking, and the prior a meta-trained policy starts
    /// from ([`crate::meta::ItemVectors::with_prior`]).
    pub async fn new_user_ratings(&self) -> Result<Vec<f32>, EngineError> {
        let items: Vec<u32> = (0..self.fit.item_bias.len() as u32).collect();
        let mut engine = self.engine()?;
        let start = (&self.start.0[..], self.start.1);
        self.predict(&mut engine, start, &items).await
    }
}
