//! `aicfg bench serve`: benchmark an OpenAI-compatible endpoint (trtllm-serve, vLLM, SGLang,
//! Dynamo frontend). This module parses options, drives the load and presents; the statistics
//! are the core's (`aicfg_core::measure`).
pub mod client;
pub mod tokenized;

use aicfg_core::measure::load::lengths;
use aicfg_core::measure::{BenchSummary, Dist, LengthDist, RequestRecord, SloTargets, SplitMix64};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use client::{Job, Pool, Target};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Endpoint {
    /// /v1/completions
    Completions,
    /// /v1/chat/completions
    Chat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PromptKind {
    /// Token ids as the prompt (completions only; vLLM, SGLang and trtllm-serve accept them):
    /// exact input lengths without a tokenizer.
    Ids,
    /// Text of common one-token words: close to the asked length; the server's usage field
    /// gives the exact count.
    Text,
}

/// Options that make the server produce exactly `--osl` tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Framework {
    /// `ignore_eos` and `min_tokens` (vLLM, SGLang and trtllm-serve accept both).
    Auto,
    Vllm,
    Sglang,
    Trtllm,
    /// Dynamo frontend: `nvext.ignore_eos` as well.
    Dynamo,
    /// Plain OpenAI fields only (the output may stop early at EOS).
    None,
}

#[derive(Args, Debug, Clone)]
pub struct ServeBenchArgs {
    /// Base URL of the endpoint, e.g. http://127.0.0.1:8000.
    #[arg(long)]
    pub url: String,
    /// Served model name.
    #[arg(long)]
    pub model: String,
    /// Route: completions (/v1/completions) or chat (/v1/chat/completions).
    #[arg(long, value_enum, default_value = "completions")]
    pub endpoint: Endpoint,
    /// Closed-loop concurrency; a comma list sweeps (e.g. 1,8,64). Default 1 without --request-rate.
    #[arg(long, value_delimiter = ',')]
    pub concurrency: Vec<u32>,
    /// Open-loop Poisson arrivals at this many requests/s (seeded); --concurrency then caps
    /// the requests in flight.
    #[arg(long = "request-rate", alias = "request_rate")]
    pub request_rate: Option<f64>,
    /// Measured requests per load point (default: 10 × concurrency, at least 20; with
    /// --duration: until the time is up).
    #[arg(long = "num-requests", alias = "num_requests")]
    pub num_requests: Option<u64>,
    /// Requests per load point sent first and not measured.
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    /// Stop sending new requests after this many seconds per load point.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Give up on a request after this many seconds.
    #[arg(long, default_value_t = 600.0)]
    pub timeout: f64,
    /// Input length: N, uniform:LO:HI or normal:MEAN:STD tokens.
    #[arg(long, default_value = "1024")]
    pub isl: String,
    /// Output length (max_tokens), same forms as --isl.
    #[arg(long, default_value = "128")]
    pub osl: String,
    /// Prompt form (default: ids for completions, text for chat or with --tokenizer).
    #[arg(long, value_enum)]
    pub prompt: Option<PromptKind>,
    /// The model's tokenizer.json: text prompts of exactly --isl tokens (special tokens such as
    /// BOS included; for chat, the message content), for servers that take no token ids.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Which server's options force the output length.
    #[arg(long, value_enum, default_value = "auto")]
    pub framework: Framework,
    /// Extra JSON object merged into every request body, e.g. '{"temperature":0}'.
    #[arg(long = "extra-body", alias = "extra_body")]
    pub extra_body: Option<String>,
    /// Seed of the lengths, prompts and arrival times.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// GPUs behind the endpoint: adds tokens/s/gpu.
    #[arg(long = "num-gpus", alias = "num_gpus")]
    pub num_gpus: Option<u32>,
    /// TTFT target (ms) for goodput.
    #[arg(long)]
    pub ttft: Option<f64>,
    /// TPOT target (ms) for goodput.
    #[arg(long)]
    pub tpot: Option<f64>,
    /// Bearer token (default: $OPENAI_API_KEY when set).
    #[arg(long = "api-key", alias = "api_key")]
    pub api_key: Option<String>,
    /// Write requests.jsonl, summary.json and summary.csv here.
    #[arg(long = "out-dir", alias = "out_dir")]
    pub out_dir: Option<PathBuf>,
    /// Print the summary as JSON (one object; an array for a sweep).
    #[arg(long)]
    pub json: bool,
    /// Client runtime threads (1 = everything on one core).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// No progress bar on stderr.
    #[arg(long = "no-progress")]
    pub no_progress: bool,
}

