//! Latency percentiles of the search's best rows (docs/model.md §8.1): the closed form screens
//! the whole space, then the request-level simulator replays the benchmark of the top rows of
//! each serving mode, and `--sla-percentile` picks the best among the simulated rows only.
//!
//! **Level from the closed form, shape from the simulator.** The closed form predicts means
//! better than the simulator does (TTFT MdAPE 34 % against 50 % on the calibration runs), while
//! only the simulator has a distribution. A row's percentile `q` is therefore
//! `closed-form mean × simulated q / simulated mean` ([`level_times_shape`]): the simulator
//! says how far the tail sits from the mean, the closed form where the mean is. The ratio also
//! carries a search's latency correction scales over unchanged, since they scale both.
use super::{mode_name, Candidate, ModeResult, SearchRequest};
use crate::backend::Backend;
use crate::error::{AicfgError, Result};
use crate::limits::Budget;
use crate::perf::EmpiricalParams;
use crate::serve::sim::Dist;
use crate::serve::ServeMode;
use serde::Serialize;
use std::collections::BTreeSet;

/// Rows simulated per serving mode (fewer when the top list is shorter). Cost bounds it: one
/// benchmark replay takes 1.5–7 ms on one core for an agg row and 17–20 ms for a disagg
/// replica of 500–650 requests in flight (4000 requests replayed), and `cli default` for
/// Qwen3-32B on 32 × h200_sxm must stay under 0.15 s (~0.11 s with 4 + 4 replays,
/// BENCHMARKS.md).
pub const SIM_TOP_K: usize = 4;

/// Most replays per mode while `--sla-percentile` walks down the ranking for rows that meet
/// the percentile SLA: three per wanted row, so a tight SLA costs a bounded time.
pub const SIM_MAX_RUNS: usize = 3 * SIM_TOP_K;

/// Which statistic of TTFT and TPOT the SLA applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SlaPercentile {
    /// The closed-form means (the screen every row passes through).
    #[default]
    Mean,
    P50,
    P90,
    P99,
}

impl SlaPercentile {
    pub const ALL: [SlaPercentile; 4] = [
        SlaPercentile::Mean,
        SlaPercentile::P50,
        SlaPercentile::P90,
        SlaPercentile::P99,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SlaPercentile::Mean => "mean",
            SlaPercentile::P50 => "p50",
            SlaPercentile::P90 => "p90",
            SlaPercentile::P99 => "p99",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|p| p.name() == t)
            .ok_or_else(|| AicfgError::Unknown {
                what: "sla-percentile",
                given: s.to_string(),
                known: "mean, p50, p90, p99".into(),
            })
    }

    pub fn is_mean(&self) -> bool {
        *self == SlaPercentile::Mean
    }

    /// This statistic of `d`.
    pub fn of(self, d: &Dist) -> f64 {
        match self {
            SlaPercentile::Mean => d.mean,
            SlaPercentile::P50 => d.p50,
            SlaPercentile::P90 => d.p90,
            SlaPercentile::P99 => d.p99,
        }
    }
}

/// The predicted distribution of a latency: the closed form's mean as the level, the
/// simulator's percentile-to-mean ratios as the shape. A simulated mean of zero (or anything
/// non-finite) gives ratio 1, so the prediction falls back to the closed-form mean.
pub fn level_times_shape(closed_form_mean: f64, sim: &Dist) -> Dist {
    let ratio = |q: f64| {
        let r = q / sim.mean;
        if sim.mean > 0.0 && r.is_finite() && r >= 0.0 {
            r
        } else {
            1.0
        }
    };
    let level = if closed_form_mean.is_finite() {
        closed_form_mean
    } else {
        0.0
    };
    Dist {
        mean: level,
        p50: level * ratio(sim.p50),
        p90: level * ratio(sim.p90),
        p99: level * ratio(sim.p99),
    }
}

/// One simulated row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PercentileRow {
    pub mode: ServeMode,
    /// Row of the mode's top table (1-based); `None`: simulated, and it misses the percentile
    /// SLA, so it was left out of the table.
    pub rank: Option<usize>,
    pub backend: Backend,
    /// Parallel labels, as the top tables' (`tp2pp1`, or `prefill + decode`).
    pub layout: String,
    /// Requests in flight across the cluster.
    pub concurrency: f64,
    /// Predicted TTFT and TPOT ([`level_times_shape`]).
    pub ttft_ms: Dist,
    pub tpot_ms: Dist,
    pub tokens_per_s_per_gpu: f64,
    /// Whether the row meets TTFT and TPOT at the search's SLA percentile.
    pub meets_sla: bool,
    /// What the simulator itself measured (the shape's source).
    pub sim_ttft_ms: Dist,
    pub sim_tpot_ms: Dist,
}

