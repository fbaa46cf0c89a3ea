//! Meta-reinforcement learning across users (each user is a task): every episode adapts by the
//! same on-device REINFORCE steps a [`Session`] takes, and the shared parameters are learned,
//! first order, from the rewards the adapted policies earn. Three outer loops ([`Algorithm`]):
//! CAVIA adapts only a per-user context vector in the network's input (zero for every new
//! user), so a new person's policy adapts within a few reactions by changing only their
//! context; Reptile and first-order MAML adapt every parameter per user, and a person's session
//! then adapts its own copy of the network. Also: the episodes, the policy's item vectors and
//! start, and checkpoints that resume a run exactly.

use crate::data::{ItemFeatures, Shown, UserTask};
use crate::engine::{Adam, Batch, Engine, EngineError, Loss, Mask, OptimizerState, Result, Row};
use crate::model::{Activation, Head, Init, ModelConfig};
use crate::session::{AdaptConfig, Adapts, Session};
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

/// Strength (in ratings) of the prior that smooths an item's mean rating towards the global one.
pub const QUALITY_PRIOR: f64 = 10.0;

/// Item vectors for the policy, row-major `items × dim`: the item features plus one "quality"
/// column, the item's mean rating smoothed towards the global mean (a prior of
/// [`QUALITY_PRIOR`] ratings) over `ratings` (the training ratings only); every column
/// standardised (zero mean, unit variance; constant columns become zero).
///
/// [`ItemVectors::with_prior`] appends one more column, a prior score per item (the fine-tuned
/// rating network's prediction for a new user), and a policy over such vectors starts at that
/// prior ([`policy_start`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ItemVectors {
    pub values: Vec<f32>,
    pub dim: usize,
    /// Columns of collaborative factors ([`ItemVectors::with_factors`]), after the features.
    pub factors: usize,
    /// The last column is a prior score ([`ItemVectors::with_prior`]).
    pub prior: bool,
}

impl ItemVectors {
    pub fn new(features: &ItemFeatures, ratings: &[crate::data::Rating]) -> Self {
        let n = features.n_items();
        let d0 = features.layout.dim();
        let global =
            ratings.iter().map(|r| r.value as f64).sum::<f64>() / ratings.len().max(1) as f64;
        let mut sum = vec![0.0f64; n];
        let mut count = vec![0.0f64; n];
        for r in ratings.iter().filter(|r| (r.item as usize) < n) {
            sum[r.item as usize] += r.value as f64;
            count[r.item as usize] += 1.0;
        }
        let dim = d0 + 1;
        let mut values = Vec::with_capacity(n * dim);
        for i in 0..n {
            values.extend(&features.values[i * d0..(i + 1) * d0]);
            values.push(((sum[i] + QUALITY_PRIOR * global) / (count[i] + QUALITY_PRIOR)) as f32);
        }
        for c in 0..dim {
            standardise_column(&mut values, dim, c);
        }
        ItemVectors {
            values,
            dim,
            factors: 0,
            prior: false,
        }
    }

    /// These vectors with collaborative item factors appended (`factors`, row-major, `dim`
    /// columns per item, e.g. [`crate::data::like_factors`] of the training users): the block
    /// is scaled as a whole so its columns' mean variance is 1, keeping the leading factors
    /// larger than the trailing ones. Must come before [`ItemVectors::with_prior`].
    pub fn with_factors(self, factors: &[f32], dim: usize) -> Self {
        let n = self.values.len() / self.dim.max(1);
        if dim == 0 || factors.len() != n * dim {
            return self;
        }
        let mut variance = 0.0f64;
        for c in 0..dim {
            let col = (0..n).map(|i| f64::from(factors[i * dim + c]));
            let mean = col.clone().sum::<f64>() / n.max(1) as f64;
            variance += col.map(|v| (v - mean).powi(2)).sum::<f64>() / n.max(1) as f64;
        }
        let scale = (variance / dim as f64).sqrt();
        let scale = if scale > 1e-12 { 1.0 / scale } else { 0.0 };
        let width = self.dim + dim;
        let mut values = Vec::with_capacity(n * width);
        for (row, f) in self
            .values
            .chunks_exact(self.dim.max(1))
            .zip(factors.chunks_exact(dim))
        {
            values.extend_from_slice(row);
            values.extend(f.iter().map(|&v| (f64::from(v) * scale) as f32));
        }
        ItemVectors {
            values,
            dim: width,
            factors: self.factors + dim,
            prior: self.prior,
        }
    }

