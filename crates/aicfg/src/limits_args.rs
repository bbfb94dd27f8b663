//! `--max-list-len`, `--max-combinations`, `--max-evaluations`: raise the search caps of
//! `aicfg_core::limits` for one CLI run (the web server keeps the defaults). And [`finite`], the
//! parser of every real-valued planning flag.
use aicfg_core::limits::SearchLimits;
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Most distinct values one parallel list may hold.
    #[arg(long = "max-list-len", alias = "max_list_len", default_value_t = SearchLimits::default().list_len, help_heading = "Search limits")]
    pub max_list_len: usize,
    /// Most combinations one worker role's parallel lists may span.
    #[arg(long = "max-combinations", alias = "max_combinations", default_value_t = SearchLimits::default().combinations, help_heading = "Search limits")]
    pub max_combinations: u64,
    /// Most steps (evaluated points, composition loop turns) one search may take.
    #[arg(long = "max-evaluations", alias = "max_evaluations", default_value_t = SearchLimits::default().evaluations, help_heading = "Search limits")]
    pub max_evaluations: u64,
}

impl Default for LimitArgs {
    fn default() -> Self {
        let d = SearchLimits::default();
        LimitArgs {
            max_list_len: d.list_len,
            max_combinations: d.combinations,
            max_evaluations: d.evaluations,
        }
    }
}

impl LimitArgs {
    pub fn limits(&self) -> SearchLimits {
        SearchLimits {
            list_len: self.max_list_len,
            combinations: self.max_combinations,
            evaluations: self.max_evaluations,
        }
    }
}

/// Largest magnitude a real-valued flag takes (ms, requests/s, requests, fractions): 10^12 ms is
/// 31 years, so anything larger is a typo or an attack, and the checked arithmetic downstream
/// never meets a value near overflow.
pub const MAX_FLAG_MAGNITUDE: f64 = 1e12;

/// Value parser of real-valued flags: a number, finite (`NaN`, `inf` refused at parse time) and at
/// most [`MAX_FLAG_MAGNITUDE`] in size. Signs and ranges are the core's checks.
pub fn finite(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if !v.is_finite() {
        return Err(format!("must be a finite number, got {s}"));
    }
    if v.abs() > MAX_FLAG_MAGNITUDE {
        return Err(format!(
            "{s} is out of range (at most {MAX_FLAG_MAGNITUDE:e} in size)"
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finite_flags() {
        assert_eq!(finite("2.5"), Ok(2.5));
        assert_eq!(finite("-3"), Ok(-3.0));
        for bad in [
            "NaN",
            "nan",
            "inf",
            "-inf",
            "infinity",
            "1e300",
            "18446744073709551616",
            "x",
            "",
        ] {
            assert!(finite(bad).is_err(), "{bad}");
        }
    }
}
