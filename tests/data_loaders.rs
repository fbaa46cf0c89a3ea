//! Loader tests: the real MovieLens 100K (required: `$METAREC_ML100K`, default
//! ../shared/data/ml-100k) and hand-written fixtures of every
//! format and every bad-input case.
use metarec::data::{self, dataset::WarningKind, CsvOptions, DataError, Format};
use std::path::{Path, PathBuf};

mod common;
use common::ml100k;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/data")
        .join(rel)
}

fn title_of(ds: &data::Dataset, id: &str) -> String {
    let i = ds.catalog.ids.index(id).expect("item id present");
    ds.catalog.items[i as usize].title.clone()
}

#[test]
fn ml100k_exact_counts_titles_and_item_267() {
    let dir = ml100k();
    let ds = data::load(&dir).expect("ml-100k loads");
    assert_eq!(ds.format, Format::MovieLens100K);
    assert_eq!(ds.n_users(), 943);
    assert_eq!(ds.n_items(), 1682);
    assert_eq!(ds.ratings.len(), 100_000);
    assert!(ds.warnings.is_empty(), "{:?}", ds.warnings);
    assert_eq!(ds.catalog.genres.len(), 19);
    assert_eq!(ds.catalog.genres[4], "Children's");
    // Latin-1 titles decoded to the right characters.
    assert_eq!(title_of(&ds, "543"), "Misérables, Les (1995)");
    assert_eq!(title_of(&ds, "1633"), "Á köldum klaka (Cold Fever) (1994)");
    // (plain ASCII titles come through as written: item 1 is a 1995 title of two words)
    let first = title_of(&ds, "1");
    assert!(
        first.ends_with(" (1995)") && first.split(' ').count() == 3,
        "{first}"
    );
    // Item 267: title "unknown", empty release date, genre "unknown".
    let i = ds.catalog.ids.index("267").expect("267") as usize;
    let meta = &ds.catalog.items[i];
    assert_eq!(meta.title, "unknown");
    assert_eq!(meta.year, None);
    assert_eq!(meta.genres, vec![0]);
    assert!(meta.has_metadata);
    // Ids round-trip: user 196 rated item 242 with 3 at 881250949.
    let u = ds.users.index("196").expect("user 196");
    let item = ds.catalog.ids.index("242").expect("item 242");
    let r = ds
        .user_ratings(u)
        .iter()
        .find(|r| r.item == item)
        .expect("rating present");
    assert_eq!((r.value, r.timestamp), (3.0, Some(881250949)));
    // Per-user ratings are in time order and cover all ratings.
    let total: usize = (0..ds.n_users() as u32)
        .map(|u| ds.user_ratings(u).len())
        .sum();
    assert_eq!(total, 100_000);
    assert!(ds
        .user_ratings(u)
        .windows(2)
        .all(|w| w[0].timestamp <= w[1].timestamp));
    let s = ds.summary();
    assert_eq!((s.users, s.items, s.ratings), (943, 1682, 100_000));
    assert_eq!(s.histogram.iter().map(|b| b.count).sum::<u64>(), 100_000);
    assert!((s.like_rate - 0.55375).abs() < 1e-9);
    // A file path works too.
    let via_file = data::load(&dir.join("u.data")).expect("u.data path loads");
    assert_eq!(via_file.ratings.len(), 100_000);
}

#[test]
fn ml100k_fixture() {
    let ds = data::load(&fixture("ml100k")).expect("fixture loads");
    assert_eq!(ds.format, Format::MovieLens100K);
    assert_eq!((ds.n_users(), ds.n_items(), ds.ratings.len()), (3, 4, 7));
    assert_eq!(
        ds.catalog.genres,
        ["unknown", "Drama", "Comedy", "Space Western"]
    );
    assert_eq!(title_of(&ds, "3"), "Café Orbit (1987)");
    assert_eq!(title_of(&ds, "2"), "The Copper Kettle, Again (1994)");
    let two = &ds.catalog.items[ds.catalog.ids.index("2").unwrap() as usize];
    assert_eq!((two.year, two.genres.clone()), (Some(1994), vec![2, 3]));
    let unknown = &ds.catalog.items[ds.catalog.ids.index("4").unwrap() as usize];
    assert_eq!((unknown.title.as_str(), unknown.year), ("unknown", None));
    // User 2's ratings come in time order: item 3 (t=5), item 4 (t=7), item 1 (t=10).
    let u2 = ds.users.index("2").unwrap();
    let items: Vec<&str> = ds
        .user_ratings(u2)
        .iter()
        .map(|r| ds.catalog.ids.id(r.item).unwrap())
        .collect();
    assert_eq!(items, ["3", "4", "1"]);
}

