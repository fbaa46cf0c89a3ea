//! The input checks every engine's inputs pass, once, in [`Engine`]'s methods, before the
//! engine's own operation runs: bad input is a clear [`EngineError::Input`], never a panic.

use super::backend::{Checked, Scoring};
#[cfg(doc)]
use super::Engine;
use super::{Batch, EngineError, Loss, Mask, OptimizerState, Result, SlateSpec, MAX_SLATE};
use crate::model::ModelConfig;

/// Checks a batch against the model before any engine touches it.
pub(crate) fn check_batch<'a>(
    cfg: &ModelConfig,
    batch: &'a Batch,
    loss: Loss,
) -> Result<Checked<'a>> {
    let rows = batch.rows.len();
    check_inputs(cfg, &batch.inputs)?;
    if batch.inputs.len() != rows * cfg.input {
        return Err(EngineError::Input(format!(
            "batch has {rows} rows but {} input values (expected {})",
            batch.inputs.len(),
            rows * cfg.input
        )));
    }
    if let Some((r, _)) = batch.rows.iter().enumerate().find(|(_, row)| {
        !(row.reward.is_finite() && row.baseline.is_finite() && row.old_logp.is_finite())
    }) {
        return Err(EngineError::Input(format!(
            "row {r}: reward, baseline and old log-probability must be finite"
        )));
    }
    let items = cfg.items();
    match (loss, cfg.head) {
        (Loss::Mse, crate::model::Head::Regression { .. }) => {}
        (Loss::Mse, _) => {
            return Err(EngineError::Input(
                "MSE needs a regression head; this model has a policy head".into(),
            ))
        }
        (_, crate::model::Head::Regression { .. }) => {
            return Err(EngineError::Input(
                "policy-gradient losses need a policy head; this model has a regression head"
                    .into(),
            ))
        }
        _ => {
            if let Some(r) = batch.rows.iter().find(|r| r.action as usize >= items) {
                return Err(EngineError::Input(format!(
                    "action {} is outside the catalog of {items} items",
                    r.action
                )));
            }
            if loss.temperature().is_nan() || loss.temperature() <= 0.0 {
                return Err(EngineError::Input("temperature must be positive".into()));
            }
        }
    }
    if let Some(m) = &batch.mask {
        check_mask(cfg, m, rows)?;
        if let Some((r, row)) = batch
            .rows
            .iter()
            .enumerate()
            .find(|(r, row)| m.get(*r, row.action as usize))
        {
            return Err(EngineError::Input(format!(
                "row {r}: action {} is masked, so the policy could not have chosen it",
                row.action
            )));
        }
    }
    Ok(Checked { batch, loss, rows })
}

/// Checks an input matrix: a whole number of rows, within the allocated batch size, finite.
pub(crate) fn check_inputs(cfg: &ModelConfig, inputs: &[f32]) -> Result<usize> {
    if inputs.is_empty() || inputs.len() % cfg.input != 0 {
        return Err(EngineError::Input(format!(
            "inputs must be a non-empty multiple of the input width {}, got {} values",
            cfg.input,
            inputs.len()
        )));
    }
    let rows = inputs.len() / cfg.input;
    if rows > cfg.max_rows {
        return Err(EngineError::Input(format!(
            "{rows} rows exceed the model's max_rows {}",
            cfg.max_rows
        )));
    }
    if let Some(i) = inputs.iter().position(|v| !v.is_finite()) {
        return Err(EngineError::Input(format!(
            "input value {i} (row {}) is not finite",
            i / cfg.input
        )));
    }
    Ok(rows)
}

/// Checks a parameter vector for a network of `count` parameters: its length, every value finite.
pub(crate) fn check_params(count: usize, params: &[f32]) -> Result<()> {
    if params.len() != count {
        return Err(EngineError::Input(format!(
            "expected {count} parameters, got {}",
            params.len()
        )));
    }
    if let Some(i) = params.iter().position(|v| !v.is_finite()) {
        return Err(EngineError::Input(format!("parameter {i} is not finite")));
    }
    Ok(())
}

