//! Calibration against measured serving runs (docs/model.md §9): one measured row (the
//! calibration CSV schema: what ran, and the measured mean TTFT/TPOT) → an estimate request,
//! prediction of every row, error statistics, and the fit of the empirical or measured-mode
//! serving constants. The binary reads the CSV and prints; this module decides.
use crate::backend::Backend;
use crate::error::{AicfgError, Result};
use crate::estimate::{predict_with, EstimateRequest, QuantRequest, WorkerSpec};
use crate::hardware::SystemRegistry;
use crate::model::graph::Parallel;
use crate::model::{ModelRegistry, ModelSpec};
use crate::perf::{DatabaseMode, EmpiricalParams, SiliconCalib};
use crate::quant::{GemmQuant, MoeQuant};
use crate::serve::sim::{LengthDist, SimSpec};
use crate::serve::{ServeMode, Workload};
use crate::simulate::bench_spec;
use std::collections::{BTreeMap, HashMap};

/// Why a row has no prediction: (status, detail), status one of `unsupported`, `invalid`,
/// `underspecified`, `oom` (does not fit at the framework's default memory settings), `error`.
pub type Skip = (String, String);

/// Columns every measured-runs CSV must have.
pub const REQUIRED_COLUMNS: [&str; 7] = [
    "id",
    "backend",
    "model_path",
    "system",
    "mode",
    "isl",
    "osl",
];

/// One measured row, as read.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: String,
    pub fields: HashMap<String, String>,
    /// Measured mean TTFT and TPOT (ms); NaN when absent.
    pub ttft: f64,
    pub tpot: f64,
}

impl Row {
    /// A row from its column → value map.
    pub fn new(fields: HashMap<String, String>) -> Row {
        let f = |k: &str| {
            fields
                .get(k)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        Row {
            id: fields.get("id").cloned().unwrap_or_default(),
            ttft: f("silicon_ttft_ms"),
            tpot: f("silicon_tpot_ms"),
            fields,
        }
    }
    pub fn get(&self, k: &str) -> &str {
        self.fields.get(k).map(|s| s.trim()).unwrap_or("")
    }
    fn num(&self, k: &str) -> Option<f64> {
        self.get(k).parse::<f64>().ok()
    }
    /// A parallel size or count; 0 means unset.
    fn par(&self, k: &str) -> Option<u32> {
        self.num(k).filter(|v| *v > 0.0).map(|v| v as u32)
    }
    pub fn group(&self, k: &str) -> String {
        self.get(k).to_string()
    }
}

/// Build the request for a row, or say why it cannot be predicted.
pub struct RowMapper {
    models: ModelRegistry,
    systems: SystemRegistry,
    cache: HashMap<String, std::result::Result<ModelSpec, String>>,
    /// Measured-database backend version for every row (None = newest installed).
    pub backend_version: Option<String>,
}

impl Default for RowMapper {
    fn default() -> Self {
        Self::new()
    }
}

impl RowMapper {
    pub fn new() -> Self {
        RowMapper {
            models: ModelRegistry::builtin(),
            systems: SystemRegistry::builtin(),
            cache: HashMap::new(),
            backend_version: None,
        }
    }