    /// These vectors with `scores` (one per item, e.g. the fine-tuned rating network's
    /// predicted rating for a new user), standardised, appended as the last column.
    pub fn with_prior(self, scores: &[f32]) -> Self {
        let dim = self.dim + 1;
        let mut values = Vec::with_capacity(scores.len() * dim);
        for (row, &v) in self.values.chunks_exact(self.dim.max(1)).zip(scores) {
            values.extend_from_slice(row);
            values.push(v);
        }
        standardise_column(&mut values, dim, dim - 1);
        ItemVectors {
            values,
            dim,
            factors: self.factors,
            prior: true,
        }
    }
}

/// What an item vector is made of, recorded with a trained policy so that whoever uses it
/// (the page, a [`Session`]) knows the design meta-training used: `features` content columns
/// (genres, year, popularity, smoothed mean rating and, where embedded, the text), then
/// `factors` collaborative factors, then the prior column when `prior`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemVectorParts {
    pub features: usize,
    pub factors: usize,
    pub prior: bool,
}

impl ItemVectors {
    /// The parts of these vectors.
    pub fn parts(&self) -> ItemVectorParts {
        ItemVectorParts {
            features: self.dim - self.factors - usize::from(self.prior),
            factors: self.factors,
            prior: self.prior,
        }
    }
}

/// Collaborative factors in the item vectors of a policy meta-trained on a dataset (and in
/// `metarec eval`'s by default).
pub const DATASET_FACTORS: usize = 32;

/// Standardises column `c` of the row-major `values` (`dim` columns) in place: zero mean, unit
/// variance; a constant column becomes zero.
fn standardise_column(values: &mut [f32], dim: usize, c: usize) {
    let n = values.len() / dim;
    let col = (0..n).map(|i| values[i * dim + c] as f64);
    let mean = col.clone().sum::<f64>() / n.max(1) as f64;
    let sd = (col.map(|v| (v - mean).powi(2)).sum::<f64>() / n.max(1) as f64).sqrt();
    for i in 0..n {
        let v = &mut values[i * dim + c];
        *v = if sd > 1e-9 {
            ((*v as f64 - mean) / sd) as f32
        } else {
            0.0
        };
    }
}

/// Logit scale of the prior column in a policy's start ([`policy_start`]): the start samples
/// items in proportion to `exp(PRIOR_SCALE × standardised prior / temperature)`.
pub const PRIOR_SCALE: f32 = 2.0;

/// The parameters a policy over `vectors` starts meta-training from. With a prior column the
/// policy starts *at the prior*: the output layer's weights are zero and its bias is
/// [`PRIOR_SCALE`] on the prior column, so every item's logit is `PRIOR_SCALE ×` its prior,
/// whatever the person's context (a network initialised from the fine-tuned rating network:
/// its ranking for a new user); meta-training then learns how the context and the feedback move
/// away from it. Without one, the configured random initialisation.
pub fn policy_start(model: &ModelConfig, vectors: &ItemVectors) -> Vec<f32> {
    let mut params = model.init_params();
    if let (true, Some(last), Some(&offset)) =
        (vectors.prior, model.layers().last(), model.offsets().last())
    {
        let weights = last.inputs * last.outputs;
        params[offset..offset + weights].fill(0.0);
        let bias = &mut params[offset + weights..offset + weights + last.outputs];
        bias.fill(0.0);
        bias[last.outputs - 1] = PRIOR_SCALE;
    }
    params
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
    /// CAVIA: outer steps per meta-iteration on its batch of episodes: 1 is plain REINFORCE;
    /// more reuse the batch with the PPO-clipped surrogate (ratio to the policy that collected
    /// it).
    pub outer_steps: u32,
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
            outer_steps: 1,
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

/// What one episode produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Episode {
    /// Reward summed over the slate, per round.
    pub rewards: Vec<f32>,
    /// Round of each transition.
    rounds: Vec<usize>,
    /// The transitions, each with the network input it was chosen under.
    inputs: Vec<f32>,
    rows: Vec<Row>,
    masks: Vec<u32>,
}