/// Most requests one load point may ask for.
const MAX_REQUESTS: u64 = 10_000_000;
/// Most concurrent streams (each is one socket).
const MAX_CONCURRENCY: u32 = 100_000;

/// Everything a load point needs, checked.
#[derive(Clone)]
pub struct Plan {
    pub target: Target,
    pub model: String,
    pub endpoint: Endpoint,
    pub prompt: PromptKind,
    pub framework: Framework,
    pub extra: serde_json::Map<String, serde_json::Value>,
    pub isl: LengthDist,
    pub osl: LengthDist,
    /// Single-token words of `--tokenizer`: text prompts of exact length.
    pub words: Option<Arc<tokenized::TokenWords>>,
    pub seed: u64,
    pub warmup: u64,
    pub num_requests: Option<u64>,
    pub duration: Option<Duration>,
    pub timeout: Duration,
    pub api_key: Option<String>,
    pub num_gpus: Option<u32>,
    pub targets: SloTargets,
    pub progress: bool,
}

/// One load point: closed loop at a concurrency, or open loop at a rate (with an optional cap).
#[derive(Clone, Copy, Debug)]
pub struct Point {
    pub concurrency: Option<u32>,
    pub rate: Option<f64>,
}

impl Point {
    pub fn label(&self) -> String {
        match (self.concurrency, self.rate) {
            (c, Some(r)) => match c {
                Some(c) => format!("rate {r}/s (≤{c} in flight)"),
                None => format!("rate {r}/s"),
            },
            (Some(c), None) => format!("concurrency {c}"),
            (None, None) => "concurrency 1".into(),
        }
    }
}

fn positive(name: &str, v: f64) -> Result<f64> {
    if !(v.is_finite() && v > 0.0) {
        bail!("--{name} must be a positive number, got {v}");
    }
    Ok(v)
}

