//! The supervised rating network of stage 1 ([`crate::finetune`]) as a recommender, fitted on
//! the training users' ratings only. A cold-start user starts at the training users' mean
//! embedding and bias; `sup-fixed` ranks candidates by predicted rating and never changes, and
//! `sup-finetune` refits the user's embedding and bias after every reward: gradient steps on the
//! squared error between the predicted rating and a target derived from each reward so far (the
//! training users' mean liked / not-liked rating), with an L2 pull back to the start.
use super::meta_rl::{engine_error, ready};
use super::{top_k, EvalError, Recommender};
use crate::data::{Dataset, LIKE_THRESHOLD};
use crate::engine::cpu::CpuEngine;
use crate::engine::{Batch, Engine, Loss, Row};
use crate::finetune::{finetune, FinetuneConfig, Finetuned};

/// The rating network fitted on training users, and what a new user starts from.
pub struct SupervisedFit {
    fit: Finetuned,
    /// Mean embedding and bias of the training users.
    start: (Vec<f32>, f32),
    /// Rating targets of a reward of 0 and of 1.
    targets: [f32; 2],
}

impl SupervisedFit {
    /// Fine-tunes on the ratings of `train` users (dense indices) with `config`.
    pub fn new(ds: &Dataset, train: &[u32], config: &FinetuneConfig) -> Result<Self, EvalError> {
        let mut train_ds = ds.clone();
        // fine-tuning reads only the ratings, the catalog and the scale
        train_ds.ratings = train
            .iter()
            .flat_map(|&u| ds.user_ratings(u))
            .copied()
            .collect();
        let model = config.model(&train_ds);
        let mut engine = CpuEngine::new(&model).map_err(engine_error)?;
        let fit = ready(finetune(&mut engine, &train_ds, config, |_| {}))?
            .map_err(|e| EvalError(e.to_string()))?;
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

    /// The network's predicted rating of every item for a new user (the training users' mean
    /// embedding and bias): `sup-fixed`'s ranking, and the prior a meta-trained policy starts
    /// from ([`crate::meta::ItemVectors::with_prior`]).
    pub fn new_user_ratings(&self) -> Result<Vec<f32>, EvalError> {
        let items: Vec<u32> = (0..self.fit.item_bias.len() as u32).collect();
        Supervised::new(self, None)?.predict(&items)
    }
}

/// How `sup-finetune` refits the user after a reward.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UserFit {
    /// Gradient steps per reward.
    pub steps: usize,
    /// Step size.
    pub lr: f32,
    /// Weight of the squared distance to the starting embedding and bias.
    pub l2: f32,
}

/// One user's recommender over a [`SupervisedFit`]: fixed, or refitting the user.
pub struct Supervised {
    engine: CpuEngine,
    config: FinetuneConfig,
    fit: Finetuned,
    start: (Vec<f32>, f32),
    targets: [f32; 2],
    refit: Option<UserFit>,
    user: (Vec<f32>, f32),
    /// (item, target rating) of every reward so far.
    seen: Vec<(u32, f32)>,
    /// Rewards arrived since the last refit.
    stale: bool,
}

impl Supervised {
    /// A recommender on `fit`; `refit` = `None` keeps every user at the start.
    pub fn new(fit: &SupervisedFit, refit: Option<UserFit>) -> Result<Self, EvalError> {
        let config = fit.fit.report.config.clone();
        let mut engine = CpuEngine::new(&fit.fit.report.model).map_err(engine_error)?;
        engine.set_params(&fit.fit.params).map_err(engine_error)?;
        Ok(Supervised {
            engine,
            config,
            fit: fit.fit.clone(),
            start: fit.start.clone(),
            targets: fit.targets,
            refit,
            user: fit.start.clone(),
            seen: Vec::new(),
            stale: false,
        })
    }

    fn item(&self, item: u32) -> (&[f32], f32) {
        let d = self.config.embedding_dim;
        let i = item as usize;
        (
            &self.fit.item_embeddings[i * d..(i + 1) * d],
            self.fit.item_bias[i],
        )
    }

    /// Network inputs of the current user with each of `items`.
    fn inputs(&self, items: impl Iterator<Item = u32>) -> Vec<f32> {
        let mut x = Vec::new();
        for item in items {
            let user = (&self.user.0[..], self.user.1);
            let features = self.fit.features.row(item);
            self.config
                .write_input(user, self.item(item), features, &mut x);
        }
        x
    }

    /// The current user's predicted rating of each of `items`.
    fn predict(&mut self, items: &[u32]) -> Result<Vec<f32>, EvalError> {
        let rows = self.engine.config().max_rows;
        let mut predicted = Vec::with_capacity(items.len());
        for chunk in items.chunks(rows) {
            let x = self.inputs(chunk.iter().copied());
            predicted.extend(ready(self.engine.forward(&x))?.map_err(engine_error)?);
        }
        Ok(predicted)
    }

