//! `metarec bundle --items ITEMS [--ratings RATINGS] --out FILE`: a bundle of a site's own
//! items (CSV or JSON, `src/data/catalog.rs`) with a policy meta-trained on a synthetic world
//! over these items' own vectors (as the page's `Recommender.fromCatalog`), or, with ratings,
//! on the rating people as `metarec train` does (fine-tuned start, observed episodes);
//! `metarec inspect FILE [--json]`: what a bundle holds.

use crate::data::{Bundle, BUNDLE_VERSION};
use crate::engine::{AnyEngine, Engine, Preference};
use crate::meta::{self, MetaConfig, PolicyShape, SyntheticSetup};
use crate::policy::Policy;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Arguments of `metarec bundle`.
#[derive(clap::Args)]
pub struct BundleArgs {
    /// The items: CSV (header `id,title,categories[,year][,description][,embedding…]`) or JSON
    /// (an array of `{ id, title, categories, year?, description?, embedding? }`), by extension.
    #[arg(long)]
    items: PathBuf,
    /// Logged ratings of these items (`user,item,rating[,timestamp]`, as `metarec data` reads
    /// them): meta-train on the people who rated (as `metarec train`), not a synthetic world.
    #[arg(long)]
    ratings: Option<PathBuf>,
    /// The bundle to write.
    #[arg(long)]
    out: PathBuf,
    /// Meta-iterations.
    #[arg(long, default_value_t = 60)]
    iterations: usize,
    /// Simulated people of the synthetic world over the items.
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// Seed of the world and of meta-training (same items and seed: the same bundle).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Outer loop: fomaml, reptile or cavia.
    #[arg(long, default_value = "fomaml", value_parser = parse_algorithm)]
    algorithm: meta::Algorithm,
    /// Engine: auto, gpu or cpu.
    #[arg(long, default_value = "cpu", value_parser = parse_engine)]
    engine: Preference,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn parse_algorithm(s: &str) -> Result<meta::Algorithm, String> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| format!("expected fomaml, reptile or cavia, found {s:?}"))
}

fn parse_engine(s: &str) -> Result<Preference, String> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| format!("expected auto, gpu or cpu, found {s:?}"))
}

/// Reads a catalog of items, JSON when the file name ends in `.json`, else CSV.
fn read_items(path: &Path) -> Result<crate::data::ItemCatalog, crate::data::DataError> {
    let bytes = std::fs::read(path).map_err(|source| crate::data::DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        crate::data::read_items_json(&bytes, path)
    } else {
        crate::data::read_items_csv(&bytes, path)
    }
}

#[derive(Serialize)]
struct BundleOutput {
    out: PathBuf,
    items: usize,
    categories: usize,
    embedding_width: usize,
    meta_iterations: usize,
    /// Mean reward per round over the last 10 meta-iterations.
    final_mean_reward: f32,
    engine: String,
}

/// `metarec bundle`.
pub fn run_bundle(a: BundleArgs) -> Result<(), Box<dyn std::error::Error>> {
    let items = read_items(&a.items)?;
    let cfg = MetaConfig {
        iterations: a.iterations,
        seed: a.seed as u32,
        algorithm: a.algorithm,
        adapt: crate::session::AdaptConfig {
            adapts: a.algorithm.adapts(),
            ..crate::session::AdaptConfig::default()
        },
        ..MetaConfig::default()
    };
    let (engine, history, mut bundle, trained_on) = match &a.ratings {
        None => over_world(&a, &items, &cfg)?,
        Some(ratings) => over_ratings(&a, ratings, &items, &cfg)?,
    };
    let algorithm = serde_json::to_value(a.algorithm)?;
    record_provenance(
        &mut bundle,
        algorithm.as_str().unwrap_or_default(),
        &trained_on,
    )?;
    bundle.write(&a.out)?;
    let last = &history[history.len().saturating_sub(10)..];
    let out = BundleOutput {
        out: a.out.clone(),
        items: items.catalog.len(),
        categories: items.catalog.genres.len(),
        embedding_width: items.embedding.as_ref().map_or(0, |e| e.width),
        meta_iterations: history.len(),
        final_mean_reward: last.iter().map(|p| p.mean_reward).sum::<f32>()
            / last.len().max(1) as f32,
        engine: engine.info().engine,
    };
    super::print_output(a.json, &out, || {
        format!(
            "wrote {}: {} items, {} categories, embedding width {}, {} meta-iterations on {} (final reward {:.3})\n",
            out.out.display(),
            out.items,
            out.categories,
            out.embedding_width,
            out.meta_iterations,
            out.engine,
            out.final_mean_reward
        )
    })?;
    Ok(())
}

