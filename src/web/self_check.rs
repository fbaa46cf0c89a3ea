//! The engine self-check: every GPU kernel against the CPU reference, then the throughput.

use super::{coded, js_err, options, to_js, Code};
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
        Err(e) if opts.engine == Preference::Gpu => return Err(coded(Code::Engine, e)),
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
