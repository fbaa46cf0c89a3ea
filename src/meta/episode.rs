//! One episode: a fresh session adapting online to one user (task), and its transitions.

use crate::data::{Shown, UserTask};
use crate::engine::{Batch, Engine, EngineError, Mask, Result, Row};
use crate::session::{AdaptConfig, Session};

/// What one episode produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Episode {
    /// Reward summed over the slate, per round.
    pub rewards: Vec<f32>,
    /// Round of each transition.
    pub(super) rounds: Vec<usize>,
    /// The transitions, each with the network input it was chosen under.
    pub(super) inputs: Vec<f32>,
    pub(super) rows: Vec<Row>,
    pub(super) masks: Vec<u32>,
}

/// Runs one episode of `task` from a fresh session, adapting online as the person's device
/// would (when `adapt.enabled`).
pub async fn run_episode(
    engine: &mut impl Engine,
    task: &mut impl UserTask,
    adapt: AdaptConfig,
    slate: usize,
    seed: u32,
) -> Result<Episode> {
    let items = engine.config().items();
    let mut session = Session::new(engine.config(), adapt, seed);
    if task.candidates().len() < items {
        session.restrict_to(task.candidates());
    }
    let mut ep = Episode {
        rewards: Vec::new(),
        rounds: Vec::new(),
        inputs: Vec::new(),
        rows: Vec::new(),
        masks: Vec::new(),
    };
    let fail = |e: crate::data::DataError| EngineError::Input(e.to_string());
    while !task.done() {
        let k = slate.min(task.candidates().len());
        if k == 0 {
            break;
        }
        let input = session.input();
        let mask = session.shown_words().to_vec();
        let recs = session.recommend(engine, k, false).await?;
        let shown: Vec<Shown> = recs
            .iter()
            .map(|r| Shown {
                item: r.item,
                propensity: r.propensity,
            })
            .collect();
        let rewards = task.step(&shown).map_err(fail)?;
        let baseline = session.baseline;
        for (rec, &reward) in recs.iter().zip(&rewards) {
            ep.inputs.extend(&input);
            ep.rounds.push(ep.rewards.len());
            ep.masks.extend(&mask);
            ep.rows.push(Row {
                action: rec.item,
                reward,
                baseline,
                old_logp: rec.propensity.ln(),
            });
            session.feedback(engine, rec.item, reward).await?;
        }
        ep.rewards.push(rewards.iter().sum());
    }
    Ok(ep)
}

impl Episode {
    /// The transitions of rounds `from..` (a suffix: rounds only grow) as a training batch.
    pub fn batch_from(&self, from: usize, words_per_row: usize) -> Batch {
        let start = self.rounds.partition_point(|&t| t < from);
        let width = self.inputs.len() / self.rows.len().max(1);
        Batch {
            inputs: self.inputs[start * width..].to_vec(),
            rows: self.rows[start..].to_vec(),
            mask: Some(Mask {
                words: self.masks[start * words_per_row..].to_vec(),
                words_per_row,
            }),
        }
    }
}
