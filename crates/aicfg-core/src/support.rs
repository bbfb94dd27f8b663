//! `aicfg cli support`: which model × system × backend combinations run, with which formats
//! and which performance data.
use crate::admit::check_backend;
use crate::backend::Backend;
use crate::hardware::SystemSpec;
use crate::model::ModelSpec;

/// One row of `aicfg cli support`: whether a (model,) system and backend combination runs,
/// with which formats, and which performance data answers it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SupportRow {
    pub model: Option<String>,
    pub system: String,
    pub backend: Backend,
    /// `ok` or `refused`.
    pub status: &'static str,
    pub reason: Option<String>,
    /// GEMM formats the GPU computes (a missing dtype is refused when asked for).
    pub gemm_formats: Vec<&'static str>,
    /// The model's formats as the search would run them here (gemm/moe/kvcache), with origins.
    pub model_quant: Option<String>,
    /// Weight memory of one copy of the model in that format (GiB).
    pub weights_gib: Option<f64>,
    /// GPUs needed to hold the weights with 15 % of memory left for KV cache and runtime.
    pub min_gpus: Option<u32>,
    /// `measured` when an op database for this system and backend is installed, else `empirical`.
    pub database: &'static str,
    pub database_version: Option<String>,
}

/// What `cli support` reports for one combination.
pub fn support_row(model: Option<&ModelSpec>, sys: &SystemSpec, backend: Backend) -> SupportRow {
    use crate::quant::GemmQuant;
    let gemm_formats = GemmQuant::ALL
        .iter()
        .filter(|g| sys.flops(g.compute()).is_some())
        .map(|g| g.name())
        .collect();
    let mut reason = check_backend(sys, backend).err().map(|e| e.to_string());
    let mut model_quant = None;
    let mut weights_gib = None;
    let mut min_gpus = None;
    if let (Some(m), None) = (model, &reason) {
        match crate::estimate::resolve_quant_explained(
            m,
            sys,
            &crate::estimate::QuantRequest::default(),
            backend,
        ) {
            Ok((q, o)) => {
                let mut s = format!("gemm {} ({})", q.gemm.name(), o.gemm);
                if m.family.is_moe() {
                    s.push_str(&format!(", moe {} ({})", q.moe.name(), o.moe));
                }
                s.push_str(&format!(", kvcache {} ({})", q.kvcache.name(), o.kvcache));
                model_quant = Some(s);
                let w = crate::model::graph::WorkerGraph::build(
                    m,
                    &crate::model::graph::Parallel::single(),
                    &q,
                )
                .ok()
                .map(|g| g.weight_bytes_per_gpu() / crate::hardware::GIB);
                weights_gib = w;
                min_gpus =
                    w.map(|w| (w / (sys.capacity_gib() * 0.85)).ceil().clamp(1.0, 1e6) as u32);
            }
            Err(e) => reason = Some(e.to_string()),
        }
    }
    let db = crate::perfdb::data_dir()
        .and_then(|d| crate::perfdb::active_root(&d))
        .and_then(|root| crate::perfdb::resolve(&root, &sys.name, backend.name(), None).ok());
    SupportRow {
        model: model.map(|m| m.name.clone()),
        system: sys.name.clone(),
        backend,
        status: if reason.is_none() { "ok" } else { "refused" },
        reason,
        gemm_formats,
        model_quant,
        weights_gib,
        min_gpus,
        database: if db.is_some() {
            "measured"
        } else {
            "empirical"
        },
        database_version: db.map(|k| k.version),
    }
}
