//! Kernel self-check: runs every GPU kernel and the CPU reference on the same inputs and reports
//! the largest relative error per kernel. The native tests, the browser tests and the page's
//! self-check all run this one code.
//!
//! Error metric: `max_i |gpu_i - cpu_i| / max(max_i |cpu_i|, 1e-6)`, i.e. relative to the
//! tensor's scale, so entries near zero are not judged by their own tiny magnitude. Masked
//! entries (`f32::MIN`) must coincide exactly; slates must hold the same items, or differ only
//! where two items' sort keys tie to rounding ([`slate_key_err`]).

use super::cpu::{CpuEngine, Kernels};
use super::gpu::{GpuContext, GpuEngine};
use super::{
    Adam, Adapted, Batch, ContextState, ContextStep, Engine, EngineError, Loss, Mask, Reduce,
    Result, Row, SlateSpec,
};
use crate::model::{Activation, Head, Init, ModelConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Default bound on the relative error of a kernel against the CPU reference.
pub const TOLERANCE: f32 = 1e-4;

/// A model and batch shape to check the kernels on.
#[derive(Clone, Debug, Serialize)]
pub struct Shape {
    pub input: usize,
    pub hidden: Vec<usize>,
    pub output: usize,
    pub items: usize,
    pub rows: usize,
    pub activation: Activation,
    /// Slate size K for the samplers (at most the items open in every row; ≤ 64).
    pub slate: usize,
}

impl Shape {
    fn label(&self) -> String {
        format!(
            "in {} hidden {:?} out {} items {} rows {} {:?} k {}",
            self.input,
            self.hidden,
            self.output,
            self.items,
            self.rows,
            self.activation,
            self.slate
        )
    }

    fn config(&self, head: Head, output: usize, output_activation: Activation) -> ModelConfig {
        ModelConfig {
            input: self.input,
            hidden: self.hidden.clone(),
            output,
            hidden_activation: self.activation,
            output_activation,
            head,
            init: Init::Xavier,
            seed: 11,
            max_rows: self.rows,
        }
    }
}

/// One kernel's result on one shape.
#[derive(Clone, Debug, Serialize)]
pub struct KernelCheck {
    pub name: String,
    pub shape: String,
    pub max_rel_err: f32,
    pub tolerance: f32,
    pub pass: bool,
}

/// Shapes that stress the edges: sizes that are not multiples of the dense kernel's 16×64
/// tiles (16 rows × 64 columns) and 128-value k chunks or of the 256-wide workgroups, batch 1,
/// a one-item catalog and 9,000- and 10,000-item ones (several sampler and policy-head
/// workgroups), slates of 1 to 64 items. (tests/kernels.rs adds
/// property tests over random shapes.)
pub fn edge_shapes() -> Vec<Shape> {
    use Activation::*;
    vec![
        Shape {
            input: 1,
            hidden: vec![],
            output: 1,
            items: 1,
            rows: 1,
            activation: Relu,
            slate: 1,
        },
        Shape {
            input: 7,
            hidden: vec![33],
            output: 5,
            items: 300,
            rows: 1,
            activation: Sigmoid,
            slate: 64,
        },
        Shape {
            input: 17,
            hidden: vec![31, 15],
            output: 9,
            items: 257,
            rows: 19,
            activation: Relu,
            slate: 10,
        },
        // the sampler over three 4,096-item workgroups and the one-row policy head over nine
        // 1,024-item ones, a 64-item slate drawn across them
        Shape {
            input: 20,
            hidden: vec![40],
            output: 8,
            items: 9_000,
            rows: 2,
            activation: Relu,
            slate: 64,
        },
        Shape {
            input: 40,
            hidden: vec![24],
            output: 16,
            items: 10_000,
            rows: 3,
            activation: Identity,
            slate: 5,
        },
        Shape {
            input: 128,
            hidden: vec![256, 256],
            output: 64,
            items: 1682,
            rows: 64,
            activation: Relu,
            slate: 10,
        },
    ]
}

/// A quicker set for the browser self-check (software adapters are slow): the edge shapes
/// without the 10,000-item catalog and the full reference policy, which the native tests cover.
pub fn quick_shapes() -> Vec<Shape> {
    let mut s = edge_shapes();
    s.retain(|s| s.items != 10_000 && s.rows < 64);
    s
}

/// Relative error as defined in the module docs.
pub fn rel_err(gpu: &[f32], cpu: &[f32]) -> f32 {
    rel_err_at(gpu, cpu, 1e-6)
}

/// [`rel_err`] relative to at least `floor`: for a tensor that is small by cancellation (a
/// saturated policy's gradient, Σ of O(1) terms that nearly cancel), the scale its terms have.
fn rel_err_at(gpu: &[f32], cpu: &[f32], floor: f32) -> f32 {
    if gpu.len() != cpu.len() {
        return f32::INFINITY;
    }
    let scale = cpu
        .iter()
        .filter(|v| **v != f32::MIN)
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(floor);
    let mut worst = 0f32;
    for (&g, &c) in gpu.iter().zip(cpu) {
        if (g == f32::MIN) != (c == f32::MIN) {
            return f32::INFINITY;
        }
        if c != f32::MIN {
            let e = (g - c).abs() / scale;
            if e.is_nan() {
                return f32::INFINITY;
            }
            worst = worst.max(e);
        }
    }
    worst
}

fn uniform(rng: &mut ChaCha8Rng, n: usize, a: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-a..a)).collect()
}

