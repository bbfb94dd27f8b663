//! Deployment search (docs/model.md §8): enumerate parallel layouts and batch sizes for aggregated
//! workers and for prefill/decode workers, compose xPyD replicas, keep what meets the SLA, draw
//! the Pareto frontier, rank, compare agg with disagg, and size the cluster for a target load.
//!
//! Every point is evaluated once; per-target views are filters over the same points. Unlike the
//! reference tool there are no top-k truncations before the frontier: the search is fast enough
//! to keep every evaluated point.
pub mod pareto;
pub mod percentile;
pub mod space;

use crate::backend::Backend;
use crate::error::{AicfgError, Result};
use crate::estimate::{
    resolve_quant, resolve_quant_explained, EstimateRequest, QuantOrigin, QuantRequest, WorkerSpec,
};
use crate::hardware::SystemSpec;
use crate::limits::{self, Budget, SearchLimits};
use crate::model::graph::Parallel;
use crate::model::ModelSpec;
use crate::perf::source::DeploymentSources;
use crate::perf::EmpiricalParams;
use crate::quant::QuantConfig;
use crate::serve::{
    self, compose, decode_side, kv_transfer_ms, prefill_side, ComposeInput, DecodeSide,
    PrefillSide, ServeMode, Worker, Workload,
};
use crate::DatabaseMode;
pub use percentile::{PercentileRow, SlaPercentile};
use serde::Serialize;
pub use space::{ParallelSpace, ReplicaConfig, Role};

/// Load the cluster must carry (recommend mode).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadTarget {
    /// Requests per second.
    RequestRate(f64),
    /// Requests in flight at once.
    Concurrency(f64),
}

/// What orders the top-N tables and picks the best deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RankBy {
    /// Output tokens/s per GPU (recommend mode: fewest GPUs).
    #[default]
    Throughput,
    /// Dollars per million output tokens (recommend mode: cheapest cluster per hour).
    Cost,
}

impl RankBy {
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "throughput" => Ok(RankBy::Throughput),
            "cost" => Ok(RankBy::Cost),
            _ => Err(AicfgError::Unknown {
                what: "rank-by",
                given: s.to_string(),
                known: "throughput, cost".into(),
            }),
        }
    }

    pub fn is_throughput(&self) -> bool {
        *self == RankBy::Throughput
    }
}

pub use crate::cost::Cost;

/// Knobs of `advanced_tuning_config`: latency multipliers and batch caps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tuning {
    /// Multiplies every prefill latency (TTFT of agg points, prefill batch time of disagg).
    pub prefill_latency_scale: f64,
    /// Multiplies every decode latency (TPOT).
    pub decode_latency_scale: f64,
    pub agg_max_batch_size: u32,
    pub prefill_max_batch_size: u32,
    pub decode_max_batch_size: u32,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            prefill_latency_scale: 1.0,
            decode_latency_scale: 1.0,
            agg_max_batch_size: 512,
            prefill_max_batch_size: 1,
            decode_max_batch_size: 512,
        }
    }
}

/// A fully resolved search: what `cli default`, experiment files and the web page all run.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub model: ModelSpec,
    pub system: SystemSpec,
    /// Hardware of the decode workers (disagg); `None` = `system`.
    pub decode_system: Option<SystemSpec>,
    pub backends: Vec<Backend>,
    pub workload: Workload,
    pub ttft_ms: f64,
    pub tpot_ms: f64,
    /// GPUs of the cluster; `None` in recommend mode (size the cluster for `target`).
    pub total_gpus: Option<u32>,
    pub target: Option<LoadTarget>,
    pub agg_quant: QuantRequest,
    pub prefill_quant: QuantRequest,
    pub decode_quant: QuantRequest,
    pub database_mode: DatabaseMode,
    /// Measured-table version (silicon/hybrid); `None` = the newest installed.
    pub backend_version: Option<String>,
    pub free_gpu_memory_fraction: Option<f64>,
    pub calibration: Option<EmpiricalParams>,
    pub modes: Vec<ServeMode>,
    /// Parallel lists per role; `None` = the defaults for model, system and backend.
    pub agg_space: Option<ParallelSpace>,
    pub prefill_space: Option<ParallelSpace>,
    pub decode_space: Option<ParallelSpace>,
    pub replica: ReplicaConfig,
    pub tuning: Tuning,
    pub enable_wide_ep: bool,
    pub top_n: usize,
    /// Draw the frontier from points that meet TPOT too (not only TTFT).
    pub strict_sla: bool,
    /// Caps on the lists and the work of this search.
    pub limits: SearchLimits,
    /// Price of a GPU-hour (US dollars) for every system, over the systems' own
    /// `misc.gpu_cost_per_hour`.
    pub gpu_cost_per_hour: Option<f64>,
    pub rank_by: RankBy,
    /// Statistic the SLA applies to: the closed-form means, or a simulated percentile
    /// (`percentile.rs`).
    pub sla_percentile: SlaPercentile,
}

/// Longest top-N list (rows per table are shown and serialized in full).
pub const MAX_TOP_N: usize = 1000;

/// Largest worker considered when the cluster size is open (recommend mode).
pub const RECOMMEND_MAX_GPUS: u32 = 512;

/// The one default workload and SLA of `cli default`, `cli exp` and the webapp: 4000 prompt and
/// 1000 output tokens, TTFT ≤ 2000 ms, TPOT ≤ 30 ms (≈ 33 tokens/s per user, a chat pace).
pub const DEFAULT_ISL: u32 = 4000;
pub const DEFAULT_OSL: u32 = 1000;
pub const DEFAULT_TTFT_MS: f64 = 2000.0;
pub const DEFAULT_TPOT_MS: f64 = 30.0;

impl SearchRequest {
    /// The defaults of `cli default`: agg and disagg, every backend list default, top 5.
    pub fn new(
        model: ModelSpec,
        system: SystemSpec,
        backend: Backend,
        workload: Workload,
        total_gpus: Option<u32>,
    ) -> Self {
        SearchRequest {
            model,
            system,
            decode_system: None,
            backends: vec![backend],
            workload,
            ttft_ms: DEFAULT_TTFT_MS,
            tpot_ms: DEFAULT_TPOT_MS,
            total_gpus,
            target: None,
            agg_quant: QuantRequest::default(),
            prefill_quant: QuantRequest::default(),
            decode_quant: QuantRequest::default(),
            database_mode: DatabaseMode::Empirical,
            backend_version: None,
            free_gpu_memory_fraction: None,
            calibration: None,
            modes: vec![ServeMode::Agg, ServeMode::Disagg],
            agg_space: None,
            prefill_space: None,
            decode_space: None,
            replica: ReplicaConfig::defaults(false),
            tuning: Tuning::default(),
            enable_wide_ep: false,
            top_n: 5,
            strict_sla: false,
            limits: SearchLimits::default(),
            gpu_cost_per_hour: None,
            rank_by: RankBy::Throughput,
            sla_percentile: SlaPercentile::Mean,
        }
    }

