//! The CPU engine's blocked kernels against its reference kernels (`Kernels::Reference`, the
//! plain loops) on random shapes: widths, catalogs and batch sizes that are not multiples of
//! the 4-row and 8-lane tiles, masks, both heads, both losses, slates of 1 to 64.
#![cfg(not(target_arch = "wasm32"))]

use metarec::engine::check::rel_err;
use metarec::engine::cpu::{CpuEngine, Kernels};
use metarec::engine::{rng, Adam, Batch, Engine, Loss, Mask, Row, SlateSpec};
use metarec::model::{Activation, Head, Init, ModelConfig};
use pollster::block_on;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

/// Relative error bound of outputs, scores and log-probabilities: the kernels only reorder f32
/// sums.
const TOL: f32 = 2e-5;
/// Bound of gradients: the softmax's terms `(p_j − onehot_j) e_j` cancel (they sum to a small
/// vector), so their rounding is relative to the terms, not to the sum. A tiling or indexing
/// error is far above it.
const GRAD_TOL: f32 = 1e-3;

#[derive(Clone, Debug)]
struct Case {
    cfg: ModelConfig,
    inputs: Vec<f32>,
    items: Vec<f32>,
    rows: Vec<Row>,
    mask: Option<Mask>,
    loss: Loss,
    spec: SlateSpec,
}

fn cases() -> impl Strategy<Value = Case> {
    (
        (
            1usize..21,
            prop::collection::vec(1usize..37, 0..3),
            1usize..19,
        ),
        (1usize..300, 1usize..11),
        prop_oneof![Just(Activation::Relu), Just(Activation::Sigmoid)],
        any::<(bool, bool, bool, bool)>(),
        (1usize..65, any::<u32>()),
    )
        .prop_flat_map(
            |((input, hidden, output), (items, rows), act, flags, slate)| {
                let (regression, masked, ppo, greedy) = flags;
                let output = if regression { 1 } else { output };
                let values = |n: usize| prop::collection::vec(-1.0f32..1.0, n);
                (
                    Just((input, hidden, output, items, rows, act, flags, slate)),
                    values(rows * input),
                    values(items * output),
                    prop::collection::vec((0..items as u32, 0.0f32..1.0, 0.0f32..1.0), rows),
                    prop::collection::vec(
                        prop::bool::weighted(if masked { 0.3 } else { 0.0 }),
                        rows * items,
                    ),
                    (0.2f32..3.0, 0.0f32..0.1),
                    Just((regression, ppo, greedy)),
                )
            },
        )
        .prop_map(
            |(
                (input, hidden, output, items, rows, act, _, (k, seed)),
                inputs,
                emb,
                acts,
                masked,
                (temperature, entropy),
                (regression, ppo, greedy),
            )| {
                let head = if regression {
                    Head::Regression {
                        low: 1.0,
                        high: 5.0,
                    }
                } else {
                    Head::Policy { items }
                };
                let cfg = ModelConfig {
                    input,
                    hidden,
                    output,
                    hidden_activation: act,
                    output_activation: if regression {
                        Activation::Sigmoid
                    } else {
                        Activation::Identity
                    },
                    head,
                    init: Init::Xavier,
                    seed: seed as u64,
                    max_rows: rows,
                };
                // a mask that leaves every row's action and at least k items open
                let mut mask = Mask::new(rows, items);
                let k = k.min(items);
                for r in 0..rows {
                    let open_needed = k;
                    let mut open = items;
                    for j in 0..items {
                        if masked[r * items + j] && j != acts[r].0 as usize && open > open_needed {
                            mask.set(r, j);
                            open -= 1;
                        }
                    }
                }
                let any_masked = mask.words.iter().any(|&w| w != 0);
                Case {
                    cfg,
                    inputs,
                    items: if regression { Vec::new() } else { emb },
                    rows: acts
                        .iter()
                        .map(|&(action, reward, old)| Row {
                            action: if regression { 0 } else { action },
                            reward: if regression {
                                1.0 + 4.0 * reward
                            } else {
                                reward
                            },
                            baseline: 0.4,
                            old_logp: -1.0 - old,
                        })
                        .collect(),
                    mask: (any_masked && !regression).then_some(mask),
                    loss: match (regression, ppo) {
                        (true, _) => Loss::Mse,
                        (false, true) => Loss::Ppo {
                            entropy,
                            temperature,
                            clip: 0.2,
                        },
                        (false, false) => Loss::Reinforce {
                            entropy,
                            temperature,
                        },
                    },
                    spec: SlateSpec {
                        k,
                        temperature,
                        greedy,
                        seed,
                        draw: seed.rotate_left(7),
                    },
                }
            },
        )
}

