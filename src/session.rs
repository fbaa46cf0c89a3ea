//! One person's adaptation session: a CAVIA context vector adapted on-device by policy-gradient
//! steps, a summary of the person's feedback so far, the items already shown, the reward
//! baseline and the context's optimiser state.
//!
//! The shared policy network (parameters and item matrix) lives in an [`Engine`]; a session only
//! holds what is personal, so it is small, serialises to bytes and restores exactly. The policy
//! is `π(j | x) = softmax(MLP(x) · e_j / T)` over items not yet shown, where the network's input
//! `x = [c, s]` is the context `c` followed by the feedback summary `s` (see [`summary_width`]):
//! the meta-trained network reads what the person liked from `s` (amortised adaptation), and
//! each reaction also moves `c` by one REINFORCE step (gradient adaptation), or, for a policy
//! meta-trained to adapt the whole network, takes that step on the person's own copy of the
//! network ([`OwnNetwork`]).

use crate::engine::{
    Batch, ContextState, ContextStep, Engine, EngineError, Loss, Mask, OptimizerState, Result, Row,
    SlateSpec,
};
use crate::model::ModelConfig;
use serde::{Deserialize, Serialize};

/// Width of the feedback summary that ends the policy's input, for item vectors of `item_dim`
/// values: the reward-weighted sum of the item vectors reacted to, the (1 − reward)-weighted
/// sum, the summed reward and the summed (1 − reward); all divided by (reactions + κ), κ =
/// [`AdaptConfig::summary_prior`], so the summary starts at zero and its scale grows with the
/// evidence (κ = 1: means from the first reaction on; κ large: sums, as a ridge regression's
/// evidence term grows against its prior).
pub fn summary_width(item_dim: usize) -> usize {
    2 * item_dim + 2
}

/// What a reaction's policy-gradient step changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Adapts {
    /// Only the person's context vector (CAVIA): the shared network stays as it is, so a
    /// session is small and many people can share one engine.
    #[default]
    Context,
    /// Every network parameter (Reptile / first-order MAML style, and RL from scratch): in
    /// the engine as it is for a session without an [`OwnNetwork`] (set its parameters back
    /// before the next person), or in the session's own copy (what the browser runs).
    Network,
}

/// How a session adapts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdaptConfig {
    /// Step size of the context update (Adam on the context vector).
    pub lr: f32,
    /// Softmax temperature of the policy.
    pub temperature: f32,
    /// Entropy bonus of the inner REINFORCE loss.
    pub entropy: f32,
    /// Decay of the running-mean reward baseline.
    pub baseline_decay: f32,
    /// Whether feedback adapts the policy at all, through the context and the feedback summary
    /// (off: a fixed policy, for ablations).
    pub enabled: bool,
    /// What the policy-gradient step changes.
    #[serde(default)]
    pub adapts: Adapts,
    /// Adam step size of the network's parameters when `adapts` is [`Adapts::Network`].
    #[serde(default = "default_param_lr")]
    pub param_lr: f32,
    /// κ of the feedback summary's divisor (reactions + κ), see [`summary_width`]: the prior
    /// strength, in reactions, the summary's evidence grows against.
    #[serde(default = "default_summary_prior")]
    pub summary_prior: f32,
    /// How the summary's sums are normalised.
    #[serde(default)]
    pub summary: Summary,
}

/// How the feedback summary's two vector sums are normalised before the network reads them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Summary {
    /// Divided by (reactions + κ).
    #[default]
    Mean,
    /// Multiplied by `(κI + Σ e eᵀ)⁻¹` over the item vectors `e` reacted to: each sum becomes
    /// a ridge regression's weights (of the reward, and of 1 − reward, on the item vectors),
    /// which a linear read-out turns into a linear bandit's posterior mean. The counts are
    /// divided by (reactions + κ) as in `Mean`.
    Ridge,
}

fn default_param_lr() -> f32 {
    1e-3
}

fn default_summary_prior() -> f32 {
    1.0
}