    pub fn request(
        &mut self,
        r: &Row,
        mode: DatabaseMode,
    ) -> std::result::Result<EstimateRequest, Skip> {
        let skip = |s: &str, d: String| Err((s.to_string(), d));
        let model_id = r.get("model_path").to_string();
        let models = &self.models;
        let model = match self
            .cache
            .entry(model_id.clone())
            .or_insert_with(|| models.resolve(&model_id).map_err(|e| e.to_string()))
        {
            Ok(m) => m.clone(),
            Err(e) => return skip("unsupported", e.clone()),
        };
        let system = match self.systems.get(r.get("system")) {
            Ok(s) => s.clone(),
            Err(e) => return skip("unsupported", e.to_string()),
        };
        let backend = match Backend::parse(r.get("backend")) {
            Ok(b) => b,
            Err(e) => return skip("unsupported", e.to_string()),
        };
        let (isl, osl) = match (r.num("isl"), r.num("osl")) {
            (Some(i), Some(o)) if i >= 1.0 && o >= 1.0 => (i, o),
            _ => return skip("invalid", "isl/osl missing or not positive".into()),
        };
        let gemm = match r.get("gemm_quant_mode") {
            "" => None,
            s => match GemmQuant::parse(s) {
                Ok(q) => Some(q),
                Err(e) => return skip("unsupported", e.to_string()),
            },
        };
        let moe = match r.get("moe_quant_mode") {
            "" => None,
            s => match MoeQuant::parse(s) {
                Ok(q) => Some(q),
                Err(e) => return skip("unsupported", e.to_string()),
            },
        };
        let domain = system.nvlink_domain();
        let par = |prefix: &str| pool_layout(r, prefix, &model, domain);
        let quant = QuantRequest {
            gemm,
            moe,
            ..Default::default()
        };
        // The benchmark drew lengths around these; the closed form prices their means.
        let (isl, osl) = match length_range_ratio(r) {
            Some(q) => (drawn_lengths(isl, q).0, drawn_lengths(osl, q).0),
            None => (isl, osl),
        };
        let workload = Workload {
            isl,
            osl,
            prefix: 0.0,
            nextn: 0,
            nextn_accepted: 0.0,
        };
        let base = |m: ServeMode, agg: WorkerSpec, prefill: WorkerSpec, decode: WorkerSpec| {
            EstimateRequest {
                model: model.clone(),
                system: system.clone(),
                decode_system: None,
                backend,
                mode: m,
                workload,
                quant,
                agg,
                prefill,
                decode,
                database_mode: mode,
                backend_version: self.backend_version.clone(),
                free_gpu_memory_fraction: None,
                calibration: None,
                gpu_cost_per_hour: None,
            }
        };
        match r.get("mode") {
            "agg" => {
                let Some(bs) = r.num("batch_size").filter(|b| *b >= 1.0) else {
                    return skip("underspecified", "agg row without batch_size".into());
                };
                let l = par("");
                let w = WorkerSpec {
                    parallel: l.parallel,
                    batch_size: l.per_rank(bs, stated_concurrency(r)),
                    workers: 1,
                };
                Ok(base(ServeMode::Agg, w, w, w))
            }
            "disagg" => {
                let (Some(pb), Some(pw), Some(db), Some(dw)) = (
                    r.num("prefill_batch_size").filter(|v| *v >= 1.0),
                    r.par("prefill_num_workers"),
                    r.num("decode_batch_size").filter(|v| *v >= 1.0),
                    r.par("decode_num_workers"),
                ) else {
                    return skip(
                        "underspecified",
                        "disagg row without prefill/decode batch sizes and worker counts".into(),
                    );
                };
                let (lp, ld) = (par("prefill_"), par("decode_"));
                let p = WorkerSpec {
                    parallel: lp.parallel,
                    batch_size: lp.per_rank(pb, None),
                    workers: pw,
                };
                let d = WorkerSpec {
                    parallel: ld.parallel,
                    batch_size: ld.per_rank(db, None),
                    workers: dw,
                };
                Ok(base(ServeMode::Disagg, d, p, d))
            }
            m => skip("invalid", format!("unknown mode '{m}'")),
        }
    }
}

/// How a row states a pool's batch: per attention-DP rank (the reference tool's convention for
/// its own layouts) or per worker (a launch that did not know its attention ran data-parallel).
#[derive(Debug, Clone, Copy, PartialEq)]
struct PoolLayout {
    parallel: Parallel,
    /// The row's batch column is the whole worker's concurrency, not one rank's.
    batch_per_worker: bool,
    /// Attention-DP size the row's own columns give (1 when unset).
    row_dp: u32,
}

impl PoolLayout {
    /// Requests per attention-DP rank for the row's batch column `b`. `concurrency` is the run's
    /// `silicon_concurrency` for an agg pool: where a row with attention DP says it, it decides
    /// whether `b` was counted per rank (`concurrency = b·dp`) or per worker (`concurrency = b`).
    fn per_rank(&self, b: f64, concurrency: Option<f64>) -> f64 {
        let dp = f64::from(self.parallel.dp);
        if dp <= 1.0 {
            return b;
        }
        let row_dp = f64::from(self.row_dp);
        let per_worker = match concurrency {
            Some(c) if (c - b).abs() < 0.5 => true,
            Some(c) if (c - b * row_dp).abs() < 0.5 => false,
            _ => self.batch_per_worker,
        };
        let worker = if per_worker { b } else { b * row_dp };
        (worker / dp).max(1.0)
    }
}

/// One pool's layout from a row's `{prefix}tp_size` … `{prefix}moe_ep_size` columns (0 or empty =
/// unset). Published rows describe layouts in four dialects, told apart by what the sizes allow:
/// - the reference tool's own (`tp·dp = moe_tp·moe_ep` GPUs), kept as given;
/// - attention DP left unset while the expert split is wider than `tp`: the expert group spans
///   the worker (`tp·dp = moe_tp·moe_ep`), so `dp = moe_tp·moe_ep / tp`;
/// - a launch with `--tp W` where attention cannot split the heads W ways: SGLang
///   (`--enable-dp-attention`) then runs attention data-parallel over the W GPUs;
/// - a single-node launch `--tp T --ep E` written as `tp_size·dp = T·E`, `moe_tp = T`,
///   `moe_ep = E` (the ids say `tp8_ep8` where tp_size is 64): a worker wider than the system's
///   NVLink domain with both expert sizes above 1 ran on T GPUs with experts E-way expert
///   parallel (`moe_tp = T/E`); attention DP, where the row has it, spans those T GPUs.
fn pool_layout(r: &Row, prefix: &str, model: &ModelSpec, nvlink_domain: u32) -> PoolLayout {
    let g = |k: &str| r.par(&format!("{prefix}{k}"));
    let mut tp = g("tp_size").unwrap_or(1);
    let pp = g("pp_size").unwrap_or(1);
    if !model.family.is_moe() {
        let parallel = Parallel {
            tp,
            pp,
            dp: 1,
            moe_tp: 1,
            moe_ep: 1,
        };
        return PoolLayout {
            parallel,
            batch_per_worker: false,
            row_dp: 1,
        };
    }
    let given_dp = g("attention_dp_size");
    let row_dp = given_dp.unwrap_or(1);
    let mut dp = row_dp;
    let (mut etp, mut ep) = (g("moe_tp_size"), g("moe_ep_size"));
    let mut batch_per_worker = false;
    if let (Some(t), Some(e)) = (etp, ep) {
        let world = tp.saturating_mul(dp);
        if world > nvlink_domain && t > 1 && e > 1 && t.saturating_mul(e) == world && t % e == 0 {
            if dp > 1 {
                dp = t;
                tp = 1;
            } else {
                tp = t;
            }
            etp = Some(t / e);
            ep = Some(e);
        }
    }
    let experts = etp.unwrap_or(1).saturating_mul(ep.unwrap_or(1));
    if given_dp.is_none() && experts > tp && experts % tp == 0 {
        dp = experts / tp;
        batch_per_worker = true;
    }
    // SGLang reports the world size as tp; when it cannot split the heads, attention runs
    // data-parallel over those GPUs (--enable-dp-attention).
    if dp == 1 && !model.num_heads.is_multiple_of(u64::from(tp)) {
        dp = tp;
        tp = 1;
        batch_per_worker = true;
    }
    // Published rows sometimes carry expert sizes that do not multiply to tp·dp (the
    // attention sizes copied over): drop what does not fit, keeping moe_ep first, then
    // fill the rest by the one default rule.
    let n = tp * dp;
    let (etp, ep) = match (etp, ep) {
        (Some(t), Some(e)) if t * e == n => (Some(t), Some(e)),
        (_, Some(e)) if n % e == 0 => (None, Some(e)),
        (Some(t), _) if n % t == 0 => (Some(t), None),
        _ => (None, None),
    };
    PoolLayout {
        parallel: Parallel::with_moe_defaults(true, tp, pp, dp, etp, ep),
        batch_per_worker,
        row_dp,
    }
}

/// The `silicon_concurrency=N` a row's `silicon_data_source` states, if any.
fn stated_concurrency(r: &Row) -> Option<f64> {
    r.get("silicon_data_source")
        .split(';')
        .find_map(|kv| kv.trim().strip_prefix("silicon_concurrency="))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|c| c.is_finite() && *c >= 1.0)
}

