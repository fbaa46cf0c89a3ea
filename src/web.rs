//! JavaScript API (wasm-bindgen). Options and results are plain objects (serde-wasm-bindgen);
//! failures reject with a JS `Error` carrying a clear message.

use crate::bench::train_throughput;
use crate::engine::check::{check_all, quick_shapes, KernelCheck};
use crate::engine::cpu::CpuEngine;
use crate::engine::gpu::{GpuContext, GpuEngine};
use crate::engine::{EngineInfo, Preference};
use crate::model::ModelConfig;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

#[derive(Deserialize, Default)]
#[serde(default)]
struct SelfCheckOptions {
    engine: Preference,
}

#[derive(Serialize)]
struct Adapter {
    name: String,
    backend: String,
    device_type: String,
    fallback: bool,
}

impl From<&EngineInfo> for Adapter {
    fn from(i: &EngineInfo) -> Self {
        Adapter {
            name: i.adapter.clone(),
            backend: i.backend.clone(),
            device_type: i.device_type.clone(),
            fallback: i.fallback,
        }
    }
}

#[derive(Serialize)]
struct StepsPerSecond {
    gpu: Option<f64>,
    cpu: f64,
}

#[derive(Serialize)]
struct SelfCheck {
    engine: &'static str,
    adapter: Option<Adapter>,
    gpu_error: Option<String>,
    kernels: Vec<KernelCheck>,
    steps_per_s: StepsPerSecond,
    dispatches_per_step: Option<f64>,
}

pub(crate) fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Runs the engine self-check: every GPU kernel against the CPU reference on a few shapes, then
/// the training throughput of the reference policy on each engine.
///
/// `options`: `{ engine: "auto" | "gpu" | "cpu" }`. With "gpu", a missing WebGPU adapter is an
/// error; with "auto" the CPU engine is used and `gpu_error` says why.
#[wasm_bindgen(unchecked_return_type = "SelfCheckReport")]
pub async fn self_check(
    #[wasm_bindgen(unchecked_optional_param_type = "SelfCheckOptions")] options: Option<JsValue>,
) -> Result<JsValue, JsError> {
    let opts: SelfCheckOptions = self::options(options)?;
    let cfg = ModelConfig::reference_policy();
    let ctx = match opts.engine {
        Preference::Cpu => Err("CPU engine requested".to_string()),
        _ => GpuContext::new().await.map_err(|e| e.to_string()),
    };
    let (engine, adapter, gpu_error, kernels, gpu_rate, dispatches) = match ctx {
        Ok(ctx) => {
            let kernels = check_all(&ctx, &quick_shapes()).await.map_err(js_err)?;
            let mut gpu = GpuEngine::new(&ctx, &cfg).await.map_err(js_err)?;
            let t = train_throughput(&mut gpu, 10, 3).await.map_err(js_err)?;
            (
                "gpu",
                Some(Adapter::from(ctx.info())),
                None,
                kernels,
                Some(t.median_steps_per_s),
                Some(t.dispatches_per_step),
            )
        }
        Err(e) if opts.engine == Preference::Gpu => return Err(JsError::new(&e)),
        Err(e) => ("cpu", None, Some(e), Vec::new(), None, None),
    };
    let mut cpu = CpuEngine::new(&cfg).map_err(js_err)?;
    let c = train_throughput(&mut cpu, 2, 3).await.map_err(js_err)?;
    let report = SelfCheck {
        engine,
        adapter,
        gpu_error,
        kernels,
        steps_per_s: StepsPerSecond {
            gpu: gpu_rate,
            cpu: c.median_steps_per_s,
        },
        dispatches_per_step: dispatches,
    };
    to_js(&report)
}

/// Options of [`Recommender::create`] and [`Recommender::restore`].
#[derive(Deserialize, Default)]
#[serde(default)]
struct RecommenderOptions {
    engine: Preference,
    /// Seed of the exploration noise of a new session.
    seed: u32,
}

pub(crate) fn options<T: for<'de> Deserialize<'de> + Default>(
    value: Option<JsValue>,
) -> Result<T, JsError> {
    match value {
        Some(v) if !v.is_undefined() && !v.is_null() => {
            serde_wasm_bindgen::from_value(v).map_err(js_err)
        }
        _ => Ok(T::default()),
    }
}