#[test]
fn movielens_csv_fixture_bom_crlf_quotes_duplicates_and_orphans() {
    let ds = data::load(&fixture("ml-latest")).expect("fixture loads");
    assert_eq!(ds.format, Format::MovieLensCsv);
    // Items: 10, 20, 30, 40 from movies.csv plus 99 (rated, no metadata).
    assert_eq!((ds.n_users(), ds.n_items()), (3, 5));
    // 7 rating lines, one duplicate (1, 10) dropped.
    assert_eq!(ds.ratings.len(), 6);
    assert_eq!(title_of(&ds, "10"), "Lanterns, Ladders and Lies (2003)");
    let thirty = &ds.catalog.items[ds.catalog.ids.index("30").unwrap() as usize];
    assert!(thirty.genres.is_empty());
    assert_eq!(thirty.year, Some(2015));
    let orphan = &ds.catalog.items[ds.catalog.ids.index("99").unwrap() as usize];
    assert!(!orphan.has_metadata);
    assert_eq!(orphan.title, "item 99");
    let u1 = ds.users.index("1").unwrap();
    let i10 = ds.catalog.ids.index("10").unwrap();
    let kept = ds.user_ratings(u1).iter().find(|r| r.item == i10).unwrap();
    assert_eq!((kept.value, kept.timestamp), (2.5, Some(1100000100)));
    let kinds: Vec<(WarningKind, u64)> = ds.warnings.iter().map(|w| (w.kind, w.count)).collect();
    assert!(
        kinds.contains(&(WarningKind::DuplicateRatings, 1)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(WarningKind::ItemsWithoutMetadata, 1)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(WarningKind::ItemsWithoutRatings, 1)),
        "{kinds:?}"
    );
    // The ratings file alone works too and finds movies.csv beside it.
    let via_file = data::load(&fixture("ml-latest/ratings.csv")).unwrap();
    assert_eq!(via_file.ratings.len(), 6);
    assert_eq!(via_file.n_items(), 5);
}

#[test]
fn generic_formats() {
    let tab = data::load(&fixture("generic/tab_no_header.tsv")).unwrap();
    assert_eq!(tab.format, Format::GenericCsv);
    assert_eq!((tab.n_users(), tab.n_items(), tab.ratings.len()), (3, 3, 5));
    assert_eq!(tab.users.id(0), Some("alice"));
    assert!(!tab.has_timestamps());

    let hdr = data::load(&fixture("generic/header_crlf.csv")).unwrap();
    assert_eq!(hdr.ratings.len(), 4, "one duplicate (u2, i1) dropped");
    let u2 = hdr.users.index("u2").unwrap();
    let i1 = hdr.catalog.ids.index("i1").unwrap();
    let kept = hdr.user_ratings(u2).iter().find(|r| r.item == i1).unwrap();
    assert_eq!(kept.value, 2.0, "latest by timestamp kept");
    assert_eq!(hdr.warnings[0].kind, WarningKind::DuplicateRatings);

    let semi = data::load(&fixture("generic/semicolon_bom.txt")).unwrap();
    assert_eq!(semi.users.ids(), ["1", "2"]);
    assert_eq!(semi.ratings.len(), 3);

    let latin = data::load(&fixture("generic/pipe_latin1.txt")).unwrap();
    assert_eq!(latin.users.ids(), ["José", "Zoë"]);
    assert_eq!(latin.catalog.ids.ids(), ["café"]);

    // A given delimiter and header override detection.
    let forced = data::load_with(
        &fixture("generic/semicolon_bom.txt"),
        &CsvOptions {
            delimiter: Some(b';'),
            header: Some(true),
            ..CsvOptions::default()
        },
    )
    .unwrap();
    assert_eq!(forced.ratings.len(), 2);
}

