//! From measured load points to (a) rows of the calibration CSV that `aicfg bench accuracy` and
//! `aicfg bench calibrate` read, and (b) the `advanced_tuning_config` correction scales that make
//! a prediction match the measurement. The CSV schema is described in data/calibration/CSV.md.
use crate::error::{AicfgError, Result};
use serde::Serialize;
use serde_norway::{Mapping, Value};

/// Columns of the calibration CSV, in order.
pub const CALIB_COLUMNS: [&str; 35] = [
    "id",
    "silicon_data_source",
    "backend",
    "backend_version",
    "model_path",
    "system",
    "precision",
    "mode",
    "isl",
    "osl",
    "gemm_quant_mode",
    "moe_quant_mode",
    "batch_size",
    "tp_size",
    "pp_size",
    "attention_dp_size",
    "moe_tp_size",
    "moe_ep_size",
    "prefill_batch_size",
    "prefill_num_workers",
    "prefill_tp_size",
    "prefill_pp_size",
    "prefill_attention_dp_size",
    "prefill_moe_tp_size",
    "prefill_moe_ep_size",
    "decode_batch_size",
    "decode_num_workers",
    "decode_tp_size",
    "decode_pp_size",
    "decode_attention_dp_size",
    "decode_moe_tp_size",
    "decode_moe_ep_size",
    "silicon_ttft_ms",
    "silicon_tpot_ms",
    // Not in the published file; readers ignore unknown columns. Kept last.
    "silicon_tokens_per_s_per_gpu",
];

/// One worker pool of a deployment: how many workers in all (every replica) and their layout.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PoolDesc {
    pub workers: u32,
    pub tp: u32,
    pub pp: u32,
    pub attention_dp: u32,
    pub moe_tp: u32,
    pub moe_ep: u32,
    /// Requests per batch of this pool, where it is fixed (a disagg prefill worker's batch).
    pub batch_size: Option<f64>,
}

/// What was deployed, as far as the calibration CSV describes deployments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentDesc {
    pub backend: String,
    pub backend_version: String,
    pub model_path: String,
    pub system: String,
    pub isl: u64,
    pub osl: u64,
    pub gemm_quant_mode: String,
    pub moe_quant_mode: String,
    /// Agg: the one pool. Disagg: `None`.
    pub agg: Option<PoolDesc>,
    pub prefill: Option<PoolDesc>,
    pub decode: Option<PoolDesc>,
}

/// One CSV row, values in [`CALIB_COLUMNS`] order.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibRow(pub Vec<String>);

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

impl DeploymentDesc {
    pub fn mode(&self) -> &'static str {
        if self.agg.is_some() {
            "agg"
        } else {
            "disagg"
        }
    }

    /// Total concurrency of `c` split over the pool that holds the running requests: per-worker
    /// batch of the agg workers, or of the decode workers in disagg. Below one request per
    /// worker, the busy workers each run one (the others idle).
    pub fn per_worker_batch(&self, c: f64) -> Option<f64> {
        let pool = self.agg.or(self.decode)?;
        (pool.workers > 0).then(|| (c / pool.workers as f64).max(1.0))
    }

    /// The calibration row for this deployment measured at total concurrency `c`.
    pub fn row(
        &self,
        id: &str,
        source: &str,
        c: f64,
        ttft_ms: f64,
        tpot_ms: f64,
        tokens_per_s_per_gpu: Option<f64>,
    ) -> Result<CalibRow> {
        let batch = self
            .per_worker_batch(c)
            .ok_or_else(|| AicfgError::invalid("deployment", "it has no agg or decode workers"))?;
        let mut v: Vec<String> = vec![String::new(); CALIB_COLUMNS.len()];
        let mut set = |k: &str, val: String| {
            let i = CALIB_COLUMNS
                .iter()
                .position(|c| *c == k)
                .expect("column is in CALIB_COLUMNS");
            v[i] = val;
        };
        set("id", id.to_string());
        set("silicon_data_source", source.to_string());
        set("backend", self.backend.clone());
        set("backend_version", self.backend_version.clone());
        set("model_path", self.model_path.clone());
        set("system", self.system.clone());
        set("mode", self.mode().to_string());
        set("isl", self.isl.to_string());
        set("osl", self.osl.to_string());
        set("gemm_quant_mode", self.gemm_quant_mode.clone());
        set("moe_quant_mode", self.moe_quant_mode.clone());
        let mut pool = |prefix: &str, p: &PoolDesc, batch: Option<f64>, workers: bool| {
            if let Some(b) = batch {
                set(&format!("{prefix}batch_size"), num(b));
            }
            if workers {
                set(&format!("{prefix}num_workers"), p.workers.to_string());
            }
            set(&format!("{prefix}tp_size"), p.tp.to_string());
            set(&format!("{prefix}pp_size"), p.pp.to_string());
            set(
                &format!("{prefix}attention_dp_size"),
                p.attention_dp.to_string(),
            );
            set(&format!("{prefix}moe_tp_size"), p.moe_tp.to_string());
            set(&format!("{prefix}moe_ep_size"), p.moe_ep.to_string());
        };
        if let Some(a) = &self.agg {
            pool("", a, Some(batch), false);
        } else {
            let (Some(p), Some(d)) = (&self.prefill, &self.decode) else {
                return Err(AicfgError::invalid(
                    "deployment",
                    "disagg needs prefill and decode pools",
                ));
            };
            pool("prefill_", p, Some(p.batch_size.unwrap_or(1.0)), true);
            pool("decode_", d, Some(batch), true);
        }
        set("silicon_ttft_ms", num(ttft_ms));
        set("silicon_tpot_ms", num(tpot_ms));
        if let Some(t) = tokens_per_s_per_gpu {
            set("silicon_tokens_per_s_per_gpu", num(t));
        }
        Ok(CalibRow(v))
    }
}

