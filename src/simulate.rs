//! Live comparison on simulated held-out users of the synthetic world (the page's Simulate tab):
//! the meta-trained policy adapting on the device, the same policy without adaptation, and
//! baselines fitted on the training population, each showing one slate per round to the same
//! simulated users, one round at a time, so that curves can be drawn as they go.
//!
//! The held-out users come after the population the policy was meta-trained on: a world
//! generated with `n_users + held_out` users has the same catalog, the same first `n_users`
//! users and the same ratings of those users as the training world (everything is drawn in
//! order from one seed), so users `n_users..` are people that neither meta-training nor the
//! baselines' fits ever saw. Every method sees the same users with the same seeds; a user
//! clicks at most one item of a slate by the world's known choice model
//! ([`World::click_probabilities`]).

use crate::data::sampling::categorical;
use crate::data::{Catalog, World, WorldConfig};
use crate::engine::{Engine, EngineError};
use crate::eval::baselines::{Features, ItemStats, LinUcb, Popularity, Random};
use crate::eval::protocol::Hyper;
use crate::eval::{EvalError, Recommender};
use crate::policy::Policy;
use crate::session::Session;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The compared methods, in display order.
pub const METHODS: [&str; 5] = ["meta-rl", "no-adaptation", "popularity", "linucb", "random"];

/// Settings of a simulation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// Fresh users generated after the training population.
    pub held_out: usize,
    /// Rounds (slates) per user.
    pub rounds: usize,
    /// Items per slate.
    pub slate: usize,
    /// Seed of the users' choices and the methods' randomness.
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            held_out: 50,
            rounds: 20,
            slate: 1,
            seed: 1,
        }
    }
}

/// A held-out user, as the page lists them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HeldOutUser {
    /// Index among the held-out users (what [`Simulation::select`] takes).
    pub index: u32,
    /// The user's index in the generated world.
    pub world_user: u32,
    /// The genres the user is known to like most (from the hidden preferences), best first.
    pub favourite_genres: Vec<String>,
}

/// What one method did in one round.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LaneStep {
    pub method: &'static str,
    /// The slate, as catalog indices.
    pub items: Vec<u32>,
    /// The clicked item, if any.
    pub clicked: Option<u32>,
    pub reward: f32,
}

/// One round, for every method.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Step {
    /// Held-out index of the user.
    pub user: u32,
    /// Position of the user in the selection (0-based).
    pub position: usize,
    /// The round just played (1-based).
    pub round: usize,
    pub lanes: Vec<LaneStep>,
    /// True when every selected user has played every round.
    pub done: bool,
}

/// The curves so far, per method (in [`METHODS`] order), over rounds `1..=rounds.len()`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Curves {
    pub methods: Vec<&'static str>,
    pub rounds: Vec<usize>,
    /// Mean reward (clicks per slate) at each round over the users that reached it.
    pub reward: Vec<Vec<f64>>,
    /// Clicks per slate over rounds 1..=r, summed over users.
    pub cumulative: Vec<Vec<f64>>,
    /// Users that played all their rounds, and users selected.
    pub users_done: usize,
    pub users: usize,
    /// Slates shown per method so far.
    pub slates: usize,
}

/// Why a round failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The engine failed; when its GPU device is gone, the round can be played again on a new
    /// engine (nothing of it has changed).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The simulation is over, or a method failed or proposed an invalid slate.
    #[error(transparent)]
    Eval(#[from] EvalError),
}

enum Agent {
    Policy(Box<Session>),
    Baseline(Box<dyn Recommender>),
}

/// One method's episode with the current user.
struct Lane {
    agent: Agent,
    shown: Vec<bool>,
    /// The user's choices for this method (same seed for every method).
    rng: ChaCha8Rng,
}

/// Simulated held-out users against every method, a round at a time.
pub struct Simulation {
    world: World,
    population: u32,
    policy: Policy,
    cfg: SimConfig,
    lanes: Vec<Lane>,
    users: Vec<u32>,
    position: usize,
    round: usize,
    sums: Vec<Vec<f64>>,
    counts: Vec<usize>,
}

