//! Multi-token prediction (MTP, speculative decoding with `nextn` draft heads): the one rule for
//! how many draft tokens a decode step keeps. Every input (cli default, cli estimate, experiment
//! files, the webapp) gives acceptance as rates per draft position; the serving models see only
//! their sum, `Workload::nextn_accepted`.
use crate::error::{AicfgError, Result};

/// Acceptance of the i-th draft token when none is given (the reference tool's default; the
/// first matches the 85–90 % second-token acceptance in the DeepSeek-V3 technical report).
pub const DEFAULT_ACCEPT_RATES: [f64; 5] = [0.85, 0.3, 0.0, 0.0, 0.0];

/// Most draft tokens per step accepted as input.
pub const MAX_NEXTN: u32 = 16;

/// Draft tokens accepted per decode step: `rates[i]` is the probability that draft `i + 1` is
/// accepted (so it already includes the acceptance of the drafts before it), and only the first
/// `nextn` drafts exist. Missing positions count as never accepted.
pub fn accepted_drafts(nextn: u32, rates: &[f64]) -> f64 {
    rates.iter().take(nextn as usize).sum()
}

/// Per-position rates for a per-token acceptance `rate` (each draft accepted with probability
/// `rate` given the previous one was): draft `i` survives with `rate^i`.
pub fn geometric_rates(nextn: u32, rate: f64) -> Vec<f64> {
    (1..=nextn.min(MAX_NEXTN))
        .map(|i| rate.powi(i as i32))
        .collect()
}

/// Checks `nextn` and every rate; `field` names the rates in the message.
pub fn check(nextn: u32, rates: &[f64], field: &str) -> Result<()> {
    if nextn > MAX_NEXTN {
        return Err(AicfgError::invalid(
            "nextn",
            format!("must be at most {MAX_NEXTN} draft tokens, got {nextn}"),
        ));
    }
    if let Some(r) = rates.iter().find(|r| !(0.0..=1.0).contains(*r)) {
        return Err(AicfgError::invalid(
            field,
            format!("must be between 0 and 1, got {r}"),
        ));
    }
    Ok(())
}

/// The inverse: rates for `nextn` drafts whose first `nextn` entries sum to exactly `accepted`
/// (a search keeps only the sum). Prefers the defaults or an even split; else fills greedily.
pub fn rates_for_accepted(nextn: u32, accepted: f64) -> Vec<f64> {
    let n = nextn as usize;
    let sums_to = |r: &[f64]| {
        r.len() >= n
            && r.iter().all(|x| (0.0..=1.0).contains(x))
            && accepted_drafts(nextn, r) == accepted
    };
    if n == 0 || sums_to(&DEFAULT_ACCEPT_RATES) {
        return DEFAULT_ACCEPT_RATES.to_vec();
    }
    let even = vec![accepted / n as f64; n];
    if sums_to(&even) {
        return even;
    }
    let mut out = Vec::with_capacity(n);
    let mut left = accepted.clamp(0.0, n as f64);
    for i in 0..n {
        let r = if i + 1 == n { left } else { left.min(1.0) };
        let r = r.clamp(0.0, 1.0);
        out.push(r);
        left -= r;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_is_the_sum_of_the_first_nextn_rates() {
        assert_eq!(accepted_drafts(0, &DEFAULT_ACCEPT_RATES), 0.0);
        assert_eq!(accepted_drafts(1, &DEFAULT_ACCEPT_RATES), 0.85);
        assert_eq!(accepted_drafts(2, &DEFAULT_ACCEPT_RATES), 0.85 + 0.3);
        // Positions past the list are never accepted.
        assert_eq!(accepted_drafts(4, &[0.5, 0.25]), 0.75);
    }

    #[test]
    fn per_token_acceptance_compounds() {
        let r = geometric_rates(3, 0.5);
        assert_eq!(r, vec![0.5, 0.25, 0.125]);
        assert_eq!(accepted_drafts(3, &r), 0.875);
        assert!(geometric_rates(0, 0.9).is_empty());
    }

    #[test]
    fn bad_inputs_are_named() {
        assert!(check(2, &[0.9, 0.5], "nextn_accept_rates").is_ok());
        let e = check(17, &[], "r").unwrap_err().to_string();
        assert!(e.contains("nextn") && e.contains("16"), "{e}");
        let e = check(1, &[1.5], "nextn_accept_rates")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nextn_accept_rates") && e.contains("1.5"), "{e}");
    }

    #[test]
    fn rates_for_accepted_keep_the_sum() {
        assert_eq!(rates_for_accepted(0, 0.0), DEFAULT_ACCEPT_RATES.to_vec());
        // The defaults' first two sum to 1.15.
        assert_eq!(
            rates_for_accepted(2, 0.85 + 0.3),
            DEFAULT_ACCEPT_RATES.to_vec()
        );
        for (n, a) in [
            (1u32, 0.7),
            (3, 0.9),
            (3, 2.5),
            (4, 0.1 + 0.2 + 0.3),
            (2, 2.0),
        ] {
            let r = rates_for_accepted(n, a);
            assert_eq!(accepted_drafts(n, &r), a, "{n} {a} {r:?}");
            assert!(r.iter().all(|x| (0.0..=1.0).contains(x)), "{r:?}");
        }
    }
}