/// Checks an item matrix for a policy model: `items × output` values, every value finite.
pub(crate) fn check_items(cfg: &ModelConfig, embeddings: &[f32]) -> Result<()> {
    let n = check_policy(cfg)?;
    let d = cfg.output;
    if embeddings.len() != n * d {
        return Err(EngineError::Input(format!(
            "item matrix must be {n} × {d} = {} values, got {}",
            n * d,
            embeddings.len()
        )));
    }
    if let Some(i) = embeddings.iter().position(|v| !v.is_finite()) {
        return Err(EngineError::Input(format!(
            "item embedding value {i} (item {}) is not finite",
            i / d
        )));
    }
    Ok(())
}

/// Checks a restored optimiser state against the parameter count.
pub(crate) fn check_optimizer(params: usize, state: &OptimizerState) -> Result<()> {
    if state.m.len() != params || state.v.len() != params {
        return Err(EngineError::Input(format!(
            "optimiser state has {} / {} moments for {params} parameters",
            state.m.len(),
            state.v.len()
        )));
    }
    if state.v.iter().chain(&state.m).any(|x| !x.is_finite()) || state.v.iter().any(|&x| x < 0.0) {
        return Err(EngineError::Input("optimiser state is not finite".into()));
    }
    Ok(())
}

fn check_mask(cfg: &ModelConfig, mask: &Mask, rows: usize) -> Result<()> {
    let wpr = cfg.items().div_ceil(32);
    if mask.words_per_row != wpr || mask.words.len() != rows * wpr {
        return Err(EngineError::Input(format!(
            "mask must have {wpr} words per row for {rows} rows"
        )));
    }
    Ok(())
}

/// Checks the arguments of `scores`.
pub(crate) fn check_scores<'a>(cfg: &ModelConfig, inputs: &'a [f32]) -> Result<Scoring<'a>> {
    let items = check_policy(cfg)?;
    let rows = check_inputs(cfg, inputs)?;
    Ok(Scoring {
        inputs,
        rows,
        items,
        mask: None,
    })
}

/// Checks the arguments of `log_probs`.
pub(crate) fn check_log_probs<'a>(
    cfg: &ModelConfig,
    inputs: &'a [f32],
    mask: Option<&'a Mask>,
    temperature: f32,
) -> Result<Scoring<'a>> {
    let s = check_scores(cfg, inputs)?;
    if let Some(m) = mask {
        check_mask(cfg, m, s.rows)?;
    }
    if temperature.is_nan() || temperature <= 0.0 {
        return Err(EngineError::Input("temperature must be positive".into()));
    }
    Ok(Scoring { mask, ..s })
}

/// Checks the arguments of `sample`.
pub(crate) fn check_sample<'a>(
    cfg: &ModelConfig,
    inputs: &'a [f32],
    mask: Option<&'a Mask>,
    spec: &SlateSpec,
) -> Result<Scoring<'a>> {
    let s = check_log_probs(cfg, inputs, mask, spec.temperature)?;
    let (n, rows) = (s.items, s.rows);
    check_slate(spec, n)?;
    if let Some(m) = mask {
        for r in 0..rows {
            let open = (0..n).filter(|&j| !m.get(r, j)).count();
            if open < spec.k {
                return Err(EngineError::Input(format!(
                    "row {r} has {open} unmasked items, fewer than the slate size {}",
                    spec.k
                )));
            }
        }
    }
    Ok(s)
}

pub(crate) fn check_policy(cfg: &ModelConfig) -> Result<usize> {
    match cfg.head {
        crate::model::Head::Policy { items } => Ok(items),
        _ => Err(EngineError::Input(
            "this operation needs a policy head".into(),
        )),
    }
}

/// Row `item` of a host copy of the item matrix (`items × d`).
pub(crate) fn item_row(items: &[f32], d: usize, item: u32) -> Result<Vec<f32>> {
    let i = item as usize;
    items
        .get(i * d..(i + 1) * d)
        .map(<[f32]>::to_vec)
        .ok_or_else(|| {
            EngineError::Input(format!(
                "item {item} is outside the catalog of {} items",
                items.len() / d.max(1)
            ))
        })
}

fn check_slate(spec: &SlateSpec, items: usize) -> Result<()> {
    if spec.k == 0 || spec.k > MAX_SLATE || spec.k > items {
        return Err(EngineError::Input(format!(
            "slate size must be in 1..={} and at most the catalog size {items}, got {}",
            MAX_SLATE, spec.k
        )));
    }
    if spec.temperature.is_nan() || spec.temperature <= 0.0 {
        return Err(EngineError::Input("temperature must be positive".into()));
    }
    Ok(())
}
