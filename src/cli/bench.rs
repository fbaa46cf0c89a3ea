//! `metarec bench engine`: training throughput of the reference policy on the GPU and CPU
//! engines, with dispatches, submits and bytes read back per step from the engine's counters.

use crate::bench::{train_throughput, TrainThroughput};
use crate::engine::cpu::CpuEngine;
use crate::engine::gpu::{GpuContext, GpuEngine};
use crate::model::ModelConfig;
use clap::{Args as ClapArgs, Subcommand};
use serde::Serialize;

/// Arguments of `metarec bench`.
#[derive(ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// One REINFORCE step of the reference policy (batch 64; input 128; hidden 256, 256;
    /// output 64; 1,682 items), GPU engine vs CPU engine.
    Engine {
        /// Training steps encoded per submit on the GPU.
        #[arg(long, default_value_t = 20)]
        steps_per_submit: u32,
        /// Timed repetitions per engine (the median is reported).
        #[arg(long, default_value_t = 5)]
        repetitions: u32,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct Report {
    model: ModelConfig,
    layers: usize,
    dispatch_budget_per_step: usize,
    gpu: Option<TrainThroughput>,
    gpu_error: Option<String>,
    cpu: TrainThroughput,
    gpu_over_cpu: Option<f64>,
}

/// Runs `metarec bench`.
pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let What::Engine {
        steps_per_submit,
        repetitions,
        json,
    } = args.what;
    let cfg = ModelConfig::reference_policy();
    let layers = cfg.layers().len();
    let (gpu, gpu_error) = match pollster::block_on(async {
        let ctx = GpuContext::new().await?;
        let mut engine = GpuEngine::new(&ctx, &cfg).await?;
        train_throughput(&mut engine, steps_per_submit, repetitions).await
    }) {
        Ok(t) => (Some(t), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let mut cpu_engine = CpuEngine::new(&cfg)?;
    let cpu = pollster::block_on(train_throughput(
        &mut cpu_engine,
        steps_per_submit,
        repetitions,
    ))?;
    let report = Report {
        gpu_over_cpu: gpu
            .as_ref()
            .map(|g| g.median_steps_per_s / cpu.median_steps_per_s),
        model: cfg,
        layers,
        dispatch_budget_per_step: 2 * layers + 3,
        gpu,
        gpu_error,
        cpu,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("reference policy: batch 64, input 128, hidden 256-256, output 64, 1,682 items; one REINFORCE step + Adam");
    println!();
    println!("| engine | adapter | steps/s median | min | max | dispatches/step | submits per {steps_per_submit} steps | bytes read back/step |");
    println!("|---|---|---|---|---|---|---|---|");
    for t in report.gpu.iter().chain([&report.cpu]) {
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} |",
            t.engine,
            t.adapter,
            t.median_steps_per_s,
            t.steps_per_s[0],
            t.steps_per_s[t.steps_per_s.len() - 1],
            t.dispatches_per_step,
            t.submits_per_repetition,
            t.bytes_read_back_per_step,
        );
    }
    println!();
    if let Some(e) = &report.gpu_error {
        println!("GPU engine unavailable: {e}");
    }
    if let Some(r) = report.gpu_over_cpu {
        println!("GPU / CPU steps/s (medians, same run): {r:.2}");
    }
    println!(
        "dispatch budget: 2 per layer + 3 per step = {} for {} layers",
        report.dispatch_budget_per_step, report.layers
    );
    Ok(())
}
