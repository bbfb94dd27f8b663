//! `aicfg bench serve` against a programmed streaming server on 127.0.0.1.
use crate::common::{aicfg, alone, ok_json};

use crate::common::sse_server::{start, Program};
use crate::common::tokenizer;
use serde_json::Value;

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

thread_local! {
    static CONTENTION: std::cell::Cell<f64> = const { std::cell::Cell::new(1.0) };
}

/// How contended the CPUs are now: (run + runqueue wait) / run time of a 30 ms busy loop, from
/// /proc/thread-self/schedstat. 1 on an idle machine; on a machine shared with other builds
/// every process (server and client included) waits this much longer for its CPU time.
fn contention() -> f64 {
    fn stat() -> Option<(f64, f64)> {
        let t = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        let mut it = t.split_whitespace().map(|x| x.parse::<f64>().ok());
        Some((it.next()??, it.next()??))
    }
    let Some((c0, w0)) = stat() else { return 1.0 };
    let t = std::time::Instant::now();
    let mut x = 0u64;
    while t.elapsed() < std::time::Duration::from_millis(30) {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    let Some((c1, w1)) = stat() else { return 1.0 };
    let run = (c1 - c0).max(1.0);
    ((run + (w1 - w0).max(0.0)) / run).max(1.0)
}

/// Within 1 ms or 2 %, whichever is looser, on an idle machine; scaled by the measured CPU
/// contention (and the wake-up noise) on a shared one.
fn close(got: f64, want: f64, what: &str) -> Result<(), String> {
    let tol = (0.02 * want).max(1.0) * CONTENTION.with(|c| c.get()) + wake_noise_ms();
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
    let _g = alone();
    let mut last = String::new();
    for _ in 0..5 {
        let c = contention();
        CONTENTION.with(|x| x.set(c));
        match check().map_err(|e| format!("{e} (CPU contention ×{c:.2})")) {
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

/// Common words: the tokenizer's vocabulary.
const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as",
];

#[test]
fn a_tokenizer_gives_text_prompts_of_exact_length() {
    let u = url(Program {
        first_ms: 1.0,
        gaps_ms: vec![0.2],
        ..Default::default()
    });
    let d = tempfile::tempdir().unwrap();
    let tok = tokenizer::write_word_tokenizer(d.path(), WORDS);
    let tok = tok.to_str().unwrap();
    let run = |endpoint: &str| {
        bench(
            &u,
            &[
                "--endpoint",
                endpoint,
                "--tokenizer",
                tok,
                "--num-requests",
                "3",
                "--isl",
                "50",
                "--osl",
                "4",
            ],
        )
    };
    // The stub server counts the words it got. Completions: 49 words, the 50th token is the
    // BOS the tokenizer declares and a real server adds; chat: the content is 50 tokens.
    assert_eq!(run("completions")["input_tokens"], 3 * 49);
    assert_eq!(run("chat")["input_tokens"], 3 * 50);
    let o = aicfg(&[
        "bench",
        "serve",
        "--url",
        &u,
        "--model",
        "m",
        "--tokenizer",
        "/nonexistent/tokenizer.json",
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("--tokenizer /nonexistent/tokenizer.json"),
        "{e}"
    );
}

#[test]
fn errors_are_counted_not_fatal() {
    let _g = alone();
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
    let _g = alone();
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
    let _g = alone();
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
    let _g = alone();
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
    let _g = alone();
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

#[test]
fn ctrl_c_prints_what_finished() {
    let _g = alone();
    let u = url(Program {
        gaps_ms: vec![5.0],
        ..Default::default()
    });
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_aicfg"))
        .args([
            "bench",
            "serve",
            "--url",
            &u,
            "--model",
            "m",
            "--concurrency",
            "2",
            "--num-requests",
            "1000",
            "--osl",
            "20",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let st = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["interrupted"], true);
    assert_eq!(v["errors"], 0, "cancelled requests are not server errors");
    let n = v["requests"].as_u64().unwrap();
    assert!((2..1000).contains(&n), "{n}");
}
