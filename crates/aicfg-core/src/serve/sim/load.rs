//! Load models: how requests arrive (closed loop, open loop, offline, trace) and how long they
//! are (fixed or drawn). Seeded, so the same seed replays the same requests.
use crate::error::{AicfgError, Result};
use rand_core::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;
use serde::Serialize;

/// How requests reach the deployment.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Load {
    /// Closed loop: `n` clients, each sends its next request when the previous one finishes
    /// (what concurrency benchmarks run).
    Concurrency(u32),
    /// Open loop at `rate` requests/s; Poisson (exponential gaps) or evenly spaced.
    Rate { rate: f64, poisson: bool },
    /// Every request queued at time zero (max-throughput runs).
    Offline,
    /// Arrival times and lengths from a trace.
    Trace(Vec<TraceRequest>),
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TraceRequest {
    pub arrival_ms: f64,
    pub isl: u32,
    pub osl: u32,
}

/// Spread of input or output lengths around the workload's mean.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LengthDist {
    Fixed,
    /// Uniform in mean·[1 − r, 1 + r].
    Uniform(f64),
    /// Normal with standard deviation r·mean, truncated at 1.
    Normal(f64),
    /// Exponential with the given mean.
    Exponential,
}

impl LengthDist {
    /// `fixed`, `uniform:R`, `normal:R` (R relative to the mean, 0..1), `exponential`.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k.to_string(), Some(a.to_string())),
            None => (s.clone(), None),
        };
        let rel = |what: &str| -> Result<f64> {
            let a = arg.as_deref().unwrap_or("0.25");
            let r: f64 = a.parse().map_err(|_| {
                AicfgError::invalid(
                    "length distribution",
                    format!("{what}: '{a}' is not a number"),
                )
            })?;
            if !(r.is_finite() && (0.0..=1.0).contains(&r)) {
                return Err(AicfgError::invalid(
                    "length distribution",
                    format!("{what}: spread must be in [0, 1] of the mean, got {r}"),
                ));
            }
            Ok(r)
        };
        match kind.as_str() {
            "fixed" | "const" | "constant" => Ok(LengthDist::Fixed),
            "uniform" => Ok(LengthDist::Uniform(rel("uniform")?)),
            "normal" | "gaussian" => Ok(LengthDist::Normal(rel("normal")?)),
            "exp" | "exponential" => Ok(LengthDist::Exponential),
            _ => Err(AicfgError::Unknown {
                what: "length distribution",
                given: s,
                known: "fixed, uniform:R, normal:R, exponential".into(),
            }),
        }
    }

    /// One length with this mean, at least 1, at most `cap`.
    pub fn draw(self, mean: f64, rng: &mut SimRng, cap: u32) -> u32 {
        let x = match self {
            LengthDist::Fixed => mean,
            LengthDist::Uniform(r) => mean * (1.0 - r + 2.0 * r * rng.unit()),
            LengthDist::Normal(r) => mean * (1.0 + r * rng.normal()),
            LengthDist::Exponential => -mean * (1.0 - rng.unit()).ln(),
        };
        (x.round().max(1.0) as u64).min(cap.max(1) as u64) as u32
    }
}

/// Seeded generator (xorshift): reproducible across platforms and crate versions.
pub struct SimRng(XorShiftRng);

