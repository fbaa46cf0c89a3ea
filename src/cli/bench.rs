//! `metarec bench engine`: training throughput of the reference policy on the GPU and CPU
//! engines, with dispatches, submits and bytes read back per step from the engine's counters.
//! `metarec bench interaction`: one person's interaction (a reaction, an adaptation step, the
//! next list) as the page runs it: latency percentiles and the engine's own counts.
//! `metarec bench meta`: meta-training iterations/s on the synthetic world and the process's
//! peak memory. `metarec bench kernels`: per-kernel GPU timings (bench_kernels.rs).
//! `metarec bench chart`: the browser benchmark's latency-vs-catalog chart (SVG).

use crate::bench::{meta_throughput, train_throughput, MetaThroughput, TrainThroughput};
use crate::engine::cpu::CpuEngine;
use crate::engine::gpu::{GpuContext, GpuEngine};
use crate::engine::{AnyEngine, Preference};
use crate::meta::{MetaConfig, PolicyShape, SyntheticSetup};
use crate::model::ModelConfig;
use clap::{Args as ClapArgs, Subcommand};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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
    /// One person's interaction as the page runs it per click (a reaction to the top item: one
    /// adaptation step; then the next top 10, read back) with the reference network over
    /// `--items` random item vectors: p50/p95 latency and, from the engine's counters, the
    /// dispatches, submits and bytes read back per interaction.
    Interaction {
        /// Catalog size.
        #[arg(long, default_value_t = 1682)]
        items: usize,
        /// gpu or cpu.
        #[arg(long, value_parser = ["gpu", "cpu"])]
        engine: String,
        /// Timed interactions (after 5 warm-up ones).
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
        interactions: u64,
        /// Time the list alone (`Session::recommend`, no reaction) instead of a reaction and
        /// the next list.
        #[arg(long)]
        recommend_only: bool,
        /// Print one JSON object instead of a line.
        #[arg(long)]
        json: bool,
    },
    /// Meta-training on the synthetic world (`train --data synthetic --stages meta` settings):
    /// iterations/s and the process's peak resident memory. One engine per run, so that the
    /// peak belongs to it. Prints one JSON object.
    Meta {
        /// gpu or cpu.
        #[arg(long, value_parser = ["gpu", "cpu"])]
        engine: String,
        /// Timed meta-iterations (after one warm-up iteration).
        #[arg(long, default_value_t = 10)]
        iterations: usize,
    },
    /// The CPU engine's blocked kernels against its reference kernels, interleaved in one
    /// process: `--rounds` paired rounds of `--interactions` interactions (as `interaction`,
    /// over `--items` items) and of `--steps` training steps (as `engine`) on each; the median
    /// paired ratio reference / blocked with its 95% confidence interval. 0 skips a part.
    CpuKernels {
        /// Catalog size of the interactions.
        #[arg(long, default_value_t = 1682)]
        items: usize,
        /// Paired rounds.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// Interactions per engine per round.
        #[arg(long, default_value_t = 10)]
        interactions: usize,
        /// Training steps per engine per round.
        #[arg(long, default_value_t = 3)]
        steps: u32,
        /// Print one JSON object instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Per-kernel GPU timings from timestamp queries around every dispatch (natively, on
    /// adapters that write timestamps inside compute passes): the reference training step
    /// (as `engine`) and one interaction over `--items` items (as `interaction`); for each
    /// kernel its dispatches and median time per operation.
    Kernels {
        /// Catalog size of the interactions.
        #[arg(long, default_value_t = 1682)]
        items: usize,
        /// Timed training steps (one submit each).
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Timed interactions.
        #[arg(long, default_value_t = 50)]
        interactions: usize,
        /// Print one JSON object instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Draws latency against catalog size from the browser benchmark's JSON
    /// (`{"series": [{"name", "points": [{"items", "p50_ms", "p95_ms"}]}]}`) as an SVG.
    Chart {
        /// The JSON file written by `scripts/bench.mjs`.
        #[arg(long)]
        input: PathBuf,
        /// Where to write the SVG.
        #[arg(long)]
        out: PathBuf,
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
    match args.what {
        What::Engine {
            steps_per_submit,
            repetitions,
            json,
        } => engine(steps_per_submit, repetitions, json),
        What::Interaction {
            items,
            engine,
            interactions,
            recommend_only,
            json,
        } => pollster::block_on(interaction(
            items,
            &engine,
            interactions as usize,
            recommend_only,
            json,
        )),
        What::Meta { engine, iterations } => meta(&engine, iterations),
        What::CpuKernels {
            items,
            rounds,
            interactions,
            steps,
            json,
        } => super::bench_cpu::run(items, rounds, interactions, steps, json),
        What::Kernels {
            items,
            steps,
            interactions,
            json,
        } => super::bench_kernels::run(items, steps, interactions, json),
        What::Chart { input, out } => chart(&input, &out),
    }
}

fn engine(
    steps_per_submit: u32,
    repetitions: u32,
    json: bool,
) -> Result<(), Box<dyn std::error::Error>> {
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

#[derive(Serialize)]
struct MetaReport {
    #[serde(flatten)]
    throughput: MetaThroughput,
    model: ModelConfig,
    /// Peak resident set size of this process (`VmHWM`), MiB; on a software GPU (lavapipe) the
    /// device's buffers are host memory and count too.
    peak_rss_mib: Option<f64>,
}

fn meta(engine: &str, iterations: usize) -> Result<(), Box<dyn std::error::Error>> {
    let cfg = MetaConfig::default();
    let setup = SyntheticSetup::new(Default::default(), &PolicyShape::default(), &cfg)?;
    let pref = if engine == "gpu" {
        Preference::Gpu
    } else {
        Preference::Cpu
    };
    let throughput = pollster::block_on(async {
        let (mut e, _) = AnyEngine::new(&setup.model, pref).await?;
        meta_throughput(&mut e, &setup, &cfg, iterations).await
    })?;
    let report = MetaReport {
        throughput,
        model: setup.model.clone(),
        peak_rss_mib: peak_rss_mib(),
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// The process's peak resident set size from `/proc/self/status` (Linux; None elsewhere).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[derive(Deserialize)]
struct LatencySeries {
    name: String,
    points: Vec<LatencyPoint>,
}

#[derive(Deserialize)]
struct LatencyPoint {
    items: f64,
    p50_ms: f64,
    p95_ms: f64,
}

#[derive(Deserialize)]
struct LatencyChart {
    series: Vec<LatencySeries>,
}

/// Log-log chart of p50 (thick) and p95 (thin) latency against catalog size.
fn chart(input: &Path, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let data: LatencyChart = serde_json::from_slice(&std::fs::read(input)?)?;
    let points = || data.series.iter().flat_map(|s| &s.points);
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for p in points() {
        x0 = x0.min(p.items);
        x1 = x1.max(p.items);
        y0 = y0.min(p.p50_ms.min(p.p95_ms));
        y1 = y1.max(p.p50_ms.max(p.p95_ms));
    }
    if x0 > x1 || y0.is_nan() || y0 <= 0.0 {
        return Err(format!("{}: no positive latencies to draw", input.display()).into());
    }
    let root = SVGBackend::new(out, (900, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Latency vs catalog size (headless Chromium; thick p50, thin p95)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (x0 / 1.5..x1 * 1.5).log_scale(),
            (y0 / 1.5..y1 * 1.5).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("catalog size (items)")
        .y_desc("ms")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y}"))
        .draw()?;
    for (i, s) in data.series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let p50: Vec<(f64, f64)> = s.points.iter().map(|p| (p.items, p.p50_ms)).collect();
        let p95: Vec<(f64, f64)> = s.points.iter().map(|p| (p.items, p.p95_ms)).collect();
        chart
            .draw_series(LineSeries::new(p50.clone(), color.stroke_width(3)))?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        chart.draw_series(p50.into_iter().map(|p| Circle::new(p, 4, color.filled())))?;
        chart.draw_series(LineSeries::new(p95, color.stroke_width(1)))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// What `metarec bench interaction` prints (per interaction, after the warm-up).
#[derive(Serialize)]
struct InteractionReport {
    items: usize,
    /// "interact" (a reaction and the next list) or "recommend" (the list alone).
    path: &'static str,
    engine: String,
    adapter: String,
    interactions: usize,
    p50_ms: f64,
    p95_ms: f64,
    dispatches: f64,
    submits: f64,
    readback_bytes: f64,
}

async fn interaction(
    items: usize,
    engine: &str,
    n: usize,
    recommend_only: bool,
    json: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    use crate::bench::{adaptation_model, Adaptation};
    use crate::engine::Engine;
    let pref = if engine == "gpu" {
        Preference::Gpu
    } else {
        Preference::Cpu
    };
    let (mut e, _) = AnyEngine::new(&adaptation_model(items), pref).await?;
    let mut person = Adaptation::new(&mut e, 10, 7).await?;
    // warm-up in the timed path (a list alone also runs where reactions cannot: a catalog
    // beyond one storage binding)
    for i in 0..5 {
        if recommend_only {
            person.recommend(&mut e).await?;
        } else {
            person.interact(&mut e, (i % 2) as f32).await?;
        }
    }
    let before = e.counters();
    let mut ms = Vec::with_capacity(n);
    for i in 0..n {
        if recommend_only {
            let t0 = crate::clock::now_ms();
            person.recommend(&mut e).await?;
            ms.push(crate::clock::now_ms() - t0);
        } else {
            ms.push(person.interact(&mut e, (i % 2) as f32).await?.ms);
        }
    }
    let after = e.counters();
    ms.sort_by(f64::total_cmp);
    let quantile = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    let per = |a: u64, b: u64| (a - b) as f64 / n as f64;
    let info = e.info();
    let report = InteractionReport {
        items,
        path: if recommend_only {
            "recommend"
        } else {
            "interact"
        },
        engine: info.engine,
        adapter: info.adapter,
        interactions: n,
        p50_ms: quantile(0.5),
        p95_ms: quantile(0.95),
        dispatches: per(after.dispatches, before.dispatches),
        submits: per(after.submits, before.submits),
        readback_bytes: per(after.bytes_read_back, before.bytes_read_back),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} ({}), {} items, {}: p50 {:.2} ms, p95 {:.2} ms; per interaction {:.0} dispatches, \
             {:.0} submits, {:.0} bytes read back",
            report.engine,
            report.adapter,
            items,
            report.path,
            report.p50_ms,
            report.p95_ms,
            report.dispatches,
            report.submits,
            report.readback_bytes
        );
    }
    Ok(())
}
