//! Property tests: ids round-trip, splits partition exactly, same seed gives the same split.
#![cfg(not(target_arch = "wasm32"))]
use metarec::data::{self, split_ratings, split_users, IdMap, ItemFeatures, SplitFractions};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::path::Path;

proptest! {
    #[test]
    fn ids_round_trip(ids in proptest::collection::vec("[a-zA-Z0-9_é-]{1,12}", 0..200)) {
        let mut map = IdMap::new();
        let dense: Vec<u32> = ids.iter().map(|id| map.insert(id).unwrap()).collect();
        let distinct: BTreeSet<&String> = ids.iter().collect();
        prop_assert_eq!(map.len(), distinct.len());
        for (id, &i) in ids.iter().zip(&dense) {
            prop_assert_eq!(map.id(i), Some(id.as_str()));
            prop_assert_eq!(map.index(id), Some(i));
        }
        // Dense indices are exactly 0..len.
        let set: BTreeSet<u32> = dense.iter().copied().collect();
        prop_assert_eq!(set, (0..map.len() as u32).collect::<BTreeSet<_>>());
    }

    #[test]
    fn user_split_partitions_exactly(n in 0usize..3000, seed in any::<u64>(),
                                     a in 0.0f64..1.0, b in 0.0f64..1.0) {
        let (train, validation) = (a * (1.0 - b), a * b);
        let f = SplitFractions { train, validation, cold_start: 1.0 - train - validation };
        let s = split_users(n, f, seed).unwrap();
        let mut all: Vec<u32> = s.train.iter().chain(&s.validation).chain(&s.cold_start).copied().collect();
        all.sort_unstable();
        prop_assert_eq!(all, (0..n as u32).collect::<Vec<_>>());
        prop_assert!((s.train.len() as f64 - n as f64 * train).abs() <= 1.0);
        prop_assert!((s.validation.len() as f64 - n as f64 * validation).abs() <= 1.0);
        prop_assert_eq!(&s, &split_users(n, f, seed).unwrap());
    }

    #[test]
    fn rating_split_partitions_exactly(n in 0usize..5000, seed in any::<u64>(), t in 0.0f64..=1.0) {
        let s = split_ratings(n, t, seed).unwrap();
        let mut all: Vec<usize> = s.train.iter().chain(&s.test).copied().collect();
        all.sort_unstable();
        prop_assert_eq!(all, (0..n).collect::<Vec<_>>());
        prop_assert_eq!(s.test.len(), (n as f64 * t).round() as usize);
        prop_assert_eq!(&s, &split_ratings(n, t, seed).unwrap());
    }
}

#[test]
fn default_split_is_70_10_20_and_seed_dependent() {
    let a = split_users(1000, SplitFractions::default(), 7).unwrap();
    assert_eq!(
        (a.train.len(), a.validation.len(), a.cold_start.len()),
        (700, 100, 200)
    );
    let b = split_users(1000, SplitFractions::default(), 8).unwrap();
    assert_ne!(a, b);
    assert!(split_users(
        10,
        SplitFractions {
            train: 0.9,
            validation: 0.9,
            cold_start: 0.0
        },
        1
    )
    .is_err());
}

#[test]
fn support_query_is_by_time_and_features_have_the_documented_layout() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data/ml100k");
    let ds = data::load(&dir).unwrap();
    let u2 = ds.users.index("2").unwrap();
    let (support, query) = data::support_query(&ds, u2, 0.5).unwrap();
    assert_eq!((support.len(), query.len()), (2, 1));
    let latest_support = support.iter().filter_map(|r| r.timestamp).max();
    assert!(query.iter().all(|r| r.timestamp >= latest_support));

    let f = ItemFeatures::build(&ds.catalog, &ds.ratings);
    assert_eq!(f.layout.dim(), 4 + 3);
    assert_eq!(f.n_items(), 4);
    // Item "2": Comedy + Space Western, 1994 within 1961..=1994, rated twice (max 2).
    let row = f.row(ds.catalog.ids.index("2").unwrap());
    assert_eq!(row, [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
    // Item "4" ("unknown"): no year, so year 0 and flag 0.
    let row = f.row(ds.catalog.ids.index("4").unwrap());
    assert_eq!((row[f.layout.year], row[f.layout.year_known]), (0.0, 0.0));
    let mut f2 = f.clone();
    f2.set_text_embeddings(2, &[1.0; 8]).unwrap();
    assert_eq!(f2.layout.dim(), 9);
    assert_eq!(&f2.row(1)[..7], f.row(1));
    assert!(f2.set_text_embeddings(3, &[0.0; 5]).is_err());
}