/// Multipliers on predicted latency that make the predictions match the measurements.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CorrectionScales {
    /// measured TTFT / predicted TTFT (typical over the points).
    pub prefill_latency: f64,
    /// measured TPOT / predicted TPOT.
    pub decode_latency: f64,
    /// Points that had both predictions and measurements.
    pub points: usize,
}

/// Bounds on a suggested scale: outside this the model, not a scale, is wrong.
pub const SCALE_BOUNDS: (f64, f64) = (0.2, 5.0);

fn median_log_ratio(pairs: &[(f64, f64)]) -> Option<f64> {
    let mut r: Vec<f64> = pairs
        .iter()
        .filter(|(p, m)| p.is_finite() && m.is_finite() && *p > 0.0 && *m > 0.0)
        .map(|(p, m)| (m / p).ln())
        .collect();
    if r.is_empty() {
        return None;
    }
    r.sort_by(f64::total_cmp);
    let n = r.len();
    let med = if n % 2 == 1 {
        r[n / 2]
    } else {
        0.5 * (r[n / 2 - 1] + r[n / 2])
    };
    Some(med.exp().clamp(SCALE_BOUNDS.0, SCALE_BOUNDS.1))
}

impl CorrectionScales {
    /// From (predicted, measured) TTFT and TPOT pairs: the median ratio of each (robust to one
    /// point that queued), rounded to 0.01, bounded by [`SCALE_BOUNDS`].
    pub fn fit(ttft: &[(f64, f64)], tpot: &[(f64, f64)]) -> Option<CorrectionScales> {
        let round = |x: f64| (x * 100.0).round() / 100.0;
        let a = median_log_ratio(ttft)?;
        let b = median_log_ratio(tpot)?;
        Some(CorrectionScales {
            prefill_latency: round(a),
            decode_latency: round(b),
            points: ttft.len().min(tpot.len()),
        })
    }

    /// The `advanced_tuning_config` block, latency style (`*_latency_correction_scale`) or
    /// throughput style (`*_correction_scale`, which divides latency).
    pub fn snippet(&self, throughput_style: bool) -> String {
        let r = |x: f64| (x * 100.0).round() / 100.0;
        if throughput_style {
            format!(
                "advanced_tuning_config:\n  prefill_correction_scale: {}\n  decode_correction_scale: {}\n",
                r(1.0 / self.prefill_latency),
                r(1.0 / self.decode_latency)
            )
        } else {
            format!(
                "advanced_tuning_config:\n  prefill_latency_correction_scale: {}\n  decode_latency_correction_scale: {}\n",
                self.prefill_latency, self.decode_latency
            )
        }
    }

