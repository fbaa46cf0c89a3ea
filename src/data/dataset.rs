//! The in-memory dataset every loader produces: dense ids with their maps, the item catalog,
//! the ratings, and the warnings raised while loading.
use super::error::DataError;
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;

/// A two-way map between a dataset's own ids and dense indices `0..len`, in first-seen order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap {
    ids: Vec<String>,
    index: HashMap<String, u32>,
}

impl IdMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The dense index of `id`, adding it if new.
    pub fn insert(&mut self, id: &str) -> Result<u32, DataError> {
        if let Some(&i) = self.index.get(id) {
            return Ok(i);
        }
        let i = u32::try_from(self.ids.len())
            .map_err(|_| DataError::Argument("more than 2^32 distinct ids".into()))?;
        self.ids.push(id.to_owned());
        self.index.insert(id.to_owned(), i);
        Ok(i)
    }

    /// The dense index of `id`, if known.
    pub fn index(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    /// The dataset's own id of dense index `i`, if in range.
    pub fn id(&self, i: u32) -> Option<&str> {
        self.ids.get(i as usize).map(String::as_str)
    }

    /// All ids, indexed by dense index.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// One rating, with dense user and item indices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rating {
    /// Dense user index.
    pub user: u32,
    /// Dense item index.
    pub item: u32,
    /// The rating value as given (checked finite and in the dataset's scale).
    pub value: f32,
    /// Seconds since the Unix epoch, when the file has timestamps.
    pub timestamp: Option<i64>,
}

/// What is known about one item.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ItemMeta {
    /// Title as given (MovieLens titles end with the year), or `item <id>` as a placeholder.
    pub title: String,
    /// Release year, when known.
    pub year: Option<i32>,
    /// Indices into [`Catalog::genres`].
    pub genres: Vec<u16>,
    /// False when the item appeared only in ratings and its title is a placeholder.
    pub has_metadata: bool,
}

/// The item catalog: ids, genre vocabulary and per-item metadata (indexed by dense item index).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Catalog {
    /// Dataset item ids <-> dense item indices.
    pub ids: IdMap,
    /// Genre names; [`ItemMeta::genres`] index into this.
    pub genres: Vec<String>,
    /// Metadata, one per dense item index.
    pub items: Vec<ItemMeta>,
}

impl Catalog {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the catalog is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Adds an item with metadata; `Ok(None)` if the id is already present.
    pub(crate) fn add(&mut self, id: &str, meta: ItemMeta) -> Result<Option<u32>, DataError> {
        if self.ids.index(id).is_some() {
            return Ok(None);
        }
        let i = self.ids.insert(id)?;
        self.items.push(meta);
        Ok(Some(i))
    }

    /// The dense index of `id`, adding a placeholder entry (no metadata) if new.
    pub(crate) fn item_or_placeholder(&mut self, id: &str) -> Result<u32, DataError> {
        if let Some(i) = self.ids.index(id) {
            return Ok(i);
        }
        let i = self.ids.insert(id)?;
        self.items.push(ItemMeta {
            title: format!("item {id}"),
            year: None,
            genres: Vec::new(),
            has_metadata: false,
        });
        Ok(i)
    }
}

/// Kinds of warnings raised while loading. Warnings never drop data silently: each says what
/// was done and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// The same (user, item) pair was rated more than once; the latest by timestamp was kept.
    DuplicateRatings,
    /// Ratings for items absent from the metadata file; kept with a placeholder title.
    ItemsWithoutMetadata,
    /// Items in the metadata file that nobody rated; kept in the catalog.
    ItemsWithoutRatings,
    /// Users listed in the user file that have no ratings; kept.
    UsersWithoutRatings,
}

impl WarningKind {
    /// What a warning of this kind counts, in words (the duplicate-ratings warning says more:
    /// what was kept, and an example pair).
    fn gap(self) -> &'static str {
        match self {
            WarningKind::DuplicateRatings => "duplicate (user, item) rating(s)",
            WarningKind::ItemsWithoutMetadata => {
                "rated item(s) have no metadata; kept with placeholder titles"
            }
            WarningKind::ItemsWithoutRatings => {
                "catalog item(s) have no ratings; kept in the catalog"
            }
            WarningKind::UsersWithoutRatings => "listed user(s) have no ratings; kept",
        }
    }
}

/// A warning: what happened, how many times, in words.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Warning {
    /// The kind.
    pub kind: WarningKind,
    /// How many ratings, items or users it concerns.
    pub count: u64,
    /// A sentence naming the file and an example.
    pub message: String,
}

/// Which format a dataset was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Format {
    /// MovieLens 100K (`u.data`, `u.item`, `u.user`, `u.genre`).
    #[serde(rename = "movielens-100k")]
    MovieLens100K,
    /// MovieLens "latest"/20M/25M (`ratings.csv`, `movies.csv`).
    #[serde(rename = "movielens-csv")]
    MovieLensCsv,
    /// Generic `user,item,rating[,timestamp]` CSV/TSV.
    #[serde(rename = "generic-csv")]
    GenericCsv,
    /// Generated by the synthetic world.
    #[serde(rename = "synthetic")]
    Synthetic,
}

