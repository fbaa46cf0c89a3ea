//! CAVIA's full-information outer objectives. On training users every reward is known
//! ([`UserTask::known_reward`]: a user's logged ratings), so at each state an episode passes the
//! outer step need not follow the policy gradient of the one action taken: it can follow an
//! objective over every unshown item. The episodes (and so the states, with the on-device
//! adaptation of contexts and summaries) are the same as for the sampled objective; only the
//! outer batch differs. Both objectives are expressed as rows of the engine's REINFORCE loss
//! (`-(r - b) log π(a|x)`, baseline 0), one row per (state, item) with the item's weight as
//! its reward, so the engines need no new loss.

use crate::data::sampling::categorical;
use crate::data::UserTask;
use crate::engine::{Batch, EngineError, Mask, Result, Row};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// What CAVIA's outer step follows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// The policy gradient of the actions the episodes took ([`super::Optimizer`]).
    #[default]
    Sampled,
    /// Cross-entropy of the policy at each state against its unshown items weighted by their
    /// known rewards, `−Σ_j q_j log π(j | s)` with `q_j = r_j / Σ_k r_k` (binary rewards: the
    /// mean over the user's liked, unshown items of `−log π(j | s)`).
    CrossEntropy,
    /// The expected reward of the next item at each state, `Σ_j π(j | s) r_j`, by its exact
    /// gradient `Σ_j π_j r_j ∇ log π_j` (no sampling noise).
    ExpectedReward,
}

impl Objective {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Objective::Sampled => "sampled",
            Objective::CrossEntropy => "full-ce",
            Objective::ExpectedReward => "full-expected",
        }
    }

    /// Parses `sampled`, `full-ce` or `full-expected`.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        [
            Objective::Sampled,
            Objective::CrossEntropy,
            Objective::ExpectedReward,
        ]
        .into_iter()
        .find(|o| o.name() == s)
        .ok_or_else(|| format!("expected sampled, full-ce or full-expected, found {s:?}"))
    }
}

/// The known reward of each of the `items` catalog items for `task`, or an error naming the
/// task whose rewards are not known.
pub(super) fn known_rewards(task: &impl UserTask, items: usize) -> Result<Vec<f32>> {
    (0..items as u32)
        .map(|j| {
            task.known_reward(j).ok_or_else(|| {
                EngineError::Input(format!(
                    "user {}: the full-information outer objective needs every reward known \
                     (logged ratings); this task does not know item {j}'s",
                    task.user()
                ))
            })
        })
        .collect()
}

/// The states of a batch of episodes: their network inputs and masks (row-major, in episode
/// order) and, per episode, its number of states and the known reward of every item.
pub(super) struct States<'a> {
    pub inputs: &'a [f32],
    pub mask: &'a Mask,
    pub episodes: &'a [(usize, Vec<f32>)],
}

