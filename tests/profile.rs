//! Per-kernel timings (`GpuContext::profiled`, `metarec bench kernels`) on the native adapter
//! (lavapipe writes timestamps inside compute passes).
#![cfg(not(target_arch = "wasm32"))]

use metarec::bench::{random_batch, REFERENCE_LOSS};
use metarec::engine::gpu::{GpuContext, GpuEngine};
use metarec::engine::{Adam, Engine};
use metarec::model::ModelConfig;

#[test]
fn a_profiled_context_times_every_dispatch_with_its_kernel() {
    pollster::block_on(async {
        let ctx = GpuContext::profiled().await.expect("a profiled context");
        let cfg = ModelConfig::reference_policy();
        let mut engine = GpuEngine::new(&ctx, &cfg).await.expect("engine");
        let (batch, items) = random_batch(&cfg, 3);
        engine.set_items(&items).expect("items");
        ctx.take_kernel_times().await.expect("nothing yet");

        let before = engine.counters().dispatches;
        engine
            .train(&batch, REFERENCE_LOSS, Adam::default(), 2)
            .expect("two steps in one submit");
        engine.stats().await.expect("stats");
        let dispatched = (engine.counters().dispatches - before) as usize;
        let times = ctx.take_kernel_times().await.expect("kernel times");

        // one timing per dispatch, in order, each step the same kernels
        assert_eq!(times.len(), dispatched);
        assert_eq!(dispatched, 2 * (2 * cfg.layers().len() + 3));
        let labels: Vec<&str> = times.iter().map(|t| &*t.kernel).collect();
        let (first, second) = labels.split_at(labels.len() / 2);
        assert_eq!(first, second);
        let once = |kernel: &str| first.iter().filter(|l| **l == kernel).count() == 1;
        assert!(once("loss.wgsl:policy_grad") && once("reduce.wgsl:step_stats"));
        assert_eq!(first[0], "dense_forward.wgsl:forward IN=128 OUT=256");
        assert_eq!(first.last(), Some(&"adam.wgsl:adam"));
        assert!(times.iter().all(|t| t.ns.is_finite() && t.ns >= 0.0));
        let policy: f64 = times
            .iter()
            .filter(|t| &*t.kernel == "loss.wgsl:policy_grad")
            .map(|t| t.ns)
            .sum();
        assert!(policy > 0.0, "the policy head took no time: {times:?}");

        // read once: the next read has only what ran since
        assert!(ctx.take_kernel_times().await.expect("again").is_empty());

        // an ordinary context has no timings to give
        let plain = GpuContext::new().await.expect("context");
        let err = plain.take_kernel_times().await.unwrap_err().to_string();
        assert!(err.contains("profiled"), "{err}");
    });
}
