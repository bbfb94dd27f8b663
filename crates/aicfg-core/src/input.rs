//! The one input spec: every input of a search (`cli default`, the web page's form) and of an
//! estimate (`cli estimate`, the page's details) as plain data with its defaults. The CLI maps
//! its flags onto these types, the webapp deserializes them from JSON; both then call
//! [`DefaultInput::search_request`] / [`EstimateInput::estimate_request`], which convert names
//! and sizes and run the request's own validation (`SearchRequest::validate`,
//! `EstimateRequest::validate`): one rule, one wording, with the offending field named.
use crate::backend::Backend;
use crate::error::AicfgError;
use crate::estimate::{EstimateRequest, QuantRequest, WorkerSpec};
use crate::hardware::{SystemRegistry, SystemSpec};
use crate::model::graph::Parallel;
use crate::model::{ModelRegistry, ModelSpec};
use crate::perf::{DatabaseMode, EmpiricalParams};
use crate::quant::{CommQuant, FmhaQuant, GemmQuant, KvQuant, MoeQuant};
use crate::search::{
    Candidate, LoadTarget, ParallelSpace, RankBy, ReplicaConfig, Role, SearchRequest,
    SlaPercentile, DEFAULT_ISL, DEFAULT_OSL, DEFAULT_TPOT_MS, DEFAULT_TTFT_MS,
};
use crate::serve::{mtp, ServeMode, Workload};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A bad input, with the input field it belongs to (the webapp shows it next to that field).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct InputError {
    /// The JSON key of the field (the CLI flag with `_`); `None` when no single field is at fault
    /// (an unsupported combination, a layout that does not divide the model).
    pub field: Option<&'static str>,
    pub message: String,
}

impl InputError {
    pub fn new(field: &'static str, message: impl std::fmt::Display) -> Self {
        InputError {
            field: Some(field),
            message: message.to_string(),
        }
    }

    /// A core error, tagged with the field its `what` names (see [`field_of`]).
    pub fn from_core(e: AicfgError) -> Self {
        let field = match &e {
            AicfgError::Invalid { what, .. } => field_of(what),
            AicfgError::UnsupportedDtype { .. } => Some("gemm_quant_mode"),
            _ => None,
        };
        InputError {
            field,
            message: e.to_string(),
        }
    }
}

/// The input field of a core validation error's `what`.
pub fn field_of(what: &str) -> Option<&'static str> {
    Some(match what {
        "isl" => "isl",
        "osl" => "osl",
        "prefix" => "prefix",
        "ttft" => "ttft",
        "tpot" => "tpot",
        "total_gpus" => "total_gpus",
        "top_n" => "top_n",
        "nextn" => "nextn",
        "nextn_accept_rates" | "nextn accept rate" => "nextn_accept_rates",
        "nextn_accept_rate" => "nextn_accept_rate",
        "free gpu memory fraction" => "free_gpu_memory_fraction",
        "target request rate" => "target_request_rate",
        "target concurrency" => "target_concurrency",
        "batch_size" => "batch_size",
        "prefill_batch_size" => "prefill_batch_size",
        "decode_batch_size" => "decode_batch_size",
        "gpu_cost_per_hour" => "gpu_cost_per_hour",
        "rank_by" => "rank_by",
        "sla-percentile" | "sla_percentile" => "sla_percentile",
        _ => return None,
    })
}

