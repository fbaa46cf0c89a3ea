//! Stable-Rust fuzzing: every parser target of `fuzz/` runs over its corpus seeds and a bounded
//! number of seeded random mutations of them; any panic fails the test. Set
//! `METAREC_FUZZ_ITERS` to run longer (default 1500 mutations per target).
#![cfg(not(target_arch = "wasm32"))]

use metarec::data::fuzz::{run_one, FuzzTarget};
use metarec::data::{self, Bundle, ItemFeatures};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

fn seeds(target: FuzzTarget) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target.name());
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

const TOKENS: &[&[u8]] = &[
    b",",
    b"\t",
    b"|",
    b";",
    b"\n",
    b"\r\n",
    b"\"",
    b"NaN",
    b"inf",
    b"-1",
    b"4.5",
    b"0",
    b"\xef\xbb\xbf",
    b"\xe9",
    b"userId,movieId,rating,timestamp\n",
    b"(no genres listed)",
    b"01-Jan-1995",
    b"(1995)",
    b"MRBUNDL\0",
    b"CATL",
    b"FEAT",
    b"WGHT",
    b"CONF",
    b"id,title,categories,year,description,embedding\n",
    b"embedding_1",
    b"{\"id\":",
    b"[",
    b"]",
    b"null",
];

fn mutate(rng: &mut ChaCha8Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let pos = if v.is_empty() {
            0
        } else {
            rng.random_range(0..=v.len())
        };
        match rng.random_range(0..7) {
            0 if !v.is_empty() => {
                let i = pos.min(v.len() - 1);
                v[i] ^= 1 << rng.random_range(0..8);
            }
            1 => v.insert(pos, rng.random()),
            2 if !v.is_empty() => {
                let end = (pos + rng.random_range(1..16)).min(v.len());
                v.drain(pos.min(end)..end);
            }
            3 => {
                let t = TOKENS[rng.random_range(0..TOKENS.len())];
                v.splice(pos..pos, t.iter().copied());
            }
            4 if !other.is_empty() => {
                let a = rng.random_range(0..other.len());
                let b = (a + rng.random_range(1..64)).min(other.len());
                v.splice(pos..pos, other[a..b].iter().copied());
            }
            5 => v.truncate(pos),
            _ => {
                let n = rng.random_range(0..32);
                v.splice(pos..pos, (0..n).map(|_| rng.random::<u8>()));
            }
        }
    }
    v
}

fn fuzz(target: FuzzTarget, extra: Vec<Vec<u8>>) {
    let iters: usize = std::env::var("METAREC_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500);
    let mut pool = seeds(target);
    pool.extend(extra);
    let mut accepted = 0;
    for s in &pool {
        accepted += usize::from(run_one(target, s).is_ok());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed ^ target.name().len() as u64);
    for i in 0..iters {
        let a = &pool[rng.random_range(0..pool.len())];
        let b = &pool[rng.random_range(0..pool.len())];
        let input = if i % 10 == 0 {
            (0..rng.random_range(0..200))
                .map(|_| rng.random())
                .collect()
        } else {
            mutate(&mut rng, a, b)
        };
        if run_one(target, &input).is_ok() {
            accepted += 1;
            if pool.len() < 64 {
                pool.push(input);
            }
        }
    }
    eprintln!(
        "{}: {accepted} of {} inputs accepted",
        target.name(),
        iters + pool.len()
    );
    assert!(accepted > 0, "{}: no seed is accepted", target.name());
}

#[test]
fn fuzz_u_data() {
    fuzz(FuzzTarget::UData, vec![]);
}

#[test]
fn fuzz_u_item() {
    fuzz(FuzzTarget::UItem, vec![]);
}

#[test]
fn fuzz_u_user() {
    fuzz(FuzzTarget::UUser, vec![]);
}

#[test]
fn fuzz_u_genre() {
    fuzz(FuzzTarget::UGenre, vec![]);
}

#[test]
fn fuzz_ratings_csv() {
    fuzz(FuzzTarget::RatingsCsv, vec![]);
}

#[test]
fn fuzz_movies_csv() {
    fuzz(FuzzTarget::MoviesCsv, vec![]);
}

#[test]
fn fuzz_generic_csv() {
    fuzz(FuzzTarget::GenericCsv, vec![]);
}

#[test]
fn fuzz_bundle() {
    // Also a bundle with weights, built here.
    let ds = data::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data/ml100k"))
        .unwrap();
    let mut b = Bundle {
        features: Some(ItemFeatures::build(&ds.catalog, &ds.ratings)),
        catalog: ds.catalog,
        ..Bundle::default()
    };
    b.set_weights(&[("w", vec![2], &[1.0, 2.0])]).unwrap();
    fuzz(FuzzTarget::Bundle, vec![b.to_bytes().unwrap()]);
}

#[test]
fn fuzz_items_csv() {
    fuzz(FuzzTarget::ItemsCsv, vec![]);
}

#[test]
fn fuzz_items_json() {
    fuzz(FuzzTarget::ItemsJson, vec![]);
}
