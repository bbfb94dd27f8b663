//! End-to-end tests of `aicfg cli exp`: every shipped example runs, the report has each
//! experiment, the comparison and one chart; JSON; heterogeneous pricing; bad input.
use crate::common::{aicfg, example, ok, temp_dir};
use serde_json::Value;

fn exp_json(path: &str) -> Value {
    let out = ok(&["cli", "exp", "--yaml_path", path, "--json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("--json does not parse: {e}\n{out}"))
}

fn best(v: &Value, i: usize) -> f64 {
    v["experiments"][i]["best_tokens_per_s_per_gpu"]
        .as_f64()
        .unwrap_or_else(|| panic!("experiment {i} has no best: {v}"))
}

/// Write `text` to a temp file and run `cli exp` on it; it must fail cleanly.
fn fails(name: &str, text: &str, needles: &[&str]) {
    let dir = temp_dir("exp");
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    let o = aicfg(&["cli", "exp", "--yaml-path", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{name}: {err}");
    assert!(o.stdout.is_empty(), "{name}: stdout not empty");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "{name}: stderr lacks {n:?}:\n{err}");
    }
}

#[test]
fn agg_full_example() {
    let path = example("exp_agg_full.yaml");
    let out = ok(&["cli", "exp", "--yaml_path", &path]);
    assert!(out.contains("==== Experiment 1/1: exp_agg_full (agg, DEEPSEEK_V3, 8 x h200_sxm"));
    assert!(out.contains("agg Top Configurations"));
    assert!(out.contains("Comparison across experiments"));
    assert!(out.contains("** exp_agg_full"), "{out}");
    let v = exp_json(&path);
    let e = &v["experiments"][0]["experiment"];
    assert_eq!(e["config"]["nextn"], 1);
    assert_eq!(
        e["config"]["worker_config"]["moe_ep_list"],
        serde_json::json!([1, 2, 4, 8])
    );
    // Every agg layout in the result uses 4 or 8 GPUs per worker, as the lists say.
    for c in v["experiments"][0]["result"]["modes"][0]["top"]
        .as_array()
        .unwrap()
    {
        let g = c["agg"]["gpus"].as_u64().unwrap();
        assert!(g == 4 || g == 8, "{c}");
    }
    assert_eq!(v["experiments"][0]["ratio_to_best"], 1.0);
}

#[test]
fn disagg_full_example_applies_corrections() {
    let path = example("exp_disagg_full.yaml");
    let v = exp_json(&path);
    let r = &v["experiments"][0]["result"];
    assert_eq!(r["modes"][0]["mode"], "disagg");
    let top = r["modes"][0]["top"].as_array().unwrap();
    assert!(!top.is_empty());
    for c in top {
        assert_eq!(c["prefill"]["parallel"]["dp"], 1, "prefill dp_list is [1]");
        assert!(c["gpus_per_replica"].as_u64().unwrap() % 8 == 0, "{c}");
    }
    // The latency corrections cost throughput: the same file without them is faster.
    let text = std::fs::read_to_string(&path).unwrap();
    let plain = text
        .replace(
            "prefill_latency_correction_scale: 1.1",
            "prefill_latency_correction_scale: 1.0",
        )
        .replace(
            "decode_latency_correction_scale: 1.08",
            "decode_latency_correction_scale: 1.0",
        );
    let dir = temp_dir("exp-plain");
    let p = dir.join("plain.yaml");
    std::fs::write(&p, plain).unwrap();
    let w = exp_json(p.to_str().unwrap());
    assert!(
        best(&w, 0) > best(&v, 0),
        "{} vs {}",
        best(&w, 0),
        best(&v, 0)
    );
}

#[test]
fn simplified_disagg_example_with_wide_ep() {
    let v = exp_json(&example("exp_disagg_simplified.yaml"));
    let e = &v["experiments"][0]["experiment"];
    assert_eq!(e["enable_wide_ep"], true);
    assert_eq!(e["config"]["replica_config"]["max_gpu_per_replica"], 512);
    assert_eq!(v["experiments"][0]["result"]["workload"]["nextn"], 2);
    assert!(best(&v, 0) > 0.0);
}

#[test]
fn heterogeneous_example_prices_each_side_on_its_hardware() {
    let path = example("hetero_disagg.yaml");
    let v = exp_json(&path);
    let names: Vec<&str> = v["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["exp_h200_h200", "exp_b200_h200"]);
    let r = &v["experiments"][1]["result"];
    assert_eq!(r["system"], "b200_sxm");
    assert_eq!(r["decode_system"], "h200_sxm");
    let c = &r["modes"][0]["top"][0];
    assert_eq!(c["prefill"]["system"], "b200_sxm");
    assert_eq!(c["decode"]["system"], "h200_sxm");
    // B200 prefill is faster than H200 prefill: the fastest first token comes sooner.
    let min_ttft = |i: usize| {
        v["experiments"][i]["result"]["modes"][0]["pareto"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["ttft_ms"].as_f64().unwrap())
            .fold(f64::INFINITY, f64::min)
    };
    assert!(
        min_ttft(1) < min_ttft(0),
        "{} vs {}",
        min_ttft(1),
        min_ttft(0)
    );
    let out = ok(&["cli", "exp", "--yaml_path", &path]);
    assert!(out.contains("b200_sxm prefill / h200_sxm decode"), "{out}");
    assert!(out.contains("** exp_h200_h200") && out.contains("oo exp_b200_h200"));
    assert!(out.contains("Best experiment:"));
    let ratios: Vec<f64> = (0..2)
        .map(|i| v["experiments"][i]["ratio_to_best"].as_f64().unwrap())
        .collect();
    assert!(ratios.contains(&1.0) && ratios.iter().all(|r| *r <= 1.0));
}

/// `--gpu-cost-per-hour` prices every experiment: the comparison gains a $/M output tokens
/// column and the JSON each experiment's best cost (its GPUs at $2.5 over its tokens).
#[test]
fn a_price_adds_cost_to_the_comparison() {
    let path = example("hetero_disagg.yaml");
    let v = crate::common::ok_json(&[
        "cli",
        "exp",
        "--yaml_path",
        &path,
        "--gpu-cost-per-hour",
        "2.5",
        "--json",
    ]);
    for e in v["experiments"].as_array().unwrap() {
        let best = &e["result"]["best"];
        let c = &e["best_cost"];
        assert_eq!(
            c["usd_per_hour"].as_f64().unwrap(),
            2.5 * best["total_gpus_used"].as_f64().unwrap()
        );
        let out_per_s =
            best["tokens_per_s_per_gpu"].as_f64().unwrap() * best["total_gpus"].as_f64().unwrap();
        let want = c["usd_per_hour"].as_f64().unwrap() / (out_per_s * 3600.0) * 1e6;
        let got = c["usd_per_m_output_tokens"].as_f64().unwrap();
        assert!((got - want).abs() <= 2e-3 + 2e-3 * want, "{got} vs {want}");
        assert_eq!(e["experiment"]["gpu_cost_per_hour"], 2.5);
    }
    let out = ok(&[
        "cli",
        "exp",
        "--yaml_path",
        &path,
        "--gpu-cost-per-hour",
        "2.5",
    ]);
    assert!(out.contains("$/M output tokens"), "{out}");
    let plain = exp_json(&path);
    assert!(plain["experiments"][0]["best_cost"].is_null());
    assert!(!ok(&["cli", "exp", "--yaml_path", &path]).contains("$/M"));
}

#[test]
fn per_tensor_fp8_profile_example() {
    let path = example("qwen3_32b_disagg_pertensor.yaml");
    let v = exp_json(&path);
    for i in 0..2 {
        for q in v["experiments"][i]["result"]["quant"].as_array().unwrap() {
            assert_eq!(q["quant"]["gemm"], "fp8", "{q}");
            assert_eq!(q["quant"]["kvcache"], "fp8", "{q}");
        }
    }
    let out = ok(&["cli", "exp", "--yaml_path", &path]);
    // Deterministic: the same file gives the same report.
    assert_eq!(out, ok(&["cli", "exp", "--yaml_path", &path]));
    let comparison = out.split("Comparison across experiments").nth(1).unwrap();
    assert!(comparison.contains("exp_agg") && comparison.contains("exp_disagg"));
    assert!(comparison.contains("1.00x"));
    assert_eq!(
        out.matches("Pareto Frontier: tokens/s/gpu vs tokens/s/user")
            .count(),
        1
    );
}

const GOOD: &str = "exp_a:
  mode: patch
  serving_mode: agg
  model_name: QWEN3_32B
  total_gpus: 8
  system_name: h200_sxm
";

#[test]
fn bad_input_is_a_clear_error() {
    fails(
        "unknown_key",
        &format!("{GOOD}  config:\n    worker_config:\n      tp_lst: [1]\n"),
        &[
            "experiment 'exp_a'",
            "config.worker_config.tp_lst",
            "did you mean 'tp_list'",
        ],
    );
    fails(
        "wrong_type",
        &GOOD.replace("total_gpus: 8", "total_gpus: eight"),
        &[
            "experiment 'exp_a'",
            "key 'total_gpus'",
            "expected a whole number",
        ],
    );
    fails(
        "unknown_profile",
        &format!("{GOOD}  profiles: [fp8_defualt]\n"),
        &[
            "profiles[0]",
            "unknown profile 'fp8_defualt'",
            "did you mean 'fp8_default'",
        ],
    );
    fails(
        "unknown_system",
        &GOOD.replace("h200_sxm", "h300_sxm"),
        &["key 'system_name'", "unknown system 'h300_sxm'", "h200_sxm"],
    );
    fails(
        "unknown_decode_system",
        &GOOD
            .replace("agg", "disagg")
            .replace("h200_sxm", "h200_sxm\n  decode_system_name: b900"),
        &["key 'decode_system_name'", "unknown system 'b900'"],
    );
    fails(
        "unknown_model",
        &GOOD.replace("QWEN3_32B", "QWEN9_1T"),
        &["key 'model_name'", "unknown model 'QWEN9_1T'"],
    );
    fails(
        "no_valid_parallel",
        &format!(
            "{GOOD}  config:\n    worker_config:\n      num_gpu_per_worker: [3]\n      tp_list: [1, 2]\n"
        ),
        &[
            "config.worker_config",
            "no valid layout",
            "is not in num_gpu_per_worker [3]",
        ],
    );
    fails(
        "undefined_exp",
        &format!("exps: [exp_a, exp_b]\n{GOOD}"),
        &["exps[1]", "'exp_b'", "defined: exp_a"],
    );
    fails("empty", "", &["empty"]);
    fails("only_comments", "# nothing here\n", &["empty"]);
    fails(
        "syntax",
        "exp_a:\n  mode: patch\n  serving_mode: [agg\n  model_name: x\n",
        &["line ", "invalid YAML"],
    );
    let o = aicfg(&["cli", "exp", "--yaml_path", "/nonexistent/aicfg.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("reading experiment file"));
}

#[test]
fn syntax_error_names_the_line() {
    // Line 4 has a tab-indented key.
    fails(
        "tab",
        "exp_a:\n  mode: patch\n  serving_mode: agg\n\tmodel_name: x\n",
        &["line 4"],
    );
}

/// One infeasible experiment is reported (reason in the comparison) and the study goes on;
/// `--strict` turns it into exit 3. The seed spellings `gb200_sxm` and `enable_wideep` work.
#[test]
fn infeasible_experiment_is_reported_and_the_study_goes_on() {
    let dir = temp_dir("exp-infeasible");
    let path = dir.join("study.yaml");
    std::fs::write(
        &path,
        "exps: [fits, too_small]
fits:
  mode: patch
  serving_mode: agg
  model_name: QWEN3_8B
  total_gpus: 4
  system_name: gb200_sxm
too_small:
  mode: patch
  serving_mode: agg
  model_name: DEEPSEEK_V3
  total_gpus: 2
  system_name: l4
  enable_wideep: false
",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let out = ok(&["cli", "exp", "--yaml_path", p]);
    assert!(out.contains("==== Experiment 2/2: too_small"), "{out}");
    assert!(out.contains("too_small is infeasible: "), "{out}");
    assert!(out.contains("Best experiment: fits"), "{out}");
    let v = exp_json(p);
    assert_eq!(
        v["experiments"][0]["experiment"]["system_name"],
        "gb200_sxm"
    );
    assert_eq!(v["failed"][0]["name"], "too_small");
    assert!(v["failed"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("fits on l4"));
    let strict = aicfg(&["cli", "exp", "--yaml_path", p, "--strict"]);
    assert_eq!(strict.status.code(), Some(3));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The worker setup of an experiment names the profile or key that set each format (the
/// example's `profiles: [fp8_default]`), not a command-line flag.
#[test]
fn worker_setup_names_the_experiment_sources() {
    let out = ok(&[
        "cli",
        "exp",
        "--yaml_path",
        &example("qwen3_32b_disagg_pertensor.yaml"),
    ]);
    assert!(
        out.contains("GEMM: fp8 (profile fp8_default), KVCache: fp8 (profile fp8_default)"),
        "{out}"
    );
    assert!(!out.contains("(--gemm-quant-mode)"), "{out}");
}
