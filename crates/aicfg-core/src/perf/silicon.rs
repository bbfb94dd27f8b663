//! SILICON and HYBRID sources: measured op tables first (`crate::perfdb`); ops without a table
//! family (elementwise, P2P, indexer, linear attention) always use the empirical formulas. On a
//! table miss, HYBRID answers from EMPIRICAL; SILICON records the miss (the caller turns it into
//! a typed error) and returns NaN.
use super::{sol_ms, EmpiricalSource, Lookup, PerfSource, Work};
use crate::hardware::SystemSpec;
use crate::model::graph::OpKind;
use crate::perfdb::OpDb;
use std::sync::{Arc, Mutex};

pub struct SiliconSource {
    pub db: Arc<OpDb>,
    pub fallback: EmpiricalSource,
    /// SILICON (true) or HYBRID (false).
    pub strict: bool,
    /// Per-kernel latency (ms) hidden by CUDA-graph replay (see `SiliconCalib::overlap_us`).
    pub overlap_ms: f64,
    miss: Mutex<Option<String>>,
}

impl SiliconSource {
    pub fn new(db: Arc<OpDb>, fallback: EmpiricalSource, strict: bool) -> Self {
        SiliconSource {
            db,
            fallback,
            strict,
            overlap_ms: 0.0,
            miss: Mutex::new(None),
        }
    }

    /// A measured latency less the per-kernel time a graph replay hides, never below the roofline.
    fn after_overlap(&self, sys: &SystemSpec, work: &Work, ms: f64) -> f64 {
        if ms > 0.0 && self.overlap_ms > 0.0 {
            (ms - self.overlap_ms).max(sol_ms(sys, work).min(ms))
        } else {
            ms
        }
    }

    /// The first miss seen in strict mode (clears it).
    pub fn take_miss(&self) -> Option<String> {
        self.miss.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl PerfSource for SiliconSource {
    fn name(&self) -> &'static str {
        if self.strict {
            "silicon"
        } else {
            "hybrid"
        }
    }

    fn time_ms(&self, sys: &SystemSpec, op: &OpKind, work: &Work) -> f64 {
        self.time_tagged(sys, op, work).0
    }

    fn time_tagged(&self, sys: &SystemSpec, op: &OpKind, work: &Work) -> (f64, &'static str) {
        match self.db.lookup(sys, op, work) {
            // A neighbouring slice: SILICON takes it (tagged), HYBRID prefers empirical.
            Lookup::Estimated(ms) if self.strict => {
                (self.after_overlap(sys, work, ms), "estimated")
            }
            Lookup::Estimated(_) => (self.fallback.time_ms(sys, op, work), "empirical"),
            Lookup::Hit(ms) => (self.after_overlap(sys, work, ms), "silicon"),
            Lookup::NoTable => (self.fallback.time_ms(sys, op, work), "empirical"),
            Lookup::Miss(why) => {
                if self.strict {
                    let mut m = self.miss.lock().unwrap_or_else(|p| p.into_inner());
                    if m.is_none() {
                        *m = Some(why);
                    }
                    (f64::NAN, "silicon")
                } else {
                    (self.fallback.time_ms(sys, op, work), "empirical")
                }
            }
        }
    }
}
