//! Environments: each user is a task. A policy shows slates of candidate items; the task
//! answers one reward per shown item and logs every shown item with the propensity the policy
//! had of showing it (for off-policy estimates).
//!
//! Three tasks share the [`UserTask`] interface: [`ObservedTask`] (logged ratings: only the
//! items the user rated, or the full catalog with unrated items as misses),
//! [`SimulatedTask`] (the full catalog, rewards from a fitted [`LatentFactorModel`]), and the
//! synthetic world's task ([`super::synthetic::SyntheticTask`]).
use super::dataset::{Dataset, Rating, RatingScale};
use super::error::DataError;
use super::mf::LatentFactorModel;
use super::sampling::{categorical, normal, softmax};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{HashMap, HashSet};

/// One item put in front of the user, with the probability the showing policy had of choosing
/// it at its slate position (given the items placed before it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shown {
    /// Dense item index.
    pub item: u32,
    /// Propensity in (0, 1].
    pub propensity: f32,
}

/// A logged impression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogEntry {
    /// Step (0-based) of the episode.
    pub step: usize,
    /// Position in the slate (0-based).
    pub position: usize,
    /// Dense item index.
    pub item: u32,
    /// The propensity given with the item.
    pub propensity: f32,
    /// The reward the item earned.
    pub reward: f32,
}

/// A user as a reinforcement-learning task.
pub trait UserTask {
    /// Dense user index.
    fn user(&self) -> u32;
    /// Items that may be shown now: never shown before in this episode.
    fn candidates(&self) -> &[u32];
    /// Episode length T (slates per episode).
    fn horizon(&self) -> usize;
    /// Slates shown so far.
    fn steps(&self) -> usize;
    /// Whether the episode is over (T slates shown or no candidates left).
    fn done(&self) -> bool {
        self.steps() >= self.horizon() || self.candidates().is_empty()
    }
    /// Shows a slate of distinct candidates and returns one reward per item, in slate order.
    /// Fails (changing nothing) on an empty slate, a non-candidate or repeated item, a
    /// propensity outside (0, 1], or when the episode is over.
    fn step(&mut self, slate: &[Shown]) -> Result<Vec<f32>, DataError>;
    /// Every item shown so far.
    fn log(&self) -> &[LogEntry];
}

/// How ratings become rewards.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RewardMode {
    /// 1 when the rating is at least `threshold`, else 0.
    Binary {
        /// Like threshold (4 on a 5-star scale by default).
        threshold: f32,
    },
    /// The rating scaled to 0..=1 over the rating scale.
    Graded,
}

impl Default for RewardMode {
    fn default() -> Self {
        RewardMode::Binary { threshold: 4.0 }
    }
}

impl RewardMode {
    fn reward(self, rating: f32, scale: RatingScale) -> f32 {
        match self {
            RewardMode::Binary { threshold } => f32::from(u8::from(rating >= threshold)),
            RewardMode::Graded => {
                let span = scale.max - scale.min;
                if span > 0.0 {
                    ((rating - scale.min) / span).clamp(0.0, 1.0)
                } else {
                    1.0
                }
            }
        }
    }
}

/// The bookkeeping every task shares: candidates, step count, log.
#[derive(Debug, Clone)]
pub(crate) struct TaskCore {
    pub user: u32,
    pub candidates: Vec<u32>,
    available: HashSet<u32>,
    pub horizon: usize,
    pub steps: usize,
    pub log: Vec<LogEntry>,
}

impl TaskCore {
    pub fn new(user: u32, candidates: Vec<u32>, horizon: usize) -> Self {
        TaskCore {
            user,
            available: candidates.iter().copied().collect(),
            candidates,
            horizon,
            steps: 0,
            log: Vec::new(),
        }
    }

    pub fn done(&self) -> bool {
        self.steps >= self.horizon || self.candidates.is_empty()
    }

