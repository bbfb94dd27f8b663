//! `cli default --save_dir`: the tree lands inside DIR only, an existing result is never
//! clobbered silently, and bad options fail before any search.
use crate::common::{aicfg, listing, temp_dir};
use std::path::Path;
use std::process::Output;

const BASE: [&str; 10] = [
    "cli",
    "default",
    "--model",
    "Qwen/Qwen3-32B",
    "--total-gpus",
    "8",
    "--system",
    "h200_sxm",
    "--serving-mode",
    "agg",
];

fn with(extra: &[&str]) -> Vec<String> {
    BASE.iter().chain(extra).map(|s| s.to_string()).collect()
}

fn run(args: &[String]) -> Output {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    aicfg(&a)
}

#[test]
fn writes_inside_dir_and_never_clobbers() {
    let tmp = temp_dir("save");
    let dir = tmp.join("out");
    let d = dir.to_str().unwrap();
    let name = "Qwen_Qwen3-32B_h200_sxm_trtllm_isl4000_osl1000_ttft2000_tpot30";
    let o = run(&with(&["--save_dir", d, "--save-top", "1"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(listing(&tmp), vec!["out"]);
    assert_eq!(listing(&dir), vec![name]);
    let root = dir.join(name);
    assert!(root.join("pareto_frontier.png").is_file());
    assert!(root.join("agg/top1/agg/agg_config.yaml").is_file());
    assert!(root.join("agg/top1/agg/node_0_run.sh").is_file());
    assert!(!root.join("agg/top2").exists());
    let first = std::fs::read(root.join("agg/top1/agg/k8s_deploy.yaml")).unwrap();

    // Second run: a numbered sibling, byte-identical content.
    let o = run(&with(&["--save-dir", d, "--save-top", "1"]));
    assert!(o.status.success());
    assert_eq!(listing(&dir), vec![name.to_string(), format!("{name}_1")]);
    let second = std::fs::read(dir.join(format!("{name}_1/agg/top1/agg/k8s_deploy.yaml"))).unwrap();
    assert_eq!(first, second);

    // --force replaces the first folder in place.
    std::fs::write(root.join("stale.txt"), "x").unwrap();
    let o = run(&with(&["--save_dir", d, "--save-top", "1", "--force"]));
    assert!(o.status.success());
    assert!(!root.join("stale.txt").exists());
    assert_eq!(listing(&dir).len(), 2);
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn unwritable_dir_is_one_clear_error() {
    let tmp = temp_dir("save-file").join("not-a-folder");
    std::fs::write(&tmp, "not a folder").unwrap();
    let o = run(&with(&["--save_dir", tmp.to_str().unwrap()]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains("--save_dir"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let _ = std::fs::remove_file(&tmp);
}

#[test]
fn unknown_generator_key_lists_the_known_ones() {
    let o = run(&with(&[
        "--save_dir",
        "/nonexistent-never-created",
        "--generator-set",
        "Foo.bar=1",
    ]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err.contains("Foo.bar") && err.contains("K8sConfig.k8s_namespace"),
        "{err}"
    );
    assert!(!Path::new("/nonexistent-never-created").exists());
    let o = run(&with(&["--generator-set", "rule=benchmark"]));
    assert!(String::from_utf8_lossy(&o.stderr).contains("need --save_dir"));
}

/// With a price, both CSVs end in the cluster's $/h and $/M output and input tokens, each row
/// the GPUs it uses at $2 over its own token rate; without one, no cost columns.
#[test]
fn a_price_adds_cost_columns_to_the_csvs() {
    let tmp = temp_dir("save-cost");
    let d = tmp.to_str().unwrap();
    let small = [
        "--isl",
        "256",
        "--osl",
        "16",
        "--ttft",
        "1000",
        "--save-top",
        "1",
    ];
    let mut args = with(&["--save_dir", d, "--gpu-cost-per-hour", "2"]);
    args.extend(small.iter().map(|s| s.to_string()));
    let o = run(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let name = "Qwen_Qwen3-32B_h200_sxm_trtllm_isl256_osl16_ttft1000_tpot30";
    for file in ["best_config_topn.csv", "pareto.csv"] {
        let mut r = csv::Reader::from_path(tmp.join(name).join("agg").join(file)).unwrap();
        let h = r.headers().unwrap().clone();
        let col = |row: &csv::StringRecord, k: &str| -> f64 {
            let i = h
                .iter()
                .position(|x| x == k)
                .unwrap_or_else(|| panic!("no {k} in {h:?}"));
            row[i].parse().unwrap()
        };
        let tail: Vec<&str> = h.iter().rev().take(3).collect();
        assert_eq!(
            tail,
            [
                "usd_per_m_input_tokens",
                "usd_per_m_output_tokens",
                "usd_per_hour"
            ]
        );
        let mut rows = 0;
        for row in r.records() {
            let row = row.unwrap();
            let usd = col(&row, "usd_per_hour");
            assert_eq!(usd, 2.0 * col(&row, "total_gpus_used"), "{file}");
            // Cluster output tokens/s: tokens/s/gpu over all 8 GPUs of the cluster.
            let want = usd / (col(&row, "tokens/s/gpu_cluster") * 8.0 * 3600.0) * 1e6;
            let got = col(&row, "usd_per_m_output_tokens");
            assert!(
                (got - want).abs() <= 1e-3 + 1e-3 * want,
                "{file}: {got} vs {want}"
            );
            rows += 1;
        }
        assert!(rows > 0, "{file} has no rows");
    }
    // The same search unpriced: the columns are absent.
    let plain = temp_dir("save-plain");
    let mut args = with(&["--save_dir", plain.to_str().unwrap()]);
    args.extend(small.iter().map(|s| s.to_string()));
    assert!(run(&args).status.success());
    let text = std::fs::read_to_string(plain.join(name).join("agg/best_config_topn.csv")).unwrap();
    assert!(!text.lines().next().unwrap().contains("usd_per"), "{text}");
    let _ = std::fs::remove_dir_all(&tmp);
    let _ = std::fs::remove_dir_all(&plain);
}

/// Deployment files for an AMD GPU: AMD's GPU resource and node label in every manifest, the
/// vendor in generator_config.yaml, and a note about the CUDA runtime image until one is named.
#[test]
fn amd_deployments_use_amds_gpu_keys_and_say_the_image_is_cudas() {
    let tmp = temp_dir("save-amd");
    let d = tmp.to_str().unwrap().to_string();
    let args: Vec<String> = [
        "cli",
        "default",
        "--model",
        "QWEN3_8B",
        "--total-gpus",
        "8",
        "--system",
        "mi300x",
        "--backend",
        "vllm",
        "--serving-mode",
        "agg",
        "--save-top",
        "1",
        "--save_dir",
        &d,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let o = run(&args);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains("mi300x is an AMD GPU: the generated manifests request amd.com/gpu"),
        "{out}"
    );
    let root = Path::new(&d).join("Qwen_Qwen3-8B_mi300x_vllm_isl4000_osl1000_ttft2000_tpot30");
    let top = root.join("agg").join("top1");
    let deploy = std::fs::read_to_string(top.join("agg").join("k8s_deploy.yaml")).unwrap();
    let llmd = std::fs::read_to_string(top.join("agg").join("llm-d-values.yaml")).unwrap();
    for text in [&deploy, &llmd] {
        assert!(
            text.contains("amd.com/gpu.product-name: \"AMD_Instinct_MI300X_OAM\""),
            "{text}"
        );
        assert!(text.contains("amd.com/gpu: \""), "{text}");
        assert!(!text.contains("nvidia.com/gpu"), "{text}");
    }
    let cfg = std::fs::read_to_string(top.join("generator_config.yaml")).unwrap();
    assert!(cfg.contains("gpu_vendor: amd"), "{cfg}");
    // The tree passes the schema checks; naming an image removes the note.
    let v = aicfg(&["validate", root.to_str().unwrap()]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    let again = temp_dir("save-amd-image");
    let mut named = args.clone();
    let last = named.len() - 1;
    named[last] = again.to_str().unwrap().to_string();
    named.extend([
        "--generator-set".into(),
        "K8sConfig.k8s_image=rocm/vllm:latest".into(),
    ]);
    let o = run(&named);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("AMD GPU"));
}

/// `ServiceConfig.model_path` naming a checkpoint of another format than the one priced: a note
/// in the JSON (none when the formats agree).
#[test]
fn a_model_path_of_another_format_is_noted() {
    let tmp = temp_dir("save-ckpt");
    let d = tmp.to_str().unwrap();
    let notes = |path: &str, out: &str| -> String {
        let o = run(&with(&[
            "--save_dir",
            out,
            "--save-top",
            "1",
            "--generator-set",
            &format!("ServiceConfig.model_path={path}"),
            "--json",
        ]));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["notes"].to_string()
    };
    let n = notes("Qwen/Qwen3-32B-FP8", &format!("{d}/a"));
    assert!(
        n.contains("ServiceConfig.model_path=Qwen/Qwen3-32B-FP8 deploys fp8_block weights, but the prediction priced GEMM bfloat16"),
        "{n}"
    );
    let n = notes("/models/qwen3-32b", &format!("{d}/b"));
    assert!(!n.contains("model_path"), "{n}");
}
