//! `aicfg bench accuracy` and `aicfg bench calibrate`: score predictions against measured serving
//! runs (the silicon_calib.csv schema) and fit the empirical constants to them.
use aicfg_core::estimate::{predict_with, QuantRequest, WorkerSpec};
use aicfg_core::model::graph::Parallel;
use aicfg_core::perf::EmpiricalParams;
use aicfg_core::quant::{GemmQuant, MoeQuant};
use aicfg_core::{
    Backend, DatabaseMode, EstimateRequest, ModelRegistry, ModelSpec, ServeMode, SystemRegistry,
    Workload,
};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Predict every row of a measured-runs CSV and print error statistics.
    Accuracy(AccuracyArgs),
    /// Fit the empirical constants to a measured-runs CSV and write a calibration YAML.
    Calibrate(CalibrateArgs),
    /// Time the `cli default` search on the reference cases (wall time, peak memory).
    Search(crate::bench_search::SearchBenchArgs),
    /// Benchmark a running OpenAI-compatible endpoint (streaming TTFT, ITL, TPOT, throughput).
    Serve(Box<crate::serve_bench::ServeBenchArgs>),
}

#[derive(Args)]
pub struct AccuracyArgs {
    /// CSV in the silicon_calib.csv schema (id, backend, model_path, system, mode, isl, osl, ...).
    #[arg(long)]
    pub csv: PathBuf,
    /// silicon, hybrid, empirical, sol, or auto (hybrid where a measured database for the row's
    /// system/backend is installed, else empirical).
    #[arg(
        long = "database-mode",
        alias = "database_mode",
        default_value = "auto"
    )]
    pub database_mode: String,
    /// Backend version of the measured op database (default: the newest installed).
    #[arg(long = "backend-version", alias = "backend_version")]
    pub backend_version: Option<String>,
    /// Write per-row predictions (id,pred_ttft_ms,pred_tpot_ms,status,detail).
    #[arg(long = "predictions-out", alias = "predictions_out")]
    pub predictions_out: Option<PathBuf>,
    /// Calibration YAML replacing the embedded constants.
    #[arg(long)]
    pub calibration: Option<PathBuf>,
}

#[derive(Args)]
pub struct CalibrateArgs {
    /// Measured serving runs to fit, one row per run (same schema as `bench accuracy --csv`).
    #[arg(long)]
    pub csv: PathBuf,
    /// Where to write the fitted constants.
    #[arg(long)]
    pub out: PathBuf,
    /// Starting constants (default: the embedded calibration).
    #[arg(long)]
    pub start: Option<PathBuf>,
    /// Optimizer sweeps.
    #[arg(long, default_value_t = 6)]
    pub rounds: usize,
    /// empirical: fit the op efficiencies and serving constants; hybrid: fit only the serving
    /// constants used with the measured op database (the `silicon` section).
    #[arg(
        long = "database-mode",
        alias = "database_mode",
        default_value = "empirical"
    )]
    pub database_mode: String,
    /// What to fit: all (every constant of the mode), serving (only the serving constants of
    /// the rows' backends: per-step host cost, fixed TTFT, prefill wait), or auto (serving for
    /// fewer than 100 rows, where a few load points cannot pin down the kernel efficiencies).
    #[arg(long, default_value = "auto")]
    pub fit: String,
}

pub fn run(cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Accuracy(a) => accuracy(&a),
        BenchCmd::Calibrate(a) => calibrate(&a),
        BenchCmd::Search(a) => crate::bench_search::run(&a),
        BenchCmd::Serve(a) => crate::serve_bench::run(&a),
    }
}

/// One measured row, as read.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: String,
    pub fields: HashMap<String, String>,
    pub ttft: f64,
    pub tpot: f64,
}

impl Row {
    fn get(&self, k: &str) -> &str {
        self.fields.get(k).map(|s| s.trim()).unwrap_or("")
    }
    fn num(&self, k: &str) -> Option<f64> {
        self.get(k).parse::<f64>().ok()
    }
    fn par(&self, k: &str) -> Option<u32> {
        self.num(k).filter(|v| *v > 0.0).map(|v| v as u32)
    }
    pub fn group(&self, k: &str) -> String {
        self.get(k).to_string()
    }
}