pub(crate) fn to_js(value: &impl Serialize) -> Result<JsValue, JsError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(js_err)
}

#[derive(Serialize)]
struct JsRecommendation<'a> {
    item: &'a str,
    title: &'a str,
    genres: Vec<&'a str>,
    year: Option<i32>,
    score: f32,
    propensity: f32,
}

#[derive(Serialize)]
struct JsEngineInfo {
    #[serde(flatten)]
    info: EngineInfo,
    /// Why the CPU engine runs when the GPU was wanted, if it does.
    fallback_reason: Option<String>,
    /// Times the engine was rebuilt after the GPU device was lost.
    recoveries: u32,
}

/// On-device recommendations that adapt to one person: a trained policy from a bundle, an
/// engine (WebGPU when there is one), and the person's session.
#[wasm_bindgen]
pub struct Recommender {
    engine: crate::engine::AnyEngine,
    fallback: Option<String>,
    catalog: crate::data::Catalog,
    session: crate::session::Session,
    /// The trained policy: the engine is rebuilt from it when the GPU device is lost (what the
    /// person taught is in the session: its context, or its own copy of the network, which the
    /// session loads into the engine before every use).
    policy: crate::policy::Policy,
    preference: Preference,
    recoveries: u32,
}

#[wasm_bindgen]
impl Recommender {
    async fn open(
        bundle: &[u8],
        opts: RecommenderOptions,
    ) -> Result<(Self, crate::policy::Policy), JsError> {
        let (bundle, policy) = read_bundle(bundle)?;
        let (engine, fallback) = engine_for(&policy, opts.engine).await?;
        let session = policy.session(opts.seed);
        Ok((
            Recommender {
                engine,
                fallback,
                catalog: bundle.catalog,
                session,
                policy: policy.clone(),
                preference: opts.engine,
                recoveries: 0,
            },
            policy,
        ))
    }

    /// Whether `e` means the GPU device is gone (lost, destroyed, or failing every readback).
    fn device_gone(&self, e: &crate::engine::EngineError) -> bool {
        use crate::engine::EngineError::*;
        matches!(self.engine, crate::engine::AnyEngine::Gpu(_))
            && matches!(e, DeviceLost(_) | Device(_) | Readback(_))
    }

    /// Rebuilds the engine from the policy after a device loss (the GPU when one can be had
    /// again, else the CPU engine).
    async fn recover(&mut self) -> Result<(), JsError> {
        let (engine, fallback) = engine_for(&self.policy, self.preference).await?;
        self.engine = engine;
        self.fallback = fallback;
        self.recoveries += 1;
        Ok(())
    }

    /// A recommender for a new person from a bundle's bytes.
    /// `options`: `{ engine: "auto" | "gpu" | "cpu", seed: number }`.
    pub async fn create(
        bundle: Vec<u8>,
        #[wasm_bindgen(unchecked_optional_param_type = "RecommenderOptions")] options_value: Option<
            JsValue,
        >,
    ) -> Result<Recommender, JsError> {
        Ok(Self::open(&bundle, options(options_value)?).await?.0)
    }

    /// A recommender that continues a person's saved state (from [`Recommender::save_state`]).
    pub async fn restore(
        bundle: Vec<u8>,
        state: Vec<u8>,
        #[wasm_bindgen(unchecked_optional_param_type = "RecommenderOptions")] options_value: Option<
            JsValue,
        >,
    ) -> Result<Recommender, JsError> {
        let (mut rec, policy) = Self::open(&bundle, options(options_value)?).await?;
        let session = crate::session::Session::from_bytes(&state).map_err(js_err)?;
        if !session.fits(&policy.model) {
            return Err(JsError::new(
                "the saved state belongs to another model: it cannot be restored with this bundle",
            ));
        }
        rec.session = session;
        Ok(rec)
    }

