//! Load of the busiest expert-parallel rank of an MoE layer under a routing distribution.
//!
//! An MoE layer finishes when its slowest GPU does: the one holding the most routed tokens. With
//! balanced routing that is the mean; with skewed routing it is set by the hottest experts. The
//! measured MoE tables were collected with a truncated power law over the experts' token counts
//! (each expert's count drawn from density ∝ x^-a on [1, 0.8·tokens], or on [0.01, 2] when there
//! are fewer picks than experts, then scaled to tokens·top_k picks), and the GPU measured holds
//! the busiest block of experts. This module gives the *expected* load of that block in closed
//! form: the expected sorted profile of counts from the quantiles of the distribution, each
//! expert capped at the token count (a token picks an expert at most once), and the busiest
//! block as the larger of (a) the block holding the hottest expert, the rest of it average, and
//! (b) the mean block plus the expected maximum of `ep` block sums (their spread from the
//! profile's variance, drawing experts without replacement).
use crate::model::graph::Routing;

/// Routed work of the busiest rank.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankLoad {
    /// Routed (token, expert) rows the rank computes.
    pub rows: f64,
    /// Local experts that receive at least one token (their weights are read).
    pub experts: f64,
}

/// Expected maximum of n independent standard normals (n = 1, 2, 4, ..., 1024): order-statistic
/// tables; log2-interpolated in between.
const Z_MAX: [f64; 11] = [
    0.0, 0.5642, 1.0294, 1.4236, 1.7660, 2.0697, 2.3425, 2.5933, 2.8215, 3.0346, 3.2256,
];

fn z_max(n: f64) -> f64 {
    if n <= 1.0 {
        return 0.0;
    }
    let x = n.log2();
    let i = (x.floor() as usize).min(Z_MAX.len() - 2);
    let f = x - i as f64;
    Z_MAX[i] + f * (Z_MAX[i + 1] - Z_MAX[i])
}

/// Inverse CDF of the power law ∝ x^-a truncated to [lo, hi] (a ≠ 1).
fn power_law_quantile(u: f64, lo: f64, hi: f64, a: f64) -> f64 {
    let e = 1.0 - a;
    ((hi.powf(e) - lo.powf(e)) * u + lo.powf(e)).powf(1.0 / e)
}

/// Experts are counted to this many at most when building the profile (no model has more).
const MAX_EXPERTS: usize = 4096;

/// Busiest-rank load of `tokens` tokens (all attention-DP ranks), each picking `top_k` of
/// `experts` experts split over `ep` ranks.
pub fn busiest_rank(tokens: f64, experts: f64, top_k: f64, ep: f64, routing: Routing) -> RankLoad {
    let Routing::PowerLaw(a) = routing else {
        return profile_load(tokens, experts, top_k, ep, routing);
    };
    // A search prices the same layer at the same token counts many times, and the profile
    // costs a few hundred powers: memoize per thread.
    type Key = (u64, u64, u64, u64, u64);
    thread_local! {
        static MEMO: std::cell::RefCell<std::collections::HashMap<Key, RankLoad>> =
            std::cell::RefCell::new(std::collections::HashMap::new());
    }
    let key = (
        tokens.to_bits(),
        experts.to_bits(),
        top_k.to_bits(),
        ep.to_bits(),
        a.to_bits(),
    );
    if let Some(r) = MEMO.with(|m| m.borrow().get(&key).copied()) {
        return r;
    }
    let r = profile_load(tokens, experts, top_k, ep, routing);
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= 1 << 16 {
            m.clear();
        }
        m.insert(key, r);
    });
    r
}

