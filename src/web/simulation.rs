//! [`Simulation`]: the meta-trained policy against baselines on simulated held-out users.

use super::{coded, js_err, options, read_bundle, to_js, Code};
#[cfg(doc)]
use super::{MetaTrainer, Recommender};
use crate::engine::Preference;
use crate::managed::ManagedEngine;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

/// Options of [`Simulation::create`]: the synthetic world the bundle was meta-trained on
/// (`items`, `users`, `seed`, as given to [`MetaTrainer::create`]) and the simulation.
#[derive(Deserialize)]
#[serde(default)]
struct SimulationOptions {
    engine: Preference,
    items: usize,
    users: usize,
    seed: u64,
    held_out: usize,
    rounds: usize,
    slate: usize,
}

impl Default for SimulationOptions {
    fn default() -> Self {
        let s = crate::simulate::SimConfig::default();
        SimulationOptions {
            engine: Preference::Auto,
            items: 2000,
            users: 1000,
            seed: 0,
            held_out: s.held_out,
            rounds: s.rounds,
            slate: s.slate,
        }
    }
}

#[derive(Serialize)]
struct JsItem<'a> {
    item: &'a str,
    title: &'a str,
}

#[derive(Serialize)]
struct JsLane<'a> {
    method: &'static str,
    items: Vec<JsItem<'a>>,
    clicked: Option<&'a str>,
    reward: f32,
}

#[derive(Serialize)]
struct JsStep<'a> {
    user: u32,
    position: usize,
    round: usize,
    done: bool,
    lanes: Vec<JsLane<'a>>,
}

/// Simulated held-out users of the synthetic world against the meta-trained policy (adapting,
/// and fixed) and baselines (popularity, LinUCB, random), one round at a time
/// ([`crate::simulate`]); the policy runs on the engine chosen by `options.engine`.
#[wasm_bindgen]
pub struct Simulation {
    sim: crate::simulate::Simulation,
    engine: ManagedEngine,
    /// The policy, to rebuild the engine from when the GPU device is lost (the simulated
    /// people's adaptation is in their sessions, not on the device).
    policy: crate::policy::Policy,
}

#[wasm_bindgen]
impl Simulation {
    /// A simulation of the bundle's policy on its synthetic world (refused when the bundle's
    /// catalog is not that world's).
    pub async fn create(
        bundle: Vec<u8>,
        #[wasm_bindgen(unchecked_optional_param_type = "SimulationOptions")] options_value: Option<
            JsValue,
        >,
    ) -> Result<Simulation, JsError> {
        let o: SimulationOptions = options(options_value)?;
        let (bundle, policy) = read_bundle(&bundle)?;
        let world = crate::data::WorldConfig {
            n_items: o.items,
            n_users: o.users,
            style_dim: 4,
            seed: o.seed,
        };
        let cfg = crate::simulate::SimConfig {
            held_out: o.held_out,
            rounds: o.rounds,
            slate: o.slate,
            seed: o.seed.wrapping_add(1),
        };
        let sim = crate::simulate::Simulation::new(world, policy.clone(), cfg).map_err(js_err)?;
        if sim.catalog() != &bundle.catalog {
            return Err(coded(
                Code::InvalidArgument,
                format!(
                "this bundle's catalog is not the synthetic world of {} items, {} users, seed {}: \
                 simulate with the bundle meta-trained on that world",
                o.items, o.users, o.seed
            ),
            ));
        }
        let engine = ManagedEngine::for_policy(&policy, o.engine)
            .await
            .map_err(js_err)?;
        Ok(Simulation {
            sim,
            engine,
            policy,
        })
    }

    /// The held-out users: `[{ index, world_user, favourite_genres }]`.
    #[wasm_bindgen(unchecked_return_type = "HeldOutUser[]")]
    pub fn users(&self) -> Result<JsValue, JsError> {
        to_js(&self.sim.held_out())
    }

    /// Starts over with the held-out users at `users` (indices; empty or absent: all).
    pub fn select(
        &mut self,
        #[wasm_bindgen(unchecked_optional_param_type = "number[]")] users: Option<JsValue>,
    ) -> Result<(), JsError> {
        let users: Vec<u32> = options(users)?;
        self.sim.select(&users).map_err(js_err)
    }

    /// Whether every selected user has played every round.
    #[wasm_bindgen(getter)]
    pub fn done(&self) -> bool {
        self.sim.done()
    }

    /// Plays the next round of the current user for every method:
    /// `{ user, position, round, done, lanes: [{ method, items: [{ item, title }], clicked, reward }] }`.
    #[wasm_bindgen(unchecked_return_type = "SimulationStep")]
    pub async fn step(&mut self) -> Result<JsValue, JsError> {
        // A lost GPU device fails the round's first engine call, before anything of the round
        // changed: the engine is rebuilt from the policy and the round played again.
        let sim = &mut self.sim;
        let s = self
            .engine
            .run(&self.policy, async |e| sim.step(e).await)
            .await
            .map_err(js_err)?;
        let catalog = self.sim.catalog();
        let id = |i: u32| catalog.ids.id(i).unwrap_or("");
        let lanes = s
            .lanes
            .iter()
            .map(|l| JsLane {
                method: l.method,
                items: l
                    .items
                    .iter()
                    .map(|&i| JsItem {
                        item: id(i),
                        title: catalog.items.get(i as usize).map_or("", |m| &m.title),
                    })
                    .collect(),
                clicked: l.clicked.map(id),
                reward: l.reward,
            })
            .collect();
        to_js(&JsStep {
            user: s.user,
            position: s.position,
            round: s.round,
            done: s.done,
            lanes,
        })
    }

    /// The curves so far: `{ methods, rounds, reward, cumulative, users_done, users, slates }`
    /// (`reward[m][r]`: mean clicks per slate of method m at round r + 1; `cumulative[m][r]`:
    /// clicks per slate over rounds 1 to r + 1).
    #[wasm_bindgen(unchecked_return_type = "SimulationCurves")]
    pub fn curves(&self) -> Result<JsValue, JsError> {
        to_js(&self.sim.curves())
    }

    /// Destroys the GPU device, as a driver reset would (for tests and drills): the next
    /// `step` rebuilds the engine. No-op on the CPU engine.
    #[wasm_bindgen(js_name = simulateDeviceLoss)]
    pub fn simulate_device_loss(&self) {
        self.engine.simulate_device_loss();
    }

    /// The engine the meta-trained policy runs on (as [`Recommender::engine_info`]).
    #[wasm_bindgen(js_name = engineInfo, unchecked_return_type = "EngineInfo")]
    pub fn engine_info(&self) -> Result<JsValue, JsError> {
        to_js(&self.engine.info())
    }
}