fn engines(case: &Case) -> (CpuEngine, CpuEngine) {
    let mut fast = CpuEngine::with_kernels(&case.cfg, Kernels::Blocked).unwrap();
    let mut plain = CpuEngine::with_kernels(&case.cfg, Kernels::Reference).unwrap();
    if !case.items.is_empty() {
        fast.set_items(&case.items).unwrap();
        plain.set_items(&case.items).unwrap();
    }
    (fast, plain)
}

/// Slates agree when they hold the same items, or items whose keys tie to rounding.
fn same_slates(case: &Case, scores: &[f32], a: &[u32], b: &[u32]) -> bool {
    let n = case.cfg.items();
    let k = case.spec.k;
    let key = |p: usize, item: u32| {
        let r = p / k;
        let g = if case.spec.greedy {
            0.0
        } else {
            rng::gumbel(case.spec.seed, case.spec.draw, r as u32, item)
        };
        scores[r * n + item as usize] / case.spec.temperature + g
    };
    let ka: Vec<f32> = a.iter().enumerate().map(|(p, &i)| key(p, i)).collect();
    let kb: Vec<f32> = b.iter().enumerate().map(|(p, &i)| key(p, i)).collect();
    a == b || rel_err(&ka, &kb) <= TOL
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64),
        rng_seed: std::env::var("PROPTEST_RNG_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(RngSeed::Fixed(20261130), RngSeed::Fixed),
        ..ProptestConfig::default()
    })]

    #[test]
    fn blocked_kernels_match_the_reference_kernels(case in cases()) {
        let (mut fast, mut plain) = engines(&case);
        let batch = Batch { inputs: case.inputs.clone(), rows: case.rows.clone(), mask: case.mask.clone() };
        let err = |a: &[f32], b: &[f32]| rel_err(a, b);

        let (f, p) = (block_on(fast.forward(&case.inputs)).unwrap(), block_on(plain.forward(&case.inputs)).unwrap());
        prop_assert!(err(&f, &p) <= TOL, "forward {}", err(&f, &p));

        let (gf, lf) = block_on(fast.gradients(&batch, case.loss)).unwrap();
        let (gp, lp) = block_on(plain.gradients(&batch, case.loss)).unwrap();
        prop_assert!(err(&gf, &gp) <= GRAD_TOL && (lf - lp).abs() <= TOL * lp.abs().max(1.0), "gradients {} loss {lf} vs {lp}", err(&gf, &gp));

        let (xf, _) = block_on(fast.input_gradient(&batch, case.loss)).unwrap();
        let (xp, _) = block_on(plain.input_gradient(&batch, case.loss)).unwrap();
        prop_assert!(err(&xf, &xp) <= GRAD_TOL, "input gradient {}", err(&xf, &xp));

        if case.cfg.items() > 0 {
            let (sf, sp) = (block_on(fast.scores(&case.inputs)).unwrap(), block_on(plain.scores(&case.inputs)).unwrap());
            prop_assert!(err(&sf, &sp) <= TOL, "scores {}", err(&sf, &sp));
            let t = case.spec.temperature;
            let mask = case.mask.as_ref();
            let (pf, pp) = (block_on(fast.log_probs(&case.inputs, mask, t)).unwrap(),
                            block_on(plain.log_probs(&case.inputs, mask, t)).unwrap());
            prop_assert!(pf.iter().zip(&pp).all(|(a, b)| (*a == f32::MIN) == (*b == f32::MIN)));
            prop_assert!(err(&pf, &pp) <= TOL, "log-probabilities {}", err(&pf, &pp));
            let (zf, zp) = (block_on(fast.sample(&case.inputs, mask, case.spec)).unwrap(),
                            block_on(plain.sample(&case.inputs, mask, case.spec)).unwrap());
            prop_assert!(same_slates(&case, &sp, &zf.items, &zp.items), "slates {:?} vs {:?}", zf.items, zp.items);
            // position p's log-probability subtracts the mass of the items before it: its
            // rounding grows as 1 / (the mass left), and once almost none is left (< 0.1%) it is
            // rounding noise in both
            if zf.items == zp.items {
                let (n, k) = (case.cfg.items(), case.spec.k);
                for (p, (&a, &b)) in zf.logp.iter().zip(&zp.logp).enumerate() {
                    let (r, pos) = (p / k, p % k);
                    let before = &zp.items[r * k..r * k + pos];
                    let removed: f32 = before.iter().map(|&i| pp[r * n + i as usize].exp()).sum();
                    let left = 1.0 - removed;
                    let bound = TOL * b.abs().max(1.0) / left;
                    prop_assert!(left < 1e-3 || (a - b).abs() <= bound, "slate position {p}: {a} vs {b}");
                }
            }
        }

        // two Adam steps; Adam's ε = 1 keeps the step a smooth function of the gradient (with
        // ε = 1e-8 a gradient at rounding level, g / (|g| + ε), is a full step of either sign)
        let adam = Adam { lr: 1e-2, clip_norm: 1.0, eps: 1.0, ..Adam::default() };
        fast.train(&batch, case.loss, adam, 2).unwrap();
        plain.train(&batch, case.loss, adam, 2).unwrap();
        let (pf, pp) = (block_on(fast.params()).unwrap(), block_on(plain.params()).unwrap());
        prop_assert!(err(&pf, &pp) <= GRAD_TOL, "parameters after training {}", err(&pf, &pp));
        // then, from the same parameters (ReLU kinks and PPO's clip make the gradient jump
        // with rounding-level changes of the parameters), a step that returns the input gradient
        plain.set_params(&pf).unwrap();
        fast.set_params(&pf).unwrap();
        let (xf, _) = block_on(fast.train_with_input_gradient(&batch, case.loss, adam)).unwrap();
        let (xp, _) = block_on(plain.train_with_input_gradient(&batch, case.loss, adam)).unwrap();
        prop_assert!(err(&xf, &xp) <= GRAD_TOL, "input gradient of a training step {}", err(&xf, &xp));
        let (pf, pp) = (block_on(fast.params()).unwrap(), block_on(plain.params()).unwrap());
        prop_assert!(err(&pf, &pp) <= GRAD_TOL, "parameters after that step {}", err(&pf, &pp));
        let (sf, sp) = (block_on(fast.stats()).unwrap(), block_on(plain.stats()).unwrap());
        prop_assert_eq!((sf.step, sf.steps, sf.skipped), (sp.step, sp.steps, sp.skipped));
    }
}