/// The range of valid rating values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RatingScale {
    /// Smallest valid rating.
    pub min: f32,
    /// Largest valid rating.
    pub max: f32,
}

/// A loaded dataset. Ratings are sorted by user, then time (ratings without timestamps keep
/// file order), then item; there is at most one rating per (user, item).
/// Fields are public for reading; datasets come from the loaders or the synthetic world
/// (editing `ratings` by hand would leave [`Dataset::user_ratings`] stale).
#[derive(Debug, Clone)]
pub struct Dataset {
    /// A short name (the directory or file name).
    pub name: String,
    /// The format it was read from.
    pub format: Format,
    /// The valid rating range.
    pub scale: RatingScale,
    /// Dataset user ids <-> dense user indices.
    pub users: IdMap,
    /// The item catalog.
    pub catalog: Catalog,
    /// The ratings (see the type's ordering guarantee).
    pub ratings: Vec<Rating>,
    /// Warnings raised while loading.
    pub warnings: Vec<Warning>,
    user_offsets: Vec<usize>,
}

impl Dataset {
    /// Number of users.
    pub fn n_users(&self) -> usize {
        self.users.len()
    }

    /// Number of items in the catalog.
    pub fn n_items(&self) -> usize {
        self.catalog.len()
    }

    /// The ratings of dense user `user` (empty when out of range), in time order.
    pub fn user_ratings(&self, user: u32) -> &[Rating] {
        let u = user as usize;
        match (self.user_offsets.get(u), self.user_offsets.get(u + 1)) {
            (Some(&a), Some(&b)) => &self.ratings[a..b],
            _ => &[],
        }
    }

    /// Whether every rating has a timestamp.
    pub fn has_timestamps(&self) -> bool {
        self.ratings.iter().all(|r| r.timestamp.is_some())
    }

    /// Builds a dataset from what a loader read from `source`: `ratings` in input order, their
    /// indices within `users` and `catalog`. Removes duplicate (user, item) pairs (keeping the
    /// latest by timestamp, later in input order on ties), sorts, and adds the standard warnings.
    pub(crate) fn from_parts(
        source: Source,
        users: IdMap,
        catalog: Catalog,
        ratings: Vec<Rating>,
    ) -> Result<Self, DataError> {
        let Source {
            name,
            format,
            scale,
            label: source_label,
        } = source;
        let mut warnings = Vec::new();
        if let Some(r) = ratings
            .iter()
            .find(|r| r.user as usize >= users.len() || r.item as usize >= catalog.len())
        {
            return Err(DataError::Argument(format!(
                "rating for user index {} / item index {} outside the id maps",
                r.user, r.item
            )));
        }
        // Stable sort keeps input order within a (user, item) group.
        let mut order: Vec<usize> = (0..ratings.len()).collect();
        order.sort_by_key(|&i| (ratings[i].user, ratings[i].item));
        let mut kept: Vec<Rating> = Vec::with_capacity(ratings.len());
        let mut duplicates = 0u64;
        let mut example = None;
        for &i in &order {
            let r = ratings[i];
            match kept.last_mut() {
                Some(last) if last.user == r.user && last.item == r.item => {
                    duplicates += 1;
                    example.get_or_insert((r.user, r.item));
                    if r.timestamp >= last.timestamp {
                        *last = r;
                    }
                }
                _ => kept.push(r),
            }
        }
        if let Some((u, i)) = example {
            warnings.push(Warning {
                kind: WarningKind::DuplicateRatings,
                count: duplicates,
                message: format!(
                    "{source_label}: {duplicates} duplicate (user, item) rating(s) dropped, the latest by timestamp kept (e.g. user {}, item {})",
                    users.id(u).unwrap_or("?"),
                    catalog.ids.id(i).unwrap_or("?")
                ),
            });
        }
        // Sort by user, then time, keeping input order for equal or missing times.
        let mut positions: HashMap<(u32, u32), usize> = HashMap::new();
        if !kept.iter().all(|r| r.timestamp.is_some()) {
            for (pos, r) in ratings.iter().enumerate() {
                positions.insert((r.user, r.item), pos);
            }
        }
        kept.sort_by_key(|r| {
            (
                r.user,
                r.timestamp,
                positions.get(&(r.user, r.item)).copied().unwrap_or(0),
                r.item,
            )
        });

        let mut rated = vec![false; catalog.len()];
        let mut user_offsets = vec![0usize; users.len() + 1];
        for r in &kept {
            rated[r.item as usize] = true;
            user_offsets[r.user as usize + 1] += 1;
        }
        for u in 0..users.len() {
            user_offsets[u + 1] += user_offsets[u];
        }
        // items and users kept despite a gap, and their ids
        let no_meta = if format != Format::GenericCsv && format != Format::Synthetic {
            (0..catalog.len())
                .filter(|&i| !catalog.items[i].has_metadata)
                .collect()
        } else {
            Vec::new()
        };
        let unrated = (0..catalog.len()).filter(|&i| !rated[i]).collect();
        let idle = (0..users.len())
            .filter(|&u| user_offsets[u] == user_offsets[u + 1])
            .collect();
        let (item_ids, user_ids) = (("item", &catalog.ids), ("user", &users));
        let gaps: [(WarningKind, Vec<usize>, (&str, &IdMap)); 3] = [
            (WarningKind::ItemsWithoutMetadata, no_meta, item_ids),
            (WarningKind::ItemsWithoutRatings, unrated, item_ids),
            (WarningKind::UsersWithoutRatings, idle, user_ids),
        ];
        for (kind, found, (noun, ids)) in gaps {
            let Some(&first) = found.first() else {
                continue;
            };
            warnings.push(Warning {
                kind,
                count: found.len() as u64,
                message: format!(
                    "{source_label}: {} {} (e.g. {noun} {})",
                    found.len(),
                    kind.gap(),
                    ids.id(first as u32).unwrap_or("?")
                ),
            });
        }
        Ok(Dataset {
            name,
            format,
            scale,
            users,
            catalog,
            ratings: kept,
            warnings,
            user_offsets,
        })
    }

