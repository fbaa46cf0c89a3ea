//! Meta-learned item vectors: CAVIA's outer loop (REINFORCE or PPO steps) also learns a
//! residual `r_j` on every item's vector, `e'_j = e_j + r_j` (from zero), along the outer
//! policy-gradient loss's gradient w.r.t. the item matrix ([`Engine::item_gradient`], the CPU
//! engine), with its own Adam step and a decoupled decay towards zero. Sessions (the episodes'
//! and, after training, new people's) score and summarise with `e'`; the gradient does not flow
//! through the summaries (first order, as CAVIA treats the contexts).

use crate::engine::{adam_update, Adam, AdamState, Engine, EngineError, Result};
use serde::{Deserialize, Serialize};

/// How the item residual learns.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemLearning {
    /// Adam's step size on the residual.
    pub lr: f32,
    /// Decoupled decay of the residual towards zero (Adam's weight decay).
    pub decay: f32,
}

impl ItemLearning {
    /// Refuses a step size or decay that is not finite and positive (decay: not negative).
    pub fn checked(self) -> Result<Self> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(EngineError::Input(format!(
                "the item vectors' step size must be finite and positive, not {}",
                self.lr
            )));
        }
        if !(self.decay.is_finite() && self.decay >= 0.0) {
            return Err(EngineError::Input(format!(
                "the item vectors' decay must be finite and not negative, not {}",
                self.decay
            )));
        }
        Ok(self)
    }
}

/// The learned item vectors: the fixed base `e`, the residual `r` and its Adam moments.
#[derive(Clone, Debug, PartialEq)]
pub struct LearnedItems {
    learning: ItemLearning,
    base: Vec<f32>,
    residual: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    step: u32,
}

impl LearnedItems {
    /// A zero residual on `base` (the item matrix the engine holds).
    pub fn new(base: Vec<f32>, learning: ItemLearning) -> Result<Self> {
        let n = base.len();
        Ok(LearnedItems {
            learning: learning.checked()?,
            base,
            residual: vec![0.0; n],
            m: vec![0.0; n],
            v: vec![0.0; n],
            step: 0,
        })
    }

    /// The current vectors `e + r`.
    pub fn vectors(&self) -> Vec<f32> {
        self.base
            .iter()
            .zip(&self.residual)
            .map(|(e, r)| e + r)
            .collect()
    }

