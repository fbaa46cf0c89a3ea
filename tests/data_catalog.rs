//! A site's own catalog (CSV and JSON): what is read, every refusal naming the row and the
//! field, and meta-training's synthetic world over those items.
#![cfg(not(target_arch = "wasm32"))]

use metarec::data::{read_items_csv, read_items_json, DataError};
use std::path::Path;

fn csv(text: &[u8]) -> Result<metarec::data::ItemCatalog, DataError> {
    read_items_csv(text, Path::new("items.csv"))
}

fn json(text: &str) -> Result<metarec::data::ItemCatalog, DataError> {
    read_items_json(text.as_bytes(), Path::new("items.json"))
}

fn csv_err(text: &str) -> String {
    csv(text.as_bytes()).expect_err(text).to_string()
}

fn json_err(text: &str) -> String {
    json(text).expect_err(text).to_string()
}

#[test]
fn csv_items_with_categories_years_descriptions() {
    let c = csv(b"id,title,categories,year,description\n\
        b1,The Rust Book,programming|rust,2018,\"Learn Rust, the language\"\n\
        b2,Dune,sci-fi|classic| programming ,1965,\n\
        b3,Untagged,,,\n")
    .unwrap();
    assert_eq!(c.catalog.len(), 3);
    assert_eq!(c.catalog.ids.ids(), ["b1", "b2", "b3"]);
    assert_eq!(
        c.catalog.genres,
        ["programming", "rust", "sci-fi", "classic"]
    );
    assert_eq!(c.catalog.items[1].genres, vec![0, 2, 3]);
    assert_eq!(c.catalog.items[0].year, Some(2018));
    assert_eq!(c.catalog.items[2].year, None);
    assert!(c.catalog.items[2].genres.is_empty());
    assert_eq!(c.descriptions[0], "Learn Rust, the language");
    assert!(c.embedding.is_none());
}

#[test]
fn csv_embeddings_packed_or_numbered_and_tags_column() {
    let packed =
        csv(b"\xef\xbb\xbfid,title,tags,embedding\r\n1,A,x,0.5 1 -2\r\n2,B,y,1 2 3\r\n").unwrap();
    let e = packed.embedding.unwrap();
    assert_eq!(
        (e.width, e.values),
        (3, vec![0.5, 1.0, -2.0, 1.0, 2.0, 3.0])
    );
    let numbered = csv(b"title,embedding_2,id,embedding_1\nA,2,a,1\nB,4,b,3\n").unwrap();
    let e = numbered.embedding.unwrap();
    assert_eq!((e.width, e.values), (2, vec![1.0, 2.0, 3.0, 4.0]));
    assert_eq!(numbered.catalog.ids.ids(), ["a", "b"]);
}

#[test]
fn csv_refusals_name_file_line_and_field() {
    let head = "id,title,categories,year,embedding\n";
    let cases = [
        (
            format!("{head}1,A,x,,1 2\n,B,x,,1 2\n"),
            "items.csv:3: field 1 (id)",
        ),
        (
            format!("{head}1,A,x,,1 2\n1,B,x,,1 2\n"),
            "items.csv:3: field 1 (id)",
        ),
        (
            format!("{head}1,A,x,,1 2\n2,  ,x,,1 2\n"),
            "items.csv:3: field 2 (title)",
        ),
        (
            format!("{head}1,A,x,,1 2\n2,B,x,,1 2 3\n"),
            "items.csv:3: field 5 (embedding)",
        ),
        (
            format!("{head}1,A,x,,1 2\n2,B,x,,1 x\n"),
            "items.csv:3: field 5 (embedding)",
        ),
        (
            format!("{head}1,A,x,,1 2\n2,B,x,,\n"),
            "items.csv:3: field 5 (embedding)",
        ),
        (
            format!("{head}1,A,x,19x5,1 2\n"),
            "items.csv:2: field 4 (year)",
        ),
        (
            format!("{head}1,A,x,,1 2\n2,B\n"),
            "items.csv:3: expected 5 fields",
        ),
        (head.to_owned(), "items.csv: no items"),
        (
            "title,year\nA,1\n".to_owned(),
            "items.csv:1: the header has no id column",
        ),
    ];
    for (input, want) in cases {
        let got = csv_err(&input);
        assert!(got.starts_with(want), "{input:?}: {got}");
        assert!(got.matches("found").count() <= 1, "{got}");
    }
    let dup = csv_err("id,title\n7,A\n7,B\n");
    assert!(dup.contains("\"7\" again (item 1 has it)"), "{dup}");
    let latin1 = csv(b"id,title\n1,A\n2,Caf\xe9\n").unwrap_err().to_string();
    assert!(latin1.starts_with("items.csv:3: not UTF-8"), "{latin1}");
    assert!(csv(b"").unwrap_err().to_string().contains("no id column"));
}