    /// Checks a slate against the rules of [`UserTask::step`].
    pub fn check(&self, slate: &[Shown]) -> Result<(), DataError> {
        if self.done() {
            return Err(DataError::Argument(format!(
                "user {}: the episode is over ({} of {} steps)",
                self.user, self.steps, self.horizon
            )));
        }
        if slate.is_empty() {
            return Err(DataError::Argument("empty slate".into()));
        }
        let mut seen = HashSet::new();
        for s in slate {
            if !self.available.contains(&s.item) {
                return Err(DataError::Argument(format!(
                    "user {}: item {} is not a candidate (unknown or already shown)",
                    self.user, s.item
                )));
            }
            if !seen.insert(s.item) {
                return Err(DataError::Argument(format!(
                    "item {} appears twice in the slate",
                    s.item
                )));
            }
            if !(s.propensity > 0.0 && s.propensity <= 1.0) {
                return Err(DataError::Argument(format!(
                    "item {}: propensity {} is outside (0, 1]",
                    s.item, s.propensity
                )));
            }
        }
        Ok(())
    }

    /// Records a checked slate and its rewards; removes the items from the candidates.
    pub fn record(&mut self, slate: &[Shown], rewards: &[f32]) {
        for (position, (s, &reward)) in slate.iter().zip(rewards).enumerate() {
            self.log.push(LogEntry {
                step: self.steps,
                position,
                item: s.item,
                propensity: s.propensity,
                reward,
            });
            self.available.remove(&s.item);
        }
        let available = &self.available;
        self.candidates.retain(|i| available.contains(i));
        self.steps += 1;
    }
}

macro_rules! delegate_core {
    () => {
        fn user(&self) -> u32 {
            self.core.user
        }
        fn candidates(&self) -> &[u32] {
            &self.core.candidates
        }
        fn horizon(&self) -> usize {
            self.core.horizon
        }
        fn steps(&self) -> usize {
            self.core.steps
        }
        fn log(&self) -> &[LogEntry] {
            &self.core.log
        }
    };
}
pub(crate) use delegate_core;

/// An environment on a user's logged ratings: the reward comes from the user's own rating.
/// The candidates are the items the user rated ([`ObservedTask::for_user`], the observed
/// protocol) or every catalog item ([`ObservedTask::over_catalog`]); either way only items not
/// shown yet. An item the user never rated counts as the scale's lowest rating: a miss (the
/// full-catalog reward so mixes what people chose to watch with how they rated it).
#[derive(Debug, Clone)]
pub struct ObservedTask {
    core: TaskCore,
    ratings: HashMap<u32, f32>,
    mode: RewardMode,
    scale: RatingScale,
}

impl ObservedTask {
    /// A task over `ratings` (e.g. a user's query set) of dense `user`.
    pub fn new(
        user: u32,
        ratings: &[Rating],
        scale: RatingScale,
        mode: RewardMode,
        horizon: usize,
    ) -> Self {
        let ratings: HashMap<u32, f32> = ratings.iter().map(|r| (r.item, r.value)).collect();
        let mut candidates: Vec<u32> = ratings.keys().copied().collect();
        candidates.sort_unstable();
        ObservedTask {
            core: TaskCore::new(user, candidates, horizon),
            ratings,
            mode,
            scale,
        }
    }

    /// A task over all of `user`'s ratings in `dataset`.
    pub fn for_user(dataset: &Dataset, user: u32, mode: RewardMode, horizon: usize) -> Self {
        Self::new(
            user,
            dataset.user_ratings(user),
            dataset.scale,
            mode,
            horizon,
        )
    }

    /// A task for `user` of `dataset` over the whole catalog, unrated items being misses.
    pub fn over_catalog(dataset: &Dataset, user: u32, mode: RewardMode, horizon: usize) -> Self {
        let mut task = Self::for_user(dataset, user, mode, horizon);
        let n = u32::try_from(dataset.n_items()).unwrap_or(u32::MAX);
        task.core = TaskCore::new(user, (0..n).collect(), horizon);
        task
    }
}

impl UserTask for ObservedTask {
    delegate_core!();

    fn step(&mut self, slate: &[Shown]) -> Result<Vec<f32>, DataError> {
        self.core.check(slate)?;
        let rewards: Vec<f32> = slate
            .iter()
            .map(|s| {
                let rating = self.ratings.get(&s.item).copied().unwrap_or(self.scale.min);
                self.mode.reward(rating, self.scale)
            })
            .collect();
        self.core.record(slate, &rewards);
        Ok(rewards)
    }
}

