//! Learning curves of CAVIA's outer optimisers (REINFORCE, PPO, TRPO) for EVALUATION.md,
//! "Outer optimisers", drawn as SVG.
//!
//! - `train DIR PREFIX EPISODES_PER_ITERATION OUT.svg`: reads `DIR/PREFIX-{reinforce,ppo,trpo}-SEED.json`
//!   (`metarec train --stages meta --json`) for every seed present, draws the training reward per
//!   round (10-iteration moving average, mean over seeds) against episodes and against
//!   wall-clock seconds, and prints a markdown table: seconds, the reward of the last 10
//!   iterations, the reward of the last 10 iterations finished within the shortest run's time
//!   (equal wall-clock budget), and TRPO's KL and line-search figures.
//! - `eval OUT.svg LABEL=FILE:METHOD...`: the held-out reward-per-round curves of methods from
//!   `metarec eval --json` reports, in one chart, and their P@rounds 1–10.

use metarec::cli::chart::{self, Lines};
use plotters::prelude::*;
use serde_json::Value;
use std::error::Error;

const OPTIMIZERS: [&str; 3] = ["reinforce", "ppo", "trpo"];

fn read(path: &str) -> Result<Value, Box<dyn Error>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    Ok(serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?)
}

fn f64s(v: &Value, f: impl Fn(&Value) -> Option<f64>) -> Vec<f64> {
    v.as_array()
        .map(|a| a.iter().filter_map(f).collect())
        .unwrap_or_default()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn sd(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len().max(2) - 1) as f64).sqrt()
}

/// Moving average over the previous `w` values.
fn smooth(v: &[f64], w: usize) -> Vec<f64> {
    (0..v.len())
        .map(|i| mean(&v[i.saturating_sub(w - 1)..=i]))
        .collect()
}

struct RunCurve {
    rewards: Vec<f64>,
    seconds: Vec<f64>,
    json: Value,
}