/// The outer batch of `objective` at `states`: per state the weights `w_j` of its unshown items
/// with a positive reward (`q_j`, or `π_j r_j` from `logp`, the states' masked log-softmax at
/// the outer step's temperature, `rows × items`); a state with at most `draws` such items gets
/// one row each (exact), otherwise `draws` rows drawn in proportion to `w`, each weighing
/// `Σ w / draws` (unbiased). The rewards are scaled by rows / states, so that the REINFORCE
/// loss, a mean over rows, is the objective's mean over states (entropy 0).
pub(super) fn outer_batch(
    objective: Objective,
    states: &States<'_>,
    logp: Option<&[f32]>,
    draws: usize,
    seed: u64,
) -> Result<Batch> {
    let wpr = states.mask.words_per_row.max(1);
    let width = states.inputs.len() / (states.mask.words.len() / wpr).max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut inputs, mut rows, mut words) = (Vec::new(), Vec::new(), Vec::new());
    let mut s = 0;
    for (count, rewards) in states.episodes {
        let items = rewards.len();
        for _ in 0..*count {
            let mask = &states.mask.words[s * wpr..(s + 1) * wpr];
            let unshown = |j: usize| mask[j / 32] & (1 << (j % 32)) == 0;
            let mut w: Vec<(u32, f64)> = (0..items)
                .filter(|&j| unshown(j) && rewards[j] > 0.0)
                .map(|j| (j as u32, f64::from(rewards[j])))
                .collect();
            match (objective, logp) {
                (Objective::CrossEntropy, _) => {
                    let total: f64 = w.iter().map(|&(_, r)| r).sum();
                    w.iter_mut().for_each(|(_, r)| *r /= total);
                }
                (Objective::ExpectedReward, Some(logp)) => {
                    let row = &logp[s * items..(s + 1) * items];
                    w.iter_mut()
                        .for_each(|(j, r)| *r *= f64::from(row[*j as usize]).exp());
                }
                _ => {
                    return Err(EngineError::Input(format!(
                        "the {} objective has no full-information batch without log-probabilities",
                        objective.name()
                    )))
                }
            }
            let picked: Vec<(u32, f64)> = if w.len() <= draws {
                w
            } else {
                let total: f64 = w.iter().map(|&(_, r)| r).sum();
                let probs: Vec<f64> = w.iter().map(|&(_, r)| r / total).collect();
                (0..draws)
                    .map(|_| (w[categorical(&mut rng, &probs)].0, total / draws as f64))
                    .collect()
            };
            for (action, weight) in picked {
                inputs.extend_from_slice(&states.inputs[s * width..(s + 1) * width]);
                words.extend_from_slice(mask);
                rows.push(Row {
                    action,
                    reward: weight as f32,
                    baseline: 0.0,
                    old_logp: 0.0,
                });
            }
            s += 1;
        }
    }
    let scale = rows.len() as f32 / s.max(1) as f32;
    rows.iter_mut().for_each(|r| r.reward *= scale);
    Ok(Batch {
        inputs,
        rows,
        mask: Some(Mask {
            words,
            words_per_row: wpr,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::sampling::normal;
    use crate::engine::cpu::{ready, CpuEngine};
    use crate::engine::{Engine, Loss};
    use crate::model::{Activation, Head, Init, ModelConfig};

    const ITEMS: usize = 40;
    /// Per episode: its states and the known reward of every item.
    type Known = Vec<(usize, Vec<f32>)>;
    const T: f32 = 0.7;

    /// A small policy over 40 items, five states of two episodes (one user with binary
    /// rewards, one with graded ones; the last state has every liked item shown) and their
    /// masks.
    fn world() -> (CpuEngine, Vec<f32>, Mask, Known) {
        let model = ModelConfig {
            input: 5,
            hidden: vec![6],
            output: 4,
            hidden_activation: Activation::Relu,
            output_activation: Activation::Identity,
            head: Head::Policy { items: ITEMS },
            init: Init::He,
            seed: 3,
            max_rows: 64,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| normal(&mut rng) as f32).collect() };
        let mut engine = CpuEngine::new(&model).unwrap();
        engine.set_items(&draw(ITEMS * 4)).unwrap();
        let inputs = draw(5 * 5);
        let binary: Vec<f32> = (0..ITEMS).map(|j| f32::from(j % 5 == 1)).collect();
        let graded: Vec<f32> = (0..ITEMS).map(|j| [0.0, 0.25, 1.0][j % 3]).collect();
        let mut mask = Mask::new(5, ITEMS);
        for (s, shown) in [[2, 6, 11], [6, 11, 16], [1, 7, 30], [3, 4, 5], [0, 0, 0]]
            .iter()
            .enumerate()
        {
            shown.iter().for_each(|&j| mask.set(s, j));
        }
        // the last state: none of the graded user's rewarded items is left
        (0..ITEMS)
            .filter(|j| j % 3 != 0)
            .for_each(|j| mask.set(4, j));
        (engine, inputs, mask, vec![(3, binary), (2, graded)])
    }

    /// The objective on the host, from the engine's log-probabilities: the mean over states of
    /// `−Σ_j q_j log π_j` (cross-entropy) or of `−Σ_j π_j r_j` (expected reward, negated).
    fn objective(
        engine: &mut CpuEngine,
        inputs: &[f32],
        mask: &Mask,
        episodes: &[(usize, Vec<f32>)],
        objective: Objective,
    ) -> f64 {
        let logp = ready(engine.log_probs(inputs, Some(mask), T))
            .unwrap()
            .unwrap();
        let mut s = 0;
        let mut total = 0.0;
        for (count, r) in episodes {
            for _ in 0..*count {
                let row = &logp[s * ITEMS..(s + 1) * ITEMS];
                let open: Vec<usize> = (0..ITEMS).filter(|&j| !mask.get(s, j)).collect();
                let sum: f64 = open.iter().map(|&j| f64::from(r[j])).sum();
                for j in open {
                    let (r, lp) = (f64::from(r[j]), f64::from(row[j]));
                    total -= match objective {
                        Objective::CrossEntropy if sum > 0.0 => r / sum * lp,
                        Objective::ExpectedReward => r * lp.exp(),
                        _ => 0.0,
                    };
                }
                s += 1;
            }
        }
        total / s as f64
    }

    fn gradient(engine: &mut CpuEngine, batch: &Batch) -> Vec<f32> {
        let loss = Loss::Reinforce {
            entropy: 0.0,
            temperature: T,
        };
        ready(engine.gradients(batch, loss)).unwrap().unwrap().0
    }

    fn rel_err(a: &[f32], b: &[f32]) -> f32 {
        let d: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
        let n: f32 = b.iter().map(|y| y * y).sum();
        (d / n).sqrt()
    }

    /// With every weighted item in the batch (draws above the support), the REINFORCE loss of
    /// the outer batch has the gradient of each objective (central finite differences over
    /// every parameter), the states without a liked item included in the mean.
    #[test]
    fn the_outer_batch_has_the_gradient_of_the_full_information_objective() {
        let (mut engine, inputs, mask, episodes) = world();
        let params = ready(engine.params()).unwrap().unwrap();
        for obj in [Objective::CrossEntropy, Objective::ExpectedReward] {
            engine.set_params(&params).unwrap();
            let logp = ready(engine.log_probs(&inputs, Some(&mask), T))
                .unwrap()
                .unwrap();
            let states = States {
                inputs: &inputs,
                mask: &mask,
                episodes: &episodes,
            };
            let batch = outer_batch(obj, &states, Some(&logp), ITEMS, 1).unwrap();
            // exact: one row per rewarded unshown item (8 liked less the shown ones, 26 graded
            // items less two in state 3, none in state 4)
            assert_eq!(batch.rows.len(), (8 - 2) + (8 - 3) + (8 - 1) + (26 - 2));
            let analytic = gradient(&mut engine, &batch);
            let h = 1e-2f32;
            let numeric: Vec<f32> = (0..params.len())
                .map(|i| {
                    let mut p = params.clone();
                    p[i] += h;
                    engine.set_params(&p).unwrap();
                    let up = objective(&mut engine, &inputs, &mask, &episodes, obj);
                    p[i] -= 2.0 * h;
                    engine.set_params(&p).unwrap();
                    let down = objective(&mut engine, &inputs, &mask, &episodes, obj);
                    ((up - down) / (2.0 * f64::from(h))) as f32
                })
                .collect();
            let err = rel_err(&analytic, &numeric);
            assert!(
                err < 1e-2,
                "{obj:?}: off the finite differences by {err:.2e}"
            );
        }
    }

    /// With fewer draws than weighted items, the drawn rows' gradient is unbiased: its mean over
    /// many draws is the exact batch's gradient.
    #[test]
    fn drawn_rows_average_to_the_exact_gradient() {
        let (mut engine, inputs, mask, episodes) = world();
        let logp = ready(engine.log_probs(&inputs, Some(&mask), T))
            .unwrap()
            .unwrap();
        let states = States {
            inputs: &inputs,
            mask: &mask,
            episodes: &episodes,
        };
        for obj in [Objective::CrossEntropy, Objective::ExpectedReward] {
            let exact = gradient(
                &mut engine,
                &outer_batch(obj, &states, Some(&logp), ITEMS, 1).unwrap(),
            );
            let n = 3000;
            let mut mean = vec![0.0f32; exact.len()];
            for seed in 0..n {
                let batch = outer_batch(obj, &states, Some(&logp), 2, seed).unwrap();
                assert_eq!(
                    batch.rows.len(),
                    4 * 2,
                    "two rows per state with a liked item"
                );
                let g = gradient(&mut engine, &batch);
                mean.iter_mut().zip(g).for_each(|(m, g)| *m += g / n as f32);
            }
            let err = rel_err(&mean, &exact);
            assert!(
                err < 0.03,
                "{obj:?}: drawn rows off the exact gradient by {err:.3}"
            );
        }
    }

    #[test]
    fn names_parse_back_and_a_sampled_objective_has_no_full_batch() {
        for o in [
            Objective::Sampled,
            Objective::CrossEntropy,
            Objective::ExpectedReward,
        ] {
            assert_eq!(Objective::parse(o.name()), Ok(o));
        }
        assert!(Objective::parse("full").is_err());
        let (_, inputs, mask, episodes) = world();
        let states = States {
            inputs: &inputs,
            mask: &mask,
            episodes: &episodes,
        };
        assert!(outer_batch(Objective::Sampled, &states, None, 8, 1).is_err());
        assert!(outer_batch(Objective::ExpectedReward, &states, None, 8, 1).is_err());
    }

    /// A full-information objective is CAVIA's with REINFORCE steps: PPO, TRPO and the
    /// whole-network outer loops are refused before any episode runs.
    #[test]
    fn meta_steps_refuse_a_full_objective_outside_cavia_with_reinforce() {
        use super::super::{meta_step, Algorithm, MetaConfig, Optimizer};
        let (mut engine, ..) = world();
        for (algorithm, optimizer) in [
            (Algorithm::Cavia, Optimizer::Ppo),
            (Algorithm::Cavia, Optimizer::Trpo),
            (Algorithm::Reptile, Optimizer::Reinforce),
            (Algorithm::Fomaml, Optimizer::Reinforce),
        ] {
            let cfg = MetaConfig {
                algorithm,
                optimizer,
                objective: Objective::ExpectedReward,
                ..MetaConfig::default()
            };
            let tasks = Vec::<crate::data::ObservedTask>::new();
            let err = ready(meta_step(&mut engine, tasks, &cfg, 0)).unwrap();
            assert!(
                matches!(&err, Err(EngineError::Input(m)) if m.contains("REINFORCE")),
                "{algorithm:?} / {optimizer:?}: {err:?}"
            );
        }
    }
}