/// Tags a fallible value with the field it came from.
pub trait OnField<T> {
    fn on(self, field: &'static str) -> std::result::Result<T, InputError>;
}

impl<T, E: std::fmt::Display> OnField<T> for std::result::Result<T, E> {
    fn on(self, field: &'static str) -> std::result::Result<T, InputError> {
        self.map_err(|e| InputError::new(field, e))
    }
}

pub type InputResult<T> = std::result::Result<T, InputError>;

fn parse_opt<T>(
    v: &Option<String>,
    field: &'static str,
    f: fn(&str) -> crate::Result<T>,
) -> InputResult<Option<T>> {
    v.as_deref().map(f).transpose().on(field)
}

/// The five per-component formats (gemm, moe, kvcache, fmha, comm); unset ones come from the
/// checkpoint.
pub fn quant_request(modes: [&Option<String>; 5]) -> InputResult<QuantRequest> {
    let [gemm, moe, kv, fmha, comm] = modes;
    Ok(QuantRequest {
        gemm: parse_opt(gemm, "gemm_quant_mode", GemmQuant::parse)?,
        moe: parse_opt(moe, "moe_quant_mode", MoeQuant::parse)?,
        kvcache: parse_opt(kv, "kvcache_quant_mode", KvQuant::parse)?,
        fmha: parse_opt(fmha, "fmha_quant_mode", FmhaQuant::parse)?,
        comm: parse_opt(comm, "comm_quant_mode", CommQuant::parse)?,
    })
}

/// The built-in systems plus those of a systems directory.
pub fn load_systems(dir: &Option<PathBuf>) -> InputResult<SystemRegistry> {
    let mut systems = SystemRegistry::builtin();
    if let Some(dir) = dir {
        systems.add_dir(dir).on("systems_path")?;
    }
    Ok(systems)
}

/// A calibration YAML replacing the embedded empirical constants.
pub fn load_calibration(path: &Option<PathBuf>) -> InputResult<Option<EmpiricalParams>> {
    let Some(p) = path else { return Ok(None) };
    let text = crate::limits::read_text(p, crate::limits::MAX_TEXT_FILE_BYTES).on("calibration")?;
    EmpiricalParams::from_yaml(&text)
        .map(Some)
        .on("calibration")
}

/// The model of `model` / `model_config`; without `local_files` (a web request) no local path.
pub fn resolve_model(
    name: &str,
    config: Option<&str>,
    local_files: bool,
) -> InputResult<ModelSpec> {
    let registry = ModelRegistry::builtin();
    if let Some(text) = config {
        let name = if name.trim().is_empty() {
            "custom"
        } else {
            name.trim()
        };
        return ModelSpec::from_hf_json(text, name, "pasted config.json").on("model_config");
    }
    if name.trim().is_empty() {
        return Err(InputError::new(
            "model",
            "--model is required: a built-in name, or paste a config.json",
        ));
    }
    if local_files {
        registry.resolve(name).on("model")
    } else {
        registry.resolve_builtin(name).on("model")
    }
}

/// The system named `name` and the optional decode system (empty = none).
fn systems_of(
    systems: &SystemRegistry,
    name: &str,
    decode: &Option<String>,
) -> InputResult<(SystemSpec, Option<SystemSpec>)> {
    let system = systems.get(name).on("system")?.clone();
    let decode_system = decode
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(|s| systems.get(s).cloned())
        .transpose()
        .on("decode_system")?;
    Ok((system, decode_system))
}

/// Largest parallel size or worker count one input may give (keeps a web request from asking
/// for absurd worker shapes).
pub const MAX_PARALLEL_INPUT: u32 = 1024;

/// Rows per top-N table when none is given.
pub const DEFAULT_TOP_N: usize = 5;

/// Parallel lists of one role (the webapp's advanced section); empty lists keep the defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParallelInput {
    pub num_gpu_per_worker: Vec<u32>,
    pub tp: Vec<u32>,
    pub pp: Vec<u32>,
    pub dp: Vec<u32>,
    pub moe_tp: Vec<u32>,
    pub moe_ep: Vec<u32>,
}

impl ParallelInput {
    /// The given lists over `defaults`, list by list; `None` when no list is given.
    fn space(
        &self,
        field: &'static str,
        defaults: impl FnOnce() -> ParallelSpace,
    ) -> InputResult<Option<ParallelSpace>> {
        let lists = [
            &self.num_gpu_per_worker,
            &self.tp,
            &self.pp,
            &self.dp,
            &self.moe_tp,
            &self.moe_ep,
        ];
        if lists.iter().all(|l| l.is_empty()) {
            return Ok(None);
        }
        if let Some(v) = lists
            .iter()
            .flat_map(|l| l.iter())
            .find(|v| !(1..=MAX_PARALLEL_INPUT).contains(*v))
        {
            return Err(InputError::new(
                field,
                format!("parallel sizes must be between 1 and {MAX_PARALLEL_INPUT}, got {v}"),
            ));
        }
        let mut s = defaults();
        let pick = |given: &Vec<u32>, default: &mut Vec<u32>| {
            if !given.is_empty() {
                let mut v = given.clone();
                v.sort_unstable();
                v.dedup();
                *default = v;
            }
        };
        pick(&self.num_gpu_per_worker, &mut s.num_gpu_per_worker);
        pick(&self.tp, &mut s.tp_list);
        pick(&self.pp, &mut s.pp_list);
        pick(&self.dp, &mut s.dp_list);
        pick(&self.moe_tp, &mut s.moe_tp_list);
        pick(&self.moe_ep, &mut s.moe_ep_list);
        Ok(Some(s))
    }
}

/// Every input of a search (`cli default`, the web page's form).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DefaultInput {
    pub model: String,
    /// Text of a pasted config.json; `model` then only names it.
    pub model_config: Option<String>,
    pub total_gpus: Option<i64>,
    pub system: String,
    pub decode_system: Option<String>,
    /// A backend name, or `auto` (every backend that runs on these GPUs).
    pub backend: String,
    pub isl: i64,
    pub osl: i64,
    pub ttft: f64,
    pub tpot: f64,
    pub prefix: i64,
    pub nextn: u32,
    pub nextn_accept_rates: Vec<f64>,
    /// agg, disagg or auto (both).
    pub serving_mode: String,
    pub database_mode: String,
    pub backend_version: Option<String>,
    pub top_n: usize,
    pub free_gpu_memory_fraction: Option<f64>,
    pub target_request_rate: Option<f64>,
    pub target_concurrency: Option<f64>,
    pub strict_sla: bool,
    pub enable_wide_ep: bool,
    pub gemm_quant_mode: Option<String>,
    pub moe_quant_mode: Option<String>,
    pub kvcache_quant_mode: Option<String>,
    pub fmha_quant_mode: Option<String>,
    pub comm_quant_mode: Option<String>,
    pub agg_parallel: Option<ParallelInput>,
    pub prefill_parallel: Option<ParallelInput>,
    pub decode_parallel: Option<ParallelInput>,
    /// Price of a GPU-hour (US dollars) for every system, over the system files' own.
    pub gpu_cost_per_hour: Option<f64>,
    /// throughput (default) or cost.
    pub rank_by: String,
    /// What the TTFT/TPOT targets bound: `mean` (default, the closed form) or the simulated
    /// `p50`, `p90`, `p99` of the top rows.
    pub sla_percentile: String,
    /// Local files are read only for the CLI, never for a web request.
    #[serde(skip)]
    pub systems_path: Option<PathBuf>,
    #[serde(skip)]
    pub calibration: Option<PathBuf>,
    #[serde(skip)]
    pub allow_local_files: bool,
}