    /// Price of a GPU-hour of `system`: the override, else the system's own.
    pub fn gpu_price(&self, system: &SystemSpec) -> Option<f64> {
        crate::cost::gpu_price(self.gpu_cost_per_hour, system)
    }

    /// Hardware of the decode workers.
    pub fn decode_sys(&self) -> &SystemSpec {
        self.decode_system.as_ref().unwrap_or(&self.system)
    }

    /// The parallel lists `role` searches with `backend`: the given lists, else the defaults.
    pub fn space(&self, role: Role, backend: Backend) -> ParallelSpace {
        let given = match role {
            Role::Agg => &self.agg_space,
            Role::Prefill => &self.prefill_space,
            Role::Decode => &self.decode_space,
        };
        let sys = if role == Role::Decode {
            self.decode_sys()
        } else {
            &self.system
        };
        given.clone().unwrap_or_else(|| {
            ParallelSpace::defaults(&self.model, sys, backend, role, self.enable_wide_ep)
        })
    }

    /// The lists `role` searches, deduplicated and within the limits (errors name the list).
    pub fn checked_space(&self, role: Role, backend: Backend) -> Result<ParallelSpace> {
        self.space(role, backend).normalized(role, &self.limits)
    }

    /// The estimate that explains row `c` of this search (what its simulation replays): the
    /// row's workers ([`Candidate::estimate_workers`]) with the search's model, systems,
    /// workload, quantization, op source and prices. `None` when the row has no workers or its
    /// prefill and decode workers ask for different quantization (an experiment can), which
    /// one estimate request cannot carry. The search's latency correction scales are not part
    /// of an estimate.
    pub fn estimate_request(&self, c: &Candidate) -> Option<EstimateRequest> {
        let w = c.estimate_workers()?;
        let quant = match w.mode {
            ServeMode::Disagg if self.prefill_quant != self.decode_quant => return None,
            ServeMode::Disagg => self.prefill_quant,
            _ => self.agg_quant,
        };
        Some(EstimateRequest {
            model: self.model.clone(),
            system: self.system.clone(),
            decode_system: self.decode_system.clone(),
            backend: c.backend,
            mode: w.mode,
            workload: self.workload,
            quant,
            agg: w.agg,
            prefill: w.prefill,
            decode: w.decode,
            database_mode: self.database_mode,
            backend_version: self.backend_version.clone(),
            free_gpu_memory_fraction: self.free_gpu_memory_fraction,
            calibration: self.calibration.clone(),
            gpu_cost_per_hour: self.gpu_cost_per_hour,
        })
    }

    fn max_worker_gpus(&self) -> u32 {
        self.total_gpus.unwrap_or(RECOMMEND_MAX_GPUS)
    }

    /// The one check of a search's inputs (the input spec runs it before queueing a search,
    /// the search again as the library's guard).
    pub fn validate(&self) -> Result<()> {
        let w = &self.workload;
        let positive = |what: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(AicfgError::invalid(
                    what,
                    format!("must be positive, got {v}"),
                ))
            }
        };
        w.validate()?;
        for (what, v) in [("ttft", self.ttft_ms), ("tpot", self.tpot_ms)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(AicfgError::invalid(
                    what,
                    format!("must be a positive number of milliseconds, got {v}"),
                ));
            }
        }
        if self.total_gpus == Some(0) {
            return Err(AicfgError::invalid(
                "total_gpus",
                "must be at least 1".to_string(),
            ));
        }
        if let Some(g) = self.total_gpus.filter(|&g| g > limits::MAX_TOTAL_GPUS) {
            return Err(AicfgError::invalid(
                "total_gpus",
                format!(
                    "{g} is more than the {} GPUs a search plans for",
                    limits::MAX_TOTAL_GPUS
                ),
            ));
        }
        if self.total_gpus.is_none() && self.target.is_none() {
            return Err(AicfgError::invalid(
                "total_gpus",
                "--total_gpus is required (or give --target-request-rate / --target-concurrency to find the fewest GPUs for that load)".to_string(),
            ));
        }
        match self.target {
            Some(LoadTarget::RequestRate(r)) => positive("target request rate", r)?,
            Some(LoadTarget::Concurrency(c)) => positive("target concurrency", c)?,
            None => {}
        }
        if self.backends.is_empty() || self.modes.is_empty() {
            return Err(AicfgError::invalid(
                "search",
                "needs at least one backend and one serving mode".to_string(),
            ));
        }
        if self.top_n == 0 || self.top_n > MAX_TOP_N {
            return Err(AicfgError::invalid(
                "top_n",
                format!("must be between 1 and {MAX_TOP_N}, got {}", self.top_n),
            ));
        }
        let t = &self.tuning;
        positive("prefill latency correction scale", t.prefill_latency_scale)?;
        positive("decode latency correction scale", t.decode_latency_scale)?;
        let cap = |what: &str, v: u32, max: u32| {
            if v > max {
                Err(AicfgError::Limit {
                    what: what.to_string(),
                    detail: format!("{v} is larger than the {max} allowed"),
                })
            } else {
                Ok(())
            }
        };
        cap(
            "prefill_max_batch_size",
            t.prefill_max_batch_size,
            limits::MAX_PREFILL_BATCH,
        )?;
        cap(
            "decode_max_batch_size",
            t.decode_max_batch_size,
            limits::MAX_BATCH,
        )?;
        cap(
            "agg_max_batch_size",
            t.agg_max_batch_size,
            limits::MAX_BATCH,
        )?;
        let r = &self.replica;
        cap(
            "max_prefill_worker",
            r.max_prefill_worker,
            limits::MAX_WORKERS_PER_REPLICA,
        )?;
        cap(
            "max_decode_worker",
            r.max_decode_worker,
            limits::MAX_WORKERS_PER_REPLICA,
        )?;
        cap(
            "max_gpu_per_replica",
            r.max_gpu_per_replica,
            limits::MAX_PARALLEL,
        )?;
        limits::normalize_list("num_gpu_per_replica", &r.num_gpu_per_replica, &self.limits)?;
        crate::cost::check_price(self.gpu_cost_per_hour)?;
        if self.rank_by == RankBy::Cost {
            let mut systems = vec![&self.system];
            if self.modes.contains(&ServeMode::Disagg) {
                systems.push(self.decode_sys());
            }
            if let Some(s) = systems.iter().find(|s| self.gpu_price(s).is_none()) {
                return Err(AicfgError::invalid(
                    "rank_by",
                    format!(
                        "ranking by cost needs the price of a GPU-hour of {}: give --gpu-cost-per-hour, or set misc.gpu_cost_per_hour in its system file",
                        s.name
                    ),
                ));
            }
        }
        crate::memory::check_fraction(self.free_gpu_memory_fraction)
    }
}

