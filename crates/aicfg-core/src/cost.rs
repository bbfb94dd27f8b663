//! What running a deployment costs, from the price of a GPU-hour of each system: one rule for
//! the search, the single estimate and the experiments.
use crate::error::{AicfgError, Result};
use crate::hardware::SystemSpec;
use serde::Serialize;

/// Dollars per hour and per million tokens of one deployment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Cost {
    /// Dollars per hour of the GPUs the deployment uses (idle leftovers are not charged).
    pub usd_per_hour: f64,
    /// That cost over the output tokens the deployment produces, per million.
    pub usd_per_m_output_tokens: f64,
    /// That cost over the prompt tokens it takes in, per million (the same dollars charged to
    /// input instead of output: the two figures are alternatives, not parts of a sum).
    pub usd_per_m_input_tokens: f64,
}

impl Cost {
    /// `usd_per_hour` spread over the tokens produced (`output_per_s`) or taken in
    /// (`input_per_s`); `None` when either rate is not positive.
    pub fn new(usd_per_hour: f64, output_per_s: f64, input_per_s: f64) -> Option<Cost> {
        if !(output_per_s > 0.0 && input_per_s > 0.0) {
            return None;
        }
        // $/h over tokens/h, per million tokens.
        let per_m = |tok_per_s: f64| usd_per_hour / (tok_per_s * 3600.0) * 1e6;
        Some(Cost {
            usd_per_hour,
            usd_per_m_output_tokens: per_m(output_per_s),
            usd_per_m_input_tokens: per_m(input_per_s),
        })
    }
}

/// Price of a GPU-hour of `system`: the override, else the system file's `misc.gpu_cost_per_hour`.
pub fn gpu_price(override_usd: Option<f64>, system: &SystemSpec) -> Option<f64> {
    override_usd.or(system.misc.gpu_cost_per_hour)
}

/// A given price must be a finite, non-negative number of dollars.
pub fn check_price(override_usd: Option<f64>) -> Result<()> {
    match override_usd {
        Some(c) if !(c.is_finite() && c >= 0.0) => Err(AicfgError::invalid(
            "gpu_cost_per_hour",
            format!("must be a non-negative number of dollars, got {c}"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_dollars_an_hour_at_1000_tokens_per_s() {
        // 3.6 M tokens an hour for $2: $0.5556 per million; input at 4000 tok/s: $0.1389.
        let c = Cost::new(2.0, 1000.0, 4000.0).unwrap();
        assert_eq!(c.usd_per_hour, 2.0);
        assert!((c.usd_per_m_output_tokens - 2.0 / 3.6).abs() < 1e-12);
        assert!((c.usd_per_m_input_tokens - 2.0 / 14.4).abs() < 1e-12);
        assert_eq!(Cost::new(2.0, 0.0, 4000.0), None);
        assert_eq!(Cost::new(2.0, 1000.0, f64::NAN), None);
    }

    #[test]
    fn a_price_is_finite_and_not_negative() {
        assert!(check_price(None).is_ok());
        assert!(check_price(Some(0.0)).is_ok());
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            let e = check_price(Some(bad)).unwrap_err().to_string();
            assert!(e.contains("gpu_cost_per_hour"), "{e}");
        }
    }
}