pub fn read_rows(path: &PathBuf) -> Result<Vec<Row>> {
    let mut rdr =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let headers = rdr.headers()?.clone();
    for need in [
        "id",
        "backend",
        "model_path",
        "system",
        "mode",
        "isl",
        "osl",
    ] {
        if !headers.iter().any(|h| h == need) {
            anyhow::bail!(
                "{}: missing column '{need}' (expected the silicon_calib.csv schema)",
                path.display()
            );
        }
    }
    let mut rows = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: row {}", path.display(), i + 2))?;
        let fields: HashMap<String, String> = headers
            .iter()
            .zip(rec.iter())
            .map(|(h, v)| (h.to_string(), v.to_string()))
            .collect();
        let f = |k: &str| {
            fields
                .get(k)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        rows.push(Row {
            id: fields.get("id").cloned().unwrap_or_default(),
            ttft: f("silicon_ttft_ms"),
            tpot: f("silicon_tpot_ms"),
            fields,
        });
    }
    Ok(rows)
}

/// Build the request for a row, or say why it cannot be predicted.
pub struct RowMapper {
    models: ModelRegistry,
    systems: SystemRegistry,
    cache: HashMap<String, std::result::Result<ModelSpec, String>>,
    /// Measured-database backend version for every row (None = newest installed).
    pub backend_version: Option<String>,
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
    ) -> std::result::Result<EstimateRequest, (String, String)> {
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
        let is_moe = model.family.is_moe();
        let par = |prefix: &str| -> Parallel {
            let g = |k: &str| r.par(&format!("{prefix}{k}"));
            let mut tp = g("tp_size").unwrap_or(1);
            let pp = g("pp_size").unwrap_or(1);
            let mut dp = if is_moe {
                g("attention_dp_size").unwrap_or(1)
            } else {
                1
            };
            if !is_moe {
                return Parallel {
                    tp,
                    pp,
                    dp: 1,
                    moe_tp: 1,
                    moe_ep: 1,
                };
            }
            // SGLang reports the world size as tp; when it cannot split the heads, attention runs
            // data-parallel over those GPUs (--enable-dp-attention).
            if dp == 1 && model.num_heads % tp as u64 != 0 {
                dp = tp;
                tp = 1;
            }
            let (etp, ep) = (g("moe_tp_size"), g("moe_ep_size"));
            let n = tp * dp;
            let (etp, ep) = match (etp, ep) {
                (Some(t), Some(e)) if t * e == n => (t, e),
                (_, Some(e)) if n % e == 0 => (n / e, e),
                (Some(t), _) if n % t == 0 => (t, n / t),
                _ => (n, 1),
            };
            Parallel {
                tp,
                pp,
                dp,
                moe_tp: etp,
                moe_ep: ep,
            }
        };
        let quant = QuantRequest {
            gemm,
            moe,
            ..Default::default()
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
            }
        };
        match r.get("mode") {
            "agg" => {
                let Some(bs) = r.num("batch_size").filter(|b| *b >= 1.0) else {
                    return skip("underspecified", "agg row without batch_size".into());
                };
                let w = WorkerSpec {
                    parallel: par(""),
                    batch_size: bs,
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
                let p = WorkerSpec {
                    parallel: par("prefill_"),
                    batch_size: pb,
                    workers: pw,
                };
                let d = WorkerSpec {
                    parallel: par("decode_"),
                    batch_size: db,
                    workers: dw,
                };
                Ok(base(ServeMode::Disagg, d, p, d))
            }
            m => skip("invalid", format!("unknown mode '{m}'")),
        }
    }
}

pub struct Prepared {
    pub row: Row,
    pub req: std::result::Result<EstimateRequest, (String, String)>,
}

pub fn prepare(
    rows: Vec<Row>,
    mode: DatabaseMode,
    backend_version: Option<String>,
) -> Vec<Prepared> {
    let mut mapper = RowMapper::new();
    mapper.backend_version = backend_version;
    rows.into_iter()
        .map(|row| {
            let req = mapper.request(&row, mode);
            Prepared { row, req }
        })
        .collect()
}