/// One worker kind inside a deployment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerPlan {
    pub system: String,
    pub parallel: Parallel,
    /// `tp4pp1` (dense) or `tp1pp1dp8etp1ep8` (MoE), as in the reference reports.
    pub parallel_label: String,
    pub gpus: u32,
    /// Requests per attention-DP rank (the framework's max batch size).
    pub batch_size: u32,
    /// Workers of this kind in one replica.
    pub workers: u32,
    /// Token budget of one scheduler step the prediction assumed.
    pub max_num_tokens: u32,
    pub memory_gib: f64,
    /// GPU-memory fraction the memory model used (`--free-gpu-memory-fraction`, else the
    /// backend's default for this layout; SGLang's depends on the GPU and the layout).
    pub memory_fraction: f64,
    pub quant: QuantConfig,
}

/// A row's workers as an estimate takes them (see [`Candidate::estimate_workers`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowWorkers {
    pub mode: ServeMode,
    pub agg: WorkerSpec,
    pub prefill: WorkerSpec,
    pub decode: WorkerSpec,
}

/// One deployment the search evaluated, with cluster-level figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub mode: ServeMode,
    pub backend: Backend,
    pub ttft_ms: f64,
    pub tpot_ms: f64,
    pub request_latency_ms: f64,
    /// Output tokens/s of the cluster divided by its GPUs (idle leftover GPUs count).
    pub tokens_per_s_per_gpu: f64,
    pub tokens_per_s_per_user: f64,
    /// Output tokens/s per GPU of one replica.
    pub replica_tokens_per_s_per_gpu: f64,
    /// Requests/s of one replica.
    pub replica_request_rate: f64,
    pub request_rate: f64,
    pub concurrency_per_replica: f64,
    pub concurrency: f64,
    pub replicas: u32,
    pub gpus_per_replica: u32,
    pub total_gpus_used: u32,
    /// GPUs of the cluster (recommend mode: GPUs needed).
    pub total_gpus: u32,
    pub meets_sla: bool,
    /// Recommend mode with a GPU ceiling: share of the target load served.
    pub load_served_pct: Option<f64>,
    pub agg: Option<WorkerPlan>,
    pub prefill: Option<WorkerPlan>,
    pub decode: Option<WorkerPlan>,
    /// Present when every system used has a GPU price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
    /// Layouts of the top list folded into this row: the same deployment with another split of
    /// the experts (moe_tp × moe_ep) and exactly the same numbers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub same_as: Vec<String>,
}

impl Candidate {
    /// The one rule from a row to an estimate's workers, behind both a row's details request
    /// (`input::EstimateInput::for_row`) and its simulation ([`SearchRequest::estimate_request`]):
    /// agg → the agg worker (its batch is per attention-DP rank); disagg → prefill and decode
    /// workers with their batches and worker counts per replica. Roles a row does not use keep
    /// an estimate's defaults (one GPU, batch 1, one worker). `None` for a row without workers.
    pub fn estimate_workers(&self) -> Option<RowWorkers> {
        let spec = |w: &WorkerPlan| WorkerSpec {
            parallel: w.parallel,
            batch_size: f64::from(w.batch_size),
            workers: w.workers,
        };
        let unused = WorkerSpec {
            parallel: Parallel::single(),
            batch_size: 1.0,
            workers: 1,
        };
        match (&self.agg, &self.prefill, &self.decode) {
            (Some(a), _, _) => Some(RowWorkers {
                mode: ServeMode::Agg,
                agg: spec(a),
                prefill: unused,
                decode: unused,
            }),
            (None, Some(p), Some(d)) => Some(RowWorkers {
                mode: ServeMode::Disagg,
                agg: unused,
                prefill: spec(p),
                decode: spec(d),
            }),
            _ => None,
        }
    }

    /// The deployment without its expert split, with its numbers to 6 significant digits (the
    /// same sums taken in another order differ in the last bits): two candidates with equal keys
    /// differ only in moe_tp × moe_ep and predict the same.
    fn numbers_key(&self) -> String {
        let w = |w: &Option<WorkerPlan>| {
            w.as_ref().map_or(String::new(), |w| {
                let p = &w.parallel;
                format!(
                    "{}x{}x{}/{}/{}/{}",
                    p.tp, p.pp, p.dp, w.gpus, w.workers, w.batch_size
                )
            })
        };
        let nums: Vec<String> = [
            self.ttft_ms,
            self.tpot_ms,
            self.tokens_per_s_per_gpu,
            self.tokens_per_s_per_user,
            self.replica_tokens_per_s_per_gpu,
            self.request_rate,
            self.concurrency,
        ]
        .iter()
        .map(|x| format!("{x:.5e}"))
        .collect();
        format!(
            "{}|{}|{}|{}|{}|{}",
            self.backend.name(),
            w(&self.agg),
            w(&self.prefill),
            w(&self.decode),
            self.replicas,
            nums.join(",")
        )
    }

    /// The parallel labels of the row: agg, or `prefill + decode`.
    pub fn layout_label(&self) -> String {
        let labels: Vec<&str> = [&self.agg, &self.prefill, &self.decode]
            .into_iter()
            .flatten()
            .map(|w| w.parallel_label.as_str())
            .collect();
        labels.join(" + ")
    }

    /// Dollars per million output tokens (infinite when unpriced).
    fn usd_per_m_output(&self) -> f64 {
        self.cost
            .map_or(f64::INFINITY, |c| c.usd_per_m_output_tokens)
    }
    fn usd_per_hour(&self) -> f64 {
        self.cost.map_or(f64::INFINITY, |c| c.usd_per_hour)
    }

    /// The layout a top-N table shows once: agg parallel, or prefill + decode parallel.
    pub fn layout_key(&self) -> String {
        let l = |w: &Option<WorkerPlan>| {
            w.as_ref()
                .map_or("", |w| w.parallel_label.as_str())
                .to_string()
        };
        format!(
            "{}|{}|{}|{}",
            self.backend.name(),
            l(&self.agg),
            l(&self.prefill),
            l(&self.decode)
        )
    }
    fn sla_excess(&self, ttft: f64, tpot: f64) -> f64 {
        (self.ttft_ms / ttft).max(self.tpot_ms / tpot)
    }
}