    /// The root mean square of the residual, relative to the base's.
    pub fn relative_size(&self) -> f32 {
        let rms = |x: &[f32]| (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt();
        rms(&self.residual) / rms(&self.base).max(f32::MIN_POSITIVE)
    }

    /// One Adam step of the residual along `grad` (skipped when it is not finite), then the
    /// engine's item matrix becomes `e + r`.
    pub fn step(&mut self, engine: &mut impl Engine, grad: &[f32]) -> Result<()> {
        if !grad.iter().all(|g| g.is_finite()) {
            return Ok(());
        }
        self.step += 1;
        let adam = Adam {
            lr: self.learning.lr,
            weight_decay: self.learning.decay,
            clip_norm: 0.0,
            ..Adam::default()
        };
        let mut state = AdamState {
            m: &mut self.m,
            v: &mut self.v,
            step: self.step,
        };
        adam_update(&mut self.residual, &mut state, grad, adam, 0.0);
        engine.set_items(&self.vectors())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::sampling::normal;
    use crate::data::{Environment, WorldConfig};
    use crate::engine::cpu::{ready, CpuEngine, Kernels};
    use crate::engine::{Batch, Loss, Mask, Row};
    use crate::meta::{meta_step_learning_items, Algorithm, MetaConfig, ObservedSetup, Optimizer};
    use crate::model::{Activation, Head, Init, ModelConfig};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const ITEMS: usize = 12;
    const DIM: usize = 3;
    /// A temperature away from 1, so a gradient missing its `1/T` is off.
    const LOSS: Loss = Loss::Reinforce {
        entropy: 0.1,
        temperature: 0.6,
    };

    /// A small policy over 12 items on `kernels`, its item matrix and a batch of four rows (two
    /// rewarded, two missed, with masks).
    fn world(kernels: Kernels) -> (CpuEngine, Vec<f32>, Batch) {
        let model = ModelConfig {
            input: 4,
            hidden: vec![5],
            output: DIM,
            hidden_activation: Activation::Relu,
            output_activation: Activation::Identity,
            head: Head::Policy { items: ITEMS },
            init: Init::He,
            seed: 3,
            max_rows: 8,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| normal(&mut rng) as f32).collect() };
        let mut engine = CpuEngine::with_kernels(&model, kernels).unwrap();
        let items = draw(ITEMS * DIM);
        engine.set_items(&items).unwrap();
        let mut mask = Mask::new(4, ITEMS);
        [(1, 0), (2, 0), (2, 5), (3, 7)]
            .iter()
            .for_each(|&(r, j)| mask.set(r, j));
        let rows = [(3, 1.0), (4, 0.0), (9, 1.0), (2, 0.0)]
            .iter()
            .map(|&(action, reward)| Row {
                action,
                reward,
                baseline: 0.3,
                old_logp: 0.0,
            })
            .collect();
        let batch = Batch {
            inputs: draw(4 * 4),
            rows,
            mask: Some(mask),
        };
        (engine, items, batch)
    }

    fn loss_at(engine: &mut CpuEngine, items: &[f32], batch: &Batch) -> f64 {
        engine.set_items(items).unwrap();
        f64::from(ready(engine.gradients(batch, LOSS)).unwrap().unwrap().1)
    }

    /// The item matrix's gradient (both kernel sets) is the loss's slope along every item
    /// value (central finite differences), and it leaves the items and parameters unchanged.
    #[test]
    fn the_item_gradient_matches_finite_differences() {
        for kernels in [Kernels::Reference, Kernels::Blocked] {
            let (mut engine, items, batch) = world(kernels);
            let params = ready(engine.params()).unwrap().unwrap();
            let (analytic, value) = ready(engine.item_gradient(&batch, LOSS)).unwrap().unwrap();
            assert_eq!(analytic.len(), ITEMS * DIM);
            assert_eq!(engine.item_vector(4).unwrap(), items[4 * DIM..5 * DIM]);
            assert_eq!(ready(engine.params()).unwrap().unwrap(), params);
            assert!((f64::from(value) - loss_at(&mut engine, &items, &batch)).abs() < 1e-6);
            let h = 1e-2f32;
            let mut worst = 0.0f32;
            for i in 0..items.len() {
                let mut e = items.clone();
                e[i] += h;
                let up = loss_at(&mut engine, &e, &batch);
                e[i] -= 2.0 * h;
                let down = loss_at(&mut engine, &e, &batch);
                let numeric = ((up - down) / (2.0 * f64::from(h))) as f32;
                worst = worst.max((analytic[i] - numeric).abs());
            }
            let scale = analytic.iter().fold(0.0f32, |m, g| m.max(g.abs()));
            assert!(
                scale > 1e-2,
                "{kernels:?}: a vanishing gradient tests nothing"
            );
            assert!(
                worst < 2e-3 * scale.max(1.0),
                "{kernels:?}: off the finite differences by {worst:.2e} (largest {scale:.2e})"
            );
        }
    }

    /// A step of the residual moves the engine's item matrix to `e + r` and, small enough,
    /// lowers the batch's loss; a non-finite gradient leaves everything unchanged.
    #[test]
    fn a_residual_step_lowers_the_loss_and_sets_the_engines_items() {
        let (mut engine, items, batch) = world(Kernels::Blocked);
        let learning = ItemLearning {
            lr: 1e-2,
            decay: 0.0,
        };
        let mut learned = LearnedItems::new(items.clone(), learning).unwrap();
        let (grad, before) = ready(engine.item_gradient(&batch, LOSS)).unwrap().unwrap();
        learned.step(&mut engine, &[f32::NAN; ITEMS * DIM]).unwrap();
        assert_eq!(learned.vectors(), items);
        learned.step(&mut engine, &grad).unwrap();
        let moved = learned.vectors();
        assert_ne!(moved, items);
        assert!(learned.relative_size() > 0.0);
        for j in 0..ITEMS {
            assert_eq!(
                engine.item_vector(j as u32).unwrap(),
                moved[j * DIM..(j + 1) * DIM]
            );
        }
        let after = ready(engine.gradients(&batch, LOSS)).unwrap().unwrap().1;
        assert!(after < before, "loss {before} -> {after}");
    }

    /// Bad settings are refused, and so are outer loops other than CAVIA with REINFORCE or
    /// PPO; with those a meta-iteration moves the item vectors and the engine holds them.
    #[test]
    fn cavia_learns_the_items_and_other_outer_loops_are_refused() {
        for (lr, decay) in [
            (0.0, 0.0),
            (f32::NAN, 0.0),
            (1e-3, -1.0),
            (1e-3, f32::INFINITY),
        ] {
            assert!(ItemLearning { lr, decay }.checked().is_err());
        }
        let ds = WorldConfig::small_dataset(40, 20, 3).unwrap();
        let setup = ObservedSetup::new(&ds, (0..20).collect(), 0, 3);
        for (algorithm, optimizer) in [
            (Algorithm::Cavia, Optimizer::Reinforce),
            (Algorithm::Cavia, Optimizer::Ppo),
            (Algorithm::Cavia, Optimizer::Trpo),
            (Algorithm::Reptile, Optimizer::Reinforce),
            (Algorithm::Fomaml, Optimizer::Reinforce),
        ] {
            let cfg = MetaConfig {
                algorithm,
                optimizer,
                users_per_iteration: 2,
                rounds: 3,
                ..MetaConfig::default()
            };
            let model = setup.model(&crate::meta::PolicyShape::default(), &cfg);
            let mut engine = CpuEngine::new(&model).unwrap();
            engine.set_items(&setup.vectors.values).unwrap();
            let mut learned = LearnedItems::new(
                setup.vectors.values.clone(),
                ItemLearning {
                    lr: 1e-3,
                    decay: 0.0,
                },
            )
            .unwrap();
            let tasks = setup.tasks(&cfg, 0, Environment::Observed);
            let step = ready(meta_step_learning_items(
                &mut engine,
                tasks,
                &cfg,
                0,
                &mut learned,
            ))
            .unwrap();
            if algorithm == Algorithm::Cavia && optimizer != Optimizer::Trpo {
                step.unwrap();
                assert!(learned.relative_size() > 0.0);
                let v = learned.vectors();
                let d = setup.vectors.dim;
                assert_eq!(engine.item_vector(1).unwrap(), v[d..2 * d]);
            } else {
                assert!(step.is_err(), "{algorithm:?} with {optimizer:?}");
            }
        }
    }
}
