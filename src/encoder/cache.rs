//! Embedding a whole catalog through an on-disk cache keyed by the model's content hash and the
//! catalog's hash (its ids and item texts), so a second run does not load the model at all.
use super::{content_hash, item_text, read, Encoder, EncoderError, REQUIRED_FILES};
use crate::data::Catalog;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use std::path::{Path, PathBuf};

/// Raw (unprojected) embeddings of every catalog item.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogEmbeddings {
    /// Embedding width.
    pub dim: usize,
    /// `n_items * dim` values, row-major by dense item index; rows are unit-length.
    pub values: Vec<f32>,
    /// Content hash of the model directory's config, tokenizer and weights.
    pub model_hash: u64,
    /// Hash of the catalog's ids and item texts.
    pub catalog_hash: u64,
    /// The cache file read or written, if a cache directory was given.
    pub cache_file: Option<PathBuf>,
    /// Whether the values came from the cache.
    pub from_cache: bool,
}

/// The model directory's content hash, equal to [`Encoder::hash`] (reads the three files).
pub fn model_hash(dir: &Path) -> Result<u64, EncoderError> {
    let files: Vec<Vec<u8>> = REQUIRED_FILES
        .iter()
        .map(|f| read(&dir.join(f)))
        .collect::<Result<_, _>>()?;
    Ok(content_hash(&[&files[0], &files[1], &files[2]]))
}

/// Item texts of the whole catalog ([`item_text`]) and their hash.
pub fn catalog_texts(catalog: &Catalog) -> Result<(Vec<String>, u64), EncoderError> {
    let texts: Vec<String> = (0..catalog.len())
        .map(|i| item_text(catalog, i))
        .collect::<Result<_, _>>()?;
    let mut joined = String::new();
    for (id, t) in catalog.ids.ids().iter().zip(&texts) {
        joined.push_str(id);
        joined.push('\t');
        joined.push_str(t);
        joined.push('\n');
    }
    Ok((texts, content_hash(&[joined.as_bytes()])))
}

/// Reads the f32 tensor `name` of a safetensors file: its shape and values.
pub fn read_safetensors_f32(
    path: &Path,
    name: &str,
) -> Result<(Vec<usize>, Vec<f32>), EncoderError> {
    let bytes = read(path)?;
    let bad = |m: String| EncoderError::Invalid {
        path: path.to_path_buf(),
        message: m,
    };
    let t = crate::data::bundle::Tensor::from_safetensors(&bytes, name).map_err(bad)?;
    Ok((t.shape, t.values))
}

fn read_cache(path: &Path, n: usize) -> Option<(usize, Vec<f32>)> {
    match read_safetensors_f32(path, "embeddings").ok()? {
        (shape, values) if shape.len() == 2 && shape[0] == n && shape[1] > 0 => {
            Some((shape[1], values))
        }
        _ => None,
    }
}

/// Writes f32 tensors (name, shape, values) and string metadata to a safetensors file,
/// atomically (a temporary file renamed into place).
pub fn write_safetensors(
    path: &Path,
    tensors: &[(&str, Vec<usize>, &[f32])],
    metadata: std::collections::HashMap<String, String>,
) -> Result<(), EncoderError> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            TensorView::new(Dtype::F32, shape.clone(), b)
                .map(|v| (name.to_string(), v))
                .map_err(|e| {
                    EncoderError::Argument(format!("{}: tensor {name}: {e}", path.display()))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let out = safetensors::serialize(views, Some(metadata))
        .map_err(|e| EncoderError::Argument(format!("{}: {e}", path.display())))?;
    let io = |source| EncoderError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, out).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Embeds every item of `catalog` with the encoder in `model_dir`, `batch` texts at a time,
/// calling `progress(done, total)` after each batch. With `cache_dir`, looks for
/// `{cache_dir}/{model_hash:016x}-{catalog_hash:016x}.safetensors` first (then the model is not
/// even loaded) and writes it after encoding. A cache file that cannot be read is recomputed.
pub fn embed_catalog(
    model_dir: &Path,
    catalog: &Catalog,
    batch: usize,
    cache_dir: Option<&Path>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<CatalogEmbeddings, EncoderError> {
    if catalog.is_empty() {
        return Err(EncoderError::Argument(
            "the catalog has no items to embed".into(),
        ));
    }
    let (texts, catalog_hash) = catalog_texts(catalog)?;
    let model_hash = model_hash(model_dir).map_err(|e| match e {
        EncoderError::Io { path, source } => EncoderError::Invalid {
            message: format!("{source}; expected a sentence-transformers model directory with {} (run scripts/fetch-encoder.sh)", REQUIRED_FILES.join(", ")),
            path,
        },
        e => e,
    })?;
    let cache_file =
        cache_dir.map(|d| d.join(format!("{model_hash:016x}-{catalog_hash:016x}.safetensors")));
    if let Some((dim, values)) = cache_file
        .as_deref()
        .and_then(|f| read_cache(f, texts.len()))
    {
        progress(texts.len(), texts.len());
        return Ok(CatalogEmbeddings {
            dim,
            values,
            model_hash,
            catalog_hash,
            cache_file,
            from_cache: true,
        });
    }
    let encoder = Encoder::load(model_dir)?;
    let mut values = Vec::with_capacity(texts.len() * encoder.dim());
    let batch = batch.max(1);
    for (b, chunk) in texts.chunks(batch).enumerate() {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let rows = encoder.encode(&refs).map_err(|e| match e {
            EncoderError::Text { index, message } => EncoderError::Text {
                index: b * batch + index,
                message,
            },
            e => e,
        })?;
        values.extend(rows);
        progress((b * batch + chunk.len()).min(texts.len()), texts.len());
    }
    let dim = encoder.dim();
    if let Some(f) = &cache_file {
        let meta = [
            ("model_hash", format!("{model_hash:016x}")),
            ("catalog_hash", format!("{catalog_hash:016x}")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        write_safetensors(f, &[("embeddings", vec![texts.len(), dim], &values)], meta)?;
    }
    Ok(CatalogEmbeddings {
        dim,
        values,
        model_hash: encoder.hash(),
        catalog_hash,
        cache_file,
        from_cache: false,
    })
}
