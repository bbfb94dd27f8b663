//! A programmable OpenAI-compatible streaming server on 127.0.0.1, for measuring
//! `aicfg bench serve` itself (see BENCHMARKS.md):
//!   cargo run --release -p aicfg --example fake_openai -- PORT FIRST_MS GAP_MS [THREADS] [TOKENS_PER_EVENT]
#[path = "../tests/common/sse_server.rs"]
mod sse_server;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: f64| a.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(d);
    let port = num(0, 8000.0) as u16;
    let p = sse_server::Program {
        first_ms: num(1, 0.0),
        gaps_ms: if num(2, 0.0) > 0.0 {
            vec![num(2, 0.0)]
        } else {
            vec![]
        },
        tokens_per_event: num(4, 1.0) as usize,
        ..Default::default()
    };
    let addr = sse_server::start_on(p, num(3, 1.0) as usize, port);
    eprintln!("serving on http://{addr}");
    loop {
        std::thread::park();
    }
}