/// The sequence shapes of the fixed-shape serving sweeps (1k/1k, 1k/8k, 8k/1k) whose client
/// (bench_serving's random dataset) draws each request's lengths with `--random-range-ratio 0.8`.
const SWEEP_SHAPES: [(f64, f64); 3] = [(1024.0, 1024.0), (1024.0, 8192.0), (8192.0, 1024.0)];
const SWEEP_RANGE_RATIO: f64 = 0.8;

/// The lower bound, as a share of the nominal length, of the lengths a row's benchmark client
/// drew (uniformly in `[ratio·L, L]`, bench_serving's `--random-range-ratio`), or None for
/// fixed lengths. An explicit `random_range_ratio` column decides (1 or empty = fixed); without
/// one, rows of the fixed-shape sweeps (the three [`SWEEP_SHAPES`], from sources other than the
/// per-model gap-analysis files, whose client used fixed lengths) ran at 0.8.
pub fn length_range_ratio(r: &Row) -> Option<f64> {
    if let Some(q) = r.num("random_range_ratio") {
        return (q.is_finite() && q > 0.0 && q < 1.0).then_some(q);
    }
    let (isl, osl) = (r.num("isl")?, r.num("osl")?);
    let sweep = SWEEP_SHAPES.contains(&(isl, osl))
        && !r.get("silicon_data_source").contains("gap-analysis/data/");
    sweep.then_some(SWEEP_RANGE_RATIO)
}

/// (mean, relative half-width) of integer lengths drawn uniformly from `[⌊q·L⌋, L]`.
fn drawn_lengths(l: f64, q: f64) -> (f64, f64) {
    let lo = (q * l).floor().max(1.0);
    let mean = (lo + l) / 2.0;
    (mean, (l - lo) / 2.0 / mean)
}

