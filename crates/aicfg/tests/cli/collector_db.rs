//! A database written by the op collector (`collector/`, numpy engine, `--quick`) installs with
//! `data install --from` and answers `--database-mode silicon`, system file skeleton included.
//! The fixture is the collector's output minus its `.progress/` checkpoints; regenerate it with
//! `python -m aicfg_collector --system-name collector_fixture --backend vllm --quick
//! --engine numpy --ops gemm,attention,elementwise --backend-version 0.0.1 --out DIR`.
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/collector_db")
}

fn run(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aicfg"))
        .env("AICFG_DATA_DIR", data_dir)
        .args(args)
        .output()
        .expect("the aicfg binary runs")
}

fn ok(data_dir: &Path, args: &[&str]) -> String {
    let o = run(data_dir, args);
    assert!(
        o.status.success(),
        "aicfg {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn estimate(data_dir: &Path, mode: &str) -> Value {
    let sys = fixture();
    let out = ok(
        data_dir,
        &[
            "cli",
            "estimate",
            "--model",
            "QWEN3_8B",
            "--system",
            "collector_fixture",
            "--systems-path",
            sys.to_str().unwrap(),
            "--backend",
            "vllm",
            "--isl",
            "256",
            "--osl",
            "32",
            "--database-mode",
            mode,
            "--json",
        ],
    );
    serde_json::from_str(&out).unwrap()
}

fn source(v: &Value, part: &str, op: &str) -> String {
    v[part]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == op)
        .unwrap_or_else(|| panic!("no {op} in {part}"))["source"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn collector_output_installs_and_answers_silicon() {
    let data = tempfile::tempdir().unwrap();
    let from = fixture();
    let out = ok(
        data.path(),
        &["data", "install", "--from", from.to_str().unwrap()],
    );
    // gemm, context + generation attention, element-wise: 16 + 20 + 20 + 15 rows.
    assert!(out.contains("4 tables, 71 rows"), "{out}");
    assert!(out.contains("1 system YAMLs"), "{out}");
    let list = ok(data.path(), &["data", "list"]);
    assert!(
        list.contains("collector_fixture") && list.contains("0.0.1"),
        "{list}"
    );

    let si = estimate(data.path(), "silicon");
    for op in ["qkv_proj", "attention", "ffn_down", "lm_head"] {
        assert_eq!(source(&si, "decode_ops", op), "silicon", "{op}");
        assert_eq!(source(&si, "context_ops", op), "silicon", "{op}");
    }
    // No table family for norms: the formulas answer, in every mode.
    assert_eq!(source(&si, "decode_ops", "add_norm_1"), "empirical");
    // The measured tables, not the formulas, set the times.
    let em = estimate(data.path(), "empirical");
    let (a, b) = (
        si["tpot_ms"].as_f64().unwrap(),
        em["tpot_ms"].as_f64().unwrap(),
    );
    assert!(
        a.is_finite() && a > 0.0 && (a - b).abs() > 1e-6 * b,
        "{a} {b}"
    );

    // Installing the same collection again changes nothing.
    let again = ok(
        data.path(),
        &["data", "install", "--from", from.to_str().unwrap()],
    );
    assert!(
        again.to_lowercase().contains("unchanged") || again.contains("already"),
        "{again}"
    );
}
