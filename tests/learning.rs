//! Learning on both engines: a finite-difference check of the whole backward pass, a toy
//! supervised task and a toy bandit whose loss / regret fall at least 10×, with the GPU and CPU
//! runs ending on the same parameters, and Gumbel-top-k frequencies against the softmax.
#![cfg(not(target_arch = "wasm32"))]

use metarec::engine::check::rel_err;
use metarec::engine::cpu::CpuEngine;
use metarec::engine::gpu::GpuEngine;
use metarec::engine::{Adam, Batch, Engine, Loss, Mask, Row, SlateSpec};
use metarec::model::{Activation, Head, Init, ModelConfig};
use pollster::block_on;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod common;
use common::gpu_context as context;

fn config(head: Head, output: usize, output_activation: Activation, rows: usize) -> ModelConfig {
    ModelConfig {
        input: 6,
        hidden: vec![10, 8],
        output,
        hidden_activation: Activation::Sigmoid,
        output_activation,
        head,
        init: Init::Xavier,
        seed: 3,
        max_rows: rows,
    }
}

fn random(rng: &mut ChaCha8Rng, n: usize, a: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-a..a)).collect()
}

/// Central differences of the loss against the analytic gradient, for every loss.
#[test]
fn backward_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let items = 7;
    let rows = 4;
    let policy = config(Head::Policy { items }, 5, Activation::Identity, rows);
    let regression = config(
        Head::Regression {
            low: 1.0,
            high: 5.0,
        },
        1,
        Activation::Sigmoid,
        rows,
    );
    let inputs = random(&mut rng, rows * 6, 1.0);
    let embeddings = random(&mut rng, items * 5, 1.0);
    let mut mask = Mask::new(rows, items);
    mask.set(0, 3);
    mask.set(2, 6);
    let mut pol_rows: Vec<Row> = (0..rows)
        .map(|r| Row {
            action: [1, 2, 0, 5][r],
            reward: [1.0, 0.0, 1.0, 1.0][r],
            baseline: 0.3,
            old_logp: 0.0,
        })
        .collect();
    let cases = [
        (
            policy.clone(),
            Loss::Reinforce {
                entropy: 0.1,
                temperature: 0.9,
            },
        ),
        (
            policy.clone(),
            Loss::Ppo {
                entropy: 0.1,
                temperature: 0.9,
                clip: 10.0,
            },
        ),
        (regression.clone(), Loss::Mse),
    ];
    for (cfg, loss) in cases {
        let mut e = CpuEngine::new(&cfg).unwrap();
        let batch = if cfg == regression {
            Batch {
                inputs: inputs.clone(),
                rows: (0..rows)
                    .map(|r| Row {
                        reward: 1.0 + r as f32,
                        ..Row::default()
                    })
                    .collect(),
                mask: None,
            }
        } else {
            e.set_items(&embeddings).unwrap();
            // PPO's ratio needs old log-probs near the current ones (clip 10: inside the region)
            let lp = block_on(e.log_probs(&inputs, Some(&mask), 0.9)).unwrap();
            for (r, row) in pol_rows.iter_mut().enumerate() {
                row.old_logp = lp[r * items + row.action as usize] - 0.2;
            }
            Batch {
                inputs: inputs.clone(),
                rows: pol_rows.clone(),
                mask: Some(mask.clone()),
            }
        };
        let params = block_on(e.params()).unwrap();
        let (grad, _) = block_on(e.gradients(&batch, loss)).unwrap();
        let h = 1e-2f32;
        let mut numeric = Vec::new();
        for i in 0..params.len() {
            let mut p = params.clone();
            p[i] += h;
            e.set_params(&p).unwrap();
            let up = block_on(e.gradients(&batch, loss)).unwrap().1;
            p[i] -= 2.0 * h;
            e.set_params(&p).unwrap();
            let down = block_on(e.gradients(&batch, loss)).unwrap().1;
            numeric.push((up - down) / (2.0 * h));
        }
        let err = rel_err(&numeric, &grad);
        assert!(err < 1e-2, "{loss:?}: finite differences off by {err:.2e}");
        // and w.r.t. the inputs (what a CAVIA context vector adapts along)
        e.set_params(&params).unwrap();
        let (dx, _) = block_on(e.input_gradient(&batch, loss)).unwrap();
        let mut numeric = Vec::new();
        for i in 0..batch.inputs.len() {
            let mut b = batch.clone();
            b.inputs[i] += h;
            let up = block_on(e.gradients(&b, loss)).unwrap().1;
            b.inputs[i] -= 2.0 * h;
            let down = block_on(e.gradients(&b, loss)).unwrap().1;
            numeric.push((up - down) / (2.0 * h));
        }
        let err = rel_err(&numeric, &dx);
        assert!(err < 1e-2, "{loss:?}: input gradient off by {err:.2e}");
    }
}

