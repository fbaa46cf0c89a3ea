//! The meta-RL policy ([`crate::meta`]) as a [`Recommender`]: meta-training on training users
//! as `tests/meta_ml100k.rs` does (CAVIA, Reptile or first-order MAML), then one fresh
//! [`Session`] per evaluated user, adapting on every reward (its context, or for Reptile /
//! first-order MAML / RL from scratch the whole network from the trained start), or fixed.
//!
//! Runs on engines whose futures complete when first polled (the CPU engine); a GPU engine
//! needs an executor and is refused with an error here.
use super::{EvalError, Recommender};
use crate::data::{Dataset, ObservedTask, RewardMode};
use crate::engine::cpu::CpuEngine;
use crate::engine::Engine;
use crate::meta::{meta_step, policy_config, ItemVectors, MetaConfig, PolicyShape};
use crate::model::ModelConfig;
use crate::session::{AdaptConfig, Adapts, Session};
use std::future::Future;
use std::task::{Context, Poll, Waker};

/// Runs a future that is ready when first polled (the CPU engine's).
pub(super) fn ready<F: Future>(f: F) -> Result<F::Output, EvalError> {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Ok(v),
        Poll::Pending => Err(EvalError(
            "the engine did not answer at once: evaluation runs on the CPU engine".into(),
        )),
    }
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
    /// Meta-trains with `cfg.algorithm` on the observed episodes of `train` users (cycled in
    /// order), over the item vectors `vectors` (built from training ratings only); with
    /// `cfg.iterations == 0` the policy keeps its initial weights (RL from scratch).
    pub fn meta_train(
        ds: &Dataset,
        train: &[u32],
        vectors: &ItemVectors,
        cfg: &MetaConfig,
    ) -> Result<Self, EvalError> {
        if train.is_empty() {
            return Err(EvalError("meta-training needs training users".into()));
        }
        let model = policy_config(
            &PolicyShape::default(),
            ds.n_items(),
            vectors.dim,
            cfg.rows(),
        );
        let items = vectors.values.clone();
        let mut engine = CpuEngine::new(&model).map_err(engine_error)?;
        engine.set_items(&items).map_err(engine_error)?;
        for it in 0..cfg.iterations {
            let tasks: Vec<_> = (0..cfg.users_per_iteration)
                .map(|k| train[(it * cfg.users_per_iteration + k) % train.len()])
                .map(|u| ObservedTask::for_user(ds, u, RewardMode::default(), cfg.rounds))
                .collect();
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
            restricted: false,
        })
    }
}

impl Recommender for MetaRl {
    fn reset(&mut self, seed: u64) {
        self.session = Session::new(
            self.engine.config(),
            self.adapt,
            (seed ^ (seed >> 32)) as u32,
        );
        self.restricted = false;
    }

    fn slate(&mut self, candidates: &[u32], k: usize) -> Result<Vec<u32>, EvalError> {
        if !self.restricted {
            if self.adapt.adapts == Adapts::Network {
                self.engine.set_params(&self.params).map_err(engine_error)?;
            }
            self.session.restrict_to(candidates);
            self.restricted = true;
        }
        let k = k.min(candidates.len());
        let recs =
            ready(self.session.recommend(&mut self.engine, k, false))?.map_err(engine_error)?;
        Ok(recs.iter().map(|r| r.item).collect())
    }

    fn update(&mut self, item: u32, reward: f32) -> Result<(), EvalError> {
        ready(self.session.feedback(&mut self.engine, item, reward))?.map_err(engine_error)
    }
}