/// Loads `rel` and returns the error message, checking it names the file.
fn error_of(rel: &str) -> String {
    let path = fixture(rel);
    let err = data::load(&path).expect_err("input must be rejected");
    let msg = err.to_string();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        msg.contains(&name) || matches!(err, DataError::Invalid { .. }),
        "{msg}"
    );
    msg
}

#[test]
fn bad_inputs_are_rejected_with_file_line_and_field() {
    let cases: &[(&str, &str)] = &[
        (
            "bad/rating_text.csv",
            "rating_text.csv:3: field 3 (rating): expected a finite number, found \"abc\"",
        ),
        (
            "bad/rating_range.csv",
            "rating_range.csv:2: field 3 (rating): expected a rating from 0 to 5, found \"7\"",
        ),
        (
            "bad/field_count.csv",
            "field_count.csv:3: expected 3 fields",
        ),
        (
            "bad/mixed_width.csv",
            "mixed_width.csv:2: expected 3 fields",
        ),
        ("bad/empty.csv", "empty.csv: file is empty"),
        ("bad/blank.csv", "blank.csv: file is empty"),
        ("bad/header_only.csv", "header_only.csv: header only"),
        (
            "bad/unknown_delimiter.txt",
            "unknown_delimiter.txt:1: expected 3 or 4 fields",
        ),
        ("bad/double_colon.dat", "(unknown delimiter)"),
        (
            "bad/nan.csv",
            "nan.csv:2: field 3 (rating): expected a finite number, found \"NaN\"",
        ),
        (
            "bad/inf.csv",
            "inf.csv:2: field 3 (rating): expected a finite number, found \"inf\"",
        ),
        (
            "bad/timestamp.csv",
            "timestamp.csv:2: field 4 (timestamp): expected an integer",
        ),
        (
            "bad/empty_item.csv",
            "empty_item.csv:1: field 2 (item): expected a non-empty id",
        ),
        (
            "bad/ml100k-bad-rating",
            "u.data:2: field 3 (rating): expected an integer rating from 1 to 5, found \"6\"",
        ),
        ("bad/ml100k-short", "u.data:2: expected 4 fields"),
        (
            "bad/ml100k-bad-flag",
            "u.item:2: field 8 (genre flag): expected 0 or 1, found \"2\"",
        ),
        (
            "bad/ml-latest-half",
            "ratings.csv:3: field 3 (rating): expected a rating from 0.5 to 5 in half stars",
        ),
        (
            "bad/ml-latest-header/ratings.csv",
            "ratings.csv:1: expected the header userId,movieId,rating,timestamp",
        ),
        (
            "bad/crlf_blank_lines.csv",
            "crlf_blank_lines.csv:5: field 3 (rating)",
        ),
        (
            "bad/movies_multiline",
            "movies.csv:4: field 3 (genres): expected genres like A|B",
        ),
        (
            "bad/unnamed_header.csv",
            "unnamed_header.csv:1: field 3 (rating): expected a finite number, found \"abc\"",
        ),
        ("bad/does-not-exist", "does-not-exist: cannot read"),
        ("generic", "no dataset files found"),
    ];
    for (rel, want) in cases {
        let msg = error_of(rel);
        assert!(msg.contains(want), "{rel}: got {msg:?}, want {want:?}");
    }
}

fn tmp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("data_loaders");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn absurdly_long_lines_are_rejected() {
    let mut bytes = b"1,10,4\n1,11,".to_vec();
    bytes.extend(std::iter::repeat_n(b'9', 200_000));
    bytes.push(b'\n');
    let path = tmp_file("long_line.csv", &bytes);
    let msg = data::load(&path).unwrap_err().to_string();
    assert!(
        msg.contains("long_line.csv:2: expected a line of at most 65536 bytes"),
        "{msg}"
    );
    // A single huge first line (no newline at all) is rejected before delimiter detection.
    let path = tmp_file("long_first.csv", &vec![b'x'; 100_000]);
    let msg = data::load(&path).unwrap_err().to_string();
    assert!(
        msg.contains("long_first.csv:1: expected a line of at most"),
        "{msg}"
    );
}
