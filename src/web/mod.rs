//! JavaScript API (wasm-bindgen). Options and results are plain objects (serde-wasm-bindgen);
//! failures reject with a JS `Error` carrying a stable code and a clear message (`error.rs`).
//!
//! One module per class: [`self_check`](self_check()) in `self_check.rs`, [`Catalog`] in
//! `catalog.rs`, [`Recommender`] in `recommender.rs`, [`MetaTrainer`] in `meta_trainer.rs`,
//! [`Simulation`] in `simulation.rs`; the TypeScript types of their options and results in
//! `ts_types.rs`. The npm package's entry point is the wrapper `js/index.js` around them.

mod catalog;
mod error;
mod meta_trainer;
mod recommender;
mod self_check;
mod simulation;
mod ts_types;

pub use catalog::Catalog;
pub use meta_trainer::MetaTrainer;
pub use recommender::Recommender;
pub use self_check::self_check;
pub use simulation::Simulation;

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

pub(crate) use error::{coded, js_err, Code};

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

fn read_bundle(bytes: &[u8]) -> Result<(crate::data::Bundle, crate::policy::Policy), JsError> {
    let bundle = crate::data::Bundle::from_bytes(bytes).map_err(js_err)?;
    let policy =
        crate::policy::Policy::from_bundle(&bundle).map_err(|e| coded(Code::BundleCorrupt, e))?;
    Ok((bundle, policy))
}