#[test]
fn toy_supervised_task_learns_on_both_engines_alike() {
    // ratings from a fixed random "true" network; the model must fit them by MSE
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let rows = 48;
    let cfg = config(
        Head::Regression {
            low: 1.0,
            high: 5.0,
        },
        1,
        Activation::Sigmoid,
        rows,
    );
    let truth = ModelConfig {
        seed: 99,
        ..cfg.clone()
    };
    let inputs = random(&mut rng, rows * 6, 1.5);
    let mut teacher = CpuEngine::new(&truth).unwrap();
    let targets = block_on(teacher.forward(&inputs)).unwrap();
    let batch = Batch {
        inputs,
        rows: targets
            .iter()
            .map(|&y| Row {
                reward: 1.0 + 4.0 * y,
                ..Row::default()
            })
            .collect(),
        mask: None,
    };
    let ctx = context();
    let mut gpu = block_on(GpuEngine::new(&ctx, &cfg)).unwrap();
    let mut cpu = CpuEngine::new(&cfg).unwrap();
    let adam = Adam {
        lr: 0.02,
        ..Adam::default()
    };
    let (g0, c0) = (
        block_on(gpu.gradients(&batch, Loss::Mse)).unwrap().1,
        block_on(cpu.gradients(&batch, Loss::Mse)).unwrap().1,
    );
    // 600 steps, 100 per submit on the GPU
    for _ in 0..6 {
        gpu.train(&batch, Loss::Mse, adam, 100).unwrap();
        cpu.train(&batch, Loss::Mse, adam, 100).unwrap();
    }
    let (g1, c1) = (
        block_on(gpu.gradients(&batch, Loss::Mse)).unwrap().1,
        block_on(cpu.gradients(&batch, Loss::Mse)).unwrap().1,
    );
    println!("MSE gpu {g0:.4} -> {g1:.5}, cpu {c0:.4} -> {c1:.5}");
    assert!(g1 * 10.0 <= g0, "GPU loss fell only from {g0} to {g1}");
    assert!(c1 * 10.0 <= c0, "CPU loss fell only from {c0} to {c1}");
    let (pg, pc) = (
        block_on(gpu.params()).unwrap(),
        block_on(cpu.params()).unwrap(),
    );
    let err = rel_err(&pg, &pc);
    assert!(err < 1e-3, "GPU and CPU end parameters differ by {err:.2e}");
    let s = block_on(gpu.stats()).unwrap();
    assert_eq!(s.step, 600);
}

