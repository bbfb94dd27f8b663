//! Bounds on everything whose size a user picks: search-space lists and work, experiment files,
//! YAML nesting, file sizes, cluster sizes. One place, so every door (CLI, experiment file, web
//! request) applies the same caps, and errors name the input and the limit.
pub use crate::bounded::{human_bytes, open_bounded, read_bytes, read_text, Bounded};
use crate::error::{AicfgError, Result};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

/// Largest user-named text file read whole (model config, calibration, experiment, system YAML).
/// Real ones are kilobytes; the cap only stops `/dev/zero` and mistakes.
pub const MAX_TEXT_FILE_BYTES: u64 = 16 << 20;
/// Largest CSV of measured runs (`bench accuracy --csv`, calibration data).
pub const MAX_CSV_BYTES: u64 = 64 << 20;
/// Deepest YAML nesting accepted (the experiment schema needs 4).
pub const MAX_YAML_DEPTH: usize = 32;
/// Experiments in one file or web request.
pub const MAX_EXPERIMENTS: usize = 64;
/// GPUs of one cluster (`total_gpus`): past any deployment this tool plans, and small enough that
/// replica and GPU products stay far inside `u32`.
pub const MAX_TOTAL_GPUS: u32 = 1 << 16;
/// Largest value in a parallel list (tp, pp, dp, moe_tp, moe_ep, GPUs per worker or replica).
pub const MAX_PARALLEL: u32 = 1 << 16;
/// Largest batch-size cap (`*_max_batch_size`): the ladders stop at 1024 requests per rank.
pub const MAX_BATCH: u32 = 1 << 16;
/// Prefill batches are swept one by one; beyond this a bigger batch only waits longer.
pub const MAX_PREFILL_BATCH: u32 = 1024;
/// Workers of one kind in an xPyD replica.
pub const MAX_WORKERS_PER_REPLICA: u32 = 4096;
/// Tokens of one request (isl, osl, prefix): far past any context window.
pub const MAX_TOKENS: u32 = 1 << 24;

/// Work caps of one search; the CLI can raise them, the web server uses the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchLimits {
    /// Distinct values in one parallel list.
    pub list_len: usize,
    /// Combinations one worker role's lists span (product of their lengths).
    pub combinations: u64,
    /// Steps a search may take: points evaluated plus composition loop turns.
    pub evaluations: u64,
}

impl Default for SearchLimits {
    fn default() -> Self {
        // The built-in spaces span ≤ 2,025 combinations and the largest built-in searches take
        // a few million steps; the caps leave room for hand-written lists.
        SearchLimits {
            list_len: 64,
            combinations: 1_000_000,
            evaluations: 50_000_000,
        }
    }
}

/// What a search spends, checked in every loop a user-sized input drives: a step budget and an
/// optional cancellation flag (a web request past its time limit).
pub struct Budget<'a> {
    left: Cell<u64>,
    max: u64,
    cancel: Option<&'a AtomicBool>,
}

impl<'a> Budget<'a> {
    pub fn new(max: u64, cancel: Option<&'a AtomicBool>) -> Self {
        Budget {
            left: Cell::new(max),
            max,
            cancel,
        }
    }

    /// Take `n` steps; an error once the budget is spent or the search was cancelled.
    pub fn spend(&self, n: u64) -> Result<()> {
        if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(AicfgError::Cancelled);
        }
        match self.left.get().checked_sub(n) {
            Some(l) => {
                self.left.set(l);
                Ok(())
            }
            None => Err(AicfgError::Limit {
                what: "search work".into(),
                detail: format!(
                    "the search would take more than {} steps (evaluated points and compositions); \
                     narrow the parallel lists, batch caps or replica caps, or raise --max-evaluations",
                    self.max
                ),
            }),
        }
    }

    /// Steps taken so far.
    pub fn spent(&self) -> u64 {
        self.max - self.left.get()
    }
}