/// Runs one episode of `task` from a fresh session, adapting online as the person's device
/// would (when `adapt.enabled`).
pub async fn run_episode(
    engine: &mut impl Engine,
    task: &mut impl UserTask,
    adapt: AdaptConfig,
    slate: usize,
    seed: u32,
) -> Result<Episode> {
    let items = engine.config().items();
    let mut session = Session::new(engine.config(), adapt, seed);
    if task.candidates().len() < items {
        session.restrict_to(task.candidates());
    }
    let mut ep = Episode {
        rewards: Vec::new(),
        rounds: Vec::new(),
        inputs: Vec::new(),
        rows: Vec::new(),
        masks: Vec::new(),
    };
    let fail = |e: crate::data::DataError| EngineError::Input(e.to_string());
    while !task.done() {
        let k = slate.min(task.candidates().len());
        if k == 0 {
            break;
        }
        let input = session.input();
        let mask = session.shown_words().to_vec();
        let recs = session.recommend(engine, k, false).await?;
        let shown: Vec<Shown> = recs
            .iter()
            .map(|r| Shown {
                item: r.item,
                propensity: r.propensity,
            })
            .collect();
        let rewards = task.step(&shown).map_err(fail)?;
        let baseline = session.baseline;
        for (rec, &reward) in recs.iter().zip(&rewards) {
            ep.inputs.extend(&input);
            ep.rounds.push(ep.rewards.len());
            ep.masks.extend(&mask);
            ep.rows.push(Row {
                action: rec.item,
                reward,
                baseline,
                old_logp: rec.propensity.ln(),
            });
            session.feedback(engine, rec.item, reward).await?;
        }
        ep.rewards.push(rewards.iter().sum());
    }
    Ok(ep)
}