fn profile_load(tokens: f64, experts: f64, top_k: f64, ep: f64, routing: Routing) -> RankLoad {
    let picks = tokens * top_k;
    let ep = ep.max(1.0);
    let e = experts.max(1.0);
    let local = e / ep;
    if picks <= 0.0 {
        return RankLoad {
            rows: 0.0,
            experts: 0.0,
        };
    }
    let alpha = match routing {
        Routing::PowerLaw(a) if (a - 1.0).abs() > 1e-6 && tokens >= 1.0 => a,
        // Balanced: picks spread evenly over min(E, picks) distinct experts.
        // (Under one token per step, the serving model's expected fractional steps, there is
        // no count profile to draw: the mean.)
        _ => {
            return RankLoad {
                rows: picks / ep,
                experts: (picks.min(e) / ep).min(local),
            }
        }
    };
    let (lo, hi) = if picks > e {
        (1.0f64, 0.8 * tokens)
    } else {
        (0.01, 2.0)
    };
    let n = (e.round() as usize).clamp(1, MAX_EXPERTS);
    let nf = n as f64;
    // Expected sorted counts: the quantile at each expert's rank midpoint, scaled to the picks.
    let (le, span, inv) = (
        lo.powf(1.0 - alpha),
        hi.powf(1.0 - alpha),
        1.0 / (1.0 - alpha),
    );
    let span = span - le;
    let mut c: Vec<f64> = if hi > lo * 1.0001 {
        (0..n)
            .map(|i| (span * (1.0 - (i as f64 + 0.5) / nf) + le).powf(inv))
            .collect()
    } else {
        vec![1.0; n]
    };
    let sum: f64 = c.iter().sum();
    // The hottest expert sits a little below the top midpoint (the expected maximum of n draws
    // of a heavy tail; 0.8 of a rank step, checked against simulated draws).
    let top_q = if hi > lo * 1.0001 {
        power_law_quantile(1.0 - 0.8 / nf, lo, hi, alpha)
    } else {
        1.0
    };
    let mut top = picks * top_q / (sum - c[0] + top_q);
    for x in c.iter_mut() {
        *x *= picks / sum;
    }
    // A token picks an expert at most once: no expert holds more than `tokens` rows; the excess
    // goes to the others in proportion.
    let cap = tokens;
    for _ in 0..8 {
        let over: f64 = c.iter().filter(|&&x| x > cap).map(|x| x - cap).sum();
        if over <= 1e-9 {
            break;
        }
        let rest: f64 = c.iter().filter(|&&x| x < cap).sum();
        if rest <= 0.0 {
            break;
        }
        let grow = 1.0 + over / rest;
        for x in c.iter_mut() {
            *x = if *x >= cap { cap } else { *x * grow };
        }
    }
    top = top.min(cap);
    // Experts hit at least once: each of the `tokens` tokens picks expert i with probability
    // count_i / tokens.
    let hit = |x: f64| 1.0 - (1.0 - (x / tokens).min(1.0)).powf(tokens);
    let active: f64 = c.iter().map(|&x| hit(x)).sum();
    if ep <= 1.0 {
        return RankLoad {
            rows: picks,
            experts: active.min(e),
        };
    }
    let mean = picks / nf;
    let var = c.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / nf;
    let spread = (local * var * (nf - local).max(0.0) / (nf - 1.0).max(1.0)).sqrt();
    let by_spread = picks / ep + spread * z_max(ep);
    let others = (nf - 1.0).max(1.0);
    let by_top = top + (local - 1.0).max(0.0) * (picks - top) / others;
    let rows = by_spread.max(by_top).min(picks).min(local * tokens);
    let top_hit = hit(top);
    let experts = (active / ep)
        .max(top_hit + (local - 1.0).max(0.0) * (active - top_hit) / others)
        .min(local);
    RankLoad { rows, experts }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_is_the_mean() {
        // 64 tokens × top-2 over 8 experts on 4 ranks: 32 rows and 2 experts per rank.
        let r = busiest_rank(64.0, 8.0, 2.0, 4.0, Routing::Balanced);
        assert_eq!(
            r,
            RankLoad {
                rows: 32.0,
                experts: 2.0
            }
        );
        // 2 tokens × top-2 = 4 picks over 128 experts, 8 ranks: 0.5 rows, 0.5 experts per rank.
        let r = busiest_rank(2.0, 128.0, 2.0, 8.0, Routing::Balanced);
        assert_eq!(
            r,
            RankLoad {
                rows: 0.5,
                experts: 0.5
            }
        );
    }

    #[test]
    fn power_law_quantile_hand_values() {
        // a = 2 on [1, 4]: x(u) = 1 / (1 - 0.75 u); u = 0 → 1, u = 1 → 4, u = 2/3 → 2.
        assert!((power_law_quantile(0.0, 1.0, 4.0, 2.0) - 1.0).abs() < 1e-12);
        assert!((power_law_quantile(1.0, 1.0, 4.0, 2.0) - 4.0).abs() < 1e-12);
        assert!((power_law_quantile(2.0 / 3.0, 1.0, 4.0, 2.0) - 2.0).abs() < 1e-12);
        assert!((z_max(8.0) - 1.4236).abs() < 1e-12);
        assert!((z_max(2.0f64.powf(2.5)) - (1.0294 + 1.4236) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn power_law_two_experts_hand_value() {
        // 100 tokens, top-1, 2 experts, a = 2 on [1, 80]: quantiles at u = 0.75 and 0.25 are
        // 1/(1 - 0.75·79/80) = 3.8554... and 1/(1 - 0.25·79/80) = 1.3278...; the hotter expert
        // gets 100 · 3.8554 / 5.1832 = 74.38 rows. Expected max: u = 1 - 0.4 = 0.6, x = 2.4540...,
        // top = 100 · 2.454 / (5.1832 - 3.8554 + 2.454) = 64.89; on 2 ranks the busiest holds
        // the larger of that and the mean 50 + spread: var = 24.38², spread = sqrt(1·var·1/1)
        // = 24.38, z(2) = 0.5642 → 63.76. So 64.89 rows, one expert.
        let q = |u: f64| 1.0 / (1.0 - u * 79.0 / 80.0);
        let (q0, q1, qt) = (q(0.75), q(0.25), q(0.6));
        let top = 100.0 * qt / (q1 + qt);
        let c0 = 100.0 * q0 / (q0 + q1);
        let spread_rows = 50.0 + (c0 - 50.0) * 0.5642;
        let r = busiest_rank(100.0, 2.0, 1.0, 2.0, Routing::PowerLaw(2.0));
        assert!(
            (r.rows - top.max(spread_rows)).abs() < 1e-9,
            "{r:?} vs {top}"
        );
        assert!((r.rows - 64.89).abs() < 0.01);
        assert!((r.experts - 1.0).abs() < 1e-9);
    }

    #[test]
    fn skew_loads_the_busiest_rank_above_the_mean() {
        // Mixtral-like: 8 experts, top-2, one expert per rank: the busiest rank holds the
        // hottest expert, far above the mean of 2·T/8, but never more than T rows.
        let t = 4096.0;
        let r = busiest_rank(t, 8.0, 2.0, 8.0, Routing::SERVING);
        assert!(r.rows > 2.0 * (2.0 * t / 8.0) && r.rows <= t, "{r:?}");
        // Without expert parallelism every pick lands on the one GPU.
        let r1 = busiest_rank(t, 8.0, 2.0, 1.0, Routing::SERVING);
        assert_eq!(r1.rows, 2.0 * t);
        assert!(r1.experts > 7.9 && r1.experts <= 8.0);
        // One token, top-8 of 256: eight distinct experts are hit, at most 8 rows on a rank.
        let r = busiest_rank(1.0, 256.0, 8.0, 1.0, Routing::SERVING);
        assert!((r.experts - 8.0).abs() < 0.5, "{r:?}");
    }
}