/// Which items an episode on logged ratings may show (EVALUATION.md's two protocols).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Environment {
    /// Only items the user rated ([`ObservedTask::for_user`]).
    #[default]
    Observed,
    /// Every catalog item; unrated items are misses ([`ObservedTask::over_catalog`]).
    Catalog,
}

impl Environment {
    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Environment::Observed => "observed",
            Environment::Catalog => "catalog",
        }
    }

    /// The episode of dense `user` of `dataset` in this environment.
    pub fn task(
        self,
        dataset: &Dataset,
        user: u32,
        mode: RewardMode,
        horizon: usize,
    ) -> ObservedTask {
        match self {
            Environment::Observed => ObservedTask::for_user(dataset, user, mode, horizon),
            Environment::Catalog => ObservedTask::over_catalog(dataset, user, mode, horizon),
        }
    }
}

/// Simulated environment over the full catalog: each shown item's rating is the fitted model's
/// prediction plus Gaussian noise with the model's held-out RMSE as its spread, then turned
/// into a reward. Inherits the model's bias (see [`super::mf`]).
#[derive(Debug, Clone)]
pub struct SimulatedTask<'m> {
    core: TaskCore,
    model: &'m LatentFactorModel,
    mode: RewardMode,
    noise: f32,
    rng: ChaCha8Rng,
}

impl<'m> SimulatedTask<'m> {
    /// A task for dense `user` over every item the model knows; `seed` drives the noise.
    pub fn new(
        model: &'m LatentFactorModel,
        user: u32,
        mode: RewardMode,
        horizon: usize,
        seed: u64,
    ) -> Self {
        let n = u32::try_from(model.n_items()).unwrap_or(u32::MAX);
        SimulatedTask {
            core: TaskCore::new(user, (0..n).collect(), horizon),
            model,
            mode,
            noise: model.report.test_rmse as f32,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

impl UserTask for SimulatedTask<'_> {
    delegate_core!();

    fn step(&mut self, slate: &[Shown]) -> Result<Vec<f32>, DataError> {
        self.core.check(slate)?;
        let (min, max) = self.model.scale();
        let scale = RatingScale { min, max };
        let rewards: Vec<f32> = slate
            .iter()
            .map(|s| {
                let rating = self.model.predict(self.core.user, s.item)
                    + self.noise * normal(&mut self.rng) as f32;
                self.mode.reward(rating.clamp(min, max), scale)
            })
            .collect();
        self.core.record(slate, &rewards);
        Ok(rewards)
    }
}

/// Samples a slate of up to `k` distinct candidates from softmax(`scores` / `temperature`)
/// without replacement (Plackett–Luce). Each item's propensity is the probability it had of
/// being picked at its position given the items before it, so at every position the
/// propensities of all remaining candidates sum to 1. `scores[i]` scores `candidates[i]`.
pub fn sample_slate<R: Rng + ?Sized>(
    candidates: &[u32],
    scores: &[f32],
    k: usize,
    temperature: f32,
    rng: &mut R,
) -> Result<Vec<Shown>, DataError> {
    if candidates.len() != scores.len() || scores.iter().any(|s| !s.is_finite()) {
        return Err(DataError::Argument(format!(
            "sample_slate: {} candidates need as many finite scores, found {}",
            candidates.len(),
            scores.len()
        )));
    }
    let mut pool: Vec<(u32, f32)> = candidates
        .iter()
        .copied()
        .zip(scores.iter().copied())
        .collect();
    let mut slate = Vec::with_capacity(k.min(pool.len()));
    while slate.len() < k && !pool.is_empty() {
        let s: Vec<f32> = pool.iter().map(|p| p.1).collect();
        let probs = softmax(&s, temperature);
        let j = categorical(rng, &probs);
        slate.push(Shown {
            item: pool[j].0,
            propensity: (probs[j] as f32).max(f32::MIN_POSITIVE),
        });
        pool.swap_remove(j);
    }
    Ok(slate)
}