impl Default for AdaptConfig {
    fn default() -> Self {
        AdaptConfig {
            lr: 0.1,
            temperature: 1.0,
            entropy: 0.0,
            baseline_decay: 0.8,
            enabled: true,
            adapts: Adapts::Context,
            param_lr: default_param_lr(),
            summary_prior: default_summary_prior(),
            summary: Summary::Mean,
        }
    }
}

/// A recommended item.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub item: u32,
    /// The policy's logit for the item (`u · e_j / T`).
    pub score: f32,
    /// Probability of the item at its slate position given the items before it.
    pub propensity: f32,
}

/// One reaction the session learned from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    pub item: u32,
    pub reward: f32,
}

/// The network of a session that adapts it ([`Adapts::Network`]) and owns it: its parameters
/// and Adam state, loaded into the engine before every use and read back after every step, so
/// the person's network survives reloads and device loss and one engine can serve several
/// sessions in turn. Sessions without one use the engine's network as it is (meta-training).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OwnNetwork {
    pub params: Vec<f32>,
    pub optimizer: OptimizerState,
}

/// What a session serialises (see [`Session::to_bytes`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub config: AdaptConfig,
    /// The adapted context vector (the first part of the network's input).
    pub context: Vec<f32>,
    /// Unnormalised feedback summary (see [`summary_width`]).
    sums: Vec<f32>,
    /// `Σ e eᵀ` over the item vectors reacted to (row-major, item width squared) for a
    /// [`Summary::Ridge`] session; empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    gram: Vec<f32>,
    /// Items shown so far, as mask words over the catalog.
    shown: Vec<u32>,
    pub history: Vec<Interaction>,
    pub baseline: f32,
    adam_m: Vec<f32>,
    adam_v: Vec<f32>,
    adam_t: u32,
    /// Counter of the sampling RNG, so a restored session continues the same stream.
    pub draws: u32,
    pub seed: u32,
    /// The person's own network, when the session adapts and owns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<OwnNetwork>,
}

/// Magic and version of serialised sessions.
const MAGIC: &[u8; 8] = b"MRSESS02";

impl Session {
    /// A fresh session for a policy network described by `model`: zero context (the
    /// meta-learned start) and an empty feedback summary.
    pub fn new(model: &ModelConfig, config: AdaptConfig, seed: u32) -> Self {
        let summary = summary_width(model.output);
        let context = model.input.saturating_sub(summary);
        Session {
            config,
            context: vec![0.0; context],
            sums: vec![0.0; summary],
            gram: match config.summary {
                Summary::Mean => Vec::new(),
                Summary::Ridge => vec![0.0; model.output * model.output],
            },
            shown: vec![0; model.items().div_ceil(32)],
            history: Vec::new(),
            baseline: 0.0,
            adam_m: vec![0.0; context],
            adam_v: vec![0.0; context],
            adam_t: 0,
            draws: 0,
            seed,
            network: None,
        }
    }

    /// A session that adapts and owns a copy of the network `params` (see [`OwnNetwork`]).
    pub fn owning(model: &ModelConfig, config: AdaptConfig, seed: u32, params: &[f32]) -> Self {
        let zeros = vec![0.0; params.len()];
        Session {
            network: Some(OwnNetwork {
                params: params.to_vec(),
                optimizer: OptimizerState {
                    m: zeros.clone(),
                    v: zeros,
                    step: 0,
                },
            }),
            ..Session::new(model, config, seed)
        }
    }

    /// Puts the session's own network (parameters and Adam state), if it has one, into `engine`.
    fn load_network(&self, engine: &mut impl Engine) -> Result<()> {
        if let Some(n) = &self.network {
            engine.set_params(&n.params)?;
            engine.set_optimizer_state(&n.optimizer)?;
        }
        Ok(())
    }

    fn mask(&self) -> Mask {
        Mask {
            words: self.shown.clone(),
            words_per_row: self.shown.len(),
        }
    }

    /// Restricts recommendations to `candidates` (e.g. the items a logged user rated): every
    /// other item is treated as already shown.
    pub fn restrict_to(&mut self, candidates: &[u32]) {
        let mut keep = vec![0u32; self.shown.len()];
        for &c in candidates {
            if let Some(w) = keep.get_mut(c as usize / 32) {
                *w |= 1 << (c % 32);
            }
        }
        for (s, k) in self.shown.iter_mut().zip(keep) {
            *s |= !k;
        }
    }