impl ServeBenchArgs {
    pub fn plan(&self) -> Result<(Plan, Vec<Point>)> {
        let target = Target::parse(&self.url)?;
        if self.model.trim().is_empty() {
            bail!("--model must name the served model");
        }
        let words = self
            .tokenizer
            .as_deref()
            .map(tokenized::TokenWords::from_file)
            .transpose()?
            .map(Arc::new);
        let prompt = self.prompt.unwrap_or(match (self.endpoint, &words) {
            (Endpoint::Completions, None) => PromptKind::Ids,
            _ => PromptKind::Text,
        });
        if prompt == PromptKind::Ids && self.endpoint == Endpoint::Chat {
            bail!("--prompt ids needs --endpoint completions (chat messages are text)");
        }
        let extra = match &self.extra_body {
            None => serde_json::Map::new(),
            Some(s) => match serde_json::from_str::<serde_json::Value>(s)
                .context("--extra-body is not JSON")?
            {
                serde_json::Value::Object(m) => m,
                _ => bail!("--extra-body must be a JSON object"),
            },
        };
        for c in &self.concurrency {
            if *c == 0 || *c > MAX_CONCURRENCY {
                bail!("--concurrency {c} is outside 1..={MAX_CONCURRENCY}");
            }
        }
        if let Some(r) = self.request_rate {
            positive("request-rate", r)?;
        }
        if let Some(n) = self.num_requests {
            if n == 0 || n > MAX_REQUESTS {
                bail!("--num-requests {n} is outside 1..={MAX_REQUESTS}");
            }
        }
        if self.warmup > MAX_REQUESTS {
            bail!("--warmup {} is above {MAX_REQUESTS}", self.warmup);
        }
        let duration = self
            .duration
            .map(|d| positive("duration", d).map(Duration::from_secs_f64))
            .transpose()?;
        let timeout = Duration::from_secs_f64(positive("timeout", self.timeout)?.min(1e7));
        for (n, v) in [("ttft", self.ttft), ("tpot", self.tpot)] {
            if let Some(v) = v {
                positive(n, v)?;
            }
        }
        if self.num_gpus == Some(0) {
            bail!("--num-gpus must be at least 1");
        }
        if self.threads == 0 || self.threads > 256 {
            bail!("--threads must be in 1..=256");
        }
        let points = match (self.request_rate, self.concurrency.as_slice()) {
            (Some(r), []) => vec![Point {
                concurrency: None,
                rate: Some(r),
            }],
            (Some(r), cs) => cs
                .iter()
                .map(|c| Point {
                    concurrency: Some(*c),
                    rate: Some(r),
                })
                .collect(),
            (None, []) => vec![Point {
                concurrency: Some(1),
                rate: None,
            }],
            (None, cs) => cs
                .iter()
                .map(|c| Point {
                    concurrency: Some(*c),
                    rate: None,
                })
                .collect(),
        };
        let plan = Plan {
            target,
            model: self.model.clone(),
            endpoint: self.endpoint,
            prompt,
            framework: self.framework,
            extra,
            isl: LengthDist::parse("--isl", &self.isl)?,
            osl: LengthDist::parse("--osl", &self.osl)?,
            words,
            seed: self.seed,
            warmup: self.warmup,
            num_requests: self.num_requests,
            duration,
            timeout,
            api_key: self.api_key.clone().or_else(|| {
                std::env::var("OPENAI_API_KEY")
                    .ok()
                    .filter(|k| !k.is_empty())
            }),
            num_gpus: self.num_gpus,
            targets: SloTargets {
                ttft_ms: self.ttft,
                tpot_ms: self.tpot,
            },
            progress: !self.no_progress && !self.json,
        };
        Ok((plan, points))
    }
}

/// Common English words that are one token in the usual BPE vocabularies.
const WORDS: [&str; 32] = [
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by",
    "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an",
    "had", "they", "you", "were", "their",
];

impl Plan {
    fn route(&self) -> &'static str {
        match self.endpoint {
            Endpoint::Completions => "/v1/completions",
            Endpoint::Chat => "/v1/chat/completions",
        }
    }

    /// The body of request `index` with `isl` input and `osl` output tokens. Prompts differ per
    /// request (seeded) so a prefix cache cannot skip the prefill.
    pub fn body(&self, index: u64, isl: u64, osl: u64) -> Bytes {
        use serde_json::{json, Value};
        let mut rng = SplitMix64::new(self.seed ^ index.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let mut m = serde_json::Map::new();
        m.insert("model".into(), json!(self.model));
        match self.prompt {
            PromptKind::Ids => {
                // Ids from the middle of every common vocabulary (ordinary word pieces).
                let ids: Vec<u32> = (0..isl)
                    .map(|_| 1000 + (rng.next_u64() % 20_000) as u32)
                    .collect();
                m.insert("prompt".into(), json!(ids));
            }
            PromptKind::Text => {
                let s = match &self.words {
                    // Exact: the server adds the special tokens to a completion prompt;
                    // a chat message's content is counted alone (its template adds more).
                    Some(tw) => {
                        let n = match self.endpoint {
                            Endpoint::Completions => isl.saturating_sub(tw.specials),
                            Endpoint::Chat => isl,
                        };
                        tw.text(n, &mut rng)
                    }
                    None => {
                        let mut s = String::with_capacity(isl as usize * 5);
                        for i in 0..isl {
                            if i > 0 {
                                s.push(' ');
                            }
                            s.push_str(WORDS[(rng.next_u64() % WORDS.len() as u64) as usize]);
                        }
                        s
                    }
                };
                match self.endpoint {
                    Endpoint::Chat => {
                        m.insert("messages".into(), json!([{"role": "user", "content": s}]));
                    }
                    Endpoint::Completions => {
                        m.insert("prompt".into(), json!(s));
                    }
                }
            }
        }
        m.insert("max_tokens".into(), json!(osl));
        m.insert("stream".into(), json!(true));
        m.insert("stream_options".into(), json!({"include_usage": true}));
        let fixed = matches!(self.framework, Framework::None);
        if !fixed {
            m.insert("ignore_eos".into(), json!(true));
            if !matches!(self.framework, Framework::Sglang) {
                m.insert("min_tokens".into(), json!(osl));
            }
            if matches!(self.framework, Framework::Dynamo) {
                m.insert("nvext".into(), json!({"ignore_eos": true}));
            }
        }
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        Bytes::from(serde_json::to_vec(&Value::Object(m)).expect("JSON value serializes"))
    }
}