    /// `k` items not shown yet: `[{ item, title, genres, year, score, propensity }]`; `greedy`
    /// ranks by score, otherwise (the default) the slate is drawn from the policy (exploration).
    #[wasm_bindgen(unchecked_return_type = "Recommendation[]")]
    pub async fn recommend(&mut self, k: usize, greedy: Option<bool>) -> Result<JsValue, JsError> {
        let greedy = greedy.unwrap_or(false);
        let recs = match self.session.recommend(&mut self.engine, k, greedy).await {
            Err(e) if self.device_gone(&e) => {
                self.recover().await?;
                self.session.recommend(&mut self.engine, k, greedy).await
            }
            other => other,
        }
        .map_err(js_err)?;
        let out: Vec<JsRecommendation> = recs
            .iter()
            .map(|r| {
                let meta = &self.catalog.items[r.item as usize];
                JsRecommendation {
                    item: self.catalog.ids.id(r.item).unwrap_or(""),
                    title: &meta.title,
                    genres: meta
                        .genres
                        .iter()
                        .filter_map(|&g| self.catalog.genres.get(g as usize).map(String::as_str))
                        .collect(),
                    year: meta.year,
                    score: r.score,
                    propensity: r.propensity,
                }
            })
            .collect();
        to_js(&out)
    }

    /// Learns from one reaction to `item` (the dataset's item id): `reward` 1 = liked,
    /// 0 = skipped (anything in [0, 1]).
    pub async fn feedback(&mut self, item: String, reward: f32) -> Result<(), JsError> {
        let index = self
            .catalog
            .ids
            .index(&item)
            .ok_or_else(|| JsError::new(&format!("unknown item id '{item}'")))?;
        if !reward.is_finite() || !(0.0..=1.0).contains(&reward) {
            return Err(JsError::new(&format!(
                "reward must be a number from 0 (skipped) to 1 (liked), got {reward}"
            )));
        }
        if self.session.was_shown(index) {
            return Err(JsError::new(&format!(
                "item '{item}' already had a reaction in this session"
            )));
        }
        match self.session.feedback(&mut self.engine, index, reward).await {
            Err(e) if self.device_gone(&e) => {
                self.recover().await?;
                self.session.feedback(&mut self.engine, index, reward).await
            }
            other => other,
        }
        .map_err(js_err)
    }

    /// Destroys the GPU device, as a driver reset would (for tests and the page's drill); the
    /// next call rebuilds the engine without losing anything. No-op on the CPU engine.
    #[wasm_bindgen(js_name = simulateDeviceLoss)]
    pub fn simulate_device_loss(&self) {
        if let crate::engine::AnyEngine::Gpu(g) = &self.engine {
            g.context().destroy();
        }
    }

    /// The person's state as bytes (context, history, optimiser state), for IndexedDB or a file.
    #[wasm_bindgen(js_name = saveState)]
    pub fn save_state(&self) -> Result<Vec<u8>, JsError> {
        self.session.to_bytes().map_err(js_err)
    }

    /// Reactions so far: `[[item, reward]]` with the dataset's item ids.
    #[wasm_bindgen(unchecked_return_type = "[string, number][]")]
    pub fn history(&self) -> Result<JsValue, JsError> {
        let h: Vec<(&str, f32)> = self
            .session
            .history
            .iter()
            .map(|i| (self.catalog.ids.id(i.item).unwrap_or(""), i.reward))
            .collect();
        to_js(&h)
    }

    /// The engine in use: `{ engine, adapter, backend, device_type, fallback, fallback_reason }`.
    #[wasm_bindgen(js_name = engineInfo, unchecked_return_type = "EngineInfo")]
    pub fn engine_info(&self) -> Result<JsValue, JsError> {
        use crate::engine::Engine;
        to_js(&JsEngineInfo {
            info: self.engine.info(),
            fallback_reason: self.fallback.clone(),
            recoveries: self.recoveries,
        })
    }
}

/// The engine for `policy`, loaded with it (and why the CPU engine runs, if it does where the
/// GPU was wanted).
async fn engine_for(
    policy: &crate::policy::Policy,
    preference: Preference,
) -> Result<(crate::engine::AnyEngine, Option<String>), JsError> {
    let (mut engine, fallback) = crate::engine::AnyEngine::new(&policy.model, preference)
        .await
        .map_err(js_err)?;
    policy.load_into(&mut engine).map_err(js_err)?;
    Ok((engine, fallback))
}

