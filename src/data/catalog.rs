//! A site's own catalog of items, as CSV or JSON: an id, a title, free-form categories (tags),
//! optionally a year, a description and the item's own embedding.
//!
//! CSV: a header naming the columns, in any order: `id`, `title` (required), `categories` or
//! `tags` or `genres` (`|`-separated), `year`, `description`, and the embedding either as one
//! `embedding` column (numbers separated by spaces) or as columns `embedding_1`,
//! `embedding_2`, … (one number each). Errors name the file, the line and the field.
//!
//! JSON: an array of objects `{ id, title, categories | tags, year?, description?,
//! embedding? }` (`id` a string or a number, `categories` an array of strings or one
//! `|`-separated string, `embedding` an array of numbers). Errors name the item (1-based).
//!
//! Both reject a missing or duplicate id, an empty title, a year that is not an integer, an
//! embedding that is not finite or not as long as the first item's, input that is not UTF-8
//! and a catalog without items.
use super::dataset::{Catalog, ItemMeta};
use super::error::DataError;
use std::collections::HashMap;
use std::path::Path;

/// A site's items: the catalog (ids, titles, categories as genres, years), the descriptions
/// and the items' own embedding, when they have one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ItemCatalog {
    /// Ids, titles, categories (the catalog's genres) and years.
    pub catalog: Catalog,
    /// One per item, empty strings when not given.
    pub descriptions: Vec<String>,
    /// The items' own embedding (row-major, `width` per item), when the input had one.
    pub embedding: Option<Embedding>,
}

/// Row-major item embedding.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Embedding {
    /// Columns per item.
    pub width: usize,
    /// `items × width` values.
    pub values: Vec<f32>,
}

/// The longest embedding a catalog may carry, per item.
pub const MAX_EMBEDDING_WIDTH: usize = 4096;

/// One item as read, before it joins the catalog.
struct Row {
    id: String,
    title: String,
    categories: Vec<String>,
    year: Option<i32>,
    description: String,
    embedding: Option<Vec<f32>>,
}

/// Builds the catalog item by item; `at(field)` is the error location maker of the caller.
#[derive(Default)]
struct Builder {
    out: ItemCatalog,
    category_index: HashMap<String, u16>,
    embedding: Vec<f32>,
    width: Option<usize>,
}

impl Builder {
    /// Adds `row`; `fail(field, message)` makes the error naming the row.
    fn push(
        &mut self,
        row: Row,
        fail: &dyn Fn(&'static str, String) -> DataError,
    ) -> Result<(), DataError> {
        if row.id.trim().is_empty() {
            return Err(fail("id", "an item id, found nothing".into()));
        }
        if row.title.trim().is_empty() {
            return Err(fail("title", "a title, found nothing".into()));
        }
        if let Some(first) = self.out.catalog.ids.index(&row.id) {
            return Err(fail(
                "id",
                format!(
                    "a new item id, found {:?} again (item {} has it)",
                    row.id,
                    u64::from(first) + 1
                ),
            ));
        }
        match (&row.embedding, self.width) {
            (Some(e), None) if self.out.catalog.is_empty() => {
                if e.is_empty() || e.len() > MAX_EMBEDDING_WIDTH {
                    return Err(fail(
                        "embedding",
                        format!("1 to {MAX_EMBEDDING_WIDTH} numbers, found {}", e.len()),
                    ));
                }
                self.width = Some(e.len());
            }
            (Some(e), Some(w)) if e.len() != w => {
                return Err(fail(
                    "embedding",
                    format!(
                        "{w} numbers (as the first item's embedding), found {}",
                        e.len()
                    ),
                ))
            }
            (None, Some(w)) => {
                return Err(fail(
                    "embedding",
                    format!("{w} numbers (as the first item's embedding), found none"),
                ))
            }
            (Some(_), None) => {
                return Err(fail(
                    "embedding",
                    "no embedding (the first item has none), found one".into(),
                ))
            }
            _ => {}
        }
        if let Some(e) = &row.embedding {
            if let Some(k) = e.iter().position(|v| !v.is_finite()) {
                return Err(fail(
                    "embedding",
                    format!("finite numbers, found {} at position {}", e[k], k + 1),
                ));
            }
            self.embedding.extend_from_slice(e);
        }
        let mut genres = Vec::new();
        for c in row
            .categories
            .iter()
            .map(|c| c.trim())
            .filter(|c| !c.is_empty())
        {
            let next = self.out.catalog.genres.len();
            let g = match self.category_index.get(c) {
                Some(&g) => g,
                None => {
                    let g = u16::try_from(next).map_err(|_| {
                        fail("categories", "at most 65536 distinct categories".into())
                    })?;
                    self.category_index.insert(c.to_owned(), g);
                    self.out.catalog.genres.push(c.to_owned());
                    g
                }
            };
            if !genres.contains(&g) {
                genres.push(g);
            }
        }
        genres.sort_unstable();
        let meta = ItemMeta {
            title: row.title.trim().to_owned(),
            year: row.year,
            genres,
            has_metadata: true,
        };
        self.out.catalog.add(&row.id, meta)?;
        self.out.descriptions.push(row.description);
        Ok(())
    }

    fn finish(mut self, path: &Path) -> Result<ItemCatalog, DataError> {
        if self.out.catalog.is_empty() {
            return Err(DataError::invalid(
                path,
                None,
                "no items: a catalog needs at least one item",
            ));
        }
        self.out.embedding = self.width.map(|width| Embedding {
            width,
            values: std::mem::take(&mut self.embedding),
        });
        Ok(self.out)
    }
}

/// The text of `bytes` (a leading byte-order mark dropped); an error naming the line of the
/// first byte that is not UTF-8.
fn utf8<'a>(bytes: &'a [u8], path: &Path) -> Result<&'a str, DataError> {
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        let good = &bytes[..e.valid_up_to()];
        let line = 1 + good.iter().filter(|&&b| b == b'\n').count() as u64;
        DataError::invalid(
            path,
            Some(line),
            "not UTF-8 text: save the catalog as UTF-8",
        )
    })
}