type Trained = (AnyEngine, Vec<meta::MetaProgress>, Bundle, String);

/// Runs `cfg.iterations` meta-iterations over `tasks(iteration)`, reporting every tenth.
fn meta_train<T: crate::data::UserTask>(
    engine: &mut AnyEngine,
    cfg: &MetaConfig,
    tasks: impl Fn(usize) -> Vec<T>,
) -> Result<Vec<meta::MetaProgress>, crate::engine::EngineError> {
    let mut history = Vec::with_capacity(cfg.iterations);
    for it in 0..cfg.iterations {
        let p = pollster::block_on(meta::meta_step(engine, tasks(it), cfg, it))?;
        if (it + 1) % 10 == 0 || it + 1 == cfg.iterations {
            eprintln!("iteration {:>4}  reward {:.3}", it + 1, p.mean_reward);
        }
        history.push(p);
    }
    Ok(history)
}

/// Meta-training on a synthetic world over the items.
fn over_world(
    a: &BundleArgs,
    items: &crate::data::ItemCatalog,
    cfg: &MetaConfig,
) -> Result<Trained, Box<dyn std::error::Error>> {
    let world = crate::data::WorldConfig {
        n_items: items.catalog.len(),
        n_users: a.users,
        style_dim: 4,
        seed: a.seed,
    };
    let setup = SyntheticSetup::over_items(items, world, &PolicyShape::default(), cfg)?;
    let (mut engine, _) = pollster::block_on(AnyEngine::new(&setup.model, a.engine))?;
    engine.set_items(&setup.items)?;
    let history = meta_train(&mut engine, cfg, |it| setup.tasks(cfg, it))?;
    let bundle = pollster::block_on(setup.bundle(&mut engine, cfg.adapt))?;
    let trained_on = format!(
        "synthetic world over {} ({} items, {} simulated people, seed {})",
        a.items.display(),
        items.catalog.len(),
        a.users,
        a.seed
    );
    Ok((engine, history, bundle, trained_on))
}

/// Meta-training on the people who rated the items, as `metarec train --stages meta` on a
/// dataset (their split's training users, the fine-tuned rating network as the start).
fn over_ratings(
    a: &BundleArgs,
    ratings: &Path,
    items: &crate::data::ItemCatalog,
    cfg: &MetaConfig,
) -> Result<Trained, Box<dyn std::error::Error>> {
    if items.embedding.is_some() {
        return Err(format!(
            "{}: the items' own embedding is not used with --ratings: leave out the embedding columns",
            a.items.display()
        )
        .into());
    }
    let dataset = crate::data::load_generic_over(
        ratings,
        &crate::data::CsvOptions::default(),
        items.catalog.clone(),
    )?;
    let finetune = crate::finetune::FinetuneConfig::default();
    let setup = meta::DatasetSetup::new(&dataset, a.seed, &finetune, &PolicyShape::default(), cfg)?;
    let (mut engine, _) = pollster::block_on(AnyEngine::new(&setup.model, a.engine))?;
    engine.set_items(&setup.vectors.values)?;
    engine.set_params(&setup.start)?;
    let history = meta_train(&mut engine, cfg, |it| setup.tasks(&dataset, cfg, it))?;
    let policy = pollster::block_on(Policy::from_engine(
        &mut engine,
        setup.vectors.values.clone(),
        cfg.adapt,
    ))?
    .with_parts(setup.vectors.parts());
    let mut bundle = Bundle::from_catalog(&dataset.catalog, &setup.train_ratings);
    policy.store(&mut bundle)?;
    let trained_on = format!(
        "{} ratings of {} people in {} over {} ({} training people, seed {})",
        dataset.ratings.len(),
        dataset.n_users(),
        ratings.display(),
        a.items.display(),
        setup.split.train.len(),
        a.seed
    );
    Ok((engine, history, bundle, trained_on))
}