/// Results of one serving mode (all backends merged).
#[derive(Debug, Clone, Serialize)]
pub struct ModeResult {
    pub mode: ServeMode,
    /// Deployments evaluated (agg points, or prefill × decode × worker-count compositions).
    pub evaluated: usize,
    /// Points that met the TTFT target (the frontier's input).
    pub candidates: usize,
    pub pareto: Vec<Candidate>,
    /// Best per distinct layout, meeting the SLA; the closest points when none does.
    pub top: Vec<Candidate>,
    pub sla_met: bool,
    #[serde(skip)]
    pub all: Vec<Candidate>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub winner: ServeMode,
    pub loser: ServeMode,
    /// Winner's tokens/s/gpu over the loser's (recommend mode: loser's GPUs over winner's).
    pub ratio: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct QuantSummary {
    pub backend: Backend,
    pub role: Role,
    pub system: String,
    pub quant: QuantConfig,
    /// Where each format came from (flag, checkpoint, derived, default, downgraded).
    pub origin: QuantOrigin,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    pub model: String,
    pub is_moe: bool,
    pub system: String,
    pub decode_system: String,
    pub backends: Vec<Backend>,
    pub database_mode: &'static str,
    pub workload: Workload,
    pub ttft_ms: f64,
    pub tpot_ms: f64,
    pub total_gpus: Option<u32>,
    pub target: Option<LoadTarget>,
    pub modes: Vec<ModeResult>,
    pub best: Option<Candidate>,
    pub comparison: Option<Comparison>,
    pub quant: Vec<QuantSummary>,
    pub notes: Vec<String>,
    #[serde(skip_serializing_if = "RankBy::is_throughput")]
    pub rank_by: RankBy,
    #[serde(skip_serializing_if = "SlaPercentile::is_mean")]
    pub sla_percentile: SlaPercentile,
    /// Simulated latency percentiles of each mode's top rows (`percentile.rs`).
    pub percentiles: Vec<PercentileRow>,
}

impl SearchResult {
    pub fn mode(&self, m: ServeMode) -> Option<&ModeResult> {
        self.modes.iter().find(|r| r.mode == m)
    }
}

/// A backend with its agg, prefill and decode layouts.
type BackendLayouts = (Backend, Vec<Parallel>, Vec<Parallel>, Vec<Parallel>);

/// Progress callback: (units done, units total).
pub type Progress<'a> = &'a dyn Fn(usize, usize);

/// Run the search.
pub fn search(req: &SearchRequest, progress: Option<Progress>) -> Result<SearchResult> {
    search_with(req, progress, None)
}

/// Run the search, stopping with [`AicfgError::Cancelled`] soon after `cancel` is set.
pub fn search_with(
    req: &SearchRequest,
    progress: Option<Progress>,
    cancel: Option<&std::sync::atomic::AtomicBool>,
) -> Result<SearchResult> {
    req.validate()?;
    let budget = Budget::new(req.limits.evaluations, cancel);
    let oversize = std::cell::Cell::new(0usize);
    let params = req
        .calibration
        .clone()
        .unwrap_or_else(EmpiricalParams::embedded);
    let w = req.workload;
    let mut notes = crate::admit::check(
        &req.model,
        &[&req.system, req.decode_sys()],
        &req.backends,
        &req.workload,
    )?;
    let mut quant = Vec::new();
    let mut agg_all = Vec::new();
    let mut dis_all = Vec::new();
    let mut agg_eval = 0;
    let mut dis_eval = 0;
    let do_agg = req.modes.contains(&ServeMode::Agg);
    let do_dis = req.modes.contains(&ServeMode::Disagg);

    // Work units for progress: one per worker layout, and one per prefill × decode layout pair
    // for the xPyD composition (where a disagg search spends its time).
    let layouts: Vec<BackendLayouts> = req
        .backends
        .iter()
        .map(|&b| {
            let g = req.max_worker_gpus();
            let a = if do_agg {
                req.checked_space(Role::Agg, b)?.enumerate(&req.model, b, g)
            } else {
                Vec::new()
            };
            let (p, d) = if do_dis {
                (
                    req.checked_space(Role::Prefill, b)?
                        .enumerate(&req.model, b, g),
                    req.checked_space(Role::Decode, b)?
                        .enumerate(&req.model, b, g),
                )
            } else {
                (Vec::new(), Vec::new())
            };
            Ok((b, a, p, d))
        })
        .collect::<Result<_>>()?;
    let total_units: usize = layouts
        .iter()
        .map(|(_, a, p, d)| a.len() + p.len() + d.len() + p.len().saturating_mul(d.len()))
        .sum();
    let mut done = 0usize;
    let mut effective_mode: Option<DatabaseMode> = None;
    let mut tick = |n: usize| {
        done += n;
        if let Some(f) = progress {
            f(done, total_units);
        }
    };

    for (backend, agg_layouts, pre_layouts, dec_layouts) in &layouts {
        let backend = *backend;
        let version = req.backend_version.as_deref();
        let sources = DeploymentSources::open(
            req.database_mode,
            &params,
            backend,
            &req.system,
            // Decode workers on other hardware read that system's tables.
            do_dis.then(|| req.decode_sys()),
            version,
        )?;
        if effective_mode.is_none() {
            effective_mode = Some(sources.mode());
        }
        let ctx = Ctx {
            req,
            backend,
            sources: &sources,
            budget: &budget,
            oversize: &oversize,
        };
        if do_agg {
            let (q, origin) =
                resolve_quant_explained(&req.model, &req.system, &req.agg_quant, backend)?;
            quant.push(QuantSummary {
                backend,
                role: Role::Agg,
                system: req.system.name.clone(),
                quant: q,
                origin,
            });
            for p in agg_layouts {
                agg_eval += ctx.agg_layout(p, &q, &mut agg_all)?;
                tick(1);
            }
        }
        if do_dis {
            let (qp, op) =
                resolve_quant_explained(&req.model, &req.system, &req.prefill_quant, backend)?;
            let (qd, od) =
                resolve_quant_explained(&req.model, req.decode_sys(), &req.decode_quant, backend)?;
            quant.push(QuantSummary {
                backend,
                role: Role::Prefill,
                system: req.system.name.clone(),
                quant: qp,
                origin: op,
            });
            quant.push(QuantSummary {
                backend,
                role: Role::Decode,
                system: req.decode_sys().name.clone(),
                quant: qd,
                origin: od,
            });
            dis_eval += ctx.disagg(pre_layouts, dec_layouts, &qp, &qd, &mut dis_all, &mut tick)?;
        }
        // SILICON: a point the tables cannot price fails the search, as it fails an estimate.
        sources.check()?;
    }
    for d in quant.iter().flat_map(|q| q.origin.downgrades()) {
        let n = format!("quantization {d}");
        if !notes.contains(&n) {
            notes.push(n);
        }
    }
    if total_units == 0 {
        notes.push(format!(
            "no parallel layout of {} fits the given lists within {} GPUs",
            req.model.name,
            req.max_worker_gpus()
        ));
    }

    if agg_all.is_empty() && dis_all.is_empty() {
        if oversize.get() > 0 {
            return Err(AicfgError::Limit {
                what: "target load".into(),
                detail: format!(
                    "every deployment would need more than {} GPUs to carry it; lower the target",
                    limits::MAX_TOTAL_GPUS
                ),
            });
        }
        return Err(no_fit(req));
    }
    let mut modes = Vec::new();
    let mut orders = Vec::new();
    for (on, mode, eval, all) in [
        (do_agg, ServeMode::Agg, agg_eval, agg_all),
        (do_dis, ServeMode::Disagg, dis_eval, dis_all),
    ] {
        if on {
            let (m, order) = finish_mode(req, mode, eval, all);
            modes.push(m);
            orders.push(order);
        }
    }
    // The closed form has screened everything; the simulator adds the tails of the top rows.
    let pct = percentile::run(req, &params, &budget, &mut modes, &orders)?;
    notes.extend(pct.notes);
    let (best, comparison) = pick_best(req, &modes);
    for m in &modes {
        if m.all.is_empty() {
            notes.push(format!(
                "{}: no deployment fits in GPU memory (weights alone exceed it, or no layout is valid)",
                mode_name(m.mode)
            ));
        } else if !m.sla_met && !pct.missed.contains(mode_name(m.mode)) {
            // (A mode that misses only the percentile SLA has its own note.)
            notes.push(format!(
                "{}: no configuration meets TTFT ≤ {} ms and TPOT ≤ {} ms; the closest are shown",
                mode_name(m.mode),
                req.ttft_ms,
                req.tpot_ms
            ));
        }
    }
    Ok(SearchResult {
        model: req.model.name.clone(),
        is_moe: req.model.family.is_moe(),
        system: req.system.name.clone(),
        decode_system: req.decode_sys().name.clone(),
        backends: req.backends.clone(),
        database_mode: effective_mode.unwrap_or(req.database_mode).name(),
        workload: w,
        ttft_ms: req.ttft_ms,
        tpot_ms: req.tpot_ms,
        total_gpus: req.total_gpus,
        target: req.target,
        modes,
        best,
        comparison,
        quant,
        notes,
        rank_by: req.rank_by,
        sla_percentile: req.sla_percentile,
        percentiles: pct.rows,
    })
}

/// Nothing fits: say how much memory the weights need against what the GPUs give.
fn no_fit(req: &SearchRequest) -> AicfgError {
    let q = resolve_quant(&req.model, &req.system, &req.agg_quant, req.backends[0]).ok();
    let weights = q
        .and_then(|q| {
            crate::model::graph::WorkerGraph::build(&req.model, &Parallel::single(), &q).ok()
        })
        .map(|g| g.weight_bytes_per_gpu() / crate::hardware::GIB);
    let cap = req.system.capacity_gib();
    let max = req.max_worker_gpus();
    let need = weights.map_or(String::new(), |w| {
        format!(
            "; its weights alone need {w:.0} GiB, about {} × {} ({cap:.0} GiB each) before any KV cache",
            (w / (cap * 0.85)).ceil().max(1.0),
            req.system.name
        )
    });
    AicfgError::invalid(
        "total_gpus",
        format!(
            "no deployment of {} fits on {} (workers of up to {max} GPUs with the searched parallel sizes){need}; give more GPUs, a larger GPU, or a lower-precision quantization",
            req.model.name, req.system.name
        ),
    )
}

pub fn mode_name(m: ServeMode) -> &'static str {
    match m {
        ServeMode::Agg => "agg",
        ServeMode::Disagg => "disagg",
        ServeMode::Static => "static",
    }
}

