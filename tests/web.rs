//! The engine inside headless Chromium: every WGSL kernel on WebGPU (SwiftShader here) against
//! the CPU reference compiled to wasm, and the CPU engine alone. Run by `wasm-pack test
//! --headless --chrome` (see scripts/test.sh).
#![cfg(target_arch = "wasm32")]

use metarec::engine::check::{check_all, quick_shapes};
use metarec::engine::gpu::GpuContext;
use metarec::engine::{Adam, AnyEngine, Engine, Loss, Preference};
use metarec::model::ModelConfig;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn every_kernel_matches_the_cpu_engine_in_the_browser() {
    let ctx = GpuContext::new()
        .await
        .expect("WebGPU adapter (Chromium needs --enable-unsafe-webgpu, see webdriver.json)");
    let results = check_all(&ctx, &quick_shapes()).await.unwrap();
    assert_eq!(results.len(), quick_shapes().len() * 16);
    for r in &results {
        web_sys::console::log_1(
            &format!(
                "{} [{}] err {:.2e} {}",
                r.name, r.shape, r.max_rel_err, r.pass
            )
            .into(),
        );
    }
    let failed: Vec<_> = results.iter().filter(|r| !r.pass).collect();
    assert!(
        failed.is_empty(),
        "kernels off the CPU reference: {failed:?}"
    );
}

#[wasm_bindgen_test]
async fn the_cpu_engine_trains_in_the_browser() {
    let cfg = ModelConfig {
        max_rows: 8,
        ..ModelConfig::reference_policy()
    };
    let (mut engine, _) = AnyEngine::new(&cfg, Preference::Cpu).await.unwrap();
    assert_eq!(engine.info().engine, "cpu");
    let (batch, items) = metarec::bench::random_batch(&cfg, 3);
    engine.set_items(&items).unwrap();
    let loss = Loss::Reinforce {
        entropy: 0.0,
        temperature: 1.0,
    };
    let (_, before) = engine.gradients(&batch, loss).await.unwrap();
    engine.train(&batch, loss, Adam::default(), 30).unwrap();
    let (_, after) = engine.gradients(&batch, loss).await.unwrap();
    assert!(after < before, "loss {before} -> {after}");
}