struct Report {
    shape: String,
    out: Vec<KernelCheck>,
}

impl Report {
    fn add(&mut self, name: &str, err: f32, tolerance: f32) {
        self.out.push(KernelCheck {
            name: name.into(),
            shape: self.shape.clone(),
            max_rel_err: err,
            tolerance,
            pass: err <= tolerance,
        });
    }
}

/// Runs every kernel on `shape` on both engines and reports each kernel's error.
pub async fn check_shape(ctx: &GpuContext, shape: &Shape) -> Result<Vec<KernelCheck>> {
    let mut rng = ChaCha8Rng::seed_from_u64(shape.items as u64 * 31 + shape.rows as u64);
    let mut rep = Report {
        shape: shape.label(),
        out: Vec::new(),
    };
    let (rows, n) = (shape.rows, shape.items);
    let cfg = shape.config(
        Head::Policy { items: n },
        shape.output,
        Activation::Identity,
    );
    let mut gpu = GpuEngine::new(ctx, &cfg).await?;
    let mut cpu = CpuEngine::with_kernels(&cfg, Kernels::Reference)?;
    let items = uniform(&mut rng, n * shape.output, 0.5);
    gpu.set_items(&items)?;
    cpu.set_items(&items)?;
    let inputs = uniform(&mut rng, rows * shape.input, 1.0);

    let f = (gpu.forward(&inputs).await?, cpu.forward(&inputs).await?);
    rep.add("dense forward", rel_err(&f.0, &f.1), TOLERANCE);
    let s = (gpu.scores(&inputs).await?, cpu.scores(&inputs).await?);
    rep.add("item scoring", rel_err(&s.0, &s.1), TOLERANCE);

    // mask about a third of the items, never an item the batch acts on
    let actions: Vec<u32> = (0..rows).map(|_| rng.random_range(0..n as u32)).collect();
    let mut mask = Mask::new(rows, n);
    for (r, &a) in actions.iter().enumerate() {
        for j in 0..n {
            if j != a as usize && rng.random_range(0..3) == 0 {
                mask.set(r, j);
            }
        }
    }
    let lp = (
        gpu.log_probs(&inputs, Some(&mask), 0.7).await?,
        cpu.log_probs(&inputs, Some(&mask), 0.7).await?,
    );
    rep.add("masked log-softmax", rel_err(&lp.0, &lp.1), TOLERANCE);

    let open = (0..rows)
        .map(|r| (0..n).filter(|&j| !mask.get(r, j)).count())
        .min()
        .unwrap_or(1);
    for greedy in [true, false] {
        let spec = SlateSpec {
            k: open.min(shape.slate),
            temperature: 0.7,
            greedy,
            seed: 5,
            draw: 2,
        };
        // the sampler's slates with their logits (Engine::sample_scored), the logits judged at
        // the scale of all the catalog's logits, as the context step's
        let (a, za) = gpu.sample_scored(&inputs, Some(&mask), spec).await?;
        let (b, zb) = cpu.sample_scored(&inputs, Some(&mask), spec).await?;
        let scale = s.1.iter().fold(1e-6f32, |m, v| m.max(v.abs())) / spec.temperature;
        let err = if a.items == b.items {
            rel_err(&a.logp, &b.logp).max(rel_err_at(&za, &zb, scale))
        } else {
            slate_key_err(&a.items, &b.items, &s.1, &mask, n, spec)
        };
        let name = if greedy {
            "greedy top-k"
        } else {
            "Gumbel top-k"
        };
        rep.add(name, err, TOLERANCE);
    }

    let reinforce = Loss::Reinforce {
        entropy: 0.05,
        temperature: 0.8,
    };
    let mut batch = Batch {
        inputs: inputs.clone(),
        rows: actions
            .iter()
            .map(|&a| Row {
                action: a,
                reward: rng.random_range(0..2) as f32,
                baseline: 0.4,
                old_logp: 0.0,
            })
            .collect(),
        mask: Some(mask),
    };
    let g = (
        gpu.gradients(&batch, reinforce).await?,
        cpu.gradients(&batch, reinforce).await?,
    );
    rep.add("REINFORCE gradient", rel_err(&g.0 .0, &g.1 .0), TOLERANCE);
    // the loss is a mean of advantage × log-probability terms of either sign: judged at the
    // terms' scale, ln(items) (a log-probability under a spread-out policy), not at their sum's
    let terms = (n as f32).ln().max(1.0);
    rep.add(
        "REINFORCE loss",
        rel_err_at(&[g.0 .1], &[g.1 .1], terms),
        TOLERANCE,
    );
    let dx = (
        gpu.input_gradient(&batch, reinforce).await?,
        cpu.input_gradient(&batch, reinforce).await?,
    );
    rep.add("input gradient", rel_err(&dx.0 .0, &dx.1 .0), TOLERANCE);

    // PPO: old log-probs around the current ones so that some rows are clipped
    let current = cpu.log_probs(&inputs, batch.mask.as_ref(), 0.8).await?;
    for (r, row) in batch.rows.iter_mut().enumerate() {
        row.old_logp = current[r * n + row.action as usize] + rng.random_range(-0.5..0.5);
    }
    let ppo = Loss::Ppo {
        entropy: 0.05,
        temperature: 0.8,
        clip: 0.2,
    };
    let g = (
        gpu.gradients(&batch, ppo).await?,
        cpu.gradients(&batch, ppo).await?,
    );
    rep.add("PPO-clip gradient", rel_err(&g.0 .0, &g.1 .0), TOLERANCE);

    // Adam's first steps are nearly sign(g) * lr, so an entry whose gradient is ~0 on one
    // engine and ~1e-9 on the other would move by lr on one side only: eps = 1e-3 keeps such
    // entries still on both, and the check measures the optimiser's arithmetic.
    let adam = Adam {
        lr: 0.01,
        eps: 1e-3,
        weight_decay: 0.01,
        clip_norm: 0.5,
        ..Adam::default()
    };
    gpu.train(&batch, reinforce, adam, 3)?;
    cpu.train(&batch, reinforce, adam, 3)?;
    // Two correct engines drift apart by rounding over steps (most where a ReLU sits at its
    // kink: a 2-unit hidden layer showed 5e-3 after four steps), so the checks of a training
    // step start the CPU engine from the GPU's own parameters and Adam state, and measure that
    // step's kernels, not the drift (tests/learning.rs trains both engines in lockstep).
    cpu.set_params(&gpu.params().await?)?;
    cpu.set_optimizer_state(&gpu.optimizer_state().await?)?;
    gpu.reset_stats()?;
    let ti = (
        gpu.train_with_input_gradient(&batch, reinforce, adam)
            .await?,
        cpu.train_with_input_gradient(&batch, reinforce, adam)
            .await?,
    );
    // after three steps the policy may be near-deterministic on the batch's actions and its
    // input gradient small by cancellation: judged at the untrained input gradient's scale
    let floor = dx.1 .0.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    rep.add(
        "train step + input gradient",
        rel_err_at(&ti.0 .0, &ti.1 .0, floor),
        TOLERANCE,
    );
    let p = (gpu.params().await?, cpu.params().await?);
    rep.add(
        "Adam step (after 3, clipped)",
        rel_err(&p.0, &p.1),
        TOLERANCE,
    );
    let st = (gpu.stats().await?, cpu.stats().await?);
    rep.add(
        "step statistics",
        rel_err(
            &[
                st.0.mean_loss,
                st.0.mean_entropy,
                st.0.grad_norm,
                st.0.step as f32,
            ],
            &[
                st.1.mean_loss,
                st.1.mean_entropy,
                st.1.grad_norm,
                st.1.step as f32,
            ],
        ),
        TOLERANCE,
    );

    check_context_step(&mut gpu, &mut cpu, shape, &mut rng, &mut rep).await?;

    // regression head: sigmoid output scaled to a rating range, MSE
    let rcfg = shape.config(
        Head::Regression {
            low: 1.0,
            high: 5.0,
        },
        1,
        Activation::Sigmoid,
    );
    let mut rgpu = GpuEngine::new(ctx, &rcfg).await?;
    let mut rcpu = CpuEngine::with_kernels(&rcfg, Kernels::Reference)?;
    let targets = Batch {
        inputs: inputs.clone(),
        rows: (0..rows)
            .map(|_| Row {
                reward: rng.random_range(1..=5) as f32,
                ..Row::default()
            })
            .collect(),
        mask: None,
    };
    let g = (
        rgpu.gradients(&targets, Loss::Mse).await?,
        rcpu.gradients(&targets, Loss::Mse).await?,
    );
    rep.add("MSE gradient", rel_err(&g.0 .0, &g.1 .0), TOLERANCE);

    let data = uniform(&mut rng, 1000 + n, 2.0);
    for (op, name) in [
        (Reduce::Sum, "sum"),
        (Reduce::Mean, "mean"),
        (Reduce::SquaredNorm, "squared norm"),
    ] {
        let r = (gpu.reduce(&data, op).await?, cpu.reduce(&data, op).await?);
        // scale by the sum of magnitudes: a sum of signed values may cancel to near zero
        let scale = match op {
            Reduce::Mean => data.iter().map(|v| v.abs()).sum::<f32>() / data.len() as f32,
            _ => data.iter().map(|v| v.abs().max(v * v)).sum::<f32>(),
        };
        rep.add(name, (r.0 - r.1).abs() / scale.max(1e-6), TOLERANCE);
    }
    Ok(rep.out)
}