/// A contextual bandit: 4 contexts, 10 items, one rewarding item per context. Both engines run
/// in lockstep: each step both sample one item per context from their policy (Gumbel-top-1 on
/// the engine), the slates must agree, and both take a REINFORCE step on the CPU's slate (so a
/// near-tie in the Gumbel keys cannot fork the runs) with a running-mean baseline per context.
/// Regret = 1 − P(rewarding item), exactly.
#[test]
fn toy_bandit_regret_falls_tenfold_on_both_engines_alike() {
    let (contexts, items, steps) = (4, 10, 500);
    let cfg = ModelConfig {
        hidden: vec![32],
        hidden_activation: Activation::Relu,
        init: Init::He,
        ..config(
            Head::Policy { items },
            items,
            Activation::Identity,
            contexts,
        )
    };
    let ctx = context();
    let mut gpu = block_on(GpuEngine::new(&ctx, &cfg)).unwrap();
    let mut cpu = CpuEngine::new(&cfg).unwrap();
    let mut inputs = vec![0.0; contexts * 6];
    for c in 0..contexts {
        inputs[c * 6 + c] = 1.0;
        inputs[c * 6 + 5] = 1.0;
    }
    // one-hot item embeddings: the logits are the user vector itself
    let embeddings: Vec<f32> = (0..items * items)
        .map(|i| (i / items == i % items) as u32 as f32)
        .collect();
    gpu.set_items(&embeddings).unwrap();
    cpu.set_items(&embeddings).unwrap();
    let best = [3usize, 7, 0, 5];
    let regret = |e: &mut dyn DynSample| {
        let lp = e.softmax(&inputs);
        1.0 - (0..contexts)
            .map(|c| lp[c * items + best[c]].exp())
            .sum::<f32>()
            / contexts as f32
    };
    let first = (regret(&mut gpu), regret(&mut cpu));
    // a running-mean baseline per context (a state-dependent baseline): with one baseline shared
    // by all contexts, unrewarded contexts get negative advantages that can push a context's
    // policy onto a wrong item, where the gradient vanishes
    let mut baseline = vec![0.0f32; contexts];
    let loss = Loss::Reinforce {
        entropy: 0.02,
        temperature: 1.0,
    };
    // eps 1e-3: as the policy converges its gradients shrink towards rounding noise, which
    // Adam with a tiny eps would scale up to lr-sized steps that differ between the engines
    let adam = Adam {
        lr: 0.03,
        eps: 1e-3,
        ..Adam::default()
    };
    let mut agree = 0;
    for t in 0..steps {
        let g = gpu.draws(&inputs, t as u32);
        let c = cpu.draws(&inputs, t as u32);
        agree += (g == c) as usize;
        let rows: Vec<Row> = c
            .iter()
            .enumerate()
            .map(|(ctx, &a)| Row {
                action: a,
                reward: (a as usize == best[ctx]) as u32 as f32,
                baseline: baseline[ctx],
                old_logp: 0.0,
            })
            .collect();
        for (b, r) in baseline.iter_mut().zip(&rows) {
            *b = 0.9 * *b + 0.1 * r.reward;
        }
        let batch = Batch {
            inputs: inputs.clone(),
            rows,
            mask: None,
        };
        gpu.train(&batch, loss, adam, 1).unwrap();
        cpu.train(&batch, loss, adam, 1).unwrap();
    }
    let last = (regret(&mut gpu), regret(&mut cpu));
    println!(
        "regret gpu {:.3} -> {:.4}, cpu {:.3} -> {:.4}; slates agreed {agree}/{steps}",
        first.0, last.0, first.1, last.1
    );
    assert!(
        agree * 100 >= steps * 99,
        "GPU and CPU slates agreed on only {agree}/{steps} steps"
    );
    assert!(
        last.0 * 10.0 <= first.0,
        "GPU regret fell only from {} to {}",
        first.0,
        last.0
    );
    assert!(
        last.1 * 10.0 <= first.1,
        "CPU regret fell only from {} to {}",
        first.1,
        last.1
    );
    let err = rel_err(
        &block_on(gpu.params()).unwrap(),
        &block_on(cpu.params()).unwrap(),
    );
    // 500 steps compound f32 rounding differences: measured 2.6e-3
    assert!(err < 1e-2, "GPU and CPU end parameters differ by {err:.2e}");
}

/// Gumbel-top-1 draws follow the softmax: chi-square over 10 items, 20,000 draws, fixed seed.
#[test]
fn gumbel_top_k_frequencies_match_the_softmax() {
    let rows = 1000;
    let items = 10;
    let cfg = ModelConfig {
        input: 1,
        hidden: vec![],
        output: 1,
        hidden_activation: Activation::Identity,
        output_activation: Activation::Identity,
        head: Head::Policy { items },
        init: Init::Xavier,
        seed: 1,
        max_rows: rows,
    };
    // one weight 1, bias 0: u = x = 1, so the logits are the item "embeddings"
    let logits: Vec<f32> = (0..items).map(|j| (j as f32 - 4.0) * 0.35).collect();
    let inputs = vec![1.0; rows];
    let ctx = context();
    let mut gpu = block_on(GpuEngine::new(&ctx, &cfg)).unwrap();
    let mut cpu = CpuEngine::new(&cfg).unwrap();
    for e in [&mut gpu as &mut dyn DynSample, &mut cpu] {
        e.prepare(&logits);
        let lp = e.softmax(&inputs[..1]);
        let mut counts = vec![0f64; items];
        let draws = 20;
        for d in 0..draws {
            for a in e.draws(&inputs, d) {
                counts[a as usize] += 1.0;
            }
        }
        let n = (rows * draws as usize) as f64;
        let chi2: f64 = (0..items)
            .map(|j| {
                let expected = n * (lp[j] as f64).exp();
                (counts[j] - expected).powi(2) / expected
            })
            .sum();
        // 9 degrees of freedom: P(chi2 > 27.88) = 0.001
        assert!(chi2 < 27.88, "chi-square {chi2:.1} on {counts:?}");
    }
}

/// Object-safe view of the two engines for the sampling test.
trait DynSample {
    fn prepare(&mut self, logits: &[f32]);
    fn softmax(&mut self, inputs: &[f32]) -> Vec<f32>;
    fn draws(&mut self, inputs: &[f32], draw: u32) -> Vec<u32>;
}

impl<E: Engine> DynSample for E {
    fn prepare(&mut self, logits: &[f32]) {
        self.set_params(&[1.0, 0.0]).unwrap();
        self.set_items(logits).unwrap();
    }
    fn softmax(&mut self, inputs: &[f32]) -> Vec<f32> {
        block_on(Engine::log_probs(self, inputs, None, 1.0)).unwrap()
    }
    fn draws(&mut self, inputs: &[f32], draw: u32) -> Vec<u32> {
        let spec = SlateSpec {
            k: 1,
            temperature: 1.0,
            greedy: false,
            seed: 2024,
            draw,
        };
        block_on(self.sample(inputs, None, spec)).unwrap().items
    }
}

