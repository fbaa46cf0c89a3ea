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
    assert_eq!(results.len(), quick_shapes().len() * 23);
    assert_all_pass(&results, "kernels off the CPU reference");
}

/// Logs every check to the browser console and fails on any that did not pass.
fn assert_all_pass(results: &[metarec::engine::check::KernelCheck], what: &str) {
    for r in results {
        web_sys::console::log_1(
            &format!(
                "{} [{}] err {:.2e} {}",
                r.name, r.shape, r.max_rel_err, r.pass
            )
            .into(),
        );
    }
    let failed: Vec<_> = results.iter().filter(|r| !r.pass).collect();
    assert!(failed.is_empty(), "{what}: {failed:?}");
}

#[wasm_bindgen_test]
async fn fisher_vector_products_match_the_score_function_fisher_in_the_browser() {
    let ctx = GpuContext::new().await.expect("WebGPU adapter");
    let results = metarec::engine::fisher_check::check_fisher(&ctx)
        .await
        .unwrap();
    assert_eq!(results.len(), 9);
    assert_all_pass(&results, "Fisher products off the reference");
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

/// The small synthetic world of the browser tests, as `MetaTrainer` and `Simulation` options.
fn world() -> serde_json::Value {
    serde_json::json!({ "items": 90, "users": 20, "seed": 6 })
}

fn with(base: serde_json::Value, extra: serde_json::Value) -> Option<wasm_bindgen::JsValue> {
    let mut v = base;
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    plain(v)
}

/// A small meta-trained synthetic policy as bundle bytes, trained in the browser through the
/// JS API, one meta-iteration per `step()`.
async fn policy_bundle() -> Vec<u8> {
    use metarec::web::MetaTrainer;
    let opts = with(
        world(),
        serde_json::json!({ "engine": "cpu", "iterations": 3, "users_per_iteration": 2, "rounds": 5 }),
    );
    let mut trainer = MetaTrainer::create(opts, None).await.unwrap();
    let mut seen = Vec::new();
    while !trainer.done() {
        let p: serde_json::Value =
            serde_wasm_bindgen::from_value(trainer.step().await.unwrap()).unwrap();
        assert_eq!(p["iterations"], 3);
        assert!(p["ms"].as_f64().unwrap() >= 0.0 && p["iterations_per_s"].as_f64().unwrap() > 0.0);
        seen.push(p["iteration"].as_u64().unwrap());
    }
    assert_eq!(seen, [0, 1, 2], "one step per meta-iteration");
    assert_eq!(trainer.iteration(), 3);
    trainer.bundle().await.unwrap()
}

/// The message of a rejected call, as JS sees it.
fn message(e: wasm_bindgen::JsError) -> String {
    js_sys::Error::from(wasm_bindgen::JsValue::from(e))
        .message()
        .into()
}

/// A plain JS object, as a web page passes it.
fn plain(v: serde_json::Value) -> Option<wasm_bindgen::JsValue> {
    Some(
        serde::Serialize::serialize(&v, &serde_wasm_bindgen::Serializer::json_compatible())
            .unwrap(),
    )
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
    // options may be left out (the defaults)
    Recommender::create(bytes.clone(), None).await.unwrap();
    let first: Vec<Rec> =
        serde_wasm_bindgen::from_value(rec.recommend(5, None).await.unwrap()).unwrap();
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
    let m = message(err);
    assert!(m.contains("unknown item id 'no such item'"), "{m}");
    let m = message(
        rec.feedback(first[2].item.clone(), 2.0)
            .await
            .err()
            .unwrap(),
    );
    assert!(m.contains("reward must be a number from 0"), "{m}");
    let m = message(
        rec.feedback(first[2].item.clone(), f32::NAN)
            .await
            .err()
            .unwrap(),
    );
    assert!(m.contains("reward must be"), "{m}");
    let m = message(
        rec.feedback(first[0].item.clone(), 0.0)
            .await
            .err()
            .unwrap(),
    );
    assert!(
        m.contains(&format!("item '{}' already had a reaction", first[0].item)),
        "{m}"
    );
    let m = message(
        Recommender::create(b"not a bundle at all, sorry".to_vec(), opts.clone())
            .await
            .err()
            .unwrap(),
    );
    assert!(m.contains("bundle"), "{m}");
    let m = message(
        Recommender::restore(bytes.clone(), b"MRSESS02{".to_vec(), opts.clone())
            .await
            .err()
            .unwrap(),
    );
    assert!(m.contains("corrupted session"), "{m}");
    // a state saved by the previous version (no feedback summary) is refused, not misread
    let m = message(
        Recommender::restore(bytes.clone(), b"MRSESS01{}".to_vec(), opts.clone())
            .await
            .err()
            .unwrap(),
    );
    assert!(m.contains("version"), "{m}");
    let bad = plain(serde_json::json!({ "engine": "quantum" }));
    let m = message(Recommender::create(bytes.clone(), bad).await.err().unwrap());
    assert!(m.contains("quantum"), "{m}");
    let state = rec.save_state().unwrap();
    let mut again = Recommender::restore(bytes, state, opts).await.unwrap();
    let a: Vec<Rec> =
        serde_wasm_bindgen::from_value(rec.recommend(5, Some(true)).await.unwrap()).unwrap();
    let b: Vec<Rec> =
        serde_wasm_bindgen::from_value(again.recommend(5, Some(true)).await.unwrap()).unwrap();
    assert_eq!(a, b, "a restored state recommends what the original would");
    // a lost GPU device: the engine is rebuilt and nothing the person taught is lost
    rec.simulate_device_loss();
    let c: Vec<Rec> =
        serde_wasm_bindgen::from_value(rec.recommend(5, Some(true)).await.unwrap()).unwrap();
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

#[wasm_bindgen_test]
async fn meta_training_pauses_at_a_checkpoint_and_resumes_to_the_same_policy() {
    use metarec::web::MetaTrainer;
    let opts = || {
        with(
            world(),
            serde_json::json!({ "engine": "cpu", "iterations": 4, "users_per_iteration": 2, "rounds": 4 }),
        )
    };
    let mut straight = MetaTrainer::create(opts(), None).await.unwrap();
    while !straight.done() {
        straight.step().await.unwrap();
    }
    let m = message(straight.step().await.err().unwrap());
    assert!(m.contains("complete"), "{m}");
    let mut first = MetaTrainer::create(opts(), None).await.unwrap();
    first.step().await.unwrap();
    first.step().await.unwrap();
    let checkpoint = first.checkpoint().await.unwrap();
    drop(first);
    let mut resumed = MetaTrainer::create(opts(), Some(checkpoint.clone()))
        .await
        .unwrap();
    assert_eq!((resumed.iteration(), resumed.iterations()), (2, 4));
    while !resumed.done() {
        resumed.step().await.unwrap();
    }
    let h: Vec<serde_json::Value> =
        serde_wasm_bindgen::from_value(resumed.history().unwrap()).unwrap();
    assert_eq!(h.len(), 4);
    assert_eq!(
        resumed.bundle().await.unwrap(),
        straight.bundle().await.unwrap(),
        "a resumed run ends where an uninterrupted one does"
    );
    // a checkpoint of another model is refused clearly
    let other = with(
        world(),
        serde_json::json!({ "engine": "cpu", "items": 91, "iterations": 4, "users_per_iteration": 2, "rounds": 4 }),
    );
    let m = message(
        MetaTrainer::create(other, Some(checkpoint))
            .await
            .err()
            .unwrap(),
    );
    assert!(m.contains("checkpoint"), "{m}");
}

/// `rec.metaTrain(options, onProgress)`: progress per iteration, a returned promise is waited
/// for, `false` stops; the recommender then serves the new policy on the new catalog.
async fn meta_train_in_place(engine: &str) {
    use metarec::web::Recommender;
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    use wasm_bindgen::prelude::*;
    let bytes = policy_bundle().await;
    let opts = plain(serde_json::json!({ "engine": engine, "seed": 1 }));
    let mut rec = Recommender::create(bytes, opts).await.unwrap();
    let first: Vec<Rec> =
        serde_wasm_bindgen::from_value(rec.recommend(3, None).await.unwrap()).unwrap();
    rec.feedback(first[0].item.clone(), 1.0).await.unwrap();
    // each call returns a promise that resolves after a timer; record whether the previous
    // one had resolved when the next call came
    let resolved = Rc::new(Cell::new(-1i32));
    let calls: Rc<RefCell<Vec<(u64, bool)>>> = Rc::default();
    let (r, c) = (resolved.clone(), calls.clone());
    let on_progress = Closure::<dyn FnMut(JsValue) -> JsValue>::new(move |p: JsValue| {
        let p: serde_json::Value = serde_wasm_bindgen::from_value(p).unwrap();
        let n = c.borrow().len() as i32;
        c.borrow_mut()
            .push((p["iteration"].as_u64().unwrap(), r.get() == n - 1));
        let r = r.clone();
        js_sys::Promise::new(&mut |resolve, _| {
            let r = r.clone();
            let done = Closure::once_into_js(move || {
                r.set(n);
                resolve.call0(&JsValue::NULL).unwrap();
            });
            web_sys::window()
                .unwrap()
                .set_timeout_with_callback_and_timeout_and_arguments_0(done.unchecked_ref(), 20)
                .unwrap();
        })
        .into()
    });
    let new_world = serde_json::json!({
        "items": 70, "users": 15, "seed": 8, "iterations": 3, "users_per_iteration": 2, "rounds": 4
    });
    let new_bundle = rec
        .meta_train(
            plain(new_world.clone()),
            Some(
                on_progress
                    .as_ref()
                    .unchecked_ref::<js_sys::Function>()
                    .clone(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(*calls.borrow(), [(0, true), (1, true), (2, true)]);
    assert!(resolved.get() == 2, "the last promise was waited for");
    let info: serde_json::Value =
        serde_wasm_bindgen::from_value(rec.engine_info().unwrap()).unwrap();
    assert_eq!(info["engine"], engine);
    let h: Vec<(String, f32)> = serde_wasm_bindgen::from_value(rec.history().unwrap()).unwrap();
    assert!(h.is_empty(), "a new policy starts a new person: {h:?}");
    let slate: Vec<Rec> =
        serde_wasm_bindgen::from_value(rec.recommend(20, Some(true)).await.unwrap()).unwrap();
    assert_eq!(slate.len(), 20);
    assert!(slate
        .iter()
        .all(|r| (1..=70).contains(&r.item.parse::<u32>().unwrap())));
    // the returned bundle is the policy the recommender now serves
    let mut same = Recommender::create(
        new_bundle,
        plain(serde_json::json!({ "engine": engine, "seed": 1 })),
    )
    .await
    .unwrap();
    let a: Vec<Rec> =
        serde_wasm_bindgen::from_value(same.recommend(5, Some(true)).await.unwrap()).unwrap();
    let b: Vec<Rec> =
        serde_wasm_bindgen::from_value(rec.recommend(5, Some(true)).await.unwrap()).unwrap();
    assert_eq!(a, b);
    // `false` from onProgress stops after that iteration
    let stops = Rc::new(Cell::new(0));
    let s = stops.clone();
    let stop = Closure::<dyn FnMut(JsValue) -> JsValue>::new(move |_| {
        s.set(s.get() + 1);
        JsValue::FALSE
    });
    rec.meta_train(
        plain(new_world),
        Some(stop.as_ref().unchecked_ref::<js_sys::Function>().clone()),
    )
    .await
    .unwrap();
    assert_eq!(stops.get(), 1);
}

#[wasm_bindgen_test]
async fn rec_meta_train_switches_the_policy_on_the_cpu_engine() {
    meta_train_in_place("cpu").await;
}

#[wasm_bindgen_test]
async fn rec_meta_train_switches_the_policy_on_webgpu() {
    meta_train_in_place("gpu").await;
}

async fn simulate(engine: &str) {
    use metarec::web::Simulation;
    let bytes = policy_bundle().await;
    let opts = || {
        with(
            world(),
            serde_json::json!({ "engine": engine, "held_out": 4, "rounds": 3, "slate": 2 }),
        )
    };
    let mut sim = Simulation::create(bytes.clone(), opts()).await.unwrap();
    let info: serde_json::Value =
        serde_wasm_bindgen::from_value(sim.engine_info().unwrap()).unwrap();
    assert_eq!(info["engine"], engine);
    let users: Vec<serde_json::Value> =
        serde_wasm_bindgen::from_value(sim.users().unwrap()).unwrap();
    assert_eq!(users.len(), 4);
    assert_eq!(
        users[0]["world_user"], 20,
        "held-out users come after the 20 training users"
    );
    sim.select(plain(serde_json::json!([3, 1]))).unwrap();
    let mut steps = Vec::new();
    while !sim.done() {
        let s: serde_json::Value =
            serde_wasm_bindgen::from_value(sim.step().await.unwrap()).unwrap();
        let c: serde_json::Value = serde_wasm_bindgen::from_value(sim.curves().unwrap()).unwrap();
        assert_eq!(c["slates"], steps.len() + 1);
        steps.push(s);
    }
    assert_eq!(steps.len(), 6);
    assert_eq!(
        (steps[0]["user"].clone(), steps[3]["user"].clone()),
        (3.into(), 1.into())
    );
    for s in &steps {
        let lanes = s["lanes"].as_array().unwrap();
        let methods: Vec<&str> = lanes
            .iter()
            .map(|l| l["method"].as_str().unwrap())
            .collect();
        assert_eq!(
            methods,
            ["meta-rl", "no-adaptation", "popularity", "linucb", "random"]
        );
        for l in lanes {
            let items = l["items"].as_array().unwrap();
            assert_eq!(items.len(), 2);
            assert!(items
                .iter()
                .all(|i| !i["title"].as_str().unwrap().is_empty()));
            let clicked = l["clicked"].as_str();
            assert_eq!(
                l["reward"].as_f64().unwrap(),
                f64::from(u8::from(clicked.is_some()))
            );
            assert!(clicked.is_none_or(|c| items.iter().any(|i| i["item"] == c)));
        }
    }
    let c: serde_json::Value = serde_wasm_bindgen::from_value(sim.curves().unwrap()).unwrap();
    assert_eq!(
        (c["users_done"].clone(), c["rounds"].clone()),
        (2.into(), serde_json::json!([1, 2, 3]))
    );
    assert_eq!(c["reward"].as_array().unwrap().len(), 5);
    let m = message(sim.step().await.err().unwrap());
    assert!(m.contains("select users"), "{m}");
    let m = message(sim.select(plain(serde_json::json!([4]))).err().unwrap());
    assert!(m.contains("held-out user 4"), "{m}");
    // a bundle of another world is refused
    let other = with(world(), serde_json::json!({ "engine": engine, "seed": 7 }));
    let m = message(Simulation::create(bytes, other).await.err().unwrap());
    assert!(m.contains("synthetic world"), "{m}");
}

#[wasm_bindgen_test]
async fn simulated_held_out_users_against_baselines_on_the_cpu_engine() {
    simulate("cpu").await;
}

#[wasm_bindgen_test]
async fn simulated_held_out_users_against_baselines_on_webgpu() {
    simulate("gpu").await;
}