/// Stop everything on Ctrl-C (or when a caller flips the flag).
pub type Cancel = tokio::sync::watch::Receiver<bool>;

/// Run one load point; returns its measured records (warmup excluded), the measured window and
/// whether it was cut short.
pub async fn run_point(
    plan: &Plan,
    point: Point,
    cancel: &Cancel,
) -> (Vec<RequestRecord>, f64, bool) {
    let pool = Pool::new(plan.target.clone());
    let conc = point.concurrency.unwrap_or(1) as u64;
    let measured = plan
        .num_requests
        .unwrap_or(if plan.duration.is_some() {
            MAX_REQUESTS
        } else {
            (10 * conc).max(20)
        })
        .min(MAX_REQUESTS);
    let seed = plan.seed ^ point.concurrency.unwrap_or(0) as u64;
    if plan.warmup > 0 {
        let _ = drive(plan, &pool, point, 0, plan.warmup, None, seed, cancel, None).await;
    }
    let bar = progress(
        plan.progress,
        measured,
        &point.label(),
        plan.duration.is_some(),
    );
    let start = Instant::now();
    let (recs, cut) = drive(
        plan,
        &pool,
        point,
        plan.warmup,
        measured,
        plan.duration,
        seed,
        cancel,
        bar.as_ref(),
    )
    .await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    // Requests cut by Ctrl-C say nothing about the server: drop them.
    let recs: Vec<RequestRecord> = recs
        .into_iter()
        .filter(|r| {
            !r.error
                .as_deref()
                .is_some_and(|e| e.starts_with("cancelled"))
        })
        .collect();
    // The window: first send to last byte received.
    let end = recs
        .iter()
        .map(|r| r.start_s + r.e2e_ms / 1e3)
        .fold(0.0f64, f64::max);
    let first = recs.iter().map(|r| r.start_s).fold(f64::INFINITY, f64::min);
    let window = if recs.is_empty() {
        start.elapsed().as_secs_f64()
    } else {
        end - first.min(end)
    };
    (recs, window, cut || *cancel.borrow())
}

fn progress(on: bool, n: u64, label: &str, timed: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !on || !std::io::stderr().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::new(if timed { 0 } else { n });
    let t = if timed {
        "{spinner} {msg}: {pos} requests ({elapsed})"
    } else {
        "{spinner} {msg} {bar:40} {pos}/{len} requests ({elapsed}, eta {eta})"
    };
    b.set_style(indicatif::ProgressStyle::with_template(t).expect("static template is valid"));
    b.set_message(label.to_string());
    Some(b)
}