impl Episode {
    /// The transitions of rounds `from..` (a suffix: rounds only grow) as a training batch.
    fn batch_from(&self, from: usize, words_per_row: usize) -> Batch {
        let start = self.rounds.partition_point(|&t| t < from);
        let width = self.inputs.len() / self.rows.len().max(1);
        Batch {
            inputs: self.inputs[start * width..].to_vec(),
            rows: self.rows[start..].to_vec(),
            mask: Some(Mask {
                words: self.masks[start * words_per_row..].to_vec(),
                words_per_row,
            }),
        }
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
}

/// One meta-iteration of `cfg.algorithm`: an adapted episode for each task, then one outer
/// update of the shared network.
pub async fn meta_step<T: UserTask>(
    engine: &mut impl Engine,
    tasks: Vec<T>,
    cfg: &MetaConfig,
    iteration: usize,
) -> Result<MetaProgress> {
    match cfg.algorithm {
        Algorithm::Cavia => cavia_step(engine, tasks, cfg, iteration).await,
        Algorithm::Reptile | Algorithm::Fomaml => network_step(engine, tasks, cfg, iteration).await,
    }
}

/// CAVIA: one outer step on all the episodes' transitions (first order: contexts and summaries
/// are treated as inputs).
async fn cavia_step<T: UserTask>(
    engine: &mut impl Engine,
    tasks: Vec<T>,
    cfg: &MetaConfig,
    iteration: usize,
) -> Result<MetaProgress> {
    let adapt = AdaptConfig {
        adapts: Adapts::Context,
        ..cfg.adapt
    };
    let mut batch = Batch::default();
    let mut words = Vec::new();
    let mut rewards = Vec::new();
    for (u, mut task) in tasks.into_iter().enumerate() {
        let seed = cfg.seed ^ ((iteration * 7919 + u) as u32);
        let ep = run_episode(engine, &mut task, adapt, cfg.slate, seed).await?;
        batch.inputs.extend(ep.inputs);
        batch.rows.extend(ep.rows);
        words.extend(ep.masks);
        rewards.extend(ep.rewards);
    }
    let items = engine.config().items();
    let mask = Mask {
        words,
        words_per_row: items.div_ceil(32),
    };
    let (entropy, temperature) = (cfg.adapt.entropy, cfg.adapt.temperature);
    let loss = if cfg.outer_steps > 1 {
        // The ratio's reference is π_old(a | x) under each row's own mask (a slate's later
        // items were drawn with its earlier ones excluded, so their propensities differ).
        let logp = engine
            .log_probs(&batch.inputs, Some(&mask), temperature)
            .await?;
        for (r, row) in batch.rows.iter_mut().enumerate() {
            row.old_logp = logp[r * items + row.action as usize];
        }
        Loss::Ppo {
            entropy,
            temperature,
            clip: 0.2,
        }
    } else {
        Loss::Reinforce {
            entropy,
            temperature,
        }
    };
    batch.mask = Some(mask);
    engine.reset_stats()?;
    engine.train(&batch, loss, cfg.outer, cfg.outer_steps.max(1))?;
    let stats = engine.stats().await?;
    Ok(MetaProgress {
        iteration,
        mean_reward: rewards.iter().sum::<f32>() / rewards.len().max(1) as f32,
        loss: (stats.steps > 0).then_some(stats.last_loss),
        skipped_total: stats.skipped,
    })
}

/// Reptile and first-order MAML: each task adapts a copy of the whole network (in the
/// engine, from the shared parameters θ); the outer update is computed on the host from the
/// adapted networks (Reptile) or their query gradients (first-order MAML), and the outer Adam
/// state is kept in the engine's optimiser state between iterations (so checkpoints resume
/// exactly).
async fn network_step<T: UserTask>(
    engine: &mut impl Engine,
    tasks: Vec<T>,
    cfg: &MetaConfig,
    iteration: usize,
) -> Result<MetaProgress> {
    let adapt = AdaptConfig {
        adapts: Adapts::Network,
        ..cfg.adapt
    };
    let theta = engine.params().await?;
    let before = engine.optimizer_state().await?;
    let mut outer = before.clone();
    let words_per_row = engine.config().items().div_ceil(32);
    let loss = Loss::Reinforce {
        entropy: cfg.adapt.entropy,
        temperature: cfg.adapt.temperature,
    };
    engine.reset_stats()?;
    let mut sum = vec![0.0f32; theta.len()];
    let (mut rewards, mut losses) = (Vec::new(), Vec::new());
    let mut contributions = 0usize;
    for (u, mut task) in tasks.into_iter().enumerate() {
        let seed = cfg.seed ^ ((iteration * 7919 + u) as u32);
        engine.set_params(&theta)?;
        let ep = run_episode(engine, &mut task, adapt, cfg.slate, seed).await?;
        rewards.extend(&ep.rewards);
        let contribution = match cfg.algorithm {
            Algorithm::Fomaml => {
                let query = ep.batch_from(ep.rewards.len() / 2, words_per_row);
                if query.rows.is_empty() {
                    continue;
                }
                let (grad, value) = engine.gradients(&query, loss).await?;
                losses.push(value);
                grad
            }
            _ => {
                let adapted = engine.params().await?;
                adapted.iter().zip(&theta).map(|(a, t)| a - t).collect()
            }
        };
        for (s, c) in sum.iter_mut().zip(contribution) {
            *s += c;
        }
        contributions += 1;
    }
    let stats = engine.stats().await?;
    let mean: Vec<f32> = sum
        .iter()
        .map(|s| s / contributions.max(1) as f32)
        .collect();
    let mut params = theta.clone();
    let value = match cfg.algorithm {
        Algorithm::Fomaml => {
            let norm = mean.iter().map(|g| g * g).sum::<f32>().sqrt();
            outer.step += 1;
            let mut state = crate::engine::AdamState {
                m: &mut outer.m,
                v: &mut outer.v,
                step: outer.step,
            };
            crate::engine::adam_update(&mut params, &mut state, &mean, cfg.outer, norm);
            losses.iter().sum::<f32>() / losses.len().max(1) as f32
        }
        _ => {
            for (p, d) in params.iter_mut().zip(&mean) {
                *p += cfg.reptile_step * d;
            }
            stats.mean_loss
        }
    };
    let finite = params.iter().all(|p| p.is_finite()) && value.is_finite();
    engine.set_params(if finite { &params } else { &theta })?;
    engine.set_optimizer_state(if finite { &outer } else { &before })?;
    Ok(MetaProgress {
        iteration,
        mean_reward: rewards.iter().sum::<f32>() / rewards.len().max(1) as f32,
        loss: finite.then_some(value),
        skipped_total: stats.skipped + u32::from(!finite),
    })
}

/// Collaborative factors in a synthetic world's item vectors (its latent style has 4
/// dimensions besides the genres).
pub const SYNTHETIC_FACTORS: usize = 8;

/// A synthetic world ready for meta-training: the world, its logged ratings, the item vectors
/// (content features and the population's collaborative factors, [`ItemVectors`]) and the
/// policy's model description.
pub struct SyntheticSetup {
    pub world: crate::data::World,
    pub ratings: crate::data::Dataset,
    pub items: Vec<f32>,
    pub parts: ItemVectorParts,
    pub model: ModelConfig,
}

impl SyntheticSetup {
    /// Generates the world for `world` and describes a policy for it.
    pub fn new(
        world: crate::data::WorldConfig,
        shape: &PolicyShape,
        cfg: &MetaConfig,
    ) -> Result<Self> {
        let fail = |e: crate::data::DataError| EngineError::Input(e.to_string());
        let w = crate::data::World::generate(world).map_err(fail)?;
        let ratings = w.dataset(world.seed).map_err(fail)?;
        let features = ItemFeatures::build(&w.catalog, &ratings.ratings);
        // the same design as on a dataset: content features and collaborative factors of the
        // world's own (training) population
        let population: Vec<u32> = (0..ratings.n_users() as u32).collect();
        let factors =
            crate::data::like_factors(&ratings, &population, SYNTHETIC_FACTORS, world.seed);
        let vectors =
            ItemVectors::new(&features, &ratings.ratings).with_factors(&factors, SYNTHETIC_FACTORS);
        let model = policy_config(shape, w.catalog.len(), vectors.dim, cfg.rows());
        Ok(SyntheticSetup {
            parts: vectors.parts(),
            items: vectors.values,
            world: w,
            ratings,
            model,
        })
    }

