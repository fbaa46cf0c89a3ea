//! `metarec bench kernels`: where a GPU step's time goes, kernel by kernel, from timestamp
//! queries written around every dispatch (`GpuContext::profiled`; natively, on adapters that
//! write timestamps inside compute passes — lavapipe does). Two workloads: the reference
//! training step (as `bench engine`) and one interaction (as `bench interaction`).

use super::bench_cpu::median;
use crate::bench::{adaptation_model, Adaptation, StepTimer};
use crate::engine::gpu::{GpuContext, GpuEngine, KernelTime};
use crate::model::ModelConfig;
use serde::Serialize;
use std::collections::BTreeMap;

/// One kernel's share of an operation.
#[derive(Serialize)]
struct KernelRow {
    kernel: String,
    /// Dispatches of this kernel per operation.
    dispatches: f64,
    /// Median over operations of this kernel's summed time in one operation, microseconds.
    median_us: f64,
    /// Its share of the summed medians.
    share: f64,
}

#[derive(Serialize)]
struct Workload {
    name: String,
    operations: usize,
    /// Median over operations of the summed kernel time, microseconds.
    median_total_us: f64,
    /// Median wall-clock time of one operation (submit to readback), microseconds.
    median_wall_us: f64,
    kernels: Vec<KernelRow>,
}

#[derive(Serialize)]
struct Report {
    adapter: String,
    workloads: Vec<Workload>,
}

/// Summarises the kernel times of `ops` operations (each the dispatches of one operation).
fn summarise(name: String, ops: Vec<Vec<KernelTime>>, wall_ms: Vec<f64>) -> Workload {
    let n = ops.len();
    let mut per_kernel: BTreeMap<String, (usize, Vec<f64>)> = BTreeMap::new();
    for op in &ops {
        let mut sums: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
        for t in op {
            let s = sums.entry(&t.kernel).or_default();
            s.0 += 1;
            s.1 += t.ns / 1e3;
        }
        for (k, (calls, us)) in sums {
            let e = per_kernel.entry(k.to_string()).or_default();
            e.0 += calls;
            e.1.push(us);
        }
    }
    let mut kernels: Vec<KernelRow> = per_kernel
        .into_iter()
        .map(|(kernel, (calls, mut us))| {
            // an operation that did not run the kernel spent no time in it
            us.resize(n, 0.0);
            KernelRow {
                kernel,
                dispatches: calls as f64 / n as f64,
                median_us: median(&us),
                share: 0.0,
            }
        })
        .collect();
    let summed: f64 = kernels.iter().map(|k| k.median_us).sum();
    for k in &mut kernels {
        k.share = k.median_us / summed.max(1e-9);
    }
    kernels.sort_by(|a, b| b.median_us.total_cmp(&a.median_us));
    let totals: Vec<f64> = ops
        .iter()
        .map(|op| op.iter().map(|t| t.ns / 1e3).sum())
        .collect();
    Workload {
        name,
        operations: n,
        median_total_us: median(&totals),
        median_wall_us: median(&wall_ms.iter().map(|ms| ms * 1e3).collect::<Vec<_>>()),
        kernels,
    }
}

async fn measure(
    items: usize,
    steps: usize,
    interactions: usize,
) -> Result<Report, Box<dyn std::error::Error>> {
    let ctx = GpuContext::profiled().await?;
    let mut workloads = Vec::new();

    let mut engine = GpuEngine::new(&ctx, &ModelConfig::reference_policy()).await?;
    let timer = StepTimer::new(&mut engine).await?;
    ctx.take_kernel_times().await?;
    let (mut ops, mut wall) = (Vec::new(), Vec::new());
    for _ in 0..steps {
        wall.push(timer.round(&mut engine, 1).await?.ms);
        ops.push(ctx.take_kernel_times().await?);
    }
    workloads.push(summarise(
        "training step (batch 64, 128-256-256-64, 1,682 items)".into(),
        ops,
        wall,
    ));

    let mut engine = GpuEngine::new(&ctx, &adaptation_model(items)).await?;
    let mut person = Adaptation::new(&mut engine, 10, 7).await?;
    for i in 0..3 {
        person.interact(&mut engine, (i % 2) as f32).await?;
    }
    ctx.take_kernel_times().await?;
    let (mut ops, mut wall) = (Vec::new(), Vec::new());
    for i in 0..interactions {
        wall.push(person.interact(&mut engine, (i % 2) as f32).await?.ms);
        ops.push(ctx.take_kernel_times().await?);
    }
    workloads.push(summarise(
        format!("interaction (258-256-256-64, {items} items, top 10)"),
        ops,
        wall,
    ));
    Ok(Report {
        adapter: ctx.info().adapter.clone(),
        workloads,
    })
}

/// Runs `metarec bench kernels`.
pub fn run(
    items: usize,
    steps: usize,
    interactions: usize,
    json: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let report = pollster::block_on(measure(items, steps.max(1), interactions.max(1)))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("adapter: {}", report.adapter);
    for w in &report.workloads {
        println!();
        println!(
            "{}: {} operations; kernels {:.0} us, wall clock {:.0} us (medians)",
            w.name, w.operations, w.median_total_us, w.median_wall_us
        );
        println!();
        println!("| kernel | dispatches | median us | share |");
        println!("|---|---|---|---|");
        for k in &w.kernels {
            println!(
                "| {} | {:.0} | {:.0} | {:.0}% |",
                k.kernel,
                k.dispatches,
                k.median_us,
                100.0 * k.share
            );
        }
    }
    Ok(())
}
