//! metarec: an on-device meta-reinforcement-learning recommender.
//!
//! The learning engine runs hand-written WGSL compute shaders through `wgpu` (WebGPU in the
//! browser, Vulkan/Metal/DX12 natively) with a plain-Rust CPU engine as reference and fallback.
//! See `ARCHITECTURE.md` for the data flow.

#[cfg(feature = "cli")]
pub mod cli;

pub mod bench;
pub mod clock;
pub mod data;
#[cfg(all(feature = "encoder", not(target_arch = "wasm32")))]
pub mod encoder;
pub mod engine;
pub mod eval;
pub mod finetune;
pub mod linalg;
pub mod managed;
pub mod meta;
pub mod model;
pub mod policy;
#[cfg(all(feature = "python", not(target_arch = "wasm32")))]
pub mod python;
pub mod session;
pub mod simulate;
#[cfg(target_arch = "wasm32")]
pub mod web;
#[cfg(all(target_arch = "wasm32", feature = "bench"))]
pub mod web_bench;
