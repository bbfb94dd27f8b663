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
