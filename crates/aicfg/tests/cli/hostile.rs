//! The hardening issue's reproducers through the CLI, one test per crash class: each must end
//! within seconds with a one-line error naming the input and the bound (or a correct answer),
//! never a panic, an abort, a hang or a confident wrong number.
use crate::common::{self, temp_dir};

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary with a wall-clock bound (killed past it: a hang fails the test).
fn run(args: &[&str], limit: Duration) -> Run {
    let mut child = common::command()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("aicfg {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code(),
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

const QUICK: Duration = Duration::from_secs(60);

/// A clean refusal: non-zero exit (not a panic or a signal), one `error:` line holding every needle.
fn refused(args: &[&str], needles: &[&str]) {
    let r = run(args, QUICK);
    assert!(
        r.code.is_some_and(|c| c != 0 && c != 101),
        "aicfg {args:?}: exit {:?}\n{}{}",
        r.code,
        r.stdout,
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    // One error line (a flag the argument parser refuses adds its usage hint below it).
    let all = r.stderr.trim_end();
    let err = all.lines().next().unwrap_or("");
    let hint = all
        .lines()
        .skip(1)
        .all(|l| l.is_empty() || l.starts_with("For more information"));
    assert!(err.starts_with("error: ") && hint, "aicfg {args:?}:\n{all}");
    for n in needles {
        assert!(err.contains(n), "aicfg {args:?}: '{n}' not in\n{err}");
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const EXP: &str = "exps: [a]\na:\n  mode: patch\n  serving_mode: agg\n  model_name: QWEN3_32B\n  total_gpus: 8\n  system_name: h200_sxm\n";

#[test]
fn search_spaces_are_deduplicated_and_capped() {
    let d = temp_dir("lists");
    // Six lists of sixty 1s through one anchor used to allocate ~16 GB.
    let ones = format!("[{}]", vec!["1"; 60].join(", "));
    let anchored = write(
        &d,
        "anchor.yaml",
        &format!("{EXP}  config:\n    worker_config:\n      tp_list: &l {ones}\n      pp_list: *l\n      dp_list: *l\n      moe_tp_list: *l\n      moe_ep_list: *l\n"),
    );
    let r = run(&["cli", "exp", "--yaml_path", &anchored], QUICK);
    assert!(
        r.code == Some(0) || r.code == Some(1),
        "{:?} {}",
        r.code,
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"));
    let many = write(
        &d,
        "many.yaml",
        &format!(
            "{EXP}  config:\n    worker_config:\n      tp_list: [{}]\n",
            (1..=65)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    refused(&["cli", "exp", "--yaml_path", &many], &["tp_list", "64"]);
    // Batch caps that used to loop for minutes.
    let batch = write(
        &d,
        "batch.yaml",
        &format!("{EXP}  config:\n    advanced_tuning_config:\n      prefill_max_batch_size: 4294967295\n"),
    );
    refused(
        &["cli", "exp", "--yaml_path", &batch],
        &["prefill_max_batch_size"],
    );
    let gpus = write(
        &d,
        "gpus.yaml",
        &EXP.replace("total_gpus: 8", "total_gpus: 4294967295"),
    );
    refused(&["cli", "exp", "--yaml_path", &gpus], &["total_gpus"]);
}

#[test]
fn experiment_files_are_bounded_in_count_and_depth() {
    let d = temp_dir("exp");
    let mut lots = String::from("exps: [");
    lots.push_str(
        &(0..10_000)
            .map(|i| format!("e{i}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    lots.push_str("]\ne0: &d {mode: patch, serving_mode: agg, model_name: QWEN3_32B, total_gpus: 8, system_name: h200_sxm}\n");
    for i in 1..10_000 {
        lots.push_str(&format!("e{i}: *d\n"));
    }
    let lots = write(&d, "lots.yaml", &lots);
    refused(&["cli", "exp", "--yaml_path", &lots], &["64"]);
    // Depth 100,000 used to parse for minutes before any recursion limit.
    let deep = write(
        &d,
        "deep.yaml",
        &format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
    );
    let t0 = Instant::now();
    refused(&["cli", "exp", "--yaml_path", &deep], &["deeper than 32"]);
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
}

#[cfg(unix)]
#[test]
fn user_named_files_are_read_within_a_size_bound() {
    let zero = "/dev/zero";
    if !Path::new(zero).exists() {
        // Written past the test harness's capture, so the skip shows in the test summary.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED user_named_files_are_read_within_a_size_bound: no {zero} on this system"
        );
        return;
    }
    let est = ["cli", "estimate", "--system", "h200_sxm"];
    refused(&[&est[..], &["--model", zero]].concat(), &["limit"]);
    refused(
        &[&est[..], &["--model", "QWEN3_32B", "--calibration", zero]].concat(),
        &["limit"],
    );
    // A systems directory whose YAML is a device.
    let d = temp_dir("systems");
    let link = d.join("zero.yaml");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(zero, &link).unwrap();
    refused(
        &[
            &est[..],
            &[
                "--model",
                "QWEN3_32B",
                "--systems-path",
                d.to_str().unwrap(),
            ],
        ]
        .concat(),
        &["limit"],
    );
    refused(&["cli", "exp", "--yaml_path", zero], &["limit"]);
    refused(&["bench", "accuracy", "--csv", zero], &["limit"]);
}

#[test]
fn estimate_flags_refuse_non_finite_and_huge_values() {
    let base = [
        "cli",
        "estimate",
        "--model",
        "QWEN3_32B",
        "--system",
        "h200_sxm",
    ];
    for (flag, v, needle) in [
        ("--nextn-accept-rate", "NaN", "finite"),
        ("--nextn-accept-rates", "0.8,inf", "finite"),
        ("--free-gpu-memory-fraction", "inf", "finite"),
        ("--batch-size", "4294967296", "batch_size"),
        ("--isl", "99999999999", "isl"),
        ("--request-rate", "NaN", "finite"),
        ("--sla-ttft", "inf", "finite"),
    ] {
        let arg = format!("{flag}={v}");
        refused(&[&base[..], &[&arg]].concat(), &[needle]);
    }
}

#[test]
fn server_flags_are_validated() {
    refused(
        &[
            "webapp",
            "--port",
            "0",
            "--time-limit",
            "18446744073709551615",
        ],
        &["--time-limit"],
    );
    refused(
        &["webapp", "--port", "0", "--time-limit", "0"],
        &["--time-limit"],
    );
    refused(
        &["webapp", "--port", "0", "--max-searches", "100000"],
        &["--max-searches"],
    );
    refused(
        &["webapp", "--port", "0", "--client-timeout", "0"],
        &["--client-timeout"],
    );
}

#[test]
fn recommend_mode_does_not_overflow() {
    let base = [
        "cli",
        "default",
        "--model",
        "QWEN3_32B",
        "--system",
        "h200_sxm",
    ];
    // Used to answer "agg with 0 GPUs, 566291312027 tokens/s/gpu", exit 0.
    refused(
        &[&base[..], &["--target-concurrency", "4294967296"]].concat(),
        &["65536 GPUs"],
    );
    refused(
        &[&base[..], &["--target-request-rate", "1e9"]].concat(),
        &["65536 GPUs"],
    );
    for (flag, v) in [
        ("--target-request-rate", "NaN"),
        ("--target-request-rate", "-3"),
        ("--target-concurrency", "inf"),
        ("--ttft", "NaN"),
        ("--tpot", "-inf"),
        ("--ttft", "1e300"),
        ("--free-gpu-memory-fraction", "NaN"),
    ] {
        // `--flag=-3`: a separate `-3` would read as a flag.
        let arg = format!("{flag}={v}");
        refused(&[&base[..], &["--total_gpus", "8", &arg]].concat(), &[v]);
    }
}

/// A config.json in a fresh directory, from Qwen3-32B's with `edit` applied.
fn config(tag: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/models/Qwen--Qwen3-32B_config.json"),
    )
    .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    edit(&mut v);
    let d = temp_dir(tag);
    write(&d, "config.json", &v.to_string())
}

#[test]
fn config_json_fields_are_range_checked() {
    let est = |p: &str| {
        vec![
            "cli",
            "estimate",
            "--system",
            "h200_sxm",
            "--model",
            p.to_string().leak(),
        ]
    };
    // Read as 1 layer through `as u32` before.
    let p = config("layers", |v| v["num_hidden_layers"] = 4294967297u64.into());
    refused(&est(&p), &["num_hidden_layers", "1 to 1024"]);
    // head_dim 0 and a 0 GiB KV cache before.
    let p = config("heads", |v| {
        v["num_attention_heads"] = 4294967296u64.into();
        v.as_object_mut().unwrap().remove("head_dim");
    });
    refused(&est(&p), &["num_attention_heads"]);
    // A negative KV cache before: more sliding layers than layers.
    let p = config("sliding", |v| {
        v["sliding_window"] = 4096.into();
        v["layer_types"] = serde_json::Value::Array(vec!["sliding_attention".into(); 65]);
    });
    refused(
        &est(&p),
        &["'layer_types' lists 65 layers but num_hidden_layers is 64"],
    );
    for (field, val) in [
        ("vocab_size", -1.0),
        ("hidden_size", 0.0),
        ("intermediate_size", 1.5),
    ] {
        let p = config(field, |v| v[field] = val.into());
        refused(&est(&p), &[field]);
    }
    // A sane edit still estimates.
    let p = config("ok", |v| v["num_hidden_layers"] = 32.into());
    let r = run(&est(&p), QUICK);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

#[test]
fn data_install_from_odd_paths_is_a_clear_error() {
    let d = temp_dir("install");
    let data = d.join("data");
    let dd = data.display().to_string();
    // The hermetic command, pointed at a data directory of its own.
    let r = common::command()
        .env("AICFG_DATA_DIR", &dd)
        .args(["data", "install", "--from", "/dev/null"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        !r.status.success() && err.starts_with("error: ") && !err.contains("panicked"),
        "{err}"
    );
    assert!(err.contains("/dev/null"), "{err}");
    // Nothing active, nothing staged.
    let left: Vec<_> = std::fs::read_dir(&data)
        .map(|r| r.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}
