//! The browser benchmark's JavaScript API (wasm-bindgen), used by `bench/bench.js`: timed rounds
//! of the reference training step, the adaptation loop on synthetic catalogs of any size, and
//! the reference step's inputs, loss, gradients and Adam update for the equivalence check
//! against the TensorFlow.js implementation. Options are `{ engine: "gpu" | "cpu", … }`, and for
//! the CPU engine `kernels: "blocked" | "reference"` (the default blocked).

use crate::bench::{adaptation_model, random_batch, Adaptation, StepTimer, REFERENCE_LOSS};
use crate::engine::cpu::{CpuEngine, Kernels};
use crate::engine::{Adam, AnyEngine, Engine, Loss, Preference};
use crate::model::ModelConfig;
use crate::web::{js_err, options, to_js};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

#[derive(Deserialize, Default)]
#[serde(default)]
struct BenchOptions {
    engine: Preference,
    /// Catalog size of the adaptation loop.
    items: usize,
    seed: u32,
    /// The CPU engine's kernels.
    kernels: Kernels,
}

/// The engine of a bench class (`engineInfo` says which engine runs, and on the CPU which
/// kernels; the fallback reason is not reported).
async fn bench_engine(model: &ModelConfig, o: &BenchOptions) -> Result<AnyEngine, JsError> {
    if o.engine == Preference::Cpu {
        let cpu = CpuEngine::with_kernels(model, o.kernels).map_err(js_err)?;
        return Ok(AnyEngine::Cpu(Box::new(cpu)));
    }
    let (engine, _) = AnyEngine::new(model, o.engine).await.map_err(js_err)?;
    Ok(engine)
}

/// The reference policy on one engine, ready for timed rounds of training steps.
#[wasm_bindgen]
pub struct BenchTrainer {
    engine: AnyEngine,
    trainer: StepTimer,
}

#[wasm_bindgen]
impl BenchTrainer {
    /// Builds the engine and runs one warm-up step. `options`: `{ engine, kernels }`.
    pub async fn create(options_value: Option<JsValue>) -> Result<BenchTrainer, JsError> {
        let o: BenchOptions = options(options_value)?;
        let mut engine = bench_engine(&ModelConfig::reference_policy(), &o).await?;
        let trainer = StepTimer::new(&mut engine).await.map_err(js_err)?;
        Ok(BenchTrainer { engine, trainer })
    }

    /// `steps` training steps (one submit on the GPU) and a statistics readback:
    /// `{ steps, ms, dispatches, submits, bytes_read_back }` (counters exclude the readback).
    pub async fn round(&mut self, steps: u32) -> Result<JsValue, JsError> {
        let r = self
            .trainer
            .round(&mut self.engine, steps)
            .await
            .map_err(js_err)?;
        to_js(&r)
    }

    /// `{ engine, adapter, backend, device_type, fallback }`.
    #[wasm_bindgen(js_name = engineInfo)]
    pub fn engine_info(&self) -> Result<JsValue, JsError> {
        to_js(&self.engine.info())
    }
}

/// One person's adaptation loop (reference network, random item vectors) on one engine.
#[wasm_bindgen]
pub struct BenchAdaptation {
    engine: AnyEngine,
    adaptation: Adaptation,
}

#[wasm_bindgen]
impl BenchAdaptation {
    /// `options`: `{ engine, items, seed, kernels }`; reads the first top-10 (the warm-up).
    pub async fn create(options_value: Option<JsValue>) -> Result<BenchAdaptation, JsError> {
        let o: BenchOptions = options(options_value)?;
        let mut engine = bench_engine(&adaptation_model(o.items), &o).await?;
        let adaptation = Adaptation::new(&mut engine, 10, o.seed)
            .await
            .map_err(js_err)?;
        Ok(BenchAdaptation { engine, adaptation })
    }

    /// One reaction (`reward` to the first item of the current list, one adaptation step),
    /// then the new top-10 read back: `{ top, ms }`.
    pub async fn interact(&mut self, reward: f32) -> Result<JsValue, JsError> {
        let phases = self
            .adaptation
            .interact(&mut self.engine, reward)
            .await
            .map_err(js_err)?;
        to_js(&phases)
    }

    /// The current list again, without a reaction (the recommend-only path): the top-10
    /// item indices, read back.
    pub async fn recommend(&mut self) -> Result<Vec<u32>, JsError> {
        self.adaptation
            .recommend(&mut self.engine)
            .await
            .map_err(js_err)
    }

    /// The engine's work counters: `{ dispatches, submits, bytes_read_back, train_steps }`.
    pub fn counters(&self) -> Result<JsValue, JsError> {
        to_js(&self.engine.counters())
    }

    /// `{ engine, adapter, backend, device_type, fallback }`.
    #[wasm_bindgen(js_name = engineInfo)]
    pub fn engine_info(&self) -> Result<JsValue, JsError> {
        to_js(&self.engine.info())
    }
}

#[derive(Serialize)]
struct ReferenceStep {
    model: ModelConfig,
    loss_fn: Loss,
    adam: Adam,
    /// Flat parameters before the step (layout of `ModelConfig::offsets`).
    params: Vec<f32>,
    /// Item vectors, `items × output`.
    item_vectors: Vec<f32>,
    inputs: Vec<f32>,
    actions: Vec<u32>,
    rewards: Vec<f32>,
    baselines: Vec<f32>,
    loss: f32,
    /// Gradient of the loss w.r.t. `params`.
    grads: Vec<f32>,
    /// Parameters after one Adam step on the same batch.
    params_after: Vec<f32>,
}

/// The reference training step on one engine, with everything needed to compute it again
/// elsewhere: parameters, item vectors, batch, and the loss, gradient and parameters after one
/// Adam step this engine computed. `options`: `{ engine }`.
#[wasm_bindgen(js_name = benchReferenceStep)]
pub async fn reference_step(options_value: Option<JsValue>) -> Result<JsValue, JsError> {
    let o: BenchOptions = options(options_value)?;
    let model = ModelConfig::reference_policy();
    let (mut engine, _) = AnyEngine::new(&model, o.engine).await.map_err(js_err)?;
    let (batch, item_vectors) = random_batch(&model, 1);
    engine.set_items(&item_vectors).map_err(js_err)?;
    let params = engine.params().await.map_err(js_err)?;
    let (grads, loss) = engine
        .gradients(&batch, REFERENCE_LOSS)
        .await
        .map_err(js_err)?;
    let adam = Adam::default();
    engine
        .train(&batch, REFERENCE_LOSS, adam, 1)
        .map_err(js_err)?;
    let params_after = engine.params().await.map_err(js_err)?;
    to_js(&ReferenceStep {
        model,
        loss_fn: REFERENCE_LOSS,
        adam,
        params,
        item_vectors,
        actions: batch.rows.iter().map(|r| r.action).collect(),
        rewards: batch.rows.iter().map(|r| r.reward).collect(),
        baselines: batch.rows.iter().map(|r| r.baseline).collect(),
        inputs: batch.inputs,
        loss,
        grads,
        params_after,
    })
}
