//! Generic `user,item,rating[,timestamp]` files: CSV, TSV, `;` or `|` separated, with or
//! without a header, the delimiter detected or given.
use super::dataset::{Catalog, Dataset, Format, IdMap, Rating, RatingScale, Source};
use super::error::DataError;
use super::input::{open, Dialect, Records, MAX_LINE_BYTES};
use std::io::{Cursor, Read};
use std::path::Path;

/// Delimiters tried, in order of preference, when none is given.
pub const DELIMITERS: [u8; 4] = [b'\t', b',', b';', b'|'];

/// How to read a generic ratings file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CsvOptions {
    /// The field delimiter; detected from the first line when `None`.
    pub delimiter: Option<u8>,
    /// Whether the first line is a header; detected when `None` (see [`RATING_HEADERS`]).
    pub header: Option<bool>,
    /// The valid rating range; values outside are errors.
    pub scale: RatingScale,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: None,
            header: None,
            scale: RatingScale { min: 0.0, max: 5.0 },
        }
    }
}

/// Finds the delimiter from the first non-blank line of `sample`.
fn detect_delimiter(sample: &[u8], path: &Path) -> Result<u8, DataError> {
    let sample = sample.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(sample);
    for (i, line) in sample.split(|&b| b == b'\n').enumerate() {
        let line_no = i as u64 + 1;
        if line.trim_ascii().is_empty() {
            continue;
        }
        let fields = |d: u8| line.iter().filter(|&&b| b == d).count() + 1;
        return DELIMITERS
            .iter()
            .copied()
            .find(|&d| (3..=4).contains(&fields(d)))
            .ok_or_else(|| {
                DataError::line(
                    path,
                    line_no,
                    "3 or 4 fields (user, item, rating[, timestamp]) separated by tab, comma, semicolon or pipe (or give the delimiter)",
                    format!("{} (unknown delimiter)", super::error::quote(line)),
                )
            });
    }
    Err(DataError::invalid(
        path,
        None,
        "file is empty: expected lines of user, item, rating[, timestamp]",
    ))
}

/// Reads a generic ratings file; items and users get dense indices in first-seen order.
pub fn read_generic<R: Read>(
    mut reader: R,
    path: &Path,
    options: &CsvOptions,
    users: &mut IdMap,
    catalog: &mut Catalog,
) -> Result<Vec<Rating>, DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut sample = Vec::new();
    (&mut reader)
        .take(MAX_LINE_BYTES as u64 + 8)
        .read_to_end(&mut sample)
        .map_err(io)?;
    let delimiter = match options.delimiter {
        Some(d) => d,
        None => {
            if sample.len() > MAX_LINE_BYTES && !sample.contains(&b'\n') {
                return Err(DataError::line(
                    path,
                    1,
                    format!("a line of at most {MAX_LINE_BYTES} bytes"),
                    "a longer line",
                ));
            }
            detect_delimiter(&sample, path)?
        }
    };
    let dialect = Dialect {
        delimiter,
        quoting: true,
    };
    let mut rec = Records::new(Cursor::new(sample).chain(reader), path, dialect)?;
    let mut ratings = Vec::new();
    let mut width = None;
    let mut header = false;
    let (lo, hi) = (options.scale.min, options.scale.max);
    while rec.advance()? {
        let n = rec.record().len();
        let Some(w) = width else {
            if !(3..=4).contains(&n) {
                return Err(DataError::line(
                    rec.path(),
                    rec.line(),
                    "3 or 4 fields (user, item, rating[, timestamp])",
                    format!("{n} field{}", if n == 1 { "" } else { "s" }),
                ));
            }
            width = Some(n);
            header = options.header.unwrap_or_else(|| looks_like_header(&rec));
            if header {
                continue;
            }
            ratings.push(parse_row(&rec, users, catalog, n, lo, hi)?);
            continue;
        };
        if n != w {
            let what = if w == 3 {
                "user, item, rating as on the first line"
            } else {
                "user, item, rating, timestamp as on the first line"
            };
            rec.expect_fields(w, what)?;
        }
        ratings.push(parse_row(&rec, users, catalog, w, lo, hi)?);
    }
    if ratings.is_empty() {
        let message = if header || rec.saw_content() {
            "header only: expected at least one line of user, item, rating[, timestamp]"
        } else {
            "file is empty: expected lines of user, item, rating[, timestamp]"
        };
        return Err(DataError::invalid(path, None, message));
    }
    Ok(ratings)
}

/// Rating column names that mark a first line as a header.
pub const RATING_HEADERS: [&str; 8] = [
    "rating",
    "ratings",
    "score",
    "stars",
    "value",
    "preference",
    "rate",
    "grade",
];

/// A header has non-numeric user and item names and a known rating column name (compared in
/// lower case, ignoring `_`, `-` and spaces), so a malformed first data line is an error, not
/// a header.
fn looks_like_header<R: Read>(rec: &Records<R>) -> bool {
    let text = |i: usize| rec.text(i);
    let named = |t: String| !t.is_empty() && t.parse::<f64>().is_err();
    let rating: String = text(2)
        .to_lowercase()
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .collect();
    named(text(0)) && named(text(1)) && RATING_HEADERS.contains(&rating.as_str())
}

fn parse_row<R: Read>(
    rec: &Records<R>,
    users: &mut IdMap,
    catalog: &mut Catalog,
    width: usize,
    lo: f32,
    hi: f32,
) -> Result<Rating, DataError> {
    let user = users.insert(&rec.id(0, "user")?)?;
    let item = catalog.item_or_placeholder(&rec.id(1, "item")?)?;
    let value = rec.number(2, "rating")?;
    if !(lo..=hi).contains(&value) {
        return Err(rec.bad(2, "rating", format!("a rating from {lo} to {hi}")));
    }
    let timestamp = if width == 4 {
        Some(rec.integer(3, "timestamp")?)
    } else {
        None
    };
    Ok(Rating {
        user,
        item,
        value,
        timestamp,
    })
}

/// Loads a generic ratings file. Items have no metadata (placeholder titles).
pub fn load_generic(path: &Path, options: &CsvOptions) -> Result<Dataset, DataError> {
    if !(options.scale.min.is_finite()
        && options.scale.max.is_finite()
        && options.scale.min <= options.scale.max)
    {
        return Err(DataError::Argument(format!(
            "rating scale {}..{} is not a finite, ordered range",
            options.scale.min, options.scale.max
        )));
    }
    let mut users = IdMap::new();
    let mut catalog = Catalog::default();
    let ratings = read_generic(open(path)?, path, options, &mut users, &mut catalog)?;
    let source = Source::file(Format::GenericCsv, options.scale, path, path);
    Dataset::from_parts(source, users, catalog, ratings)
}

/// Loads a generic ratings file (as [`load_generic`]) over a given catalog (a site's own items,
/// [`super::catalog`]): ratings of items the catalog does not have are refused, naming the
/// item.
pub fn load_generic_over(
    path: &Path,
    options: &CsvOptions,
    catalog: Catalog,
) -> Result<Dataset, DataError> {
    let known = catalog.len();
    let mut users = IdMap::new();
    let mut catalog = catalog;
    let ratings = read_generic(open(path)?, path, options, &mut users, &mut catalog)?;
    if let Some(id) = catalog.ids.ids().get(known) {
        return Err(DataError::invalid(
            path,
            None,
            format!("item {id:?} has ratings but is not in the catalog of items"),
        ));
    }
    let source = Source::file(Format::GenericCsv, options.scale, path, path);
    Dataset::from_parts(source, users, catalog, ratings)
}
