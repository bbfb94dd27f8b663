//! End-to-end tests of the `aicfg` binary: the estimate report and `--json`, error handling for
//! bad input, Hugging Face `config.json` parsing per model family, and the bench harness.
use crate::common::{self, aicfg, json, ok, repo_file, temp_dir};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("stderr is UTF-8")
}

fn num(v: &Value, key: &str) -> f64 {
    v.get(key)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("key '{key}' missing or not a number in {v}"))
}

/// Run, require a clean user error: non-zero exit that is not a panic, exactly one stderr line
/// starting with "error: ", nothing on stdout, and every `needle` in the message.
fn fails_cleanly(args: &[&str], needles: &[&str]) -> String {
    let o = aicfg(args);
    let err = stderr(&o);
    let code = o.status.code();
    assert!(
        !o.status.success(),
        "aicfg {args:?} should fail, got success:\n{}",
        stdout(&o)
    );
    assert_ne!(code, Some(101), "aicfg {args:?} panicked:\n{err}");
    assert!(
        code.is_some(),
        "aicfg {args:?} was killed by a signal:\n{err}"
    );
    assert!(!err.contains("panicked"), "aicfg {args:?} panicked:\n{err}");
    assert!(
        err.starts_with("error: "),
        "aicfg {args:?}: stderr should start with 'error: ':\n{err}"
    );
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "aicfg {args:?}: error should be one line:\n{err}"
    );
    assert!(
        stdout(&o).is_empty(),
        "aicfg {args:?}: nothing expected on stdout"
    );
    for n in needles {
        assert!(
            err.contains(n),
            "aicfg {args:?}: stderr lacks '{n}':\n{err}"
        );
    }
    err
}

fn fixture(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
        .display()
        .to_string()
}

/// A directory holding `config.json` with `text`; returns the directory.
fn config_dir(tag: &str, text: &str) -> PathBuf {
    let d = temp_dir(tag);
    std::fs::write(d.join("config.json"), text).expect("write config.json");
    d
}

const QWEN_TP2: &[&str] = &[
    "cli",
    "estimate",
    "--model",
    "QWEN3_32B",
    "--system",
    "h200_sxm",
    "--backend",
    "trtllm",
    "--tp-size",
    "2",
    "--batch-size",
    "32",
    "--isl",
    "4000",
    "--osl",
    "1000",
];

fn with(base: &[&'static str], extra: &[&'static str]) -> Vec<&'static str> {
    base.iter().chain(extra).copied().collect()
}

// ---------------------------------------------------------------- report and --json

/// A GPU-hour price: 2 GPUs at $3 = $6 an hour over the estimate's own tokens, in the JSON and
/// as report rows; unpriced, `cost` is null and the rows are absent.
#[test]
fn a_price_gives_dollars_per_million_tokens() {
    let v = json(&with(QWEN_TP2, &["--gpu-cost-per-hour", "3"]));
    let c = &v["cost"];
    assert_eq!(c["usd_per_hour"], 6.0);
    let out_per_s = num(&v, "tokens_per_s");
    let want = 6.0 / (out_per_s * 3600.0) * 1e6;
    let got = c["usd_per_m_output_tokens"].as_f64().unwrap();
    assert!((got - want).abs() <= 1e-3 + 1e-3 * want, "{got} vs {want}");
    let in_per_s = num(&v, "request_rate") * 4000.0;
    let want = 6.0 / (in_per_s * 3600.0) * 1e6;
    let got = c["usd_per_m_input_tokens"].as_f64().unwrap();
    assert!((got - want).abs() <= 2e-3 + 2e-3 * want, "{got} vs {want}");
    let out = ok(&with(QWEN_TP2, &["--gpu-cost-per-hour", "3"]));
    for row in [
        "$ per million output tokens",
        "$ per million input tokens",
        "$ per hour (GPUs)",
    ] {
        assert!(out.contains(row), "{row} missing:\n{out}");
    }
    assert!(json(QWEN_TP2)["cost"].is_null());
    assert!(!ok(QWEN_TP2).contains("$ per"));
    fails_cleanly(
        &with(QWEN_TP2, &["--gpu-cost-per-hour", "-2"]),
        &["gpu_cost_per_hour", "non-negative"],
    );
}