/// Predictions for prepared rows: Ok((ttft, tpot)) or Err((status, detail)).
pub fn predict_all(
    rows: &[Prepared],
    params: &EmpiricalParams,
) -> Vec<std::result::Result<(f64, f64), (String, String)>> {
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

#[derive(Default, Clone)]
struct Stats {
    ttft: Vec<f64>,
    tpot: Vec<f64>,
    rows: usize,
    ok: usize,
}

fn median(v: &mut [f64]) -> f64 {
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

struct Summary {
    n: usize,
    med: f64,
    mean: f64,
    w10: f64,
    w25: f64,
    bias: f64,
}

fn summarize(signed: &[f64]) -> Summary {
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

fn pct(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * x)
    }
}

fn add_rows(t: &mut Table, label: &str, s: &Stats) {
    let a = summarize(&s.ttft);
    let b = summarize(&s.tpot);
    t.add_row(vec![
        label.to_string(),
        format!("{}/{}", s.ok, s.rows),
        pct(a.med),
        pct(a.mean),
        pct(a.w10),
        pct(a.w25),
        format!("{:+.1}%", 100.0 * a.bias),
        pct(b.med),
        pct(b.mean),
        pct(b.w10),
        pct(b.w25),
        format!("{:+.1}%", 100.0 * b.bias),
    ]);
    let _ = (a.n, b.n);
}

fn accuracy(a: &AccuracyArgs) -> Result<()> {
    let start = Instant::now();
    let mode = DatabaseMode::parse(&a.database_mode)?;
    let params = match &a.calibration {
        Some(p) => EmpiricalParams::from_yaml(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )?,
        None => EmpiricalParams::embedded(),
    };
    let rows = read_rows(&a.csv)?;
    let prepared = prepare(rows, mode, a.backend_version.clone());
    let preds = predict_all(&prepared, &params);
    let elapsed = start.elapsed();

    if let Some(out) = &a.predictions_out {
        let mut w =
            csv::Writer::from_path(out).with_context(|| format!("writing {}", out.display()))?;
        w.write_record(["id", "pred_ttft_ms", "pred_tpot_ms", "status", "detail"])?;
        for (p, r) in prepared.iter().zip(&preds) {
            match r {
                Ok((t, o)) => w.write_record([
                    p.row.id.as_str(),
                    &format!("{t:.3}"),
                    &format!("{o:.3}"),
                    "ok",
                    "",
                ])?,
                Err((s, d)) => {
                    w.write_record([p.row.id.as_str(), "", "", s.as_str(), d.as_str()])?
                }
            }
        }
        w.flush()?;
    }

    let mut overall = Stats::default();
    let mut groups: BTreeMap<(String, String), Stats> = BTreeMap::new();
    let mut status: BTreeMap<String, usize> = BTreeMap::new();
    for (p, r) in prepared.iter().zip(&preds) {
        let keys: Vec<(String, String)> = ["system", "backend", "mode", "model_path"]
            .iter()
            .map(|k| (k.to_string(), p.row.group(k)))
            .collect();
        overall.rows += 1;
        for k in &keys {
            groups.entry(k.clone()).or_default().rows += 1;
        }
        match r {
            Ok((t, o)) => {
                *status.entry("ok".into()).or_default() += 1;
                overall.ok += 1;
                let et = (t - p.row.ttft) / p.row.ttft;
                let eo = (o - p.row.tpot) / p.row.tpot;
                for s in std::iter::once(&mut overall) {
                    s.ttft.push(et);
                    s.tpot.push(eo);
                }
                for k in keys {
                    let g = groups.get_mut(&k).expect("inserted above");
                    g.ok += 1;
                    g.ttft.push(et);
                    g.tpot.push(eo);
                }
            }
            Err((s, _)) => *status.entry(s.clone()).or_default() += 1,
        }
    }
    let complete = overall.rows - status.get("underspecified").copied().unwrap_or(0);
    crate::emitln!(
        "aicfg accuracy — {} ({} database)",
        a.csv.display(),
        mode.name()
    );
    crate::emitln!(
        "rows {}; predicted {} ({:.1}% of {} rows with complete inputs); {}",
        overall.rows,
        overall.ok,
        100.0 * overall.ok as f64 / complete.max(1) as f64,
        complete,
        status
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "group",
        "predicted",
        "TTFT MdAPE",
        "TTFT MAPE",
        "±10%",
        "±25%",
        "bias",
        "TPOT MdAPE",
        "TPOT MAPE",
        "±10%",
        "±25%",
        "bias",
    ]);
    add_rows(&mut t, "overall", &overall);
    let mut last = String::new();
    for ((k, v), s) in &groups {
        if *k != last {
            t.add_row(vec![format!("— by {k} —")]);
            last = k.clone();
        }
        add_rows(&mut t, if v.is_empty() { "(empty)" } else { v }, s);
    }
    crate::emitln!("{t}");
    crate::emitln!(
        "elapsed {:.2} s ({} rows)",
        elapsed.as_secs_f64(),
        overall.rows
    );
    Ok(())
}