/// A context-adapting session's interaction ([`Engine::adapt_context`]; on the GPU the one-row
/// dense kernels, the dX-only backward, the context's Adam step on the device and the sampler in
/// one submit) against the CPU reference: the slate with its log-propensities and logits, the
/// loss, and the context and Adam moments after the step (with an entropy bonus). Then a
/// reaction to the slate the GPU drew, without one, whose gradient the GPU takes from the
/// statistics that slate's sampler left (loss.wgsl `head_cached`; its dispatch count shows it
/// did, where the network has a hidden layer and item vectors a multiple of 4 wide).
async fn check_context_step(
    gpu: &mut GpuEngine,
    cpu: &mut CpuEngine,
    shape: &Shape,
    rng: &mut ChaCha8Rng,
    rep: &mut Report,
) -> Result<()> {
    let n = shape.items;
    let c = shape.input / 2;
    let input = uniform(rng, shape.input, 1.0);
    let action = rng.random_range(0..n as u32);
    let mut mask = Mask::new(1, n);
    for j in 0..n {
        if j != action as usize && rng.random_range(0..4) == 0 {
            mask.set(0, j);
        }
    }
    let next_tail = uniform(rng, shape.input - c, 1.0);
    // a state after a few steps: moments of either sign and size
    let m0 = uniform(rng, c, 0.1);
    let v0: Vec<f32> = uniform(rng, c, 0.1).iter().map(|x| x * x).collect();
    let mut state = (input[..c].to_vec(), m0, v0, 3u32);
    let first = context_step(
        gpu,
        cpu,
        shape,
        (&input, action, mask),
        (next_tail, 0.05),
        &mut state,
    )
    .await?;
    report_context_step(rep, "context step", &first);

    // the reaction to the GPU's slate, at the state the GPU's host copy reached
    let (slate, next_mask) = (&first.out[0].slate, first.next_mask);
    let Some(&action) = slate.items.first() else {
        return Ok(());
    };
    let input: Vec<f32> = state.0.iter().chain(&first.next_tail).copied().collect();
    let before = gpu.counters().dispatches;
    let next_tail = uniform(rng, shape.input - c, 1.0);
    let second = context_step(
        gpu,
        cpu,
        shape,
        (&input, action, next_mask),
        (next_tail, 0.0),
        &mut state,
    )
    .await?;
    report_context_step(rep, "context step on the slate's statistics", &second);
    let layers = shape.hidden.len() + 1;
    // forward, head, backward, forward, sampler (partials and merge); the cached head (a
    // hidden layer, item vectors a multiple of 4 wide) is one dispatch where the full one is two
    let head = if layers > 1 && shape.output % 4 == 0 {
        1
    } else {
        2
    };
    let expected = 3 * layers as u64 + head + 2;
    let dispatches = gpu.counters().dispatches - before;
    rep.add(
        "context step on the slate's statistics: dispatches",
        (dispatches != expected) as u8 as f32,
        0.0,
    );
    Ok(())
}

