//! `cli estimate` load flags: replay the deployment in the request-level simulator and print
//! the percentile table (or the `--json` fields).
use aicfg_core::serve::sim::{parse_trace, LengthDist, Load, SimReport, SimSpec};
use aicfg_core::simulate::{concurrency_of, simulate, Simulated};
use aicfg_core::EstimateRequest;
use anyhow::{bail, Context, Result};
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use std::path::PathBuf;

/// Largest trace file read (bytes).
const MAX_TRACE_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Args, Debug, Clone, Default)]
pub struct SimArgs {
    /// Simulate a closed loop of N clients (each sends its next request when one finishes).
    #[arg(long, group = "load")]
    pub concurrency: Option<u32>,
    /// Simulate an open loop at R requests/s (see --arrival).
    #[arg(long = "request-rate", alias = "request_rate", group = "load", value_parser = crate::limits_args::finite)]
    pub request_rate: Option<f64>,
    /// Simulate an offline run: every request queued at once (max throughput).
    #[arg(long, group = "load")]
    pub offline: bool,
    /// Simulate a JSONL trace (timestamp ms, input_length, output_length per line).
    #[arg(long, group = "load")]
    pub trace: Option<PathBuf>,
    /// Open-loop arrivals: poisson or constant.
    #[arg(long, default_value = "poisson")]
    pub arrival: String,
    /// Requests simulated (default: 10 per client, at least 200).
    #[arg(long = "num-requests", alias = "num_requests")]
    pub num_requests: Option<u32>,
    /// Requests sent first and left out of the statistics.
    #[arg(
        long = "warmup-requests",
        alias = "warmup_requests",
        default_value_t = 0
    )]
    pub warmup_requests: u32,
    /// Input lengths: fixed, uniform:R, normal:R (R = spread relative to --isl) or exponential.
    #[arg(long = "isl-dist", alias = "isl_dist", default_value = "fixed")]
    pub isl_dist: String,
    /// Output lengths, as --isl-dist.
    #[arg(long = "osl-dist", alias = "osl_dist", default_value = "fixed")]
    pub osl_dist: String,
    /// Scheduler token budget per iteration (default: the backend's).
    #[arg(long = "max-num-tokens", alias = "max_num_tokens")]
    pub max_num_tokens: Option<u32>,
    /// Running requests per attention-DP rank (default: the backend's).
    #[arg(long = "max-batch-size", alias = "max_batch_size")]
    pub max_batch_size: Option<u32>,
    /// Scheduler steps between polls for new requests (SGLang `--scheduler-recv-interval`;
    /// default 1 = every step): a request that arrives while the engine is busy waits for the
    /// next poll.
    #[arg(long = "recv-interval", alias = "recv_interval", default_value_t = 1)]
    pub recv_interval: u32,
    /// Seed of arrivals, lengths and MTP acceptance.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Goodput SLA: TTFT limit (ms).
    #[arg(long = "sla-ttft", alias = "sla_ttft", value_parser = crate::limits_args::finite)]
    pub sla_ttft: Option<f64>,
    /// Goodput SLA: TPOT limit (ms).
    #[arg(long = "sla-tpot", alias = "sla_tpot", value_parser = crate::limits_args::finite)]
    pub sla_tpot: Option<f64>,
}

impl SimArgs {
    /// Whether any load was asked for.
    pub fn requested(&self) -> bool {
        self.concurrency.is_some()
            || self.request_rate.is_some()
            || self.offline
            || self.trace.is_some()
            || self.num_requests.is_some()
            || self.recv_interval != 1
    }

    pub fn spec(&self, req: &EstimateRequest) -> Result<SimSpec> {
        let poisson = match self.arrival.trim().to_ascii_lowercase().as_str() {
            "poisson" => true,
            "constant" | "uniform" => false,
            a => bail!("--arrival must be poisson or constant, got '{a}'"),
        };
        let per = |c: u32| c.saturating_mul(10).max(200);
        let (load, n) = if let Some(c) = self.concurrency {
            (Load::Concurrency(c), self.num_requests.unwrap_or(per(c)))
        } else if let Some(r) = self.request_rate {
            (
                Load::Rate { rate: r, poisson },
                self.num_requests.unwrap_or(1000),
            )
        } else if self.offline {
            (Load::Offline, self.num_requests.unwrap_or(1000))
        } else if let Some(p) = &self.trace {
            let len = std::fs::metadata(p)
                .with_context(|| format!("reading trace {}", p.display()))?
                .len();
            if len > MAX_TRACE_BYTES {
                bail!(
                    "trace {} is larger than {} MiB",
                    p.display(),
                    MAX_TRACE_BYTES >> 20
                );
            }
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading trace {}", p.display()))?;
            let max = self
                .num_requests
                .unwrap_or(aicfg_core::serve::sim::MAX_REQUESTS);
            let t = parse_trace(&text, max as usize)
                .with_context(|| format!("trace {}", p.display()))?;
            let n = t.len() as u32;
            (Load::Trace(t), n)
        } else {
            let c = concurrency_of(req);
            (Load::Concurrency(c), self.num_requests.unwrap_or(per(c)))
        };
        let mut s = SimSpec::new(load, n);
        s.warmup = self.warmup_requests;
        s.isl_dist = LengthDist::parse(&self.isl_dist).context("--isl-dist")?;
        s.osl_dist = LengthDist::parse(&self.osl_dist).context("--osl-dist")?;
        s.seed = self.seed;
        s.max_num_tokens = self.max_num_tokens;
        s.max_batch_size = self.max_batch_size;
        s.recv_interval = self.recv_interval;
        for (name, v) in [("--sla-ttft", self.sla_ttft), ("--sla-tpot", self.sla_tpot)] {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0) {
                    bail!("{name} must be a positive number of ms, got {v}");
                }
            }
        }
        if self.sla_ttft.is_some() || self.sla_tpot.is_some() {
            s.sla = Some((
                self.sla_ttft.unwrap_or(f64::INFINITY),
                self.sla_tpot.unwrap_or(f64::INFINITY),
            ));
        }
        Ok(s)
    }

    pub fn run(&self, req: &EstimateRequest) -> Result<(SimSpec, Simulated)> {
        let spec = self.spec(req)?;
        let s = simulate(req, &spec)?;
        Ok((spec, s))
    }
}