pub struct Prepared {
    pub row: Row,
    pub req: std::result::Result<EstimateRequest, Skip>,
}

impl Prepared {
    /// The benchmark this row ran, for the simulator: a closed loop at its concurrency
    /// (`simulate::bench_spec`) with the lengths its client drew, uniform around the means the
    /// request carries.
    pub fn bench_spec(&self, req: &EstimateRequest) -> SimSpec {
        let mut spec = bench_spec(req);
        if let (Some(q), Some(isl), Some(osl)) = (
            length_range_ratio(&self.row),
            self.row.num("isl"),
            self.row.num("osl"),
        ) {
            spec.isl_dist = LengthDist::Uniform(drawn_lengths(isl, q).1);
            spec.osl_dist = LengthDist::Uniform(drawn_lengths(osl, q).1);
        }
        spec
    }
}

pub fn prepare(
    rows: Vec<Row>,
    mode: DatabaseMode,
    backend_version: Option<String>,
) -> Vec<Prepared> {
    let mut mapper = RowMapper::new();
    mapper.backend_version = backend_version;
    // Memory does not depend on the serving constants: one check per row, at preparation.
    let params = EmpiricalParams::embedded();
    rows.into_iter()
        .map(|row| {
            let req = mapper.request(&row, mode).and_then(|r| {
                match crate::estimate::one_request_misfit(&r, &params) {
                    Ok(Some(why)) => Err((
                        "oom".into(),
                        format!("{why}: the run set its own memory split, which the row does not record"),
                    )),
                    _ => Ok(r),
                }
            });
            Prepared { row, req }
        })
        .collect()
}

/// Predictions for prepared rows: Ok((ttft, tpot)) or Err((status, detail)).
pub fn predict_all(
    rows: &[Prepared],
    params: &EmpiricalParams,
) -> Vec<std::result::Result<(f64, f64), Skip>> {
    rows.iter()
        .map(|p| match &p.req {
            Err(e) => Err(e.clone()),
            Ok(req) => match predict_with(req, params) {
                Ok(perf) if perf.ttft_ms.is_finite() && perf.tpot_ms.is_finite() => {
                    Ok((perf.ttft_ms, perf.tpot_ms))
                }
                Ok(_) => Err(("error".into(), "prediction is not finite".into())),
                Err(e) => Err(("error".into(), e.to_string())),
            },
        })
        .collect()
}

pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

pub struct Summary {
    pub n: usize,
    pub med: f64,
    pub mean: f64,
    pub w10: f64,
    pub w25: f64,
    pub bias: f64,
}

pub fn summarize(signed: &[f64]) -> Summary {
    let mut abs: Vec<f64> = signed.iter().map(|x| x.abs()).collect();
    let n = abs.len();
    let mean = abs.iter().sum::<f64>() / n.max(1) as f64;
    let w10 = abs.iter().filter(|x| **x <= 0.10).count() as f64 / n.max(1) as f64;
    let w25 = abs.iter().filter(|x| **x <= 0.25).count() as f64 / n.max(1) as f64;
    let mut s = signed.to_vec();
    Summary {
        n,
        med: median(&mut abs),
        mean,
        w10,
        w25,
        bias: median(&mut s),
    }
}

/// Signed relative errors of one group of rows.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// (predicted − measured) / measured, per predicted row.
    pub ttft: Vec<f64>,
    pub tpot: Vec<f64>,
    pub rows: usize,
    pub ok: usize,
}

/// Accuracy of predictions against the measured rows: overall, per (column, value) group of
/// system, backend, mode and model, and the count of each row status.
#[derive(Debug, Default, Clone)]
pub struct Accuracy {
    pub overall: Stats,
    pub groups: BTreeMap<(String, String), Stats>,
    pub status: BTreeMap<String, usize>,
    /// Rows with complete inputs (all but `underspecified`).
    pub complete: usize,
}

impl Accuracy {
    pub fn of(prepared: &[Prepared], preds: &[std::result::Result<(f64, f64), Skip>]) -> Self {
        let mut a = Accuracy::default();
        for (p, r) in prepared.iter().zip(preds) {
            let keys: Vec<(String, String)> = ["system", "backend", "mode", "model_path"]
                .iter()
                .map(|k| (k.to_string(), p.row.group(k)))
                .collect();
            a.overall.rows += 1;
            for k in &keys {
                a.groups.entry(k.clone()).or_default().rows += 1;
            }
            match r {
                Ok((t, o)) => {
                    *a.status.entry("ok".into()).or_default() += 1;
                    let et = (t - p.row.ttft) / p.row.ttft;
                    let eo = (o - p.row.tpot) / p.row.tpot;
                    let add = |s: &mut Stats| {
                        s.ok += 1;
                        s.ttft.push(et);
                        s.tpot.push(eo);
                    };
                    add(&mut a.overall);
                    for k in &keys {
                        if let Some(g) = a.groups.get_mut(k) {
                            add(g);
                        }
                    }
                }
                Err((s, _)) => *a.status.entry(s.clone()).or_default() += 1,
            }
        }
        a.complete = a.overall.rows - a.status.get("underspecified").copied().unwrap_or(0);
        a
    }
}