    /// The tasks of meta-iteration `iteration`: consecutive users, wrapping around.
    pub fn tasks(&self, cfg: &MetaConfig, iteration: usize) -> Vec<crate::data::SyntheticTask<'_>> {
        let n = self.world.n_users();
        (0..cfg.users_per_iteration)
            .map(|k| {
                let u = ((iteration * cfg.users_per_iteration + k) % n) as u32;
                let seed = ((cfg.seed as u64) << 32) ^ (iteration as u64 * 65_537 + u as u64);
                self.world.task(u, cfg.rounds, seed)
            })
            .collect()
    }

    /// A bundle with the catalog, the item features and the policy that `engine` holds.
    pub async fn bundle(
        &self,
        engine: &mut impl Engine,
        adapt: AdaptConfig,
    ) -> Result<crate::data::Bundle> {
        let policy = crate::policy::Policy::from_engine(engine, self.items.clone(), adapt)
            .await?
            .with_parts(self.parts);
        let mut bundle =
            crate::data::Bundle::from_catalog(&self.world.catalog, &self.ratings.ratings);
        policy.store(&mut bundle)?;
        Ok(bundle)
    }
}

/// Format tag of meta-training checkpoints.
pub const CHECKPOINT_FORMAT: &str = "metarec-checkpoint/1";

/// Everything needed to continue meta-training exactly where it stopped: with the same
/// configuration and seed, a resumed run reaches the same parameters as an uninterrupted one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: String,
    /// The next meta-iteration to run.
    pub iteration: usize,
    pub model: ModelConfig,
    pub params: Vec<f32>,
    pub optimizer: OptimizerState,
    pub history: Vec<MetaProgress>,
}