fn load_label(l: &Load) -> String {
    match l {
        Load::Concurrency(c) => format!("closed loop, concurrency {c}"),
        Load::Rate { rate, poisson } => format!(
            "open loop, {rate} req/s ({})",
            if *poisson { "Poisson" } else { "constant" }
        ),
        Load::Offline => "offline (all requests queued)".into(),
        Load::Trace(t) => format!("trace of {} requests", t.len()),
    }
}

fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The `--json` fields of a simulation.
pub fn json(spec: &SimSpec, s: &Simulated) -> serde_json::Value {
    let r: &SimReport = &s.report;
    let d = |d: &aicfg_core::serve::sim::Dist| serde_json::json!({"mean": r3(d.mean), "p50": r3(d.p50), "p90": r3(d.p90), "p99": r3(d.p99)});
    serde_json::json!({
        "load": load_label(&spec.load),
        "num_requests": spec.num_requests,
        "warmup_requests": spec.warmup,
        "seed": spec.seed,
        "database_mode": s.database_mode.name(),
        "host": {"step_ms": s.host.step_ms, "req_us": s.host.req_us, "api_ms": s.host.ttft_ms, "launch_us": s.host.launch_us},
        "ttft_ms": d(&r.ttft_ms),
        "tpot_ms": d(&r.tpot_ms),
        "itl_ms": d(&r.itl_ms),
        "e2e_ms": d(&r.e2e_ms),
        "tokens_per_s": r3(r.tokens_per_s),
        "total_tokens_per_s": r3(r.total_tokens_per_s),
        "tokens_per_s_per_gpu": r3(r.tokens_per_s_per_gpu),
        "tokens_per_s_per_user": r3(r.tokens_per_s_per_user),
        "request_rate": r3(r.request_rate),
        "goodput": r3(r.goodput),
        "kv_utilization": r3(r.kv_utilization),
        "kv_utilization_peak": r3(r.kv_utilization_peak),
        "preemptions": r.preemptions,
        "measured_requests": r.measured_requests,
        "duration_ms": r3(r.duration_ms),
        "num_gpus": r.num_gpus,
    })
}

fn num(x: f64) -> Cell {
    Cell::new(format!("{x:.2}")).set_alignment(CellAlignment::Right)
}

pub fn render(spec: &SimSpec, s: &Simulated) -> String {
    let r = &s.report;
    let mut out = format!(
        "Simulated: {}, {} requests ({} measured), seed {}; host costs: {:.2} ms/iteration + {:.1} µs/request, API {:.1} ms/request, {:.0} µs/op launched outside a CUDA graph\n",
        load_label(&spec.load),
        spec.num_requests,
        r.measured_requests,
        spec.seed,
        s.host.step_ms,
        s.host.req_us,
        s.host.ttft_ms,
        s.host.launch_us
    );
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "latency (ms)",
        "mean",
        "p50",
        "p90",
        "p99",
    ]);
    for (k, d) in [
        ("TTFT", r.ttft_ms),
        ("TPOT", r.tpot_ms),
        ("ITL", r.itl_ms),
        ("E2E", r.e2e_ms),
    ] {
        t.add_row(vec![
            Cell::new(k),
            num(d.mean),
            num(d.p50),
            num(d.p90),
            num(d.p99),
        ]);
    }
    out.push_str(&format!("{t}\n"));
    let mut m = Table::new();
    m.load_preset(UTF8_FULL_CONDENSED)
        .set_header(vec!["throughput", "value"]);
    for (k, v) in [
        ("output tokens/s", r.tokens_per_s),
        ("total tokens/s", r.total_tokens_per_s),
        ("tokens/s/gpu", r.tokens_per_s_per_gpu),
        ("tokens/s/user", r.tokens_per_s_per_user),
        ("request rate (req/s)", r.request_rate),
        ("goodput (req/s)", r.goodput),
        ("KV utilisation (mean)", r.kv_utilization),
        ("KV utilisation (peak)", r.kv_utilization_peak),
        ("preemptions", r.preemptions as f64),
    ] {
        m.add_row(vec![Cell::new(k), num(v)]);
    }
    out.push_str(&format!("{m}\n"));
    out
}
