//! A programmable OpenAI-compatible streaming server for tests and for measuring the client:
//! first-token delay, a cycle of inter-token gaps, HTTP errors, streams cut mid-way and stalls.
//! Tokens are sent at absolute times (start + first + sum of gaps) so timer lateness does not
//! accumulate across a stream.
#![allow(dead_code)]
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct Program {
    /// Delay from receiving the request to the first token.
    pub first_ms: f64,
    /// Gaps between tokens, used in turn (empty = no delay).
    pub gaps_ms: Vec<f64>,
    /// Every k-th request (1-based) is answered with HTTP 500.
    pub error_every: Option<u64>,
    /// Every k-th request's stream is closed after half its tokens, without [DONE].
    pub cut_every: Option<u64>,
    /// Every k-th request stalls forever after its first token.
    pub stall_every: Option<u64>,
    /// Tokens per SSE event.
    pub tokens_per_event: usize,
    /// Omit the usage field.
    pub no_usage: bool,
}

struct Shared {
    p: Program,
    n: AtomicU64,
}

fn every(k: Option<u64>, n: u64) -> bool {
    k.is_some_and(|k| k > 0 && n.is_multiple_of(k))
}

fn prompt_len(body: &Value) -> u64 {
    match body.get("prompt") {
        Some(Value::Array(a)) => a.len() as u64,
        Some(Value::String(s)) => s.split_whitespace().count() as u64,
        _ => body
            .get("messages")
            .and_then(|m| m.as_array())
            .map(|m| {
                m.iter()
                    .filter_map(|x| x.get("content").and_then(|c| c.as_str()))
                    .map(|c| c.split_whitespace().count() as u64)
                    .sum()
            })
            .unwrap_or(0),
    }
}

async fn complete(State(s): State<Arc<Shared>>, Json(body): Json<Value>) -> Response {
    let start = tokio::time::Instant::now();
    let n = s.n.fetch_add(1, Ordering::Relaxed) + 1;
    let p = &s.p;
    if every(p.error_every, n) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "programmed failure").into_response();
    }
    let chat = body.get("messages").is_some();
    let max = body
        .get("max_tokens")
        .and_then(|v| v.as_u64())
        .unwrap_or(16);
    let pin = prompt_len(&body);
    let cut = every(p.cut_every, n).then_some(max / 2);
    let stall = every(p.stall_every, n);
    let p = p.clone();
    let per = p.tokens_per_event.max(1) as u64;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        // Events are pre-built once per stream: the server should cost far less than the client.
        let ev = |k: u64| -> Bytes {
            let text = "tok ".repeat(k as usize);
            let v = if chat {
                json!({"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":text}}]})
            } else {
                json!({"id":"x","object":"text_completion","choices":[{"index":0,"text":text}]})
            };
            Bytes::from(format!("data: {v}\n\n"))
        };
        let full = ev(per);
        if chat {
            let role = json!({"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]});
            if tx
                .send(Ok(Bytes::from(format!("data: {role}\n\n"))))
                .await
                .is_err()
            {
                return;
            }
        }
        let mut at = start + Duration::from_secs_f64(p.first_ms / 1e3);
        let mut sent = 0u64;
        let mut gi = 0usize;
        while sent < max {
            precise_sleep_until(at).await;
            let k = per.min(max - sent);
            let e = if k == per { full.clone() } else { ev(k) };
            if tx.send(Ok(e)).await.is_err() {
                return;
            }
            sent += k;
            if stall {
                std::future::pending::<()>().await;
            }
            if cut.is_some_and(|c| sent >= c.max(1)) {
                return; // dropping the sender ends the body without [DONE]
            }
            if !p.gaps_ms.is_empty() {
                at += Duration::from_secs_f64(p.gaps_ms[gi % p.gaps_ms.len()] / 1e3);
                gi += 1;
            }
        }
        if !p.no_usage {
            let u = json!({"choices":[],"usage":{"prompt_tokens":pin,"completion_tokens":sent,"total_tokens":pin+sent}});
            let _ = tx.send(Ok(Bytes::from(format!("data: {u}\n\n")))).await;
        }
        let _ = tx.send(Ok(Bytes::from_static(b"data: [DONE]\n\n"))).await;
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .expect("static response")
}

/// The timer wheel ticks in whole milliseconds (a sleep ends up to ~1 ms late): sleep to just
/// before the deadline, then yield until it passes.
async fn precise_sleep_until(at: tokio::time::Instant) {
    let early = Duration::from_micros(1500);
    if let Some(t) = at.checked_sub(early) {
        if tokio::time::Instant::now() < t {
            tokio::time::sleep_until(t).await;
        }
    }
    while tokio::time::Instant::now() < at {
        tokio::task::yield_now().await;
    }
}

async fn models() -> Json<Value> {
    Json(json!({"object":"list","data":[{"id":"test-model","object":"model"}]}))
}

/// Start the server on 127.0.0.1 (a free port) in its own runtime thread; returns its address.
pub fn start(p: Program) -> SocketAddr {
    start_threads(p, 2)
}

pub fn start_threads(p: Program, threads: usize) -> SocketAddr {
    start_on(p, threads, 0)
}

/// On a given port (0 = any free one).
pub fn start_on(p: Program, threads: usize, port: u16) -> SocketAddr {
    let shared = Arc::new(Shared {
        p,
        n: AtomicU64::new(0),
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let sh = shared.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let app = Router::new()
                .route("/v1/completions", post(complete))
                .route("/v1/chat/completions", post(complete))
                .route("/v1/models", get(models))
                .route("/health", get(|| async { "ok" }))
                .with_state(sh);
            let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .expect("bind");
            tx.send(l.local_addr().expect("addr")).expect("send addr");
            // Real servers (uvicorn, the Dynamo frontend) disable Nagle; without it a token
            // written after a small chunk waits for the client's delayed ACK (~40 ms).
            let l = l.tap_io(|t| {
                let _ = t.set_nodelay(true);
            });
            axum::serve(l, app).await.expect("serve");
        });
    });
    rx.recv().expect("server started")
}
