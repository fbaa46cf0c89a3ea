//! `metarec embed`: item text embeddings (all-MiniLM-L6-v2, see [`crate::encoder`]) for a
//! dataset's catalog, projected by PCA to the model's input width, written as safetensors.
//! Needs the `encoder` feature (`cargo run --release --features cli,encoder -- embed ...`).
use std::path::PathBuf;

/// Arguments of `metarec embed`.
#[derive(clap::Args)]
pub struct Args {
    /// Dataset directory or file (as `metarec data`), e.g. ../shared/data/ml-100k.
    #[arg(long)]
    data: PathBuf,
    /// Output safetensors file: tensors `raw` (items x 384), `projected` (items x dim),
    /// `pca_mean`, `pca_components`; metadata `item_ids` (JSON), hashes, template.
    #[arg(long)]
    out: PathBuf,
    /// A sentence-transformers model directory of the BERT family
    /// [default: ${METAREC_CACHE:-$HOME/.cache/metarec}/all-MiniLM-L6-v2, from scripts/fetch-encoder.sh].
    #[arg(long)]
    encoder: Option<PathBuf>,
    /// Projected width [default: the reference policy's input width, 128].
    #[arg(long)]
    dim: Option<usize>,
    /// Texts per encoder batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Do not read or write the embedding cache.
    #[arg(long)]
    no_cache: bool,
}

/// The cache root: `$METAREC_CACHE`, else `$HOME/.cache/metarec`.
#[cfg(feature = "encoder")]
fn cache_root() -> PathBuf {
    std::env::var_os("METAREC_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/metarec")
        })
}

/// Runs `metarec embed`.
#[cfg(feature = "encoder")]
pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    use crate::encoder::{embed_catalog, write_safetensors, Pca};
    use std::time::Instant;
    let start = Instant::now();
    let dataset = crate::data::load(&args.data)?;
    let model_dir = args
        .encoder
        .unwrap_or_else(|| cache_root().join("all-MiniLM-L6-v2"));
    let dim = args
        .dim
        .unwrap_or(crate::model::ModelConfig::reference_policy().input);
    let bar = indicatif::ProgressBar::new(dataset.catalog.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "embedding {pos}/{len} items [{bar:30}] {elapsed} (eta {eta})",
        )?
        .progress_chars("=> "),
    );
    let cache = (!args.no_cache).then(|| cache_root().join("embeddings"));
    let emb = embed_catalog(
        &model_dir,
        &dataset.catalog,
        args.batch,
        cache.as_deref(),
        &mut |done, _| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    let embedded = start.elapsed();
    let n = dataset.catalog.len();
    let k = dim.min(emb.dim).min(n);
    // The PCA is cached next to the embeddings (same key, plus the width).
    let pca_file = emb
        .cache_file
        .as_ref()
        .map(|f| f.with_extension(format!("pca{k}.safetensors")));
    let pca = match pca_file.as_deref().map(Pca::load) {
        Some(Ok(p)) if p.dim == emb.dim && p.k() == k => p,
        _ => {
            let p = Pca::fit(&emb.values, emb.dim, k, 50)?;
            if let Some(f) = &pca_file {
                p.save(f)?;
            }
            p
        }
    };
    let projected = pca.project(&emb.values)?;
    let total_var: f32 = {
        let mean: Vec<f32> = pca.mean.clone();
        emb.values
            .chunks_exact(emb.dim)
            .map(|r| {
                r.iter()
                    .zip(&mean)
                    .map(|(x, m)| (x - m).powi(2))
                    .sum::<f32>()
            })
            .sum::<f32>()
            / n as f32
    };
    let kept: f32 = pca.variances.iter().sum();
    let meta = [
        (
            "item_ids",
            serde_json::to_string(dataset.catalog.ids.ids())?,
        ),
        ("model_hash", format!("{:016x}", emb.model_hash)),
        ("catalog_hash", format!("{:016x}", emb.catalog_hash)),
        ("encoder", model_dir.display().to_string()),
        (
            "template",
            "{title} ({year}). Genres: {genres}.".to_string(),
        ),
        (
            "projection",
            "projected = (raw - pca_mean) @ pca_components^T".to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    write_safetensors(
        &args.out,
        &[
            ("raw", vec![n, emb.dim], &emb.values),
            ("projected", vec![n, k], &projected),
            pca.tensors()[0].clone(),
            pca.tensors()[1].clone(),
            pca.tensors()[2].clone(),
        ],
        meta,
    )?;
    println!(
        "{n} items x {} -> PCA {k} ({:.1}% of variance) in {:.2} s ({}); wrote {}",
        emb.dim,
        100.0 * kept / total_var.max(f32::MIN_POSITIVE),
        start.elapsed().as_secs_f64(),
        if emb.from_cache {
            format!("embeddings from cache in {:.2} s", embedded.as_secs_f64())
        } else {
            format!("encoded in {:.2} s", embedded.as_secs_f64())
        },
        args.out.display()
    );
    Ok(())
}

/// Runs `metarec embed` (this build lacks the encoder).
#[cfg(not(feature = "encoder"))]
pub fn run(_args: Args) -> Result<(), Box<dyn std::error::Error>> {
    Err("metarec was built without the `encoder` feature: run scripts/fetch-encoder.sh, then cargo run --release --features cli,encoder -- embed ...".into())
}