fn read_bundle(bytes: &[u8]) -> Result<(crate::data::Bundle, crate::policy::Policy), JsError> {
    let bundle = crate::data::Bundle::from_bytes(bytes).map_err(js_err)?;
    let policy = crate::policy::Policy::from_bundle(&bundle).map_err(js_err)?;
    Ok((bundle, policy))
}

/// Options of [`MetaTrainer::create`] and [`Recommender::meta_train`]: the synthetic world
/// (`items`, `users`, `seed`) and the meta-training settings.
#[derive(Deserialize)]
#[serde(default)]
struct MetaTrainOptions {
    /// None: "auto" for a [`MetaTrainer`], the recommender's own choice for `metaTrain`.
    engine: Option<Preference>,
    seed: u64,
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
        }
    }
}

/// Lets the browser render between meta-iterations (a `setTimeout(0)` turn of the event loop).
async fn yield_to_browser() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback(&resolve);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

#[derive(Serialize)]
struct JsProgress {
    #[serde(flatten)]
    progress: crate::meta::MetaProgress,
    iterations: usize,
    /// Milliseconds this meta-iteration took.
    ms: f64,
    /// Meta-iterations per second so far (this run, without the paused time).
    iterations_per_s: f64,
}

/// Meta-training on a generated synthetic world, one meta-iteration at a time.
struct Trainer {
    setup: crate::meta::SyntheticSetup,
    cfg: crate::meta::MetaConfig,
    engine: crate::engine::AnyEngine,
    fallback: Option<String>,
    history: Vec<crate::meta::MetaProgress>,
    /// Time spent in meta-iterations by this object, and how many it ran.
    busy_ms: f64,
    ran: usize,
}