/// A step whose loss overflows is detected on the device, skipped and counted; training goes on.
#[test]
fn non_finite_steps_are_skipped_and_reported_on_both_engines() {
    let cfg = ModelConfig {
        hidden_activation: Activation::Relu,
        init: Init::He,
        ..config(Head::Policy { items: 5 }, 3, Activation::Identity, 2)
    };
    let ctx = context();
    let mut gpu = block_on(GpuEngine::new(&ctx, &cfg)).unwrap();
    let mut cpu = CpuEngine::new(&cfg).unwrap();
    let rows = vec![
        Row {
            action: 1,
            reward: 1.0,
            baseline: 0.0,
            old_logp: 0.0
        };
        2
    ];
    // finite inputs whose activations overflow to infinity two layers up
    let huge = Batch {
        inputs: vec![1e30; 12],
        rows: rows.clone(),
        mask: None,
    };
    let fine = Batch {
        inputs: vec![0.5; 12],
        rows,
        mask: None,
    };
    let loss = Loss::Reinforce {
        entropy: 0.0,
        temperature: 1.0,
    };
    for e in [&mut gpu as &mut dyn Skips, &mut cpu] {
        e.run(&huge, &fine, loss);
    }
}

trait Skips {
    fn run(&mut self, huge: &Batch, fine: &Batch, loss: Loss);
}

impl<E: Engine> Skips for E {
    fn run(&mut self, huge: &Batch, fine: &Batch, loss: Loss) {
        self.set_items(&(0..15).map(|i| i as f32 / 15.0).collect::<Vec<_>>())
            .unwrap();
        let before = block_on(self.params()).unwrap();
        self.train(huge, loss, Adam::default(), 3).unwrap();
        let s = block_on(self.stats()).unwrap();
        assert_eq!((s.skipped, s.step), (3, 0), "{}: {s:?}", self.info().engine);
        assert_eq!(
            block_on(self.params()).unwrap(),
            before,
            "skipped steps change nothing"
        );
        self.train(fine, loss, Adam::default(), 1).unwrap();
        let s = block_on(self.stats()).unwrap();
        assert_eq!((s.skipped, s.step), (3, 1), "{}: {s:?}", self.info().engine);
        assert!(block_on(self.params())
            .unwrap()
            .iter()
            .all(|p| p.is_finite()));
    }
}

/// Both engines refuse the same inputs with the same message: parameters and item vectors of
/// the wrong size or with a non-finite value, leaving what they hold unchanged.
#[test]
fn both_engines_refuse_the_same_bad_parameters_and_item_vectors() {
    let cfg = config(Head::Policy { items: 5 }, 3, Activation::Identity, 2);
    let ctx = context();
    let mut gpu = block_on(GpuEngine::new(&ctx, &cfg)).unwrap();
    let mut cpu = CpuEngine::new(&cfg).unwrap();
    let g = refusals(&mut gpu);
    let c = refusals(&mut cpu);
    assert_eq!(g, c, "GPU and CPU engines refuse alike");
    assert!(c[0].contains("parameter 4 is not finite"), "{c:?}");
    assert!(c[3].contains("(item 2) is not finite"), "{c:?}");
}

/// What `engine` answers to three bad parameter vectors, then three bad item matrices.
fn refusals(engine: &mut impl Engine) -> Vec<String> {
    let items: Vec<f32> = (0..15).map(|i| i as f32 / 15.0).collect();
    let params = engine.config().init_params();
    let with = |v: &[f32], i: usize, x: f32| {
        let mut v = v.to_vec();
        v[i] = x;
        v
    };
    engine.set_items(&items).unwrap();
    engine.set_params(&params).unwrap();
    let mut errors = Vec::new();
    for p in [
        with(&params, 4, f32::NAN),
        with(&params, 0, f32::INFINITY),
        params[1..].to_vec(),
    ] {
        errors.push(engine.set_params(&p).unwrap_err().to_string());
    }
    for v in [
        with(&items, 7, f32::NEG_INFINITY),
        with(&items, 14, f32::NAN),
        items[..14].to_vec(),
    ] {
        errors.push(engine.set_items(&v).unwrap_err().to_string());
    }
    let held: Vec<f32> = (0..5)
        .flat_map(|j| engine.item_vector(j).unwrap())
        .collect();
    assert_eq!(held, items, "{errors:?}");
    assert_eq!(block_on(engine.params()).unwrap(), params, "{errors:?}");
    errors
}
