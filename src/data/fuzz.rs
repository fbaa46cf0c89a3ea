//! Entry points for fuzzing every parser: the `cargo fuzz` targets in `fuzz/` and the
//! bounded stable-Rust loop in `tests/data_fuzz.rs` both call [`run_one`].
use super::bundle::Bundle;
use super::csv_ratings::{read_generic, CsvOptions};
use super::dataset::{Catalog, IdMap, Rating};
use super::error::DataError;
use super::movielens;
use std::path::Path;

/// A parser under fuzzing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FuzzTarget {
    /// `u.data` (MovieLens 100K ratings).
    UData,
    /// `u.item` (MovieLens 100K items, 19 genre flags).
    UItem,
    /// `u.user`.
    UUser,
    /// `u.genre`.
    UGenre,
    /// MovieLens `ratings.csv`.
    RatingsCsv,
    /// MovieLens `movies.csv`.
    MoviesCsv,
    /// Generic ratings file, delimiter and header detected.
    GenericCsv,
    /// A bundle.
    Bundle,
    /// A site's catalog of items as CSV.
    ItemsCsv,
    /// A site's catalog of items as JSON.
    ItemsJson,
}

impl FuzzTarget {
    /// Every target.
    pub const ALL: [FuzzTarget; 10] = [
        FuzzTarget::UData,
        FuzzTarget::UItem,
        FuzzTarget::UUser,
        FuzzTarget::UGenre,
        FuzzTarget::RatingsCsv,
        FuzzTarget::MoviesCsv,
        FuzzTarget::GenericCsv,
        FuzzTarget::Bundle,
        FuzzTarget::ItemsCsv,
        FuzzTarget::ItemsJson,
    ];

    /// The target's name (its `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/`).
    pub fn name(self) -> &'static str {
        match self {
            FuzzTarget::UData => "u_data",
            FuzzTarget::UItem => "u_item",
            FuzzTarget::UUser => "u_user",
            FuzzTarget::UGenre => "u_genre",
            FuzzTarget::RatingsCsv => "ratings_csv",
            FuzzTarget::MoviesCsv => "movies_csv",
            FuzzTarget::GenericCsv => "generic_csv",
            FuzzTarget::Bundle => "bundle",
            FuzzTarget::ItemsCsv => "items_csv",
            FuzzTarget::ItemsJson => "items_json",
        }
    }
}

/// Checks what a ratings parser accepted: indices inside the maps, finite values.
fn check_ratings(ratings: &[Rating], users: &IdMap, catalog: &Catalog) {
    assert_eq!(catalog.ids.len(), catalog.items.len());
    for r in ratings {
        assert!((r.user as usize) < users.len() && (r.item as usize) < catalog.len());
        assert!(r.value.is_finite());
    }
}

/// Parses `bytes` with `target`; returns `Ok` when accepted, the error otherwise. Panics only
/// when an accepted input breaks an invariant (ids out of range, non-finite ratings, a bundle
/// that does not re-serialise to itself): that, or any other panic, is a bug.
pub fn run_one(target: FuzzTarget, bytes: &[u8]) -> Result<(), DataError> {
    let path = Path::new(target.name());
    let mut users = IdMap::new();
    let mut catalog = Catalog::default();
    match target {
        FuzzTarget::UData => {
            let r = movielens::read_u_data(bytes, path, &mut users, &mut catalog)?;
            check_ratings(&r, &users, &catalog);
        }
        FuzzTarget::UItem => {
            let genres: Vec<String> = movielens::ML100K_GENRES
                .iter()
                .map(|g| g.to_string())
                .collect();
            let c = movielens::read_u_item(bytes, path, &genres)?;
            assert_eq!(c.ids.len(), c.items.len());
        }
        FuzzTarget::UUser => movielens::read_u_user(bytes, path, &mut users)?,
        FuzzTarget::UGenre => {
            movielens::read_u_genre(bytes, path)?;
        }
        FuzzTarget::RatingsCsv => {
            let r = movielens::read_ratings_csv(bytes, path, &mut users, &mut catalog)?;
            check_ratings(&r, &users, &catalog);
        }
        FuzzTarget::MoviesCsv => {
            let c = movielens::read_movies_csv(bytes, path)?;
            assert!(c
                .items
                .iter()
                .all(|m| m.genres.iter().all(|&g| (g as usize) < c.genres.len())));
        }
        FuzzTarget::GenericCsv => {
            let r = read_generic(
                bytes,
                path,
                &CsvOptions::default(),
                &mut users,
                &mut catalog,
            )?;
            check_ratings(&r, &users, &catalog);
        }
        FuzzTarget::Bundle => {
            // Mutations almost never keep the checksum right, so also try the input with its
            // length field and checksum repaired, to reach the section decoders.
            let b = match Bundle::from_bytes(bytes) {
                Ok(b) => b,
                Err(e) => {
                    let mut fixed = bytes.to_vec();
                    if fixed.len() < 24 {
                        return Err(e);
                    }
                    let n = fixed.len();
                    fixed[12..20].copy_from_slice(&(n as u64).to_le_bytes());
                    let crc = crc32fast::hash(&fixed[..n - 4]);
                    fixed[n - 4..].copy_from_slice(&crc.to_le_bytes());
                    Bundle::from_bytes(&fixed)?
                }
            };
            let again = b.to_bytes()?;
            let back = Bundle::from_bytes(&again)?;
            assert_eq!(
                back.to_bytes()?,
                again,
                "bundle re-serialisation is not stable"
            );
        }
        FuzzTarget::ItemsCsv => check_items(&super::catalog::read_items_csv(bytes, path)?),
        FuzzTarget::ItemsJson => check_items(&super::catalog::read_items_json(bytes, path)?),
    }
    Ok(())
}

/// Checks what a catalog parser accepted: one description per item, categories inside the
/// vocabulary, ids unique and non-empty, titles non-empty, the embedding `items × width`.
fn check_items(c: &super::catalog::ItemCatalog) {
    let cat = &c.catalog;
    assert!(!cat.is_empty());
    assert_eq!(cat.ids.len(), cat.items.len());
    assert_eq!(c.descriptions.len(), cat.len());
    assert!(cat.ids.ids().iter().all(|id| !id.trim().is_empty()));
    assert!(cat
        .items
        .iter()
        .all(|m| !m.title.is_empty() && m.genres.iter().all(|&g| (g as usize) < cat.genres.len())));
    if let Some(e) = &c.embedding {
        assert!(e.width > 0 && e.values.len() == e.width * cat.len());
        assert!(e.values.iter().all(|v| v.is_finite()));
    }
}
