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
            "random,pop-bayes,linucb,meta-rl",
            "--seeds",
            "2",
            "--rounds",
            "5",
            "--meta-iterations",
            "2",
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
