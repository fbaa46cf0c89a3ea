//! `metarec bundle --items` and `metarec inspect` end to end on a catalog of items this test
//! writes (books, not MovieLens): the bundle loads as a policy over those items, refusals
//! name the file, line and field.
#![cfg(feature = "cli")]
use std::process::Command;

fn metarec(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_metarec"))
        .args(args)
        .output()
        .expect("run metarec")
}

/// A fresh directory for one test (removed first if a previous run left it).
fn scratch(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("metarec-bundle-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn books_csv(dir: &std::path::Path) -> std::path::PathBuf {
    let mut text = String::from("id,title,tags,year,description,embedding\n");
    let tags = ["fantasy", "history", "cooking", "science", "poetry"];
    for i in 0..30 {
        text.push_str(&format!(
            "isbn-{i:03},\"Book {i}, volume {}\",{}|{},{},A book about {},{} {} {}\n",
            i % 3 + 1,
            tags[i % 5],
            tags[(i + 2) % 5],
            1990 + i,
            tags[i % 5],
            (i % 5) as f32 / 4.0,
            (i % 7) as f32 / 6.0,
            i as f32 / 30.0
        ));
    }
    let path = dir.join("books.csv");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bundle_of_own_items_then_inspect() {
    let dir = scratch("books");
    let items = books_csv(&dir);
    let out = dir.join("books.bundle");
    let run = metarec(&[
        "bundle",
        "--items",
        items.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--iterations",
        "4",
        "--users",
        "40",
        "--json",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(v["items"], 30);
    assert_eq!(v["categories"], 5);
    assert_eq!(v["embedding_width"], 3);
    assert_eq!(v["meta_iterations"], 4);

    let bundle = metarec::data::Bundle::read(&out).unwrap();
    assert_eq!(bundle.catalog.ids.ids()[7], "isbn-007");
    assert_eq!(bundle.catalog.items[7].title, "Book 7, volume 2");
    let policy = metarec::policy::Policy::from_bundle(&bundle).unwrap();
    assert_eq!(policy.model.items(), 30);

    let inspect = metarec(&["inspect", out.to_str().unwrap(), "--json"]);
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(v["version"], metarec::data::BUNDLE_VERSION);
    assert_eq!(v["items"], 30);
    assert_eq!(v["item_vector_width"], policy.model.output);
    assert_eq!(v["algorithm"], "fomaml");
    assert_eq!(v["policy"]["adapts"], "network");
    assert_eq!(v["policy"]["parameters"], policy.params.len());
    let trained_on = v["trained_on"].as_str().unwrap();
    assert!(
        trained_on.contains("books.csv") && trained_on.contains("30 items"),
        "{trained_on}"
    );
    let text = metarec(&["inspect", out.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("30 items"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Ratings of the books by 60 people: each rates 10 books, 5 stars for their favourite tag.
fn ratings_csv(dir: &std::path::Path) -> std::path::PathBuf {
    let mut text = String::from("user,item,rating,timestamp\n");
    for u in 0..60 {
        for k in 0..10 {
            let i = (u * 7 + k * 3) % 30;
            let stars = if i % 5 == u % 5 { 5 } else { 1 + (u + k) % 3 };
            text.push_str(&format!(
                "u{u},isbn-{i:03},{stars},{}\n",
                1_600_000_000 + 3600 * k
            ));
        }
    }
    let path = dir.join("ratings.csv");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bundle_of_own_items_and_their_ratings() {
    let dir = scratch("ratings");
    let items = books_csv(&dir);
    // the ratings path reads no embedding: refused with the items file named
    let ratings = ratings_csv(&dir);
    let out = dir.join("rated.bundle");
    let args = |items: &std::path::Path| {
        vec![
            "bundle".to_owned(),
            "--items".into(),
            items.to_str().unwrap().into(),
            "--ratings".into(),
            ratings.to_str().unwrap().into(),
            "--out".into(),
            out.to_str().unwrap().into(),
            "--iterations".into(),
            "3".into(),
        ]
    };
    let run = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        metarec(&a)
    };
    let refused = run(args(&items));
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("embedding"));
    let plain = dir.join("plain.csv");
    let text = std::fs::read_to_string(&items).unwrap();
    let without: String = text
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_owned() + "\n")
        .collect();
    std::fs::write(&plain, without).unwrap();
    let done = run(args(&plain));
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let inspect = metarec(&["inspect", out.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(v["items"], 30);
    let trained_on = v["trained_on"].as_str().unwrap();
    assert!(
        trained_on.starts_with("600 ratings of 60 people in"),
        "{trained_on}"
    );
    // a rating of an item the catalog does not have
    let mut text = std::fs::read_to_string(&ratings).unwrap();
    text.push_str("u1,isbn-999,4,1600000000\n");
    std::fs::write(&ratings, text).unwrap();
    let unknown = run(args(&plain));
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        !unknown.status.success()
            && err.contains("\"isbn-999\" has ratings but is not in the catalog"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_items_name_file_line_and_field() {
    let dir = scratch("bad");
    let items = dir.join("items.csv");
    std::fs::write(&items, "id,title,tags\na,First,x\nb,,y\n").unwrap();
    let out = dir.join("x.bundle");
    let run = metarec(&[
        "bundle",
        "--items",
        items.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("items.csv:3: field 2 (title)"), "{err}");
    assert!(!out.exists());
    let json = dir.join("items.json");
    std::fs::write(&json, r#"[{"id":"a","title":"A"},{"id":"a","title":"B"}]"#).unwrap();
    let run = metarec(&[
        "bundle",
        "--items",
        json.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && err.contains("items.json: item 2 (id)"),
        "{err}"
    );
    let run = metarec(&["inspect", items.to_str().unwrap()]);
    assert!(
        !run.status.success()
            && String::from_utf8_lossy(&run.stderr).contains("not a metarec bundle")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
