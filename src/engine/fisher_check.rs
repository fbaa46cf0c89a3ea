//! Checks of the Fisher-vector product ([`super::fisher`]) on both engines against the Fisher
//! built from per-row score-function gradients on the CPU reference:
//!
//! ```text
//! F v = (1/B) Σ_r Σ_j p_rj g_rj (g_rj · v),   g_rj = ∇θ log π(j | x_r)
//! ```
//!
//! (the expectation over actions of the score's outer product, which equals
//! `Jᵀ(diag(p) − ppᵀ)J`), each `g_rj` from the CPU engine's `gradients` on a one-row batch.
//! The native tests (`tests/kernels.rs`) and the browser tests (`tests/web.rs`) run this code.

use super::check::{rel_err, KernelCheck, Shape, TOLERANCE};
use super::cpu::CpuEngine;
use super::fisher::{Cg, Fisher, States};
use super::gpu::{GpuContext, GpuEngine};
use super::{Batch, Engine, Loss, Mask, Result, Row};
use crate::model::{Activation, Head, Init, ModelConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Tolerance of the natural gradient, GPU against CPU: CG's ten iterations amplify the
/// products' rounding differences by the system's condition number.
pub const CG_TOLERANCE: f32 = 1e-3;

/// Small networks to check on, and whether their rows mask every third item.
fn shapes() -> Vec<(Shape, bool)> {
    let shape = |input, hidden: &[usize], output, items, rows, activation| Shape {
        input,
        hidden: hidden.to_vec(),
        output,
        items,
        rows,
        activation,
        slate: 1,
    };
    vec![
        (shape(5, &[7], 4, 9, 3, Activation::Relu), true),
        (shape(6, &[5, 4], 3, 40, 2, Activation::Sigmoid), false),
        (shape(3, &[], 2, 300, 1, Activation::Relu), true),
    ]
}

/// `F v` from per-row score-function gradients on the CPU engine, in f64.
pub async fn score_function_fvp(
    cpu: &mut CpuEngine,
    states: States<'_>,
    v: &[f32],
) -> Result<Vec<f32>> {
    let cfg = cpu.config().clone();
    let (n, d) = (cfg.items(), cfg.input);
    let rows = states.inputs.len() / d;
    let logp = cpu
        .log_probs(states.inputs, states.mask, states.temperature)
        .await?;
    let mut out = vec![0f64; v.len()];
    for r in 0..rows {
        let mask = states.mask.map(|m| Mask {
            words: m.words[r * m.words_per_row..(r + 1) * m.words_per_row].to_vec(),
            words_per_row: m.words_per_row,
        });
        for j in 0..n {
            if logp[r * n + j] == f32::MIN {
                continue;
            }
            let p = (logp[r * n + j] as f64).exp();
            // the loss −(r − b) log π(j) with r − b = −1 has the gradient ∇ log π(j)
            let batch = Batch {
                inputs: states.inputs[r * d..(r + 1) * d].to_vec(),
                rows: vec![Row {
                    action: j as u32,
                    reward: -1.0,
                    baseline: 0.0,
                    old_logp: 0.0,
                }],
                mask: mask.clone(),
            };
            let loss = Loss::Reinforce {
                entropy: 0.0,
                temperature: states.temperature,
            };
            let (g, _) = cpu.gradients(&batch, loss).await?;
            let gv: f64 = g.iter().zip(v).map(|(a, b)| *a as f64 * *b as f64).sum();
            for (o, gi) in out.iter_mut().zip(&g) {
                *o += p * gv * *gi as f64 / rows as f64;
            }
        }
    }
    Ok(out.into_iter().map(|x| x as f32).collect())
}

/// Fisher-vector products on both engines against [`score_function_fvp`], and the GPU's
/// natural gradient against the CPU's, on small networks.
pub async fn check_fisher(ctx: &GpuContext) -> Result<Vec<KernelCheck>> {
    let mut out = Vec::new();
    for (s, masked) in shapes() {
        let (input, hidden, output, items, rows, activation) =
            (s.input, s.hidden, s.output, s.items, s.rows, s.activation);
        let cfg = ModelConfig {
            input,
            hidden: hidden.clone(),
            output,
            hidden_activation: activation,
            output_activation: Activation::Identity,
            head: Head::Policy { items },
            init: Init::Xavier,
            seed: 3,
            max_rows: rows,
        };
        let shape = format!(
            "in {input} hidden {hidden:?} out {output} items {items} rows {rows} {activation:?}{}",
            if masked { " masked" } else { "" }
        );
        let mut rng = ChaCha8Rng::seed_from_u64(items as u64);
        let mut uniform =
            |n: usize, a: f32| -> Vec<f32> { (0..n).map(|_| rng.random_range(-a..a)).collect() };
        let emb = uniform(items * output, 1.0);
        let inputs = uniform(rows * input, 1.0);
        let v = uniform(cfg.param_count(), 1.0);
        let mask = masked.then(|| {
            let mut m = Mask::new(rows, items);
            for r in 0..rows {
                for j in (r % 3..items).step_by(3) {
                    m.set(r, j);
                }
            }
            m
        });
        let states = States {
            inputs: &inputs,
            mask: mask.as_ref(),
            temperature: 0.7,
        };
        let mut cpu = CpuEngine::new(&cfg)?;
        let mut gpu = GpuEngine::new(ctx, &cfg).await?;
        cpu.set_items(&emb)?;
        gpu.set_items(&emb)?;
        let reference = score_function_fvp(&mut cpu, states, &v).await?;
        let fvp_cpu = cpu.fisher_product(states, &v, 0.0).await?;
        let fvp_gpu = gpu.fisher_product(states, &v, 0.0).await?;
        let cg = Cg::default();
        let ng_cpu = cpu.natural_gradient(states, &v, cg).await?;
        let ng_gpu = gpu.natural_gradient(states, &v, cg).await?;
        for (name, err, tolerance) in [
            (
                "fisher product cpu vs score-function",
                rel_err(&fvp_cpu, &reference),
                TOLERANCE,
            ),
            (
                "fisher product gpu vs score-function",
                rel_err(&fvp_gpu, &reference),
                TOLERANCE,
            ),
            (
                "natural gradient gpu vs cpu",
                rel_err(&ng_gpu, &ng_cpu),
                CG_TOLERANCE,
            ),
        ] {
            out.push(KernelCheck {
                name: name.into(),
                shape: shape.clone(),
                max_rel_err: err,
                tolerance,
                pass: err <= tolerance,
            });
        }
    }
    Ok(out)
}
