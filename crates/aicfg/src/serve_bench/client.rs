//! The streaming HTTP/1.1 client: one keep-alive connection per in-flight request (pooled),
//! SSE events parsed as bytes arrive, every content event timestamped when its bytes came off
//! the socket (before any JSON parsing).
use aicfg_core::measure::RequestRecord;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Where requests go: `http://host:port[/prefix]`.
#[derive(Debug, Clone)]
pub struct Target {
    pub authority: String,
    pub prefix: String,
}

impl Target {
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        let uri: hyper::Uri = url
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("--url '{url}' is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => anyhow::bail!(
                "--url '{url}': https is not supported; benchmark the plain-HTTP endpoint (or a local port-forward)"
            ),
            _ => anyhow::bail!("--url '{url}' must start with http://"),
        }
        let auth = uri
            .authority()
            .ok_or_else(|| anyhow::anyhow!("--url '{url}' has no host"))?;
        let authority = if auth.port().is_some() {
            auth.to_string()
        } else {
            format!("{}:80", auth.host())
        };
        let prefix = uri.path().trim_end_matches('/').to_string();
        Ok(Target { authority, prefix })
    }

    pub fn path(&self, route: &str) -> String {
        format!("{}{route}", self.prefix)
    }
}

type Sender = SendRequest<Full<Bytes>>;

/// Idle keep-alive connections.
#[derive(Clone)]
pub struct Pool {
    target: Arc<Target>,
    idle: Arc<Mutex<Vec<Sender>>>,
}

