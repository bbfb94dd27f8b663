//! The simulator's serving constants per backend (`data/calibration/serving.yaml`, embedded):
//! one set for the empirical op model, one for the measured op tables (their op-level errors
//! differ, so each is fitted against its own predictions).
use super::Overheads;
use crate::backend::Backend;
use crate::error::{AicfgError, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const EMBEDDED: &str = include_str!("../../../../../data/calibration/serving.yaml");

/// How the measured benchmarks were run (what `bench accuracy` replays for a row).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Harness {
    /// Requests a concurrency benchmark sends per client (aiperf `--request-count` =
    /// concurrency × this); the first wave starts at once.
    pub requests_per_concurrency: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServingCalib {
    pub harness: Harness,
    pub empirical: BTreeMap<String, Overheads>,
    pub measured: BTreeMap<String, Overheads>,
}

/// Physical bounds of each constant: `(low, high)`.
pub fn bounds(name: &str) -> (f64, f64) {
    if name.ends_with("iter_ms") {
        // A CPU-side scheduler pass plus graph launch: tens of µs to a few ms.
        (0.0, 5.0)
    } else if name.ends_with("per_req_us") {
        // Per request per iteration in a Python scheduler: a few µs to ~100 µs.
        (0.0, 100.0)
    } else if name.ends_with("api_ms") {
        // HTTP + tokenisation of one request: well under 20 ms.
        (0.0, 20.0)
    } else {
        // Benchmark length in requests per client.
        (1.0, 50.0)
    }
}

impl ServingCalib {
    pub fn embedded() -> Self {
        Self::from_yaml(EMBEDDED).expect("embedded serving.yaml is valid")
    }

    pub fn from_yaml(s: &str) -> Result<Self> {
        let c: ServingCalib = serde_norway::from_str(s)
            .map_err(|e| AicfgError::invalid("serving calibration", e.to_string()))?;
        let mut me = c.clone();
        for (name, v) in me.fields_mut() {
            let (lo, hi) = bounds(&name);
            if !(v.is_finite() && *v >= lo && *v <= hi) {
                return Err(AicfgError::invalid(
                    "serving calibration",
                    format!("{name} = {v} is outside its physical bounds [{lo}, {hi}]"),
                ));
            }
        }
        for b in Backend::ALL {
            for (set, m) in [("empirical", &c.empirical), ("measured", &c.measured)] {
                if !m.contains_key(b.name()) {
                    return Err(AicfgError::invalid(
                        "serving calibration",
                        format!("{set} has no entry for {}", b.name()),
                    ));
                }
            }
        }
        Ok(c)
    }

    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).unwrap_or_default()
    }

    /// Constants of `backend` with the empirical op model or the measured tables.
    pub fn overheads(&self, backend: Backend, measured: bool) -> Overheads {
        let m = if measured {
            &self.measured
        } else {
            &self.empirical
        };
        m.get(backend.name()).copied().unwrap_or(Overheads::ZERO)
    }

    /// Every constant by name (`harness.…`, `empirical.trtllm.iter_ms`, …), for fitting.
    pub fn fields_mut(&mut self) -> Vec<(String, &mut f64)> {
        let mut v = vec![(
            "harness.requests_per_concurrency".to_string(),
            &mut self.harness.requests_per_concurrency,
        )];
        for (set, m) in [
            ("empirical", &mut self.empirical),
            ("measured", &mut self.measured),
        ] {
            for (b, o) in m.iter_mut() {
                v.push((format!("{set}.{b}.iter_ms"), &mut o.iter_ms));
                v.push((format!("{set}.{b}.per_req_us"), &mut o.per_req_us));
                v.push((format!("{set}.{b}.api_ms"), &mut o.api_ms));
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_loads_and_round_trips() {
        let c = ServingCalib::embedded();
        let back = ServingCalib::from_yaml(&c.to_yaml()).unwrap();
        assert_eq!(c, back);
        assert!(c.overheads(Backend::Vllm, false).api_ms > 0.0);
    }

    #[test]
    fn out_of_bounds_is_rejected() {
        let y = EMBEDDED.replacen("api_ms: 5.0", "api_ms: 100.0", 1);
        assert!(ServingCalib::from_yaml(&y).is_err());
        assert!(ServingCalib::from_yaml("harness: {}").is_err());
    }
}
