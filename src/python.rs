//! The Python extension module `metarec._native` (feature `python`, native only), wrapped by
//! the `metarec` package (python/metarec): datasets, the fine-tune stage, meta-training on a
//! dataset's training users, the federated halves of Reptile / first-order MAML
//! ([`crate::meta::federated`]), evaluation on held-out users and sessions. Everything runs on
//! the CPU engine. Parameter vectors cross the boundary as little-endian f32 `bytes` (numpy
//! views them without a copy); reports as JSON text. Errors are `metarec.MetarecError` with
//! the messages the CLI prints.

use crate::data::{self, Bundle, Dataset, RewardMode};
use crate::engine::cpu::CpuEngine;
use crate::engine::{Engine, OptimizerState};
use crate::eval::meta_rl::{MetaRl, Trained};
use crate::eval::protocol::{episode_seed, run_episode};
use crate::finetune::FinetuneConfig;
use crate::meta::federated::{adapt_tasks, outer_update, InnerState};
use crate::meta::{self, Algorithm, DatasetSetup, MetaConfig, PolicyShape};
use crate::policy::Policy;
use crate::session::{AdaptConfig, Adapts};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

create_exception!(_native, MetarecError, PyException);

fn err(e: impl std::fmt::Display) -> PyErr {
    MetarecError::new_err(e.to_string())
}

/// Runs a CPU-engine future (ready when first polled).
fn ready<F: Future>(f: F) -> PyResult<F::Output> {
    crate::engine::cpu::ready(f).map_err(err)
}

