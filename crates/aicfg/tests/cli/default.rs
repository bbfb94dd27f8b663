//! End-to-end tests of `aicfg cli default`: report snapshots (dense, MoE, DeepSeek), JSON,
//! flag spellings, determinism, recommend mode, backend auto, and bad input.
use crate::common::{aicfg, json, ok};

/// Fails with a message on stderr, nothing on stdout, exit code 2, no panic.
fn fails(args: &[&str], needle: &str) {
    let o = aicfg(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "aicfg {args:?}: {err}");
    assert!(o.stdout.is_empty());
    assert!(
        err.contains(needle),
        "stderr of {args:?} lacks {needle:?}:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

const DENSE: &[&str] = &[
    "cli",
    "default",
    "--model",
    "QWEN3_32B",
    "--total_gpus",
    "32",
    "--system",
    "h200_sxm",
];

#[test]
fn dense_report_snapshot() {
    let out = ok(DENSE);
    for section in [
        "Input Configuration & SLA Target:",
        "Overall best system chosen:",
        "Overall Best Configuration:",
        "Pareto Frontier:",
        "Worker Setup:",
        "Deployment Details:",
        "disagg Top Configurations:",
        "agg Top Configurations:",
        "tokens/s/gpu",
        "XX best",
    ] {
        assert!(out.contains(section), "missing {section:?}");
    }
    insta::assert_snapshot!("default_qwen3_32b_h200_32", out);
}

#[test]
fn moe_report_snapshot() {
    let out = ok(&[
        "cli",
        "default",
        "--model",
        "Qwen/Qwen3-30B-A3B",
        "--total-gpus",
        "16",
        "--system",
        "h200_sxm",
        "--backend",
        "vllm",
    ]);
    assert!(out.contains("is_moe: True"));
    insta::assert_snapshot!("default_qwen3_30b_a3b_h200_16_vllm", out);
}

#[test]
fn deepseek_report_snapshot() {
    let out = ok(&[
        "cli",
        "default",
        "--model",
        "DEEPSEEK_V3",
        "--total_gpus",
        "64",
        "--system",
        "h200_sxm",
        "--ttft",
        "3000",
        "--tpot",
        "50",
    ]);
    insta::assert_snapshot!("default_deepseek_v3_h200_64", out);
}

#[test]
fn both_flag_spellings_and_deterministic_output() {
    let a = ok(DENSE);
    let b = ok(&[
        "cli",
        "default",
        "--model",
        "Qwen/Qwen3-32B",
        "--total-gpus",
        "32",
        "--system",
        "h200_sxm",
    ]);
    assert_eq!(a, b, "same input, byte-identical report");
    let j1 = ok(&[DENSE, &["--json"]].concat());
    let j2 = ok(&[DENSE, &["--json"]].concat());
    assert_eq!(j1, j2);
}

#[test]
fn json_matches_report_and_sla() {
    let v = json(
        &[
            DENSE,
            &[
                "--ttft", "1500", "--tpot", "25", "--isl", "2000", "--osl", "500",
            ],
        ]
        .concat(),
    );
    assert_eq!(v["total_gpus"], 32);
    assert_eq!(v["ttft_ms"], 1500.0);
    let best = &v["best"];
    assert!(best["ttft_ms"].as_f64().unwrap() <= 1500.0);
    assert!(best["tpot_ms"].as_f64().unwrap() <= 25.0);
    assert!(best["total_gpus_used"].as_u64().unwrap() <= 32);
    let modes = v["modes"].as_array().unwrap();
    assert_eq!(modes.len(), 2);
    for m in modes {
        let top = m["top"].as_array().unwrap();
        assert!(!top.is_empty() && top.len() <= 5);
        let pareto = m["pareto"].as_array().unwrap();
        let xs: Vec<f64> = pareto
            .iter()
            .map(|p| p["tokens_per_s_per_user"].as_f64().unwrap())
            .collect();
        assert!(
            xs.windows(2).all(|w| w[0] <= w[1]),
            "frontier sorted by tokens/s/user"
        );
    }
    // The verdict names the winner and the ratio of the two best.
    let c = &v["comparison"];
    let ratio = c["ratio"].as_f64().unwrap();
    assert!(ratio >= 1.0);
    // And the text report prints the same best throughput.
    let text = ok(&[
        DENSE,
        &[
            "--ttft", "1500", "--tpot", "25", "--isl", "2000", "--osl", "500",
        ],
    ]
    .concat());
    let line = format!(
        "at {:.2} tokens/s/gpu",
        best["tokens_per_s_per_gpu"].as_f64().unwrap()
    );
    assert!(text.contains(&line), "{line} not in report");
}

#[test]
fn serving_mode_and_top_n() {
    let v = json(&[DENSE, &["--serving-mode", "agg", "--top_n", "2"]].concat());
    let modes = v["modes"].as_array().unwrap();
    assert_eq!(modes.len(), 1);
    assert_eq!(modes[0]["mode"], "agg");
    assert_eq!(modes[0]["top"].as_array().unwrap().len(), 2);
    assert!(v["comparison"].is_null());
}

#[test]
fn backend_auto_searches_all_three() {
    let v = json(&[
        "cli",
        "default",
        "--model",
        "LLAMA3.1_8B",
        "--total_gpus",
        "8",
        "--system",
        "h100_sxm",
        "--backend",
        "auto",
    ]);
    let b: Vec<&str> = v["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(b, ["trtllm", "vllm", "sglang"]);
    let out = ok(&[
        "cli",
        "default",
        "--model",
        "LLAMA3.1_8B",
        "--total_gpus",
        "8",
        "--system",
        "h100_sxm",
        "--backend",
        "auto",
    ]);
    assert!(out.contains("| backend |") || out.contains("backend"));
}

#[test]
fn recommend_mode_finds_fewest_gpus() {
    let v = json(&[
        "cli",
        "default",
        "--model",
        "QWEN3_32B",
        "--system",
        "h200_sxm",
        "--target-request-rate",
        "20",
    ]);
    let best = &v["best"];
    let gpus = best["total_gpus_used"].as_u64().unwrap();
    assert!(best["request_rate"].as_f64().unwrap() >= 20.0);
    // No SLA-meeting point of either mode needs fewer GPUs.
    for m in v["modes"].as_array().unwrap() {
        for c in m["top"].as_array().unwrap() {
            assert!(c["total_gpus_used"].as_u64().unwrap() >= gpus);
        }
    }
    let out = ok(&[
        "cli",
        "default",
        "--model",
        "QWEN3_32B",
        "--system",
        "h200_sxm",
        "--target-concurrency",
        "500",
    ]);
    assert!(out.contains("Target Load: 500 concurrent requests"));
    assert!(out.contains("Sorted by GPUs needed"));
}

#[test]
fn unmeetable_sla_is_a_report_not_an_error() {
    let out = ok(&[DENSE, &["--ttft", "10", "--tpot", "1"]].concat());
    assert!(out.contains("No configuration meets the SLA"));
    assert!(out.contains("closest to the SLA"));
}

#[test]
fn bad_input() {
    fails(
        &[
            "cli",
            "default",
            "--model",
            "QWEN3_32B",
            "--total_gpus",
            "0",
            "--system",
            "h200_sxm",
        ],
        "at least 1",
    );
    fails(
        &[
            "cli",
            "default",
            "--model",
            "QWEN3_32B",
            "--total_gpus",
            "-4",
            "--system",
            "h200_sxm",
        ],
        "at least 1",
    );
    fails(
        &[
            "cli",
            "default",
            "--model",
            "QWEN3_32B",
            "--system",
            "h200_sxm",
        ],
        "--total_gpus is required",
    );
    fails(
        &[
            "cli",
            "default",
            "--model",
            "QWEN3_32B",
            "--total_gpus",
            "8",
            "--system",
            "h900",
        ],
        "unknown system 'h900'",
    );
    fails(
        &[
            "cli",
            "default",
            "--model",
            "NOPE",
            "--total_gpus",
            "8",
            "--system",
            "h200_sxm",
        ],
        "NOPE",
    );
    fails(
        &[
            "cli",
            "default",
            "--model",
            "DEEPSEEK_V3",
            "--total_gpus",
            "4",
            "--system",
            "h100_sxm",
        ],
        "no deployment of",
    );
    fails(&[DENSE, &["--ttft", "-5"]].concat(), "invalid ttft");
    fails(
        &[DENSE, &["--serving-mode", "both-ish"]].concat(),
        "--serving-mode",
    );
    fails(&[DENSE, &["--backend", "tgi"]].concat(), "unknown backend");
    fails(
        &[
            "cli",
            "default",
            "--model",
            "QWEN3_32B",
            "--total_gpus",
            "8",
            "--system",
            "a100_sxm",
            "--gemm-quant-mode",
            "fp8",
        ],
        "fp8",
    );
    fails(&[DENSE, &["--gemm-quant-mode", "fp7"]].concat(), "fp7");
    fails(
        &[
            DENSE,
            &["--target-request-rate", "3", "--target-concurrency", "4"],
        ]
        .concat(),
        "either",
    );
}

#[test]
fn cost_in_the_report_and_rank_by_cost() {
    fails(
        &[DENSE, &["--rank-by", "cost"]].concat(),
        "--gpu-cost-per-hour",
    );
    fails(
        &[DENSE, &["--gpu-cost-per-hour", "-2"]].concat(),
        "gpu_cost_per_hour",
    );
    fails(
        &[DENSE, &["--rank-by", "price"]].concat(),
        "throughput, cost",
    );
    let out = ok(&[DENSE, &["--gpu-cost-per-hour", "2.5", "--rank-by", "cost"]].concat());
    assert!(out.contains("per million output tokens"), "{out}");
    assert!(out.contains("Sorted by $/M output tokens"), "{out}");
    assert!(out.contains("$/M output tokens |"), "{out}");
    let v = json(&[DENSE, &["--gpu-cost-per-hour", "2.5"]].concat());
    let best = &v["best"];
    let used = best["total_gpus_used"].as_f64().unwrap();
    assert_eq!(best["cost"]["usd_per_hour"].as_f64().unwrap(), 2.5 * used);
    // Unpriced output keeps its old shape.
    let v = json(DENSE);
    assert!(v["best"].get("cost").is_none(), "{}", v["best"]);
}