    /// The mask words of the items shown so far.
    pub fn shown_words(&self) -> &[u32] {
        &self.shown
    }

    /// Whether `item` was shown (and reacted to) already.
    pub fn was_shown(&self, item: u32) -> bool {
        self.mask().get(0, item as usize)
    }

    /// The network's input: the context, then the normalised feedback summary.
    pub fn input(&self) -> Vec<f32> {
        let tail = self.summary_tail(&self.sums, &self.gram, self.history.len());
        self.context.iter().copied().chain(tail).collect()
    }

    /// The normalised feedback summary (the network input's tail) of `sums` and `gram` after
    /// `reactions` reactions ([`Summary`]).
    fn summary_tail(&self, sums: &[f32], gram: &[f32], reactions: usize) -> Vec<f32> {
        let kappa = self.config.summary_prior;
        let scale = 1.0 / (reactions as f32 + kappa);
        let d = sums.len().saturating_sub(2) / 2;
        if self.config.summary != Summary::Ridge || gram.len() != d * d {
            return sums.iter().map(|v| v * scale).collect();
        }
        let a: Vec<f64> = gram.iter().map(|&v| f64::from(v)).collect();
        // the liked and the missed sums: two right-hand sides of one solve
        let b = (0..d)
            .flat_map(|k| [sums[k], sums[d + k]])
            .map(f64::from)
            .collect();
        let x = crate::linalg::solve_ridge_columns(a, b, 2, f64::from(kappa));
        let liked = x.iter().step_by(2);
        let missed = x.iter().skip(1).step_by(2);
        let counts = sums[2 * d..].iter().map(|v| v * scale);
        liked
            .chain(missed)
            .map(|&v| v as f32)
            .chain(counts)
            .collect()
    }

    /// How this session adapts.
    pub fn config(&self) -> &AdaptConfig {
        &self.config
    }

    /// Whether this session fits the policy network `model`.
    pub fn fits(&self, model: &ModelConfig) -> bool {
        model.input == self.context.len() + self.sums.len()
            && self.sums.len() == summary_width(model.output)
            && self
                .network
                .as_ref()
                .is_none_or(|n| n.params.len() == model.param_count())
            && model.items().div_ceil(32) == self.shown.len()
    }

    fn check_engine(&self, engine: &impl Engine) -> Result<usize> {
        let cfg = engine.config();
        if !self.fits(cfg) {
            return Err(EngineError::Input(format!(
                "session made for input width {} and {} mask words, model has {} and {}",
                self.context.len() + self.sums.len(),
                self.shown.len(),
                cfg.input,
                cfg.items().div_ceil(32)
            )));
        }
        Ok(cfg.items())
    }

    /// Recommends `k` items not shown yet: a Gumbel-top-k draw from the policy (exploring) or the
    /// greedy top-k, with each item's logit and propensity, in one engine call
    /// ([`Engine::sample_scored`]: one submit on the GPU, 12 bytes read back per item).
    pub async fn recommend(
        &mut self,
        engine: &mut impl Engine,
        k: usize,
        greedy: bool,
    ) -> Result<Vec<Recommendation>> {
        self.check_engine(engine)?;
        // scoring needs the person's parameters only; their Adam state matters to `feedback`
        if let Some(n) = &self.network {
            engine.set_params(&n.params)?;
        }
        let mask = self.mask();
        let spec = self.spec(k, greedy);
        let input = self.input();
        let (slate, scores) = engine.sample_scored(&input, Some(&mask), spec).await?;
        self.draws = self.draws.wrapping_add(1);
        Ok(slate
            .items
            .iter()
            .zip(&slate.logp)
            .zip(&scores)
            .map(|((&item, &lp), &score)| Recommendation {
                item,
                score,
                // a drawn item has a positive probability, even when it is too small for f32
                propensity: lp.exp().max(f32::MIN_POSITIVE),
            })
            .collect())
    }

