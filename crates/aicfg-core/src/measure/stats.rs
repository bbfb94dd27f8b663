//! Per-request records and their summary: mean/p50/p90/p99 of TTFT, TPOT, every inter-token
//! gap and end-to-end latency; token throughput (total, per GPU, per user) and goodput.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One benchmarked request. Times are milliseconds, taken when the bytes arrived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Order in which the request was issued (warmup requests are not recorded).
    pub index: u64,
    /// Seconds from the start of the measured window to the request being sent.
    pub start_s: f64,
    /// `None` when the request completed; else what went wrong (HTTP status, timeout, ...).
    pub error: Option<String>,
    /// Time to the first streamed content.
    pub ttft_ms: Option<f64>,
    /// Time to the end of the stream (or to the failure).
    pub e2e_ms: f64,
    /// Gaps between successive content chunks after the first.
    pub itl_ms: Vec<f64>,
    /// Prompt tokens: the server's `usage.prompt_tokens` where given, else the tokens sent.
    pub input_tokens: u64,
    /// Output tokens: `usage.completion_tokens` where given, else the content chunks seen.
    pub output_tokens: u64,
    /// Whether the token counts came from the server's usage field.
    pub usage_reported: bool,
}

impl RequestRecord {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }

    /// Time per output token after the first: (E2E − TTFT) / (tokens − 1); needs ≥ 2 tokens.
    pub fn tpot_ms(&self) -> Option<f64> {
        let t = self.ttft_ms?;
        if !self.ok() || self.output_tokens < 2 {
            return None;
        }
        Some((self.e2e_ms - t).max(0.0) / (self.output_tokens - 1) as f64)
    }
}

/// Linear interpolation between the closest ranks (the common "linear" percentile): q in
/// [0, 100]. NaN for an empty sample.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let pos = (q.clamp(0.0, 100.0) / 100.0) * (n - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            let w = pos - lo as f64;
            sorted[lo] * (1.0 - w) + sorted[hi] * w
        }
    }
}

/// Mean and percentiles of one quantity. Fields are NaN-free: an empty sample gives `None`s
/// via [`Dist::of`] returning `None`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Dist {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

impl Dist {
    pub fn of(values: &[f64]) -> Option<Dist> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Dist {
            mean: v.iter().sum::<f64>() / v.len() as f64,
            p50: percentile(&v, 50.0),
            p90: percentile(&v, 90.0),
            p99: percentile(&v, 99.0),
        })
    }
}

/// Latency targets a request must meet to count toward goodput.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SloTargets {
    pub ttft_ms: Option<f64>,
    pub tpot_ms: Option<f64>,
}

impl SloTargets {
    pub fn any(&self) -> bool {
        self.ttft_ms.is_some() || self.tpot_ms.is_some()
    }

    /// A completed request within every given target. A one-token output has no TPOT and
    /// meets a TPOT target trivially.
    pub fn met(&self, r: &RequestRecord) -> bool {
        if !r.ok() {
            return false;
        }
        let ttft_ok = match (self.ttft_ms, r.ttft_ms) {
            (Some(t), Some(x)) => x <= t,
            (Some(_), None) => false,
            (None, _) => true,
        };
        let tpot_ok = match (self.tpot_ms, r.tpot_ms()) {
            (Some(t), Some(x)) => x <= t,
            _ => true,
        };
        ttft_ok && tpot_ok
    }
}

/// Goodput: completed requests meeting the targets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Goodput {
    pub targets: SloTargets,
    /// Requests per second meeting the targets.
    pub requests_per_s: f64,
    /// Their share of all measured requests.
    pub fraction: f64,
}

/// Summary of one load point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchSummary {
    /// Closed-loop concurrency, or `None` for an open-loop (request-rate) point.
    pub concurrency: Option<u32>,
    /// Open-loop Poisson request rate (requests/s).
    pub request_rate: Option<f64>,
    pub requests: u64,
    pub completed: u64,
    pub errors: u64,
    /// Error kinds and how often each happened.
    pub error_kinds: BTreeMap<String, u64>,
    /// Measured window: first send to last byte, seconds.
    pub duration_s: f64,
    pub ttft_ms: Option<Dist>,
    pub tpot_ms: Option<Dist>,
    pub itl_ms: Option<Dist>,
    pub e2e_ms: Option<Dist>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub requests_per_s: f64,
    /// Output tokens per second over the window.
    pub output_tokens_per_s: f64,
    /// Input plus output tokens per second.
    pub total_tokens_per_s: f64,
    /// Output tokens/s divided by `num_gpus` (when given).
    pub output_tokens_per_s_per_gpu: Option<f64>,
    /// One user's decode speed: 1000 / mean TPOT (the planner's tokens/s/user).
    pub tokens_per_s_per_user: Option<f64>,
    pub num_gpus: Option<u32>,
    pub goodput: Option<Goodput>,
    /// Whether the run was interrupted (Ctrl-C, --duration) before all requests finished.
    pub interrupted: bool,
}

