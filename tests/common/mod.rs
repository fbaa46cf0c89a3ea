//! Set-up shared by the integration tests (each test crate uses part of it).
#![allow(dead_code)]
use metarec::engine::gpu::GpuContext;
use std::path::{Path, PathBuf};

/// The GPU context of the native tests (Mesa lavapipe where there is no GPU).
#[cfg(not(target_arch = "wasm32"))]
pub fn gpu_context() -> GpuContext {
    pollster::block_on(GpuContext::new())
        .expect("a wgpu adapter (the README test command installs Mesa lavapipe)")
}

/// The MovieLens 100K directory: `$METAREC_ML100K`, else `../shared/data/ml-100k` beside the
/// checkout. It is always there where the tests run, so a missing dataset fails the test.
pub fn ml100k() -> PathBuf {
    let dir = std::env::var_os("METAREC_ML100K")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/ml-100k"));
    assert!(
        dir.join("u.data").is_file() && dir.join("u.item").is_file(),
        "MovieLens 100K not found at {} (set METAREC_ML100K)",
        dir.display()
    );
    dir
}
