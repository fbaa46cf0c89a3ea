//! The data layer: loaders for MovieLens and generic rating files, summaries, splits, item
//! features, environments (one task per user), the synthetic world and the browser bundle.
//!
//! Start with [`load`] (a directory or a file; the format is picked from the files) or
//! [`synthetic::World::generate`] (no files needed). Every input error is a [`DataError`]
//! naming the file, the line, the field and what was expected.
pub mod bundle;
pub mod catalog;
pub mod csv_ratings;
pub mod dataset;
pub mod env;
pub mod error;
pub mod factors;
pub mod features;
// entry points for `fuzz/` and tests/data_fuzz.rs: native only, not shipped to the browser
#[cfg(not(target_arch = "wasm32"))]
pub mod fuzz;
mod input;
pub mod mf;
pub mod movielens;
pub(crate) mod sampling;
pub mod split;
pub mod synthetic;

pub use bundle::{Bundle, BUNDLE_VERSION};
pub use catalog::{read_items_csv, read_items_json, Embedding, ItemCatalog};
pub use csv_ratings::{load_generic_over, CsvOptions};
pub use dataset::{
    Catalog, Dataset, Format, HistogramBin, IdMap, ItemMeta, Rating, RatingScale, Summary, Warning,
    WarningKind, LIKE_THRESHOLD,
};
pub use env::{
    sample_slate, Environment, LogEntry, ObservedTask, RewardMode, Shown, SimulatedTask, UserTask,
};
pub use error::{DataError, Location};
pub use factors::like_factors;
pub use features::ItemFeatures;
pub use input::{decode_text, MAX_LINE_BYTES};
pub use mf::{FitConfig, LatentFactorModel};
pub use split::{split_ratings, split_users, support_query, SplitFractions, UserSplit};
pub use synthetic::{SyntheticTask, World, WorldConfig};

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// How the MovieLens "latest"/20M/25M ratings header (`userId,movieId,rating,timestamp`)
/// starts.
const ML_RATINGS_HEADER: &str = "userId,movieId,";

/// Whether the first line of `path` starts like the MovieLens CSV ratings header (the MovieLens
/// parser then checks the rest).
fn has_movielens_header(path: &Path) -> Result<bool, DataError> {
    let mut first = Vec::new();
    BufReader::new(input::open(path)?)
        .take(input::MAX_LINE_BYTES as u64)
        .read_until(b'\n', &mut first)
        .map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let first = first.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(&first);
    Ok(first.starts_with(ML_RATINGS_HEADER.as_bytes()))
}

/// Loads a dataset with default options for generic files. See [`load_with`].
pub fn load(path: &Path) -> Result<Dataset, DataError> {
    load_with(path, &CsvOptions::default())
}

/// Loads a dataset from a directory or a file, picking the format by its files:
/// a directory with `u.data` is MovieLens 100K; a directory with `ratings.csv` loads that file.
/// A file named `u.data` loads its MovieLens 100K directory; a file whose header starts
/// `userId,movieId,` is MovieLens CSV (`userId,movieId,rating,timestamp`, with a sibling
/// `movies.csv` when present); any other file is a generic `user,item,rating[,timestamp]` file
/// read with `options`.
pub fn load_with(path: &Path, options: &CsvOptions) -> Result<Dataset, DataError> {
    if path.is_dir() {
        if path.join("u.data").is_file() {
            return movielens::load_ml100k(path);
        }
        let ratings = path.join("ratings.csv");
        if ratings.is_file() {
            return load_with(&ratings, options);
        }
        return Err(DataError::invalid(
            path,
            None,
            "no dataset files found: expected u.data (MovieLens 100K) or ratings.csv (MovieLens latest/20M/25M); for another file, give its path",
        ));
    }
    if !path.exists() {
        return Err(DataError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
        });
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    if path.file_name().is_some_and(|n| n == "u.data") {
        return movielens::load_ml100k(dir);
    }
    if has_movielens_header(path)? {
        let movies = dir.join("movies.csv");
        return movielens::load_movielens_csv(path, movies.is_file().then_some(movies.as_path()));
    }
    csv_ratings::load_generic(path, options)
}