    /// Summary statistics (what `metarec data` prints).
    pub fn summary(&self) -> Summary {
        let mut bins: Vec<(f32, u64)> = Vec::new();
        let mut likes = 0u64;
        let mut sum = 0f64;
        for r in &self.ratings {
            match bins.iter_mut().find(|(v, _)| *v == r.value) {
                Some((_, c)) => *c += 1,
                None => bins.push((r.value, 1)),
            }
            if r.value >= LIKE_THRESHOLD {
                likes += 1;
            }
            sum += f64::from(r.value);
        }
        bins.sort_by(|a, b| a.0.total_cmp(&b.0));
        let n = self.ratings.len() as f64;
        let cells = self.n_users() as f64 * self.n_items() as f64;
        let rated_items = {
            let mut seen = vec![false; self.n_items()];
            for r in &self.ratings {
                seen[r.item as usize] = true;
            }
            seen.iter().filter(|&&s| s).count()
        };
        Summary {
            name: self.name.clone(),
            format: self.format,
            users: self.n_users(),
            items: self.n_items(),
            rated_items,
            ratings: self.ratings.len(),
            density: if cells > 0.0 { n / cells } else { 0.0 },
            mean_rating: if n > 0.0 { sum / n } else { 0.0 },
            like_rate: if n > 0.0 { likes as f64 / n } else { 0.0 },
            histogram: bins
                .into_iter()
                .map(|(rating, count)| HistogramBin { rating, count })
                .collect(),
            genres: self.catalog.genres.len(),
            has_timestamps: self.has_timestamps(),
            warnings: self.warnings.clone(),
        }
    }
}

/// Where a loader's ratings come from, for [`Dataset::from_parts`].
pub(crate) struct Source {
    pub name: String,
    pub format: Format,
    pub scale: RatingScale,
    /// Names the source in warnings (e.g. the ratings file).
    pub label: String,
}

impl Source {
    /// Ratings of `format` and `scale` read from `file`; the dataset is named after `dir`.
    pub fn file(format: Format, scale: RatingScale, dir: &Path, file: &Path) -> Self {
        Source {
            name: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| dir.display().to_string()),
            format,
            scale,
            label: file.display().to_string(),
        }
    }
}

/// Ratings at or above this count as likes in summaries (the like-rate).
pub const LIKE_THRESHOLD: f32 = 4.0;

/// One bar of the rating histogram.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistogramBin {
    /// The rating value.
    pub rating: f32,
    /// How many ratings have it.
    pub count: u64,
}

/// Summary statistics of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Dataset name.
    pub name: String,
    /// Source format.
    pub format: Format,
    /// Number of users.
    pub users: usize,
    /// Number of catalog items.
    pub items: usize,
    /// Number of items with at least one rating.
    pub rated_items: usize,
    /// Number of ratings (after duplicate removal).
    pub ratings: usize,
    /// ratings / (users * items).
    pub density: f64,
    /// Mean rating.
    pub mean_rating: f64,
    /// Share of ratings >= [`LIKE_THRESHOLD`].
    pub like_rate: f64,
    /// Count per distinct rating value, ascending.
    pub histogram: Vec<HistogramBin>,
    /// Size of the genre vocabulary.
    pub genres: usize,
    /// Whether all ratings have timestamps.
    pub has_timestamps: bool,
    /// Warnings raised while loading.
    pub warnings: Vec<Warning>,
}