/// Send requests `first..first+n` under the point's load; returns their records in issue order.
#[allow(clippy::too_many_arguments)]
async fn drive(
    plan: &Plan,
    pool: &Pool,
    point: Point,
    first: u64,
    n: u64,
    duration: Option<Duration>,
    seed: u64,
    cancel: &Cancel,
    bar: Option<&indicatif::ProgressBar>,
) -> (Vec<RequestRecord>, bool) {
    let origin = Instant::now();
    let deadline = duration.map(|d| origin + d);
    let plan = Arc::new(plan.clone());
    let out: Arc<Mutex<Vec<RequestRecord>>> = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicU64::new(0));
    let job = {
        let plan = plan.clone();
        move |i: u64| -> Job {
            let idx = first + i;
            let (isl, osl) = lengths(&plan.isl, &plan.osl, 1, seed ^ idx.wrapping_mul(0x9E37))[0];
            Job {
                index: i,
                route: plan.route().to_string(),
                body: plan.body(idx, isl, osl),
                api_key: plan.api_key.clone(),
                input_tokens: if plan.prompt == PromptKind::Ids {
                    isl
                } else {
                    0
                },
            }
        }
    };
    let job = Arc::new(job);
    let past = |d: Option<Instant>| d.is_some_and(|d| Instant::now() >= d);
    let mut cut = false;
    match point.rate {
        None => {
            // Closed loop: `conc` workers, each sends its next request when the last one ends.
            let conc = point
                .concurrency
                .unwrap_or(1)
                .min(n.min(u32::MAX as u64) as u32)
                .max(1);
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..conc {
                let (pool, job, next, out, cancel) = (
                    pool.clone(),
                    job.clone(),
                    next.clone(),
                    out.clone(),
                    cancel.clone(),
                );
                let timeout = plan.timeout;
                set.spawn(async move {
                    loop {
                        if *cancel.borrow() || past(deadline) {
                            return true;
                        }
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return false;
                        }
                        let r = client::run_one(&pool, job(i), timeout, origin, &cancel).await;
                        out.lock().expect("records lock").push(r);
                    }
                });
            }
            // Progress from the shared count (the workers cannot borrow the bar).
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    r = set.join_next() => match r {
                        Some(Ok(c)) => cut |= c,
                        Some(Err(_)) => {}
                        None => break,
                    },
                    _ = tick.tick() => {
                        if let Some(b) = bar {
                            b.set_position(out.lock().expect("records lock").len() as u64);
                        }
                    }
                }
            }
        }
        Some(rate) => {
            // Open loop: Poisson arrivals from the seed; the cap (if any) bounds requests in flight.
            let mut arrivals = SplitMix64::new(seed ^ 0xA5A5_A5A5);
            let cap = point
                .concurrency
                .map(|c| Arc::new(tokio::sync::Semaphore::new(c as usize)));
            let mut set = tokio::task::JoinSet::new();
            let mut t = 0.0f64;
            let mut cancel_w = cancel.clone();
            for i in 0..n {
                if *cancel.borrow() || past(deadline) {
                    cut = true;
                    break;
                }
                if i > 0 {
                    t += arrivals.exp_gap(rate);
                }
                let at = origin + Duration::from_secs_f64(t);
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {}
                    _ = cancel_w.wait_for(|c| *c) => { cut = true; break; }
                }
                let permit = match &cap {
                    Some(s) => match s.clone().acquire_owned().await {
                        Ok(p) => Some(p),
                        Err(_) => break,
                    },
                    None => None,
                };
                let (pool, job, sink, cancel) =
                    (pool.clone(), job.clone(), out.clone(), cancel.clone());
                let timeout = plan.timeout;
                set.spawn(async move {
                    let r = client::run_one(&pool, job(i), timeout, origin, &cancel).await;
                    drop(permit);
                    sink.lock().expect("records lock").push(r);
                });
                while let Some(r) = set.try_join_next() {
                    let _ = r;
                }
                if let Some(b) = bar {
                    b.set_position(out.lock().expect("records lock").len() as u64);
                }
            }
            while set.join_next().await.is_some() {}
        }
    }
    let mut recs = std::mem::take(&mut *out.lock().expect("records lock"));
    recs.sort_by_key(|r| r.index);
    (recs, cut)
}

