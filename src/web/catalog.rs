//! [`Catalog`]: a site's own items (CSV or JSON text, `src/data/catalog.rs`), for
//! [`Recommender::from_catalog`](super::Recommender::from_catalog) and
//! [`MetaTrainer::create`](super::MetaTrainer::create).

use super::{js_err, to_js};
use crate::data::ItemCatalog;
use serde::Serialize;
use std::path::Path;
use wasm_bindgen::prelude::*;

/// A site's items: ids, titles, categories, years, descriptions and, optionally, their own
/// embedding. Refusals name the row (CSV: `name:line: field`, JSON: `item N (field)`).
#[wasm_bindgen]
pub struct Catalog {
    pub(super) items: ItemCatalog,
}

#[derive(Serialize)]
pub(super) struct JsItem<'a> {
    pub(super) id: &'a str,
    pub(super) title: &'a str,
    pub(super) categories: Vec<&'a str>,
    pub(super) year: Option<i32>,
    pub(super) description: &'a str,
}

/// Item `i` of `catalog` with its own fields (`descriptions` may be empty: a bundle has none).
pub(super) fn item<'a>(
    catalog: &'a crate::data::Catalog,
    descriptions: &'a [String],
    i: u32,
) -> Option<JsItem<'a>> {
    let meta = catalog.items.get(i as usize)?;
    Some(JsItem {
        id: catalog.ids.id(i)?,
        title: &meta.title,
        categories: meta
            .genres
            .iter()
            .filter_map(|&g| catalog.genres.get(g as usize).map(String::as_str))
            .collect(),
        year: meta.year,
        description: descriptions.get(i as usize).map_or("", String::as_str),
    })
}

#[wasm_bindgen]
impl Catalog {
    /// Items from CSV text: a header with `id`, `title`, `categories` (or `tags`,
    /// `|`-separated), optionally `year`, `description` and `embedding` (numbers separated by
    /// spaces) or `embedding_1`, `embedding_2`, …; `name` labels the input in errors
    /// (default `items.csv`).
    #[wasm_bindgen(js_name = fromCSV)]
    pub fn from_csv(text: &str, name: Option<String>) -> Result<Catalog, JsError> {
        Self::from_csv_bytes(text.as_bytes(), name)
    }

    /// Items from CSV bytes (refused, naming the line, where they are not UTF-8).
    #[wasm_bindgen(js_name = fromCSVBytes)]
    pub fn from_csv_bytes(bytes: &[u8], name: Option<String>) -> Result<Catalog, JsError> {
        let name = name.unwrap_or_else(|| "items.csv".into());
        let items = crate::data::read_items_csv(bytes, Path::new(&name)).map_err(js_err)?;
        Ok(Catalog { items })
    }

    /// Items from JSON text: an array of `{ id, title, categories | tags, year?,
    /// description?, embedding? }`; `name` labels the input in errors (default `items.json`).
    #[wasm_bindgen(js_name = fromJSONText)]
    pub fn from_json_text(text: &str, name: Option<String>) -> Result<Catalog, JsError> {
        let name = name.unwrap_or_else(|| "items.json".into());
        let items =
            crate::data::read_items_json(text.as_bytes(), Path::new(&name)).map_err(js_err)?;
        Ok(Catalog { items })
    }

    /// Number of items.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> usize {
        self.items.catalog.len()
    }

    /// Columns of the items' own embedding (0 without one).
    #[wasm_bindgen(getter, js_name = embeddingWidth)]
    pub fn embedding_width(&self) -> usize {
        self.items.embedding.as_ref().map_or(0, |e| e.width)
    }

    /// Every category, in order of first appearance.
    #[wasm_bindgen(getter)]
    pub fn categories(&self) -> Vec<String> {
        self.items.catalog.genres.clone()
    }

    /// The items, `[{ id, title, categories, year, description }]`.
    #[wasm_bindgen(unchecked_return_type = "CatalogItem[]")]
    pub fn items(&self) -> Result<JsValue, JsError> {
        let c = &self.items.catalog;
        let all: Vec<JsItem> = (0..c.len() as u32)
            .filter_map(|i| item(c, &self.items.descriptions, i))
            .collect();
        to_js(&all)
    }
}