/// Rejects YAML nested deeper than `max` before it is parsed: the parser's cost grows with depth
/// squared, so a short text can hold it for minutes. A cheap over-estimate of the depth: open
/// flow brackets plus block levels (indentation steps and `- ` items), outside quotes and comments.
pub fn check_yaml_depth(text: &str, max: usize) -> std::result::Result<(), String> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut quote: Option<char> = None;
    for (ln, line) in text.lines().enumerate() {
        let mut block = 0usize;
        if flow == 0 && quote.is_none() {
            let trimmed = line.trim_start_matches(' ');
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            while indents.last().is_some_and(|&i| i >= indent) {
                indents.pop();
            }
            indents.push(indent);
            // `- - - x` nests one sequence per dash on one line.
            let mut rest = trimmed;
            while let Some(r) = rest.strip_prefix("- ").or(rest.strip_prefix("-\t")) {
                block += 1;
                rest = r.trim_start();
            }
        }
        let too_deep = |flow: usize| {
            let depth = indents.len() + block + flow;
            if depth > max {
                Err(format!(
                    "line {}: the YAML nests deeper than {max} levels",
                    ln + 1
                ))
            } else {
                Ok(())
            }
        };
        too_deep(flow)?;
        let mut prev = ' ';
        for c in line.chars() {
            match quote {
                Some(q) => {
                    if c == q && !(q == '"' && prev == '\\') {
                        quote = None;
                    }
                }
                None => match c {
                    '#' if prev == ' ' || prev == '\t' => break,
                    '"' | '\'' if matches!(prev, ' ' | '\t' | '[' | '{' | ',' | ':') => {
                        quote = Some(c)
                    }
                    '[' | '{' => {
                        flow += 1;
                        too_deep(flow)?;
                    }
                    ']' | '}' => flow = flow.saturating_sub(1),
                    _ => {}
                },
            }
            prev = c;
        }
    }
    Ok(())
}

/// Collections in a parallel or replica list: deduplicated (sorted) and checked against the
/// caps, naming the list.
pub fn normalize_list(what: &str, v: &[u32], limits: &SearchLimits) -> Result<Vec<u32>> {
    let mut out = v.to_vec();
    out.sort_unstable();
    out.dedup();
    if out.len() > limits.list_len {
        return Err(AicfgError::Limit {
            what: what.to_string(),
            detail: format!(
                "{} distinct values, more than the {} allowed; give fewer (or raise --max-list-len)",
                out.len(),
                limits.list_len
            ),
        });
    }
    if let Some(&big) = out.iter().find(|&&x| x > MAX_PARALLEL) {
        return Err(AicfgError::Limit {
            what: what.to_string(),
            detail: format!("value {big} is larger than {MAX_PARALLEL}"),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_depth() {
        assert!(check_yaml_depth("a:\n  b:\n    c: [1, {d: 2}]\n", 8).is_ok());
        let deep = "a: ".to_string() + &"[".repeat(100) + &"]".repeat(100) + "\n";
        assert!(check_yaml_depth(&deep, 32)
            .unwrap_err()
            .contains("deeper than 32"));
        let dashes = "- ".repeat(40) + "x";
        assert!(check_yaml_depth(&dashes, 32).is_err());
        let mut block = String::new();
        for i in 0..40 {
            block.push_str(&" ".repeat(i));
            block.push_str("k:\n");
        }
        assert!(check_yaml_depth(&block, 32).is_err());
        // Brackets inside quotes and comments do not count.
        assert!(check_yaml_depth("a: \"[[[[[[[[[[\"  # {{{{{{{{{{{\n", 4).is_ok());
    }

    #[test]
    fn budget_and_cancel() {
        let b = Budget::new(10, None);
        assert!(b.spend(10).is_ok());
        assert!(matches!(b.spend(1), Err(AicfgError::Limit { .. })));
        let flag = AtomicBool::new(true);
        assert_eq!(
            Budget::new(10, Some(&flag)).spend(1),
            Err(AicfgError::Cancelled)
        );
    }

    #[test]
    fn lists() {
        let l = SearchLimits::default();
        assert_eq!(
            normalize_list("tp_list", &[4, 1, 4, 2], &l).unwrap(),
            vec![1, 2, 4]
        );
        let long: Vec<u32> = (1..=65).collect();
        let e = normalize_list("tp_list", &long, &l)
            .unwrap_err()
            .to_string();
        assert!(e.contains("tp_list") && e.contains("64"), "{e}");
        assert!(normalize_list("tp_list", &[1 << 20], &l).is_err());
    }
}
