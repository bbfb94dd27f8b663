//! `aicfg bench serve` against a programmed streaming server on 127.0.0.1.
mod common;
#[path = "common/sse_server.rs"]
mod sse_server;

use common::{aicfg, ok_json};
use serde_json::Value;
use sse_server::{start, Program};

fn url(p: Program) -> String {
    format!("http://{}", start(p))
}

/// How late this machine wakes a sleeping thread (90th percentile, ms): on a quiet machine
/// ~0.1 ms; on a shared, overloaded one several ms, which delays the client's reads of the
/// first token and the server's sends alike.
fn wake_noise_ms() -> f64 {
    static N: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        let mut late: Vec<f64> = (0..100)
            .map(|_| {
                let t = std::time::Instant::now();
                std::thread::sleep(std::time::Duration::from_millis(1));
                (t.elapsed().as_secs_f64() * 1e3 - 1.0).max(0.0)
            })
            .collect();
        let n = pct(std::mem::take(&mut late), 90.0);
        eprintln!("scheduler wake-up noise p90: {n:.3} ms");
        n
    })
}

/// Within 1 ms or 2 %, whichever is looser (plus the machine's wake-up noise when it has any).
fn close(got: f64, want: f64, what: &str) -> Result<(), String> {
    let tol = (0.02 * want).max(1.0) + wake_noise_ms();
    if (got - want).abs() <= tol {
        Ok(())
    } else {
        Err(format!("{what}: measured {got}, programmed {want}"))
    }
}

/// Timing tests run one at a time, and a run may be repeated twice: on a shared machine the
/// scheduler can preempt the server or the client for milliseconds, but a systematic error in
/// the client fails every attempt.
fn timing(check: impl Fn() -> Result<(), String>) {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let mut last = String::new();
    for _ in 0..3 {
        match check() {
            Ok(()) => return,
            Err(e) => last = e,
        }
    }
    panic!("{last}");
}