fn err(e: impl std::fmt::Display) -> EvalError {
    EvalError(e.to_string())
}

impl Simulation {
    /// Regenerates the world `world` (the one `policy` was meta-trained on) with `cfg.held_out`
    /// more users, fits the baselines on the training population and selects every held-out
    /// user.
    pub fn new(world: WorldConfig, policy: Policy, cfg: SimConfig) -> Result<Self, EvalError> {
        if cfg.held_out == 0 || cfg.rounds == 0 || cfg.slate == 0 {
            return Err(EvalError(
                "held_out, rounds and slate must each be at least 1".into(),
            ));
        }
        let full = World::generate(WorldConfig {
            n_users: world.n_users + cfg.held_out,
            ..world
        })
        .map_err(err)?;
        if full.catalog.len() != policy.model.items() {
            return Err(EvalError(format!(
                "the policy scores {} items, the synthetic world has {}",
                policy.model.items(),
                full.catalog.len()
            )));
        }
        let ds = full.dataset(world.seed).map_err(err)?;
        let train: Vec<u32> = (0..world.n_users as u32).collect();
        let h = Hyper::default();
        let stats = ItemStats::new(&ds, &train);
        let features = Features::with_bias(&policy.items, policy.model.output);
        let prior = features.fit_likes(&ds, &train, 1.0);
        let mut fixed = policy.session(0);
        fixed.config.enabled = false;
        let agents = vec![
            Agent::Policy(Box::new(policy.session(0))),
            Agent::Policy(Box::new(fixed)),
            Agent::Baseline(Box::new(Popularity::by_smoothed_mean(
                &stats,
                h.prior_strength,
            ))),
            Agent::Baseline(Box::new(LinUcb::new(
                features,
                &prior,
                h.bandit_lambda,
                h.alpha,
            ))),
            Agent::Baseline(Box::new(Random::new())),
        ];
        let n = full.catalog.len();
        let lanes = agents
            .into_iter()
            .map(|agent| Lane {
                agent,
                shown: vec![false; n],
                rng: ChaCha8Rng::seed_from_u64(0),
            })
            .collect();
        let mut sim = Simulation {
            world: full,
            population: world.n_users as u32,
            policy,
            cfg,
            lanes,
            users: Vec::new(),
            position: 0,
            round: 0,
            sums: Vec::new(),
            counts: Vec::new(),
        };
        sim.select(&[])?;
        Ok(sim)
    }

    /// The catalog of the simulated world.
    pub fn catalog(&self) -> &Catalog {
        &self.world.catalog
    }

    /// The held-out users, with the genres each likes most.
    pub fn held_out(&self) -> Vec<HeldOutUser> {
        (0..self.cfg.held_out as u32)
            .map(|index| {
                let world_user = self.population + index;
                let prefs = self.world.genre_preferences(world_user);
                let mut order: Vec<usize> = (0..prefs.len()).filter(|&g| prefs[g] > 1.0).collect();
                order.sort_by(|&a, &b| prefs[b].total_cmp(&prefs[a]));
                HeldOutUser {
                    index,
                    world_user,
                    favourite_genres: order
                        .into_iter()
                        .filter_map(|g| self.world.catalog.genres.get(g).cloned())
                        .collect(),
                }
            })
            .collect()
    }

    /// Starts over with the held-out users `users` (indices among them; empty: all of them).
    pub fn select(&mut self, users: &[u32]) -> Result<(), EvalError> {
        if let Some(u) = users.iter().find(|&&u| u as usize >= self.cfg.held_out) {
            return Err(EvalError(format!(
                "held-out user {u} does not exist: there are {} (0 to {})",
                self.cfg.held_out,
                self.cfg.held_out - 1
            )));
        }
        self.users = if users.is_empty() {
            (0..self.cfg.held_out as u32).collect()
        } else {
            users.to_vec()
        };
        self.position = 0;
        self.round = 0;
        self.sums = vec![vec![0.0; self.cfg.rounds]; self.lanes.len()];
        self.counts = vec![0; self.cfg.rounds];
        Ok(())
    }

    /// Whether every selected user has played every round.
    pub fn done(&self) -> bool {
        self.position >= self.users.len()
    }

