//! Bounded statistics of a simulation: log-bucket histograms (percentiles within 0.5 %, memory
//! independent of the number of samples), exact means, and a decimated time series.
use serde::Serialize;

/// Buckets per factor of two: 128 → bucket width 0.54 %, representative within ±0.27 %.
const PER_OCTAVE: f64 = 128.0;
/// Smallest resolved value (ms); smaller samples (and zero) fall in bucket 0.
const MIN_MS: f64 = 1e-4;
/// 1e-4 ms … ~1e9 ms.
const BUCKETS: usize = 128 * 44;

/// Mean and percentiles of one latency (ms).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Dist {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    n: u64,
    sum: f64,
    zeros: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            n: 0,
            sum: 0.0,
            zeros: 0,
        }
    }
}

impl Histogram {
    pub fn add(&mut self, x: f64) {
        self.add_n(x, 1);
    }

    /// `k` samples of value `x`.
    pub fn add_n(&mut self, x: f64, k: u64) {
        if !x.is_finite() || k == 0 {
            return;
        }
        let x = x.max(0.0);
        self.n += k;
        self.sum += x * k as f64;
        if x < MIN_MS {
            self.zeros += k;
            return;
        }
        let b = ((x / MIN_MS).log2() * PER_OCTAVE) as usize;
        self.counts[b.min(BUCKETS - 1)] += k;
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    pub fn mean(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum / self.n as f64
        }
    }

    /// Nearest-rank percentile (`q` in [0, 1]), reported at the bucket's geometric centre.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        if rank <= self.zeros {
            return 0.0;
        }
        let mut seen = self.zeros;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return MIN_MS * ((i as f64 + 0.5) / PER_OCTAVE).exp2();
            }
        }
        MIN_MS * (BUCKETS as f64 / PER_OCTAVE).exp2()
    }

    pub fn dist(&self) -> Dist {
        Dist {
            mean: self.mean(),
            p50: self.quantile(0.5),
            p90: self.quantile(0.9),
            p99: self.quantile(0.99),
        }
    }
}

/// One point of the time series: when a request finished, its TTFT and the queue then.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SeriesPoint {
    pub t_ms: f64,
    pub ttft_ms: f64,
    /// Requests waiting for admission (all workers) at that time.
    pub queued: u32,
    pub running: u32,
}

/// At most `cap` points: when full, every other point is dropped and the stride doubles.
#[derive(Debug, Clone)]
pub struct Series {
    pub points: Vec<SeriesPoint>,
    stride: u64,
    seen: u64,
    cap: usize,
}

impl Series {
    pub fn new(cap: usize) -> Self {
        Series {
            points: Vec::new(),
            stride: 1,
            seen: 0,
            cap: cap.max(2),
        }
    }
    pub fn push(&mut self, p: SeriesPoint) {
        if self.seen.is_multiple_of(self.stride) {
            if self.points.len() >= self.cap {
                let kept: Vec<SeriesPoint> = self.points.iter().step_by(2).copied().collect();
                self.points = kept;
                self.stride *= 2;
            }
            if self.seen.is_multiple_of(self.stride) {
                self.points.push(p);
            }
        }
        self.seen += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_within_half_a_percent() {
        let mut h = Histogram::default();
        for i in 1..=1000 {
            h.add(i as f64);
        }
        assert!((h.mean() - 500.5).abs() < 1e-9);
        for (q, want) in [(0.5, 500.0), (0.9, 900.0), (0.99, 990.0)] {
            let got = h.quantile(q);
            assert!((got / want - 1.0).abs() < 0.005, "{q}: {got}");
        }
        let d = h.dist();
        assert!(d.p50 <= d.p90 && d.p90 <= d.p99);
    }

    #[test]
    fn zeros_and_empty() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), 0.0);
        h.add_n(0.0, 3);
        h.add(10.0);
        assert_eq!(h.quantile(0.5), 0.0);
        assert!((h.quantile(1.0) / 10.0 - 1.0).abs() < 0.005);
    }

    #[test]
    fn series_stays_bounded() {
        let mut s = Series::new(8);
        for i in 0..1000 {
            s.push(SeriesPoint {
                t_ms: i as f64,
                ttft_ms: 0.0,
                queued: 0,
                running: 0,
            });
        }
        assert!(s.points.len() <= 8);
        assert_eq!(s.points[0].t_ms, 0.0);
        assert!(s.points.windows(2).all(|w| w[0].t_ms < w[1].t_ms));
    }
}