/// What the percentile pass adds to a search.
pub(super) struct Pass {
    pub rows: Vec<PercentileRow>,
    pub notes: Vec<String>,
    /// Modes whose percentile SLA no simulated row meets (their note is in `notes`).
    pub missed: BTreeSet<&'static str>,
}

/// Simulates the top rows of every mode; with a percentile SLA also re-ranks each mode's top
/// list to the simulated rows that meet it (`order[i]`: mode `i`'s ranking, indices into its
/// `all`, best first).
pub(super) fn run(
    req: &SearchRequest,
    params: &EmpiricalParams,
    budget: &Budget,
    modes: &mut [ModeResult],
    order: &[Vec<usize>],
) -> Result<Pass> {
    let mut pass = Pass {
        rows: Vec::new(),
        notes: Vec::new(),
        missed: BTreeSet::new(),
    };
    for (m, order) in modes.iter_mut().zip(order) {
        let k = SIM_TOP_K.min(req.top_n);
        if req.sla_percentile.is_mean() || !m.sla_met {
            // The table's own top rows: nothing is re-ranked (a mode that misses the mean SLA
            // has no row to choose from anyway).
            for (i, c) in m.top.iter().take(k).enumerate() {
                if let Some(mut row) = simulate_row(req, params, budget, c, &mut pass.notes)? {
                    row.rank = Some(i + 1);
                    if req.sla_percentile.is_mean() {
                        row.meets_sla = c.meets_sla;
                    }
                    pass.rows.push(row);
                }
            }
            continue;
        }
        walk(req, params, budget, m, order, k, &mut pass)?;
    }
    Ok(pass)
}

/// Walks mode `m`'s ranking, simulating until `k` layouts meet the percentile SLA or
/// [`SIM_MAX_RUNS`] replays are spent; the rows that meet it become the top list.
fn walk(
    req: &SearchRequest,
    params: &EmpiricalParams,
    budget: &Budget,
    m: &mut ModeResult,
    order: &[usize],
    k: usize,
    pass: &mut Pass,
) -> Result<()> {
    let mut passed_layouts = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut loads = BTreeSet::new();
    let mut runs = 0usize;
    // (candidate index, row) of every simulated row, in ranking order.
    let mut simulated: Vec<(usize, PercentileRow)> = Vec::new();
    for &i in order {
        let c = &m.all[i];
        // A layout that already has a row meeting the SLA shows once, as in the top tables;
        // rows that only differ in the expert split simulate alike; the same layout at the
        // same load with another step token budget is a variant, not a new operating point,
        // so the replays go to other loads instead.
        let load = format!("{}|{:e}|{}", c.layout_key(), c.concurrency, c.replicas);
        if passed_layouts.contains(&c.layout_key())
            || seen.contains(&c.numbers_key())
            || loads.contains(&load)
        {
            continue;
        }
        seen.insert(c.numbers_key());
        loads.insert(load);
        if runs >= SIM_MAX_RUNS || passed_layouts.len() >= k {
            break;
        }
        runs += 1;
        let Some(row) = simulate_row(req, params, budget, c, &mut pass.notes)? else {
            continue;
        };
        if row.meets_sla {
            passed_layouts.insert(c.layout_key());
        }
        simulated.push((i, row));
    }
    let p = req.sla_percentile.name();
    let meeting: Vec<usize> = (0..simulated.len())
        .filter(|&j| simulated[j].1.meets_sla)
        .collect();
    let met = !meeting.is_empty();
    let ranked: Vec<usize> = if !met {
        // None meets it: the closest simulated rows, as the mean screen shows its closest.
        pass.missed.insert(mode_name(m.mode));
        pass.notes.push(format!(
            "{}: no simulated configuration meets TTFT {p} ≤ {} ms and TPOT {p} ≤ {} ms ({} simulated); the closest are shown",
            mode_name(m.mode),
            req.ttft_ms,
            req.tpot_ms,
            simulated.len()
        ));
        let excess = |r: &PercentileRow| {
            (req.sla_percentile.of(&r.ttft_ms) / req.ttft_ms)
                .max(req.sla_percentile.of(&r.tpot_ms) / req.tpot_ms)
        };
        let mut v: Vec<usize> = (0..simulated.len()).collect();
        v.sort_by(|&a, &b| excess(&simulated[a].1).total_cmp(&excess(&simulated[b].1)));
        v.truncate(k);
        v
    } else {
        // Walk order is the ranking's order; the SLA filter is all that changes.
        meeting
    };
    let top: Vec<Candidate> = ranked
        .iter()
        .map(|&j| {
            let c = &m.all[simulated[j].0];
            // Keep the folded expert splits of a row the mean table already had.
            m.top
                .iter()
                .find(|t| t.layout_key() == c.layout_key() && t.numbers_key() == c.numbers_key())
                .cloned()
                .unwrap_or_else(|| c.clone())
        })
        .collect();
    for (n, &j) in ranked.iter().enumerate() {
        simulated[j].1.rank = Some(n + 1);
    }
    m.sla_met = met;
    m.top = top;
    pass.rows.extend(simulated.into_iter().map(|(_, r)| r));
    Ok(())
}