    /// Gradient steps on the user's embedding and bias over every reward so far.
    fn refit(&mut self, fit: UserFit) -> Result<(), EvalError> {
        let width = self.engine.config().input;
        let rows = self.engine.config().max_rows;
        for _ in 0..fit.steps {
            let mut gp: Vec<f32> = self
                .user
                .0
                .iter()
                .zip(&self.start.0)
                .map(|(p, p0)| fit.l2 * (p - p0))
                .collect();
            let mut gb = fit.l2 * (self.user.1 - self.start.1);
            for chunk in self.seen.chunks(rows) {
                let batch = Batch {
                    inputs: self.inputs(chunk.iter().map(|&(item, _)| item)),
                    rows: chunk
                        .iter()
                        .map(|&(_, target)| Row {
                            reward: target,
                            ..Row::default()
                        })
                        .collect(),
                    mask: None,
                };
                let (g, _) =
                    ready(self.engine.input_gradient(&batch, Loss::Mse))?.map_err(engine_error)?;
                // the engine's loss is the chunk's mean: scale back to a sum over rewards
                let n = chunk.len() as f32;
                for (&(item, _), gi) in chunk.iter().zip(g.chunks_exact(width)) {
                    let (dp, db) = self.config.user_gradient(gi, self.item(item).0);
                    for (a, v) in gp.iter_mut().zip(dp) {
                        *a += n * v;
                    }
                    gb += n * db;
                }
            }
            for (p, g) in self.user.0.iter_mut().zip(gp) {
                *p -= fit.lr * g;
            }
            self.user.1 -= fit.lr * gb;
        }
        Ok(())
    }
}

impl Recommender for Supervised {
    fn reset(&mut self, _: u64) {
        self.user = self.start.clone();
        self.seen.clear();
        self.stale = false;
    }

    fn slate(&mut self, candidates: &[u32], k: usize) -> Result<Vec<u32>, EvalError> {
        if let (true, Some(fit)) = (self.stale, self.refit) {
            self.refit(fit)?;
            self.stale = false;
        }
        let mut predicted = vec![f64::MIN; self.fit.item_bias.len()];
        for (&item, v) in candidates.iter().zip(self.predict(candidates)?) {
            predicted[item as usize] = f64::from(v);
        }
        Ok(top_k(candidates, k, |c| predicted[c as usize]))
    }

    /// Records the reward; the user is refitted before the next slate (once for a whole
    /// slate's rewards).
    fn update(&mut self, item: u32, reward: f32) -> Result<(), EvalError> {
        if self.refit.is_some() {
            self.seen
                .push((item, self.targets[usize::from(reward >= 0.5)]));
            self.stale = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::baselines::tests::tiny;

    /// Even users like items 0–9 and dislike 10–19; odd users the opposite.
    fn two_camps() -> Dataset {
        let mut ratings = Vec::new();
        for u in 0..40u32 {
            for i in 0..20u32 {
                let likes = (u % 2 == 0) == (i < 10);
                ratings.push((u, i, if likes { 5.0 } else { 1.0 }));
            }
        }
        tiny(40, 20, &ratings)
    }

    fn fitted(ds: &Dataset) -> SupervisedFit {
        let config = FinetuneConfig {
            embedding_dim: 4,
            hidden: vec![8],
            batch_size: 16,
            max_epochs: 60,
            patience: 10,
            lr: 1e-2,
            embedding_lr: 1e-2,
            embedding_l2: 0.01,
            ..FinetuneConfig::default()
        };
        SupervisedFit::new(ds, &(1..40).collect::<Vec<_>>(), &config).unwrap()
    }

    #[test]
    fn refitting_the_user_finds_their_camp_and_the_fixed_model_does_not_move() {
        let ds = two_camps();
        let fit = fitted(&ds);
        assert_eq!(fit.targets, [1.0, 5.0]);
        let refit = UserFit {
            steps: 50,
            lr: 0.05,
            l2: 0.1,
        };
        let all: Vec<u32> = (0..20).collect();
        let rest: Vec<u32> = (0..20).filter(|i| ![0, 10, 11].contains(i)).collect();
        for refit in [None, Some(refit)] {
            let mut rec = Supervised::new(&fit, refit).unwrap();
            rec.reset(0);
            let before = rec.slate(&all, 20).unwrap();
            // user 0 (held out) likes item 0 and dislikes items 10 and 11
            for (item, reward) in [(0, 1.0), (10, 0.0), (11, 0.0)] {
                rec.update(item, reward).unwrap();
            }
            let after = rec.slate(&rest, 9).unwrap();
            if refit.is_none() {
                let expected: Vec<u32> = before.into_iter().filter(|i| rest.contains(i)).collect();
                assert_eq!(after, expected[..9]);
            } else {
                assert!(after.iter().all(|&i| i < 10), "{after:?}");
                rec.reset(0);
                assert_eq!(
                    rec.slate(&all, 20).unwrap(),
                    before,
                    "reset forgets the user"
                );
            }
        }
    }
}
