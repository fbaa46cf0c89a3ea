//! The bundle the browser loads: one binary file with a versioned header, the catalog, the item
//! feature matrix, optional model weights (safetensors, readable from PyTorch) and config, and
//! a CRC-32 checksum.
//!
//! Layout (all integers little-endian):
//!
//! | bytes  | content                                                      |
//! |--------|--------------------------------------------------------------|
//! | 8      | magic `MRBUNDL\0`                                            |
//! | 4      | format version (u32, currently [`BUNDLE_VERSION`])           |
//! | 8      | total file length in bytes (u64)                             |
//! | ...    | sections: 4-byte tag, u64 payload length, payload            |
//! | 4      | CRC-32 (IEEE) of every byte before it                        |
//!
//! Sections: `CATL` catalog (required), `FEAT` features, `WGHT` safetensors bytes, `CONF`
//! UTF-8 config text (JSON by convention). Each appears at most once. Strings are a u32 byte
//! length and UTF-8 bytes. Reading checks everything before it allocates or indexes.
use super::dataset::{Catalog, IdMap, ItemMeta};
use super::error::DataError;
use super::features::{FeatureLayout, ItemFeatures};

/// The bundle format version this build writes and reads.
pub const BUNDLE_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"MRBUNDL\0";
const HEADER_LEN: usize = 8 + 4 + 8;
const CRC_LEN: usize = 4;
/// Bound on genre and text-embedding columns a reader accepts (keeps sizes in range on wasm32).
const MAX_FEATURE_COLUMNS: usize = 1 << 16;

/// What the browser loads: catalog, features, and optionally weights and config.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bundle {
    /// Item ids, titles, genres and years.
    pub catalog: Catalog,
    /// The item feature matrix (rows follow the catalog's dense item order).
    pub features: Option<ItemFeatures>,
    /// Model weights as a safetensors file image.
    pub weights: Option<Vec<u8>>,
    /// Model / training configuration text (JSON by convention).
    pub config: Option<String>,
}

/// A dense f32 tensor read from the weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f32>,
}

impl Tensor {
    /// The f32 tensor `name` of a safetensors image (the error says what is wrong, naming the
    /// tensor).
    pub fn from_safetensors(image: &[u8], name: &str) -> Result<Self, String> {
        let st = safetensors::SafeTensors::deserialize(image)
            .map_err(|e| format!("not a safetensors image: {e}"))?;
        let view = st.tensor(name).map_err(|e| format!("tensor {name}: {e}"))?;
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(format!(
                "tensor {name}: expected dtype F32, found {:?}",
                view.dtype()
            ));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Tensor {
            shape: view.shape().to_vec(),
            values,
        })
    }
}

fn err(msg: impl Into<String>) -> DataError {
    DataError::Bundle(msg.into())
}

impl Bundle {
    /// A bundle of a catalog and its item features (popularity counted over `ratings`,
    /// e.g. the training ratings), without weights or config.
    pub fn from_catalog(catalog: &Catalog, ratings: &[super::dataset::Rating]) -> Self {
        Bundle {
            features: Some(ItemFeatures::build(catalog, ratings)),
            catalog: catalog.clone(),
            weights: None,
            config: None,
        }
    }

    /// Stores `tensors` (name, shape, row-major f32 values) as the safetensors weights.
    pub fn set_weights(&mut self, tensors: &[(&str, Vec<usize>, &[f32])]) -> Result<(), DataError> {
        let bytes: Vec<Vec<u8>> = tensors
            .iter()
            .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
            .collect();
        let mut views = Vec::with_capacity(tensors.len());
        for ((name, shape, _), data) in tensors.iter().zip(&bytes) {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .map_err(|e| err(format!("weights: tensor {name}: {e}")))?;
            views.push((*name, view));
        }
        let image =
            safetensors::serialize(views, None).map_err(|e| err(format!("weights: {e}")))?;
        self.weights = Some(image);
        Ok(())
    }

    /// The weights tensor `name`; `Ok(None)` when the bundle has no weights.
    pub fn weight(&self, name: &str) -> Result<Option<Tensor>, DataError> {
        let Some(image) = &self.weights else {
            return Ok(None);
        };
        Tensor::from_safetensors(image, name)
            .map(Some)
            .map_err(|m| err(format!("weights: {m}")))
    }

