//! The supervised rating network of stage 1 ([`crate::finetune`], fitted on the training
//! users' ratings only: [`SupervisedFit`]) as a recommender. A cold-start user starts at the
//! training users' mean embedding and bias; `sup-fixed` ranks candidates by predicted rating and
//! never changes, and `sup-finetune` refits the user's embedding and bias after every reward:
//! gradient steps on the squared error between the predicted rating and a target derived from
//! each reward so far (the training users' mean liked / not-liked rating), with an L2 pull back
//! to the start.
use super::meta_rl::{engine_error, ready};
use super::{top_k, EvalError, Recommender};
use crate::engine::cpu::CpuEngine;
use crate::engine::{Batch, Engine, Loss, Row};
use crate::finetune::SupervisedFit;

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
    fit: SupervisedFit,
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
        Ok(Supervised {
            engine: fit.engine().map_err(engine_error)?,
            fit: fit.clone(),
            refit,
            user: fit.start.clone(),
            seen: Vec::new(),
            stale: false,
        })
    }

    /// Gradient steps on the user's embedding and bias over every reward so far.
    fn refit(&mut self, fit: UserFit) -> Result<(), EvalError> {
        let width = self.engine.config().input;
        let rows = self.engine.config().max_rows;
        let start = &self.fit.start;
        for _ in 0..fit.steps {
            let mut gp: Vec<f32> = self
                .user
                .0
                .iter()
                .zip(&start.0)
                .map(|(p, p0)| fit.l2 * (p - p0))
                .collect();
            let mut gb = fit.l2 * (self.user.1 - start.1);
            for chunk in self.seen.chunks(rows) {
                let user = (&self.user.0[..], self.user.1);
                let batch = Batch {
                    inputs: self.fit.inputs(user, chunk.iter().map(|&(item, _)| item)),
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
                    let config = &self.fit.fit.report.config;
                    let (dp, db) = config.user_gradient(gi, self.fit.item(item).0);
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
        self.user = self.fit.start.clone();
        self.seen.clear();
        self.stale = false;
    }

    fn slate(&mut self, candidates: &[u32], k: usize) -> Result<Vec<u32>, EvalError> {
        if let (true, Some(fit)) = (self.stale, self.refit) {
            self.refit(fit)?;
            self.stale = false;
        }
        let mut predicted = vec![f64::MIN; self.fit.fit.item_bias.len()];
        let user = (&self.user.0[..], self.user.1);
        let scores =
            ready(self.fit.predict(&mut self.engine, user, candidates))?.map_err(engine_error)?;
        for (&item, v) in candidates.iter().zip(scores) {
            predicted[item as usize] = f64::from(v);
        }
        Ok(top_k(candidates, k, |c| predicted[c as usize]))
    }

    /// Records the reward; the user is refitted before the next slate (once for a whole
    /// slate's rewards).
    fn update(&mut self, item: u32, reward: f32) -> Result<(), EvalError> {
        if self.refit.is_some() {
            self.seen
                .push((item, self.fit.targets[usize::from(reward >= 0.5)]));
            self.stale = true;
        }
        Ok(())
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::data::Dataset;
    use crate::eval::baselines::tests::tiny;
    use crate::finetune::FinetuneConfig;

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
        pollster::block_on(SupervisedFit::new(
            ds,
            &(1..40).collect::<Vec<_>>(),
            &config,
        ))
        .unwrap()
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
