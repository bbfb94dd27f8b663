//! `cli estimate` load flags: the simulator's percentiles, determinism, and clear errors.
use crate::common::{aicfg, json, ok, temp_dir};
use serde_json::Value;

const BASE: &[&str] = &[
    "cli",
    "estimate",
    "--model",
    "QWEN3_32B",
    "--system",
    "h200_sxm",
    "--tp-size",
    "2",
    "--isl",
    "2000",
    "--osl",
    "200",
    "--database-mode",
    "empirical",
];

fn with(extra: &[&str]) -> Vec<String> {
    BASE.iter().chain(extra).map(|s| s.to_string()).collect()
}

fn run_json(extra: &[&str]) -> Value {
    let a = with(extra);
    json(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>())
}

fn f(v: &Value, path: &[&str]) -> f64 {
    let mut x = v;
    for k in path {
        x = &x[*k];
    }
    x.as_f64()
        .unwrap_or_else(|| panic!("{path:?} missing in {v}"))
}

#[test]
fn json_has_percentiles_and_rates() {
    let v = run_json(&["--concurrency", "16", "--num-requests", "200"]);
    for k in ["ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"] {
        let (p50, p90, p99) = (f(&v, &[k, "p50"]), f(&v, &[k, "p90"]), f(&v, &[k, "p99"]));
        assert!(p50 > 0.0 && p50 <= p90 && p90 <= p99, "{k}: {v}");
        assert!(f(&v, &[k, "mean"]) > 0.0);
    }
    for k in ["tokens_per_s", "tokens_per_s_per_gpu", "request_rate"] {
        assert!(f(&v, &[k]) > 0.0);
    }
    // The steady-state means stay next to the simulated ones.
    assert!(f(&v, &["steady_state", "ttft_ms"]) > 0.0);
    assert!((f(&v, &["tokens_per_s"]) / f(&v, &["tokens_per_s_per_gpu"]) - 2.0).abs() < 1e-3);
}

#[test]
fn same_seed_same_output_and_loads_differ() {
    let a = with(&[
        "--request-rate",
        "4",
        "--num-requests",
        "150",
        "--isl-dist",
        "uniform:0.5",
        "--seed",
        "7",
        "--json",
    ]);
    let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
    assert_eq!(ok(&a), ok(&a));
    let offline = run_json(&["--offline", "--num-requests", "200"]);
    let closed = run_json(&["--concurrency", "4", "--num-requests", "200"]);
    assert!(f(&offline, &["tokens_per_s"]) > f(&closed, &["tokens_per_s"]));
    assert!(f(&offline, &["ttft_ms", "p99"]) > f(&closed, &["ttft_ms", "p99"]));
}

#[test]
fn table_is_printed() {
    let a = with(&["--concurrency", "2", "--num-requests", "20"]);
    let out = ok(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    assert!(
        out.contains("Simulated: closed loop, concurrency 2"),
        "{out}"
    );
    assert!(out.contains("p99") && out.contains("TTFT") && out.contains("goodput"));
}

#[test]
fn trace_and_bad_inputs_fail_cleanly() {
    let dir = temp_dir("sim");
    let good = dir.join("t.jsonl");
    std::fs::write(
        &good,
        "{\"timestamp\": 0, \"input_length\": 100, \"output_length\": 10}\n{\"timestamp\": 50, \"input_length\": 300, \"output_length\": 20}\n",
    )
    .unwrap();
    let v = run_json(&["--trace", good.to_str().unwrap()]);
    assert_eq!(v["measured_requests"], 2);
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, "{\"timestamp\": 0}\n").unwrap();
    for (extra, needle) in [
        (vec!["--trace", bad.to_str().unwrap()], "input_length"),
        (vec!["--concurrency", "0"], "concurrency"),
        (vec!["--request-rate", "0"], "request rate"),
        (
            vec!["--concurrency", "4", "--isl-dist", "zipf"],
            "length distribution",
        ),
        (
            vec!["--concurrency", "4", "--arrival", "bursty"],
            "--arrival",
        ),
        (vec!["--concurrency", "2", "--offline"], "cannot be used"),
        (
            vec!["--concurrency", "4", "--recv-interval", "0"],
            "recv interval",
        ),
        (
            vec![
                "--concurrency",
                "2",
                "--num-requests",
                "4",
                "--warmup-requests",
                "9",
            ],
            "warm-up",
        ),
    ] {
        let a = with(&extra);
        let o = aicfg(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{extra:?} should fail");
        assert!(err.contains(needle), "{extra:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
