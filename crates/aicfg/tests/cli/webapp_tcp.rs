//! The web server over real TCP (the binary, not the router in-process): Host / Origin /
//! content-type rules, oversize lengths, slow and idle clients, the crash and slot-exhaustion
//! reproducers of the hardening issue; after each, the server still answers others.
use crate::common::webapp::{self, Server};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn start(extra: &[&str]) -> Server {
    webapp::start(extra, None, false)
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    s
}

/// Sends raw bytes, reads the whole response (the request asks to close); (status, text). A
/// server that refuses early (an oversize body) may close before the last bytes are written:
/// the write fails, its answer is still read.
fn raw(port: u16, req: &[u8]) -> (u16, String) {
    let mut s = connect(port);
    if let Err(e) = s.write_all(req) {
        use std::io::ErrorKind::{BrokenPipe, ConnectionReset};
        assert!(matches!(e.kind(), BrokenPipe | ConnectionReset), "{e}");
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn post(port: u16, path: &str, headers: &str, body: &str) -> (u16, String) {
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw(port, req.as_bytes())
}

fn json_post(port: u16, path: &str, body: &str) -> (u16, String) {
    post(port, path, "Content-Type: application/json\r\n", body)
}

const ESTIMATE: &str = r#"{"model":"QWEN3_32B","system":"h200_sxm","tp_size":2}"#;

/// The server still serves an ordinary request.
fn alive(port: u16) {
    let (s, text) = json_post(port, "/api/estimate", ESTIMATE);
    assert_eq!(s, 200, "{text}");
}

#[test]
fn only_its_own_pages_and_json_bodies_are_served() {
    let srv = start(&[]);
    let p = srv.port;
    let (s, text) = raw(
        p,
        format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(s, 200);
    assert!(
        !text.to_ascii_lowercase().contains("access-control-allow"),
        "{text}"
    );
    // DNS rebinding: a page of evil.example resolving to 127.0.0.1 sends its own Host.
    let (s, text) = raw(
        p,
        b"GET /api/options HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(s, 421, "{text}");
    assert!(text.contains("--allowed-host evil.example"), "{text}");
    // Another site's page posting blind: a cross-origin Origin, or a form / text body.
    let (s, _) = post(
        p,
        "/api/estimate",
        "Content-Type: application/json\r\nOrigin: http://evil.example\r\n",
        ESTIMATE,
    );
    assert_eq!(s, 403);
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let (s, text) = post(
            p,
            "/api/estimate",
            &format!("Content-Type: {ct}\r\n"),
            ESTIMATE,
        );
        assert_eq!(s, 415, "{ct}: {text}");
    }
    let (s, _) = post(p, "/api/estimate", "", ESTIMATE);
    assert_eq!(s, 415);
    // Same origin passes.
    let (s, text) = post(
        p,
        "/api/estimate",
        &format!("Content-Type: application/json\r\nOrigin: http://127.0.0.1:{p}\r\n"),
        ESTIMATE,
    );
    assert_eq!(s, 200, "{text}");
    // No Host at all (HTTP/1.0 style).
    let (s, _) = raw(p, b"GET /api/options HTTP/1.0\r\n\r\n");
    assert_eq!(s, 400);
}

#[test]
fn an_oversize_length_is_refused_at_once() {
    let srv = start(&[]);
    let p = srv.port;
    let t0 = Instant::now();
    // 2^63 − 1 announced, nothing sent: refused from the header alone.
    let (s, text) = raw(
        p,
        format!(
            "POST /api/default HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 9223372036854775807\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(s, 413, "{text}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    // A body over the 1 MiB limit sent whole.
    let big = format!(r#"{{"model_config":"{}"}}"#, "x".repeat(1 << 21));
    assert_eq!(json_post(p, "/api/default", &big).0, 413);
    // Headers past hyper's header limit (about 400 KiB).
    let (s, _) = raw(
        p,
        format!(
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nX-Junk: {}\r\nConnection: close\r\n\r\n",
            "y".repeat(1 << 20)
        )
        .as_bytes(),
    );
    assert!(s == 431 || s == 0, "status {s}");
    alive(p);
}

#[test]
fn slow_and_idle_clients_are_dropped_and_cannot_lock_others_out() {
    let srv = start(&["--client-timeout", "1", "--max-connections", "8"]);
    let p = srv.port;
    // Slowloris: headers never finished. The server closes the connection after the timeout.
    let t0 = Instant::now();
    let mut slow = connect(p);
    slow.write_all(format!("POST /api/estimate HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\n").as_bytes())
        .unwrap();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    let waited = t0.elapsed();
    assert!(waited < Duration::from_secs(10), "held {waited:?}");
    // A body announced and never sent: 408 after the timeout.
    let t0 = Instant::now();
    let mut s = connect(p);
    s.write_all(
        format!(
            "POST /api/estimate HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"model\""
        )
        .as_bytes(),
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(t0.elapsed() < Duration::from_secs(10));
    // Every connection slot taken by idle sockets (more than the cap): a real client still gets
    // served once the idle ones time out.
    let idle: Vec<TcpStream> = (0..20).map(|_| connect(p)).collect();
    let t0 = Instant::now();
    alive(p);
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    drop(idle);
    alive(p);
}

#[test]
fn a_timed_out_search_frees_its_slot_and_the_server_keeps_serving() {
    // One search slot, a one-second limit; the search below takes seconds even in a release build.
    let srv = start(&["--max-searches", "1", "--time-limit", "1"]);
    let p = srv.port;
    // (≈ 2 s on one core in a release build: 2.2 M deployments.)
    let slow = r#"{"model":"QWEN3_30B_A3B","system":"h200_sxm","total_gpus":512,"backend":"auto"}"#;
    let t0 = Instant::now();
    let (s, text) = json_post(p, "/api/default", slow);
    assert_eq!(s, 504, "{text}");
    assert!(text.contains("longer than 1 s"), "{text}");
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    // Two more at once: each times out (or finds the slot busy); neither keeps the slot.
    let th: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || json_post(p, "/api/default", slow).0))
        .collect();
    for t in th {
        let s = t.join().unwrap();
        assert!(s == 504 || s == 503, "status {s}");
    }
    // The slot is free again at once: the next request is served, not 503.
    let mut last = 0;
    for _ in 0..20 {
        last = json_post(p, "/api/estimate", ESTIMATE).0;
        if last == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(last, 200);
}

#[test]
fn the_crash_reproducers_are_clear_errors_and_the_server_survives() {
    let srv = start(&[]);
    let p = srv.port;
    let yaml_req = |yaml: &str| {
        let body = serde_json::json!({ "yaml": yaml }).to_string();
        json_post(p, "/api/exp", &body)
    };
    let base = "exps: [a]\na:\n  mode: patch\n  serving_mode: agg\n  model_name: QWEN3_32B\n  total_gpus: 8\n  system_name: h200_sxm\n";
    // Six parallel lists of sixty 1s through one anchor (the 409-byte request that killed the
    // server): deduplicated to one value, answered.
    let ones = format!("[{}]", vec!["1"; 60].join(", "));
    let anchored = format!(
        "{base}  config:\n    worker_config:\n      tp_list: &l {ones}\n      pp_list: *l\n      dp_list: *l\n      moe_tp_list: *l\n      moe_ep_list: *l\n"
    );
    let (s, text) = yaml_req(&anchored);
    assert!(s == 200 || s == 422, "{s}: {text}");
    // Sixty-five distinct values: a limit error naming the list.
    let many = format!(
        "{base}  config:\n    worker_config:\n      tp_list: [{}]\n",
        (1..=65)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (s, text) = yaml_req(&many);
    assert_eq!(s, 422, "{text}");
    assert!(text.contains("tp_list") && text.contains("64"), "{text}");
    // Deep nesting (120 KB): refused before parsing.
    let deep = format!("a: {}{}\n", "[".repeat(60_000), "]".repeat(60_000));
    let t0 = Instant::now();
    let (s, text) = yaml_req(&deep);
    assert_eq!(s, 422, "{text}");
    assert!(text.contains("deeper than"), "{text}");
    assert!(t0.elapsed() < Duration::from_secs(10));
    // Thousands of experiments in one body.
    let mut lots = String::from("exps: [");
    lots.push_str(
        &(0..9800)
            .map(|i| format!("e{i}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    lots.push_str("]\n");
    lots.push_str(
        "e0: &d {mode: patch, serving_mode: agg, model_name: QWEN3_32B, total_gpus: 8, system_name: h200_sxm}\n",
    );
    for i in 1..9800 {
        lots.push_str(&format!("e{i}: *d\n"));
    }
    assert!(lots.len() < 1 << 20);
    let (s, text) = yaml_req(&lots);
    assert_eq!(s, 422, "{text}");
    assert!(text.contains("64"), "{text}");
    // Batch caps and cluster sizes past their bounds.
    let big_batch = format!(
        "{base}  config:\n    advanced_tuning_config:\n      prefill_max_batch_size: 4294967295\n"
    );
    let (s, text) = yaml_req(&big_batch);
    assert_eq!(s, 422, "{text}");
    let (s, text) = json_post(
        p,
        "/api/default",
        r#"{"model":"QWEN3_32B","system":"h200_sxm","total_gpus":4294967295}"#,
    );
    assert_eq!(s, 422, "{text}");
    // Hostile pasted config.json: a typed error naming the field.
    let cfg = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "num_hidden_layers": 4294967297u64,
        "num_attention_heads": 32, "vocab_size": 32000, "intermediate_size": 11008
    })
    .to_string();
    let body =
        serde_json::json!({"model_config": cfg, "system": "h200_sxm", "total_gpus": 8}).to_string();
    let (s, text) = json_post(p, "/api/default", &body);
    assert_eq!(s, 422, "{text}");
    assert!(text.contains("num_hidden_layers"), "{text}");
    alive(p);
}