/// Adds `algorithm` and `trained_on` to the bundle's policy configuration (JSON; readers of
/// the policy ignore them).
fn record_provenance(
    bundle: &mut Bundle,
    algorithm: &str,
    trained_on: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut config: serde_json::Value =
        serde_json::from_str(bundle.config.as_deref().unwrap_or("{}"))?;
    if let Some(obj) = config.as_object_mut() {
        obj.insert("algorithm".into(), algorithm.into());
        obj.insert("trained_on".into(), trained_on.into());
    }
    bundle.config = Some(serde_json::to_string(&config)?);
    Ok(())
}

/// Arguments of `metarec inspect`.
#[derive(clap::Args)]
pub struct InspectArgs {
    /// A bundle file.
    file: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct PolicySummary {
    format: String,
    parameters: usize,
    /// What a person's reactions adapt: "context" or "network".
    adapts: String,
}

#[derive(Serialize)]
struct Inspection {
    version: u32,
    items: usize,
    categories: usize,
    /// Columns of the policy's item vectors (of the item features without a policy).
    item_vector_width: usize,
    policy: Option<PolicySummary>,
    /// As recorded by `metarec bundle`; else what the policy adapts tells ("cavia" or
    /// "fomaml or reptile"); null without a policy.
    algorithm: Option<String>,
    /// As recorded by `metarec bundle`; null when the bundle does not say.
    trained_on: Option<String>,
}

/// `metarec inspect`.
pub fn run_inspect(a: InspectArgs) -> Result<(), Box<dyn std::error::Error>> {
    let bundle = Bundle::read(&a.file)?;
    let recorded: serde_json::Value = bundle
        .config
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    let text = |k: &str| recorded.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let policy = match bundle.config {
        Some(_) => Some(Policy::from_bundle(&bundle)?),
        None => None,
    };
    let adapts = policy.as_ref().map(|p| {
        serde_json::to_value(p.adapt.adapts)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    });
    let out = Inspection {
        version: BUNDLE_VERSION,
        items: bundle.catalog.len(),
        categories: bundle.catalog.genres.len(),
        item_vector_width: match &policy {
            Some(p) => p.model.output,
            None => bundle.features.as_ref().map_or(0, |f| f.layout.dim()),
        },
        algorithm: text("algorithm").or_else(|| {
            adapts.as_deref().map(|a| {
                if a == "context" {
                    "cavia".into()
                } else {
                    "fomaml or reptile".into()
                }
            })
        }),
        trained_on: text("trained_on"),
        policy: policy.as_ref().map(|p| PolicySummary {
            format: text("format").unwrap_or_default(),
            parameters: p.params.len(),
            adapts: adapts.clone().unwrap_or_default(),
        }),
    };
    super::print_output(a.json, &out, || {
        let mut s = format!(
            "{}: bundle version {}, {} items, {} categories, item vectors of {} columns\n",
            a.file.display(),
            out.version,
            out.items,
            out.categories,
            out.item_vector_width
        );
        match &out.policy {
            Some(p) => s.push_str(&format!(
                "policy {} ({} parameters, adapts the {}), algorithm {}, trained on {}\n",
                p.format,
                p.parameters,
                p.adapts,
                out.algorithm.as_deref().unwrap_or("unknown"),
                out.trained_on.as_deref().unwrap_or("(not recorded)")
            )),
            None => s.push_str("no policy\n"),
        }
        s
    })?;
    Ok(())
}