#[test]
fn kept_scores_follow_the_parameters_the_items_and_the_inputs() {
    let cfg = ModelConfig {
        input: 5,
        hidden: vec![7],
        output: 6,
        hidden_activation: Activation::Relu,
        output_activation: Activation::Identity,
        head: Head::Policy { items: 41 },
        init: Init::Xavier,
        seed: 3,
        max_rows: 1,
    };
    let mut fast = CpuEngine::new(&cfg).unwrap();
    let mut plain = CpuEngine::with_kernels(&cfg, Kernels::Reference).unwrap();
    let items: Vec<f32> = (0..41 * 6)
        .map(|i| ((i * 37) % 19) as f32 / 19.0 - 0.5)
        .collect();
    fast.set_items(&items).unwrap();
    plain.set_items(&items).unwrap();
    let x = [0.3, -0.2, 0.9, 0.1, -0.7];
    let check = |fast: &mut CpuEngine, plain: &mut CpuEngine, x: &[f32]| {
        let (a, b) = (
            block_on(fast.scores(x)).unwrap(),
            block_on(plain.scores(x)).unwrap(),
        );
        assert!(rel_err(&a, &b) <= TOL, "{a:?} vs {b:?}");
    };
    check(&mut fast, &mut plain, &x);
    // new parameters
    let params: Vec<f32> = block_on(plain.params())
        .unwrap()
        .iter()
        .map(|p| p * 1.5)
        .collect();
    fast.set_params(&params).unwrap();
    plain.set_params(&params).unwrap();
    check(&mut fast, &mut plain, &x);
    // new items
    let items2: Vec<f32> = items.iter().map(|v| -v).collect();
    fast.set_items(&items2).unwrap();
    plain.set_items(&items2).unwrap();
    check(&mut fast, &mut plain, &x);
    // new inputs
    check(&mut fast, &mut plain, &[0.3, -0.2, 0.9, 0.1, -0.6]);
    // a training step
    let batch = Batch {
        inputs: x.to_vec(),
        rows: vec![Row {
            action: 4,
            reward: 1.0,
            baseline: 0.0,
            old_logp: 0.0,
        }],
        mask: None,
    };
    let loss = Loss::Reinforce {
        entropy: 0.0,
        temperature: 1.0,
    };
    fast.train(
        &batch,
        loss,
        Adam {
            lr: 0.1,
            ..Adam::default()
        },
        1,
    )
    .unwrap();
    plain
        .train(
            &batch,
            loss,
            Adam {
                lr: 0.1,
                ..Adam::default()
            },
            1,
        )
        .unwrap();
    check(&mut fast, &mut plain, &x);
}