    /// Learns from one reaction (when adaptation is on): one REINFORCE step with the running
    /// baseline on the context (or on the engine's network, see [`Adapts`]), and the item's
    /// vector added to the feedback summary; then marks the item shown and records it.
    pub async fn feedback(
        &mut self,
        engine: &mut impl Engine,
        item: u32,
        reward: f32,
    ) -> Result<()> {
        self.check_reaction(engine, item, reward)?;
        if self.config.enabled {
            let batch = self.reaction_batch(item, reward);
            match self.config.adapts {
                Adapts::Context => {
                    let (grad, _) = engine.input_gradient(&batch, self.loss()).await?;
                    self.adam_step(&grad[..self.context.len()]);
                }
                Adapts::Network => {
                    let adam = crate::engine::Adam {
                        lr: self.config.param_lr,
                        clip_norm: 5.0,
                        ..crate::engine::Adam::default()
                    };
                    self.load_network(engine)?;
                    engine.train(&batch, self.loss(), adam, 1)?;
                    if let Some(n) = &mut self.network {
                        n.params = engine.params().await?;
                        n.optimizer = engine.optimizer_state().await?;
                    }
                }
            }
        }
        let sums = self.sums_after(engine, item, reward)?;
        self.record(item, reward, sums);
        Ok(())
    }

    /// One reaction and the next list: [`Session::feedback`] then [`Session::recommend`], with
    /// the same result. A session that adapts its context (and owns no network) takes both in
    /// one engine call ([`Engine::adapt_context`]: one submit on the GPU).
    pub async fn react(
        &mut self,
        engine: &mut impl Engine,
        item: u32,
        reward: f32,
        k: usize,
        greedy: bool,
    ) -> Result<Vec<Recommendation>> {
        let fused =
            self.config.enabled && self.config.adapts == Adapts::Context && self.network.is_none();
        if !fused {
            self.feedback(engine, item, reward).await?;
            return self.recommend(engine, k, greedy).await;
        }
        self.check_reaction(engine, item, reward)?;
        let batch = self.reaction_batch(item, reward);
        let sums = self.sums_after(engine, item, reward)?;
        let next_tail = self.summary_tail(&sums.0, &sums.1, self.history.len() + 1);
        let mut next_mask = self.mask();
        next_mask.set(0, item as usize);
        let step = ContextStep {
            batch: &batch,
            loss: self.loss(),
            adam: self.context_adam(),
            next_tail: &next_tail,
            next_mask: &next_mask,
            spec: self.spec(k, greedy),
        };
        let state = ContextState {
            context: &mut self.context,
            m: &mut self.adam_m,
            v: &mut self.adam_v,
            step: &mut self.adam_t,
        };
        let out = engine.adapt_context(step, state).await?;
        self.record(item, reward, sums);
        self.draws = self.draws.wrapping_add(1);
        Ok(out
            .slate
            .items
            .iter()
            .zip(&out.slate.logp)
            .zip(&out.scores)
            .map(|((&item, &lp), &score)| Recommendation {
                item,
                score,
                propensity: lp.exp().max(f32::MIN_POSITIVE),
            })
            .collect())
    }

    /// Refuses a reaction to an item outside the catalog or already reacted to, or a reward
    /// outside [0, 1].
    fn check_reaction(&self, engine: &impl Engine, item: u32, reward: f32) -> Result<()> {
        let items = self.check_engine(engine)?;
        if item as usize >= items {
            return Err(EngineError::Input(format!(
                "item {item} is outside the catalog of {items} items"
            )));
        }
        if !reward.is_finite() || !(0.0..=1.0).contains(&reward) {
            return Err(EngineError::Input(format!(
                "reward must be in [0, 1], got {reward}"
            )));
        }
        if self.was_shown(item) {
            return Err(EngineError::Input(format!(
                "item {item} already had feedback in this session"
            )));
        }
        Ok(())
    }

    /// The reaction as a one-row batch at the current input, with the running baseline.
    fn reaction_batch(&self, item: u32, reward: f32) -> Batch {
        Batch {
            inputs: self.input(),
            rows: vec![Row {
                action: item,
                reward,
                baseline: self.baseline,
                old_logp: 0.0,
            }],
            mask: Some(self.mask()),
        }
    }

