//! Without any adapter everything still works, on the CPU engine. Its own test binary, because
//! it sets `METAREC_NO_GPU` for the whole process.
#![cfg(not(target_arch = "wasm32"))]

use metarec::engine::gpu::GpuContext;
use metarec::engine::{
    Adam, AnyEngine, Batch, Engine, EngineError, Loss, Preference, Row, SlateSpec,
};
use metarec::model::ModelConfig;
use pollster::block_on;

#[test]
fn without_an_adapter_the_cpu_engine_takes_over() {
    // no backend at all: a typed error, no panic
    let none = block_on(GpuContext::with_backends(Some(wgpu::Backends::empty())));
    assert!(
        matches!(none, Err(EngineError::NoAdapter(_))),
        "{:?}",
        none.err()
    );

    std::env::set_var("METAREC_NO_GPU", "1");
    let cfg = ModelConfig {
        max_rows: 8,
        ..ModelConfig::reference_policy()
    };
    let forced = block_on(AnyEngine::new(&cfg, Preference::Gpu));
    assert!(matches!(forced, Err(EngineError::NoAdapter(_))));

    let (mut engine, why) = block_on(AnyEngine::new(&cfg, Preference::Auto)).unwrap();
    assert_eq!(engine.info().engine, "cpu");
    assert!(why.unwrap().contains("METAREC_NO_GPU"));

    // the whole step works: items, sampling, a REINFORCE update that raises a rewarded item
    let (batch, items) = metarec::bench::random_batch(&cfg, 5);
    engine.set_items(&items).unwrap();
    let spec = SlateSpec {
        k: 3,
        temperature: 1.0,
        greedy: false,
        seed: 1,
        draw: 0,
    };
    let slate = block_on(engine.sample(&batch.inputs, None, spec)).unwrap();
    assert_eq!(slate.items.len(), 8 * 3);
    let target = slate.items[0];
    let rewarded = Batch {
        rows: (0..8)
            .map(|_| Row {
                action: target,
                reward: 1.0,
                baseline: 0.0,
                old_logp: 0.0,
            })
            .collect(),
        ..batch
    };
    let p = |e: &mut AnyEngine| {
        block_on(e.log_probs(&rewarded.inputs, None, 1.0)).unwrap()[target as usize].exp()
    };
    let before = p(&mut engine);
    let loss = Loss::Reinforce {
        entropy: 0.0,
        temperature: 1.0,
    };
    engine.train(&rewarded, loss, Adam::default(), 20).unwrap();
    let after = p(&mut engine);
    assert!(after > 2.0 * before, "p(rewarded item) {before} -> {after}");
    assert_eq!(block_on(engine.stats()).unwrap().step, 20);
}