    /// A resolved experiment file (what `--save_dir` writes as `<mode>/config.yaml`) with these
    /// latency scales set in every experiment, so `cli exp --yaml_path` reruns the corrected search.
    pub fn apply_to_exp_yaml(&self, text: &str) -> Result<String> {
        let bad = |r: String| AicfgError::invalid("experiment file", r);
        let mut doc: Value = serde_norway::from_str(text).map_err(|e| bad(e.to_string()))?;
        let top = doc
            .as_mapping_mut()
            .ok_or_else(|| bad("top level is not a mapping".into()))?;
        let mut n = 0;
        for (k, exp) in top.iter_mut() {
            if k.as_str() == Some("exps") {
                continue;
            }
            let Some(m) = exp.as_mapping_mut() else {
                continue;
            };
            let config = m
                .entry(Value::from("config"))
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            let Some(config) = config.as_mapping_mut() else {
                return Err(bad("'config' is not a mapping".into()));
            };
            let t = config
                .entry(Value::from("advanced_tuning_config"))
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            let Some(t) = t.as_mapping_mut() else {
                return Err(bad("'advanced_tuning_config' is not a mapping".into()));
            };
            t.insert(
                Value::from("prefill_latency_correction_scale"),
                Value::from(self.prefill_latency),
            );
            t.insert(
                Value::from("decode_latency_correction_scale"),
                Value::from(self.decode_latency),
            );
            t.insert(Value::from("prefill_correction_scale"), Value::from(1.0));
            t.insert(Value::from("decode_correction_scale"), Value::from(1.0));
            n += 1;
        }
        if n == 0 {
            return Err(bad("no experiment found".into()));
        }
        serde_norway::to_string(&doc).map_err(|e| bad(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg() -> DeploymentDesc {
        DeploymentDesc {
            backend: "vllm".into(),
            backend_version: "0.11.0".into(),
            model_path: "Qwen/Qwen3-32B".into(),
            system: "h200_sxm".into(),
            isl: 1024,
            osl: 128,
            gemm_quant_mode: "fp8".into(),
            moe_quant_mode: String::new(),
            agg: Some(PoolDesc {
                workers: 4,
                tp: 2,
                pp: 1,
                attention_dp: 1,
                moe_tp: 1,
                moe_ep: 1,
                batch_size: None,
            }),
            prefill: None,
            decode: None,
        }
    }

    fn col(r: &CalibRow, k: &str) -> String {
        r.0[CALIB_COLUMNS.iter().position(|c| *c == k).unwrap()].clone()
    }

    #[test]
    fn agg_row_splits_concurrency_over_workers() {
        let r = agg()
            .row("x", "eval", 256.0, 120.5, 20.0, Some(900.0))
            .unwrap();
        assert_eq!(r.0.len(), CALIB_COLUMNS.len());
        assert_eq!(col(&r, "batch_size"), "64");
        assert_eq!(col(&r, "tp_size"), "2");
        assert_eq!(col(&r, "mode"), "agg");
        assert_eq!(col(&r, "silicon_ttft_ms"), "120.5");
        assert_eq!(col(&r, "decode_batch_size"), "");
        let r = agg().row("x", "eval", 6.0, 1.0, 1.0, None).unwrap();
        assert_eq!(col(&r, "batch_size"), "1.5");
        // One request on four workers: one worker runs a batch of one.
        let r = agg().row("x", "eval", 1.0, 1.0, 1.0, None).unwrap();
        assert_eq!(col(&r, "batch_size"), "1");
    }

    #[test]
    fn disagg_row_fills_both_pools() {
        let mut d = agg();
        let p = d.agg.take().unwrap();
        d.prefill = Some(PoolDesc {
            workers: 2,
            batch_size: Some(1.0),
            ..p
        });
        d.decode = Some(PoolDesc { workers: 1, ..p });
        let r = d.row("y", "eval", 48.0, 300.0, 10.0, None).unwrap();
        assert_eq!(col(&r, "mode"), "disagg");
        assert_eq!(col(&r, "decode_batch_size"), "48");
        assert_eq!(col(&r, "prefill_num_workers"), "2");
        assert_eq!(col(&r, "prefill_batch_size"), "1");
        assert_eq!(col(&r, "batch_size"), "");
    }

    #[test]
    fn scales_are_median_ratios() {
        // TTFT measured 1.2x, 1.1x and (queued) 3x: the median is 1.2.
        let s = CorrectionScales::fit(
            &[(100.0, 120.0), (100.0, 110.0), (100.0, 300.0)],
            &[(10.0, 9.0), (10.0, 9.0)],
        )
        .unwrap();
        assert_eq!((s.prefill_latency, s.decode_latency), (1.2, 0.9));
        assert!(s
            .snippet(false)
            .contains("prefill_latency_correction_scale: 1.2"));
        assert!(s.snippet(true).contains("decode_correction_scale: 1.11"));
        assert!(CorrectionScales::fit(&[], &[(1.0, 1.0)]).is_none());
        let y = "exps:\n- e\ne:\n  mode: patch\n  config:\n    nextn: 0\n";
        let out = s.apply_to_exp_yaml(y).unwrap();
        assert!(
            out.contains("prefill_latency_correction_scale: 1.2"),
            "{out}"
        );
        assert!(out.contains("nextn: 0"));
    }
}
