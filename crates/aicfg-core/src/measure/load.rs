//! The load a benchmark offers: seeded random numbers, input/output length distributions and
//! Poisson arrival gaps. Hand-written SplitMix64 so one seed gives the same schedule in every
//! version of the tool (a library RNG may change its stream between releases).
use crate::error::{AicfgError, Result};
use serde::Serialize;

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, full-period 64-bit generator.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1): the top 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller; one of the pair is dropped for simplicity).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]: ln is finite
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Exponential gap for a Poisson process of `rate` events per second, in seconds.
    pub fn exp_gap(&mut self, rate: f64) -> f64 {
        -(1.0 - self.next_f64()).ln() / rate
    }
}

/// Largest length a distribution may produce (tokens): beyond any served context window.
pub const MAX_LEN: u64 = 1 << 21;

/// A length in tokens: fixed, uniform over [lo, hi], or normal (mean, std) clamped to ≥ 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum LengthDist {
    Fixed(u64),
    Uniform { lo: u64, hi: u64 },
    Normal { mean: f64, std: f64 },
}

impl LengthDist {
    /// Parse `N`, `uniform:LO:HI` or `normal:MEAN:STD`.
    pub fn parse(what: &str, s: &str) -> Result<LengthDist> {
        let bad = |reason: String| AicfgError::invalid(what.to_string(), reason);
        let num = |t: &str| -> Result<f64> {
            t.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| bad(format!("'{t}' is not a non-negative number")))
        };
        let check = |v: f64| -> Result<u64> {
            if v < 1.0 || v > MAX_LEN as f64 {
                return Err(bad(format!("length {v} is outside 1..={MAX_LEN}")));
            }
            Ok(v.round() as u64)
        };
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            [n] => Ok(LengthDist::Fixed(check(num(n)?)?)),
            ["uniform", lo, hi] => {
                let (lo, hi) = (check(num(lo)?)?, check(num(hi)?)?);
                if lo > hi {
                    return Err(bad(format!("uniform:{lo}:{hi} has lo > hi")));
                }
                Ok(LengthDist::Uniform { lo, hi })
            }
            ["normal", m, sd] => {
                let mean = check(num(m)?)? as f64;
                Ok(LengthDist::Normal {
                    mean,
                    std: num(sd)?,
                })
            }
            _ => Err(bad(format!(
                "'{s}': expected N, uniform:LO:HI or normal:MEAN:STD"
            ))),
        }
    }

    pub fn sample(&self, rng: &mut SplitMix64) -> u64 {
        match *self {
            LengthDist::Fixed(n) => n,
            LengthDist::Uniform { lo, hi } => lo + rng.next_u64() % (hi - lo + 1),
            LengthDist::Normal { mean, std } => (mean + std * rng.normal())
                .round()
                .clamp(1.0, MAX_LEN as f64) as u64,
        }
    }

    /// The mean length (what a prediction for this load should use).
    pub fn mean(&self) -> f64 {
        match *self {
            LengthDist::Fixed(n) => n as f64,
            LengthDist::Uniform { lo, hi } => (lo + hi) as f64 / 2.0,
            LengthDist::Normal { mean, .. } => mean,
        }
    }
}

/// Per-request (input, output) lengths for `n` requests, drawn from one seed.
pub fn lengths(isl: &LengthDist, osl: &LengthDist, n: usize, seed: u64) -> Vec<(u64, u64)> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| (isl.sample(&mut rng), osl.sample(&mut rng)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_lengths() {
        assert_eq!(
            LengthDist::parse("isl", "128").unwrap(),
            LengthDist::Fixed(128)
        );
        assert_eq!(
            LengthDist::parse("isl", "uniform:10:20").unwrap(),
            LengthDist::Uniform { lo: 10, hi: 20 }
        );
        for bad in ["0", "-3", "x", "uniform:5:1", "normal:10", "nan", "1e30"] {
            assert!(LengthDist::parse("isl", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn samples_are_seeded_and_in_range() {
        let u = LengthDist::Uniform { lo: 10, hi: 20 };
        let a = lengths(&u, &LengthDist::Fixed(5), 1000, 7);
        assert_eq!(a, lengths(&u, &LengthDist::Fixed(5), 1000, 7));
        assert!(a.iter().all(|(i, o)| (10..=20).contains(i) && *o == 5));
        let mean = a.iter().map(|p| p.0 as f64).sum::<f64>() / 1000.0;
        assert!((mean - 15.0).abs() < 0.5, "{mean}");
        let n = LengthDist::Normal {
            mean: 100.0,
            std: 10.0,
        };
        let mut r = SplitMix64::new(1);
        let v: Vec<f64> = (0..4000).map(|_| n.sample(&mut r) as f64).collect();
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        assert!(
            (m - 100.0).abs() < 1.0 && (sd - 10.0).abs() < 1.0,
            "{m} {sd}"
        );
    }

    #[test]
    fn poisson_gaps_have_the_asked_rate() {
        let mut r = SplitMix64::new(3);
        let total: f64 = (0..20000).map(|_| r.exp_gap(50.0)).sum();
        let rate = 20000.0 / total;
        assert!((rate - 50.0).abs() < 1.5, "{rate}");
    }
}
