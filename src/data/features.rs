//! Item features: genre multi-hot, normalised release year (with a known-year flag),
//! popularity (log count), and a slot for text embeddings filled in later by an encoder.
use super::dataset::{Catalog, Rating};
use super::error::DataError;
use std::ops::Range;

/// Which columns of an [`ItemFeatures`] row hold what. Columns are, in order: one per genre,
/// year, year-known flag, popularity, then the text embedding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureLayout {
    /// Genre multi-hot columns (one per catalog genre).
    pub genres: Range<usize>,
    /// Release year scaled to 0..=1 over the catalog's years (0 when unknown).
    pub year: usize,
    /// 1 when the year is known, else 0.
    pub year_known: usize,
    /// ln(1 + ratings) / ln(1 + max ratings), in 0..=1.
    pub popularity: usize,
    /// Text embedding columns (empty until [`ItemFeatures::set_text_embeddings`]).
    pub text: Range<usize>,
}

impl FeatureLayout {
    /// The layout for `n_genres` genres and a text embedding of `text_dim` columns.
    pub fn new(n_genres: usize, text_dim: usize) -> Self {
        let year = n_genres;
        FeatureLayout {
            genres: 0..n_genres,
            year,
            year_known: year + 1,
            popularity: year + 2,
            text: year + 3..year + 3 + text_dim,
        }
    }

    /// Columns per row.
    pub fn dim(&self) -> usize {
        self.text.end
    }
}

/// A dense row-major item feature matrix, one row per dense item index.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemFeatures {
    /// Column meanings.
    pub layout: FeatureLayout,
    /// `n_items * layout.dim()` values, row-major.
    pub values: Vec<f32>,
}

impl ItemFeatures {
    /// Builds features for every catalog item; popularity counts `ratings` (pass training
    /// ratings only to keep test data out of the features).
    pub fn build(catalog: &Catalog, ratings: &[Rating]) -> Self {
        let layout = FeatureLayout::new(catalog.genres.len(), 0);
        let dim = layout.dim();
        let mut counts = vec![0u32; catalog.len()];
        for r in ratings {
            if let Some(c) = counts.get_mut(r.item as usize) {
                *c += 1;
            }
        }
        let max_count = counts.iter().copied().max().unwrap_or(0);
        let years = catalog.items.iter().filter_map(|m| m.year);
        let (lo, hi) = years.fold((i32::MAX, i32::MIN), |(lo, hi), y| (lo.min(y), hi.max(y)));
        let mut values = vec![0f32; catalog.len() * dim];
        for (i, meta) in catalog.items.iter().enumerate() {
            let row = &mut values[i * dim..(i + 1) * dim];
            for &g in &meta.genres {
                if let Some(v) = row.get_mut(g as usize) {
                    *v = 1.0;
                }
            }
            if let Some(y) = meta.year {
                row[layout.year] = if hi > lo {
                    (y - lo) as f32 / (hi - lo) as f32
                } else {
                    0.0
                };
                row[layout.year_known] = 1.0;
            }
            if max_count > 0 {
                row[layout.popularity] =
                    ((1.0 + counts[i] as f64).ln() / (1.0 + max_count as f64).ln()) as f32;
            }
        }
        ItemFeatures { layout, values }
    }

    /// Number of rows.
    pub fn n_items(&self) -> usize {
        self.values
            .len()
            .checked_div(self.layout.dim())
            .unwrap_or(0)
    }

    /// The feature row of dense item `item` (empty when out of range).
    pub fn row(&self, item: u32) -> &[f32] {
        let dim = self.layout.dim();
        let start = item as usize * dim;
        self.values.get(start..start + dim).unwrap_or(&[])
    }

    /// Fills the text-embedding slot with `dim` columns per item (`values` row-major,
    /// `n_items * dim` long), replacing any previous embedding.
    pub fn set_text_embeddings(&mut self, dim: usize, values: &[f32]) -> Result<(), DataError> {
        let n = self.n_items();
        if values.len() != n * dim {
            return Err(DataError::Argument(format!(
                "text embeddings: expected {n} x {dim} = {} values, found {}",
                n * dim,
                values.len()
            )));
        }
        let old = self.layout.dim();
        let base = self.layout.text.start;
        let layout = FeatureLayout::new(self.layout.genres.len(), dim);
        let mut out = Vec::with_capacity(n * layout.dim());
        for i in 0..n {
            out.extend_from_slice(&self.values[i * old..i * old + base]);
            out.extend_from_slice(&values[i * dim..(i + 1) * dim]);
        }
        self.layout = layout;
        self.values = out;
        Ok(())
    }
}
