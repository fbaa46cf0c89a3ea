//! Bundle round trip, and rejection of truncated, corrupted and wrong-version bundles.
use metarec::data::{self, bundle::BUNDLE_VERSION, Bundle, DataError, ItemFeatures};
use std::path::Path;

fn sample() -> Bundle {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data/ml100k");
    let ds = data::load(&dir).unwrap();
    let mut b = Bundle {
        features: Some(ItemFeatures::build(&ds.catalog, &ds.ratings)),
        catalog: ds.catalog,
        config: Some(r#"{"model":"toy","dim":2}"#.into()),
        weights: None,
    };
    b.set_weights(&[
        (
            "item_embedding",
            vec![4, 2],
            &[0.5, -1.0, 2.0, 0.25, 1e-3, 3.0, -7.5, 0.0],
        ),
        ("bias", vec![1], &[0.125]),
    ])
    .unwrap();
    b
}

fn bundle_error(bytes: &[u8]) -> String {
    match Bundle::from_bytes(bytes) {
        Err(DataError::Bundle(m)) => m,
        other => panic!("expected a bundle error, got {other:?}"),
    }
}

#[test]
fn round_trip_in_memory_and_on_disk() {
    let b = sample();
    let bytes = b.to_bytes().unwrap();
    let back = Bundle::from_bytes(&bytes).unwrap();
    assert_eq!(back, b);
    assert_eq!(back.catalog.items[2].title, "Café Orbit (1987)");
    assert_eq!(back.catalog.ids.index("4"), Some(3));
    let t = back.weight("item_embedding").unwrap().unwrap();
    assert_eq!(t.shape, [4, 2]);
    assert_eq!(t.values[6], -7.5);
    assert!(back.weight("missing").is_err());

    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("round_trip.bundle");
    b.write(&path).unwrap();
    assert_eq!(Bundle::read(&path).unwrap(), b);

    // The weights section is a plain safetensors image (what PyTorch's safetensors reads).
    let st = safetensors::SafeTensors::deserialize(b.weights.as_ref().unwrap()).unwrap();
    assert_eq!(st.names().len(), 2);

    // A minimal bundle (catalog only) round-trips too.
    let minimal = Bundle {
        catalog: b.catalog.clone(),
        ..Bundle::default()
    };
    assert_eq!(
        Bundle::from_bytes(&minimal.to_bytes().unwrap()).unwrap(),
        minimal
    );
}

#[test]
fn truncated_bundles_are_rejected() {
    let bytes = sample().to_bytes().unwrap();
    for cut in [0, 7, 23, bytes.len() / 2, bytes.len() - 1] {
        let m = bundle_error(&bytes[..cut]);
        assert!(m.contains("truncated"), "cut at {cut}: {m}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(bundle_error(&longer).contains("extra data"));
}

#[test]
fn corrupted_bundles_are_rejected() {
    let bytes = sample().to_bytes().unwrap();
    for pos in [24, bytes.len() / 3, bytes.len() - 10, bytes.len() - 2] {
        let mut bad = bytes.clone();
        bad[pos] ^= 0x40;
        let m = bundle_error(&bad);
        assert!(m.contains("checksum mismatch"), "flip at {pos}: {m}");
    }
    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert!(bundle_error(&bad).contains("not a metarec bundle"));
}

#[test]
fn wrong_version_is_rejected() {
    let mut bytes = sample().to_bytes().unwrap();
    bytes[8..12].copy_from_slice(&(BUNDLE_VERSION + 1).to_le_bytes());
    let m = bundle_error(&bytes);
    assert!(
        m.contains(&format!("unsupported version {}", BUNDLE_VERSION + 1)),
        "{m}"
    );
}

#[test]
fn inconsistent_sections_with_valid_checksum_are_rejected() {
    // Features whose row count does not match the catalog cannot be written...
    let mut b = sample();
    b.catalog.items.pop();
    assert!(b.to_bytes().is_err());
    // ...and a reader given such a file (checksum recomputed) refuses it.
    let good = sample();
    let mut other = good.clone();
    other.features = None;
    let mut bytes = other.to_bytes().unwrap();
    // Hand-build a FEAT section claiming 1 item (4 genres, no text: 7 columns).
    let mut feat = b"FEAT".to_vec();
    let mut payload = Vec::new();
    for v in [4u32, 0, 1] {
        payload.extend_from_slice(&v.to_le_bytes());
    }
    payload.extend(std::iter::repeat_n(0u8, 7 * 4));
    feat.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    feat.extend_from_slice(&payload);
    let crc_at = bytes.len() - 4;
    bytes.truncate(crc_at);
    bytes.extend_from_slice(&feat);
    let total = (bytes.len() + 4) as u64;
    bytes[12..20].copy_from_slice(&total.to_le_bytes());
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let m = bundle_error(&bytes);
    assert!(m.contains("do not match the catalog"), "{m}");
}