impl SimRng {
    pub fn new(seed: u64) -> Self {
        SimRng(XorShiftRng::seed_from_u64(seed))
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
    /// Gap to the next arrival of a Poisson process at `rate` per ms.
    pub fn exp_gap(&mut self, rate_per_ms: f64) -> f64 {
        -(1.0 - self.unit()).ln() / rate_per_ms
    }
}

/// Reads a JSONL trace: one object per line with an arrival time (`timestamp` or
/// `arrival_ms`, ms; or `arrival_s`), input length (`input_length`, `isl`) and output length
/// (`output_length`, `osl`). Arrivals are sorted; at most `max` lines are read.
pub fn parse_trace(text: &str, max: usize) -> Result<Vec<TraceRequest>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if out.len() >= max {
            return Err(AicfgError::invalid(
                "trace",
                format!("more than {max} requests; cut the trace or raise --num-requests"),
            ));
        }
        let bad = |why: String| AicfgError::invalid("trace", format!("line {}: {why}", i + 1));
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
        let num = |keys: &[&str]| keys.iter().find_map(|k| v.get(*k).and_then(|x| x.as_f64()));
        let arrival = match num(&["timestamp", "arrival_ms", "arrival_time_ms"]) {
            Some(t) => t,
            None => num(&["arrival_s"]).map(|s| s * 1e3).unwrap_or(0.0),
        };
        let isl = num(&["input_length", "isl", "input_tokens"])
            .ok_or_else(|| bad("no input_length".into()))?;
        let osl = num(&["output_length", "osl", "output_tokens"])
            .ok_or_else(|| bad("no output_length".into()))?;
        for (what, x) in [
            ("arrival", arrival),
            ("input_length", isl),
            ("output_length", osl),
        ] {
            if !x.is_finite() || x < 0.0 {
                return Err(bad(format!("{what} must be a finite non-negative number")));
            }
        }
        if isl < 1.0 || osl < 1.0 || isl > 1e7 || osl > 1e7 {
            return Err(bad("lengths must be between 1 and 10 000 000 tokens".into()));
        }
        out.push(TraceRequest {
            arrival_ms: arrival,
            isl: isl as u32,
            osl: osl as u32,
        });
    }
    if out.is_empty() {
        return Err(AicfgError::invalid("trace", "no requests"));
    }
    out.sort_by(|a, b| a.arrival_ms.total_cmp(&b.arrival_ms));
    let t0 = out[0].arrival_ms;
    for r in &mut out {
        r.arrival_ms -= t0;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_draws() {
        let (mut a, mut b) = (SimRng::new(7), SimRng::new(7));
        for _ in 0..100 {
            assert_eq!(a.unit().to_bits(), b.unit().to_bits());
        }
    }

    #[test]
    fn distributions_keep_their_mean() {
        let mut r = SimRng::new(1);
        for d in [
            LengthDist::Uniform(0.5),
            LengthDist::Normal(0.2),
            LengthDist::Exponential,
        ] {
            let n = 20000;
            let s: f64 = (0..n)
                .map(|_| d.draw(1000.0, &mut r, u32::MAX) as f64)
                .sum();
            assert!((s / n as f64 / 1000.0 - 1.0).abs() < 0.03, "{d:?}");
        }
        assert_eq!(LengthDist::Fixed.draw(37.4, &mut r, 100), 37);
        assert_eq!(LengthDist::Fixed.draw(370.0, &mut r, 100), 100);
    }

    #[test]
    fn parse_dists_and_errors() {
        assert_eq!(
            LengthDist::parse("uniform:0.5").unwrap(),
            LengthDist::Uniform(0.5)
        );
        assert_eq!(LengthDist::parse("fixed").unwrap(), LengthDist::Fixed);
        assert!(LengthDist::parse("normal:2").is_err());
        assert!(LengthDist::parse("zipf").is_err());
    }

    #[test]
    fn trace_sorted_and_shifted() {
        let t = "{\"timestamp\": 50, \"input_length\": 10, \"output_length\": 5}\n\n{\"arrival_s\": 0.01, \"isl\": 3, \"osl\": 2}\n";
        let r = parse_trace(t, 10).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].isl, 3);
        assert_eq!(r[0].arrival_ms, 0.0);
        assert_eq!(r[1].arrival_ms, 40.0);
        assert!(parse_trace("{\"isl\": 3}", 10).is_err());
        assert!(parse_trace("nope", 10).is_err());
        assert!(parse_trace("", 10).is_err());
        assert!(parse_trace(t, 1).is_err());
    }
}
