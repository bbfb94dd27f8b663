//! `--save_dir` and `cli exp` together: the `config.yaml` that `cli default` saves runs again
//! through `cli exp` to the same best deployment, and `cli exp --save_dir` writes one result
//! folder per experiment.
use crate::common::{aicfg, example, listing, ok_json, temp_dir};
use serde_json::Value;

/// What must match between two searches: throughput, backend, and per worker kind its
/// parallel layout, batch size and count.
fn signature(c: &Value) -> Value {
    let w = |k: &str| {
        let w = &c[k];
        if w.is_null() {
            Value::Null
        } else {
            serde_json::json!([
                w["parallel_label"],
                w["batch_size"],
                w["workers"],
                w["quant"]
            ])
        }
    };
    serde_json::json!({
        "tokens_per_s_per_gpu": c["tokens_per_s_per_gpu"],
        "tokens_per_s_per_user": c["tokens_per_s_per_user"],
        "backend": c["backend"],
        "replicas": c["replicas"],
        "agg": w("agg"),
        "prefill": w("prefill"),
        "decode": w("decode"),
    })
}

/// The best of a `cli exp --json` run over all its experiments.
fn exp_best(v: &Value) -> Value {
    v["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["result"]["best"])
        .filter(|b| !b.is_null())
        .max_by(|a, b| {
            let t = |c: &Value| c["tokens_per_s_per_gpu"].as_f64().unwrap();
            t(a).total_cmp(&t(b))
        })
        .cloned()
        .unwrap_or(Value::Null)
}

fn roundtrip(tag: &str, args: &[&str]) {
    let dir = temp_dir(tag);
    let d = dir.to_str().unwrap();
    let mut a = vec![
        "cli",
        "default",
        "--json",
        "--save_dir",
        d,
        "--save-top",
        "1",
    ];
    a.extend_from_slice(args);
    let original = ok_json(&a);
    let roots = listing(&dir);
    assert_eq!(roots.len(), 1, "{roots:?}");
    let root = dir.join(&roots[0]);
    let mut checked = 0;
    for m in original["modes"].as_array().unwrap() {
        let mode = m["mode"].as_str().unwrap();
        let cfg = root.join(mode).join("config.yaml");
        let text = std::fs::read_to_string(&cfg).unwrap();
        assert!(text.starts_with("# Fully resolved"), "{text}");
        let again = ok_json(&["cli", "exp", "--json", "--yaml_path", cfg.to_str().unwrap()]);
        if !m["sla_met"].as_bool().unwrap() {
            continue;
        }
        let best = &m["top"][0];
        assert_eq!(
            signature(&exp_best(&again)),
            signature(best),
            "{tag} {mode}:\n{text}"
        );
        checked += 1;
    }
    assert!(checked > 0, "{tag}: no mode met the SLA, nothing compared");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn saved_config_yaml_reruns_to_the_same_best_dense() {
    // Dense agg with every key the exp schema gained: prefix, MTP, sol, memory fraction.
    roundtrip(
        "rt-dense",
        &[
            "--model",
            "QWEN3_32B",
            "--total_gpus",
            "16",
            "--system",
            "h200_sxm",
            "--serving-mode",
            "agg",
            "--prefix",
            "1000",
            "--nextn",
            "2",
            "--nextn-accept-rates",
            "0.9,0.4",
            "--database-mode",
            "sol",
            "--free-gpu-memory-fraction",
            "0.8",
        ],
    );
}

#[test]
fn saved_config_yaml_reruns_to_the_same_best_moe_every_backend() {
    // MoE, both modes, --backend auto: one experiment per backend in each config.yaml.
    roundtrip(
        "rt-moe",
        &[
            "--model",
            "QWEN3_30B_A3B",
            "--total_gpus",
            "16",
            "--system",
            "h200_sxm",
            "--backend",
            "auto",
        ],
    );
}

#[test]
fn saved_config_yaml_reruns_to_the_same_best_disagg() {
    // Wide-EP MoE disagg with prefill and decode on different hardware.
    roundtrip(
        "rt-disagg",
        &[
            "--model",
            "DEEPSEEK_V3",
            "--total_gpus",
            "64",
            "--system",
            "b200_sxm",
            "--decode_system",
            "h200_sxm",
            "--serving-mode",
            "disagg",
            "--enable-wide-ep",
            "--tpot",
            "50",
        ],
    );
}

#[test]
fn saved_config_yaml_reruns_to_the_same_best_at_a_percentile_sla() {
    // The percentile SLA is part of the experiment: rerun, the same simulated rows win.
    roundtrip(
        "rt-p99",
        &[
            "--model",
            "QWEN3_32B",
            "--total_gpus",
            "32",
            "--system",
            "h200_sxm",
            "--database-mode",
            "empirical",
            "--ttft",
            "5000",
            "--sla-percentile",
            "p99",
        ],
    );
}

#[test]
fn cli_exp_save_dir_writes_one_folder_per_experiment() {
    let dir = temp_dir("exp-save");
    let d = dir.to_str().unwrap();
    let ex = example("hetero_disagg.yaml");
    let base = ["cli", "exp", "--yaml_path", ex.as_str(), "--save_dir", d];
    let run = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        a.push("--json");
        ok_json(&a)
    };
    let report = run(&["--save-top", "1"]);
    let names = ["exp_b200_h200", "exp_h200_h200"];
    assert_eq!(listing(&dir), names);
    for n in names {
        let root = dir.join(n);
        assert!(root.join("pareto_frontier.png").is_file());
        assert!(root.join("disagg/top1/disagg/k8s_deploy.yaml").is_file());
        assert!(!root.join("disagg/top2").exists());
        assert!(!root.join("agg").exists());
        // The folder's config.yaml is this experiment again: same best.
        let cfg = root.join("disagg/config.yaml");
        let again = ok_json(&["cli", "exp", "--json", "--yaml_path", cfg.to_str().unwrap()]);
        let orig = report["experiments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == n)
            .unwrap();
        assert_eq!(
            signature(&exp_best(&again)),
            signature(&orig["result"]["best"])
        );
    }
    let first = std::fs::read(dir.join("exp_h200_h200/disagg/top1/generator_config.yaml")).unwrap();

    // Again: numbered siblings with the same bytes; --force replaces in place.
    run(&["--save-top", "1"]);
    assert_eq!(
        listing(&dir),
        [
            "exp_b200_h200",
            "exp_b200_h200_1",
            "exp_h200_h200",
            "exp_h200_h200_1"
        ]
    );
    let second =
        std::fs::read(dir.join("exp_h200_h200_1/disagg/top1/generator_config.yaml")).unwrap();
    assert_eq!(first, second);
    std::fs::write(dir.join("exp_h200_h200/stale.txt"), "x").unwrap();
    run(&["--save-top", "2", "--force"]);
    assert_eq!(listing(&dir).len(), 4);
    assert!(!dir.join("exp_h200_h200/stale.txt").exists());
    assert!(dir.join("exp_h200_h200/disagg/top2").is_dir());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn experiment_names_that_clash_as_folders_get_numbered_even_with_force() {
    let dir = temp_dir("exp-clash");
    std::fs::create_dir_all(&dir).unwrap();
    let body = "  mode: patch\n  serving_mode: agg\n  model_name: QWEN3_8B\n  total_gpus: 2\n  system_name: h200_sxm\n";
    let yaml = dir.join("study.yaml");
    std::fs::write(
        &yaml,
        format!("\"a b\":\n{body}a_b:\n{body}\"../up\":\n{body}"),
    )
    .unwrap();
    let out = dir.join("out");
    let o = aicfg(&[
        "cli",
        "exp",
        "--yaml_path",
        yaml.to_str().unwrap(),
        "--save_dir",
        out.to_str().unwrap(),
        "--save-top",
        "1",
        "--force",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Nothing escapes DIR; '/' and the leading dots are made safe.
    assert_eq!(listing(&dir), ["out", "study.yaml"]);
    assert_eq!(listing(&out), ["_up", "a_b", "a_b_1"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cli_exp_generator_options_need_save_dir() {
    let ex = example("exp_agg_full.yaml");
    let o = aicfg(&[
        "cli",
        "exp",
        "--yaml_path",
        ex.as_str(),
        "--generator-set",
        "rule=benchmark",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("need --save_dir"));
}
