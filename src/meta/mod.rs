//! Meta-reinforcement learning across users (each user is a task): every episode adapts by the
//! same on-device REINFORCE steps a [`Session`] takes, and the shared parameters are learned,
//! first order, from the rewards the adapted policies earn. Three outer loops ([`Algorithm`]):
//! CAVIA adapts only a per-user context vector in the network's input (zero for every new
//! user), so a new person's policy adapts within a few reactions by changing only their
//! context; Reptile and first-order MAML adapt every parameter per user, and a person's session
//! then adapts its own copy of the network. Also: the episodes, the policy's item vectors and
//! start, and checkpoints that resume a run exactly.

mod checkpoint;
mod dataset;
mod episode;
pub mod federated;
mod observed;
mod outer;
mod synthetic;
mod trpo;
mod vectors;

pub use checkpoint::{run, Checkpoint, Hooks, RunResult, CHECKPOINT_FORMAT};
pub use dataset::{iteration_users, shard_users, DatasetSetup};
pub use episode::{run_episode, Episode};
pub use observed::ObservedSetup;
pub use outer::meta_step;
pub use synthetic::{SyntheticSetup, SYNTHETIC_FACTORS};
pub use trpo::{trpo_step, Optimizer, TrpoConfig, TrpoStep};
pub use vectors::{
    feedback_start, policy_start, ItemVectorParts, ItemVectors, DATASET_FACTORS, PRIOR_SCALE,
    QUALITY_PRIOR,
};

use crate::engine::Adam;
use crate::model::{Activation, Head, Init, ModelConfig};
#[cfg(doc)]
use crate::session::Session;
use crate::session::{AdaptConfig, Adapts};
use serde::{Deserialize, Serialize};

/// Shape of the policy network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyShape {
    /// Width of the per-user context vector (the first part of the network's input; the
    /// feedback summary of [`crate::session::summary_width`] follows it).
    pub context: usize,
    pub hidden: Vec<usize>,
}

impl Default for PolicyShape {
    fn default() -> Self {
        PolicyShape {
            context: 16,
            hidden: vec![64, 64],
        }
    }
}

/// The policy's model description for a catalog whose item vectors have `item_dim` values.
pub fn policy_config(
    shape: &PolicyShape,
    items: usize,
    item_dim: usize,
    rows: usize,
) -> ModelConfig {
    ModelConfig {
        input: shape.context + crate::session::summary_width(item_dim),
        hidden: shape.hidden.clone(),
        output: item_dim,
        hidden_activation: Activation::Relu,
        output_activation: Activation::Identity,
        head: Head::Policy { items },
        init: Init::He,
        seed: 17,
        max_rows: rows,
    }
}

/// The outer loop of meta-training.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// CAVIA, first order: in each episode only the person's context and feedback summary
    /// adapt; one outer policy-gradient step on the shared network over every episode's
    /// transitions, under the inputs they were chosen with. Sessions then adapt the context
    /// only.
    #[default]
    Cavia,
    /// Reptile: in each episode every parameter adapts (one REINFORCE step per reaction); the
    /// shared network then moves towards the mean adapted network by
    /// [`MetaConfig::reptile_step`] of the way.
    Reptile,
    /// First-order MAML: every parameter adapts during each episode; the policy gradient of
    /// the episode's second half (its query rounds) at the adapted network, averaged over the
    /// tasks, is the outer gradient (Adam, [`MetaConfig::outer`]).
    Fomaml,
}

impl Algorithm {
    /// What sessions of a policy meta-trained this way adapt.
    pub fn adapts(self) -> Adapts {
        match self {
            Algorithm::Cavia => Adapts::Context,
            Algorithm::Reptile | Algorithm::Fomaml => Adapts::Network,
        }
    }
}

/// Meta-training settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetaConfig {
    pub algorithm: Algorithm,
    pub iterations: usize,
    /// Users (tasks) per meta-iteration.
    pub users_per_iteration: usize,
    /// Rounds per episode.
    pub rounds: usize,
    /// Items per slate.
    pub slate: usize,
    /// The inner loop: the same adaptation a session runs on the device.
    pub adapt: AdaptConfig,
    /// The outer optimiser over the shared parameters.
    pub outer: Adam,
    /// CAVIA: the outer update of the shared network from its batch of episodes.
    #[serde(default)]
    pub optimizer: Optimizer,
    /// CAVIA with REINFORCE or PPO: Adam steps per meta-iteration on its batch of episodes
    /// (PPO's ratio is to the policy that collected it).
    pub outer_steps: u32,
    /// CAVIA with TRPO: the KL radius, conjugate gradient and line search.
    #[serde(default)]
    pub trpo: TrpoConfig,
    /// Reptile: the fraction of the way to the mean adapted network taken per iteration.
    pub reptile_step: f32,
    pub seed: u32,
}

impl Default for MetaConfig {
    fn default() -> Self {
        MetaConfig {
            algorithm: Algorithm::Cavia,
            iterations: 100,
            users_per_iteration: 16,
            rounds: 20,
            slate: 1,
            adapt: AdaptConfig::default(),
            outer: Adam {
                lr: 3e-3,
                clip_norm: 5.0,
                ..Adam::default()
            },
            optimizer: Optimizer::Reinforce,
            outer_steps: 1,
            trpo: TrpoConfig::default(),
            reptile_step: 1.0,
            seed: 1,
        }
    }
}

impl MetaConfig {
    /// Rows of one outer batch, which the engine must allocate.
    pub fn rows(&self) -> usize {
        self.users_per_iteration * self.rounds * self.slate
    }
}

/// Progress of one meta-iteration.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetaProgress {
    pub iteration: usize,
    /// Mean reward per round over the iteration's episodes.
    pub mean_reward: f32,
    /// Outer policy-gradient loss of the iteration (CAVIA: its batch; Reptile: the mean inner
    /// loss; first-order MAML: the mean query loss); `None` when its step was skipped.
    pub loss: Option<f32>,
    /// Outer steps skipped so far because their loss or gradient was not finite (the engine
    /// detects them on the device and leaves the parameters unchanged).
    pub skipped_total: u32,
    /// TRPO: the measured mean KL(old ‖ new) of the accepted step (`None`: no step accepted,
    /// or another optimiser).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kl: Option<f32>,
    /// TRPO: steps the line search rejected this iteration (`None` for other optimisers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backtracks: Option<u32>,
}
