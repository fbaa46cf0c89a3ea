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

#[wasm_bindgen_test]
fn bundles_round_trip_and_bad_ones_are_refused_in_wasm() {
    use metarec::data::{Bundle, World, WorldConfig};
    let world = World::generate(WorldConfig {
        n_items: 50,
        n_users: 10,
        style_dim: 2,
        seed: 4,
    })
    .unwrap();
    let ratings = world.dataset(4).unwrap();
    let mut bundle = Bundle::from_catalog(&world.catalog, &ratings.ratings);
    bundle
        .set_weights(&[("params", vec![3], &[1.0, 2.0, 3.0])])
        .unwrap();
    let bytes = bundle.to_bytes().unwrap();
    assert_eq!(Bundle::from_bytes(&bytes).unwrap(), bundle);
    let truncated = Bundle::from_bytes(&bytes[..bytes.len() - 7]).unwrap_err();
    assert!(!truncated.to_string().is_empty());
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x40;
    assert!(Bundle::from_bytes(&flipped).is_err());
    let mut version = bytes;
    version[8] = 99;
    assert!(Bundle::from_bytes(&version)
        .unwrap_err()
        .to_string()
        .contains("version"));
}
