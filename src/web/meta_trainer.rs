//! [`MetaTrainer`]: meta-training on a synthetic world in the page, one meta-iteration at a
//! time (also what [`Recommender::meta_train`] runs).

use super::{coded, js_err, options, to_js, Code};
#[cfg(doc)]
use super::{Recommender, Simulation};
use crate::engine::Preference;
use crate::managed::ManagedEngine;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

/// Options of [`MetaTrainer::create`] and [`Recommender::meta_train`]: the synthetic world
/// (`items`, `users`, `seed`) and the meta-training settings.
#[derive(Deserialize)]
#[serde(default)]
pub(super) struct MetaTrainOptions {
    /// None: "auto" for a [`MetaTrainer`], the recommender's own choice for `metaTrain`.
    pub(super) engine: Option<Preference>,
    pub(super) seed: u64,
    items: usize,
    users: usize,
    iterations: usize,
    users_per_iteration: usize,
    rounds: usize,
    /// The outer loop; sessions of the result adapt what it adapts (first-order MAML and
    /// Reptile: the person's own copy of the whole network; CAVIA: a context vector).
    algorithm: crate::meta::Algorithm,
    /// Adam step size of a person's network per reaction (first-order MAML, Reptile), in
    /// meta-training's inner loop and on the device alike.
    param_lr: f32,
    /// CAVIA's outer update: REINFORCE, PPO or TRPO.
    optimizer: crate::meta::Optimizer,
    /// TRPO's KL radius.
    max_kl: f32,
}

impl Default for MetaTrainOptions {
    fn default() -> Self {
        MetaTrainOptions {
            engine: None,
            seed: 0,
            items: 2000,
            users: 1000,
            iterations: 60,
            users_per_iteration: 8,
            rounds: 20,
            algorithm: crate::meta::Algorithm::Fomaml,
            param_lr: 1e-2,
            optimizer: crate::meta::Optimizer::Reinforce,
            max_kl: crate::meta::TrpoConfig::default().max_kl,
        }
    }
}