/// Robust loss: mean over rows of clipped |log error| of TTFT and TPOT.
pub fn loss(prepared: &[Prepared], params: &EmpiricalParams, mask: &[bool]) -> f64 {
    let preds = predict_all(prepared, params);
    let mut s = 0.0;
    let mut n: f64 = 0.0;
    for ((p, r), m) in prepared.iter().zip(&preds).zip(mask) {
        if !m {
            continue;
        }
        if let Ok((t, o)) = r {
            let lt = (t / p.row.ttft).ln().abs().min(1.0);
            let lo = (o / p.row.tpot).ln().abs().min(1.0);
            s += lt + lo;
            n += 1.0;
        }
    }
    s / n.max(1.0)
}

/// The constants a calibration run fits: the empirical ones, or the `silicon` section.
pub fn fields(p: &mut EmpiricalParams, silicon: bool) -> Vec<(String, &mut f64)> {
    if silicon {
        p.silicon_fields_mut()
    } else {
        p.fields_mut()
    }
}

pub fn get_vec(p: &EmpiricalParams, silicon: bool) -> Vec<f64> {
    let mut c = p.clone();
    fields(&mut c, silicon)
        .into_iter()
        .map(|(_, v)| *v)
        .collect()
}

pub fn set_vec(p: &mut EmpiricalParams, v: &[f64], silicon: bool) {
    for ((_, f), x) in fields(p, silicon).into_iter().zip(v) {
        *f = *x;
    }
}

/// Bounds that keep each constant physical (efficiencies ≤ 1).
pub fn bounds(name: &str) -> (f64, f64) {
    if name == "mem_eff" {
        // Streaming kernels reach at most ~92 % of datasheet HBM bandwidth.
        (0.3, 0.92)
    } else if name.contains("eff") {
        // No kernel sustains the datasheet tensor-core peak; cap near the best published GEMMs.
        (0.05, 0.9)
    } else if name.ends_with("burst_waves") {
        (1.0, 50.0)
    } else if name.contains("wait_steps") {
        // Half a step for a mid-step arrival, one for a step an overlapping scheduler already
        // planned, one for outputs returned a step late, half for streaming granularity.
        (0.0, 3.0)
    } else if name.ends_with("step_ms") {
        // A scheduler pass, graph replay and a device sync: well under 5 ms on any host.
        (0.0, 5.0)
    } else if name.ends_with("req_us") {
        // Python bookkeeping per request per step (scheduling, sampling inputs, output
        // processing): ~5-30 µs in every framework's scheduler loop.
        (0.0, 30.0)
    } else if name.ends_with("launch_us") {
        // Eager PyTorch: ~5-10 µs of dispatch and launch per kernel, and one of our ops is
        // 1-5 kernels (quantize, GEMM, epilogue) plus its Python module call.
        (0.0, 60.0)
    } else if name.contains("m_half") {
        (1.0, 1024.0)
    } else if name.ends_with("ttft_ms") {
        // Per-request API path (HTTP parse, chat template, tokenising a few thousand tokens
        // with a fast tokenizer, one IPC hop, the first detokenisation): a few ms; 15 ms
        // leaves room for a slow Python frontend.
        (0.0, 15.0)
    } else if name.contains("overlap_us") {
        // A kernel launch plus ramp-up/tail: a few µs, never more than ~10.
        (0.0, 10.0)
    } else {
        (0.0, 200.0)
    }
}

/// Whether a calibration in `mode` fits the `silicon` section (measured tables) or the
/// empirical constants.
pub fn fits_silicon(mode: DatabaseMode) -> Result<bool> {
    match mode {
        DatabaseMode::Empirical => Ok(false),
        DatabaseMode::Hybrid | DatabaseMode::Silicon => Ok(true),
        m => Err(AicfgError::invalid(
            "database mode",
            format!(
                "bench calibrate fits empirical or hybrid/silicon constants, not '{}'",
                m.name()
            ),
        )),
    }
}

/// Which constants a fit may move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitScope {
    /// Every serving constant of the mode (kernel constants are never fitted to serving runs).
    All,
    /// Only the serving constants (per-step host cost, fixed TTFT, prefill wait) of the rows'
    /// backends: a few load points cannot pin down the kernel efficiencies.
    Serving,
}