/// Replays the benchmark of row `c` (closed loop at its concurrency, `simulate::bench_spec`)
/// and predicts its percentiles; `None` (with a note) when the row cannot be simulated.
fn simulate_row(
    req: &SearchRequest,
    params: &EmpiricalParams,
    budget: &Budget,
    c: &Candidate,
    notes: &mut Vec<String>,
) -> Result<Option<PercentileRow>> {
    budget.spend(1)?;
    let label = c.layout_label();
    let mode = mode_name(c.mode);
    let Some(er) = req.estimate_request(c) else {
        notes.push(format!(
            "{mode} {label}: not simulated (its prefill and decode workers ask for different quantization, which one estimate cannot carry)"
        ));
        return Ok(None);
    };
    let mut spec = crate::simulate::bench_spec(&er);
    // Leave out the first wave as the generated benchmark does: it arrives at once and would
    // set every tail percentile.
    let clients = crate::simulate::concurrency_of(&er);
    spec.warmup = clients
        .saturating_mul(crate::simulate::BENCH_WARMUP_PER_CLIENT)
        .min(spec.num_requests.saturating_sub(clients));
    if let Some(a) = &c.agg {
        // The step token budget the row was priced at (the search tries more than one).
        spec.max_num_tokens = Some(a.max_num_tokens.max(1));
    }
    let sim = match crate::simulate::simulate_with(&er, &spec, params) {
        Ok(s) => s,
        Err(AicfgError::Cancelled) => return Err(AicfgError::Cancelled),
        Err(e) => {
            notes.push(format!("{mode} {label}: not simulated ({e})"));
            return Ok(None);
        }
    };
    let r = &sim.report;
    let ttft = level_times_shape(c.ttft_ms, &r.ttft_ms);
    let tpot = level_times_shape(c.tpot_ms, &r.tpot_ms);
    let q = req.sla_percentile;
    Ok(Some(PercentileRow {
        mode: c.mode,
        rank: None,
        backend: c.backend,
        layout: label,
        concurrency: c.concurrency,
        meets_sla: c.meets_sla && q.of(&ttft) <= req.ttft_ms && q.of(&tpot) <= req.tpot_ms,
        ttft_ms: ttft,
        tpot_ms: tpot,
        tokens_per_s_per_gpu: c.tokens_per_s_per_gpu,
        sim_ttft_ms: r.ttft_ms,
        sim_tpot_ms: r.tpot_ms,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_from_the_closed_form_shape_from_the_simulator() {
        // Simulated mean 400 ms, p90 600, p99 1000; the closed form says the mean is 300 ms.
        let sim = Dist {
            mean: 400.0,
            p50: 380.0,
            p90: 600.0,
            p99: 1000.0,
        };
        let d = level_times_shape(300.0, &sim);
        assert_eq!(d.mean, 300.0);
        assert!((d.p50 - 285.0).abs() < 1e-9, "{d:?}");
        assert!((d.p90 - 450.0).abs() < 1e-9, "{d:?}");
        assert!((d.p99 - 750.0).abs() < 1e-9, "{d:?}");
    }

    #[test]
    fn a_degenerate_simulation_keeps_the_closed_form_mean() {
        let zero = Dist::default();
        assert_eq!(
            level_times_shape(12.5, &zero),
            Dist {
                mean: 12.5,
                p50: 12.5,
                p90: 12.5,
                p99: 12.5
            }
        );
        let bad = Dist {
            mean: f64::NAN,
            p50: 1.0,
            p90: f64::INFINITY,
            p99: 2.0,
        };
        assert_eq!(level_times_shape(10.0, &bad).p99, 10.0);
        let inf_tail = Dist {
            mean: 1.0,
            p50: 1.0,
            p90: f64::INFINITY,
            p99: 1.0,
        };
        assert_eq!(level_times_shape(10.0, &inf_tail).p90, 10.0);
        // A non-finite closed-form mean gives no level at all rather than a NaN in the table.
        assert_eq!(level_times_shape(f64::NAN, &inf_tail).mean, 0.0);
    }

    #[test]
    fn the_percentile_names_parse_and_others_are_refused() {
        for p in SlaPercentile::ALL {
            assert_eq!(SlaPercentile::parse(p.name()).unwrap(), p);
        }
        assert_eq!(SlaPercentile::parse(" P99 ").unwrap(), SlaPercentile::P99);
        let e = SlaPercentile::parse("p95").unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown sla-percentile 'p95'; known: mean, p50, p90, p99"
        );
    }
}