impl Pool {
    pub fn new(target: Target) -> Pool {
        Pool {
            target: Arc::new(target),
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    async fn get(&self) -> Result<Sender, String> {
        loop {
            let s = self.idle.lock().expect("pool lock").pop();
            match s {
                Some(mut s) => {
                    if s.ready().await.is_ok() {
                        return Ok(s);
                    }
                }
                None => break,
            }
        }
        let tcp = TcpStream::connect(&self.target.authority)
            .await
            .map_err(|e| format!("connect: {} ({e})", self.target.authority))?;
        let _ = tcp.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("connect: handshake ({e})"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn put(&self, s: Sender) {
        self.idle.lock().expect("pool lock").push(s);
    }
}

/// One request to send.
pub struct Job {
    pub index: u64,
    pub route: String,
    pub body: Bytes,
    pub api_key: Option<String>,
    /// Tokens in the prompt as sent (when known without the server's usage field).
    pub input_tokens: u64,
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow, default)]
    choices: Vec<Choice<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

/// What one SSE data payload says.
enum Said {
    /// Content chunks (choices carrying text) and the usage, if any.
    Data {
        content: bool,
        usage: Option<Usage>,
    },
    Done,
    Error(String),
    Ignore,
}

fn parse_event(data: &[u8]) -> Said {
    let data = data.trim_ascii();
    if data == b"[DONE]" {
        return Said::Done;
    }
    let Ok(ev) = serde_json::from_slice::<Event>(data) else {
        return Said::Ignore;
    };
    if let Some(e) = ev.error {
        let msg = e
            .get("message")
            .and_then(|m| m.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string());
        return Said::Error(format!("stream error: {msg}"));
    }
    let content = ev.choices.iter().any(|c| {
        c.text.as_deref().is_some_and(|t| !t.is_empty())
            || c.delta.as_ref().is_some_and(|d| {
                d.content.as_deref().is_some_and(|t| !t.is_empty())
                    || d.reasoning_content
                        .as_deref()
                        .is_some_and(|t| !t.is_empty())
            })
    });
    Said::Data {
        content,
        usage: ev.usage,
    }
}

/// Incremental SSE line splitter: feeds whole `data:` payloads, keeps a partial line.
#[derive(Default)]
pub struct SseLines {
    buf: Vec<u8>,
}

impl SseLines {
    /// Calls `f` with each complete `data:` payload in `chunk`.
    fn feed(&mut self, chunk: &[u8], mut f: impl FnMut(&[u8])) {
        let mut rest = chunk;
        while let Some(nl) = memchr(b'\n', rest) {
            let line = &rest[..nl];
            rest = &rest[nl + 1..];
            if self.buf.is_empty() {
                emit_line(line, &mut f);
            } else {
                self.buf.extend_from_slice(line);
                let whole = std::mem::take(&mut self.buf);
                emit_line(&whole, &mut f);
            }
        }
        // A server could stream one line forever; cap the partial line (16 MiB).
        if self.buf.len() + rest.len() <= 16 << 20 {
            self.buf.extend_from_slice(rest);
        }
    }
}

fn memchr(b: u8, s: &[u8]) -> Option<usize> {
    s.iter().position(|x| *x == b)
}

fn emit_line(line: &[u8], f: &mut impl FnMut(&[u8])) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if let Some(d) = line.strip_prefix(b"data:") {
        f(d);
    }
}

/// Send one request and time its stream. Never fails: errors are part of the record.
pub async fn run_one(
    pool: &Pool,
    job: Job,
    timeout: Duration,
    origin: Instant,
    cancel: &tokio::sync::watch::Receiver<bool>,
) -> RequestRecord {
    let t0 = Instant::now();
    let mut rec = RequestRecord {
        index: job.index,
        start_s: t0.saturating_duration_since(origin).as_secs_f64(),
        error: None,
        ttft_ms: None,
        e2e_ms: 0.0,
        itl_ms: Vec::new(),
        input_tokens: job.input_tokens,
        output_tokens: 0,
        usage_reported: false,
    };
    let mut cancel = cancel.clone();
    let fut = stream(pool, &job, t0, &mut rec);
    let res = tokio::select! {
        r = tokio::time::timeout(timeout, fut) => match r {
            Ok(r) => r,
            Err(_) => Err(format!("timeout: no complete response within {:.1} s", timeout.as_secs_f64())),
        },
        _ = cancel.wait_for(|c| *c) => Err("cancelled: interrupted".to_string()),
    };
    rec.e2e_ms = t0.elapsed().as_secs_f64() * 1e3;
    if let Err(e) = res {
        rec.error = Some(e);
    }
    rec
}

async fn stream(
    pool: &Pool,
    job: &Job,
    t0: Instant,
    rec: &mut RequestRecord,
) -> Result<(), String> {
    let mut sender = pool.get().await?;
    let mut b = hyper::Request::post(pool.target().path(&job.route))
        .header(hyper::header::HOST, pool.target().authority.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::ACCEPT, "text/event-stream");
    if let Some(k) = &job.api_key {
        b = b.header(hyper::header::AUTHORIZATION, format!("Bearer {k}"));
    }
    let req = b
        .body(Full::new(job.body.clone()))
        .map_err(|e| format!("request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("connection: {e}"))?;

    let status = resp.status();
    let mut body = resp.into_body();
    if !status.is_success() {
        let text = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let snippet: String = String::from_utf8_lossy(&text).chars().take(200).collect();
        pool.put(sender);
        return Err(format!("HTTP {}: {}", status.as_u16(), snippet.trim()));
    }
    let mut lines = SseLines::default();
    let mut last: Option<Instant> = None;
    let mut chunks = 0u64;
    let mut done = false;
    let mut failure: Option<String> = None;
    let mut usage: Option<Usage> = None;
    while let Some(frame) = body.frame().await {
        // The arrival time of these bytes: taken before any parsing.
        let now = Instant::now();
        let frame = frame.map_err(|e| format!("connection: stream broke ({e})"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        lines.feed(&data, |payload| match parse_event(payload) {
            Said::Done => done = true,
            Said::Error(e) => failure = Some(e),
            Said::Ignore => {}
            Said::Data { content, usage: u } => {
                if u.is_some() {
                    usage = u;
                }
                if content {
                    chunks += 1;
                    match last {
                        None => rec.ttft_ms = Some((now - t0).as_secs_f64() * 1e3),
                        Some(l) => rec.itl_ms.push((now - l).as_secs_f64() * 1e3),
                    }
                    last = Some(now);
                }
            }
        });
        if let Some(e) = failure.take() {
            return Err(e);
        }
        if done {
            break;
        }
    }
    if !done {
        return Err("incomplete: stream closed before [DONE]".into());
    }
    rec.output_tokens = chunks;
    if let Some(u) = usage {
        if let Some(p) = u.prompt_tokens {
            rec.input_tokens = p;
        }
        if let Some(c) = u.completion_tokens {
            rec.output_tokens = c;
            rec.usage_reported = true;
        }
    }
    // Drain to the end so the connection can be reused (servers end the body after [DONE]).
    while let Some(f) = body.frame().await {
        if f.is_err() {
            return Ok(());
        }
    }
    pool.put(sender);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_lines_survive_any_split() {
        let text = b"data: {\"choices\":[{\"text\":\"a\"}]}\r\n\r\ndata: [DONE]\n\n";
        for cut in 0..text.len() {
            let mut l = SseLines::default();
            let mut got: Vec<Vec<u8>> = vec![];
            l.feed(&text[..cut], |d| got.push(d.to_vec()));
            l.feed(&text[cut..], |d| got.push(d.to_vec()));
            assert_eq!(got.len(), 2, "cut {cut}");
            assert!(matches!(parse_event(&got[1]), Said::Done));
            assert!(matches!(
                parse_event(&got[0]),
                Said::Data { content: true, .. }
            ));
        }
    }

    #[test]
    fn events_content_usage_and_errors() {
        let role = br#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#;
        assert!(matches!(
            parse_event(role),
            Said::Data { content: false, .. }
        ));
        let u = br#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3}}"#;
        match parse_event(u) {
            Said::Data { usage: Some(u), .. } => {
                assert_eq!((u.prompt_tokens, u.completion_tokens), (Some(7), Some(3)))
            }
            _ => panic!("usage not read"),
        }
        let e = br#"{"error":{"message":"overloaded"}}"#;
        assert!(matches!(parse_event(e), Said::Error(m) if m.contains("overloaded")));
        assert!(matches!(parse_event(b"not json"), Said::Ignore));
    }

    #[test]
    fn urls() {
        let t = Target::parse("http://127.0.0.1:8000/").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path("/v1/x").as_str()),
            ("127.0.0.1:8000", "/v1/x")
        );
        let t = Target::parse("http://host/api").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path("/v1").as_str()),
            ("host:80", "/api/v1")
        );
        assert!(Target::parse("https://x").is_err());
        assert!(Target::parse("ftp://x").is_err());
        assert!(Target::parse("not a url").is_err());
    }
}