/// Run every point, summarize, present, write files.
pub fn run(a: &ServeBenchArgs) -> Result<()> {
    let (plan, points) = a.plan()?;
    let rt = runtime(a.threads)?;
    let results = rt.block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("interrupted: summarizing what finished");
                let _ = tx.send(true);
            }
        });
        sweep(&plan, &points, &rx).await
    });
    present(a, &plan, &results)
}

pub fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    rt.context("cannot start the async runtime")
}

/// Every point in order; stops after an interrupted one.
pub async fn sweep(
    plan: &Plan,
    points: &[Point],
    cancel: &Cancel,
) -> Vec<(Point, Vec<RequestRecord>, BenchSummary)> {
    let mut out = Vec::new();
    for p in points {
        if *cancel.borrow() {
            break;
        }
        let (recs, window, cut) = run_point(plan, *p, cancel).await;
        let mut s = BenchSummary::from_records(
            &recs,
            window,
            p.concurrency.filter(|_| p.rate.is_none()),
            p.rate,
            plan.num_gpus,
            plan.targets,
        );
        s.interrupted = cut;
        out.push((*p, recs, s));
    }
    out
}

fn f(v: f64) -> String {
    format!("{v:.2}")
}

fn dist_cells(d: &Option<Dist>) -> Vec<String> {
    match d {
        Some(d) => vec![f(d.mean), f(d.p50), f(d.p90), f(d.p99)],
        None => vec!["-".into(); 4],
    }
}

/// The table of one sweep: a row per metric and point.
pub fn table(results: &[(Point, Vec<RequestRecord>, BenchSummary)]) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(vec!["load", "metric", "mean", "p50", "p90", "p99"]);
    for (p, _, s) in results {
        for (name, d) in [
            ("TTFT ms", &s.ttft_ms),
            ("TPOT ms", &s.tpot_ms),
            ("ITL ms", &s.itl_ms),
            ("E2E ms", &s.e2e_ms),
        ] {
            let mut row = vec![p.label(), name.to_string()];
            row.extend(dist_cells(d));
            t.add_row(row);
        }
    }
    let mut text = t.to_string();
    for (p, _, s) in results {
        text.push_str(&format!(
            "\n{}: {} requests, {} completed, {} errors{} in {:.2} s; {:.2} req/s; output {:.1} tok/s{}{}; total {:.1} tok/s{}{}",
            p.label(),
            s.requests,
            s.completed,
            s.errors,
            if s.error_kinds.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    s.error_kinds
                        .iter()
                        .map(|(k, v)| format!("{k} ×{v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            s.duration_s,
            s.requests_per_s,
            s.output_tokens_per_s,
            s.output_tokens_per_s_per_gpu
                .map(|g| format!(" ({g:.1}/gpu)"))
                .unwrap_or_default(),
            s.tokens_per_s_per_user
                .map(|u| format!(", {u:.1} tok/s/user"))
                .unwrap_or_default(),
            s.total_tokens_per_s,
            s.goodput
                .map(|g| format!(
                    "; goodput {:.2} req/s ({:.1}% within targets)",
                    g.requests_per_s,
                    100.0 * g.fraction
                ))
                .unwrap_or_default(),
            if s.interrupted { " [interrupted]" } else { "" },
        ));
    }
    text
}

pub const SUMMARY_CSV_HEADER: [&str; 27] = [
    "concurrency",
    "request_rate",
    "requests",
    "completed",
    "errors",
    "duration_s",
    "ttft_mean_ms",
    "ttft_p50_ms",
    "ttft_p90_ms",
    "ttft_p99_ms",
    "tpot_mean_ms",
    "tpot_p50_ms",
    "tpot_p90_ms",
    "tpot_p99_ms",
    "itl_mean_ms",
    "itl_p50_ms",
    "itl_p90_ms",
    "itl_p99_ms",
    "e2e_mean_ms",
    "e2e_p50_ms",
    "e2e_p90_ms",
    "e2e_p99_ms",
    "output_tokens_per_s",
    "output_tokens_per_s_per_gpu",
    "tokens_per_s_per_user",
    "goodput_requests_per_s",
    "interrupted",
];

/// requests.jsonl, summary.json and summary.csv under `dir`.
pub fn write_outputs(
    dir: &std::path::Path,
    results: &[(Point, Vec<RequestRecord>, BenchSummary)],
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let p = dir.join("requests.jsonl");
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(&p).with_context(|| format!("cannot write {}", p.display()))?,
    );
    for (pt, recs, _) in results {
        for r in recs {
            let mut v = serde_json::to_value(r)?;
            v["concurrency"] = serde_json::json!(pt.concurrency);
            v["request_rate"] = serde_json::json!(pt.rate);
            writeln!(w, "{}", serde_json::to_string(&v)?)?;
        }
    }
    w.flush()?;
    let sums: Vec<&BenchSummary> = results.iter().map(|r| &r.2).collect();
    let p = dir.join("summary.json");
    std::fs::write(&p, serde_json::to_string_pretty(&sums)? + "\n")
        .with_context(|| format!("cannot write {}", p.display()))?;
    let p = dir.join("summary.csv");
    let mut w =
        csv::Writer::from_path(&p).with_context(|| format!("cannot write {}", p.display()))?;
    w.write_record(SUMMARY_CSV_HEADER)?;
    let o = |x: Option<f64>| x.map(|v| format!("{v:.4}")).unwrap_or_default();
    for (pt, _, s) in results {
        let mut row = vec![
            pt.concurrency.map(|c| c.to_string()).unwrap_or_default(),
            o(pt.rate),
            s.requests.to_string(),
            s.completed.to_string(),
            s.errors.to_string(),
            format!("{:.4}", s.duration_s),
        ];
        for d in [&s.ttft_ms, &s.tpot_ms, &s.itl_ms, &s.e2e_ms] {
            for v in [
                d.map(|d| d.mean),
                d.map(|d| d.p50),
                d.map(|d| d.p90),
                d.map(|d| d.p99),
            ] {
                row.push(o(v));
            }
        }
        row.push(format!("{:.4}", s.output_tokens_per_s));
        row.push(o(s.output_tokens_per_s_per_gpu));
        row.push(o(s.tokens_per_s_per_user));
        row.push(o(s.goodput.map(|g| g.requests_per_s)));
        row.push(s.interrupted.to_string());
        w.write_record(&row)?;
    }
    w.flush()?;
    Ok(())
}

