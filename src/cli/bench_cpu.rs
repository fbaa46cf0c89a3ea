//! `metarec bench cpu-kernels`: the CPU engine's blocked kernels against its reference kernels
//! (the plain loops) in one process, interleaved: in each round both engines run the same
//! interactions (`bench interaction`'s person) and the same training steps (`bench engine`'s
//! reference step), the order alternating from round to round. The figure is the paired
//! ratio reference / blocked per round: its median and a distribution-free 95% confidence
//! interval (order statistics of the binomial), robust to the machine's load changing midway.

use crate::bench::{adaptation_model, Adaptation, StepTimer};
use crate::engine::cpu::{CpuEngine, Kernels};
use crate::model::ModelConfig;
use serde::Serialize;

/// One side's latencies over every timed interaction (ms).
#[derive(Serialize)]
struct Latency {
    p50_ms: f64,
    p95_ms: f64,
}

/// A paired ratio's median over rounds and its 95% confidence interval.
#[derive(Serialize)]
struct Ratio {
    rounds: usize,
    median: f64,
    ci95: [f64; 2],
}

#[derive(Serialize)]
struct InteractionPart {
    items: usize,
    interactions_per_round: usize,
    reference: Latency,
    blocked: Latency,
    /// Reference / blocked median interaction time, per round.
    speedup: Ratio,
}

#[derive(Serialize)]
struct TrainingPart {
    steps_per_round: u32,
    reference_steps_per_s: f64,
    blocked_steps_per_s: f64,
    /// Reference / blocked time of the round's steps.
    speedup: Ratio,
}

#[derive(Serialize)]
struct Report {
    interaction: Option<InteractionPart>,
    training: Option<TrainingPart>,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// The median of `ratios` and the order statistics `[r_(l), r_(n+1-l)]` (1-based) that cover
/// the median with probability ≥ 95% (`l` the largest with `P(Binomial(n, ½) < l) ≤ 2.5%`; the
/// whole range, with less coverage, for fewer than 6 rounds).
fn paired(ratios: Vec<f64>) -> Ratio {
    let r = sorted(ratios);
    let n = r.len();
    let mut cdf = 0.0;
    let mut pmf = 0.5f64.powi(n as i32);
    let mut l = 0;
    for i in 0..n {
        cdf += pmf;
        if cdf > 0.025 {
            // P(B ≤ i - 1) ≤ 2.5%: the i-th order statistic (1-based), index i - 1
            l = i.saturating_sub(1);
            break;
        }
        pmf *= (n - i) as f64 / (i + 1) as f64;
    }
    Ratio {
        rounds: n,
        median: quantile(&r, 0.5),
        ci95: [r[l], r[n - 1 - l]],
    }
}

/// The median (the upper one of an even count); `v` not empty.
pub(super) fn median(v: &[f64]) -> f64 {
    quantile(&sorted(v.to_vec()), 0.5)
}

/// Runs the comparison and prints it (JSON, or a few lines).
pub fn run(
    items: usize,
    rounds: usize,
    interactions: usize,
    steps: u32,
    json: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let order = |round: usize| {
        if round % 2 == 0 {
            [0, 1]
        } else {
            [1, 0]
        }
    };
    let kernels = [Kernels::Reference, Kernels::Blocked];
    let interaction = if interactions > 0 {
        let cfg = adaptation_model(items);
        let mut engines = kernels.map(|k| CpuEngine::with_kernels(&cfg, k));
        let mut people = Vec::new();
        for e in engines.iter_mut() {
            let e = e.as_mut().map_err(|e| e.to_string())?;
            let mut person = pollster::block_on(Adaptation::new(e, 10, 7))?;
            for i in 0..5 {
                pollster::block_on(person.interact(e, (i % 2) as f32))?;
            }
            people.push(person);
        }
        let mut all = [Vec::new(), Vec::new()];
        let mut ratios = Vec::new();
        for round in 0..rounds {
            let mut medians = [0.0; 2];
            for side in order(round) {
                let e = engines[side].as_mut().map_err(|e| e.to_string())?;
                let mut ms = Vec::with_capacity(interactions);
                for i in 0..interactions {
                    let p = pollster::block_on(people[side].interact(e, (i % 2) as f32))?;
                    ms.push(p.ms);
                }
                medians[side] = median(&ms);
                all[side].extend(ms);
            }
            ratios.push(medians[0] / medians[1]);
        }
        let latency = |v: &Vec<f64>| {
            let s = sorted(v.clone());
            Latency {
                p50_ms: quantile(&s, 0.5),
                p95_ms: quantile(&s, 0.95),
            }
        };
        Some(InteractionPart {
            items,
            interactions_per_round: interactions,
            reference: latency(&all[0]),
            blocked: latency(&all[1]),
            speedup: paired(ratios),
        })
    } else {
        None
    };
    let training = if steps > 0 {
        let cfg = ModelConfig::reference_policy();
        let mut engines = Vec::new();
        let mut timers = Vec::new();
        for k in kernels {
            let mut e = CpuEngine::with_kernels(&cfg, k)?;
            timers.push(pollster::block_on(StepTimer::new(&mut e))?);
            engines.push(e);
        }
        let mut ms = [Vec::new(), Vec::new()];
        let mut ratios = Vec::new();
        for round in 0..rounds {
            for side in order(round) {
                let r = pollster::block_on(timers[side].round(&mut engines[side], steps))?;
                ms[side].push(r.ms);
            }
            ratios.push(ms[0][round] / ms[1][round]);
        }
        let rate = |v: &[f64]| steps as f64 / (median(v) / 1e3);
        Some(TrainingPart {
            steps_per_round: steps,
            reference_steps_per_s: rate(&ms[0]),
            blocked_steps_per_s: rate(&ms[1]),
            speedup: paired(ratios),
        })
    } else {
        None
    };
    let report = Report {
        interaction,
        training,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    if let Some(i) = &report.interaction {
        println!(
            "interaction, {} items: reference p50 {:.3} ms p95 {:.3} ms; blocked p50 {:.3} ms p95 {:.3} ms; \
             speedup {:.2}× (95% CI {:.2}–{:.2}, {} rounds)",
            i.items,
            i.reference.p50_ms,
            i.reference.p95_ms,
            i.blocked.p50_ms,
            i.blocked.p95_ms,
            i.speedup.median,
            i.speedup.ci95[0],
            i.speedup.ci95[1],
            i.speedup.rounds
        );
    }
    if let Some(t) = &report.training {
        println!(
            "training (reference policy, batch 64): reference {:.1} steps/s, blocked {:.1} steps/s; \
             speedup {:.2}× (95% CI {:.2}–{:.2}, {} rounds)",
            t.reference_steps_per_s,
            t.blocked_steps_per_s,
            t.speedup.median,
            t.speedup.ci95[0],
            t.speedup.ci95[1],
            t.speedup.rounds
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::paired;

    #[test]
    fn the_median_interval_is_the_binomial_order_statistics() {
        // n = 20: P(B ≤ 5) = 2.07% ≤ 2.5% < P(B ≤ 6) = 5.77%, so [r_(6), r_(15)] (1-based)
        let r = paired((1..=20).map(f64::from).collect());
        assert_eq!(r.ci95, [6.0, 15.0]);
        assert_eq!(r.median, 11.0);
        // too few rounds for 95%: the whole range
        assert_eq!(paired(vec![3.0, 1.0, 2.0]).ci95, [1.0, 3.0]);
    }
}