/// A session's context state: the context, its Adam moments and step count.
type Context = (Vec<f32>, Vec<f32>, Vec<f32>, u32);

/// One interaction on both engines from the same state; what [`report_context_step`] judges.
struct ContextOutcome {
    out: [Adapted; 2],
    states: [Context; 2],
    next_tail: Vec<f32>,
    next_mask: Mask,
    scores: Vec<f32>,
    spec: SlateSpec,
    n: usize,
}

/// A reaction (input, action, mask) from `state` on both engines, the next slate drawn at the
/// adapted context and `next_tail`; `state` becomes the GPU's.
async fn context_step(
    gpu: &mut GpuEngine,
    cpu: &mut CpuEngine,
    shape: &Shape,
    (input, action, mask): (&[f32], u32, Mask),
    (next_tail, entropy): (Vec<f32>, f32),
    state: &mut Context,
) -> Result<ContextOutcome> {
    let n = shape.items;
    // the next slate excludes the reacted-to item, unless nothing else is open (one item)
    let mut next_mask = mask.clone();
    if (0..n).any(|j| j != action as usize && !mask.get(0, j)) {
        next_mask.set(0, action as usize);
    }
    let open = (0..n).filter(|&j| !next_mask.get(0, j)).count();
    let batch = Batch {
        inputs: input.to_vec(),
        rows: vec![Row {
            action,
            reward: 1.0,
            baseline: 0.3,
            old_logp: 0.0,
        }],
        mask: Some(mask),
    };
    let step = ContextStep {
        batch: &batch,
        loss: Loss::Reinforce {
            entropy,
            temperature: 0.8,
        },
        adam: Adam {
            lr: 0.1,
            eps: 1e-3,
            ..Adam::default()
        },
        next_tail: &next_tail,
        next_mask: &next_mask,
        spec: SlateSpec {
            k: open.min(shape.slate),
            temperature: 0.8,
            greedy: false,
            seed: 9,
            draw: 4,
        },
    };
    let mut states = [state.clone(), state.clone()];
    let mut out = Vec::new();
    for (e, st) in [0, 1].into_iter().zip(states.iter_mut()) {
        let state = ContextState {
            context: &mut st.0,
            m: &mut st.1,
            v: &mut st.2,
            step: &mut st.3,
        };
        out.push(match e {
            0 => gpu.adapt_context(step, state).await?,
            _ => cpu.adapt_context(step, state).await?,
        });
    }
    let spec = step.spec;
    let next: Vec<f32> = states[1].0.iter().chain(&next_tail).copied().collect();
    let scores = cpu.scores(&next).await?;
    *state = states[0].clone();
    let out: [Adapted; 2] = out
        .try_into()
        .map_err(|_| EngineError::Device("two interactions".into()))?;
    Ok(ContextOutcome {
        out,
        states,
        next_tail,
        next_mask,
        scores,
        spec,
        n,
    })
}