fn floats(bytes: &[u8], what: &str) -> PyResult<Vec<f32>> {
    if bytes.len() % 4 != 0 {
        return Err(err(format!(
            "{what}: {} bytes is not a whole number of f32 values",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn to_bytes<'py>(py: Python<'py>, values: &[f32]) -> Bound<'py, PyBytes> {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    PyBytes::new(py, &raw)
}

fn json(value: &impl serde::Serialize) -> PyResult<String> {
    serde_json::to_string(value).map_err(err)
}

fn algorithm(name: &str) -> PyResult<Algorithm> {
    match name {
        "cavia" => Ok(Algorithm::Cavia),
        "reptile" => Ok(Algorithm::Reptile),
        "fomaml" => Ok(Algorithm::Fomaml),
        _ => Err(err(format!(
            "expected cavia, reptile or fomaml, found {name:?}"
        ))),
    }
}

/// A ratings dataset, as `metarec data` reads it.
#[pyclass(frozen, module = "metarec._native")]
struct NativeDataset {
    inner: Arc<Dataset>,
}

#[pymethods]
impl NativeDataset {
    /// Loads a dataset directory or ratings file, or `synthetic[:SEED]` (the synthetic world's
    /// logged ratings).
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Self> {
        let dataset = match path.to_str().and_then(|s| s.strip_prefix("synthetic")) {
            Some(rest) => {
                let seed = match rest.strip_prefix(':') {
                    Some(s) => s
                        .parse()
                        .map_err(|_| err(format!("synthetic seed {s:?} is not a number")))?,
                    None if rest.is_empty() => 1,
                    None => return Err(err(format!("cannot read {}", path.display()))),
                };
                data::World::generate(data::WorldConfig {
                    seed,
                    ..Default::default()
                })
                .and_then(|w| w.dataset(seed))
            }
            None => data::load(&path),
        }
        .map_err(err)?;
        Ok(NativeDataset {
            inner: Arc::new(dataset),
        })
    }

    #[getter]
    fn name(&self) -> String {
        self.inner.name.clone()
    }
    #[getter]
    fn n_users(&self) -> usize {
        self.inner.n_users()
    }
    #[getter]
    fn n_items(&self) -> usize {
        self.inner.n_items()
    }
    #[getter]
    fn n_ratings(&self) -> usize {
        self.inner.ratings.len()
    }

    /// The 70 / 10 / 20 user split of `seed`: (train, validation, cold start) dense indices.
    fn split(&self, seed: u64) -> PyResult<(Vec<u32>, Vec<u32>, Vec<u32>)> {
        let s = data::split_users(self.inner.n_users(), data::SplitFractions::default(), seed)
            .map_err(err)?;
        Ok((s.train, s.validation, s.cold_start))
    }
}

/// The fine-tune stage (`metarec train --stages finetune`) on the CPU engine: the report as JSON.
#[pyfunction]
#[pyo3(signature = (dataset, seed=1, epochs=None))]
fn finetune(dataset: &NativeDataset, seed: u64, epochs: Option<usize>) -> PyResult<String> {
    let defaults = FinetuneConfig::default();
    let config = FinetuneConfig {
        seed,
        max_epochs: epochs.unwrap_or(defaults.max_epochs),
        ..defaults
    };
    let mut engine = CpuEngine::new(&config.model(&dataset.inner)).map_err(err)?;
    let fit = ready(crate::finetune::finetune(
        &mut engine,
        &dataset.inner,
        &config,
        |_| {},
    ))?
    .map_err(err)?;
    json(&fit.report)
}

/// Meta-training on a dataset's training users: the split, the policy and its start
/// ([`DatasetSetup`]), the configuration, and a CPU engine over the policy.
#[pyclass(module = "metarec._native")]
struct NativeMeta {
    dataset: Arc<Dataset>,
    setup: DatasetSetup,
    cfg: MetaConfig,
    engine: CpuEngine,
}

impl NativeMeta {
    fn trained(&self, params: Vec<f32>) -> Trained {
        Trained {
            model: self.setup.model.clone(),
            params,
            items: self.setup.vectors.values.clone(),
        }
    }

    fn checked(&self, bytes: &[u8], what: &str) -> PyResult<Vec<f32>> {
        let v = floats(bytes, what)?;
        let n = self.setup.start.len();
        if v.len() != n {
            return Err(err(format!(
                "{what}: the policy has {n} parameters, got {}",
                v.len()
            )));
        }
        Ok(v)
    }
}

#[pymethods]
impl NativeMeta {
    #[new]
    #[pyo3(signature = (dataset, seed, algorithm, iterations, users_per_iteration, rounds, param_lr, reptile_step, outer_lr, finetune_epochs=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        dataset: &NativeDataset,
        seed: u64,
        algorithm: &str,
        iterations: usize,
        users_per_iteration: usize,
        rounds: usize,
        param_lr: f32,
        reptile_step: f32,
        outer_lr: f32,
        finetune_epochs: Option<usize>,
    ) -> PyResult<Self> {
        let algorithm = self::algorithm(algorithm)?;
        if users_per_iteration == 0 || rounds == 0 {
            return Err(err("users_per_iteration and rounds must be at least 1"));
        }
        let defaults = MetaConfig::default();
        let mut cfg = MetaConfig {
            algorithm,
            iterations,
            users_per_iteration,
            rounds,
            reptile_step,
            seed: seed as u32,
            ..defaults
        };
        cfg.adapt.adapts = algorithm.adapts();
        cfg.adapt.param_lr = param_lr;
        cfg.outer.lr = outer_lr;
        let ft = FinetuneConfig::default();
        let finetune = FinetuneConfig {
            max_epochs: finetune_epochs.unwrap_or(ft.max_epochs),
            ..ft
        };
        let shape = PolicyShape::default();
        let setup =
            DatasetSetup::new(&dataset.inner, seed, &finetune, &shape, &cfg).map_err(err)?;
        let mut engine = CpuEngine::new(&setup.model).map_err(err)?;
        engine.set_items(&setup.vectors.values).map_err(err)?;
        engine.set_params(&setup.start).map_err(err)?;
        Ok(NativeMeta {
            dataset: dataset.inner.clone(),
            setup,
            cfg,
            engine,
        })
    }

    /// The policy's start (before meta-training) as f32 bytes.
    fn start<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        to_bytes(py, &self.setup.start)
    }

    /// (train, validation, cold start) users of the split.
    fn split(&self) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
        let s = &self.setup.split;
        (s.train.clone(), s.validation.clone(), s.cold_start.clone())
    }

    /// The configuration as JSON.
    fn config(&self) -> PyResult<String> {
        json(&self.cfg)
    }

    /// Centralised meta-training for `cfg.iterations` from `params` (default: the start):
    /// (parameters, history as JSON).
    #[pyo3(signature = (params=None))]
    fn meta_train<'py>(
        &mut self,
        py: Python<'py>,
        params: Option<&[u8]>,
    ) -> PyResult<(Bound<'py, PyBytes>, String)> {
        let theta = match params {
            Some(p) => self.checked(p, "params")?,
            None => self.setup.start.clone(),
        };
        self.engine.set_params(&theta).map_err(err)?;
        let zeros = OptimizerState {
            m: vec![0.0; theta.len()],
            v: vec![0.0; theta.len()],
            step: 0,
        };
        self.engine.set_optimizer_state(&zeros).map_err(err)?;
        let mut history = Vec::with_capacity(self.cfg.iterations);
        for it in 0..self.cfg.iterations {
            let tasks = self.setup.tasks(&self.dataset, &self.cfg, it);
            history.push(
                ready(meta::meta_step(&mut self.engine, tasks, &self.cfg, it))?.map_err(err)?,
            );
        }
        let out = ready(self.engine.params())?.map_err(err)?;
        Ok((to_bytes(py, &out), json(&history)?))
    }

    /// The (slot, user) pairs of meta-iteration `iteration` held by client `client` of
    /// `clients` (training users dealt out round-robin).
    fn shard_users(&self, clients: usize, client: usize, iteration: usize) -> Vec<(usize, u32)> {
        meta::shard_users(
            &self.setup.split.train,
            clients,
            client,
            &self.cfg,
            iteration,
        )
    }

    /// The (slot, user) pairs of centralised meta-iteration `iteration`.
    fn iteration_users(&self, iteration: usize) -> Vec<(usize, u32)> {
        meta::iteration_users(&self.setup.split.train, &self.cfg, iteration)
    }

    /// The inner loop for `users` ((slot, user) pairs) from `params`: (Σ contributions as f64
    /// bytes, report as JSON: tasks, episodes, reward_sum, rounds, loss_sum, losses, skipped).
    fn adapt<'py>(
        &mut self,
        py: Python<'py>,
        params: &[u8],
        users: Vec<(usize, u32)>,
        iteration: usize,
    ) -> PyResult<(Bound<'py, PyBytes>, String)> {
        let theta = self.checked(params, "params")?;
        let n = self.dataset.n_users();
        if let Some((_, u)) = users.iter().find(|(_, u)| *u as usize >= n) {
            return Err(err(format!("user {u} is outside the dataset's {n} users")));
        }
        let tasks = users
            .into_iter()
            .map(|(slot, u)| {
                let task = data::ObservedTask::for_user(
                    &self.dataset,
                    u,
                    RewardMode::default(),
                    self.cfg.rounds,
                );
                (slot, task)
            })
            .collect();
        let c = ready(adapt_tasks(
            &mut self.engine,
            &theta,
            tasks,
            &self.cfg,
            iteration,
            InnerState::Fresh,
        ))?
        .map_err(err)?;
        let report = serde_json::json!({
            "tasks": c.tasks,
            "episodes": c.episodes,
            "reward_sum": c.rewards.iter().map(|&r| f64::from(r)).sum::<f64>(),
            "rounds": c.rewards.len(),
            "loss_sum": c.loss_sum,
            "losses": c.losses,
            "skipped": c.skipped,
        });
        let raw: Vec<u8> = c.sum.iter().flat_map(|v| v.to_le_bytes()).collect();
        Ok((PyBytes::new(py, &raw), report.to_string()))
    }

    /// The outer step on the mean contribution: (new parameters or None when they would not
    /// be finite, Adam m, Adam v, Adam step).
    #[allow(clippy::type_complexity)]
    fn outer_update<'py>(
        &self,
        py: Python<'py>,
        params: &[u8],
        mean: &[u8],
        adam_m: &[u8],
        adam_v: &[u8],
        adam_step: u32,
    ) -> PyResult<(
        Option<Bound<'py, PyBytes>>,
        Bound<'py, PyBytes>,
        Bound<'py, PyBytes>,
        u32,
    )> {
        let theta = self.checked(params, "params")?;
        let mean = self.checked(mean, "mean contribution")?;
        let mut state = OptimizerState {
            m: self.checked(adam_m, "Adam m")?,
            v: self.checked(adam_v, "Adam v")?,
            step: adam_step,
        };
        let next = outer_update(&theta, &mean, &self.cfg, &mut state).map_err(err)?;
        Ok((
            next.map(|p| to_bytes(py, &p)),
            to_bytes(py, &state.m),
            to_bytes(py, &state.v),
            state.step,
        ))
    }

    /// One episode of `rounds` (default: the configuration's) per user of `users` (default:
    /// the cold-start users) with the policy `params`, the whole network adapting per user
    /// from it (Reptile / first-order MAML) or its context (CAVIA), as `metarec eval` runs
    /// `meta-rl-reptile` / `meta-rl`: the likes of every round, per user.
    #[pyo3(signature = (params, users=None, rounds=None, seed=None))]
    fn evaluate(
        &self,
        params: &[u8],
        users: Option<Vec<u32>>,
        rounds: Option<usize>,
        seed: Option<u64>,
    ) -> PyResult<Vec<Vec<f64>>> {
        let trained = self.trained(self.checked(params, "params")?);
        let adapt = AdaptConfig {
            adapts: self.cfg.algorithm.adapts(),
            ..self.cfg.adapt
        };
        let mut rec = MetaRl::new(&trained, adapt).map_err(err)?;
        let users = users.unwrap_or_else(|| self.setup.split.cold_start.clone());
        let n = self.dataset.n_users();
        let rounds = rounds.unwrap_or(self.cfg.rounds);
        let seed = seed.unwrap_or(u64::from(self.cfg.seed));
        users
            .iter()
            .map(|&u| {
                if u as usize >= n {
                    return Err(err(format!("user {u} is outside the dataset's {n} users")));
                }
                let mut task =
                    data::ObservedTask::for_user(&self.dataset, u, RewardMode::default(), rounds);
                let log =
                    run_episode(&mut rec, &mut task, 1, episode_seed(seed, u)).map_err(err)?;
                Ok(log.hits)
            })
            .collect()
    }

    /// A bundle (catalog, item features, the policy `params`) as bytes.
    fn bundle<'py>(&self, py: Python<'py>, params: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let trained = self.trained(self.checked(params, "params")?);
        let adapt = AdaptConfig {
            adapts: self.cfg.algorithm.adapts(),
            ..self.cfg.adapt
        };
        let policy = Policy {
            model: trained.model,
            adapt,
            params: trained.params,
            items: trained.items,
            parts: Some(self.setup.vectors.parts()),
        };
        let mut bundle = Bundle::from_catalog(&self.dataset.catalog, &self.setup.train_ratings);
        policy.store(&mut bundle).map_err(err)?;
        Ok(PyBytes::new(py, &bundle.to_bytes().map_err(err)?))
    }
}

