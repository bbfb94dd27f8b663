//! `aicfg data install|list` and the silicon / hybrid / auto database modes end to end, on a tiny
//! synthetic database written by the test (no reference data, no network).
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn run(data_dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aicfg"));
    c.args(args).env("AICFG_DATA_DIR", data_dir);
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().expect("the aicfg binary runs")
}

fn ok(data_dir: &Path, args: &[&str]) -> String {
    let o = run(data_dir, args, &[]);
    assert!(
        o.status.success(),
        "aicfg {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A clean user error: exit 2, one `error:` line holding every needle, no panic.
fn fails(data_dir: &Path, args: &[&str], envs: &[(&str, &str)], needles: &[&str]) {
    let o = run(data_dir, args, envs);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(2), "aicfg {args:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "missing '{n}' in: {err}");
    }
}

const EST: &[&str] = &[
    "cli",
    "estimate",
    "--model",
    "QWEN3_32B",
    "--system",
    "h200_sxm",
    "--tp-size",
    "2",
    "--batch-size",
    "8",
    "--isl",
    "1000",
    "--osl",
    "100",
    "--json",
];

fn est(data_dir: &Path, extra: &[&str]) -> Value {
    let mut a = EST.to_vec();
    a.extend(extra);
    serde_json::from_str(&ok(data_dir, &a)).unwrap()
}

fn sources(v: &Value) -> Vec<String> {
    v["decode_ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["source"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn install_list_and_predict_with_each_database_mode() {
    let src = tempfile::tempdir().unwrap();
    aicfg_core::perfdb::fixture::write_fixture_db(&src.path().join("data")).unwrap();
    let data = tempfile::tempdir().unwrap();
    let d = data.path();

    // Nothing installed: auto answers with empirical and says so; hybrid asks for an install.
    let v = est(d, &[]);
    assert_eq!(v["database_mode"], "empirical");
    assert!(v["notes"].to_string().contains("aicfg data install"));
    fails(
        d,
        &with(&["--database-mode", "hybrid"]),
        &[],
        &["aicfg data install"],
    );
    assert!(ok(d, &["data", "list"]).contains("no measured op database installed"));

    let from = src.path().to_str().unwrap();
    let out = ok(
        d,
        &["data", "install", "--from", from, "--version", "fixture"],
    );
    assert!(
        out.contains("installed into") && out.contains("h200_sxm"),
        "{out}"
    );
    let out = ok(
        d,
        &["data", "install", "--from", from, "--version", "fixture"],
    );
    assert!(out.starts_with("already installed"), "{out}");
    let list = ok(d, &["data", "list"]);
    assert!(
        list.contains("trtllm") && list.contains("1.0.0, 1.1.0"),
        "{list}"
    );

    // Installed: auto → hybrid; measured GEMMs and the all-reduce answer, the rest is empirical.
    let v = est(d, &[]);
    assert_eq!(v["database_mode"], "hybrid");
    assert_eq!(v["database"], "h200_sxm/trtllm/1.1.0");
    let s = sources(&v);
    assert!(
        s.iter().any(|x| x == "silicon") && s.iter().any(|x| x == "empirical"),
        "{s:?}"
    );
    let old = est(d, &["--backend-version", "1.0.0"]);
    assert_eq!(old["database"], "h200_sxm/trtllm/1.0.0");
    assert!(
        old["tpot_ms"].as_f64() < v["tpot_ms"].as_f64(),
        "1.1.0 GEMMs are 2× slower"
    );
    let emp = est(d, &["--database-mode", "empirical"]);
    assert!(sources(&emp).iter().all(|x| x == "empirical"));
    // Deterministic.
    assert_eq!(est(d, &[]), v);

    // SILICON: the fixture has no attention for Qwen3-32B's 4 KV heads per GPU → one clear error.
    fails(
        d,
        &with(&["--database-mode", "silicon"]),
        &[],
        &["performance data missing", "attention"],
    );
    // The search prices through the same door: the same error, not silently dropped points.
    fails(
        d,
        &[
            "cli",
            "default",
            "--model",
            "QWEN3_32B",
            "--system",
            "h200_sxm",
            "--total-gpus",
            "8",
            "--isl",
            "1000",
            "--osl",
            "100",
            "--database-mode",
            "silicon",
        ],
        &[],
        &["performance data missing", "attention"],
    );
    fails(
        d,
        &with(&["--backend-version", "9.9"]),
        &[],
        &["unknown backend version", "1.0.0, 1.1.0"],
    );
    fails(
        d,
        &with(&["--backend", "vllm", "--database-mode", "hybrid"]),
        &[],
        &["backend 'vllm'", "installed backends: trtllm"],
    );
    // Auto on a backend without data quietly uses empirical.
    assert_eq!(est(d, &["--backend", "vllm"])["database_mode"], "empirical");
}

fn with(extra: &[&'static str]) -> Vec<&'static str> {
    let mut a = EST.to_vec();
    a.extend(extra);
    a
}

#[test]
fn install_failures_are_clean_and_leave_nothing() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    fails(
        d,
        &["data", "install", "--version", "0.12.0"],
        &[("AICFG_PYTHON", "/nonexistent/python3")],
        &["cannot run '/nonexistent/python3'", "--from"],
    );
    let empty = tempfile::tempdir().unwrap();
    fails(
        d,
        &["data", "install", "--from", empty.path().to_str().unwrap()],
        &[],
        &["holds no op database"],
    );
    fails(
        d,
        &["data", "install", "--from", "/nonexistent/x.whl"],
        &[],
        &["does not exist"],
    );
    let names: Vec<_> = std::fs::read_dir(d).unwrap().collect();
    assert!(names.is_empty(), "{names:?}");
}
