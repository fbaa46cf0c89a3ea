//! Error codes of the JavaScript API. A failure rejects with a JS `Error` whose message starts
//! with `[code] `; the package's wrapper (`js/index.js`) turns it into a `MetarecError` with
//! that `code` and the rest as its message. The codes (documented in `js/index.d.ts`):
//!
//! | code               | when                                                          |
//! |--------------------|---------------------------------------------------------------|
//! | `bundle-version`   | a bundle of another format version                            |
//! | `bundle-corrupt`   | bytes that are not a readable bundle (truncated, checksum, …) |
//! | `catalog-row`      | a catalog's item (row) or file is wrong; the message names it |
//! | `state-mismatch`   | a saved state or checkpoint that does not fit                 |
//! | `device-lost`      | the GPU device was lost and the call could not recover        |
//! | `invalid-argument` | an option or argument out of its domain                       |
//! | `engine`           | any other failure of the engine (no adapter, shader, …)       |

use crate::data::DataError;
use crate::engine::EngineError;
use wasm_bindgen::prelude::*;

/// A stable error code (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Code {
    BundleVersion,
    BundleCorrupt,
    CatalogRow,
    StateMismatch,
    DeviceLost,
    InvalidArgument,
    Engine,
}

impl Code {
    fn name(self) -> &'static str {
        match self {
            Code::BundleVersion => "bundle-version",
            Code::BundleCorrupt => "bundle-corrupt",
            Code::CatalogRow => "catalog-row",
            Code::StateMismatch => "state-mismatch",
            Code::DeviceLost => "device-lost",
            Code::InvalidArgument => "invalid-argument",
            Code::Engine => "engine",
        }
    }
}

/// A JS error with `code` and the message of `e`.
pub(crate) fn coded(code: Code, e: impl std::fmt::Display) -> JsError {
    JsError::new(&format!("[{}] {e}", code.name()))
}

/// The code an error reaches JavaScript with.
pub(crate) trait Classify: std::fmt::Display {
    fn code(&self) -> Code;
}

impl Classify for DataError {
    fn code(&self) -> Code {
        match self {
            DataError::Bundle(m) if m.starts_with("unsupported version") => Code::BundleVersion,
            DataError::Bundle(_) => Code::BundleCorrupt,
            DataError::Argument(_) => Code::InvalidArgument,
            _ => Code::CatalogRow,
        }
    }
}

impl Classify for EngineError {
    fn code(&self) -> Code {
        match self {
            EngineError::DeviceLost(_) | EngineError::Device(_) | EngineError::Readback(_) => {
                Code::DeviceLost
            }
            EngineError::Input(_) | EngineError::Config(_) => Code::InvalidArgument,
            _ => Code::Engine,
        }
    }
}

impl Classify for crate::simulate::StepError {
    fn code(&self) -> Code {
        match self {
            crate::simulate::StepError::Engine(e) => e.code(),
            crate::simulate::StepError::Eval(_) => Code::InvalidArgument,
        }
    }
}

impl Classify for crate::eval::EvalError {
    fn code(&self) -> Code {
        Code::InvalidArgument
    }
}

impl Classify for serde_wasm_bindgen::Error {
    fn code(&self) -> Code {
        Code::InvalidArgument
    }
}

/// A JS error for `e`, with its code.
pub(crate) fn js_err(e: impl Classify) -> JsError {
    coded(e.code(), e)
}
