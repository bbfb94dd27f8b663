//! `bench calibrate` on a user's few rows: only the serving constants of their backend move,
//! the file feeds `--calibration`, and the before/after table shows the gain.
use crate::common;

use common::ok;
use std::path::PathBuf;

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/calibration/example_runs.csv")
}

fn yaml(p: &std::path::Path) -> serde_json::Value {
    let v: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    serde_json::to_value(v).unwrap()
}

#[test]
fn few_rows_fit_only_their_serving_constants() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("mine.yaml");
    let text = ok(&[
        "bench",
        "calibrate",
        "--csv",
        example().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        text.contains("fitting only the serving constants of vllm (5 rows"),
        "{text}"
    );
    // The example is the embedded prediction + 5 ms TTFT + 2 ms TPOT: the fit removes most of it.
    let line = text
        .lines()
        .find(|l| l.starts_with("median |error|"))
        .unwrap();
    let nums: Vec<f64> = line
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|s| s.parse().ok())
        .collect();
    assert!(nums[0] > 5.0 && nums[1] < 2.0, "{line}");
    // Everything but backends.vllm is the embedded calibration.
    let embedded = d.path().join("embedded.yaml");
    ok(&[
        "bench",
        "calibrate",
        "--csv",
        example().to_str().unwrap(),
        "--out",
        embedded.to_str().unwrap(),
        "--rounds",
        "0",
    ]);
    let (mut a, mut b) = (yaml(&out), yaml(&embedded));
    assert_ne!(a["backends"]["vllm"], b["backends"]["vllm"]);
    a["backends"]["vllm"] = serde_json::Value::Null;
    b["backends"]["vllm"] = serde_json::Value::Null;
    assert_eq!(a, b);
    // The file is a --calibration file.
    let acc = ok(&[
        "bench",
        "accuracy",
        "--csv",
        example().to_str().unwrap(),
        "--calibration",
        out.to_str().unwrap(),
    ]);
    assert!(acc.contains("rows 5; predicted 5"), "{acc}");
    let o = common::aicfg(&[
        "bench",
        "calibrate",
        "--csv",
        example().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--fit",
        "some",
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--fit must be"));
}