impl Default for DefaultInput {
    /// The documented defaults (those of `cli default`).
    fn default() -> Self {
        DefaultInput {
            model: String::new(),
            model_config: None,
            total_gpus: None,
            system: String::new(),
            decode_system: None,
            backend: Backend::Trtllm.name().into(),
            isl: DEFAULT_ISL.into(),
            osl: DEFAULT_OSL.into(),
            ttft: DEFAULT_TTFT_MS,
            tpot: DEFAULT_TPOT_MS,
            prefix: 0,
            nextn: 0,
            nextn_accept_rates: mtp::DEFAULT_ACCEPT_RATES.to_vec(),
            serving_mode: "auto".into(),
            database_mode: "auto".into(),
            backend_version: None,
            top_n: DEFAULT_TOP_N,
            free_gpu_memory_fraction: None,
            target_request_rate: None,
            target_concurrency: None,
            strict_sla: false,
            enable_wide_ep: false,
            gemm_quant_mode: None,
            moe_quant_mode: None,
            kvcache_quant_mode: None,
            fmha_quant_mode: None,
            comm_quant_mode: None,
            agg_parallel: None,
            prefill_parallel: None,
            decode_parallel: None,
            gpu_cost_per_hour: None,
            rank_by: "throughput".into(),
            sla_percentile: SlaPercentile::Mean.name().into(),
            systems_path: None,
            calibration: None,
            allow_local_files: false,
        }
    }
}

/// A token count as the workload's float; the workload's own check rejects bad values.
fn tokens(v: i64) -> f64 {
    v as f64
}

/// The quantization fields of an input, parsed.
fn quant_of(
    gemm: &Option<String>,
    moe: &Option<String>,
    kv: &Option<String>,
    fmha: &Option<String>,
    comm: &Option<String>,
) -> InputResult<QuantRequest> {
    quant_request([gemm, moe, kv, fmha, comm])
}

impl DefaultInput {
    /// The search these inputs ask for, validated.
    pub fn search_request(&self) -> InputResult<SearchRequest> {
        let a = self;
        let systems = load_systems(&a.systems_path)?;
        let model = resolve_model(&a.model, a.model_config.as_deref(), a.allow_local_files)?;
        let (system, decode_system) = systems_of(&systems, &a.system, &a.decode_system)?;
        let backends = if a.backend.trim().eq_ignore_ascii_case("auto") {
            // `auto` compares the frameworks that run on these GPUs (no TensorRT-LLM on AMD).
            let mut on = vec![&system];
            on.extend(decode_system.as_ref());
            crate::admit::backends_for(&on, &Backend::ALL)
        } else {
            vec![Backend::parse(&a.backend).on("backend")?]
        };
        let total_gpus = match a.total_gpus {
            None => None,
            Some(n) => Some(u32::try_from(n).map_err(|_| {
                let why = if n < 0 {
                    format!("must be at least 1, got {n}")
                } else {
                    format!(
                        "{n} is more than the {} GPUs a search plans for",
                        crate::limits::MAX_TOTAL_GPUS
                    )
                };
                InputError::from_core(AicfgError::invalid("total_gpus", why))
            })?),
        };
        let target = match (a.target_request_rate, a.target_concurrency) {
            (Some(_), Some(_)) => {
                return Err(InputError::new(
                    "target_concurrency",
                    "give either --target-request-rate or --target-concurrency, not both",
                ))
            }
            (Some(r), None) => Some(LoadTarget::RequestRate(r)),
            (None, Some(c)) => Some(LoadTarget::Concurrency(c)),
            (None, None) => None,
        };
        mtp::check(a.nextn, &a.nextn_accept_rates, "nextn_accept_rates")
            .map_err(InputError::from_core)?;
        let quant = quant_of(
            &a.gemm_quant_mode,
            &a.moe_quant_mode,
            &a.kvcache_quant_mode,
            &a.fmha_quant_mode,
            &a.comm_quant_mode,
        )?;
        let modes = match a.serving_mode.trim().to_ascii_lowercase().as_str() {
            "auto" | "both" => vec![ServeMode::Agg, ServeMode::Disagg],
            "agg" => vec![ServeMode::Agg],
            "disagg" => vec![ServeMode::Disagg],
            other => {
                return Err(InputError::new(
                    "serving_mode",
                    format!("unknown --serving-mode '{other}'; known: agg, disagg, auto"),
                ))
            }
        };
        let calibration = load_calibration(&a.calibration)?;
        let workload = Workload {
            isl: tokens(a.isl),
            osl: tokens(a.osl),
            prefix: tokens(a.prefix),
            nextn: a.nextn,
            nextn_accepted: mtp::accepted_drafts(a.nextn, &a.nextn_accept_rates),
        };
        let database_mode = DatabaseMode::parse(&a.database_mode).on("database_mode")?;
        let mut req = SearchRequest::new(model, system, backends[0], workload, total_gpus);
        // Given lists replace the defaults of the first backend, list by list.
        let space = |p: &Option<ParallelInput>, field: &'static str, role: Role| {
            let Some(p) = p else { return Ok(None) };
            let sys = match (role, &decode_system) {
                (Role::Decode, Some(d)) => d,
                _ => &req.system,
            };
            p.space(field, || {
                ParallelSpace::defaults(&req.model, sys, backends[0], role, a.enable_wide_ep)
            })
        };
        let agg_space = space(&a.agg_parallel, "agg_parallel", Role::Agg)?;
        let prefill_space = space(&a.prefill_parallel, "prefill_parallel", Role::Prefill)?;
        let decode_space = space(&a.decode_parallel, "decode_parallel", Role::Decode)?;
        req.agg_space = agg_space;
        req.prefill_space = prefill_space;
        req.decode_space = decode_space;
        req.backends = backends;
        req.decode_system = decode_system;
        req.ttft_ms = a.ttft;
        req.tpot_ms = a.tpot;
        req.target = target;
        req.agg_quant = quant;
        req.prefill_quant = quant;
        req.decode_quant = quant;
        req.database_mode = database_mode;
        req.backend_version = a.backend_version.clone();
        req.free_gpu_memory_fraction = a.free_gpu_memory_fraction;
        req.calibration = calibration;
        req.modes = modes;
        req.enable_wide_ep = a.enable_wide_ep;
        req.replica = ReplicaConfig::defaults(a.enable_wide_ep);
        req.top_n = a.top_n;
        req.strict_sla = a.strict_sla;
        req.gpu_cost_per_hour = a.gpu_cost_per_hour;
        req.rank_by = RankBy::parse(&a.rank_by).on("rank_by")?;
        req.sla_percentile = SlaPercentile::parse(&a.sla_percentile).on("sla_percentile")?;
        req.validate().map_err(InputError::from_core)?;
        Ok(req)
    }
}