/// An error at `path:line`, field `col` (0-based) named `name`: `expected {what}` (`what` says
/// what was found too).
fn at_field(path: &Path, line: u64, col: usize, name: &'static str, what: String) -> DataError {
    DataError::Invalid {
        at: super::Location {
            path: path.to_path_buf(),
            line: Some(line),
            field: Some((col + 1, name)),
        },
        message: format!("expected {what}"),
    }
}

fn parse_year(text: &str) -> Result<Option<i32>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse::<i32>()
        .ok()
        .filter(|y| (-9999..=9999).contains(y))
        .map(Some)
        .ok_or_else(|| format!("a year (an integer from -9999 to 9999), found {t:?}"))
}

fn parse_numbers<'a>(parts: impl Iterator<Item = &'a str>) -> Result<Vec<f32>, String> {
    parts
        .map(|p| {
            let p = p.trim();
            p.parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("a finite number, found {p:?}"))
        })
        .collect()
}

/// Which column holds what in a CSV catalog.
struct Columns {
    id: usize,
    title: usize,
    categories: Option<usize>,
    year: Option<usize>,
    description: Option<usize>,
    /// One column of space-separated numbers, or one column per number (in order).
    embedding: Vec<usize>,
    packed: bool,
}

impl Columns {
    fn from_header(header: &csv::StringRecord, path: &Path) -> Result<Self, DataError> {
        let names: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
        let find = |want: &[&str]| names.iter().position(|n| want.contains(&n.as_str()));
        let missing = |name: &str| {
            DataError::invalid(
                path,
                Some(1),
                format!(
                    "the header has no {name} column (expected columns: id, title, categories, and optionally year, description, embedding)"
                ),
            )
        };
        let mut numbered: Vec<(usize, usize)> = Vec::new();
        for (col, n) in names.iter().enumerate() {
            if let Some(k) = n.strip_prefix("embedding_") {
                let k = k.parse::<usize>().map_err(|_| {
                    DataError::invalid(
                        path,
                        Some(1),
                        format!("embedding columns are embedding_1, embedding_2, …; found {n:?}"),
                    )
                })?;
                numbered.push((k, col));
            }
        }
        numbered.sort_unstable();
        if numbered.iter().enumerate().any(|(i, &(k, _))| k != i + 1) {
            return Err(DataError::invalid(
                path,
                Some(1),
                "embedding columns must be numbered embedding_1, embedding_2, … without gaps",
            ));
        }
        let packed = find(&["embedding"]);
        if packed.is_some() && !numbered.is_empty() {
            return Err(DataError::invalid(
                path,
                Some(1),
                "give the embedding as one `embedding` column or as embedding_1, embedding_2, …, not both",
            ));
        }
        Ok(Columns {
            id: find(&["id"]).ok_or_else(|| missing("id"))?,
            title: find(&["title"]).ok_or_else(|| missing("title"))?,
            categories: find(&["categories", "tags", "genres"]),
            year: find(&["year"]),
            description: find(&["description"]),
            embedding: packed
                .map(|c| vec![c])
                .unwrap_or_else(|| numbered.into_iter().map(|(_, c)| c).collect()),
            packed: packed.is_some(),
        })
    }
}

