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
#[wasm_bindgen]
pub async fn self_check(options: JsValue) -> Result<JsValue, JsError> {
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
    value: JsValue,
) -> Result<T, JsError> {
    if value.is_undefined() || value.is_null() {
        Ok(T::default())
    } else {
        serde_wasm_bindgen::from_value(value).map_err(js_err)
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
    /// The trained policy: the engine is rebuilt from it when the GPU device is lost (a
    /// session only adapts its own context, so nothing the person taught is on the device).
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
        let bundle = crate::data::Bundle::from_bytes(bundle).map_err(js_err)?;
        let policy = crate::policy::Policy::from_bundle(&bundle).map_err(js_err)?;
        let (mut engine, fallback) = crate::engine::AnyEngine::new(&policy.model, opts.engine)
            .await
            .map_err(js_err)?;
        policy.load_into(&mut engine).map_err(js_err)?;
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
        let (mut engine, fallback) =
            crate::engine::AnyEngine::new(&self.policy.model, self.preference)
                .await
                .map_err(js_err)?;
        self.policy.load_into(&mut engine).map_err(js_err)?;
        self.engine = engine;
        self.fallback = fallback;
        self.recoveries += 1;
        Ok(())
    }

    /// A recommender for a new person from a bundle's bytes.
    /// `options`: `{ engine: "auto" | "gpu" | "cpu", seed: number }`.
    pub async fn create(bundle: Vec<u8>, options_value: JsValue) -> Result<Recommender, JsError> {
        Ok(Self::open(&bundle, options(options_value)?).await?.0)
    }

    /// A recommender that continues a person's saved state (from [`Recommender::save_state`]).
    pub async fn restore(
        bundle: Vec<u8>,
        state: Vec<u8>,
        options_value: JsValue,
    ) -> Result<Recommender, JsError> {
        let (mut rec, policy) = Self::open(&bundle, options(options_value)?).await?;
        let session = crate::session::Session::from_bytes(&state).map_err(js_err)?;
        if session.context.len() != policy.model.input
            || session.shown_words().len() != policy.model.items().div_ceil(32)
        {
            return Err(JsError::new(
                "the saved state belongs to another model: it cannot be restored with this bundle",
            ));
        }
        rec.session = session;
        Ok(rec)
    }

    /// `k` items not shown yet: `[{ item, title, genres, year, score, propensity }]`; `greedy`
    /// ranks by score, otherwise the slate is drawn from the policy (exploration).
    pub async fn recommend(&mut self, k: usize, greedy: bool) -> Result<JsValue, JsError> {
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
    pub fn save_state(&self) -> Vec<u8> {
        self.session.to_bytes()
    }

    /// Reactions so far: `[{ item, reward }]` with the dataset's item ids.
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
    #[wasm_bindgen(js_name = engineInfo)]
    pub fn engine_info(&self) -> Result<JsValue, JsError> {
        use crate::engine::Engine;
        to_js(&JsEngineInfo {
            info: self.engine.info(),
            fallback_reason: self.fallback.clone(),
            recoveries: self.recoveries,
        })
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct MetaTrainOptions {
    engine: Preference,
    seed: u64,
    items: usize,
    users: usize,
    iterations: usize,
    users_per_iteration: usize,
    rounds: usize,
}

impl Default for MetaTrainOptions {
    fn default() -> Self {
        MetaTrainOptions {
            engine: Preference::Auto,
            seed: 0,
            items: 2000,
            users: 1000,
            iterations: 60,
            users_per_iteration: 8,
            rounds: 20,
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

/// Meta-trains a policy on a generated synthetic world, in the browser, and resolves to the
/// bundle's bytes (catalog + policy) for [`Recommender::create`]. `on_progress` (optional) is
/// called after every meta-iteration with `{ iteration, mean_reward, loss }`.
///
/// `options`: `{ engine, seed, items, users, iterations, users_per_iteration, rounds }`.
#[wasm_bindgen(js_name = metaTrainSynthetic)]
pub async fn meta_train_synthetic(
    options_value: JsValue,
    on_progress: Option<js_sys::Function>,
) -> Result<Vec<u8>, JsError> {
    use crate::meta::{meta_step, MetaConfig, PolicyShape, SyntheticSetup};
    let o: MetaTrainOptions = options(options_value)?;
    let cfg = MetaConfig {
        iterations: o.iterations,
        users_per_iteration: o.users_per_iteration.max(1),
        rounds: o.rounds.max(1),
        seed: o.seed as u32,
        ..MetaConfig::default()
    };
    let world = crate::data::WorldConfig {
        n_items: o.items,
        n_users: o.users,
        style_dim: 4,
        seed: o.seed,
    };
    let setup = SyntheticSetup::new(world, &PolicyShape::default(), &cfg).map_err(js_err)?;
    let (mut engine, _) = crate::engine::AnyEngine::new(&setup.model, o.engine)
        .await
        .map_err(js_err)?;
    use crate::engine::Engine;
    engine.set_items(&setup.items).map_err(js_err)?;
    for it in 0..cfg.iterations {
        let p = meta_step(&mut engine, setup.tasks(&cfg, it), &cfg, it)
            .await
            .map_err(js_err)?;
        if let Some(f) = &on_progress {
            f.call1(&JsValue::NULL, &to_js(&p)?)
                .map_err(|e| JsError::new(&format!("onProgress threw: {e:?}")))?;
        }
        yield_to_browser().await;
    }
    let bundle = setup.bundle(&mut engine, cfg.adapt).await.map_err(js_err)?;
    bundle.to_bytes().map_err(js_err)
}