/// Judges one interaction: the slate, the loss and the state after the step.
fn report_context_step(rep: &mut Report, name: &str, o: &ContextOutcome) {
    let ([a, b], spec) = (&o.out, o.spec);
    let slate_err = if a.slate.items == b.slate.items {
        // the slate's logits are judged at the scale of all the catalog's logits (a drawn
        // item's logit can be small by cancellation); log-propensities at least at 1 nat (when
        // one item holds nearly all the mass the next position's log-probability is ≈ 0 and
        // its rounding is absolute: 1e-4 is a propensity off by 0.01%)
        let scale = o.scores.iter().fold(1e-6f32, |m, v| m.max(v.abs())) / spec.temperature;
        rel_err_at(&a.slate.logp, &b.slate.logp, 1.0).max(rel_err_at(&a.scores, &b.scores, scale))
    } else {
        slate_key_err(
            &a.slate.items,
            &b.slate.items,
            &o.scores,
            &o.next_mask,
            o.n,
            spec,
        )
    };
    rep.add(&format!("{name}: slate"), slate_err, TOLERANCE);
    let terms = (o.n as f32).ln().max(1.0);
    rep.add(
        &format!("{name}: loss"),
        rel_err_at(&[a.loss], &[b.loss], terms),
        TOLERANCE,
    );
    let (g, h) = (&o.states[0], &o.states[1]);
    let state_err = rel_err(&g.0, &h.0)
        .max(rel_err(&g.1, &h.1))
        .max(rel_err(&g.2, &h.2))
        .max((g.3 != h.3) as u8 as f32);
    rep.add(&format!("{name}: state"), state_err, TOLERANCE);
}