impl Checkpoint {
    /// Captures `engine`'s parameters and optimiser state before meta-iteration `iteration`.
    pub async fn capture(
        engine: &mut impl Engine,
        iteration: usize,
        history: &[MetaProgress],
    ) -> Result<Self> {
        Ok(Checkpoint {
            format: CHECKPOINT_FORMAT.into(),
            iteration,
            model: engine.config().clone(),
            params: engine.params().await?,
            optimizer: engine.optimizer_state().await?,
            history: history.to_vec(),
        })
    }

    /// Puts the parameters and optimiser state back into `engine` (same model configuration).
    pub fn restore_into(&self, engine: &mut impl Engine) -> Result<()> {
        if engine.config() != &self.model {
            return Err(EngineError::Input(
                "the checkpoint was made for another model configuration".into(),
            ));
        }
        engine.set_params(&self.params)?;
        engine.set_optimizer_state(&self.optimizer)
    }

    /// JSON bytes (f32 values round-trip exactly).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self)
            .map_err(|e| EngineError::Input(format!("could not serialise the checkpoint: {e}")))
    }

    /// Reads a checkpoint, refusing other formats and corrupted files clearly.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let c: Checkpoint = serde_json::from_slice(bytes)
            .map_err(|e| EngineError::Input(format!("corrupted checkpoint: {e}")))?;
        if c.format != CHECKPOINT_FORMAT {
            return Err(EngineError::Input(format!(
                "checkpoint is '{}', this build reads '{CHECKPOINT_FORMAT}'",
                c.format
            )));
        }
        Ok(c)
    }

    /// Writes atomically (a temporary file, then a rename), so an interrupted write never
    /// leaves a broken checkpoint behind.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn write(&self, path: &std::path::Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, self.to_bytes().map_err(std::io::Error::other)?)?;
        std::fs::rename(&tmp, path)
    }
}

/// How a meta-training run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct RunResult {
    pub history: Vec<MetaProgress>,
    /// False when `should_stop` ended the run early (a checkpoint was saved first).
    pub completed: bool,
}

/// Callbacks of [`run`].
pub struct Hooks<P, S, C> {
    /// Sees every finished iteration.
    pub on_progress: P,
    /// Polled after every iteration (e.g. a Ctrl-C flag); true ends the run after a checkpoint.
    pub should_stop: S,
    /// Receives a checkpoint every `every` iterations, at the end and before an early stop.
    pub save: C,
    pub every: usize,
}

