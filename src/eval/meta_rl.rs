//! The meta-RL policy ([`crate::meta`]) as a [`Recommender`]: meta-training on training users
//! as `tests/meta_ml100k.rs` does (CAVIA, Reptile or first-order MAML), then one fresh
//! [`Session`] per evaluated user, adapting on every reward (its context, or for Reptile /
//! first-order MAML / RL from scratch the whole network from the trained start), or fixed.
//!
//! Runs on engines whose futures complete when first polled (the CPU engine); a GPU engine
//! needs an executor and is refused with an error here.
use super::{EvalError, Recommender};
use crate::data::Environment;
use crate::engine::cpu::CpuEngine;
use crate::engine::Engine;
use crate::meta::{feedback_start, meta_step, MetaConfig, ObservedSetup, PolicyShape};
use crate::model::ModelConfig;
use crate::session::{AdaptConfig, Adapts, Session};
use std::future::Future;

/// Runs a future that is ready when first polled (the CPU engine's): [`crate::engine::cpu::ready`].
pub(super) fn ready<F: Future>(f: F) -> Result<F::Output, EvalError> {
    crate::engine::cpu::ready(f).map_err(engine_error)
}

pub(super) fn engine_error(e: crate::engine::EngineError) -> EvalError {
    EvalError(e.to_string())
}

/// A meta-trained policy: its model, parameters and item matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Trained {
    pub model: ModelConfig,
    pub params: Vec<f32>,
    pub items: Vec<f32>,
}

impl Trained {
    /// Meta-trains with `cfg.algorithm` on episodes of the setup's training users in `env`
    /// (cycled in order), over its item vectors (built from training ratings only), from
    /// [`crate::meta::policy_start`] (the prior of vectors that carry one, else random weights); with
    /// `cfg.iterations == 0` the policy keeps its start (RL from scratch, over vectors without a
    /// prior). With `feedback` = (liked, missed) the policy starts from
    /// [`crate::meta::feedback_start`] instead.
    pub fn meta_train(
        setup: &ObservedSetup,
        shape: &PolicyShape,
        cfg: &MetaConfig,
        env: Environment,
        feedback: Option<(f32, f32)>,
    ) -> Result<Self, EvalError> {
        if setup.train.is_empty() {
            return Err(EvalError("meta-training needs training users".into()));
        }
        let model = setup.model(shape, cfg);
        let items = setup.vectors.values.clone();
        let start = match feedback {
            None => setup.start(&model),
            Some((liked, missed)) => feedback_start(&model, &setup.vectors, liked, missed)
                .ok_or_else(|| {
                    EvalError(format!(
                        "a feedback start needs hidden layers of at least {} units",
                        4 * setup.vectors.dim
                    ))
                })?,
        };
        let mut engine = CpuEngine::new(&model).map_err(engine_error)?;
        engine.set_params(&start).map_err(engine_error)?;
        engine.set_items(&items).map_err(engine_error)?;
        for it in 0..cfg.iterations {
            let tasks = setup.tasks(cfg, it, env);
            ready(meta_step(&mut engine, tasks, cfg, it))?.map_err(engine_error)?;
        }
        let params = ready(engine.params())?.map_err(engine_error)?;
        Ok(Trained {
            model,
            params,
            items,
        })
    }
}

/// One session per user on a CPU engine holding the trained policy.
pub struct MetaRl {
    engine: CpuEngine,
    /// The trained parameters, put back for every user when sessions adapt the network.
    params: Vec<f32>,
    adapt: AdaptConfig,
    session: Session,
    /// A user started and the network (when it adapts) is not yet back at the trained start.
    fresh: bool,
    restricted: bool,
}

impl MetaRl {
    /// A recommender with `trained`'s policy; `adapt.enabled` chooses adapting or fixed.
    pub fn new(trained: &Trained, adapt: AdaptConfig) -> Result<Self, EvalError> {
        let mut engine = CpuEngine::new(&trained.model).map_err(engine_error)?;
        engine.set_params(&trained.params).map_err(engine_error)?;
        engine.set_items(&trained.items).map_err(engine_error)?;
        let session = Session::new(&trained.model, adapt, 0);
        Ok(MetaRl {
            engine,
            params: trained.params.clone(),
            adapt,
            session,
            fresh: true,
            restricted: false,
        })
    }

    /// Puts the network back at the trained start for a new user (before their first slate or
    /// reward, whichever comes first).
    fn begin(&mut self) -> Result<(), EvalError> {
        if self.fresh {
            if self.adapt.adapts == Adapts::Network {
                self.engine.set_params(&self.params).map_err(engine_error)?;
            }
            self.fresh = false;
        }
        Ok(())
    }
}

impl Recommender for MetaRl {
    fn reset(&mut self, seed: u64) {
        self.session = Session::new(
            self.engine.config(),
            self.adapt,
            (seed ^ (seed >> 32)) as u32,
        );
        self.fresh = true;
        self.restricted = false;
    }

    fn slate(&mut self, candidates: &[u32], k: usize) -> Result<Vec<u32>, EvalError> {
        self.begin()?;
        if !self.restricted {
            self.session.restrict_to(candidates);
            self.restricted = true;
        }
        let k = k.min(candidates.len());
        let recs =
            ready(self.session.recommend(&mut self.engine, k, false))?.map_err(engine_error)?;
        Ok(recs.iter().map(|r| r.item).collect())
    }

    fn update(&mut self, item: u32, reward: f32) -> Result<(), EvalError> {
        self.begin()?;
        ready(self.session.feedback(&mut self.engine, item, reward))?.map_err(engine_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::WorldConfig;

    /// RL from scratch (the untrained network, every parameter adapting) learns a user's genre
    /// from their rewards, also when the rewards come before the first slate (as in the
    /// query-set protocol), and the next user starts from the untrained network again.
    #[test]
    fn rl_from_scratch_learns_a_genre_from_rewards_and_starts_over_for_the_next_user() {
        let ds = WorldConfig::small_dataset(120, 60, 3).unwrap();
        // content features only (no collaborative factors, no prior)
        let setup = ObservedSetup::new(&ds, (0..60).collect(), 0, 3);
        let cfg = MetaConfig {
            iterations: 0,
            users_per_iteration: 4,
            rounds: 6,
            ..MetaConfig::default()
        };
        let trained = Trained::meta_train(
            &setup,
            &PolicyShape::default(),
            &cfg,
            Environment::Observed,
            None,
        )
        .unwrap();
        let adapt = AdaptConfig {
            adapts: Adapts::Network,
            param_lr: 1e-2,
            ..AdaptConfig::default()
        };
        let mut rec = MetaRl::new(&trained, adapt).unwrap();
        let drama = |i: &u32| ds.catalog.items[*i as usize].genres.contains(&0);
        let share = |s: &[u32]| s.iter().filter(|i| drama(i)).count() as f64 / s.len() as f64;
        let rest: Vec<u32> = (60..120).collect();
        rec.reset(1);
        let untrained = rec.slate(&rest, 20).unwrap();
        rec.reset(1);
        for i in 0..60u32 {
            rec.update(i, if drama(&i) { 1.0 } else { 0.0 }).unwrap();
        }
        let adapted = rec.slate(&rest, 20).unwrap();
        rec.reset(1);
        assert_eq!(
            rec.slate(&rest, 20).unwrap(),
            untrained,
            "the next user starts over"
        );
        let (before, after) = (share(&untrained), share(&adapted));
        assert!(after >= before + 0.2, "Drama share {before} -> {after}");
    }
}