/// Every input of an estimate (`cli estimate`, the page's per-row details).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EstimateInput {
    pub model: String,
    pub model_config: Option<String>,
    pub system: String,
    pub decode_system: Option<String>,
    pub backend: String,
    /// agg, disagg or static.
    pub estimate_mode: String,
    pub isl: i64,
    pub osl: i64,
    pub prefix: i64,
    pub batch_size: i64,
    pub tp_size: u32,
    pub pp_size: u32,
    pub attention_dp_size: u32,
    pub moe_tp_size: Option<u32>,
    pub moe_ep_size: Option<u32>,
    pub prefill_tp_size: Option<u32>,
    pub prefill_pp_size: Option<u32>,
    pub prefill_attention_dp_size: Option<u32>,
    pub prefill_moe_tp_size: Option<u32>,
    pub prefill_moe_ep_size: Option<u32>,
    pub prefill_batch_size: i64,
    pub prefill_num_workers: u32,
    pub decode_tp_size: Option<u32>,
    pub decode_pp_size: Option<u32>,
    pub decode_attention_dp_size: Option<u32>,
    pub decode_moe_tp_size: Option<u32>,
    pub decode_moe_ep_size: Option<u32>,
    pub decode_batch_size: i64,
    pub decode_num_workers: u32,
    pub gemm_quant_mode: Option<String>,
    pub moe_quant_mode: Option<String>,
    pub kvcache_quant_mode: Option<String>,
    pub fmha_quant_mode: Option<String>,
    pub comm_quant_mode: Option<String>,
    pub nextn: u32,
    /// Acceptance of the i-th draft token (the one rule: `serve::mtp`).
    pub nextn_accept_rates: Option<Vec<f64>>,
    /// Per-token acceptance r instead: draft i kept with r^i.
    pub nextn_accept_rate: Option<f64>,
    pub database_mode: String,
    pub backend_version: Option<String>,
    pub free_gpu_memory_fraction: Option<f64>,
    /// Price of a GPU-hour (US dollars) for every system, over the system files' own.
    pub gpu_cost_per_hour: Option<f64>,
    #[serde(skip)]
    pub systems_path: Option<PathBuf>,
    #[serde(skip)]
    pub calibration: Option<PathBuf>,
    /// Local files are read only for the CLI, never for a web request.
    #[serde(skip)]
    pub allow_local_files: bool,
}

impl Default for EstimateInput {
    /// The documented defaults (those of `cli estimate`).
    fn default() -> Self {
        EstimateInput {
            model: String::new(),
            model_config: None,
            system: String::new(),
            decode_system: None,
            backend: Backend::Trtllm.name().into(),
            estimate_mode: "agg".into(),
            isl: DEFAULT_ISL.into(),
            osl: DEFAULT_OSL.into(),
            prefix: 0,
            batch_size: 1,
            tp_size: 1,
            pp_size: 1,
            attention_dp_size: 1,
            moe_tp_size: None,
            moe_ep_size: None,
            prefill_tp_size: None,
            prefill_pp_size: None,
            prefill_attention_dp_size: None,
            prefill_moe_tp_size: None,
            prefill_moe_ep_size: None,
            prefill_batch_size: 1,
            prefill_num_workers: 1,
            decode_tp_size: None,
            decode_pp_size: None,
            decode_attention_dp_size: None,
            decode_moe_tp_size: None,
            decode_moe_ep_size: None,
            decode_batch_size: 1,
            decode_num_workers: 1,
            gemm_quant_mode: None,
            moe_quant_mode: None,
            kvcache_quant_mode: None,
            fmha_quant_mode: None,
            comm_quant_mode: None,
            nextn: 0,
            nextn_accept_rates: None,
            nextn_accept_rate: None,
            database_mode: "auto".into(),
            backend_version: None,
            free_gpu_memory_fraction: None,
            gpu_cost_per_hour: None,
            systems_path: None,
            calibration: None,
            allow_local_files: false,
        }
    }
}

