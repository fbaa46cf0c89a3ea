//! Every GPU kernel against the CPU reference, natively (Mesa lavapipe on CI).

use metarec::engine::check::{self, Shape};
use metarec::engine::gpu::GpuContext;
use metarec::model::Activation;

fn context() -> GpuContext {
    pollster::block_on(GpuContext::new())
        .expect("a wgpu adapter (the README test command installs Mesa lavapipe)")
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
    assert_eq!(results.len(), check::edge_shapes().len() * 14);
    assert_all_pass(&results);
}

#[test]
fn scoring_is_tiled_when_the_catalog_exceeds_one_binding() {
    // 4 KiB bindings hold 64 items of width 16: the 10,000-item catalog needs 157 tiles
    let ctx = context().with_binding_limit(4096);
    let shape = Shape {
        input: 8,
        hidden: vec![12],
        output: 16,
        items: 10_000,
        rows: 1,
        activation: Activation::Relu,
    };
    let err = pollster::block_on(check::check_shape(&ctx, &shape));
    // training needs the whole matrix in one binding and says so; scoring still works
    let msg = err.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        msg.contains("one storage binding") || msg.contains("exceed"),
        "unexpected: {msg}"
    );
}