#[test]
fn a_reaction_after_its_slate_has_the_gradient_of_a_reaction_alone() {
    // the blocked engine hands the slate's softmax on to the next gradient on the same input,
    // mask and temperature: the result must be the one computed from scratch, bit for bit
    let cfg = ModelConfig {
        input: 9,
        hidden: vec![13],
        output: 10,
        hidden_activation: Activation::Relu,
        output_activation: Activation::Identity,
        head: Head::Policy { items: 203 },
        init: Init::Xavier,
        seed: 8,
        max_rows: 1,
    };
    let items: Vec<f32> = (0..203 * 10)
        .map(|i| ((i * 53) % 31) as f32 / 31.0 - 0.5)
        .collect();
    let mut mask = Mask::new(1, 203);
    for j in [0, 5, 31, 32, 100, 202] {
        mask.set(0, j);
    }
    let x: Vec<f32> = (0..9).map(|i| i as f32 / 9.0 - 0.3).collect();
    let spec = SlateSpec {
        k: 10,
        temperature: 0.7,
        greedy: false,
        seed: 4,
        draw: 2,
    };
    let batch = Batch {
        inputs: x.clone(),
        rows: vec![Row {
            action: 7,
            reward: 1.0,
            baseline: 0.3,
            old_logp: 0.0,
        }],
        mask: Some(mask.clone()),
    };
    let loss = Loss::Reinforce {
        entropy: 0.05,
        temperature: 0.7,
    };
    let mut after_slate = CpuEngine::new(&cfg).unwrap();
    let mut alone = CpuEngine::new(&cfg).unwrap();
    after_slate.set_items(&items).unwrap();
    alone.set_items(&items).unwrap();
    block_on(after_slate.sample(&x, Some(&mask), spec)).unwrap();
    let a = block_on(after_slate.input_gradient(&batch, loss)).unwrap();
    let b = block_on(alone.input_gradient(&batch, loss)).unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a.0), bits(&b.0));
    assert_eq!(a.1.to_bits(), b.1.to_bits());
    // another temperature or mask is not that slate's softmax
    let hotter = Loss::Reinforce {
        entropy: 0.05,
        temperature: 1.3,
    };
    let c = block_on(after_slate.input_gradient(&batch, hotter)).unwrap();
    let d = block_on(alone.input_gradient(&batch, hotter)).unwrap();
    assert_eq!(bits(&c.0), bits(&d.0));
    let mut other = batch.clone();
    other.mask.as_mut().unwrap().set(0, 150);
    block_on(after_slate.sample(&x, Some(&mask), spec)).unwrap();
    let e = block_on(after_slate.input_gradient(&other, loss)).unwrap();
    let f = block_on(alone.input_gradient(&other, loss)).unwrap();
    assert_eq!(bits(&e.0), bits(&f.0));
}
