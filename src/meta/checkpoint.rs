//! Checkpoints that resume a meta-training run exactly, and the run loop that saves them.

use super::{meta_step, MetaConfig, MetaProgress};
use crate::data::UserTask;
use crate::engine::{Engine, EngineError, OptimizerState, Result};
use crate::model::ModelConfig;
use serde::{Deserialize, Serialize};

/// Format tag of meta-training checkpoints.
pub const CHECKPOINT_FORMAT: &str = "metarec-checkpoint/1";

/// Everything needed to continue meta-training exactly where it stopped: with the same
/// configuration and seed, a resumed run reaches the same parameters as an uninterrupted one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: String,
    /// The next meta-iteration to run.
    pub iteration: usize,
    pub model: ModelConfig,
    pub params: Vec<f32>,
    pub optimizer: OptimizerState,
    pub history: Vec<MetaProgress>,
}

impl Checkpoint {
    /// Captures `engine`'s parameters and optimiser state before meta-iteration `iteration`.
    pub async fn capture(
        engine: &mut impl Engine,
        iteration: usize,
        history: &[MetaProgress],
    ) -> Result<Self> {
        Ok(Checkpoint {
            format: CHECKPOINT_FORMAT.into(),
            iteration,
            model: engine.config().clone(),
            params: engine.params().await?,
            optimizer: engine.optimizer_state().await?,
            history: history.to_vec(),
        })
    }

    /// Puts the parameters and optimiser state back into `engine` (same model configuration).
    pub fn restore_into(&self, engine: &mut impl Engine) -> Result<()> {
        if engine.config() != &self.model {
            return Err(EngineError::Input(
                "the checkpoint was made for another model configuration".into(),
            ));
        }
        engine.set_params(&self.params)?;
        engine.set_optimizer_state(&self.optimizer)
    }

    /// JSON bytes (f32 values round-trip exactly).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self)
            .map_err(|e| EngineError::Input(format!("could not serialise the checkpoint: {e}")))
    }

    /// Reads a checkpoint, refusing other formats and corrupted files clearly.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let c: Checkpoint = serde_json::from_slice(bytes)
            .map_err(|e| EngineError::Input(format!("corrupted checkpoint: {e}")))?;
        if c.format != CHECKPOINT_FORMAT {
            return Err(EngineError::Input(format!(
                "checkpoint is '{}', this build reads '{CHECKPOINT_FORMAT}'",
                c.format
            )));
        }
        Ok(c)
    }

    /// Writes atomically (a temporary file, then a rename), so an interrupted write never
    /// leaves a broken checkpoint behind.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn write(&self, path: &std::path::Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, self.to_bytes().map_err(std::io::Error::other)?)?;
        std::fs::rename(&tmp, path)
    }
}

/// How a meta-training run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct RunResult {
    pub history: Vec<MetaProgress>,
    /// False when `should_stop` ended the run early (a checkpoint was saved first).
    pub completed: bool,
}

/// Callbacks of [`run`].
pub struct Hooks<P, S, C> {
    /// Sees every finished iteration.
    pub on_progress: P,
    /// Polled after every iteration (e.g. a Ctrl-C flag); true ends the run after a checkpoint.
    pub should_stop: S,
    /// Receives a checkpoint every `every` iterations, at the end and before an early stop.
    pub save: C,
    pub every: usize,
}

/// Runs meta-iterations from `start` (a checkpoint, or the engine's current state) up to
/// `cfg.iterations`. `tasks(i)` gives iteration i's tasks, so a resumed run sees exactly the
/// tasks an uninterrupted one would.
pub async fn run<E, T, P, S, C>(
    engine: &mut E,
    cfg: &MetaConfig,
    start: Option<Checkpoint>,
    mut tasks: impl FnMut(usize) -> Vec<T>,
    mut hooks: Hooks<P, S, C>,
) -> Result<RunResult>
where
    E: crate::engine::fisher::Fisher,
    T: UserTask,
    P: FnMut(&MetaProgress),
    S: FnMut() -> bool,
    C: FnMut(&Checkpoint) -> Result<()>,
{
    let (first, mut history) = match start {
        Some(c) => {
            c.restore_into(engine)?;
            (c.iteration, c.history)
        }
        None => (0, Vec::new()),
    };
    for it in first..cfg.iterations {
        let p = meta_step(engine, tasks(it), cfg, it).await?;
        (hooks.on_progress)(&p);
        history.push(p);
        let stop = (hooks.should_stop)();
        let periodic = hooks.every > 0 && (it + 1) % hooks.every == 0;
        if stop || periodic || it + 1 == cfg.iterations {
            (hooks.save)(&Checkpoint::capture(engine, it + 1, &history).await?)?;
        }
        if stop && it + 1 < cfg.iterations {
            return Ok(RunResult {
                history,
                completed: false,
            });
        }
    }
    Ok(RunResult {
        history,
        completed: true,
    })
}