/// Robust loss: mean over rows of clipped |log error| of TTFT and TPOT.
fn loss(prepared: &[Prepared], params: &EmpiricalParams, mask: &[bool]) -> f64 {
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
fn fields(p: &mut EmpiricalParams, silicon: bool) -> Vec<(String, &mut f64)> {
    if silicon {
        p.silicon_fields_mut()
    } else {
        p.fields_mut()
    }
}

fn get_vec(p: &EmpiricalParams, silicon: bool) -> Vec<f64> {
    let mut c = p.clone();
    fields(&mut c, silicon)
        .into_iter()
        .map(|(_, v)| *v)
        .collect()
}

fn set_vec(p: &mut EmpiricalParams, v: &[f64], silicon: bool) {
    for ((_, f), x) in fields(p, silicon).into_iter().zip(v) {
        *f = *x;
    }
}

/// Bounds that keep each constant physical (efficiencies ≤ 1).
fn bounds(name: &str) -> (f64, f64) {
    if name == "mem_eff" {
        // Streaming kernels reach at most ~92 % of datasheet HBM bandwidth.
        (0.3, 0.92)
    } else if name.contains("eff") {
        // No kernel sustains the datasheet tensor-core peak; cap near the best published GEMMs.
        (0.05, 0.9)
    } else if name.ends_with("burst_waves") {
        (1.0, 50.0)
    } else if name.contains("wait_steps") {
        (0.0, 4.0)
    } else if name.contains("m_half") {
        (1.0, 1024.0)
    } else if name.contains("overlap_us") {
        // A kernel launch plus ramp-up/tail: a few µs, never more than ~10.
        (0.0, 10.0)
    } else {
        (0.0, 200.0)
    }
}

fn calibrate(a: &CalibrateArgs) -> Result<()> {
    let start = Instant::now();
    let mut params = match &a.start {
        Some(p) => EmpiricalParams::from_yaml(&std::fs::read_to_string(p)?)?,
        None => EmpiricalParams::embedded(),
    };
    let mode = DatabaseMode::parse(&a.database_mode)?;
    let silicon = match mode {
        DatabaseMode::Empirical => false,
        DatabaseMode::Hybrid | DatabaseMode::Silicon => true,
        m => anyhow::bail!(
            "bench calibrate fits empirical or hybrid/silicon constants, not '{}'",
            m.name()
        ),
    };
    if silicon && params.silicon.is_none() {
        params.silicon = Some(aicfg_core::perf::SiliconCalib::from_empirical(&params));
    }
    let rows = read_rows(&a.csv)?;
    let prepared = prepare(rows, mode, None);
    // Two halves by row id: the fit uses all rows; each half's loss is reported to show it is even.
    let fold: Vec<bool> = prepared
        .iter()
        .map(|p| fnv(&p.row.id).is_multiple_of(2))
        .collect();
    let all = vec![true; prepared.len()];
    let names: Vec<String> = fields(&mut params.clone(), silicon)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let serving_only = match a.fit.as_str() {
        "all" => false,
        "serving" => true,
        "auto" => prepared.len() < 100,
        f => anyhow::bail!("--fit must be auto, all or serving, not '{f}'"),
    };
    let backends: std::collections::BTreeSet<String> =
        prepared.iter().map(|p| p.row.group("backend")).collect();
    let free: Vec<bool> = names
        .iter()
        .map(|n| {
            !serving_only
                || backends.iter().any(|b| {
                    n.starts_with(&format!("backends.{b}."))
                        || n.starts_with(&format!("silicon.backends.{b}."))
                })
        })
        .collect();
    if serving_only {
        crate::emitln!(
            "fitting only the serving constants of {} ({} rows; --fit all refits every constant)",
            backends.iter().cloned().collect::<Vec<_>>().join(", "),
            prepared.len()
        );
    }
    let mut x = get_vec(&params, silicon);
    for (i, n) in names.iter().enumerate() {
        let (lo, hi) = bounds(n);
        x[i] = x[i].clamp(lo, hi);
    }
    set_vec(&mut params, &x, silicon);
    let before = predict_all(&prepared, &params);
    let mut best = loss(&prepared, &params, &all);
    crate::emitln!("start loss {best:.4}");
    // Coordinate search in log space with shrinking steps: robust, deterministic, few evaluations.
    let mut step = 0.4f64;
    for round in 0..a.rounds {
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
                    set_vec(&mut params, &y, silicon);
                    let l = loss(&prepared, &params, &all);
                    if l + 1e-6 < best {
                        best = l;
                        x = y;
                    } else {
                        break;
                    }
                }
            }
            set_vec(&mut params, &x, silicon);
        }
        crate::emitln!("round {round}: loss {best:.4} (step {step:.3})");
        step *= 0.6;
    }
    set_vec(&mut params, &x, silicon);
    let l_a = loss(&prepared, &params, &fold);
    let not: Vec<bool> = fold.iter().map(|b| !b).collect();
    let l_b = loss(&prepared, &params, &not);
    crate::emitln!("fitted loss: fold A {l_a:.4}, fold B {l_b:.4}");
    let after = predict_all(&prepared, &params);
    crate::emitln!("{}", before_after(&prepared, &before, &after));
    for (n, f) in names.iter().zip(&free) {
        if *f && serving_only {
            let v = get_vec(&params, silicon)[names.iter().position(|m| m == n).expect("listed")];
            crate::emitln!("  {n} = {v:.4}");
        }
    }
    let header = format!(
        "# Empirical constants fitted by `aicfg bench calibrate` to {} ({} rows); loss {:.4}.\n# Format and meaning: data/calibration/README.md\n",
        a.csv.file_name().and_then(|s| s.to_str()).unwrap_or("csv"),
        prepared.len(),
        best
    );
    std::fs::write(&a.out, header + &params.to_yaml())
        .with_context(|| format!("writing {}", a.out.display()))?;
    crate::emitln!(
        "wrote {} in {:.1} s",
        a.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

type Preds = [std::result::Result<(f64, f64), (String, String)>];

/// Per-row (up to 40 rows) and overall error before and after the fit.
fn before_after(rows: &[Prepared], before: &Preds, after: &Preds) -> String {
    let err = |p: f64, m: f64| 100.0 * (p - m) / m;
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "row",
        "TTFT meas",
        "pred before",
        "err",
        "pred after",
        "err",
        "TPOT meas",
        "pred before",
        "err",
        "pred after",
        "err",
    ]);
    let (mut eb, mut ea): (Vec<f64>, Vec<f64>) = (vec![], vec![]);
    for (i, p) in rows.iter().enumerate() {
        let (Ok((tb, ob)), Ok((ta, oa))) = (&before[i], &after[i]) else {
            continue;
        };
        let (mt, mo) = (p.row.ttft, p.row.tpot);
        eb.extend([err(*tb, mt).abs(), err(*ob, mo).abs()]);
        ea.extend([err(*ta, mt).abs(), err(*oa, mo).abs()]);
        if i < 40 {
            t.add_row(vec![
                p.row.id.clone(),
                format!("{mt:.1}"),
                format!("{tb:.1}"),
                format!("{:+.1}%", err(*tb, mt)),
                format!("{ta:.1}"),
                format!("{:+.1}%", err(*ta, mt)),
                format!("{mo:.2}"),
                format!("{ob:.2}"),
                format!("{:+.1}%", err(*ob, mo)),
                format!("{oa:.2}"),
                format!("{:+.1}%", err(*oa, mo)),
            ]);
        }
    }
    format!(
        "{t}\nmedian |error| over TTFT and TPOT: before {:.1}%, after {:.1}%",
        median(&mut eb),
        median(&mut ea)
    )
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}