fn present(
    a: &ServeBenchArgs,
    plan: &Plan,
    results: &[(Point, Vec<RequestRecord>, BenchSummary)],
) -> Result<()> {
    if let Some(d) = &a.out_dir {
        write_outputs(d, results)?;
    }
    if a.json {
        let v = match results {
            [one] => serde_json::to_value(&one.2)?,
            many => serde_json::to_value(many.iter().map(|r| &r.2).collect::<Vec<_>>())?,
        };
        crate::emitln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        crate::emitln!(
            "aicfg bench serve — {} model {} ({}, {} prompts, isl {}, osl {})",
            a.url,
            plan.model,
            plan.route(),
            match plan.prompt {
                PromptKind::Ids => "token-id",
                PromptKind::Text => "text",
            },
            a.isl,
            a.osl
        );
        crate::emitln!("{}", table(results));
        if let Some(d) = &a.out_dir {
            crate::emitln!(
                "wrote {}/{{requests.jsonl,summary.json,summary.csv}}",
                d.display()
            );
        }
    }
    let total: u64 = results.iter().map(|r| r.2.requests).sum();
    let errors: u64 = results.iter().map(|r| r.2.errors).sum();
    if total > 0 && errors == total {
        bail!(
            "every request failed ({}); is the server up at {}?",
            results
                .iter()
                .flat_map(|r| r.2.error_kinds.keys().cloned())
                .collect::<Vec<_>>()
                .join(", "),
            a.url
        );
    }
    Ok(())
}