fn train(dir: &str, prefix: &str, per_iteration: f64, out: &str) -> Result<(), Box<dyn Error>> {
    let mut runs: Vec<(&str, Vec<RunCurve>)> = Vec::new();
    for opt in OPTIMIZERS {
        let mut curves = Vec::new();
        for seed in 1..=100 {
            let path = format!("{dir}/{prefix}-{opt}-{seed}.json");
            if !std::path::Path::new(&path).exists() {
                continue;
            }
            let json = read(&path)?;
            let history = &json["meta"]["history"];
            curves.push(RunCurve {
                rewards: f64s(history, |p| p["mean_reward"].as_f64()),
                seconds: f64s(&json["meta"]["elapsed"], Value::as_f64),
                json,
            });
        }
        if curves.is_empty() {
            return Err(format!("no {dir}/{prefix}-{opt}-SEED.json").into());
        }
        runs.push((opt, curves));
    }
    let budget = runs
        .iter()
        .map(|(_, c)| {
            mean(
                &c.iter()
                    .map(|r| *r.seconds.last().unwrap_or(&0.0))
                    .collect::<Vec<_>>(),
            )
        })
        .fold(f64::INFINITY, f64::min);
    println!("| optimizer | seeds | seconds | reward, last 10 iterations | reward within {budget:.1} s (last 10 iterations then) | mean / max KL (δ) | backtracks / accepted steps |");
    println!("|---|---|---|---|---|---|---|");
    let mut series = Vec::new();
    for (opt, curves) in &runs {
        let last = |r: &RunCurve, upto: usize| mean(&r.rewards[upto.saturating_sub(10)..upto]);
        let finals: Vec<f64> = curves.iter().map(|r| last(r, r.rewards.len())).collect();
        let within: Vec<f64> = curves
            .iter()
            .map(|r| last(r, r.seconds.iter().filter(|&&s| s <= budget).count()))
            .collect();
        let secs: Vec<f64> = curves
            .iter()
            .map(|r| *r.seconds.last().unwrap_or(&0.0))
            .collect();
        let trpo = if *opt == "trpo" {
            let j = |k: &str| {
                f64s(
                    &Value::Array(curves.iter().map(|r| r.json[k].clone()).collect()),
                    Value::as_f64,
                )
            };
            format!(
                "{:.4} / {:.4} ({}) | {} / {}",
                mean(&j("mean_kl")),
                j("max_kl").iter().fold(0f64, |m, &x| m.max(x)),
                curves[0].json["kl_radius"],
                j("line_search_backtracks").iter().sum::<f64>(),
                j("accepted_steps").iter().sum::<f64>()
            )
        } else {
            "— | —".into()
        };
        println!(
            "| {opt} | {} | {:.1} | {:.3} ± {:.3} | {:.3} ± {:.3} | {trpo} |",
            curves.len(),
            mean(&secs),
            mean(&finals),
            sd(&finals),
            mean(&within),
            sd(&within)
        );
        let n = curves
            .iter()
            .map(|r| r.rewards.len().min(r.seconds.len()))
            .min()
            .unwrap_or(0);
        let avg = |f: &dyn Fn(&RunCurve) -> Vec<f64>| -> Vec<f64> {
            let all: Vec<Vec<f64>> = curves.iter().map(f).collect();
            (0..n)
                .map(|i| mean(&all.iter().map(|c| c[i]).collect::<Vec<_>>()))
                .collect()
        };
        let reward = avg(&|r| smooth(&r.rewards, 10));
        let time = avg(&|r| r.seconds.clone());
        series.push((*opt, reward, time));
    }
    let root = SVGBackend::new(out, (1100, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(550);
    let top = series
        .iter()
        .flat_map(|s| s.1.iter())
        .fold(0f64, |m, &x| m.max(x))
        * 1.1;
    let bottom = series
        .iter()
        .flat_map(|s| s.1.iter())
        .fold(f64::INFINITY, |m, &x| m.min(x))
        * 0.9;
    for (panel, by_time) in [(left, false), (right, true)] {
        let series: Vec<(String, Vec<(f64, f64)>)> = series
            .iter()
            .map(|(opt, reward, time)| {
                let x = |k: usize| {
                    if by_time {
                        time[k]
                    } else {
                        (k + 1) as f64 * per_iteration
                    }
                };
                let points = reward.iter().enumerate().map(|(k, &y)| (x(k), y)).collect();
                (opt.to_string(), points)
            })
            .collect();
        let xmax = series
            .iter()
            .filter_map(|s| s.1.last().map(|p| p.0))
            .fold(1f64, f64::max);
        let lines = Lines {
            caption: if by_time {
                "against wall-clock time"
            } else {
                "against episodes"
            },
            x_desc: if by_time { "seconds" } else { "episodes" },
            y_desc: "training reward per round",
            x: 0f64..xmax,
            y: bottom..top,
            series,
        };
        chart::draw(&panel, &lines)?;
    }
    root.present()?;
    Ok(())
}

fn eval(out: &str, specs: &[String]) -> Result<(), Box<dyn Error>> {
    let mut series = Vec::new();
    println!("| row | P@rounds 1–10 |");
    println!("|---|---|");
    for spec in specs {
        let (label, rest) = spec.split_once('=').ok_or("expected LABEL=FILE:METHOD")?;
        let (file, method) = rest.rsplit_once(':').ok_or("expected LABEL=FILE:METHOD")?;
        let json = read(file)?;
        let m = &json["methods"][method];
        if m.is_null() {
            return Err(format!("{file} has no method {method}").into());
        }
        let p = &m["precision_at_10_rounds"];
        println!(
            "| {label} | {:.3} ± {:.3} |",
            p["mean"].as_f64().unwrap_or(f64::NAN),
            p["ci95"].as_f64().unwrap_or(f64::NAN)
        );
        series.push((label.to_string(), f64s(&m["curve"], |s| s["mean"].as_f64())));
    }
    let root = SVGBackend::new(out, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let rounds = series.iter().map(|s| s.1.len()).max().unwrap_or(2) as f64;
    let series: Vec<(String, Vec<(f64, f64)>)> = series
        .into_iter()
        .map(|(label, curve)| {
            let points = curve.iter().enumerate().map(|(t, &y)| ((t + 1) as f64, y));
            (label, points.collect())
        })
        .collect();
    let lines = Lines {
        caption: "held-out users: reward per round",
        x_desc: "round",
        y_desc: "mean reward",
        x: 1f64..rounds.max(2.0),
        y: 0f64..(chart::y_max(&series) * 1.1).max(0.1),
        series,
    };
    chart::draw(&root, &lines)?;
    root.present()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("train") if args.len() == 5 => {
            let per: f64 = args[3].parse().map_err(|_| "EPISODES_PER_ITERATION must be a number")?;
            train(&args[1], &args[2], per, &args[4])
        }
        Some("eval") if args.len() >= 3 => eval(&args[1], &args[2..]),
        _ => Err("usage: optimizer_curves train DIR PREFIX EPISODES_PER_ITERATION OUT.svg | eval OUT.svg LABEL=FILE:METHOD...".into()),
    }
}