    /// The inner REINFORCE loss.
    fn loss(&self) -> Loss {
        Loss::Reinforce {
            entropy: self.config.entropy,
            temperature: self.config.temperature,
        }
    }

    /// The slate of the next `recommend`.
    fn spec(&self, k: usize, greedy: bool) -> SlateSpec {
        SlateSpec {
            k,
            temperature: self.config.temperature,
            greedy,
            seed: self.seed,
            draw: self.draws,
        }
    }

    /// The feedback summary's sums and Gram matrix after the reaction (unchanged when
    /// adaptation is off).
    fn sums_after(
        &self,
        engine: &impl Engine,
        item: u32,
        reward: f32,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let mut sums = self.sums.clone();
        let mut gram = self.gram.clone();
        if self.config.enabled {
            let e = engine.item_vector(item)?;
            let d = e.len();
            for (k, v) in e.iter().enumerate() {
                sums[k] += reward * v;
                sums[d + k] += (1.0 - reward) * v;
            }
            sums[2 * d] += reward;
            sums[2 * d + 1] += 1.0 - reward;
            if gram.len() == d * d {
                for (row, a) in gram.chunks_exact_mut(d).zip(&e) {
                    for (g, b) in row.iter_mut().zip(&e) {
                        *g += a * b;
                    }
                }
            }
        }
        Ok((sums, gram))
    }

    /// Records a reaction: the new sums and Gram matrix, the baseline, the item shown, the
    /// history.
    fn record(&mut self, item: u32, reward: f32, (sums, gram): (Vec<f32>, Vec<f32>)) {
        self.sums = sums;
        self.gram = gram;
        let d = self.config.baseline_decay;
        self.baseline = d * self.baseline + (1.0 - d) * reward;
        self.shown[item as usize / 32] |= 1 << (item % 32);
        self.history.push(Interaction { item, reward });
    }

    /// Adam of the context step (no clipping).
    fn context_adam(&self) -> crate::engine::Adam {
        crate::engine::Adam {
            lr: self.config.lr,
            ..crate::engine::Adam::default()
        }
    }

    fn adam_step(&mut self, grad: &[f32]) {
        let adam = self.context_adam();
        let mut state = ContextState {
            context: &mut self.context,
            m: &mut self.adam_m,
            v: &mut self.adam_v,
            step: &mut self.adam_t,
        };
        crate::engine::interaction::host_step(grad, adam, &mut state);
    }

    /// Versioned bytes: magic, then the session as JSON.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = MAGIC.to_vec();
        serde_json::to_writer(&mut out, self)
            .map_err(|e| EngineError::Input(format!("could not serialise the session: {e}")))?;
        Ok(out)
    }

    /// Restores a session written by [`Session::to_bytes`]; refuses other versions and
    /// corrupted bytes with a clear message.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let body = bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(|| {
            EngineError::Input(
                "not a metarec session of this version (bad magic or version)".into(),
            )
        })?;
        let s: Session = serde_json::from_slice(body)
            .map_err(|e| EngineError::Input(format!("corrupted session: {e}")))?;
        let n = s.context.len();
        let finite = s
            .context
            .iter()
            .chain(&s.sums)
            .chain(&s.gram)
            .all(|v| v.is_finite());
        let d = s.sums.len().saturating_sub(2) / 2;
        let gram_ok = match s.config.summary {
            Summary::Mean => s.gram.is_empty(),
            Summary::Ridge => s.gram.len() == d * d,
        };
        let network_ok = s.network.as_ref().is_none_or(|w| {
            let p = w.params.len();
            w.optimizer.m.len() == p
                && w.optimizer.v.len() == p
                && w.params.iter().all(|v| v.is_finite())
        });
        let kappa = s.config.summary_prior;
        let kappa_ok = kappa.is_finite() && kappa > 0.0;
        if s.adam_m.len() != n
            || s.adam_v.len() != n
            || s.sums.len() < 2
            || !finite
            || !network_ok
            || !kappa_ok
            || !gram_ok
        {
            return Err(EngineError::Input(
                "corrupted session: inconsistent or non-finite state".into(),
            ));
        }
        Ok(s)
    }
}