impl EstimateInput {
    /// The estimate that explains one row of a search run with `search`: the row's layout,
    /// batch and worker counts with the search's model, workload, MTP acceptance, quantization
    /// and database choices.
    pub fn for_row(search: &DefaultInput, c: &Candidate) -> EstimateInput {
        let s = search;
        let base = EstimateInput {
            model: s.model.clone(),
            model_config: s.model_config.clone(),
            system: s.system.clone(),
            decode_system: s.decode_system.clone(),
            backend: c.backend.name().to_string(),
            isl: s.isl,
            osl: s.osl,
            prefix: s.prefix,
            nextn: s.nextn,
            nextn_accept_rates: Some(s.nextn_accept_rates.clone()),
            database_mode: s.database_mode.clone(),
            backend_version: s.backend_version.clone(),
            free_gpu_memory_fraction: s.free_gpu_memory_fraction,
            gpu_cost_per_hour: s.gpu_cost_per_hour,
            gemm_quant_mode: s.gemm_quant_mode.clone(),
            moe_quant_mode: s.moe_quant_mode.clone(),
            kvcache_quant_mode: s.kvcache_quant_mode.clone(),
            fmha_quant_mode: s.fmha_quant_mode.clone(),
            comm_quant_mode: s.comm_quant_mode.clone(),
            systems_path: s.systems_path.clone(),
            calibration: s.calibration.clone(),
            allow_local_files: s.allow_local_files,
            ..EstimateInput::default()
        };
        // The row → workers rule is the search's own (the simulation of a row uses it too).
        // Batches come from whole-number plans, so the cast is exact.
        let bs = |w: &WorkerSpec| w.batch_size.round() as i64;
        match c.estimate_workers() {
            Some(w) if w.mode == ServeMode::Agg => {
                let (a, p) = (&w.agg, &w.agg.parallel);
                EstimateInput {
                    estimate_mode: "agg".into(),
                    tp_size: p.tp,
                    pp_size: p.pp,
                    attention_dp_size: p.dp,
                    moe_tp_size: Some(p.moe_tp),
                    moe_ep_size: Some(p.moe_ep),
                    batch_size: bs(a),
                    ..base
                }
            }
            Some(w) => {
                let (p, d) = (&w.prefill, &w.decode);
                EstimateInput {
                    estimate_mode: "disagg".into(),
                    prefill_tp_size: Some(p.parallel.tp),
                    prefill_pp_size: Some(p.parallel.pp),
                    prefill_attention_dp_size: Some(p.parallel.dp),
                    prefill_moe_tp_size: Some(p.parallel.moe_tp),
                    prefill_moe_ep_size: Some(p.parallel.moe_ep),
                    prefill_batch_size: bs(p),
                    prefill_num_workers: p.workers,
                    decode_tp_size: Some(d.parallel.tp),
                    decode_pp_size: Some(d.parallel.pp),
                    decode_attention_dp_size: Some(d.parallel.dp),
                    decode_moe_tp_size: Some(d.parallel.moe_tp),
                    decode_moe_ep_size: Some(d.parallel.moe_ep),
                    decode_batch_size: bs(d),
                    decode_num_workers: d.workers,
                    ..base
                }
            }
            None => base,
        }
    }

    /// Acceptance per draft position: the list, or powers of the one rate, or the defaults.
    fn accept_rates(&self) -> InputResult<Vec<f64>> {
        match (&self.nextn_accept_rates, self.nextn_accept_rate) {
            (Some(_), Some(_)) => Err(InputError::new(
                "nextn_accept_rate",
                "give either --nextn-accept-rates or --nextn-accept-rate, not both",
            )),
            (Some(r), None) => Ok(r.clone()),
            (None, Some(r)) => {
                mtp::check(self.nextn, &[r], "nextn_accept_rate").map_err(InputError::from_core)?;
                Ok(mtp::geometric_rates(self.nextn, r))
            }
            (None, None) => Ok(mtp::DEFAULT_ACCEPT_RATES.to_vec()),
        }
    }

