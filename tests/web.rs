//! The engine inside headless Chromium: every WGSL kernel on WebGPU (SwiftShader here) against
//! the CPU reference compiled to wasm, and the CPU engine alone. Run by `wasm-pack test
//! --headless --chrome` (see scripts/test.sh).
#![cfg(target_arch = "wasm32")]

use metarec::engine::check::{check_all, quick_shapes};
use metarec::engine::gpu::GpuContext;
use metarec::engine::{Adam, AnyEngine, Engine, Loss, Preference};
use metarec::model::ModelConfig;
use wasm_bindgen::JsCast;
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

/// A small meta-trained synthetic policy as bundle bytes, trained in the browser through the
/// JS API, with progress reported per iteration.
async fn policy_bundle() -> Vec<u8> {
    let opts = plain(serde_json::json!({
        "engine": "cpu", "seed": 6, "items": 90, "users": 20,
        "iterations": 3, "users_per_iteration": 2, "rounds": 5
    }));
    let calls = std::rc::Rc::new(std::cell::Cell::new(0));
    let seen = calls.clone();
    let on_progress = wasm_bindgen::closure::Closure::<dyn FnMut(wasm_bindgen::JsValue)>::new(
        move |p: wasm_bindgen::JsValue| {
            let p: serde_json::Value = serde_wasm_bindgen::from_value(p).unwrap();
            assert_eq!(p["iteration"], seen.get());
            seen.set(seen.get() + 1);
        },
    );
    let f: &js_sys::Function = on_progress.as_ref().unchecked_ref();
    let bytes = metarec::web::meta_train_synthetic(opts, Some(f.clone()))
        .await
        .unwrap();
    assert_eq!(calls.get(), 3, "one progress call per meta-iteration");
    bytes
}

/// A plain JS object, as a web page passes it.
fn plain(v: serde_json::Value) -> wasm_bindgen::JsValue {
    serde::Serialize::serialize(&v, &serde_wasm_bindgen::Serializer::json_compatible()).unwrap()
}

#[derive(serde::Deserialize, Debug, PartialEq)]
struct Rec {
    item: String,
    title: String,
    score: f32,
    propensity: f32,
}

async fn js_api_round_trip(engine: &str) {
    use metarec::web::Recommender;
    let bytes = policy_bundle().await;
    let opts = plain(serde_json::json!({ "engine": engine, "seed": 3 }));
    let mut rec = Recommender::create(bytes.clone(), opts.clone())
        .await
        .unwrap();
    let info: serde_json::Value =
        serde_wasm_bindgen::from_value(rec.engine_info().unwrap()).unwrap();
    assert_eq!(info["engine"], engine);
    let first: Vec<Rec> =
        serde_wasm_bindgen::from_value(rec.recommend(5, false).await.unwrap()).unwrap();
    assert_eq!(first.len(), 5);
    assert!(first
        .iter()
        .all(|r| !r.title.is_empty() && r.propensity > 0.0 && r.propensity <= 1.0));
    rec.feedback(first[0].item.clone(), 1.0).await.unwrap();
    rec.feedback(first[1].item.clone(), 0.0).await.unwrap();
    let err = rec
        .feedback("no such item".into(), 1.0)
        .await
        .err()
        .unwrap();
    let message: String = js_sys::Error::from(wasm_bindgen::JsValue::from(err))
        .message()
        .into();
    assert!(message.contains("unknown item id"), "{message}");
    let state = rec.save_state();
    let mut again = Recommender::restore(bytes, state, opts).await.unwrap();
    let a: Vec<Rec> =
        serde_wasm_bindgen::from_value(rec.recommend(5, true).await.unwrap()).unwrap();
    let b: Vec<Rec> =
        serde_wasm_bindgen::from_value(again.recommend(5, true).await.unwrap()).unwrap();
    assert_eq!(a, b, "a restored state recommends what the original would");
    // a lost GPU device: the engine is rebuilt and nothing the person taught is lost
    rec.simulate_device_loss();
    let c: Vec<Rec> =
        serde_wasm_bindgen::from_value(rec.recommend(5, true).await.unwrap()).unwrap();
    assert_eq!(c, a, "after a device loss");
    rec.feedback(a[0].item.clone(), 1.0).await.unwrap();
    assert!(a
        .iter()
        .all(|r| r.item != first[0].item && r.item != first[1].item));
}

#[wasm_bindgen_test]
async fn the_js_api_adapts_saves_and_restores_on_the_cpu_engine() {
    js_api_round_trip("cpu").await;
}

#[wasm_bindgen_test]
async fn the_js_api_adapts_saves_and_restores_on_webgpu() {
    js_api_round_trip("gpu").await;
}