#[test]
fn json_items_and_refusals_naming_the_item() {
    let c = json(
        r#"[{"id":"a","title":"Alpha","categories":["x","y"],"year":2001,"description":"first"},
            {"id":2,"title":"Beta","tags":"x|z","year":"1999"}]"#,
    )
    .unwrap();
    assert_eq!(c.catalog.ids.ids(), ["a", "2"]);
    assert_eq!(c.catalog.genres, ["x", "y", "z"]);
    assert_eq!(c.catalog.items[1].year, Some(1999));
    assert_eq!(c.descriptions, ["first", ""]);
    let e = json(
        r#"[{"id":"a","title":"A","embedding":[1,2]},{"id":"b","title":"B","embedding":[3,4]}]"#,
    )
    .unwrap()
    .embedding
    .unwrap();
    assert_eq!((e.width, e.values), (2, vec![1.0, 2.0, 3.0, 4.0]));
    let cases = [
        (r#"[{"id":"a","title":"A"},{"title":"B"}]"#, "item 2 (id)"),
        (
            r#"[{"id":"a","title":"A"},{"id":"a","title":"B"}]"#,
            "item 2 (id)",
        ),
        (r#"[{"id":"a","title":""}]"#, "item 1 (title)"),
        (
            r#"[{"id":"a","title":"A","embedding":[1]},{"id":"b","title":"B","embedding":[1,2]}]"#,
            "item 2 (embedding)",
        ),
        (
            r#"[{"id":"a","title":"A","embedding":[1,"x"]}]"#,
            "item 1 (embedding)",
        ),
        (
            r#"[{"id":"a","title":"A","categories":[1]}]"#,
            "item 1 (categories)",
        ),
        (r#"[{"id":"a","title":"A","year":1.5}]"#, "item 1 (year)"),
        (r#"[1]"#, "item 1 (item)"),
        (r#"[]"#, "no items"),
        (r#"{"id":"a"}"#, "expected an array of items"),
        ("[{\"id\":", "not valid JSON"),
    ];
    for (input, want) in cases {
        let got = json_err(input);
        assert!(
            got.starts_with("items.json") && got.contains(want),
            "{input}: {got}"
        );
    }
    let bad = read_items_json(
        b"[{\"id\":\"a\",\"title\":\"\xff\"}]",
        Path::new("items.json"),
    );
    assert!(bad.unwrap_err().to_string().contains("not UTF-8"));
}

#[test]
fn meta_training_world_over_the_items_own_vectors() {
    use metarec::meta::{MetaConfig, PolicyShape, SyntheticSetup};
    let items: Vec<String> = (0..20)
        .map(|i| {
            format!(
                r#"{{"id":"p{i}","title":"Product {i}","categories":["{}"],"year":{},"embedding":[{}, {}, 1]}}"#,
                ["shoes", "hats", "bags"][i % 3],
                2000 + i,
                i as f32 / 10.0,
                (i % 4) as f32
            )
        })
        .collect();
    let catalog = json(&format!("[{}]", items.join(","))).unwrap();
    let world = metarec::data::WorldConfig {
        n_items: 0,
        n_users: 30,
        style_dim: 4,
        seed: 5,
    };
    let cfg = MetaConfig::default();
    let a = SyntheticSetup::over_items(&catalog, world, &PolicyShape::default(), &cfg).unwrap();
    let b = SyntheticSetup::over_items(&catalog, world, &PolicyShape::default(), &cfg).unwrap();
    assert_eq!(a.items, b.items, "same items and seed, same vectors");
    assert_eq!(a.world.catalog, catalog.catalog);
    assert_eq!(a.world.n_users(), 30);
    // 3 categories, year, year known, popularity, 3 embedding columns, quality, factors
    assert_eq!(a.features.layout.dim(), 3 + 3 + 3);
    assert_eq!(a.parts.features, 3 + 3 + 3 + 1);
    assert_eq!(a.items.len(), 20 * (a.parts.features + a.parts.factors));
    let mut engine = metarec::engine::cpu::CpuEngine::new(&a.model).unwrap();
    let bundle = pollster::block_on(a.bundle(&mut engine, Default::default())).unwrap();
    let back = metarec::data::Bundle::from_bytes(&bundle.to_bytes().unwrap()).unwrap();
    assert_eq!(back.catalog.ids.ids()[19], "p19");
    assert_eq!(back.features.unwrap().layout.text.len(), 3);
}
