//! `metarec bench interaction` prints the per-interaction figures and counts it promises (the
//! figures themselves are benchmarks, never asserted here).
#![cfg(feature = "cli")]
use std::process::Command;

fn interaction(engine: &str, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_metarec"))
        .args(["bench", "interaction", "--engine", engine])
        .args(["--items", "300", "--interactions", "3", "--json"])
        .args(extra)
        .output()
        .expect("run metarec");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn interaction_reports_latency_and_the_engines_counts() {
    for (engine, extra) in [
        ("cpu", &[][..]),
        ("gpu", &[]),
        ("gpu", &["--recommend-only"]),
    ] {
        let v = interaction(engine, extra);
        assert_eq!(v["engine"], engine);
        let path = if extra.is_empty() {
            "interact"
        } else {
            "recommend"
        };
        assert_eq!(v["path"], path);
        assert_eq!(v["items"], 300);
        for key in [
            "p50_ms",
            "p95_ms",
            "dispatches",
            "submits",
            "readback_bytes",
        ] {
            assert!(v[key].as_f64().is_some_and(|x| x >= 0.0), "{key}: {v}");
        }
        assert!(v["p95_ms"].as_f64() >= v["p50_ms"].as_f64(), "{v}");
        // the CPU engine neither dispatches nor submits; the GPU engine counts its own work
        let submits = v["submits"].as_f64().unwrap_or(-1.0);
        assert_eq!(submits > 0.0, engine == "gpu", "{v}");
        if engine == "gpu" {
            // a context-adapting session's interaction, or its list alone: one submit, at most
            // 1 KB read back
            assert_eq!(submits, 1.0, "{v}");
            assert!(
                v["readback_bytes"].as_f64().is_some_and(|b| b <= 1024.0),
                "{v}"
            );
        }
    }
}