#[test]
fn estimate_report_for_qwen3_32b_tp2() {
    let out = ok(QWEN_TP2);
    for s in [
        "TTFT",
        "TPOT",
        "Memory per GPU",
        "Context pass",
        "Decode step",
        "empirical",
    ] {
        assert!(out.contains(s), "report lacks '{s}':\n{out}");
    }
    insta::assert_snapshot!("estimate_qwen3_32b_h200_tp2_bs32", out);
}

#[test]
fn json_has_the_documented_keys() {
    let v = json(QWEN_TP2);
    for k in [
        "ttft_ms",
        "tpot_ms",
        "request_latency_ms",
        "tokens_per_s_per_gpu",
        "tokens_per_s_per_user",
        "memory_gib",
    ] {
        let x = num(&v, k);
        assert!(x.is_finite() && x > 0.0, "{k} = {x} should be positive");
    }
    assert!(
        v.get("oom").and_then(Value::as_bool).is_some(),
        "oom should be a boolean: {v}"
    );
    assert_eq!(
        v["oom"],
        Value::Bool(false),
        "Qwen3-32B tp2 bs32 fits on H200"
    );
    assert!(num(&v, "request_latency_ms") >= num(&v, "ttft_ms"));
}

#[test]
fn underscore_and_dash_spellings_agree() {
    let dash = ok(QWEN_TP2);
    let underscore = ok(&[
        "cli",
        "estimate",
        "--model",
        "QWEN3_32B",
        "--system",
        "h200_sxm",
        "--backend",
        "trtllm",
        "--tp_size",
        "2",
        "--batch_size",
        "32",
        "--isl",
        "4000",
        "--osl",
        "1000",
    ]);
    assert_eq!(dash, underscore);
}

#[test]
fn hugging_face_id_reaches_the_builtin() {
    let by_name = ok(QWEN_TP2);
    let mut args = QWEN_TP2.to_vec();
    args[3] = "Qwen/Qwen3-32B";
    assert_eq!(by_name, ok(&args));
}

#[test]
fn disagg_mode_works() {
    let args = [
        "cli",
        "estimate",
        "--model",
        "QWEN3_32B",
        "--system",
        "h200_sxm",
        "--estimate-mode",
        "disagg",
        "--prefill-tp-size",
        "1",
        "--prefill-num-workers",
        "2",
        "--decode-tp-size",
        "2",
        "--decode-batch-size",
        "32",
    ];
    let v = json(&args);
    assert_eq!(v["mode"], "disagg");
    assert!(num(&v, "ttft_ms") > 0.0 && num(&v, "tpot_ms") > 0.0);
    assert!(num(&v, "tokens_per_s_per_gpu") > 0.0);
    let workers = v["workers"].as_array().expect("workers array");
    assert_eq!(workers.len(), 2, "a prefill and a decode worker: {v}");
    // 2 prefill workers × 1 GPU + 1 decode worker × 2 GPUs.
    assert_eq!(num(&v, "num_gpus"), 4.0);
    let report = ok(&args);
    assert!(
        report.contains("prefill") && report.contains("decode"),
        "{report}"
    );
}

#[test]
fn static_mode_works() {
    let v = json(&with(QWEN_TP2, &["--estimate-mode", "static"]));
    assert_eq!(v["mode"], "static");
    assert!(num(&v, "ttft_ms") > 0.0 && num(&v, "tpot_ms") > 0.0);
}

