//! JavaScript API (wasm-bindgen). Options and results are plain objects (serde-wasm-bindgen);
//! failures reject with a JS `Error` carrying a clear message.//!
//! One module per class: [`self_check`](self_check()) in `self_check.rs`, [`Recommender`] in
//! `recommender.rs`, [`MetaTrainer`] in `meta_trainer.rs`, [`Simulation`] in `simulation.rs`;
//! the TypeScript types of their options and results in `ts_types.rs`.

mod meta_trainer;
mod recommender;
mod self_check;
mod simulation;
mod ts_types;

pub use meta_trainer::MetaTrainer;
pub use recommender::Recommender;
pub use self_check::self_check;
pub use simulation::Simulation;

use crate::engine::{EngineInfo, Preference};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

pub(crate) fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
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
struct JsEngineInfo {
    #[serde(flatten)]
    info: EngineInfo,
    /// Why the CPU engine runs when the GPU was wanted, if it does.
    fallback_reason: Option<String>,
    /// Times the engine was rebuilt after the GPU device was lost.
    recoveries: u32,
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