    /// The estimate these inputs ask for, validated.
    pub fn estimate_request(&self) -> InputResult<EstimateRequest> {
        let a = self;
        let systems = load_systems(&a.systems_path)?;
        let model = resolve_model(&a.model, a.model_config.as_deref(), a.allow_local_files)?;
        let (system, decode_system) = systems_of(&systems, &a.system, &a.decode_system)?;
        let backend = Backend::parse(&a.backend).on("backend")?;
        let mode = ServeMode::parse(&a.estimate_mode).on("estimate_mode")?;
        let rates = a.accept_rates()?;
        mtp::check(a.nextn, &rates, "nextn_accept_rates").map_err(InputError::from_core)?;
        for (field, v) in [
            ("tp_size", Some(a.tp_size)),
            ("pp_size", Some(a.pp_size)),
            ("attention_dp_size", Some(a.attention_dp_size)),
            ("moe_tp_size", a.moe_tp_size),
            ("moe_ep_size", a.moe_ep_size),
            ("prefill_tp_size", a.prefill_tp_size),
            ("prefill_pp_size", a.prefill_pp_size),
            ("prefill_attention_dp_size", a.prefill_attention_dp_size),
            ("prefill_moe_tp_size", a.prefill_moe_tp_size),
            ("prefill_moe_ep_size", a.prefill_moe_ep_size),
            ("prefill_num_workers", Some(a.prefill_num_workers)),
            ("decode_tp_size", a.decode_tp_size),
            ("decode_pp_size", a.decode_pp_size),
            ("decode_attention_dp_size", a.decode_attention_dp_size),
            ("decode_moe_tp_size", a.decode_moe_tp_size),
            ("decode_moe_ep_size", a.decode_moe_ep_size),
            ("decode_num_workers", Some(a.decode_num_workers)),
        ] {
            if let Some(v) = v.filter(|v| *v == 0 || *v > MAX_PARALLEL_INPUT) {
                return Err(InputError::new(
                    field,
                    format!(
                        "--{} must be at least 1 and at most {MAX_PARALLEL_INPUT}, got {v}",
                        field.replace('_', "-")
                    ),
                ));
            }
        }
        let quant = quant_of(
            &a.gemm_quant_mode,
            &a.moe_quant_mode,
            &a.kvcache_quant_mode,
            &a.fmha_quant_mode,
            &a.comm_quant_mode,
        )?;
        let moe = model.family.is_moe();
        let mk = |tp: u32,
                  pp: u32,
                  dp: u32,
                  etp: Option<u32>,
                  ep: Option<u32>,
                  bs: i64,
                  workers: u32| {
            WorkerSpec {
                parallel: Parallel::with_moe_defaults(moe, tp, pp, dp, etp, ep),
                batch_size: bs as f64,
                workers,
            }
        };
        let agg = mk(
            a.tp_size,
            a.pp_size,
            a.attention_dp_size,
            a.moe_tp_size,
            a.moe_ep_size,
            a.batch_size,
            1,
        );
        let prefill = mk(
            a.prefill_tp_size.unwrap_or(a.tp_size),
            a.prefill_pp_size.unwrap_or(a.pp_size),
            a.prefill_attention_dp_size.unwrap_or(a.attention_dp_size),
            a.prefill_moe_tp_size.or(a.moe_tp_size),
            a.prefill_moe_ep_size.or(a.moe_ep_size),
            a.prefill_batch_size,
            a.prefill_num_workers,
        );
        let decode = mk(
            a.decode_tp_size.unwrap_or(a.tp_size),
            a.decode_pp_size.unwrap_or(a.pp_size),
            a.decode_attention_dp_size.unwrap_or(a.attention_dp_size),
            a.decode_moe_tp_size.or(a.moe_tp_size),
            a.decode_moe_ep_size.or(a.moe_ep_size),
            a.decode_batch_size,
            a.decode_num_workers,
        );
        let calibration = load_calibration(&a.calibration)?;
        let req = EstimateRequest {
            model,
            system,
            decode_system,
            backend,
            mode,
            workload: Workload {
                isl: tokens(a.isl),
                osl: tokens(a.osl),
                prefix: tokens(a.prefix),
                nextn: a.nextn,
                nextn_accepted: mtp::accepted_drafts(a.nextn, &rates),
            },
            quant,
            agg,
            prefill,
            decode,
            database_mode: DatabaseMode::parse(&a.database_mode).on("database_mode")?,
            backend_version: a.backend_version.clone(),
            free_gpu_memory_fraction: a.free_gpu_memory_fraction,
            calibration,
            gpu_cost_per_hour: a.gpu_cost_per_hour,
        };
        req.validate().map_err(InputError::from_core)?;
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qwen() -> DefaultInput {
        DefaultInput {
            model: "QWEN3_32B".into(),
            system: "h200_sxm".into(),
            total_gpus: Some(8),
            ..DefaultInput::default()
        }
    }

    #[test]
    fn defaults_are_the_documented_workload_and_sla() {
        let req = qwen().search_request().unwrap();
        assert_eq!(req.workload.isl, 4000.0);
        assert_eq!(req.workload.osl, 1000.0);
        assert_eq!((req.ttft_ms, req.tpot_ms), (2000.0, 30.0));
        assert_eq!(req.modes, vec![ServeMode::Agg, ServeMode::Disagg]);
        assert_eq!(req.top_n, 5);
        assert_eq!(req.total_gpus, Some(8));
    }

    #[test]
    fn each_bad_value_names_its_field() {
        let cases: Vec<(DefaultInput, &str)> = vec![
            (DefaultInput { isl: 0, ..qwen() }, "isl"),
            (DefaultInput { osl: -5, ..qwen() }, "osl"),
            (
                DefaultInput {
                    prefix: 4000,
                    ..qwen()
                },
                "prefix",
            ),
            (
                DefaultInput {
                    ttft: f64::NAN,
                    ..qwen()
                },
                "ttft",
            ),
            (
                DefaultInput {
                    total_gpus: Some(-2),
                    ..qwen()
                },
                "total_gpus",
            ),
            (
                DefaultInput {
                    total_gpus: None,
                    ..qwen()
                },
                "total_gpus",
            ),
            (DefaultInput { top_n: 0, ..qwen() }, "top_n"),
            (
                DefaultInput {
                    nextn: 99,
                    ..qwen()
                },
                "nextn",
            ),
            (
                DefaultInput {
                    nextn: 1,
                    nextn_accept_rates: vec![1.5],
                    ..qwen()
                },
                "nextn_accept_rates",
            ),
            (
                DefaultInput {
                    free_gpu_memory_fraction: Some(0.0),
                    ..qwen()
                },
                "free_gpu_memory_fraction",
            ),
            (
                DefaultInput {
                    target_request_rate: Some(-1.0),
                    ..qwen()
                },
                "target_request_rate",
            ),
            (
                DefaultInput {
                    sla_percentile: "p95".into(),
                    ..qwen()
                },
                "sla_percentile",
            ),
        ];
        for (input, field) in cases {
            let e = input.search_request().unwrap_err();
            assert_eq!(e.field, Some(field), "{e}");
        }
    }

    #[test]
    fn sla_percentile_reaches_the_search_and_lists_the_accepted_values() {
        let req = DefaultInput {
            sla_percentile: "p90".into(),
            ..qwen()
        }
        .search_request()
        .unwrap();
        assert_eq!(req.sla_percentile, SlaPercentile::P90);
        assert_eq!(
            qwen().search_request().unwrap().sla_percentile,
            SlaPercentile::Mean
        );
        let e = DefaultInput {
            sla_percentile: "p95".into(),
            ..qwen()
        }
        .search_request()
        .unwrap_err();
        assert_eq!(
            e.message,
            "unknown sla-percentile 'p95'; known: mean, p50, p90, p99"
        );
    }

    /// A row's details request and its simulation come from one rule: the estimate built from
    /// the search request and the one the page posts back are the same deployment.
    #[test]
    fn a_rows_estimate_request_is_its_details_request() {
        let input = qwen();
        let req = input.search_request().unwrap();
        let r = crate::search::search(&req, None).unwrap();
        for c in r.modes.iter().flat_map(|m| &m.top) {
            let core = req
                .estimate_request(c)
                .expect("one quantization for every role");
            let page = EstimateInput::for_row(&input, c)
                .estimate_request()
                .unwrap();
            assert_eq!(core.mode, page.mode);
            assert_eq!(core.backend, page.backend);
            assert_eq!(core.quant, page.quant);
            // Only the roles the row uses: an estimate fills the others with its defaults.
            let used = match core.mode {
                ServeMode::Disagg => vec![(core.prefill, page.prefill), (core.decode, page.decode)],
                _ => vec![(core.agg, page.agg)],
            };
            for (a, b) in used {
                assert_eq!(a, b, "{}", c.layout_label());
            }
            assert_eq!(core.workload, page.workload);
        }
    }

    #[test]
    fn cli_and_core_share_one_wording() {
        // The input layer and the library's own guard give the same message.
        let input = DefaultInput {
            tpot: -1.0,
            ..qwen()
        };
        let e = input.search_request().unwrap_err();
        let mut req = qwen().search_request().unwrap();
        req.tpot_ms = -1.0;
        assert_eq!(e.message, req.validate().unwrap_err().to_string());
    }

    /// Disagg on two systems at their own prices: two 1-GPU prefill workers at $2, one 2-GPU
    /// decode worker at $5 = $14 an hour, over the estimate's own token rates.
    #[test]
    fn an_estimate_prices_each_worker_on_its_system() {
        let input = EstimateInput {
            model: "QWEN3_32B".into(),
            system: "h200_sxm".into(),
            decode_system: Some("b200_sxm".into()),
            estimate_mode: "disagg".into(),
            prefill_num_workers: 2,
            decode_tp_size: Some(2),
            decode_batch_size: 16,
            database_mode: "empirical".into(),
            ..EstimateInput::default()
        };
        let mut req = input.estimate_request().unwrap();
        req.system.misc.gpu_cost_per_hour = Some(2.0);
        let d = req.decode_system.as_mut().unwrap();
        d.misc.gpu_cost_per_hour = Some(5.0);
        let r = crate::estimate::estimate(&req).unwrap();
        let c = r.cost.expect("both systems priced");
        assert_eq!(c.usd_per_hour, 14.0);
        let want = 14.0 / (r.tokens_per_s * 3600.0) * 1e6;
        assert!((c.usd_per_m_output_tokens / want - 1.0).abs() < 1e-12);
        let want = 14.0 / (r.request_rate * 4000.0 * 3600.0) * 1e6;
        assert!((c.usd_per_m_input_tokens / want - 1.0).abs() < 1e-12);
        // The override prices every GPU alike: 4 GPUs at $3.
        req.gpu_cost_per_hour = Some(3.0);
        let r2 = crate::estimate::estimate(&req).unwrap();
        assert_eq!(r2.cost.unwrap().usd_per_hour, 12.0);
        // A system without a price: no cost, rather than a partial one.
        req.gpu_cost_per_hour = None;
        req.decode_system.as_mut().unwrap().misc.gpu_cost_per_hour = None;
        assert_eq!(crate::estimate::estimate(&req).unwrap().cost, None);
        // A negative price is the input's error.
        let bad = EstimateInput {
            gpu_cost_per_hour: Some(-1.0),
            ..input
        };
        assert_eq!(
            bad.estimate_request().unwrap_err().field,
            Some("gpu_cost_per_hour")
        );
    }

    #[test]
    fn cost_is_the_price_of_the_gpus_used_over_the_tokens() {
        let input = DefaultInput {
            gpu_cost_per_hour: Some(2.0),
            serving_mode: "agg".into(),
            ..qwen()
        };
        let r = crate::search::search(&input.search_request().unwrap(), None).unwrap();
        let top = &r.modes[0].top;
        assert!(!top.is_empty());
        for c in top {
            let cost = c.cost.expect("priced");
            assert_eq!(cost.usd_per_hour, 2.0 * f64::from(c.total_gpus_used));
            let out_per_h = c.tokens_per_s_per_gpu * f64::from(c.total_gpus) * 3600.0;
            let want = cost.usd_per_hour / out_per_h * 1e6;
            assert!((cost.usd_per_m_output_tokens / want - 1.0).abs() < 1e-12);
            let in_per_h = c.request_rate * 4000.0 * 3600.0;
            let want = cost.usd_per_hour / in_per_h * 1e6;
            assert!((cost.usd_per_m_input_tokens / want - 1.0).abs() < 1e-12);
        }
        // Unpriced: no cost anywhere, and the JSON has no cost key.
        let r = crate::search::search(&qwen().search_request().unwrap(), None).unwrap();
        assert!(r
            .modes
            .iter()
            .flat_map(|m| &m.top)
            .all(|c| c.cost.is_none()));
        let j = serde_json::to_string(&r).unwrap();
        assert!(!j.contains("\"cost\"") && !j.contains("rank_by"));
    }

    #[test]
    fn rank_by_cost_orders_by_dollars_and_needs_a_price() {
        let input = DefaultInput {
            rank_by: "cost".into(),
            ..qwen()
        };
        let e = input.search_request().unwrap_err();
        assert_eq!(e.field, Some("rank_by"), "{e}");
        assert!(e.message.contains("--gpu-cost-per-hour"), "{e}");
        let bad = DefaultInput {
            gpu_cost_per_hour: Some(-1.0),
            ..qwen()
        };
        assert_eq!(
            bad.search_request().unwrap_err().field,
            Some("gpu_cost_per_hour")
        );
        let input = DefaultInput {
            gpu_cost_per_hour: Some(2.0),
            ..input
        };
        let r = crate::search::search(&input.search_request().unwrap(), None).unwrap();
        for m in &r.modes {
            let v: Vec<f64> = m
                .top
                .iter()
                .map(|c| c.cost.unwrap().usd_per_m_output_tokens)
                .collect();
            assert!(v.windows(2).all(|w| w[0] <= w[1]), "{v:?}");
        }
        let best = r.best.unwrap().cost.unwrap().usd_per_m_output_tokens;
        let mut firsts = r.modes.iter().filter_map(|m| m.top.first());
        assert!(firsts.all(|c| c.cost.unwrap().usd_per_m_output_tokens >= best));
    }

    #[test]
    fn progress_covers_the_xpyd_composition() {
        let input = DefaultInput {
            serving_mode: "disagg".into(),
            ..qwen()
        };
        let req = input.search_request().unwrap();
        let seen = std::cell::RefCell::new(Vec::new());
        crate::search::search(&req, Some(&|d, t| seen.borrow_mut().push((d, t)))).unwrap();
        let seen = seen.into_inner();
        let &(last, total) = seen.last().unwrap();
        assert_eq!(last, total);
        assert!(seen
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 == w[1].1));
        // Most units are prefill × decode pairs, reported while the pairs are composed: the
        // bar moves between its half and its end.
        let mid = seen.iter().filter(|(d, _)| *d > total / 2 && *d < total);
        assert!(mid.count() >= 2, "{seen:?}");
    }

    #[test]
    fn estimate_rates_from_one_rate_compound() {
        let e = EstimateInput {
            model: "QWEN3_32B".into(),
            system: "h200_sxm".into(),
            nextn: 2,
            nextn_accept_rate: Some(0.5),
            ..EstimateInput::default()
        };
        let req = e.estimate_request().unwrap();
        assert_eq!(req.workload.nextn_accepted, 0.5 + 0.25);
        let both = EstimateInput {
            nextn_accept_rates: Some(vec![0.5]),
            ..e
        };
        assert_eq!(
            both.estimate_request().unwrap_err().field,
            Some("nextn_accept_rate")
        );
    }

    #[test]
    fn estimate_bad_sizes_name_their_field() {
        let base = EstimateInput {
            model: "QWEN3_32B".into(),
            system: "h200_sxm".into(),
            ..EstimateInput::default()
        };
        let e = EstimateInput {
            decode_tp_size: Some(0),
            ..base.clone()
        }
        .estimate_request()
        .unwrap_err();
        assert_eq!(e.field, Some("decode_tp_size"));
        let e = EstimateInput {
            batch_size: 0,
            ..base
        }
        .estimate_request()
        .unwrap_err();
        assert_eq!(e.field, Some("batch_size"), "{e}");
    }
}