/// One person's session over a bundle's policy, on its own CPU engine.
#[pyclass(module = "metarec._native")]
struct NativeSession {
    engine: CpuEngine,
    session: crate::session::Session,
}

fn policy_engine(bundle: &[u8]) -> PyResult<(Policy, CpuEngine)> {
    let bundle = Bundle::from_bytes(bundle).map_err(err)?;
    let policy = Policy::from_bundle(&bundle).map_err(err)?;
    let mut engine = CpuEngine::new(&policy.model).map_err(err)?;
    policy.load_into(&mut engine).map_err(err)?;
    Ok((policy, engine))
}

#[pymethods]
impl NativeSession {
    /// A new person's session on the policy of `bundle` (bytes of a bundle file).
    #[new]
    #[pyo3(signature = (bundle, seed=1))]
    fn new(bundle: &[u8], seed: u32) -> PyResult<Self> {
        let (policy, engine) = policy_engine(bundle)?;
        Ok(NativeSession {
            session: policy.session(seed),
            engine,
        })
    }

    /// A session saved by `to_bytes`, on the policy of `bundle`.
    #[staticmethod]
    fn restore(bundle: &[u8], state: &[u8]) -> PyResult<Self> {
        let (policy, engine) = policy_engine(bundle)?;
        let session = crate::session::Session::from_bytes(state).map_err(err)?;
        if !session.fits(&policy.model) {
            return Err(err("the session was saved for another policy"));
        }
        Ok(NativeSession { engine, session })
    }