/// Lets the browser render between meta-iterations: a `setTimeout(0)` turn of the event loop
/// of the page or of the Web Worker the package runs in (through the global object: a worker
/// has no `window`); where there is no `setTimeout` it returns at once.
pub(super) async fn yield_to_browser() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        let scheduled = js_sys::Reflect::get(&global, &JsValue::from_str("setTimeout"))
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
            .is_some_and(|set_timeout| set_timeout.call1(&global, &resolve).is_ok());
        if !scheduled {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

#[derive(Serialize)]
pub(super) struct JsProgress {
    #[serde(flatten)]
    progress: crate::meta::MetaProgress,
    iterations: usize,
    /// Milliseconds this meta-iteration took.
    ms: f64,
    /// Meta-iterations per second so far (this run, without the paused time).
    iterations_per_s: f64,
}

/// Meta-training on a generated synthetic world, one meta-iteration at a time.
pub(super) struct MetaTraining {
    setup: crate::meta::SyntheticSetup,
    cfg: crate::meta::MetaConfig,
    /// Never rebuilt: after a device loss the page continues from its last checkpoint.
    engine: ManagedEngine,
    history: Vec<crate::meta::MetaProgress>,
    /// Time spent in meta-iterations by this object, and how many it ran.
    busy_ms: f64,
    ran: usize,
}

impl MetaTraining {
    /// Meta-training on the world of `o`, or over a site's own `items` (then `o.items` is
    /// ignored), from the start or from a `checkpoint`.
    pub(super) async fn new(
        o: &MetaTrainOptions,
        preference: Preference,
        checkpoint: Option<&[u8]>,
        items: Option<&crate::data::ItemCatalog>,
    ) -> Result<Self, JsError> {
        use crate::engine::Engine;
        use crate::meta::{Checkpoint, MetaConfig, PolicyShape, SyntheticSetup};
        if o.users_per_iteration == 0 || o.rounds == 0 {
            return Err(coded(
                Code::InvalidArgument,
                "users_per_iteration and rounds must each be at least 1",
            ));
        }
        if !(o.param_lr.is_finite() && o.param_lr > 0.0) {
            return Err(coded(
                Code::InvalidArgument,
                format!("param_lr must be a positive number, got {}", o.param_lr),
            ));
        }
        if o.optimizer != crate::meta::Optimizer::Reinforce
            && o.algorithm != crate::meta::Algorithm::Cavia
        {
            return Err(coded(
                Code::InvalidArgument,
                format!(
                    "optimizer {:?} is CAVIA's outer update: set algorithm to \"cavia\"",
                    o.optimizer.name()
                ),
            ));
        }
        let trpo = crate::meta::TrpoConfig {
            max_kl: o.max_kl,
            ..Default::default()
        };
        trpo.validate()
            .map_err(|e| coded(Code::InvalidArgument, e))?;
        let cfg = MetaConfig {
            optimizer: o.optimizer,
            outer_steps: if o.optimizer == crate::meta::Optimizer::Ppo {
                4
            } else {
                1
            },
            trpo,
            iterations: o.iterations,
            users_per_iteration: o.users_per_iteration,
            rounds: o.rounds,
            seed: o.seed as u32,
            algorithm: o.algorithm,
            adapt: crate::session::AdaptConfig {
                adapts: o.algorithm.adapts(),
                param_lr: o.param_lr,
                ..crate::session::AdaptConfig::default()
            },
            ..MetaConfig::default()
        };
        let world = crate::data::WorldConfig {
            n_items: o.items,
            n_users: o.users,
            style_dim: 4,
            seed: o.seed,
        };
        let setup = match items {
            Some(items) => SyntheticSetup::over_items(items, world, &PolicyShape::default(), &cfg),
            None => SyntheticSetup::new(world, &PolicyShape::default(), &cfg),
        }
        .map_err(js_err)?;
        let mut engine = ManagedEngine::new(&setup.model, preference)
            .await
            .map_err(js_err)?;
        engine.engine().set_items(&setup.items).map_err(js_err)?;
        let history = match checkpoint {
            Some(bytes) => {
                let c = Checkpoint::from_bytes(bytes).map_err(|e| coded(Code::StateMismatch, e))?;
                c.restore_into(engine.engine()).map_err(|e| {
                    coded(
                        Code::StateMismatch,
                        format!("the checkpoint does not fit these meta-training options: {e}"),
                    )
                })?;
                if c.iteration > cfg.iterations || c.history.len() != c.iteration {
                    return Err(coded(
                        Code::StateMismatch,
                        format!(
                            "the checkpoint is at iteration {} of a run longer than {} iterations",
                            c.iteration, cfg.iterations
                        ),
                    ));
                }
                c.history
            }
            None => Vec::new(),
        };
        Ok(MetaTraining {
            setup,
            cfg,
            engine,
            history,
            busy_ms: 0.0,
            ran: 0,
        })
    }

    pub(super) fn done(&self) -> bool {
        self.history.len() >= self.cfg.iterations
    }

    pub(super) async fn step(&mut self) -> Result<JsProgress, JsError> {
        if self.done() {
            return Err(coded(
                Code::InvalidArgument,
                format!(
                    "meta-training is complete ({} iterations)",
                    self.cfg.iterations
                ),
            ));
        }
        let it = self.history.len();
        let t0 = crate::clock::now_ms();
        let tasks = self.setup.tasks(&self.cfg, it);
        let p = crate::meta::meta_step(self.engine.engine(), tasks, &self.cfg, it)
            .await
            .map_err(js_err)?;
        let ms = crate::clock::now_ms() - t0;
        self.busy_ms += ms;
        self.ran += 1;
        self.history.push(p);
        Ok(JsProgress {
            progress: p,
            iterations: self.cfg.iterations,
            ms,
            iterations_per_s: self.ran as f64 / (self.busy_ms / 1e3).max(1e-9),
        })
    }

    pub(super) async fn bundle(&mut self) -> Result<crate::data::Bundle, JsError> {
        self.setup
            .bundle(self.engine.engine(), self.cfg.adapt)
            .await
            .map_err(js_err)
    }

    /// Runs every remaining meta-iteration, calling `on_progress` after each (see
    /// [`call_and_wait`]: `false` stops there, a throw or rejection fails the run), letting
    /// the browser render in between; the bundle of the policy trained.
    pub(super) async fn run(
        &mut self,
        on_progress: Option<&js_sys::Function>,
    ) -> Result<crate::data::Bundle, JsError> {
        while !self.done() {
            let p = to_js(&self.step().await?)?;
            if let Some(f) = on_progress {
                if !call_and_wait(f, &p).await? {
                    break;
                }
            }
            yield_to_browser().await;
        }
        self.bundle().await
    }
}

/// Calls `f(value)` and waits for what it returns when that is a promise; false when it
/// returned (or resolved to) `false`.
pub(super) async fn call_and_wait(f: &js_sys::Function, value: &JsValue) -> Result<bool, JsError> {
    let threw = |e: JsValue| {
        coded(
            Code::InvalidArgument,
            format!(
                "onProgress failed: {}",
                e.as_string()
                    .or_else(|| js_sys::Error::from(e).message().as_string())
                    .unwrap_or_default()
            ),
        )
    };
    let r = f.call1(&JsValue::NULL, value).map_err(threw)?;
    let r = wasm_bindgen_futures::JsFuture::from(js_sys::Promise::resolve(&r))
        .await
        .map_err(threw)?;
    Ok(r != JsValue::FALSE)
}

/// Meta-training in the page, one meta-iteration per [`MetaTrainer::step`], so that the page
/// can pause (stop calling `step`), resume, chart the progress, save a checkpoint and take the
/// policy trained so far as a bundle at any time.
#[wasm_bindgen]
pub struct MetaTrainer {
    trainer: MetaTraining,
}

impl MetaTrainer {
    /// A run on the synthetic world of `options_value`, over `items` when given.
    async fn start(
        options_value: Option<JsValue>,
        checkpoint: Option<Vec<u8>>,
        items: Option<&crate::data::ItemCatalog>,
    ) -> Result<MetaTrainer, JsError> {
        let o: MetaTrainOptions = options(options_value)?;
        let pref = o.engine.unwrap_or_default();
        Ok(MetaTrainer {
            trainer: MetaTraining::new(&o, pref, checkpoint.as_deref(), items).await?,
        })
    }
}

#[wasm_bindgen]
impl MetaTrainer {
    /// A meta-training run on the synthetic world of `options` (from the start, or from a
    /// `checkpoint` of [`MetaTrainer::checkpoint`] made with the same options).
    pub async fn create(
        #[wasm_bindgen(unchecked_optional_param_type = "MetaTrainOptions")] options_value: Option<
            JsValue,
        >,
        #[wasm_bindgen(unchecked_optional_param_type = "Uint8Array")] checkpoint: Option<Vec<u8>>,
    ) -> Result<MetaTrainer, JsError> {
        Self::start(options_value, checkpoint, None).await
    }

    /// A meta-training run on a synthetic world over a site's own items (`catalog`; their
    /// vectors are their content features and own embedding): as [`MetaTrainer::create`],
    /// `options.items` ignored.
    #[wasm_bindgen(js_name = overCatalog)]
    pub async fn over_catalog(
        catalog: &super::Catalog,
        #[wasm_bindgen(unchecked_optional_param_type = "MetaTrainOptions")] options_value: Option<
            JsValue,
        >,
        #[wasm_bindgen(unchecked_optional_param_type = "Uint8Array")] checkpoint: Option<Vec<u8>>,
    ) -> Result<MetaTrainer, JsError> {
        Self::start(options_value, checkpoint, Some(&catalog.items)).await
    }

    /// Runs the next meta-iteration and reports it.
    #[wasm_bindgen(unchecked_return_type = "MetaProgress")]
    pub async fn step(&mut self) -> Result<JsValue, JsError> {
        let p = self.trainer.step().await?;
        to_js(&p)
    }

    /// Whether every meta-iteration has run.
    #[wasm_bindgen(getter)]
    pub fn done(&self) -> bool {
        self.trainer.done()
    }

    /// Meta-iterations run so far (including those before a checkpoint).
    #[wasm_bindgen(getter)]
    pub fn iteration(&self) -> usize {
        self.trainer.history.len()
    }

    /// Meta-iterations of the whole run.
    #[wasm_bindgen(getter)]
    pub fn iterations(&self) -> usize {
        self.trainer.cfg.iterations
    }

    /// Every meta-iteration so far: `[{ iteration, mean_reward, loss, skipped_total }]`.
    #[wasm_bindgen(unchecked_return_type = "MetaIteration[]")]
    pub fn history(&self) -> Result<JsValue, JsError> {
        to_js(&self.trainer.history)
    }

    /// Everything needed to continue later exactly where the run stands.
    pub async fn checkpoint(&mut self) -> Result<Vec<u8>, JsError> {
        let t = &mut self.trainer;
        let c = crate::meta::Checkpoint::capture(t.engine.engine(), t.history.len(), &t.history)
            .await
            .map_err(js_err)?;
        c.to_bytes().map_err(js_err)
    }

    /// The policy trained so far with the world's catalog, as bundle bytes for
    /// [`Recommender::create`] and [`Simulation::create`].
    pub async fn bundle(&mut self) -> Result<Vec<u8>, JsError> {
        self.trainer.bundle().await?.to_bytes().map_err(js_err)
    }

    /// Destroys the GPU device, as a driver reset would (for tests and drills): the next
    /// `step` fails, and the page continues from its last checkpoint. No-op on the CPU engine.
    #[wasm_bindgen(js_name = simulateDeviceLoss)]
    pub fn simulate_device_loss(&self) {
        self.trainer.engine.simulate_device_loss();
    }

    /// The engine meta-training runs on (as [`Recommender::engine_info`]).
    #[wasm_bindgen(js_name = engineInfo, unchecked_return_type = "EngineInfo")]
    pub fn engine_info(&self) -> Result<JsValue, JsError> {
        to_js(&self.trainer.engine.info())
    }
}
