//! The methods' hyperparameters ([`Hyper`]) and each protocol's defaults, chosen on its
//! validation users (EVALUATION.md).
use super::supervised::UserFit;
use crate::data::Environment;
use crate::finetune::FinetuneConfig;
use crate::meta::{MetaConfig, PolicyShape};
use crate::session::AdaptConfig;

/// Hyperparameters of the methods (chosen on validation users; see EVALUATION.md).
#[derive(Clone, Debug, PartialEq)]
pub struct Hyper {
    /// Prior weight (in ratings) of the global mean in the smoothed mean rating.
    pub prior_strength: f64,
    /// Exploration rate of ε-greedy MF.
    pub epsilon: f64,
    /// Ridge strength of the ε-greedy MF user vector.
    pub mf_lambda: f64,
    /// Strength of the linear bandits' prior (weights fitted on training users).
    pub bandit_lambda: f64,
    /// LinUCB exploration bonus α.
    pub alpha: f64,
    /// Posterior scale v of linear Thompson sampling.
    pub ts_scale: f64,
    /// Neighbours that vote in user-kNN.
    pub neighbours: usize,
    /// Noise ε of `user-posterior`'s prototypes ([`super::posterior::UserPosterior`]).
    pub posterior_eps: f64,
    /// Tempering β of `user-posterior`'s likelihood.
    pub posterior_beta: f64,
    /// Collaborative factors in the item vectors of the linear bandits and the meta-RL policy
    /// (a truncated SVD of the training users' like-matrix, [`crate::data::like_factors`]); 0 for none.
    pub factors: usize,
    /// The supervised rating network (its seed is replaced by the protocol's).
    pub supervised: FinetuneConfig,
    /// How `sup-finetune` refits a user after each reward.
    pub user_fit: UserFit,
    /// Meta-training of the meta-RL policy (its seed is replaced by the protocol's).
    pub meta: MetaConfig,
    /// The meta-RL policy network's shape.
    pub shape: PolicyShape,
    /// (liked, missed) weights of a start that reads the feedback summary as a linear
    /// bandit's evidence ([`crate::meta::feedback_start`]); `None`: the prior alone.
    pub feedback_start: Option<(f32, f32)>,
    /// Shrinkage towards the identity of the prior covariance of `linucb-cov` and
    /// `lin-ts-cov` (and of the meta-RL policies with `policy_covariance`): the covariance of
    /// the training users' own ridge weights over the item vectors ([`crate::linalg::Whitening`]).
    pub covariance_shrinkage: f64,
    /// The meta-RL policies' item vectors whitened by that prior covariance.
    pub policy_covariance: bool,
}

impl Default for Hyper {
    fn default() -> Self {
        Hyper {
            prior_strength: 10.0,
            epsilon: 0.05,
            mf_lambda: 3.0,
            bandit_lambda: 100.0,
            alpha: 0.05,
            ts_scale: 0.01,
            neighbours: 300,
            posterior_eps: 0.2,
            posterior_beta: 0.7,
            factors: crate::meta::DATASET_FACTORS,
            supervised: FinetuneConfig::default(),
            user_fit: UserFit {
                steps: 20,
                lr: 0.003,
                l2: 1.0,
            },
            meta: MetaConfig {
                iterations: 150,
                users_per_iteration: 16,
                rounds: 20,
                // the context step size, chosen on validation users (EVALUATION.md)
                adapt: AdaptConfig {
                    lr: 0.03,
                    ..AdaptConfig::default()
                },
                ..MetaConfig::default()
            },
            shape: PolicyShape::default(),
            feedback_start: None,
            covariance_shrinkage: 0.1,
            policy_covariance: false,
        }
    }
}

impl Hyper {
    /// The defaults of a protocol, each chosen on its validation users (EVALUATION.md): the
    /// observed protocol's are [`Hyper::default`]; on the full catalog the linear bandits
    /// take a stronger prior and less exploration, and meta-training sees more users.
    pub fn for_environment(env: Environment) -> Self {
        let observed = Hyper::default();
        match env {
            Environment::Observed => observed,
            Environment::Catalog => Hyper {
                bandit_lambda: 300.0,
                alpha: 0.01,
                ts_scale: 0.003,
                meta: MetaConfig {
                    iterations: 300,
                    users_per_iteration: 64,
                    ..observed.meta.clone()
                },
                ..observed
            },
        }
    }
}