/// Reads a CSV catalog (see the module documentation); `path` names the input in errors.
pub fn read_items_csv(bytes: &[u8], path: &Path) -> Result<ItemCatalog, DataError> {
    let text = utf8(bytes, path)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| DataError::invalid(path, Some(1), format!("unreadable header: {e}")))?
        .clone();
    let cols = Columns::from_header(&header, path)?;
    let names: Vec<&'static str> = (0..header.len())
        .map(|c| match c {
            _ if c == cols.id => "id",
            _ if c == cols.title => "title",
            _ if Some(c) == cols.categories => "categories",
            _ if Some(c) == cols.year => "year",
            _ if Some(c) == cols.description => "description",
            _ if cols.embedding.contains(&c) => "embedding",
            _ => "unused",
        })
        .collect();
    let mut b = Builder::default();
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(DataError::line(path, line, "a CSV record", e.to_string())),
        }
        let line = record.position().map_or(line, |p| p.line());
        if record.len() != header.len() {
            return Err(DataError::line(
                path,
                line,
                format!("{} fields (as the header)", header.len()),
                format!("{} fields", record.len()),
            ));
        }
        let field = |c: usize| record.get(c).unwrap_or("");
        let fail = |c: usize, what: String| at_field(path, line, c, names[c], what);
        let year = match cols.year {
            Some(c) => parse_year(field(c)).map_err(|m| fail(c, m))?,
            None => None,
        };
        let embedding = match (cols.packed, cols.embedding.as_slice()) {
            (_, []) => None,
            (true, &[c]) => {
                let t = field(c).trim();
                if t.is_empty() {
                    None
                } else {
                    Some(parse_numbers(t.split_whitespace()).map_err(|m| fail(c, m))?)
                }
            }
            (_, cs) => {
                let mut v = Vec::with_capacity(cs.len());
                for &c in cs {
                    v.push(parse_numbers(std::iter::once(field(c))).map_err(|m| fail(c, m))?[0]);
                }
                Some(v)
            }
        };
        let row = Row {
            id: field(cols.id).trim().to_owned(),
            title: field(cols.title).to_owned(),
            categories: cols
                .categories
                .map(|c| field(c).split('|').map(str::to_owned).collect())
                .unwrap_or_default(),
            year,
            description: cols
                .description
                .map(|c| field(c).trim().to_owned())
                .unwrap_or_default(),
            embedding,
        };
        let column = |name: &str| match name {
            "id" => cols.id,
            "title" => cols.title,
            "categories" => cols.categories.unwrap_or(0),
            _ => cols.embedding.first().copied().unwrap_or(0),
        };
        b.push(row, &|name, what| {
            at_field(path, line, column(name), name, what)
        })?;
    }
    b.finish(path)
}

/// One JSON item's field as text: a string, or a number for ids.
fn json_text(v: Option<&serde_json::Value>, numbers: bool) -> Result<String, String> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(String::new()),
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(serde_json::Value::Number(n)) if numbers => Ok(n.to_string()),
        Some(other) => Err(format!("a string, found {}", json_kind(other))),
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn json_row(item: &serde_json::Value) -> Result<Row, (&'static str, String)> {
    let obj = item
        .as_object()
        .ok_or_else(|| ("item", format!("an object, found {}", json_kind(item))))?;
    let id = json_text(obj.get("id"), true).map_err(|m| ("id", m))?;
    let title = json_text(obj.get("title"), false).map_err(|m| ("title", m))?;
    let cats = obj.get("categories").or_else(|| obj.get("tags"));
    let categories = match cats {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::String(s)) => s.split('|').map(str::to_owned).collect(),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|c| {
                c.as_str().map(str::to_owned).ok_or_else(|| {
                    (
                        "categories",
                        format!("an array of strings, found {}", json_kind(c)),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err((
                "categories",
                format!("an array of strings, found {}", json_kind(other)),
            ))
        }
    };
    let year = match obj.get("year") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => {
            parse_year(&n.to_string()).map_err(|m| ("year", m))?
        }
        Some(serde_json::Value::String(s)) => parse_year(s).map_err(|m| ("year", m))?,
        Some(other) => return Err(("year", format!("an integer, found {}", json_kind(other)))),
    };
    let description = json_text(obj.get("description"), false)
        .map_err(|m| ("description", m))?
        .trim()
        .to_owned();
    let embedding = match obj.get("embedding") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Array(a)) => Some(
            a.iter()
                .enumerate()
                .map(|(k, v)| {
                    v.as_f64()
                        .map(|x| x as f32)
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| {
                            (
                                "embedding",
                                format!(
                                    "finite numbers, found {} at position {}",
                                    json_kind(v),
                                    k + 1
                                ),
                            )
                        })
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(other) => {
            return Err((
                "embedding",
                format!("an array of numbers, found {}", json_kind(other)),
            ))
        }
    };
    Ok(Row {
        id: id.trim().to_owned(),
        title,
        categories,
        year,
        description,
        embedding,
    })
}

/// Reads a JSON catalog (see the module documentation); `path` names the input in errors.
pub fn read_items_json(bytes: &[u8], path: &Path) -> Result<ItemCatalog, DataError> {
    let text = utf8(bytes, path)?;
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        DataError::invalid(path, Some(e.line() as u64), format!("not valid JSON: {e}"))
    })?;
    let items = value.as_array().ok_or_else(|| {
        DataError::invalid(
            path,
            None,
            format!("expected an array of items, found {}", json_kind(&value)),
        )
    })?;
    let mut b = Builder::default();
    for (k, item) in items.iter().enumerate() {
        let at = |field: &'static str, expected: String| DataError::Invalid {
            at: super::Location {
                path: path.to_path_buf(),
                line: None,
                field: None,
            },
            message: format!("item {} ({field}): expected {expected}", k + 1),
        };
        let row = json_row(item).map_err(|(field, m)| at(field, m))?;
        b.push(row, &at)?;
    }
    b.finish(path)
}