impl FitScope {
    /// `all`, `serving`, or `auto`: serving for fewer than 100 rows.
    pub fn choose(s: &str, rows: usize) -> Result<FitScope> {
        match s {
            "all" => Ok(FitScope::All),
            "serving" => Ok(FitScope::Serving),
            "auto" if rows < 100 => Ok(FitScope::Serving),
            "auto" => Ok(FitScope::All),
            f => Err(AicfgError::invalid(
                "fit",
                format!("--fit must be auto, all or serving, not '{f}'"),
            )),
        }
    }
}

/// Every constant a fit of `silicon`/`params` names, and whether `scope` lets it move.
pub fn free_constants(
    prepared: &[Prepared],
    params: &EmpiricalParams,
    silicon: bool,
    scope: FitScope,
) -> Vec<(String, bool)> {
    let backends: std::collections::BTreeSet<String> =
        prepared.iter().map(|p| p.row.group("backend")).collect();
    let mut p = params.clone();
    if silicon && p.silicon.is_none() {
        p.silicon = Some(SiliconCalib::from_empirical(&p));
    }
    fields(&mut p, silicon)
        .into_iter()
        .map(|(n, _)| {
            let free = scope == FitScope::All
                || backends.iter().any(|b| {
                    n.starts_with(&format!("backends.{b}."))
                        || n.starts_with(&format!("silicon.backends.{b}."))
                });
            (n, free)
        })
        .collect()
}

/// What [`fit`] reports while it runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FitProgress {
    Start { loss: f64 },
    Round { round: usize, loss: f64, step: f64 },
}

/// Outcome of [`fit`].
#[derive(Debug, Clone)]
pub struct Fit {
    pub start_loss: f64,
    pub loss: f64,
    /// Loss of the fitted constants on the two halves of the rows (split by row id).
    pub fold_a: f64,
    pub fold_b: f64,
}

