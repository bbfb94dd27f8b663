//! `aicfg eval` end to end: a real `--save_dir` result, the programmed streaming server as the
//! deployment, and the automation with stub launch commands.
use crate::common::{aicfg, ok, ok_json, SMALL_SEARCH};

use crate::common::sse_server::{start, Program};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One search result shared by the tests (read-only for them).
fn result_dir() -> &'static Path {
    static D: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &D.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let mut a = SMALL_SEARCH.to_vec();
        let s = d.path().to_str().unwrap().to_string();
        a.extend(["--save_dir", &s]);
        ok(&a);
        let p = d.path().to_path_buf();
        (d, p)
    })
    .1
}

fn server() -> String {
    format!(
        "http://{}",
        start(Program {
            first_ms: 30.0,
            gaps_ms: vec![5.0],
            ..Default::default()
        })
    )
}

#[test]
fn eval_compares_writes_rows_and_corrections_that_the_tools_accept() {
    let u = server();
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    let v = ok_json(&[
        "eval",
        "--save_dir",
        result_dir().to_str().unwrap(),
        "--mode",
        "agg",
        "--url",
        &u,
        "--model",
        "m",
        "--concurrency",
        "1,4",
        "--requests-per-concurrency",
        "2",
        "--warmup-per-concurrency",
        "0",
        "--out",
        o,
        "--json",
    ]);
    let pts = v["points"].as_array().unwrap();
    assert_eq!(pts.len(), 2);
    for p in pts {
        let m = &p["measured"];
        assert_eq!(m["errors"], 0, "{p}");
        assert!(p["predicted_ttft_ms"].as_f64().unwrap() > 0.0, "{p}");
        assert!(p["predicted_tokens_per_s_per_gpu"].as_f64().unwrap() > 0.0);
        // The simulator's replay of the same point gives ordered, positive percentiles.
        for k in ["ttft_ms", "tpot_ms", "e2e_ms"] {
            let d = &p["simulated"][k];
            let q: Vec<f64> = ["p50", "p90", "p99"]
                .iter()
                .map(|x| d[*x].as_f64().unwrap_or_else(|| panic!("{k} {x}: {p}")))
                .collect();
            assert!(q[0] > 0.0 && q[0] <= q[1] && q[1] <= q[2], "{k}: {q:?}");
        }
        // The server's 5 ms per token is what the client saw (timing precision itself is
        // serve_bench.rs's subject; here the machine may be busy with other tests).
        let tpot = m["tpot_ms"]["mean"].as_f64().unwrap();
        assert!((tpot - 5.0).abs() < 2.0, "{tpot}");
        assert_eq!(
            m["output_tokens"].as_u64().unwrap(),
            m["requests"].as_u64().unwrap() * 16
        );
    }
    assert_eq!(pts[0]["measured"]["requests"], 2);
    assert_eq!(pts[1]["measured"]["requests"], 8);
    // The corrections are the median measured/predicted ratios, bounded.
    let s = &v["correction_scales"];
    let tp: Vec<f64> = pts
        .iter()
        .map(|p| {
            p["measured"]["tpot_ms"]["mean"].as_f64().unwrap()
                / p["predicted_tpot_ms"].as_f64().unwrap()
        })
        .collect();
    let want = ((tp[0].ln() + tp[1].ln()) / 2.0).exp().clamp(0.2, 5.0);
    assert!(
        (s["decode_latency"].as_f64().unwrap() - want).abs() <= 0.006,
        "{s} vs {want}"
    );
    for f in [
        "comparison.csv",
        "measured_rows.csv",
        "corrections.yaml",
        "corrected_config.yaml",
        "predicted_vs_measured.png",
        "bench/requests.jsonl",
        "bench/summary.json",
    ] {
        assert!(out.path().join(f).is_file(), "{f} missing");
    }
    let png = std::fs::read(out.path().join("predicted_vs_measured.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let cmp = std::fs::read_to_string(out.path().join("comparison.csv")).unwrap();
    let head: Vec<&str> = cmp.lines().next().unwrap().split(',').collect();
    let col = head
        .iter()
        .position(|h| *h == "simulated_ttft_p99_ms")
        .unwrap();
    for line in cmp.lines().skip(1) {
        let v: f64 = line.split(',').nth(col).unwrap().parse().unwrap();
        assert!(v > 0.0, "{line}");
    }
    let rows = std::fs::read_to_string(out.path().join("measured_rows.csv")).unwrap();
    assert_eq!(rows.lines().count(), 3, "{rows}");
    assert!(rows.starts_with("id,silicon_data_source,backend"));
    let corr = std::fs::read_to_string(out.path().join("corrections.yaml")).unwrap();
    assert!(corr.contains("prefill_latency_correction_scale:"), "{corr}");
    // The rows feed `bench accuracy` (both predicted) ...
    let rows_path = out.path().join("measured_rows.csv");
    let acc = ok(&["bench", "accuracy", "--csv", rows_path.to_str().unwrap()]);
    assert!(acc.contains("rows 2; predicted 2"), "{acc}");
    let cal = out.path().join("mine.yaml");
    let fit = ok(&[
        "bench",
        "calibrate",
        "--csv",
        rows_path.to_str().unwrap(),
        "--out",
        cal.to_str().unwrap(),
        "--rounds",
        "1",
    ]);
    assert!(
        fit.contains("fitting only the serving constants of trtllm"),
        "{fit}"
    );
    assert!(cal.is_file());
    // ... and the corrected experiment reruns under `cli exp`, slower by the TTFT scale.
    let cfg = out.path().join("corrected_config.yaml");
    let e: Value = ok_json(&["cli", "exp", "--yaml_path", cfg.to_str().unwrap(), "--json"]);
    assert!(e["experiments"][0]["result"].is_object(), "{e}");
}

#[test]
fn eval_picks_the_recommended_mode_and_reports_bad_folders() {
    let d = result_dir().to_str().unwrap().to_string();
    for (args, want) in [
        (vec!["eval"], "needs --save_dir"),
        (
            vec!["eval", "--save_dir", "/nonexistent/x"],
            "is not a folder",
        ),
        (vec!["eval", "--save_dir", &d, "--top", "9"], "no top9"),
        (
            vec!["eval", "--save_dir", &d, "--mode", "static"],
            "has no static/top1",
        ),
        (
            vec!["eval", "--save_dir", &d, "--config", "x.yaml"],
            "not both",
        ),
        (
            vec![
                "eval",
                "--save_dir",
                &d,
                "--url",
                "http://127.0.0.1:1",
                "--concurrency",
                "1",
                "--requests-per-concurrency",
                "1",
                "--warmup-per-concurrency",
                "0",
            ],
            "every request failed",
        ),
    ] {
        let o = aicfg(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{args:?}: {err}");
    }
    // An empty folder is not a result.
    let e = tempfile::tempdir().unwrap();
    let o = aicfg(&["eval", "--save_dir", e.path().to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("holds no aicfg result"));
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const BASE: &str =
    "model: QWEN3_32B\nsystem: h200_sxm\ntotal_gpus: 8\nisl: 256\nosl: 16\nttft: 1000\nmode: agg\n";

#[test]
fn automation_dry_run_prints_every_command() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write(
        d.path(),
        "eval.yaml",
        &format!("{BASE}launch: k8s\nurl: http://127.0.0.1:8000\nnamespace: team\nimage: my/image:1\nbench:\n  concurrency: [1, 8]\n"),
    );
    let out = ok(&["eval", "--config", cfg.to_str().unwrap(), "--dry-run"]);
    for want in [
        "cli default --model QWEN3_32B --system h200_sxm --total_gpus 8",
        "--generator-set K8sConfig.k8s_image=my/image:1",
        "kubectl apply -f",
        "k8s_deploy.yaml' -n team",
        "wait until GET http://127.0.0.1:8000/v1/models",
        "kubectl delete -f",
        "here [1, 8]",
    ] {
        assert!(out.contains(want), "{want} missing:\n{out}");
    }
    assert!(
        !d.path().join("results").exists(),
        "a dry run writes nothing"
    );
    // Unknown keys and bad values are errors naming the file.
    let bad = write(d.path(), "bad.yaml", &format!("{BASE}lunch: local\n"));
    let o = aicfg(&["eval", "--config", bad.to_str().unwrap(), "--dry-run"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("lunch"),
        "{o:?}"
    );
    let bad = write(d.path(), "bad2.yaml", &format!("{BASE}launch: k8s\n"));
    let o = aicfg(&["eval", "--config", bad.to_str().unwrap(), "--dry-run"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("needs url"),
        "{o:?}"
    );
}

#[test]
fn automation_launches_benchmarks_and_tears_down_with_stub_commands() {
    let u = server();
    let d = tempfile::tempdir().unwrap();
    // Local launch: a stub that records its pid and stays up until stopped.
    let pidfile = d.path().join("pid");
    let cfg = write(
        d.path(),
        "local.yaml",
        &format!(
            "{BASE}launch: local\nlaunch_command: 'echo $$ > {}; exec sleep 300'\nurl: {u}\nhealth_timeout_s: 20\nbench:\n  concurrency: [2]\n  requests_per_concurrency: 1\n  warmup_per_concurrency: 0\n",
            pidfile.display()
        ),
    );
    let out = ok(&["eval", "--config", cfg.to_str().unwrap()]);
    assert!(out.contains("[5] tear down"), "{out}");
    let pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .to_string();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists() || {
            // A zombie reaped late still has /proc; its state says so.
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z")
        },
        "the launched process {pid} is still running"
    );
    let evals: Vec<_> = walk(&d.path().join("results"))
        .into_iter()
        .filter(|p| p.ends_with("eval/measured_rows.csv"))
        .collect();
    assert_eq!(evals.len(), 1, "{evals:?}");

    // k8s: a stub kubectl logs its arguments.
    let log = d.path().join("kubectl.log");
    let stub = write(
        d.path(),
        "kubectl.sh",
        &format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
    );
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&stub)
        .status()
        .unwrap();
    let cfg = write(
        d.path(),
        "k8s.yaml",
        &format!(
            "{BASE}launch: k8s\nkubectl: {}\nurl: {u}\nbench:\n  concurrency: [1]\n  requests_per_concurrency: 1\n  warmup_per_concurrency: 0\n",
            stub.display()
        ),
    );
    ok(&["eval", "--config", cfg.to_str().unwrap()]);
    let calls = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = calls.lines().collect();
    assert_eq!(lines.len(), 2, "{calls}");
    assert!(
        lines[0].starts_with("apply -f ") && lines[0].ends_with("agg/top1/agg/k8s_deploy.yaml"),
        "{calls}"
    );
    assert!(lines[1].starts_with("delete -f "), "{calls}");

    // A launch that dies is one clear error, and nothing is left behind.
    let cfg = write(
        d.path(),
        "dies.yaml",
        &format!("{BASE}launch: local\nlaunch_command: 'echo no GPUs here; exit 3'\nurl: http://127.0.0.1:1\nhealth_timeout_s: 20\n"),
    );
    let o = aicfg(&["eval", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("exited") && err.contains("no GPUs here"),
        "{err}"
    );
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let q = e.path();
            if q.is_dir() {
                out.extend(walk(&q));
            } else {
                out.push(q);
            }
        }
    }
    out
}
