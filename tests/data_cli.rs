//! `metarec data` end to end: JSON counts on MovieLens 100K, non-zero exit on bad files.
#![cfg(feature = "cli")]
use std::path::Path;
use std::process::Command;

fn metarec(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_metarec"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run metarec")
}

#[test]
fn json_summary_of_ml100k() {
    // always there where the tests run: a missing dataset fails the test
    let dir = std::env::var("METAREC_ML100K").unwrap_or_else(|_| "../shared/data/ml-100k".into());
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(&dir)
            .join("u.data")
            .is_file(),
        "MovieLens 100K not found at {dir} (set METAREC_ML100K)"
    );
    let out = metarec(&["data", &dir, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for want in ["\"users\": 943", "\"items\": 1682", "\"ratings\": 100000"] {
        assert!(text.contains(want), "{want} missing in {text}");
    }
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for key in ["users", "items", "ratings", "like_rate", "warnings"] {
        assert!(v.get(key).is_some(), "key {key} missing");
    }
}

#[test]
fn text_summary_of_fixture_lists_warnings() {
    let out = metarec(&["data", "tests/fixtures/data/ml-latest"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("ratings    6"), "{text}");
    assert!(text.contains("duplicate"), "{text}");
}

#[test]
fn malformed_file_exits_non_zero_naming_file_and_line() {
    let out = metarec(&["data", "tests/fixtures/data/bad/rating_text.csv", "--json"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("rating_text.csv:3: field 3 (rating)"), "{err}");
}

#[test]
fn generic_options_and_synthetic_world() {
    let out = metarec(&[
        "data",
        "tests/fixtures/data/generic/semicolon_bom.txt",
        "--delimiter",
        ";",
        "--header",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ratings"], 2, "first line taken as a header");

    let out = metarec(&[
        "data",
        "tests/fixtures/data/bad/rating_range.csv",
        "--max-rating",
        "10",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = metarec(&[
        "data",
        "tests/fixtures/data/generic/tab_no_header.tsv",
        "--delimiter",
        "ab",
    ]);
    assert!(!out.status.success());

    let out = metarec(&["data", "synthetic:7", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["users"].as_u64(), v["items"].as_u64()),
        (Some(1000), Some(2000))
    );
    assert_eq!(v["format"], "synthetic");
}