/// Runs meta-iterations from `start` (a checkpoint, or the engine's current state) up to
/// `cfg.iterations`. `tasks(i)` gives iteration i's tasks, so a resumed run sees exactly the
/// tasks an uninterrupted one would.
pub async fn run<E, T, P, S, C>(
    engine: &mut E,
    cfg: &MetaConfig,
    start: Option<Checkpoint>,
    mut tasks: impl FnMut(usize) -> Vec<T>,
    mut hooks: Hooks<P, S, C>,
) -> Result<RunResult>
where
    E: Engine,
    T: UserTask,
    P: FnMut(&MetaProgress),
    S: FnMut() -> bool,
    C: FnMut(&Checkpoint) -> Result<()>,
{
    let (first, mut history) = match start {
        Some(c) => {
            c.restore_into(engine)?;
            (c.iteration, c.history)
        }
        None => (0, Vec::new()),
    };
    for it in first..cfg.iterations {
        let p = meta_step(engine, tasks(it), cfg, it).await?;
        (hooks.on_progress)(&p);
        history.push(p);
        let stop = (hooks.should_stop)();
        let periodic = hooks.every > 0 && (it + 1) % hooks.every == 0;
        if stop || periodic || it + 1 == cfg.iterations {
            (hooks.save)(&Checkpoint::capture(engine, it + 1, &history).await?)?;
        }
        if stop && it + 1 < cfg.iterations {
            return Ok(RunResult {
                history,
                completed: false,
            });
        }
    }
    Ok(RunResult {
        history,
        completed: true,
    })
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::engine::cpu::CpuEngine;
    use pollster::block_on;

    /// Greedy ranking of every item by a fresh session, after `likes` reactions of 1.
    fn ranking(model: &ModelConfig, params: &[f32], items: &[f32], likes: &[u32]) -> Vec<u32> {
        let mut engine = CpuEngine::new(model).unwrap();
        engine.set_params(params).unwrap();
        engine.set_items(items).unwrap();
        let mut session = Session::new(model, AdaptConfig::default(), 5);
        for &item in likes {
            block_on(session.feedback(&mut engine, item, 1.0)).unwrap();
        }
        let n = model.items() - likes.len();
        block_on(session.recommend(&mut engine, n, true))
            .unwrap()
            .iter()
            .map(|r| r.item)
            .collect()
    }

    /// Collaborative factors are appended as one block, scaled to a mean column variance of
    /// 1 with their relative sizes kept, before the prior column; the parts add up.
    #[test]
    fn factors_are_one_scaled_block_before_the_prior() {
        let n = 6;
        let plain = ItemVectors {
            values: (0..n * 2).map(|i| i as f32).collect(),
            dim: 2,
            factors: 0,
            prior: false,
        };
        // column 0 has 4 times the spread of column 1
        let factors: Vec<f32> = (0..n)
            .flat_map(|i| [4.0 * (i as f32 - 2.5), i as f32 - 2.5])
            .collect();
        let v = plain
            .with_factors(&factors, 2)
            .with_prior(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(v.dim, 5);
        let column = |c: usize| -> Vec<f32> { v.values.chunks(5).map(|r| r[c]).collect() };
        let var = |c: usize| column(c).iter().map(|x| x * x).sum::<f32>() / n as f32;
        assert!(((var(2) + var(3)) / 2.0 - 1.0).abs() < 1e-5);
        assert!((var(2) / var(3) - 16.0).abs() < 1e-3);
        assert_eq!(column(0), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(
            v.parts(),
            ItemVectorParts {
                features: 2,
                factors: 2,
                prior: true
            }
        );
    }

    #[test]
    fn a_policy_over_a_prior_starts_at_the_prior_whatever_the_person_did() {
        let n = 40;
        let values: Vec<f32> = (0..n * 3)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0)
            .collect();
        let scores: Vec<f32> = (0..n).map(|i| ((i * 13 % 40) as f32) * 0.1 + 1.0).collect();
        let plain = ItemVectors {
            values: values.clone(),
            dim: 3,
            factors: 0,
            prior: false,
        };
        let vectors = plain.clone().with_prior(&scores);
        assert_eq!(vectors.dim, 4);
        let column: Vec<f32> = vectors.values.chunks(4).map(|r| r[3]).collect();
        let mean = column.iter().sum::<f32>() / n as f32;
        let var = column.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n as f32;
        assert!(
            mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
            "{mean} {var}"
        );
        for (row, old) in vectors.values.chunks(4).zip(values.chunks(3)) {
            assert_eq!(&row[..3], old, "the other columns are kept");
        }

        let mut by_prior: Vec<u32> = (0..n as u32).collect();
        by_prior.sort_by(|&a, &b| scores[b as usize].total_cmp(&scores[a as usize]));
        let model = policy_config(&PolicyShape::default(), n, vectors.dim, 8);
        let start = policy_start(&model, &vectors);
        assert_eq!(ranking(&model, &start, &vectors.values, &[]), by_prior);
        // reactions change the context and the feedback summary, not the start's ranking
        let likes = [by_prior[30], by_prior[35]];
        let rest: Vec<u32> = by_prior
            .iter()
            .copied()
            .filter(|i| !likes.contains(i))
            .collect();
        assert_eq!(ranking(&model, &start, &vectors.values, &likes), rest);
        // without a prior the start is the random initialisation, which ranks otherwise
        let plain_model = policy_config(&PolicyShape::default(), n, plain.dim, 8);
        let random = policy_start(&plain_model, &plain);
        assert_eq!(random, plain_model.init_params());
        assert_ne!(ranking(&plain_model, &random, &plain.values, &[]), by_prior);
    }
}
