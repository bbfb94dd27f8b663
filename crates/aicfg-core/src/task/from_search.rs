//! The other direction: a finished search back into the experiment it ran, so `--save_dir`
//! writes a `config.yaml` that `cli exp` runs again with the same result.
use super::{AdvancedTuning, ExpConfig, Experiment, LayerMode, ServingMode, WorkerConfig};
use crate::backend::Backend;
use crate::error::{AicfgError, Result};
use crate::estimate::resolve_quant;
use crate::search::{Role, SearchRequest, SearchResult, RECOMMEND_MAX_GPUS};
use crate::serve::{mtp, ServeMode};
use serde_norway::{Mapping, Value};

impl Experiment {
    /// The resolved experiment of one serving mode and backend of a finished search: every
    /// list, quant mode and tuning value the search used, written out explicitly.
    ///
    /// Recommend mode (no `total_gpus`) records the cluster the best deployment needed.
    pub fn from_search(
        name: &str,
        req: &SearchRequest,
        result: &SearchResult,
        mode: ServeMode,
        backend: Backend,
    ) -> Result<Experiment> {
        let serving = match mode {
            ServeMode::Agg => ServingMode::Agg,
            ServeMode::Disagg => ServingMode::Disagg,
            ServeMode::Static => {
                return Err(AicfgError::invalid(
                    "serving mode",
                    "a static batch has no experiment form; use agg or disagg",
                ))
            }
        };
        let worker = |role: Role| -> Result<WorkerConfig> {
            let (sys, asked) = match role {
                Role::Agg => (&req.system, &req.agg_quant),
                Role::Prefill => (&req.system, &req.prefill_quant),
                Role::Decode => (req.decode_sys(), &req.decode_quant),
            };
            let q = match result
                .quant
                .iter()
                .find(|q| q.role == role && q.backend == backend)
            {
                Some(s) => s.quant,
                None => resolve_quant(&req.model, sys, asked, backend)?,
            };
            Ok(WorkerConfig {
                gemm_quant_mode: q.gemm,
                moe_quant_mode: q.moe,
                kvcache_quant_mode: q.kvcache,
                fmha_quant_mode: q.fmha,
                comm_quant_mode: q.comm,
                parallel: req.space(role, backend),
                quant_origin: super::QuantLabels::default(),
            })
        };
        let disagg = serving == ServingMode::Disagg;
        let t = &req.tuning;
        let w = &req.workload;
        let total_gpus = req.total_gpus.unwrap_or_else(|| {
            result
                .mode(mode)
                .and_then(|m| m.top.first())
                .map_or(RECOMMEND_MAX_GPUS, |c| c.total_gpus)
        });
        let whole = |what: &'static str, v: f64| -> Result<u32> {
            if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= f64::from(u32::MAX) {
                Ok(v as u32)
            } else {
                Err(AicfgError::invalid(
                    what,
                    format!(
                        "must be a whole number of tokens to be written as an experiment, got {v}"
                    ),
                ))
            }
        };
        Ok(Experiment {
            name: name.to_string(),
            mode: LayerMode::Patch,
            serving_mode: serving,
            model_name: req.model.name.clone(),
            total_gpus,
            system_name: req.system.name.clone(),
            decode_system_name: disagg.then(|| req.decode_sys().name.clone()),
            backend_name: backend.name().to_string(),
            backend_version: None,
            database_mode: req.database_mode,
            isl: whole("isl", w.isl)?,
            osl: whole("osl", w.osl)?,
            prefix: whole("prefix", w.prefix)?,
            ttft: req.ttft_ms,
            tpot: req.tpot_ms,
            enable_wide_ep: req.enable_wide_ep,
            gpu_cost_per_hour: req.gpu_cost_per_hour,
            rank_by: req.rank_by,
            sla_percentile: req.sla_percentile,
            profiles: Vec::new(),
            config: ExpConfig {
                nextn: w.nextn,
                nextn_accept_rates: mtp::rates_for_accepted(w.nextn, w.nextn_accepted),
                worker_config: (!disagg).then(|| worker(Role::Agg)).transpose()?,
                prefill_worker_config: disagg.then(|| worker(Role::Prefill)).transpose()?,
                decode_worker_config: disagg.then(|| worker(Role::Decode)).transpose()?,
                replica_config: disagg.then(|| req.replica.clone()),
                advanced_tuning_config: AdvancedTuning {
                    // The search keeps one latency factor per phase; throughput scales stay 1.
                    prefill_latency_correction_scale: t.prefill_latency_scale,
                    decode_latency_correction_scale: t.decode_latency_scale,
                    prefill_correction_scale: 1.0,
                    decode_correction_scale: 1.0,
                    prefill_max_batch_size: disagg.then_some(t.prefill_max_batch_size),
                    decode_max_batch_size: if disagg {
                        t.decode_max_batch_size
                    } else {
                        t.agg_max_batch_size
                    },
                    free_gpu_memory_fraction: req.free_gpu_memory_fraction,
                },
            },
        })
    }
}

/// A study file: `exps:` naming every experiment in order, then each experiment.
pub fn study_yaml(exps: &[Experiment]) -> Result<String> {
    let ser = |e: serde_norway::Error| AicfgError::invalid("experiment", e.to_string());
    let mut top = Mapping::new();
    top.insert(
        Value::from("exps"),
        Value::Sequence(exps.iter().map(|e| Value::from(e.name.as_str())).collect()),
    );
    for e in exps {
        top.insert(
            Value::from(e.name.as_str()),
            serde_norway::to_value(e).map_err(ser)?,
        );
    }
    serde_norway::to_string(&top).map_err(ser)
}