/// The linear-interpolated percentile of a finite sample (the client's definition).
fn pct(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let pos = q / 100.0 * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

fn bench(u: &str, extra: &[&str]) -> Value {
    let mut a = vec![
        "bench",
        "serve",
        "--url",
        u,
        "--model",
        "test-model",
        "--json",
    ];
    a.extend_from_slice(extra);
    ok_json(&a)
}

#[test]
fn ttft_itl_tpot_match_the_programmed_delays() {
    let gaps = vec![40.0, 60.0, 80.0, 100.0];
    let u = url(Program {
        first_ms: 200.0,
        gaps_ms: gaps.clone(),
        ..Default::default()
    });
    timing(|| {
        // 9 tokens: 8 gaps = two turns of the cycle, so every request sees the same sample.
        let v = bench(
            &u,
            &[
                "--concurrency",
                "4",
                "--warmup",
                "4",
                "--num-requests",
                "8",
                "--isl",
                "32",
                "--osl",
                "9",
                "--threads",
                "1",
            ],
        );
        assert_eq!(v["requests"], 8);
        assert_eq!(v["errors"], 0);
        assert_eq!(v["input_tokens"], 8 * 32);
        assert_eq!(v["output_tokens"], 8 * 9);
        let sample: Vec<f64> = gaps.iter().cycle().take(8).copied().collect();
        let e2e = 200.0 + sample.iter().sum::<f64>();
        // Within 1 ms or 2 % of the programmed values. TTFT also holds the debug-built test
        // server's request parsing (~0.6 ms each, four arriving at once), so only its median is
        // held to that; its mean and tail get 5 %.
        for k in ["mean", "p50", "p90", "p99"] {
            close(
                v["tpot_ms"][k].as_f64().unwrap(),
                70.0,
                &format!("TPOT {k}"),
            )?;
            let t = v["ttft_ms"][k].as_f64().unwrap();
            if (t - 200.0).abs() > 10.0 {
                return Err(format!("TTFT {k} {t} vs 200"));
            }
        }
        close(v["ttft_ms"]["p50"].as_f64().unwrap(), 200.0, "TTFT p50")?;
        close(v["e2e_ms"]["p50"].as_f64().unwrap(), e2e, "E2E p50")?;
        close(v["itl_ms"]["mean"].as_f64().unwrap(), 70.0, "ITL mean")?;
        for (k, q) in [("p50", 50.0), ("p90", 90.0)] {
            let want = pct(sample.clone(), q);
            close(v["itl_ms"][k].as_f64().unwrap(), want, &format!("ITL {k}"))?;
        }
        // p99 of 64 gaps is the largest one: a single preempted event moves it.
        let p99 = v["itl_ms"]["p99"].as_f64().unwrap();
        if (p99 - 100.0).abs() > 5.0 {
            return Err(format!("ITL p99 {p99} vs 100"));
        }
        // 8 requests × 9 tokens in two waves.
        let tps = v["output_tokens_per_s"].as_f64().unwrap();
        let want = 72.0 / (2.0 * e2e / 1e3);
        if (tps - want).abs() > 0.05 * want {
            return Err(format!("{tps} tokens/s vs {want}"));
        }
        Ok(())
    });
}

#[test]
fn chat_text_prompts_and_multi_token_events() {
    let u = url(Program {
        first_ms: 20.0,
        gaps_ms: vec![5.0],
        tokens_per_event: 2,
        ..Default::default()
    });
    timing(|| {
        let v = bench(
            &u,
            &[
                "--endpoint",
                "chat",
                "--warmup",
                "1",
                "--num-requests",
                "3",
                "--isl",
                "50",
                "--osl",
                "10",
                "--threads",
                "1",
            ],
        );
        // The usage field counts tokens; the gaps are between events (2 tokens each).
        assert_eq!(v["input_tokens"], 150);
        assert_eq!(v["output_tokens"], 30);
        close(v["ttft_ms"]["p50"].as_f64().unwrap(), 20.0, "TTFT")?;
        close(v["itl_ms"]["p50"].as_f64().unwrap(), 5.0, "ITL")?;
        // 4 gaps of 5 ms over 9 tokens after the first.
        close(v["tpot_ms"]["p50"].as_f64().unwrap(), 20.0 / 9.0, "TPOT")
    });
}

#[test]
fn errors_are_counted_not_fatal() {
    let u = url(Program {
        gaps_ms: vec![1.0],
        error_every: Some(3),
        cut_every: Some(4),
        ..Default::default()
    });
    let v = bench(
        &u,
        &["--concurrency", "2", "--num-requests", "12", "--osl", "8"],
    );
    assert_eq!(v["requests"], 12);
    // Requests 3, 6, 9, 12 fail with HTTP 500; 4 and 8 are cut (12 is already an error).
    assert_eq!(v["error_kinds"]["HTTP 500"], 4);
    assert_eq!(v["error_kinds"]["incomplete"], 2);
    assert_eq!(v["errors"], 6);
    assert_eq!(v["completed"], 6);
    assert_eq!(v["output_tokens"], 6 * 8);
}

#[test]
fn a_stalled_server_hits_the_timeout() {
    let u = url(Program {
        gaps_ms: vec![1.0],
        stall_every: Some(2),
        ..Default::default()
    });
    let t = std::time::Instant::now();
    let v = bench(
        &u,
        &[
            "--concurrency",
            "4",
            "--num-requests",
            "4",
            "--timeout",
            "0.5",
            "--osl",
            "4",
        ],
    );
    assert_eq!(v["error_kinds"]["timeout"], 2);
    assert_eq!(v["completed"], 2);
    assert!(t.elapsed().as_secs_f64() < 5.0, "{:?}", t.elapsed());
    // Every request stalls: the run fails with a clear error after the timeout.
    let u = url(Program {
        stall_every: Some(1),
        ..Default::default()
    });
    let o = aicfg(&[
        "bench",
        "serve",
        "--url",
        &u,
        "--model",
        "m",
        "--num-requests",
        "2",
        "--timeout",
        "0.3",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("every request failed") && err.contains("timeout"),
        "{err}"
    );
}

#[test]
fn poisson_load_is_seeded_and_files_are_written() {
    let u = url(Program::default());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let run = |seed: &str| {
        bench(
            &u,
            &[
                "--request-rate",
                "200",
                "--num-requests",
                "40",
                "--isl",
                "uniform:10:50",
                "--osl",
                "3",
                "--seed",
                seed,
                "--out-dir",
                out.to_str().unwrap(),
                "--num-gpus",
                "2",
                "--ttft",
                "1000",
                "--tpot",
                "1000",
            ],
        );
        std::fs::read_to_string(out.join("requests.jsonl")).unwrap()
    };
    let lens = |text: &str| -> Vec<u64> {
        text.lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["input_tokens"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    };
    let a = run("7");
    assert_eq!(a.lines().count(), 40);
    assert_eq!(lens(&a), lens(&run("7")));
    assert_ne!(lens(&a), lens(&run("8")));
    assert!(lens(&a).iter().all(|l| (10..=50).contains(l)));
    // Arrivals at ~200/s: 40 requests take ~0.2 s to send.
    let starts: Vec<f64> = a
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["start_s"]
                .as_f64()
                .unwrap()
        })
        .collect();
    let span = starts.iter().cloned().fold(0.0, f64::max);
    assert!(span > 0.08 && span < 0.6, "{span}");
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s[0]["request_rate"], 200.0);
    assert_eq!(s[0]["goodput"]["fraction"], 1.0);
    assert!(s[0]["output_tokens_per_s_per_gpu"].as_f64().unwrap() > 0.0);
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert!(
        csv.starts_with("concurrency,request_rate,requests"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 2);
}

#[test]
fn a_concurrency_sweep_prints_one_block_per_point() {
    let u = url(Program {
        gaps_ms: vec![1.0],
        ..Default::default()
    });
    let v = bench(
        &u,
        &["--concurrency", "1,3", "--num-requests", "6", "--osl", "4"],
    );
    let a = v.as_array().unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(
        (a[0]["concurrency"].as_u64(), a[1]["concurrency"].as_u64()),
        (Some(1), Some(3))
    );
    let o = aicfg(&[
        "bench",
        "serve",
        "--url",
        &u,
        "--model",
        "m",
        "--concurrency",
        "2",
        "--num-requests",
        "4",
        "--osl",
        "4",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    for k in [
        "TTFT ms",
        "TPOT ms",
        "ITL ms",
        "E2E ms",
        "p99",
        "concurrency 2: 4 requests",
    ] {
        assert!(text.contains(k), "{k} missing:\n{text}");
    }
}

#[test]
fn bad_options_and_a_dead_server_are_clear_errors() {
    for (args, want) in [
        (
            vec!["--url", "https://x", "--model", "m"],
            "https is not supported",
        ),
        (
            vec![
                "--url",
                "http://127.0.0.1:9",
                "--model",
                "m",
                "--concurrency",
                "0",
            ],
            "--concurrency 0",
        ),
        (
            vec![
                "--url",
                "http://127.0.0.1:9",
                "--model",
                "m",
                "--isl",
                "uniform:9:1",
            ],
            "lo > hi",
        ),
        (
            vec![
                "--url",
                "http://127.0.0.1:9",
                "--model",
                "m",
                "--timeout=-1",
            ],
            "--timeout",
        ),
        (
            vec![
                "--url",
                "http://127.0.0.1:9",
                "--model",
                "m",
                "--endpoint",
                "chat",
                "--prompt",
                "ids",
            ],
            "--prompt ids",
        ),
        (
            vec![
                "--url",
                "http://127.0.0.1:9",
                "--model",
                "m",
                "--extra-body",
                "[1]",
            ],
            "JSON object",
        ),
        (
            vec![
                "--url",
                "http://127.0.0.1:1",
                "--model",
                "m",
                "--num-requests",
                "2",
            ],
            "every request failed",
        ),
    ] {
        let mut a = vec!["bench", "serve"];
        a.extend(args);
        let o = aicfg(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{a:?}: {err}");
    }
}