impl Trainer {
    async fn new(
        o: &MetaTrainOptions,
        preference: Preference,
        checkpoint: Option<&[u8]>,
    ) -> Result<Self, JsError> {
        use crate::engine::Engine;
        use crate::meta::{Checkpoint, MetaConfig, PolicyShape, SyntheticSetup};
        if o.users_per_iteration == 0 || o.rounds == 0 {
            return Err(JsError::new(
                "users_per_iteration and rounds must each be at least 1",
            ));
        }
        if !(o.param_lr.is_finite() && o.param_lr > 0.0) {
            return Err(JsError::new(&format!(
                "param_lr must be a positive number, got {}",
                o.param_lr
            )));
        }
        let cfg = MetaConfig {
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
        let setup = SyntheticSetup::new(world, &PolicyShape::default(), &cfg).map_err(js_err)?;
        let (mut engine, fallback) = crate::engine::AnyEngine::new(&setup.model, preference)
            .await
            .map_err(js_err)?;
        engine.set_items(&setup.items).map_err(js_err)?;
        let history = match checkpoint {
            Some(bytes) => {
                let c = Checkpoint::from_bytes(bytes).map_err(js_err)?;
                c.restore_into(&mut engine).map_err(|e| {
                    JsError::new(&format!(
                        "the checkpoint does not fit these meta-training options: {e}"
                    ))
                })?;
                if c.iteration > cfg.iterations || c.history.len() != c.iteration {
                    return Err(JsError::new(&format!(
                        "the checkpoint is at iteration {} of a run longer than {} iterations",
                        c.iteration, cfg.iterations
                    )));
                }
                c.history
            }
            None => Vec::new(),
        };
        Ok(Trainer {
            setup,
            cfg,
            engine,
            fallback,
            history,
            busy_ms: 0.0,
            ran: 0,
        })
    }

    fn done(&self) -> bool {
        self.history.len() >= self.cfg.iterations
    }

    async fn step(&mut self) -> Result<JsProgress, JsError> {
        if self.done() {
            return Err(JsError::new(&format!(
                "meta-training is complete ({} iterations)",
                self.cfg.iterations
            )));
        }
        let it = self.history.len();
        let t0 = crate::clock::now_ms();
        let tasks = self.setup.tasks(&self.cfg, it);
        let p = crate::meta::meta_step(&mut self.engine, tasks, &self.cfg, it)
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

    async fn bundle(&mut self) -> Result<crate::data::Bundle, JsError> {
        self.setup
            .bundle(&mut self.engine, self.cfg.adapt)
            .await
            .map_err(js_err)
    }
}

/// Calls `f(value)` and waits for what it returns when that is a promise; false when it
/// returned (or resolved to) `false`.
async fn call_and_wait(f: &js_sys::Function, value: &JsValue) -> Result<bool, JsError> {
    let threw = |e: JsValue| {
        JsError::new(&format!(
            "onProgress failed: {}",
            e.as_string()
                .or_else(|| js_sys::Error::from(e).message().as_string())
                .unwrap_or_default()
        ))
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
    trainer: Trainer,
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
        let o: MetaTrainOptions = options(options_value)?;
        let pref = o.engine.unwrap_or_default();
        Ok(MetaTrainer {
            trainer: Trainer::new(&o, pref, checkpoint.as_deref()).await?,
        })
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
        let c = crate::meta::Checkpoint::capture(&mut t.engine, t.history.len(), &t.history)
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
        if let crate::engine::AnyEngine::Gpu(g) = &self.trainer.engine {
            g.context().destroy();
        }
    }

    /// The engine meta-training runs on (as [`Recommender::engine_info`]).
    #[wasm_bindgen(js_name = engineInfo, unchecked_return_type = "EngineInfo")]
    pub fn engine_info(&self) -> Result<JsValue, JsError> {
        use crate::engine::Engine;
        to_js(&JsEngineInfo {
            info: self.trainer.engine.info(),
            fallback_reason: self.trainer.fallback.clone(),
            recoveries: 0,
        })
    }
}

#[wasm_bindgen]
impl Recommender {
    /// Meta-trains a new policy on the synthetic world of `options` (on this recommender's
    /// engine choice unless `options.engine` says otherwise), calling `onProgress` after every
    /// meta-iteration; when it returns a promise, training waits for it (a page pauses that
    /// way), and when it returns or resolves to `false`, training stops there. The recommender
    /// then recommends from the world's catalog with the new policy, for a new person (a
    /// state saved before belongs to the old policy). Resolves to the new bundle's bytes.
    #[wasm_bindgen(js_name = metaTrain)]
    pub async fn meta_train(
        &mut self,
        #[wasm_bindgen(unchecked_optional_param_type = "MetaTrainOptions")] options_value: Option<
            JsValue,
        >,
        #[wasm_bindgen(unchecked_optional_param_type = "(progress: MetaProgress) => unknown")]
        on_progress: Option<js_sys::Function>,
    ) -> Result<Vec<u8>, JsError> {
        let o: MetaTrainOptions = options(options_value)?;
        let mut trainer = Trainer::new(&o, o.engine.unwrap_or(self.preference), None).await?;
        while !trainer.done() {
            let p = to_js(&trainer.step().await?)?;
            if let Some(f) = &on_progress {
                if !call_and_wait(f, &p).await? {
                    break;
                }
            }
            yield_to_browser().await;
        }
        let bundle = trainer.bundle().await?;
        let bytes = bundle.to_bytes().map_err(js_err)?;
        let policy = crate::policy::Policy::from_bundle(&bundle).map_err(js_err)?;
        let (engine, fallback) = engine_for(&policy, self.preference).await?;
        self.session = policy.session(self.session.seed);
        self.engine = engine;
        self.fallback = fallback;
        self.catalog = bundle.catalog;
        self.policy = policy;
        Ok(bytes)
    }
}

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
    engine: crate::engine::AnyEngine,
    fallback: Option<String>,
    /// The policy, to rebuild the engine from when the GPU device is lost (the simulated
    /// people's adaptation is in their sessions, not on the device).
    policy: crate::policy::Policy,
    preference: Preference,
    recoveries: u32,
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
            return Err(JsError::new(&format!(
                "this bundle's catalog is not the synthetic world of {} items, {} users, seed {}: \
                 simulate with the bundle meta-trained on that world",
                o.items, o.users, o.seed
            )));
        }
        let (engine, fallback) = engine_for(&policy, o.engine).await?;
        Ok(Simulation {
            sim,
            engine,
            fallback,
            policy,
            preference: o.engine,
            recoveries: 0,
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
        let s = match self.sim.step(&mut self.engine).await {
            // A lost GPU device fails the round's first engine call, before anything of the
            // round changed: rebuild the engine from the policy and play the round again.
            Err(_) if matches!(self.engine, crate::engine::AnyEngine::Gpu(_)) => {
                let (engine, fallback) = engine_for(&self.policy, self.preference).await?;
                self.engine = engine;
                self.fallback = fallback;
                self.recoveries += 1;
                self.sim.step(&mut self.engine).await
            }
            other => other,
        }
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
        if let crate::engine::AnyEngine::Gpu(g) = &self.engine {
            g.context().destroy();
        }
    }

    /// The engine the meta-trained policy runs on (as [`Recommender::engine_info`]).
    #[wasm_bindgen(js_name = engineInfo, unchecked_return_type = "EngineInfo")]
    pub fn engine_info(&self) -> Result<JsValue, JsError> {
        use crate::engine::Engine;
        to_js(&JsEngineInfo {
            info: self.engine.info(),
            fallback_reason: self.fallback.clone(),
            recoveries: self.recoveries,
        })
    }
}

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Which engine to use: WebGPU ("gpu"), the CPU engine ("cpu"), or the GPU when there is one. */
export type EngineChoice = "auto" | "gpu" | "cpu";

export interface SelfCheckOptions { engine?: EngineChoice }

export interface SelfCheckReport {
  engine: "gpu" | "cpu";
  adapter: { name: string; backend: string; device_type: string; fallback: boolean } | null;
  gpu_error: string | null;
  kernels: { name: string; shape: string; max_rel_err: number; tolerance: number; pass: boolean }[];
  steps_per_s: { gpu: number | null; cpu: number };
  dispatches_per_step: number | null;
}

export interface RecommenderOptions {
  engine?: EngineChoice;
  /** Seed of the exploration noise of a new session. */
  seed?: number;
}

export interface Recommendation {
  /** The dataset's item id. */
  item: string;
  title: string;
  genres: string[];
  year: number | null;
  /** The policy's logit for the item. */
  score: number;
  /** Probability of the item at its slate position. */
  propensity: number;
}

export interface EngineInfo {
  engine: "gpu" | "cpu";
  adapter: string;
  backend: string;
  device_type: string;
  /** True on software adapters (SwiftShader, lavapipe). */
  fallback: boolean;
  /** Why the CPU engine runs where the GPU was wanted, if it does. */
  fallback_reason: string | null;
  /** Engine rebuilds after a lost GPU device. */
  recoveries: number;
}

/** The synthetic world (items, users, seed) and the meta-training settings. */
export interface MetaTrainOptions {
  engine?: EngineChoice;
  seed?: number;
  items?: number;
  users?: number;
  iterations?: number;
  users_per_iteration?: number;
  rounds?: number;
  /** Outer loop (default "fomaml"): "fomaml" and "reptile" give each person their own copy of
   * the network to adapt; "cavia" adapts a context vector only. */
  algorithm?: "cavia" | "reptile" | "fomaml";
  /** Adam step size of a person's network per reaction (default 0.01). */
  param_lr?: number;
}

export interface MetaIteration {
  iteration: number;
  /** Mean reward per round over the iteration's episodes. */
  mean_reward: number;
  /** Outer loss (null when the step was skipped). */
  loss: number | null;
  skipped_total: number;
}

export interface MetaProgress extends MetaIteration {
  iterations: number;
  /** Milliseconds of this meta-iteration. */
  ms: number;
  iterations_per_s: number;
}

/** The bundle's synthetic world (items, users, seed) and the simulation. */
export interface SimulationOptions {
  engine?: EngineChoice;
  items?: number;
  users?: number;
  seed?: number;
  /** Fresh users after the training population (default 50). */
  held_out?: number;
  rounds?: number;
  slate?: number;
}

export interface HeldOutUser {
  index: number;
  world_user: number;
  favourite_genres: string[];
}

export interface SimulationLane {
  method: "meta-rl" | "no-adaptation" | "popularity" | "linucb" | "random";
  items: { item: string; title: string }[];
  clicked: string | null;
  reward: number;
}

export interface SimulationStep {
  user: number;
  position: number;
  round: number;
  done: boolean;
  lanes: SimulationLane[];
}

export interface SimulationCurves {
  methods: SimulationLane["method"][];
  rounds: number[];
  reward: number[][];
  cumulative: number[][];
  users_done: number;
  users: number;
  slates: number;
}
"#;