/// Fit the constants of `params` (the `silicon` section when `silicon`) to the rows: a coordinate
/// search in log space with shrinking steps (robust, deterministic, few evaluations), every
/// constant inside [`bounds`]. `progress` hears the start loss, then each round's.
pub fn fit(
    prepared: &[Prepared],
    params: &mut EmpiricalParams,
    silicon: bool,
    scope: FitScope,
    rounds: usize,
    progress: &mut dyn FnMut(FitProgress),
) -> Fit {
    if silicon && params.silicon.is_none() {
        params.silicon = Some(SiliconCalib::from_empirical(params));
    }
    let free: Vec<bool> = free_constants(prepared, params, silicon, scope)
        .into_iter()
        .map(|(_, f)| f)
        .collect();
    // Two halves by row id: the fit uses all rows; each half's loss shows the fit is even.
    let fold: Vec<bool> = prepared
        .iter()
        .map(|p| fnv(&p.row.id).is_multiple_of(2))
        .collect();
    let all = vec![true; prepared.len()];
    let names: Vec<String> = fields(&mut params.clone(), silicon)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let mut x = get_vec(params, silicon);
    for (i, n) in names.iter().enumerate() {
        let (lo, hi) = bounds(n);
        x[i] = x[i].clamp(lo, hi);
    }
    set_vec(params, &x, silicon);
    let start_loss = loss(prepared, params, &all);
    progress(FitProgress::Start { loss: start_loss });
    let mut best = start_loss;
    let mut step = 0.4f64;
    for round in 0..rounds {
        for i in 0..x.len() {
            if !free[i] {
                continue;
            }
            let (lo, hi) = bounds(&names[i]);
            for dir in [1.0, -1.0] {
                loop {
                    let mut y = x.clone();
                    let base = if y[i] <= 0.0 { 1e-3 } else { y[i] };
                    y[i] = (base * (dir * step).exp()).clamp(lo, hi);
                    if y[i] == x[i] {
                        break;
                    }
                    set_vec(params, &y, silicon);
                    let l = loss(prepared, params, &all);
                    if l + 1e-6 < best {
                        best = l;
                        x = y;
                    } else {
                        break;
                    }
                }
            }
            set_vec(params, &x, silicon);
        }
        progress(FitProgress::Round {
            round,
            loss: best,
            step,
        });
        step *= 0.6;
    }
    set_vec(params, &x, silicon);
    let not: Vec<bool> = fold.iter().map(|b| !b).collect();
    Fit {
        start_loss,
        loss: best,
        fold_a: loss(prepared, params, &fold),
        fold_b: loss(prepared, params, &not),
    }
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cols: &[(&str, &str)]) -> Row {
        let mut f: HashMap<String, String> = [
            ("id", "r1"),
            ("backend", "trtllm"),
            ("model_path", "Qwen/Qwen3-30B-A3B"),
            ("system", "h200_sxm"),
            ("mode", "agg"),
            ("isl", "1000"),
            ("osl", "100"),
            ("batch_size", "8"),
            ("silicon_ttft_ms", "100"),
            ("silicon_tpot_ms", "10"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in cols {
            f.insert(k.to_string(), v.to_string());
        }
        Row::new(f)
    }

    fn par(cols: &[(&str, &str)]) -> Parallel {
        RowMapper::new()
            .request(&row(cols), DatabaseMode::Empirical)
            .unwrap()
            .agg
            .parallel
    }

    #[test]
    fn sweep_rows_price_the_lengths_their_client_drew() {
        let req = |cols: &[(&str, &str)]| {
            let r = row(cols);
            let q = RowMapper::new()
                .request(&r, DatabaseMode::Empirical)
                .unwrap();
            (length_range_ratio(&r), q.workload.isl, q.workload.osl)
        };
        // A 1k/8k sweep row: lengths uniform in [819, 1024] and [6553, 8192].
        let sweep = [("isl", "1024"), ("osl", "8192")];
        assert_eq!(req(&sweep), (Some(0.8), 921.5, 7372.5));
        // The per-model gap-analysis runs used fixed lengths; so does any other shape.
        let gap = [
            ("isl", "1024"),
            ("osl", "8192"),
            (
                "silicon_data_source",
                "source_file=/x/aic-auto-gap-analysis/data/h200.csv",
            ),
        ];
        assert_eq!(req(&gap), (None, 1024.0, 8192.0));
        assert_eq!(req(&[]), (None, 1000.0, 100.0));
        // An explicit column decides: 0.5 of 1000 → [500, 1000]; 1 = fixed.
        assert_eq!(req(&[("random_range_ratio", "0.5")]).1, 750.0);
        assert_eq!(
            req(&[
                ("random_range_ratio", "1"),
                ("isl", "1024"),
                ("osl", "1024")
            ])
            .1,
            1024.0
        );
        // The simulator replays the same draws: ±102.5 tokens around 921.5.
        let p = Prepared {
            row: row(&sweep),
            req: RowMapper::new().request(&row(&sweep), DatabaseMode::Empirical),
        };
        let spec = p.bench_spec(p.req.as_ref().unwrap());
        assert_eq!(spec.isl_dist, LengthDist::Uniform(102.5 / 921.5));
    }

    #[test]
    fn rows_become_requests() {
        let r = row(&[]);
        assert_eq!((r.id.as_str(), r.ttft, r.tpot), ("r1", 100.0, 10.0));
        let p = par(&[("tp_size", "2"), ("attention_dp_size", "2")]);
        // Unset expert sizes: experts split like the attention.
        assert_eq!((p.tp, p.dp, p.moe_tp, p.moe_ep), (2, 2, 4, 1));
        let p = par(&[("tp_size", "4"), ("moe_ep_size", "4")]);
        assert_eq!((p.moe_tp, p.moe_ep), (1, 4));
        // Sizes that do not multiply to tp·dp: moe_ep kept, moe_tp derived.
        let p = par(&[
            ("tp_size", "2"),
            ("attention_dp_size", "1"),
            ("moe_tp_size", "4"),
            ("moe_ep_size", "1"),
        ]);
        assert_eq!((p.dp, p.moe_tp, p.moe_ep), (1, 2, 1));
        // Dense models ignore expert columns.
        let p = par(&[
            ("model_path", "Qwen/Qwen3-32B"),
            ("tp_size", "2"),
            ("moe_tp_size", "2"),
            ("moe_ep_size", "1"),
        ]);
        assert_eq!((p.tp, p.moe_tp, p.moe_ep), (2, 1, 1));
    }

    /// (tp, dp, moe_tp, moe_ep, requests per attention-DP rank) of an agg row.
    fn layout(cols: &[(&str, &str)]) -> (u32, u32, u32, u32, f64) {
        let q = RowMapper::new()
            .request(&row(cols), DatabaseMode::Empirical)
            .unwrap();
        let p = q.agg.parallel;
        (p.tp, p.dp, p.moe_tp, p.moe_ep, q.agg.batch_size)
    }

    #[test]
    fn published_layout_dialects() {
        let src = |c: &str| format!("x; silicon_concurrency={c}; y");
        // Attention DP unset, experts split two ways over a tp-1 worker: the expert group spans
        // the worker, so two attention-DP ranks share its 8 requests.
        assert_eq!(
            layout(&[("tp_size", "1"), ("moe_tp_size", "2"), ("moe_ep_size", "1")]),
            (1, 2, 2, 1, 4.0)
        );
        // SGLang's world size as tp: 72 does not divide DeepSeek's 128 heads, so attention runs
        // data-parallel over the 72 GPUs and the worker's 2048 requests spread over them.
        let ds = [
            ("model_path", "deepseek-ai/DeepSeek-R1"),
            ("backend", "sglang"),
            ("system", "gb200"),
        ];
        let s2048 = src("2048");
        let mut c = ds.to_vec();
        c.extend([
            ("tp_size", "72"),
            ("attention_dp_size", "1"),
            ("moe_tp_size", "72"),
            ("moe_ep_size", "1"),
            ("batch_size", "2048"),
            ("silicon_data_source", s2048.as_str()),
        ]);
        assert_eq!(layout(&c), (1, 72, 72, 1, 2048.0 / 72.0));
        // `--tp 8 --ep 8` on one 8-GPU node written as tp_size 64, moe 8×8: 8 GPUs, TP-8
        // attention, experts 8-way expert parallel.
        let tp8ep8 = [
            ("model_path", "deepseek-ai/DeepSeek-R1"),
            ("system", "h200_sxm"),
            ("moe_tp_size", "8"),
            ("moe_ep_size", "8"),
        ];
        let mut c = tp8ep8.to_vec();
        c.extend([("tp_size", "64"), ("batch_size", "16")]);
        assert_eq!(layout(&c), (8, 1, 1, 8, 16.0));
        // The same launch with attention DP, written as dp 64 and 128 / 64 = 2 requests per
        // rank: the node's 8 ranks hold 16 each.
        let s128 = src("128");
        let mut c = tp8ep8.to_vec();
        c.extend([
            ("tp_size", "1"),
            ("attention_dp_size", "64"),
            ("batch_size", "2"),
            ("silicon_data_source", s128.as_str()),
        ]);
        assert_eq!(layout(&c), (1, 8, 1, 8, 16.0));
        // ... or with the batch column holding the whole concurrency (32 = silicon_concurrency).
        let s32 = src("32");
        let mut c = tp8ep8.to_vec();
        c.extend([
            ("tp_size", "1"),
            ("attention_dp_size", "64"),
            ("batch_size", "32"),
            ("silicon_data_source", s32.as_str()),
        ]);
        assert_eq!(layout(&c), (1, 8, 1, 8, 4.0));
        // A layout in the reference tool's own form keeps its per-rank batch (256 = 32 · 8).
        let s256 = src("256");
        let mut c = tp8ep8.to_vec();
        c.extend([
            ("tp_size", "1"),
            ("attention_dp_size", "8"),
            ("moe_tp_size", "1"),
            ("batch_size", "32"),
            ("silicon_data_source", s256.as_str()),
        ]);
        assert_eq!(layout(&c), (1, 8, 1, 8, 32.0));
        // Inside an NVL72 rack a 64-GPU worker is real: kept as given.
        let mut c = tp8ep8.to_vec();
        c.extend([("system", "gb200"), ("tp_size", "64"), ("batch_size", "16")]);
        assert_eq!(layout(&c), (64, 1, 8, 8, 16.0));
    }

    #[test]
    fn rows_that_cannot_be_predicted_say_why() {
        let mut m = RowMapper::new();
        let skip =
            |r: Row, m: &mut RowMapper| m.request(&r, DatabaseMode::Empirical).unwrap_err().0;
        assert_eq!(skip(row(&[("mode", "disagg")]), &mut m), "underspecified");
        assert_eq!(skip(row(&[("isl", "0")]), &mut m), "invalid");
        assert_eq!(
            skip(row(&[("model_path", "no/such-model")]), &mut m),
            "unsupported"
        );
        assert_eq!(skip(row(&[("backend", "tgi")]), &mut m), "unsupported");
    }

    #[test]
    fn accuracy_groups_and_summaries() {
        let prepared = prepare(
            vec![row(&[]), row(&[("id", "r2"), ("mode", "disagg")])],
            DatabaseMode::Empirical,
            None,
        );
        let preds = vec![Ok((110.0, 9.0)), Err(("underspecified".into(), "x".into()))];
        let a = Accuracy::of(&prepared, &preds);
        assert_eq!((a.overall.rows, a.overall.ok, a.complete), (2, 1, 1));
        assert_eq!(a.status["underspecified"], 1);
        let agg = &a.groups[&("mode".to_string(), "agg".to_string())];
        assert_eq!(agg.ok, 1);
        assert!((agg.ttft[0] - 0.1).abs() < 1e-12 && (agg.tpot[0] + 0.1).abs() < 1e-12);
        let s = summarize(&[0.1, -0.3, 0.2]);
        assert!((s.med - 0.2).abs() < 1e-12 && (s.bias - 0.1).abs() < 1e-12);
        assert!((s.w25 - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn calibration_modes() {
        assert!(!fits_silicon(DatabaseMode::Empirical).unwrap());
        assert!(fits_silicon(DatabaseMode::Hybrid).unwrap());
        assert!(fits_silicon(DatabaseMode::Sol).is_err());
    }
}
