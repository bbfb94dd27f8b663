//! JSON views shared by the commands and the webapp (the webapp returns exactly what
//! `--json` prints), and the format-origin wording of every report.
use aicfg_core::search::SearchResult;
use aicfg_core::task::{Outcome, Study};
use aicfg_core::EstimateReport;

/// Numbers rounded to 3 decimals so JSON output is stable and readable.
pub fn json_view(r: &SearchResult) -> serde_json::Value {
    fn round(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Number(n) => {
                if let Some(f) = n.as_f64() {
                    if !n.is_i64() && !n.is_u64() {
                        *v = serde_json::json!((f * 1000.0).round() / 1000.0);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(round),
            serde_json::Value::Object(o) => o.values_mut().for_each(round),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(r).expect("search result serializes");
    round(&mut v);
    v
}

/// An estimate report with its headline numbers rounded to 3 decimals.
pub fn estimate_json(r: &EstimateReport) -> serde_json::Value {
    let mut v = serde_json::to_value(r).expect("report serializes");
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    if let Some(o) = v.as_object_mut() {
        for k in [
            "ttft_ms",
            "tpot_ms",
            "request_latency_ms",
            "tokens_per_s",
            "tokens_per_s_per_gpu",
            "tokens_per_s_per_user",
            "request_rate",
            "memory_gib",
            "context_ms",
            "decode_step_ms",
        ] {
            if let Some(x) = o.get(k).and_then(|x| x.as_f64()) {
                o.insert(k.to_string(), serde_json::json!(round(x)));
            }
        }
        if let Some(c) = o.get_mut("cost").and_then(|c| c.as_object_mut()) {
            for x in c.values_mut() {
                if let Some(f) = x.as_f64() {
                    *x = serde_json::json!(round(f));
                }
            }
        }
    }
    v
}

/// Best tokens/s/gpu of each experiment (None when nothing meets the SLA).
pub fn bests(outcomes: &[Outcome]) -> Vec<Option<f64>> {
    outcomes
        .iter()
        .map(|o| o.result.best.as_ref().map(|b| b.tokens_per_s_per_gpu))
        .collect()
}

pub fn study_json(study: &Study) -> serde_json::Value {
    let outcomes = &study.outcomes;
    let b = bests(outcomes);
    let top = b.iter().flatten().copied().fold(0.0, f64::max);
    let exps: Vec<serde_json::Value> = outcomes
        .iter()
        .zip(&b)
        .map(|(o, best)| {
            serde_json::json!({
                "name": o.experiment.name,
                "experiment": serde_json::to_value(&o.experiment).unwrap_or_default(),
                "result": json_view(&o.result),
                "best_tokens_per_s_per_gpu": best.map(|v| (v * 1000.0).round() / 1000.0),
                "best_cost": o.result.best.as_ref().and_then(|c| c.cost).map(|c| {
                    let r = |x: f64| (x * 1000.0).round() / 1000.0;
                    serde_json::json!({
                        "usd_per_hour": r(c.usd_per_hour),
                        "usd_per_m_output_tokens": r(c.usd_per_m_output_tokens),
                        "usd_per_m_input_tokens": r(c.usd_per_m_input_tokens),
                    })
                }),
                "ratio_to_best": best.filter(|_| top > 0.0).map(|v| (v / top * 1000.0).round() / 1000.0),
            })
        })
        .collect();
    let winner = outcomes
        .iter()
        .zip(&b)
        .filter_map(|(o, v)| v.map(|v| (o, v)))
        .fold(None::<(&Outcome, f64)>, |acc, (o, v)| match acc {
            Some((_, bv)) if bv >= v => acc,
            _ => Some((o, v)),
        })
        .map(|(o, _)| o.experiment.name.clone());
    let failed: Vec<serde_json::Value> = study
        .failed
        .iter()
        .map(|f| {
            serde_json::json!({
                "name": f.experiment.name,
                "experiment": serde_json::to_value(&f.experiment).unwrap_or_default(),
                "reason": f.reason,
            })
        })
        .collect();
    serde_json::json!({ "experiments": exps, "failed": failed, "best_experiment": winner })
}

/// Short origin tag of a format: where it came from, the full story of a downgrade in the notes.
pub fn origin_tag(o: &str) -> &str {
    if o.starts_with("downgraded") {
        "downgraded, see notes"
    } else {
        o
    }
}

/// How to change a format, under every worker-setup listing.
pub const QUANT_HINT: &str = "Change a format with --gemm-quant-mode, --moe-quant-mode, --kvcache-quant-mode, --fmha-quant-mode, --comm-quant-mode (exp files: the worker's *_quant_mode keys or a profile)";
