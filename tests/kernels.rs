//! Every GPU kernel against the CPU reference, natively (Mesa lavapipe on CI).
#![cfg(not(target_arch = "wasm32"))]

use metarec::engine::check::{self, Shape};
use metarec::engine::gpu::GpuContext;
use metarec::model::Activation;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use std::sync::OnceLock;

mod common;

/// One context for the whole file: the property test's cases share its pipeline cache.
fn context() -> GpuContext {
    static CONTEXT: OnceLock<GpuContext> = OnceLock::new();
    CONTEXT.get_or_init(common::gpu_context).clone()
}

fn assert_all_pass(results: &[check::KernelCheck]) {
    for r in results {
        println!(
            "{:<26} {:<60} err {:.2e} (tol {:.0e}) {}",
            r.name,
            r.shape,
            r.max_rel_err,
            r.tolerance,
            if r.pass { "ok" } else { "FAIL" }
        );
    }
    let failed: Vec<_> = results.iter().filter(|r| !r.pass).collect();
    assert!(
        failed.is_empty(),
        "kernels off the CPU reference: {failed:#?}"
    );
}

#[test]
fn every_kernel_matches_the_cpu_engine_on_edge_shapes() {
    let ctx = context();
    let results = pollster::block_on(check::check_all(&ctx, &check::edge_shapes())).unwrap();
    assert_eq!(results.len(), check::edge_shapes().len() * 23);
    assert_all_pass(&results);
}

/// Models the engine accepts: widths from 1 to 256 (the policy head keeps the item vector at
/// most 256 wide) around the dense kernel's 16-row and 64-column tiles and 128-value chunks,
/// 0–2 hidden layers, batches of 1…64 rows, catalogs of 1…10,000 items (one to three sampler
/// workgroups of 4,096, up to ten policy-head ones of 1,024; almost never a
/// multiple of a workgroup), slates of 1…64. Widths come from a set so that the context's
/// pipeline cache serves repeated layer shapes (a new shape compiles its pipelines on lavapipe).
fn shapes() -> impl Strategy<Value = Shape> {
    let width = || prop::sample::select(vec![1usize, 2, 15, 17, 63, 64, 65, 127, 129, 200, 256]);
    (
        width(),
        prop::collection::vec(width(), 0..=2),
        width(),
        1usize..=10_000,
        1usize..=64,
        prop_oneof![
            Just(Activation::Relu),
            Just(Activation::Sigmoid),
            Just(Activation::Identity)
        ],
        1usize..=64,
    )
        .prop_map(
            |(input, hidden, output, items, rows, activation, slate)| Shape {
                input,
                hidden,
                output,
                items,
                rows,
                activation,
                slate,
            },
        )
}

proptest! {
    // Each case builds two GPU engines on lavapipe: 12 new cases by default (after the ones
    // in kernels.proptest-regressions); PROPTEST_CASES=… runs more.
    // The same cases on every run (CI must not turn red on a case it never saw before);
    // PROPTEST_RNG_SEED=… explores others.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(12),
        rng_seed: std::env::var("PROPTEST_RNG_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(RngSeed::Fixed(20261130), RngSeed::Fixed),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_kernel_matches_the_cpu_engine_on_any_shape(shape in shapes()) {
        let results = pollster::block_on(check::check_shape(&context(), &shape))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let failed: Vec<_> = results.iter().filter(|r| !r.pass).collect();
        prop_assert!(failed.is_empty(), "kernels off the CPU reference: {failed:#?}");
    }
}

#[test]
fn catalogs_beyond_one_binding_are_scored_tile_by_tile() {
    use metarec::engine::cpu::CpuEngine;
    use metarec::engine::gpu::GpuEngine;
    use metarec::engine::{Batch, Engine, Loss, Row, SlateSpec};
    use metarec::model::{Head, Init, ModelConfig};
    use pollster::block_on;
    // 64 KiB bindings: the 10,000 × 16 item matrix (640 KB) needs 10 tiles of 1,024 items,
    // while one row of logits (40 KB) still fits one binding
    let ctx = context().with_binding_limit(64 * 1024);
    let cfg = ModelConfig {
        input: 8,
        hidden: vec![12],
        output: 16,
        hidden_activation: Activation::Relu,
        output_activation: Activation::Identity,
        head: Head::Policy { items: 10_000 },
        init: Init::He,
        seed: 5,
        max_rows: 1,
    };
    let mut gpu = block_on(GpuEngine::new(&ctx, &cfg)).unwrap();
    let mut cpu = CpuEngine::new(&cfg).unwrap();
    let items: Vec<f32> = (0..10_000 * 16)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    gpu.set_items(&items).unwrap();
    cpu.set_items(&items).unwrap();
    let x: Vec<f32> = (0..8).map(|i| i as f32 / 8.0 - 0.4).collect();
    let s = (
        block_on(gpu.scores(&x)).unwrap(),
        block_on(cpu.scores(&x)).unwrap(),
    );
    assert!(check::rel_err(&s.0, &s.1) <= check::TOLERANCE);
    let spec = SlateSpec {
        k: 10,
        temperature: 0.5,
        greedy: true,
        seed: 0,
        draw: 0,
    };
    let t = (
        block_on(gpu.sample(&x, None, spec)).unwrap(),
        block_on(cpu.sample(&x, None, spec)).unwrap(),
    );
    assert_eq!(t.0.items, t.1.items);
    // training needs the matrix in one binding and says so
    let batch = Batch {
        inputs: x,
        rows: vec![Row::default()],
        mask: None,
    };
    let loss = Loss::Reinforce {
        entropy: 0.0,
        temperature: 1.0,
    };
    let err = block_on(gpu.gradients(&batch, loss))
        .unwrap_err()
        .to_string();
    assert!(err.contains("one storage binding"), "{err}");
}

#[test]
fn fisher_vector_products_match_the_score_function_fisher_on_both_engines() {
    let results =
        pollster::block_on(metarec::engine::fisher_check::check_fisher(&context())).unwrap();
    assert_eq!(results.len(), 9);
    assert_all_pass(&results);
}