/// Dense models show `tp{}pp{}`; MoE models the full layout.
pub fn parallel_label(p: &Parallel, moe: bool) -> String {
    if moe {
        p.label()
    } else {
        format!("tp{}pp{}", p.tp, p.pp)
    }
}

struct Ctx<'a> {
    req: &'a SearchRequest,
    backend: Backend,
    sources: &'a DeploymentSources,
    budget: &'a Budget<'a>,
    /// Points dropped because the target load needs more GPUs than a search plans for.
    oversize: &'a std::cell::Cell<usize>,
}

/// Replica-level numbers → cluster-level candidate fields.
struct ReplicaPerf {
    ttft_ms: f64,
    tpot_ms: f64,
    request_latency_ms: f64,
    tokens_per_s: f64,
    request_rate: f64,
    concurrency: f64,
    gpus: u32,
}

impl Ctx<'_> {
    fn worker<'w>(
        &'w self,
        p: &Parallel,
        q: &QuantConfig,
        sys: &'w SystemSpec,
        nextn: u32,
    ) -> Option<Worker<'w>> {
        let src = self.sources.for_system(&sys.name);
        Worker::new(
            &self.req.model,
            p,
            q,
            sys,
            self.backend,
            src.calib,
            src.source(),
            self.req.free_gpu_memory_fraction,
            nextn,
        )
        .ok()
    }

    fn plan(
        &self,
        wk: &Worker,
        batch: u32,
        workers: u32,
        max_num_tokens: f64,
        memory_gib: f64,
    ) -> WorkerPlan {
        let p = wk.graph.parallel;
        WorkerPlan {
            system: wk.system.name.clone(),
            parallel: p,
            parallel_label: parallel_label(&p, self.req.model.family.is_moe()),
            gpus: p.gpus(),
            batch_size: batch,
            workers,
            max_num_tokens: max_num_tokens.ceil() as u32,
            memory_gib,
            memory_fraction: wk.memory_fraction(),
            quant: wk.graph.quant,
        }
    }

    /// Cluster figures for a replica: fixed cluster (floor of replicas), or recommend mode.
    /// `None` when the target load needs a cluster past [`limits::MAX_TOTAL_GPUS`].
    fn candidate(
        &self,
        mode: ServeMode,
        r: ReplicaPerf,
        plans: [Option<WorkerPlan>; 3],
    ) -> Option<Candidate> {
        let req = self.req;
        let g = r.gpus.max(1);
        let (replicas, total, load) = match (req.total_gpus, req.target) {
            (Some(t), None) => (t / g, t, None),
            (ceiling, Some(target)) => {
                let need = match target {
                    LoadTarget::RequestRate(rate) => rate / r.request_rate.max(1e-12),
                    LoadTarget::Concurrency(c) => c / r.concurrency.max(1e-12),
                };
                // Replicas in f64 first: a huge target must not wrap the GPU count.
                let need_replicas = need.ceil().max(1.0);
                let mut load = None;
                let n = match ceiling {
                    Some(t) if need_replicas > f64::from(t / g) => {
                        let n = t / g;
                        load = Some(100.0 * f64::from(n) / need);
                        n
                    }
                    _ if need_replicas * f64::from(g) > f64::from(limits::MAX_TOTAL_GPUS) => {
                        self.oversize.set(self.oversize.get() + 1);
                        return None;
                    }
                    _ => need_replicas as u32,
                };
                (n, ceiling.unwrap_or(n * g), load)
            }
            (None, None) => (1, g, None),
        };
        let cluster_tokens = r.tokens_per_s * replicas as f64;
        let meets = r.ttft_ms <= req.ttft_ms && r.tpot_ms <= req.tpot_ms && replicas > 0;
        let cost = self.cost(&plans, replicas, cluster_tokens, r.request_rate);
        let [agg, prefill, decode] = plans;
        Some(Candidate {
            mode,
            backend: self.backend,
            ttft_ms: r.ttft_ms,
            tpot_ms: r.tpot_ms,
            request_latency_ms: r.request_latency_ms,
            tokens_per_s_per_gpu: cluster_tokens / total.max(1) as f64,
            tokens_per_s_per_user: if r.tpot_ms > 0.0 {
                1000.0 / r.tpot_ms
            } else {
                0.0
            },
            replica_tokens_per_s_per_gpu: r.tokens_per_s / g as f64,
            replica_request_rate: r.request_rate,
            request_rate: r.request_rate * replicas as f64,
            concurrency_per_replica: r.concurrency,
            concurrency: r.concurrency * replicas as f64,
            replicas,
            gpus_per_replica: g,
            total_gpus_used: replicas * g,
            total_gpus: total,
            meets_sla: meets,
            load_served_pct: load,
            agg,
            prefill,
            decode,
            cost,
            same_as: Vec::new(),
        })
    }

    /// Cost of `replicas` replicas of `plans` (agg, prefill, decode) producing `tokens_per_s`
    /// output tokens/s at `replica_rate` requests/s per replica; `None` without prices or output.
    fn cost(
        &self,
        plans: &[Option<WorkerPlan>; 3],
        replicas: u32,
        tokens_per_s: f64,
        replica_rate: f64,
    ) -> Option<Cost> {
        let req = self.req;
        let [agg, prefill, decode] = plans;
        let gpu_hours = |w: &Option<WorkerPlan>, sys: &SystemSpec| -> Option<f64> {
            match w {
                Some(w) => Some(f64::from(w.gpus) * f64::from(w.workers) * req.gpu_price(sys)?),
                None => Some(0.0),
            }
        };
        let per_replica = gpu_hours(agg, &req.system)?
            + gpu_hours(prefill, &req.system)?
            + gpu_hours(decode, req.decode_sys())?;
        let usd_per_hour = per_replica * f64::from(replicas);
        let input_per_s = replica_rate * f64::from(replicas) * req.workload.isl;
        Cost::new(usd_per_hour, tokens_per_s, input_per_s)
    }

    /// Sweep the concurrency of one agg layout; returns points evaluated.
    fn agg_layout(&self, p: &Parallel, q: &QuantConfig, out: &mut Vec<Candidate>) -> Result<usize> {
        let req = self.req;
        let w = req.workload;
        let Some(mut wk) = self.worker(p, q, &req.system, w.nextn) else {
            return Ok(0);
        };
        let default_budget = wk.budget();
        let seq = w.isl + w.osl;
        let mut n = 0;
        for budget in token_budgets(self.backend, default_budget, w.isl - w.prefix) {
            wk.token_budget = Some(budget);
            n += self.agg_sweep(&wk, budget, seq, out)?;
        }
        Ok(n)
    }

    /// Concurrency sweep of one agg worker at one step token budget.
    fn agg_sweep(
        &self,
        wk: &Worker,
        budget: f64,
        seq: f64,
        out: &mut Vec<Candidate>,
    ) -> Result<usize> {
        let req = self.req;
        let w = req.workload;
        let first = wk.memory(1.0, seq, budget);
        if first.oom || first.max_requests_by_kv < 1.0 {
            return Ok(0);
        }
        let t = req.tuning;
        let mut n = 0;
        for b in space::agg_batches(t.agg_max_batch_size) {
            self.budget.spend(1)?;
            let perf = serve::agg(wk, &w, b as f64, self.sources.main.burst_waves)
                .with_latency_scales(&w, t.prefill_latency_scale, t.decode_latency_scale);
            n += 1;
            let mem = wk.memory(perf.running_per_rank, seq, budget).total_gib;
            let plan = self.plan(wk, b, 1, budget, mem);
            let kv_bound = perf.running_per_rank < b as f64;
            let ttft = perf.ttft_ms;
            out.extend(self.candidate(
                ServeMode::Agg,
                ReplicaPerf {
                    ttft_ms: perf.ttft_ms,
                    tpot_ms: perf.tpot_ms,
                    request_latency_ms: perf.request_latency_ms,
                    tokens_per_s: perf.tokens_per_s,
                    request_rate: perf.request_rate,
                    concurrency: perf.concurrency,
                    gpus: wk.gpus(),
                },
                [Some(plan), None, None],
            ));
            // Larger batches only wait longer: for KV room, or past the TTFT target.
            if kv_bound || ttft > req.ttft_ms {
                break;
            }
        }
        Ok(n)
    }

    /// Prefill and decode candidates, then the best xPyD composition of every pair.
    fn disagg(
        &self,
        pre_layouts: &[Parallel],
        dec_layouts: &[Parallel],
        qp: &QuantConfig,
        qd: &QuantConfig,
        out: &mut Vec<Candidate>,
        tick: &mut dyn FnMut(usize),
    ) -> Result<usize> {
        let req = self.req;
        let w = req.workload;
        let t = req.tuning;
        let dsys = req.decode_sys();
        let pre_workers: Vec<Worker> = pre_layouts
            .iter()
            .filter_map(|p| self.worker(p, qp, &req.system, 0))
            .collect();
        let dec_workers: Vec<Worker> = dec_layouts
            .iter()
            .filter_map(|p| self.worker(p, qd, dsys, w.nextn))
            .collect();
        let mut pre: Vec<(usize, PrefillSide)> = Vec::new();
        for (i, wk) in pre_workers.iter().enumerate() {
            for b in 1..=t.prefill_max_batch_size.max(1) {
                self.budget.spend(1)?;
                let mut s = prefill_side(wk, &w, b as f64);
                if s.memory.oom {
                    break;
                }
                s.batch_ms *= t.prefill_latency_scale;
                s.seq_per_s /= t.prefill_latency_scale;
                pre.push((i, s));
            }
        }
        tick(pre_layouts.len());
        // Prefill choices that are slower and less efficient per GPU than another of the same
        // size never win a composition.
        pre = prune_prefill(pre);
        let mut dec: Vec<(usize, DecodeSide)> = Vec::new();
        for (i, wk) in dec_workers.iter().enumerate() {
            let first = wk.memory(1.0, w.isl + w.osl, 1.0);
            if first.oom || first.max_requests_by_kv < 1.0 {
                continue;
            }
            for b in space::decode_batches(t.decode_max_batch_size) {
                self.budget.spend(1)?;
                let mut s = decode_side(wk, &w, b as f64);
                s.step_ms *= t.decode_latency_scale;
                s.tpot_ms *= t.decode_latency_scale;
                s.seq_per_s /= t.decode_latency_scale;
                let capped = s.running < s.batch;
                dec.push((i, s));
                if capped {
                    break;
                }
            }
        }
        tick(dec_layouts.len());
        let total = req.max_worker_gpus();
        let cap = req.replica.cap(total);
        let max_x = req.replica.max_prefill_worker.max(1);
        let max_y = req.replica.max_decode_worker.max(1);
        let mut evaluated = 0;
        // The composition's share of the progress units, spread over the prefill choices left.
        let units = pre_layouts.len().saturating_mul(dec_layouts.len());
        let mut ticked = 0usize;
        for (n, (pi, ps)) in pre.iter().enumerate() {
            let due = units.saturating_mul(n) / pre.len().max(1);
            tick(due - ticked);
            ticked = due;
            let pwk = &pre_workers[*pi];
            for (di, ds) in &dec {
                let dwk = &dec_workers[*di];
                let kv = kv_transfer_ms(pwk, dwk, &w, ps.batch_ms);
                let ci = ComposeInput {
                    prefill: ps,
                    decode: ds,
                    prefill_dp: pwk.graph.parallel.dp,
                    decode_dp: dwk.graph.parallel.dp,
                    ttft_overhead_ms: self.sources.main.calib.ttft_ms,
                    kv_transfer_ms: kv,
                    burst_waves: self.sources.main.burst_waves,
                };
                let per_decode = ci.unqueued_rate_per_decode_worker(&w);
                let mut best: Option<(f64, u32, u32, serve::DisaggResult)> = None;
                let mut closest: Option<(f64, u32, u32, serve::DisaggResult)> = None;
                for y in 1..=max_y {
                    self.budget.spend(1)?;
                    let dec_gpus = u64::from(y) * u64::from(ds.gpus);
                    if dec_gpus > u64::from(cap) {
                        break;
                    }
                    let xr = y as f64 * per_decode / ps.seq_per_s;
                    // Float → int saturates; the GPU cap below stops the walk.
                    let x0 = (xr.floor() as u32).max(1);
                    let x_match = (xr.ceil() as u32).max(1);
                    for x in x0..=max_x.min(x0.saturating_add(8)) {
                        self.budget.spend(1)?;
                        let g64 = u64::from(x) * u64::from(ps.gpus) + dec_gpus;
                        if g64 > u64::from(cap) {
                            break;
                        }
                        let g = g64 as u32;
                        if !req.replica.allows(g, total) {
                            continue;
                        }
                        let r = compose(&ci, &w, x, y);
                        evaluated += 1;
                        let ok = r.perf.ttft_ms <= req.ttft_ms;
                        let score = self.replica_score(r.perf.tokens_per_s, g);
                        if ok {
                            if best.as_ref().is_none_or(|b| {
                                better(score, g, b.0, b.1 * ps.gpus + b.2 * ds.gpus)
                            }) {
                                best = Some((score, x, y, r));
                            }
                            if x >= x_match {
                                break;
                            }
                        } else if closest
                            .as_ref()
                            .is_none_or(|c| r.perf.ttft_ms < c.3.perf.ttft_ms)
                        {
                            closest = Some((score, x, y, r));
                        }
                    }
                }
                if let Some((_, x, y, r)) = best.or(closest) {
                    out.extend(self.disagg_candidate(pwk, ps, x, dwk, ds, y, &r));
                }
            }
        }
        tick(units - ticked);
        Ok(evaluated)
    }

    /// Tokens/s/gpu of the cluster built from replicas of `g` GPUs (per replica when open).
    fn replica_score(&self, tokens_per_s: f64, g: u32) -> f64 {
        match self.req.total_gpus {
            Some(t) if self.req.target.is_none() => tokens_per_s * (t / g) as f64 / t as f64,
            _ => tokens_per_s / g as f64,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn disagg_candidate(
        &self,
        pwk: &Worker,
        ps: &PrefillSide,
        x: u32,
        dwk: &Worker,
        ds: &DecodeSide,
        y: u32,
        r: &serve::DisaggResult,
    ) -> Option<Candidate> {
        let w = self.req.workload;
        let pbudget = self.backend.step_token_budget(pwk.system);
        let pplan = self.plan(
            pwk,
            ps.batch as u32,
            x,
            pbudget.max(ps.batch * (w.isl - w.prefix)),
            ps.memory.total_gib,
        );
        let dplan = self.plan(
            dwk,
            ds.batch as u32,
            y,
            ds.batch * (1.0 + w.nextn as f64),
            ds.memory.total_gib,
        );
        let perf = &r.perf;
        self.candidate(
            ServeMode::Disagg,
            ReplicaPerf {
                ttft_ms: perf.ttft_ms,
                tpot_ms: perf.tpot_ms,
                request_latency_ms: perf.request_latency_ms,
                tokens_per_s: perf.tokens_per_s,
                request_rate: perf.request_rate,
                concurrency: perf.concurrency,
                gpus: perf.num_gpus,
            },
            [None, Some(pplan), Some(dplan)],
        )
    }
}

/// Step token budgets an agg worker is tried with: the backend default, and (where prefill chunks
/// ride along decodes) a budget of about one prompt, which keeps decode steps short at the cost of
/// queueing prompts one per step.
fn token_budgets(backend: Backend, default: f64, prompt: f64) -> Vec<f64> {
    let mut v = vec![default];
    let one_prompt = (prompt / 512.0).ceil().max(4.0) * 512.0;
    if backend.mixes_prefill_with_decode() && one_prompt < default {
        v.push(one_prompt);
    }
    v
}

/// Higher score wins; on a tie the smaller replica.
fn better(score: f64, gpus: u32, best_score: f64, best_gpus: u32) -> bool {
    score > best_score * (1.0 + 1e-12) || (score >= best_score * (1.0 - 1e-12) && gpus < best_gpus)
}

/// Keep, per prefill worker size, the choices not beaten on both batch time and per-GPU rate.
fn prune_prefill(v: Vec<(usize, PrefillSide)>) -> Vec<(usize, PrefillSide)> {
    let keep: Vec<bool> = v
        .iter()
        .map(|(_, a)| {
            !v.iter().any(|(_, b)| {
                b.gpus == a.gpus
                    && b.batch_ms <= a.batch_ms
                    && b.seq_per_s >= a.seq_per_s
                    && (b.batch_ms < a.batch_ms || b.seq_per_s > a.seq_per_s)
            })
        })
        .collect();
    v.into_iter()
        .zip(keep)
        .filter_map(|(e, k)| k.then_some(e))
        .collect()
}

/// The mode's result, and its ranking: indices into `all`, best first (the SLA-meeting points
/// when any does, else every point by distance to the SLA).
fn finish_mode(
    req: &SearchRequest,
    mode: ServeMode,
    evaluated: usize,
    all: Vec<Candidate>,
) -> (ModeResult, Vec<usize>) {
    let recommend = req.target.is_some();
    let in_frontier: Vec<usize> = (0..all.len())
        .filter(|&i| {
            let c = &all[i];
            c.ttft_ms <= req.ttft_ms && (!req.strict_sla || c.tpot_ms <= req.tpot_ms)
        })
        .collect();
    let pts: Vec<(f64, f64)> = in_frontier
        .iter()
        .map(|&i| {
            let c = &all[i];
            let y = if recommend {
                c.replica_tokens_per_s_per_gpu
            } else {
                c.tokens_per_s_per_gpu
            };
            (c.tokens_per_s_per_user, y)
        })
        .collect();
    let pareto: Vec<Candidate> = pareto::frontier(&pts)
        .into_iter()
        .map(|k| all[in_frontier[k]].clone())
        .collect();
    let feasible: Vec<usize> = (0..all.len()).filter(|&i| all[i].meets_sla).collect();
    let sla_met = !feasible.is_empty();
    let mut order: Vec<usize> = if sla_met {
        feasible
    } else {
        (0..all.len()).collect()
    };
    let (ttft, tpot) = (req.ttft_ms, req.tpot_ms);
    order.sort_by(|&a, &b| {
        let (a, b) = (&all[a], &all[b]);
        let primary = if !sla_met {
            a.sla_excess(ttft, tpot)
                .total_cmp(&b.sla_excess(ttft, tpot))
        } else if req.rank_by == RankBy::Cost && recommend {
            a.usd_per_hour()
                .total_cmp(&b.usd_per_hour())
                .then(a.total_gpus.cmp(&b.total_gpus))
        } else if req.rank_by == RankBy::Cost {
            a.usd_per_m_output().total_cmp(&b.usd_per_m_output())
        } else if recommend {
            a.total_gpus.cmp(&b.total_gpus).then(
                b.replica_tokens_per_s_per_gpu
                    .total_cmp(&a.replica_tokens_per_s_per_gpu),
            )
        } else {
            b.tokens_per_s_per_gpu.total_cmp(&a.tokens_per_s_per_gpu)
        };
        primary
            .then(b.tokens_per_s_per_user.total_cmp(&a.tokens_per_s_per_user))
            .then(a.gpus_per_replica.cmp(&b.gpus_per_replica))
            .then_with(|| a.layout_key().cmp(&b.layout_key()))
    });
    let mut seen = std::collections::BTreeSet::new();
    // Rows that differ only in the expert split and predict exactly the same fold into the
    // first (MoE TP and EP are priced alike where the op model has no term that tells them apart).
    let mut folded: std::collections::BTreeMap<String, usize> = Default::default();
    let mut top: Vec<Candidate> = Vec::new();
    for c in order.iter().map(|&i| &all[i]) {
        if !seen.insert(c.layout_key()) {
            continue;
        }
        let key = c.numbers_key();
        if let Some(&i) = folded.get(&key) {
            let t: &mut Candidate = &mut top[i];
            t.same_as.push(c.layout_label());
            continue;
        }
        if top.len() == req.top_n {
            // Only rows equal to ones already kept are still of interest.
            continue;
        }
        folded.insert(key, top.len());
        top.push(c.clone());
    }
    let result = ModeResult {
        mode,
        evaluated,
        candidates: in_frontier.len(),
        pareto,
        top,
        sla_met,
        all,
    };
    (result, order)
}

fn pick_best(req: &SearchRequest, modes: &[ModeResult]) -> (Option<Candidate>, Option<Comparison>) {
    let recommend = req.target.is_some();
    let firsts: Vec<&Candidate> = modes
        .iter()
        .filter(|m| m.sla_met)
        .filter_map(|m| m.top.first())
        .collect();
    // Higher is better: throughput per GPU, or (recommend) fewer GPUs; by cost, fewer dollars.
    let value = |c: &Candidate| {
        if req.rank_by == RankBy::Cost && recommend {
            1.0 / c.usd_per_hour().max(1e-12)
        } else if req.rank_by == RankBy::Cost {
            1.0 / c.usd_per_m_output().max(1e-12)
        } else if recommend {
            1.0 / c.total_gpus.max(1) as f64
        } else {
            c.tokens_per_s_per_gpu
        }
    };
    let best = firsts
        .iter()
        .copied()
        .reduce(|a, b| {
            let (va, vb) = (value(a), value(b));
            // Equal GPU counts (recommend) fall back to throughput per GPU.
            if vb > va || (vb == va && b.tokens_per_s_per_gpu > a.tokens_per_s_per_gpu) {
                b
            } else {
                a
            }
        })
        .cloned();
    let comparison = match (&best, firsts.len()) {
        (Some(b), 2..) => {
            let other = firsts
                .iter()
                .filter(|c| c.mode != b.mode)
                .map(|c| value(c))
                .fold(0.0, f64::max);
            let loser = firsts.iter().find(|c| c.mode != b.mode).map(|c| c.mode);
            loser.filter(|_| other > 0.0).map(|loser| Comparison {
                winner: b.mode,
                loser,
                ratio: value(b) / other,
            })
        }
        _ => None,
    };
    (best, comparison)
}
