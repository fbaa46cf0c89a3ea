//! `metarec eval` end to end on the synthetic world: the same seed gives byte-identical JSON.
#![cfg(feature = "cli")]
use std::process::Command;

fn eval_json() -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_metarec"))
        .args([
            "eval",
            "--data",
            "synthetic:5",
            "--methods",
            "random,pop-bayes,linucb,meta-rl-fixed",
            "--seeds",
            "2",
            "--rounds",
            "5",
            "--meta-iterations",
            "2",
            // a small, short supervised fit: the start of meta-rl (unoptimised build)
            "--finetune-epochs",
            "1",
            "--finetune-embedding-dim",
            "4",
            "--json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run metarec");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn same_seed_same_json() {
    let a = eval_json();
    assert_eq!(a, eval_json());
    let v: serde_json::Value = serde_json::from_slice(&a).unwrap();
    let p = &v["methods"]["pop-bayes"]["precision_at_10_rounds"];
    assert!(p["mean"].as_f64().is_some() && p["ci95"].as_f64().is_some());
    assert_eq!(v["methods"].as_object().unwrap().len(), 4);
}

#[test]
fn unknown_methods_fail_clearly() {
    let out = Command::new(env!("CARGO_BIN_EXE_metarec"))
        .args(["eval", "--data", "synthetic", "--methods", "oracle"])
        .output()
        .expect("run metarec");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown method"));
}

#[test]
fn plots_the_curves_as_svg() {
    let path = std::env::temp_dir().join(format!("metarec-eval-{}.svg", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_metarec"))
        .args([
            "eval",
            "--data",
            "synthetic:2",
            "--methods",
            "random,pop-bayes",
        ])
        .args(["--seeds", "1", "--rounds", "4", "--plot"])
        .arg(&path)
        .output()
        .expect("run metarec");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("| pop-bayes |"), "{table}");
    let svg = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(svg.starts_with("<svg") && svg.contains("pop-bayes"));
}