    fn start_user(&mut self) {
        let user = self.population + self.users[self.position];
        let seed = self
            .cfg
            .seed
            .wrapping_mul(1_000_003)
            .wrapping_add(user as u64);
        for lane in &mut self.lanes {
            lane.shown.iter_mut().for_each(|s| *s = false);
            lane.rng = ChaCha8Rng::seed_from_u64(seed);
            match &mut lane.agent {
                Agent::Policy(s) => {
                    let enabled = s.config.enabled;
                    **s = self.policy.session((seed ^ (seed >> 32)) as u32);
                    s.config.enabled = enabled;
                }
                Agent::Baseline(b) => b.reset(seed),
            }
        }
    }

    /// Plays the next round of the current user for every method (the meta-RL policy on
    /// `engine`, which must hold the simulation's policy).
    pub async fn step(&mut self, engine: &mut impl Engine) -> Result<Step, StepError> {
        if self.done() {
            return Err(
                EvalError("the simulation is over: select users to start again".into()).into(),
            );
        }
        if self.round == 0 {
            self.start_user();
        }
        let user = self.population + self.users[self.position];
        let round = self.round;
        let mut lanes = Vec::with_capacity(self.lanes.len());
        for (m, lane) in self.lanes.iter_mut().enumerate() {
            let left = lane.shown.iter().filter(|&&s| !s).count();
            let k = self.cfg.slate.min(left);
            let items: Vec<u32> = match &mut lane.agent {
                Agent::Policy(s) => s
                    .recommend(engine, k, false)
                    .await?
                    .iter()
                    .map(|r| r.item)
                    .collect(),
                Agent::Baseline(b) => {
                    let candidates: Vec<u32> = (0..lane.shown.len() as u32)
                        .filter(|&i| !lane.shown[i as usize])
                        .collect();
                    b.slate(&candidates, k)?
                }
            };
            if items.is_empty() || items.len() > k || items.iter().any(|&i| lane.shown[i as usize])
            {
                return Err(EvalError(format!(
                    "{} proposed an invalid slate {items:?}",
                    METHODS[m]
                ))
                .into());
            }
            // element 0 of the probabilities: no click
            let choice = categorical(&mut lane.rng, &self.world.click_probabilities(user, &items));
            for (j, &item) in items.iter().enumerate() {
                let reward = f32::from(u8::from(j + 1 == choice));
                match &mut lane.agent {
                    Agent::Policy(s) => s.feedback(engine, item, reward).await?,
                    Agent::Baseline(b) => b.update(item, reward)?,
                }
                lane.shown[item as usize] = true;
            }
            let reward = f32::from(u8::from(choice > 0));
            self.sums[m][round] += f64::from(reward);
            lanes.push(LaneStep {
                method: METHODS[m],
                clicked: choice.checked_sub(1).map(|j| items[j]),
                items,
                reward,
            });
        }
        self.counts[round] += 1;
        let step = Step {
            user: self.users[self.position],
            position: self.position,
            round: round + 1,
            lanes,
            done: false,
        };
        self.round += 1;
        if self.round == self.cfg.rounds {
            self.round = 0;
            self.position += 1;
        }
        Ok(Step {
            done: self.done(),
            ..step
        })
    }

    /// The curves over the rounds played so far.
    pub fn curves(&self) -> Curves {
        let played = self.counts.iter().take_while(|&&c| c > 0).count();
        let reward = self
            .sums
            .iter()
            .map(|s| (0..played).map(|r| s[r] / self.counts[r] as f64).collect())
            .collect();
        let cumulative = self
            .sums
            .iter()
            .map(|s| {
                let (mut hits, mut slates) = (0.0, 0usize);
                (0..played)
                    .map(|r| {
                        hits += s[r];
                        slates += self.counts[r];
                        hits / slates as f64
                    })
                    .collect()
            })
            .collect();
        Curves {
            methods: METHODS.to_vec(),
            rounds: (1..=played).collect(),
            reward,
            cumulative,
            users_done: self.position,
            users: self.users.len(),
            slates: self.counts.iter().sum(),
        }
    }
}