    /// Serialises the bundle.
    pub fn to_bytes(&self) -> Result<Vec<u8>, DataError> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&BUNDLE_VERSION.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // total length, patched below
        section(&mut out, b"CATL", &encode_catalog(&self.catalog)?);
        if let Some(f) = &self.features {
            if f.n_items() != self.catalog.len() {
                return Err(err(format!(
                    "features have {} rows but the catalog has {} items",
                    f.n_items(),
                    self.catalog.len()
                )));
            }
            section(&mut out, b"FEAT", &encode_features(f)?);
        }
        if let Some(w) = &self.weights {
            section(&mut out, b"WGHT", w);
        }
        if let Some(c) = &self.config {
            section(&mut out, b"CONF", c.as_bytes());
        }
        let total = (out.len() + CRC_LEN) as u64;
        out[12..20].copy_from_slice(&total.to_le_bytes());
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Parses and validates a bundle: rejects wrong magic, other versions, truncation,
    /// checksum mismatches and inconsistent sections with a [`DataError::Bundle`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DataError> {
        if bytes.len() < HEADER_LEN + CRC_LEN {
            return Err(err(format!(
                "truncated: {} bytes, a bundle has at least {}",
                bytes.len(),
                HEADER_LEN + CRC_LEN
            )));
        }
        if &bytes[..8] != MAGIC {
            return Err(err("not a metarec bundle (wrong magic bytes)"));
        }
        let mut head = Reader::new(&bytes[8..HEADER_LEN], "header");
        let version = head.u32()?;
        if version != BUNDLE_VERSION {
            return Err(err(format!(
                "unsupported version {version}: this build reads version {BUNDLE_VERSION}"
            )));
        }
        let total = head.u64()?;
        if total != bytes.len() as u64 {
            return Err(err(format!(
                "{} bytes, but the header says {total}: the file is {}",
                bytes.len(),
                if (bytes.len() as u64) < total {
                    "truncated"
                } else {
                    "followed by extra data"
                }
            )));
        }
        let (body, crc) = bytes.split_at(bytes.len() - CRC_LEN);
        let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        let actual = crc32fast::hash(body);
        if stored != actual {
            return Err(err(format!(
                "checksum mismatch (stored {stored:08x}, computed {actual:08x}): the file is corrupted"
            )));
        }
        let mut r = Reader::new(&body[HEADER_LEN..], "section table");
        let mut bundle = Bundle::default();
        let mut seen: Vec<[u8; 4]> = Vec::new();
        while !r.is_empty() {
            let tag: [u8; 4] = r.bytes(4)?.try_into().map_err(|_| err("bad tag"))?;
            let len = usize::try_from(r.u64()?).map_err(|_| err("section too large"))?;
            let payload = r.bytes(len)?;
            if seen.contains(&tag) {
                return Err(err(format!("section {} appears twice", tag_name(&tag))));
            }
            seen.push(tag);
            match &tag {
                b"CATL" => bundle.catalog = decode_catalog(payload)?,
                b"FEAT" => bundle.features = Some(decode_features(payload)?),
                b"WGHT" => {
                    safetensors::SafeTensors::deserialize(payload)
                        .map_err(|e| err(format!("weights section: {e}")))?;
                    bundle.weights = Some(payload.to_vec());
                }
                b"CONF" => {
                    let text = std::str::from_utf8(payload)
                        .map_err(|_| err("config section: expected UTF-8 text"))?;
                    bundle.config = Some(text.to_owned());
                }
                _ => return Err(err(format!("unknown section {}", tag_name(&tag)))),
            }
        }
        if !seen.contains(b"CATL") {
            return Err(err("missing catalog section CATL"));
        }
        if let Some(f) = &bundle.features {
            if f.n_items() != bundle.catalog.len()
                || f.layout.genres.len() != bundle.catalog.genres.len()
            {
                return Err(err(format!(
                    "features ({} rows, {} genres) do not match the catalog ({} items, {} genres)",
                    f.n_items(),
                    f.layout.genres.len(),
                    bundle.catalog.len(),
                    bundle.catalog.genres.len()
                )));
            }
        }
        Ok(bundle)
    }

    /// Writes the bundle to `path` (through a `.tmp` file renamed into place).
    pub fn write(&self, path: &std::path::Path) -> Result<(), DataError> {
        let bytes = self.to_bytes()?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        let io = |source| DataError::Io {
            path: path.to_path_buf(),
            source,
        };
        std::fs::write(&tmp, &bytes).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Reads and validates a bundle file.
    pub fn read(path: &std::path::Path) -> Result<Self, DataError> {
        let bytes = std::fs::read(path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Bundle::from_bytes(&bytes).map_err(|e| match e {
            DataError::Bundle(m) => DataError::Bundle(format!("{}: {m}", path.display())),
            other => other,
        })
    }
}

fn tag_name(tag: &[u8; 4]) -> String {
    format!("{:?}", String::from_utf8_lossy(tag))
}

fn section(out: &mut Vec<u8>, tag: &[u8; 4], payload: &[u8]) {
    out.extend_from_slice(tag);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(payload);
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), DataError> {
    let len = u32::try_from(s.len()).map_err(|_| err("string longer than 4 GiB"))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_len(out: &mut Vec<u8>, n: usize) -> Result<(), DataError> {
    let n = u32::try_from(n).map_err(|_| err("more than 2^32 entries"))?;
    out.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

fn encode_catalog(c: &Catalog) -> Result<Vec<u8>, DataError> {
    let mut out = Vec::new();
    put_len(&mut out, c.genres.len())?;
    for g in &c.genres {
        put_str(&mut out, g)?;
    }
    put_len(&mut out, c.items.len())?;
    for (id, meta) in c.ids.ids().iter().zip(&c.items) {
        put_str(&mut out, id)?;
        put_str(&mut out, &meta.title)?;
        match meta.year {
            Some(y) => {
                out.push(1);
                out.extend_from_slice(&y.to_le_bytes());
            }
            None => {
                out.push(0);
                out.extend_from_slice(&0i32.to_le_bytes());
            }
        }
        out.push(u8::from(meta.has_metadata));
        let n = u16::try_from(meta.genres.len()).map_err(|_| err("item with > 65535 genres"))?;
        out.extend_from_slice(&n.to_le_bytes());
        for g in &meta.genres {
            out.extend_from_slice(&g.to_le_bytes());
        }
    }
    Ok(out)
}

fn decode_catalog(payload: &[u8]) -> Result<Catalog, DataError> {
    let mut r = Reader::new(payload, "catalog section");
    let n_genres = r.count(4)?;
    let mut genres = Vec::with_capacity(n_genres);
    for _ in 0..n_genres {
        genres.push(r.string()?);
    }
    // Each item takes at least 4 + 4 + 5 + 1 + 2 bytes.
    let n_items = r.count(16)?;
    let mut ids = IdMap::new();
    let mut items = Vec::with_capacity(n_items);
    for i in 0..n_items {
        let id = r.string()?;
        if ids.index(&id).is_some() {
            return Err(err(format!(
                "catalog section: item id {id:?} appears twice"
            )));
        }
        ids.insert(&id)?;
        let title = r.string()?;
        let known = r.u8()?;
        let y = r.i32()?;
        let has_metadata = r.u8()? != 0;
        let n = usize::from(r.u16()?);
        let mut g = Vec::with_capacity(n.min(r.remaining() / 2));
        for _ in 0..n {
            let v = r.u16()?;
            if usize::from(v) >= n_genres {
                return Err(err(format!(
                    "catalog section: item {i} has genre {v}, but there are {n_genres} genres"
                )));
            }
            g.push(v);
        }
        items.push(ItemMeta {
            title,
            year: (known != 0).then_some(y),
            genres: g,
            has_metadata,
        });
    }
    r.finish()?;
    Ok(Catalog { ids, genres, items })
}

fn encode_features(f: &ItemFeatures) -> Result<Vec<u8>, DataError> {
    let mut out = Vec::with_capacity(12 + 4 * f.values.len());
    put_len(&mut out, f.layout.genres.len())?;
    put_len(&mut out, f.layout.text.len())?;
    put_len(&mut out, f.n_items())?;
    for v in &f.values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

fn decode_features(payload: &[u8]) -> Result<ItemFeatures, DataError> {
    let mut r = Reader::new(payload, "features section");
    let n_genres = r.u32()? as usize;
    let text_dim = r.u32()? as usize;
    let n_items = r.u32()? as usize;
    if n_genres > MAX_FEATURE_COLUMNS || text_dim > MAX_FEATURE_COLUMNS {
        return Err(err(format!(
            "features section: {n_genres} genre and {text_dim} text columns; at most {MAX_FEATURE_COLUMNS} each"
        )));
    }
    let layout = FeatureLayout::new(n_genres, text_dim);
    let n_values = n_items
        .checked_mul(layout.dim())
        .filter(|&n| n.checked_mul(4) == Some(r.remaining()))
        .ok_or_else(|| {
            err(format!(
                "features section: {n_items} x {} values do not fit its {} bytes",
                layout.dim(),
                r.remaining()
            ))
        })?;
    let values = r
        .bytes(n_values * 4)?
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(ItemFeatures { layout, values })
}

/// A bounds-checked little-endian reader over a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Reader {
            bytes,
            pos: 0,
            what,
        }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], DataError> {
        if n > self.remaining() {
            return Err(err(format!(
                "{}: truncated: {n} bytes needed at offset {}, {} left",
                self.what,
                self.pos,
                self.remaining()
            )));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DataError> {
        let b = self.bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DataError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DataError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DataError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, DataError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DataError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A u32 count of entries of at least `min_size` bytes each, checked against what is left.
    fn count(&mut self, min_size: usize) -> Result<usize, DataError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size) > self.remaining() {
            return Err(err(format!(
                "{}: {n} entries cannot fit in the {} bytes left",
                self.what,
                self.remaining()
            )));
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String, DataError> {
        let n = self.u32()? as usize;
        let b = self.bytes(n)?;
        std::str::from_utf8(b).map(str::to_owned).map_err(|_| {
            err(format!(
                "{}: expected UTF-8 text at offset {}",
                self.what,
                self.pos - n
            ))
        })
    }

    fn finish(&self) -> Result<(), DataError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(err(format!(
                "{}: {} unexpected trailing bytes",
                self.what,
                self.remaining()
            )))
        }
    }
}