    /// `k` items not shown yet: (item, score, propensity), drawn from the policy or greedy.
    #[pyo3(signature = (k, greedy=false))]
    fn recommend(&mut self, k: usize, greedy: bool) -> PyResult<Vec<(u32, f32, f32)>> {
        let recs = ready(self.session.recommend(&mut self.engine, k, greedy))?.map_err(err)?;
        Ok(recs
            .iter()
            .map(|r| (r.item, r.score, r.propensity))
            .collect())
    }

    /// Learns from one reaction (reward in [0, 1]).
    fn feedback(&mut self, item: u32, reward: f32) -> PyResult<()> {
        ready(self.session.feedback(&mut self.engine, item, reward))?.map_err(err)
    }

    /// Whether the session adapts the whole network (Reptile / first-order MAML policies).
    #[getter]
    fn adapts_network(&self) -> bool {
        self.session.config().adapts == Adapts::Network
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.session.to_bytes().map_err(err)?))
    }
}

/// The policy parameters of a bundle (as `metarec train --out` writes it) as f32 bytes.
#[pyfunction]
fn policy_params<'py>(py: Python<'py>, bundle: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let (policy, _) = policy_engine(bundle)?;
    Ok(to_bytes(py, &policy.params))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("MetarecError", m.py().get_type::<MetarecError>())?;
    m.add_class::<NativeDataset>()?;
    m.add_class::<NativeMeta>()?;
    m.add_class::<NativeSession>()?;
    m.add_function(wrap_pyfunction!(finetune, m)?)?;
    m.add_function(wrap_pyfunction!(policy_params, m)?)?;
    Ok(())
}