// The CPU engine's futures are driven by pollster, a native dev-dependency.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::engine::cpu::CpuEngine;
    use crate::meta::{meta_step, MetaConfig, PolicyShape, SyntheticSetup};

    fn trained() -> (WorldConfig, Policy) {
        let world = WorldConfig {
            n_items: 80,
            n_users: 30,
            style_dim: 4,
            seed: 5,
        };
        let cfg = MetaConfig {
            iterations: 2,
            users_per_iteration: 2,
            rounds: 4,
            ..MetaConfig::default()
        };
        let setup = SyntheticSetup::new(world, &PolicyShape::default(), &cfg).unwrap();
        let mut engine = CpuEngine::new(&setup.model).unwrap();
        engine.set_items(&setup.items).unwrap();
        for it in 0..cfg.iterations {
            pollster::block_on(meta_step(&mut engine, setup.tasks(&cfg, it), &cfg, it)).unwrap();
        }
        let policy = pollster::block_on(Policy::from_engine(
            &mut engine,
            setup.items.clone(),
            cfg.adapt,
        ))
        .unwrap();
        (world, policy)
    }

    #[test]
    fn held_out_users_are_new_and_every_method_plays_every_round() {
        let (world, policy) = trained();
        let training = World::generate(world).unwrap();
        let cfg = SimConfig {
            held_out: 3,
            rounds: 5,
            slate: 2,
            seed: 9,
        };
        let mut sim = Simulation::new(world, policy.clone(), cfg).unwrap();
        // same catalog and population as the training world, plus new users
        assert_eq!(sim.catalog(), &training.catalog);
        for u in 0..world.n_users as u32 {
            assert_eq!(
                sim.world.genre_preferences(u),
                training.genre_preferences(u)
            );
        }
        let pool = sim.held_out();
        assert_eq!(pool.len(), 3);
        assert_eq!(pool[2].world_user, world.n_users as u32 + 2);
        assert!(pool.iter().all(|u| !u.favourite_genres.is_empty()));
        let mut engine = CpuEngine::new(&policy.model).unwrap();
        policy.load_into(&mut engine).unwrap();
        sim.select(&[2, 0]).unwrap();
        let mut steps = Vec::new();
        while !sim.done() {
            steps.push(pollster::block_on(sim.step(&mut engine)).unwrap());
            let c = sim.curves();
            assert_eq!(c.slates, steps.len());
            assert!(c
                .reward
                .iter()
                .flatten()
                .chain(c.cumulative.iter().flatten())
                .all(|x| (0.0..=1.0).contains(x)));
        }
        assert_eq!(steps.len(), 10);
        assert!(steps[9].done && !steps[8].done);
        assert_eq!((steps[0].user, steps[5].user, steps[5].round), (2, 0, 1));
        for s in &steps {
            assert_eq!(s.lanes.len(), METHODS.len());
            for l in &s.lanes {
                assert_eq!(l.items.len(), 2);
                assert_eq!(l.reward, f32::from(u8::from(l.clicked.is_some())));
                assert!(l.clicked.is_none_or(|c| l.items.contains(&c)));
            }
        }
        // popularity never repeats an item to the same user
        let first_user: Vec<u32> = steps[..5]
            .iter()
            .flat_map(|s| s.lanes[2].items.clone())
            .collect();
        let distinct: std::collections::HashSet<_> = first_user.iter().collect();
        assert_eq!(distinct.len(), 10);
        let c = sim.curves();
        assert_eq!((c.users_done, c.users, c.rounds.len()), (2, 2, 5));
        assert!(pollster::block_on(sim.step(&mut engine)).is_err());
        assert!(sim.select(&[3]).is_err());
        // the same selection plays the same rounds again
        sim.select(&[2, 0]).unwrap();
        let again = pollster::block_on(sim.step(&mut engine)).unwrap();
        assert_eq!(again, steps[0]);
    }

    #[test]
    fn a_policy_for_another_catalog_is_refused() {
        let (world, policy) = trained();
        let other = WorldConfig {
            n_items: 81,
            ..world
        };
        assert!(Simulation::new(other, policy, SimConfig::default()).is_err());
    }
}