/// Two slates of the same rows that differ: each position's sort key (logit / T plus the
/// Gumbel noise) by the CPU reference `scores`, compared position by position, relative to
/// the keys' scale. Within the tolerance the slates differ only where two items' keys tie to
/// rounding, which two correct engines may order either way. The GPU's slate `a` must hold distinct items open in `mask`.
fn slate_key_err(
    a: &[u32],
    b: &[u32],
    scores: &[f32],
    mask: &Mask,
    n: usize,
    spec: SlateSpec,
) -> f32 {
    let valid = a.chunks(spec.k).enumerate().all(|(r, slate)| {
        slate
            .iter()
            .enumerate()
            .all(|(p, &i)| (i as usize) < n && !mask.get(r, i as usize) && !slate[..p].contains(&i))
    });
    if !valid || a.len() != b.len() {
        return f32::INFINITY;
    }
    let key = |p: usize, item: u32| {
        let r = (p / spec.k) as u32;
        let noise = if spec.greedy {
            0.0
        } else {
            super::rng::gumbel(spec.seed, spec.draw, r, item)
        };
        scores[r as usize * n + item as usize] / spec.temperature + noise
    };
    let ka: Vec<f32> = a.iter().enumerate().map(|(p, &i)| key(p, i)).collect();
    let kb: Vec<f32> = b.iter().enumerate().map(|(p, &i)| key(p, i)).collect();
    rel_err(&ka, &kb)
}

/// Runs [`check_shape`] over `shapes`.
pub async fn check_all(ctx: &GpuContext, shapes: &[Shape]) -> Result<Vec<KernelCheck>> {
    let mut out = Vec::new();
    for s in shapes {
        out.extend(check_shape(ctx, s).await?);
    }
    Ok(out)
}