#[test]
fn sol_is_faster_than_empirical() {
    let emp = json(QWEN_TP2);
    let sol = json(&with(QWEN_TP2, &["--database-mode", "sol"]));
    assert_eq!(sol["database_mode"], "sol");
    assert_eq!(emp["database_mode"], "empirical");
    assert!(
        num(&sol, "ttft_ms") < num(&emp, "ttft_ms"),
        "sol ttft {} should be below empirical {}",
        num(&sol, "ttft_ms"),
        num(&emp, "ttft_ms")
    );
    assert!(num(&sol, "tpot_ms") < num(&emp, "tpot_ms"));
}

#[test]
fn output_is_deterministic() {
    assert_eq!(ok(QWEN_TP2), ok(QWEN_TP2));
    let j = with(QWEN_TP2, &["--json"]);
    assert_eq!(ok(&j), ok(&j));
}

#[test]
fn systems_path_adds_a_user_system() {
    let text = std::fs::read_to_string(repo_file("data/systems/h200_sxm.yaml"))
        .expect("read h200_sxm.yaml");
    let dir = temp_dir("systems");
    std::fs::write(
        dir.join("my_h200.yaml"),
        text.replace("name: h200_sxm", "name: my_h200"),
    )
    .unwrap();
    let d = dir.display().to_string();
    let mut args = QWEN_TP2.to_vec();
    args[5] = "my_h200";
    // Unknown without the directory, identical numbers to h200_sxm with it.
    fails_cleanly(&args, &["unknown system 'my_h200'"]);
    let mut with_dir = args.clone();
    with_dir.extend(["--systems-path", d.as_str(), "--json"]);
    let mut user: Value = serde_json::from_str(&ok(&with_dir)).unwrap();
    let mut builtin = json(QWEN_TP2);
    assert_eq!(user["workers"][0]["system"], "my_h200");
    for v in [&mut user, &mut builtin] {
        v["workers"][0]["system"] = Value::Null;
        // The "no measured database for <system>" note names the system.
        v["notes"] = Value::Null;
    }
    assert_eq!(user, builtin);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------- errors

fn qwen(extra: &[&'static str]) -> Vec<&'static str> {
    with(
        &[
            "cli",
            "estimate",
            "--model",
            "QWEN3_32B",
            "--system",
            "h200_sxm",
        ],
        extra,
    )
}

#[test]
fn unknown_model_lists_known_models() {
    fails_cleanly(
        &[
            "cli",
            "estimate",
            "--model",
            "QWEN9_999B",
            "--system",
            "h200_sxm",
        ],
        &["unknown model", "QWEN9_999B", "QWEN3_32B"],
    );
}

#[test]
fn unknown_system_lists_known_systems() {
    fails_cleanly(
        &[
            "cli",
            "estimate",
            "--model",
            "QWEN3_32B",
            "--system",
            "h300_sxm",
        ],
        &["unknown system", "h300_sxm", "h200_sxm"],
    );
}

/// A typo of a model, system, backend or format names the closest known name first.
#[test]
fn typos_get_a_did_you_mean() {
    for (flag, typo, want) in [
        (
            "--model",
            "QWEN3_32",
            "unknown model 'QWEN3_32'; did you mean 'QWEN3_32B'? known: ",
        ),
        (
            "--system",
            "h200_sx",
            "unknown system 'h200_sx'; did you mean 'h200_sxm'? known: ",
        ),
        (
            "--backend",
            "trtlm",
            "unknown backend 'trtlm'; did you mean 'trtllm'? known: ",
        ),
        (
            "--gemm-quant-mode",
            "fp8_blok",
            "unknown gemm quant mode 'fp8_blok'; did you mean 'fp8_block'? known: ",
        ),
    ] {
        let mut args = vec![
            "cli",
            "estimate",
            "--model",
            "QWEN3_32B",
            "--system",
            "h200_sxm",
        ];
        match args.iter().position(|a| *a == flag) {
            Some(i) => args[i + 1] = typo,
            None => args.extend([flag, typo]),
        }
        let err = fails_cleanly(&args, &[want]);
        assert!(err.starts_with(&format!("error: {want}")), "{err}");
    }
}

#[test]
fn unknown_backend_lists_known_backends() {
    fails_cleanly(
        &qwen(&["--backend", "tgi"]),
        &["unknown backend", "tgi", "trtllm", "vllm", "sglang"],
    );
}

#[test]
fn unknown_quant_mode_lists_known_modes() {
    fails_cleanly(
        &qwen(&["--gemm-quant-mode", "fp3"]),
        &["gemm quant mode", "fp3", "bfloat16", "fp8", "nvfp4"],
    );
    fails_cleanly(
        &qwen(&["--kvcache-quant-mode", "fp2"]),
        &["kvcache quant mode", "fp2", "fp8"],
    );
}

#[test]
fn unknown_database_mode_is_an_error() {
    fails_cleanly(
        &qwen(&["--database-mode", "oracle"]),
        &["database mode", "sol", "empirical"],
    );
}

#[test]
fn unknown_estimate_mode_is_an_error() {
    fails_cleanly(
        &qwen(&["--estimate-mode", "split"]),
        &["estimate mode", "agg", "disagg", "static"],
    );
}

#[test]
fn tp_that_does_not_divide_the_heads() {
    fails_cleanly(&qwen(&["--tp-size", "3"]), &["tp", "3", "heads", "divide"]);
}

#[test]
fn dtype_the_gpu_lacks_is_an_error() {
    fails_cleanly(
        &[
            "cli",
            "estimate",
            "--model",
            "QWEN3_32B",
            "--system",
            "a100_sxm",
            "--gemm-quant-mode",
            "fp8",
        ],
        &["a100_sxm", "fp8"],
    );
}

#[test]
fn config_json_that_is_not_json() {
    let d = config_dir("badjson", "{ \"architectures\": [\"LlamaForCausalLM\"], ");
    let p = d.display().to_string();
    fails_cleanly(
        &["cli", "estimate", "--model", &p, "--system", "h200_sxm"],
        &["not valid JSON"],
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn config_json_missing_fields() {
    let d = config_dir(
        "missing",
        r#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "vocab_size": 32000}"#,
    );
    let p = d.join("config.json").display().to_string();
    fails_cleanly(
        &["cli", "estimate", "--model", &p, "--system", "h200_sxm"],
        &["missing required field"],
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn config_json_without_architectures() {
    let d = config_dir("noarch", r#"{"hidden_size": 4096}"#);
    let p = d.display().to_string();
    fails_cleanly(
        &["cli", "estimate", "--model", &p, "--system", "h200_sxm"],
        &["architectures"],
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn unsupported_architecture_is_named() {
    let d = config_dir(
        "arch",
        r#"{"architectures": ["MambaForCausalLM"], "hidden_size": 2560, "num_hidden_layers": 64, "vocab_size": 50280}"#,
    );
    let p = d.display().to_string();
    fails_cleanly(
        &["cli", "estimate", "--model", &p, "--system", "h200_sxm"],
        &[
            "unsupported architecture",
            "MambaForCausalLM",
            "LlamaForCausalLM",
        ],
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn zero_or_negative_lengths_and_batch() {
    fails_cleanly(&qwen(&["--isl", "0"]), &["isl"]);
    fails_cleanly(&qwen(&["--osl", "-5"]), &["osl", "-5"]);
    fails_cleanly(&qwen(&["--batch-size", "0"]), &["batch_size", "at least 1"]);
    fails_cleanly(
        &qwen(&["--batch_size", "-1"]),
        &["batch_size", "at least 1"],
    );
}

#[test]
fn zero_parallel_size_is_an_error() {
    fails_cleanly(&qwen(&["--tp-size", "0"]), &["at least 1"]);
}

// ---------------------------------------------------------------- config.json per family

/// Estimate a fixture model on H200 and return its JSON.
fn fixture_estimate(family: &str, extra: &[&str]) -> Value {
    let dir = fixture(family);
    let mut args = vec![
        "cli",
        "estimate",
        "--model",
        dir.as_str(),
        "--system",
        "h200_sxm",
        "--batch-size",
        "8",
        // Inside every fixture's context window (GPT-2: 1024 positions).
        "--isl",
        "600",
        "--osl",
        "200",
    ];
    args.extend_from_slice(extra);
    let v = json(&args);
    // The path was parsed (a built-in of a similar name was not picked instead).
    assert_eq!(v["model"], family, "{v}");
    for k in ["ttft_ms", "tpot_ms", "memory_gib", "tokens_per_s_per_gpu"] {
        assert!(num(&v, k) > 0.0, "{family}: {k} should be positive");
    }
    v
}

fn op_names(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} missing"))
        .iter()
        .map(|o| o["name"].as_str().expect("op name").to_string())
        .collect()
}

#[test]
fn config_json_dense_llama_like() {
    let v = fixture_estimate("llama", &[]);
    let ops = op_names(&v, "context_ops");
    assert!(ops.iter().any(|o| o == "qkv_proj"), "{ops:?}");
    fixture_estimate("llama", &["--tp-size", "4"]);
    // 16 heads cannot be split over 3 GPUs.
    let dir = fixture("llama");
    fails_cleanly(
        &[
            "cli",
            "estimate",
            "--model",
            &dir,
            "--system",
            "h200_sxm",
            "--isl",
            "600",
            "--tp-size",
            "3",
        ],
        &["heads"],
    );
}

#[test]
fn config_json_moe_mixtral_like() {
    let v = fixture_estimate("mixtral", &[]);
    assert!(
        op_names(&v, "context_ops")
            .iter()
            .any(|o| o.contains("moe")),
        "{v}"
    );
    fixture_estimate("mixtral", &["--tp-size", "2", "--moe-ep-size", "2"]);
    fixture_estimate("mixtral", &["--tp-size", "2", "--moe-tp-size", "2"]);
}

#[test]
fn config_json_deepseek_v3_like() {
    // MLA attention, one dense first layer, a shared expert, an MTP layer.
    let file = format!("{}/config.json", fixture("deepseek_v3"));
    let v = json(&["cli", "estimate", "--model", &file, "--system", "h200_sxm"]);
    assert_eq!(v["model"], "deepseek_v3");
    let ctx = op_names(&v, "context_ops");
    for needle in ["mla", "dense_ffn", "shared_expert", "moe"] {
        assert!(
            ctx.iter().any(|o| o.contains(needle)),
            "no '{needle}' op in {ctx:?}"
        );
    }
    fixture_estimate("deepseek_v3", &["--tp-size", "2", "--moe-ep-size", "2"]);
    fixture_estimate(
        "deepseek_v3",
        &["--attention-dp-size", "2", "--moe-ep-size", "2"],
    );
    fixture_estimate(
        "deepseek_v3",
        &["--nextn", "1", "--nextn-accept-rate", "0.7"],
    );
}

#[test]
fn config_json_gpt2_like() {
    fixture_estimate("gpt2", &[]);
    fixture_estimate("gpt2", &["--tp-size", "4", "--backend", "vllm"]);
}

// ---------------------------------------------------------------- bench harness

#[test]
fn bench_accuracy_writes_per_row_predictions() {
    let dir = temp_dir("bench");
    let out = dir.join("predictions.csv");
    let out_s = out.display().to_string();
    let csv = fixture("measured_runs.csv");
    let report = ok(&[
        "bench",
        "accuracy",
        "--csv",
        &csv,
        "--predictions-out",
        &out_s,
    ]);
    assert!(
        report.contains("TTFT") && report.contains("TPOT"),
        "{report}"
    );
    let text = std::fs::read_to_string(&out).expect("predictions written");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("id,pred_ttft_ms,pred_tpot_ms,status,detail")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 4, "{text}");
    assert!(
        rows[0].starts_with("qwen3_32b_h200_trtllm_agg_tp2_c32,") && rows[0].contains(",ok,"),
        "{text}"
    );
    assert!(rows[2].contains("underspecified"), "{text}");
    assert!(rows[3].starts_with("unknown_model_row,,,"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_accuracy_missing_file_is_an_error() {
    fails_cleanly(
        &["bench", "accuracy", "--csv", "/nonexistent/aicfg/runs.csv"],
        &["/nonexistent/aicfg/runs.csv"],
    );
}

// ---------------------------------------------------------------- MTP

/// One acceptance rule: `cli estimate` defaults to `cli default`'s rates, and a per-token rate r
/// means the rates r, r², ...
#[test]
fn estimate_mtp_acceptance_follows_the_one_rule() {
    let est = |extra: &[&str]| {
        let mut a = vec![
            "cli",
            "estimate",
            "--model",
            "DEEPSEEK_V3",
            "--system",
            "h200_sxm",
            "--tp-size",
            "8",
            "--batch-size",
            "16",
            "--isl",
            "1000",
            "--osl",
            "200",
            "--nextn",
            "2",
        ];
        a.extend(extra);
        let v = json(&a);
        (
            v["tpot_ms"].as_f64().unwrap(),
            v["request_latency_ms"].as_f64().unwrap(),
        )
    };
    let default = est(&[]);
    assert_eq!(default, est(&["--nextn-accept-rates", "0.85,0.3"]));
    assert_eq!(
        est(&["--nextn-accept-rate", "0.5"]),
        est(&["--nextn-accept-rates", "0.5,0.25"])
    );
    // Fewer accepted drafts: more decode steps per request.
    assert!(est(&["--nextn-accept-rates", "0,0"]).1 > default.1);
    let o = aicfg(&[
        "cli",
        "estimate",
        "--model",
        "QWEN3_32B",
        "--system",
        "h200_sxm",
        "--nextn",
        "1",
        "--nextn-accept-rates",
        "1.5",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("between 0 and 1, got 1.5"));
}

/// The original README's short forms: `cli --model ...` is `cli default`; `cli ... --yaml_path`
/// with search flags says exactly what to type.
#[test]
fn seed_short_forms() {
    let v = common::ok_json(&[
        "cli",
        "--model",
        "QWEN3_8B",
        "--total_gpus",
        "8",
        "--system",
        "h200_sxm",
        "--json",
    ]);
    assert!(v["best"].is_object(), "{v}");
    let o = common::aicfg(&[
        "cli",
        "--model",
        "QWEN3_32B",
        "--total_gpus",
        "32",
        "--system",
        "h200_sxm",
        "--yaml_path",
        "custom.yaml",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("aicfg cli exp --yaml_path custom.yaml\n"),
        "{err}"
    );
    assert!(
        err.contains("aicfg cli default --model QWEN3_32B --total_gpus 32 --system h200_sxm"),
        "{err}"
    );
    // The original tool's `enable_wideep` spelling works as a flag too.
    for spelling in ["--enable_wideep", "--enable-wideep", "--enable_wide_ep"] {
        let v = common::ok_json(&[
            "cli",
            "default",
            "--model",
            "QWEN3_30B_A3B",
            "--total_gpus",
            "8",
            "--system",
            "h200_sxm",
            spelling,
            "--json",
        ]);
        assert!(v["best"].is_object(), "{spelling}: {v}");
    }
}

/// Inputs the serving stack would refuse are errors; ones that run with a caveat are notes.
#[test]
fn silent_cases_speak() {
    // Beyond the context window: an error that says what to type.
    let o = aicfg(&[
        "cli",
        "estimate",
        "--model",
        "LLAMA2_7B",
        "--system",
        "h200_sxm",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("5000 tokens exceeds") && err.contains("4096"),
        "{err}"
    );
    // TensorRT-LLM on an AMD GPU: an error naming the backends that run there.
    let o = aicfg(&[
        "cli", "estimate", "--model", "QWEN3_8B", "--system", "mi300x",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("NVIDIA GPUs only") && err.contains("--backend vllm"),
        "{err}"
    );
    // An NVFP4 checkpoint on Hopper and MTP on a model without MTP layers: notes.
    let v = json(&[
        "cli",
        "estimate",
        "--model",
        "nvidia/Qwen3-32B-NVFP4",
        "--system",
        "h200_sxm",
        "--nextn",
        "1",
        "--nextn-accept-rate",
        "0.5",
    ]);
    let notes = v["notes"].to_string();
    assert!(
        notes.contains("downgraded from nvfp4 (checkpoint)"),
        "{notes}"
    );
    assert!(notes.contains("no MTP layers"), "{notes}");
    assert_eq!(v["workers"][0]["quant"]["gemm"], "nvfp4_wo");
    // NVFP4 asked for by flag on Hopper: the same weight-only run, with the flag in the note.
    let v = json(&[
        "cli",
        "estimate",
        "--model",
        "QWEN3_32B",
        "--system",
        "h200_sxm",
        "--gemm-quant-mode",
        "nvfp4",
    ]);
    let notes = v["notes"].to_string();
    assert!(
        notes.contains(
            "downgraded from nvfp4 (--gemm-quant-mode): h200_sxm has no FP4 tensor cores"
        ),
        "{notes}"
    );
    assert_eq!(v["workers"][0]["quant"]["gemm"], "nvfp4_wo");
    // --gemm-quant-mode fp8 alone: the KV cache and attention follow it, and the report says so.
    let v = json(&[
        "cli",
        "estimate",
        "--model",
        "QWEN3_32B",
        "--system",
        "h200_sxm",
        "--gemm-quant-mode",
        "fp8",
    ]);
    let o = &v["workers"][0]["quant_origin"];
    assert_eq!(o["gemm"], "--gemm-quant-mode");
    assert_eq!(o["kvcache"], "follows --gemm-quant-mode");
    assert_eq!(o["fmha"], "follows the KV cache");
    let text = ok(&[
        "cli",
        "estimate",
        "--model",
        "QWEN3_32B",
        "--system",
        "h200_sxm",
    ]);
    assert!(text.contains("gemm bfloat16 (checkpoint)"), "{text}");
    // An estimate that does not fit: headlined, exit 3 with --strict.
    let big = [
        "cli",
        "estimate",
        "--model",
        "DEEPSEEK_V3",
        "--system",
        "h200_sxm",
    ];
    let text = ok(&big);
    assert!(text.contains("OOM: the agg worker"), "{text}");
    let mut strict = big.to_vec();
    strict.push("--strict");
    assert_eq!(aicfg(&strict).status.code(), Some(3));
}

// ---------------------------------------------------------------- accuracy regression

/// Empirical-mode MdAPE on the shipped calibration subset (`fixtures/calib_subset`, 322 rows)
/// stays within 2 points of the recorded figures. A change that moves them on purpose (a refit,
/// a new mechanism) updates these numbers and says so (BENCHMARKS.md records the full set).
// 2026-12-03: no fitted TTFT floor (bounded API path, busy-share wait, per-request host time),
// the MoE kernel mechanisms, the published-layout row mapping, mixed steps averaged over whole
// arrivals; serving constants refitted. Later: the launch floor of uncaptured steps, sweep rows
// priced at the lengths their client drew; refitted. 2026-12-04: prefill attention with the
// exponentials in series and FP8-KV / MLA kernel ratios (op tables); serving refitted. Then
// SGLang's own mem_fraction_static heuristic, rows that cannot hold one request at the
// framework defaults reported as `oom`; refitted. Then GEMM activation quantization; refitted.
// Then decode attention: per-block fixed costs over the SMs, MLA apart, FP8-KV ratio (op tables; the
// serving refit did not improve its objective, so the serving constants stayed). Then NCCL
// ring-step latency inside a node (op tables).
const RECORDED_TTFT_MDAPE: f64 = 31.2;
const RECORDED_TPOT_MDAPE: f64 = 12.1;

#[test]
fn accuracy_on_the_calibration_subset_holds() {
    let rows = fixture("calib_subset/rows.csv");
    let out = tempfile::tempdir().unwrap();
    let preds = out.path().join("pred.csv");
    ok(&[
        "bench",
        "accuracy",
        "--csv",
        &rows,
        "--database-mode",
        "empirical",
        "--predictions-out",
        preds.to_str().unwrap(),
    ]);
    let mut measured = std::collections::HashMap::new();
    for r in csv::Reader::from_path(&rows).unwrap().deserialize() {
        let r: std::collections::HashMap<String, String> = r.unwrap();
        let f = |k: &str| r[k].parse::<f64>().unwrap();
        measured.insert(
            r["id"].clone(),
            (f("silicon_ttft_ms"), f("silicon_tpot_ms")),
        );
    }
    let (mut ttft, mut tpot, mut oom) = (Vec::new(), Vec::new(), 0);
    for r in csv::Reader::from_path(&preds).unwrap().deserialize() {
        let r: std::collections::HashMap<String, String> = r.unwrap();
        // Four DeepSeek-R1 rows on 4×B200 under SGLang ran with their own memory split.
        if r["status"] == "oom" {
            oom += 1;
            continue;
        }
        assert_eq!(r["status"], "ok", "{r:?}");
        let (mt, mo) = measured[&r["id"]];
        ttft.push((r["pred_ttft_ms"].parse::<f64>().unwrap() / mt - 1.0).abs());
        tpot.push((r["pred_tpot_ms"].parse::<f64>().unwrap() / mo - 1.0).abs());
    }
    assert_eq!((ttft.len(), oom), (318, 4));
    let mdape = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        100.0 * (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    let (t, o) = (mdape(&mut ttft), mdape(&mut tpot));
    assert!(
        (t - RECORDED_TTFT_MDAPE).abs() <= 2.0 && (o - RECORDED_TPOT_MDAPE).abs() <= 2.0,
        "calibration-subset MdAPE drifted: TTFT {t:.1} % (recorded {RECORDED_TTFT_MDAPE}), \
         TPOT {o:.1} % (recorded {RECORDED_TPOT_MDAPE})"
    );
}

/// `cli support`: TensorRT-LLM refused on AMD, a model's formats and weight size per system,
/// and the embedded database when none is installed (the test run is hermetic).
#[test]
fn support_lists_combinations() {
    let v = json(&["cli", "support", "--system", "mi300x"]);
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["backend"], "trtllm");
    assert_eq!(rows[0]["status"], "refused");
    assert_eq!(rows[1]["status"], "ok");
    assert_eq!(rows[1]["database"], "empirical");
    let v = json(&[
        "cli",
        "support",
        "--model",
        "QWEN3_32B",
        "--system",
        "h200_sxm",
        "--backend",
        "vllm",
    ]);
    let r = &v[0];
    assert_eq!(r["status"], "ok");
    assert!(r["model_quant"]
        .as_str()
        .unwrap()
        .contains("gemm bfloat16 (checkpoint)"));
    // 32.8 B parameters in bf16 ≈ 61 GiB: one 141 GB H200 holds them.
    let w = r["weights_gib"].as_f64().unwrap();
    assert!((60.0..62.0).contains(&w), "{w}");
    assert_eq!(r["min_gpus"], 1);
    let text = ok(&[
        "cli",
        "support",
        "--model",
        "DEEPSEEK_V3",
        "--system",
        "h100_sxm",
    ]);
    assert!(
        text.contains("Support of deepseek-ai/DeepSeek-V3"),
        "{text}"
    );
}