impl BenchSummary {
    /// Summarize the records of one load point. `duration_s` is the measured window.
    pub fn from_records(
        records: &[RequestRecord],
        duration_s: f64,
        concurrency: Option<u32>,
        request_rate: Option<f64>,
        num_gpus: Option<u32>,
        targets: SloTargets,
    ) -> BenchSummary {
        let ok: Vec<&RequestRecord> = records.iter().filter(|r| r.ok()).collect();
        let mut error_kinds = BTreeMap::new();
        for r in records {
            if let Some(e) = &r.error {
                *error_kinds.entry(error_kind(e)).or_insert(0u64) += 1;
            }
        }
        let ttft: Vec<f64> = ok.iter().filter_map(|r| r.ttft_ms).collect();
        let tpot: Vec<f64> = ok.iter().filter_map(|r| r.tpot_ms()).collect();
        let itl: Vec<f64> = ok.iter().flat_map(|r| r.itl_ms.iter().copied()).collect();
        let e2e: Vec<f64> = ok.iter().map(|r| r.e2e_ms).collect();
        let input_tokens: u64 = ok.iter().map(|r| r.input_tokens).sum();
        let output_tokens: u64 = ok.iter().map(|r| r.output_tokens).sum();
        let d = if duration_s > 0.0 {
            duration_s
        } else {
            f64::NAN
        };
        let rate = |x: f64| if d.is_finite() { x / d } else { 0.0 };
        let out_rate = rate(output_tokens as f64);
        let tpot_dist = Dist::of(&tpot);
        let goodput = targets.any().then(|| {
            let good = records.iter().filter(|r| targets.met(r)).count();
            Goodput {
                targets,
                requests_per_s: rate(good as f64),
                fraction: good as f64 / records.len().max(1) as f64,
            }
        });
        BenchSummary {
            concurrency,
            request_rate,
            requests: records.len() as u64,
            completed: ok.len() as u64,
            errors: (records.len() - ok.len()) as u64,
            error_kinds,
            duration_s,
            ttft_ms: Dist::of(&ttft),
            tpot_ms: tpot_dist,
            itl_ms: Dist::of(&itl),
            e2e_ms: Dist::of(&e2e),
            input_tokens,
            output_tokens,
            requests_per_s: rate(ok.len() as f64),
            output_tokens_per_s: out_rate,
            total_tokens_per_s: rate((input_tokens + output_tokens) as f64),
            output_tokens_per_s_per_gpu: num_gpus.filter(|g| *g > 0).map(|g| out_rate / g as f64),
            tokens_per_s_per_user: tpot_dist.filter(|t| t.mean > 0.0).map(|t| 1000.0 / t.mean),
            num_gpus,
            goodput,
            interrupted: false,
        }
    }
}

/// The kind of an error message: its text up to the first ':' (e.g. "HTTP 500", "timeout").
fn error_kind(e: &str) -> String {
    e.split(':').next().unwrap_or(e).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ttft: f64, e2e: f64, out: u64) -> RequestRecord {
        RequestRecord {
            index: 0,
            start_s: 0.0,
            error: None,
            ttft_ms: Some(ttft),
            e2e_ms: e2e,
            itl_ms: vec![],
            input_tokens: 10,
            output_tokens: out,
            usage_reported: true,
        }
    }

    #[test]
    fn percentiles_interpolate_between_ranks() {
        let v: Vec<f64> = (1..=5).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 3.0);
        assert_eq!(percentile(&v, 90.0), 4.6);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 100.0), 5.0);
        assert!(percentile(&[], 50.0).is_nan());
        let d = Dist::of(&[4.0, 1.0, f64::NAN, 2.0, 3.0]).unwrap();
        assert_eq!((d.mean, d.p50), (2.5, 2.5));
        assert!(Dist::of(&[]).is_none());
    }

    #[test]
    fn tpot_excludes_the_first_token() {
        // 100 ms to the first token, 10 more tokens in 200 ms: 20 ms each.
        assert_eq!(rec(100.0, 300.0, 11).tpot_ms(), Some(20.0));
        assert_eq!(rec(100.0, 100.0, 1).tpot_ms(), None);
    }

    #[test]
    fn summary_counts_errors_goodput_and_rates() {
        let mut bad = rec(0.0, 5.0, 0);
        bad.error = Some("HTTP 500: boom".into());
        bad.ttft_ms = None;
        let recs = vec![rec(100.0, 300.0, 11), rec(300.0, 500.0, 11), bad];
        let t = SloTargets {
            ttft_ms: Some(200.0),
            tpot_ms: Some(25.0),
        };
        let s = BenchSummary::from_records(&recs, 2.0, Some(2), None, Some(2), t);
        assert_eq!((s.requests, s.completed, s.errors), (3, 2, 1));
        assert_eq!(s.error_kinds.get("HTTP 500"), Some(&1));
        assert_eq!(s.output_tokens, 22);
        assert_eq!(s.output_tokens_per_s, 11.0);
        assert_eq!(s.output_tokens_per_s_per_gpu, Some(5.5));
        assert_eq!(s.tokens_per_s_per_user, Some(50.0));
        let g = s.goodput.unwrap();
        assert_eq!(g.requests_per_s, 0.5);
        assert!((g.fraction - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.ttft_ms.unwrap().mean, 200.0);
    }
}
