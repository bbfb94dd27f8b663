//! `--max-list-len`, `--max-combinations`, `--max-evaluations`: raise the search caps of
//! `aicfg_core::limits` for one CLI run (the web server keeps the defaults).
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
