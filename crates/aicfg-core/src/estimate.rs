//! One deployment → one prediction: resolves quantization, builds workers, runs the serving
//! model, and collects memory and per-op breakdowns.
use crate::backend::Backend;
use crate::cost::{gpu_price, Cost};
use crate::error::{AicfgError, Result};
use crate::hardware::SystemSpec;
use crate::memory::MemoryBreakdown;
use crate::model::graph::Parallel;
use crate::model::ModelSpec;
use crate::perf::source::DeploymentSources;
use crate::perf::{BackendCalib, EmpiricalParams, OpTime, Step};
use crate::perfdb::OpDb;
use crate::quant::{ComputeDtype, FmhaQuant, GemmQuant, KvQuant, MoeQuant, QuantConfig};
use crate::serve::{self, Perf, ServeMode, Worker, Workload};
use crate::DatabaseMode;
use serde::Serialize;

/// User-level quantization choices; `None` = infer from the checkpoint, then bf16.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QuantRequest {
    pub gemm: Option<GemmQuant>,
    pub moe: Option<MoeQuant>,
    pub kvcache: Option<KvQuant>,
    pub fmha: Option<FmhaQuant>,
    pub comm: Option<crate::quant::CommQuant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WorkerSpec {
    pub parallel: Parallel,
    /// Requests per attention-DP rank: agg concurrency (worker concurrency = batch × dp), or the
    /// batch of a prefill/decode worker.
    pub batch_size: f64,
    pub workers: u32,
}

#[derive(Debug, Clone)]
pub struct EstimateRequest {
    pub model: ModelSpec,
    pub system: SystemSpec,
    pub decode_system: Option<SystemSpec>,
    pub backend: Backend,
    pub mode: ServeMode,
    pub workload: Workload,
    pub quant: QuantRequest,
    pub agg: WorkerSpec,
    pub prefill: WorkerSpec,
    pub decode: WorkerSpec,
    pub database_mode: DatabaseMode,
    /// Backend version of the measured op database (silicon/hybrid); None = newest installed.
    pub backend_version: Option<String>,
    pub free_gpu_memory_fraction: Option<f64>,
    pub calibration: Option<EmpiricalParams>,
    /// Price of a GPU-hour (US dollars) for every system, over the systems' own
    /// `misc.gpu_cost_per_hour`; the report's cost is absent when no price is known.
    pub gpu_cost_per_hour: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkerReport {
    pub role: &'static str,
    pub system: String,
    pub parallel: String,
    pub gpus: u32,
    pub batch_size: f64,
    pub workers: u32,
    pub memory: MemoryBreakdown,
    pub quant: QuantConfig,
    /// Where each format came from (flag, checkpoint, derived, default, downgraded).
    pub quant_origin: Option<QuantOrigin>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EstimateReport {
    pub model: String,
    pub backend: &'static str,
    pub mode: ServeMode,
    /// The mode that answered (`auto` resolved to `hybrid` or `empirical`).
    pub database_mode: &'static str,
    /// Measured op database used (`system/backend/version`), if any.
    pub database: Option<String>,
    pub isl: f64,
    pub osl: f64,
    pub ttft_ms: f64,
    pub tpot_ms: f64,
    pub request_latency_ms: f64,
    pub tokens_per_s: f64,
    pub tokens_per_s_per_gpu: f64,
    pub tokens_per_s_per_user: f64,
    pub request_rate: f64,
    pub concurrency: f64,
    pub num_gpus: u32,
    /// Largest per-GPU memory among the workers (GiB).
    pub memory_gib: f64,
    pub oom: bool,
    pub workers: Vec<WorkerReport>,
    /// One prefill of one request (per-op ms).
    pub context_ops: Vec<OpTime>,
    pub context_ms: f64,
    /// One decode step at the running batch (per-op ms).
    pub decode_ops: Vec<OpTime>,
    pub decode_step_ms: f64,
    /// Dollars per hour and per million tokens, when every worker's GPU has a price.
    pub cost: Option<Cost>,
    pub notes: Vec<String>,
}

/// Where each of a worker's five formats came from, in words a report can show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuantOrigin {
    pub gemm: String,
    pub moe: String,
    pub kvcache: String,
    pub fmha: String,
    pub comm: String,
}

impl QuantOrigin {
    /// Formats the hardware changed from what the checkpoint or the flags asked: worth a note.
    pub fn downgrades(&self) -> Vec<&str> {
        [&self.gemm, &self.moe, &self.kvcache, &self.fmha]
            .into_iter()
            .filter(|o| o.starts_with("downgraded"))
            .map(String::as_str)
            .collect()
    }
}

/// Resolve the five modes: explicit > checkpoint > bf16, then hardware downgrades.
pub fn resolve_quant(
    m: &ModelSpec,
    sys: &SystemSpec,
    r: &QuantRequest,
    backend: Backend,
) -> Result<QuantConfig> {
    resolve_quant_explained(m, sys, r, backend).map(|(q, _)| q)
}

/// [`resolve_quant`] with the origin of each format (flag, checkpoint, derived, default,
/// downgraded by the hardware).
pub fn resolve_quant_explained(
    m: &ModelSpec,
    sys: &SystemSpec,
    r: &QuantRequest,
    backend: Backend,
) -> Result<(QuantConfig, QuantOrigin)> {
    let ck = m.quant;
    let flag = |f: &str| format!("--{f}-quant-mode");
    let from = |given: bool, ckpt: bool, f: &str| -> String {
        if given {
            flag(f)
        } else if ckpt {
            "checkpoint".into()
        } else {
            "default".into()
        }
    };
    let mut gemm = r.gemm.or(ck.gemm).unwrap_or(GemmQuant::Bfloat16);
    // A checkpoint without a quantization block ships bf16/fp16 weights: still the checkpoint's.
    let mut gemm_o = from(r.gemm.is_some(), true, "gemm");
    let mut moe = r.moe.or(ck.moe).unwrap_or(match r.gemm {
        Some(g) => g.as_moe(),
        None => MoeQuant::Bfloat16,
    });
    let mut moe_o = match (r.moe.is_some(), ck.moe.is_some(), r.gemm) {
        (false, false, Some(_)) => format!("follows {}", flag("gemm")),
        (g, _, _) => from(g, true, "moe"),
    };
    let low_precision_ckpt = matches!(
        ck.gemm,
        Some(GemmQuant::Fp8 | GemmQuant::Fp8Block | GemmQuant::Nvfp4 | GemmQuant::Fp8Static)
    );
    let low_precision_flag =
        matches!(r.gemm, Some(g) if g != GemmQuant::Bfloat16 && !g.weight_only());
    let kvcache = r
        .kvcache
        .or(ck.kvcache)
        .unwrap_or(if low_precision_ckpt || low_precision_flag {
            KvQuant::Fp8
        } else {
            KvQuant::Bfloat16
        });
    let mut kv_o = if r.kvcache.is_some() || ck.kvcache.is_some() {
        from(r.kvcache.is_some(), ck.kvcache.is_some(), "kvcache")
    } else if low_precision_flag {
        format!("follows {}", flag("gemm"))
    } else if low_precision_ckpt {
        "follows the checkpoint's GEMM format".into()
    } else {
        "default".into()
    };
    let fmha = r.fmha.unwrap_or(
        if kvcache == KvQuant::Fp8
            && backend != Backend::Vllm
            && sys.flops(ComputeDtype::Fp8).is_some()
        {
            FmhaQuant::Fp8
        } else {
            FmhaQuant::Bfloat16
        },
    );
    let fmha_o = if r.fmha.is_some() {
        flag("fmha")
    } else if fmha == FmhaQuant::Fp8 {
        "follows the KV cache".into()
    } else {
        "default".into()
    };
    // Without FP4 tensor cores, NVFP4 checkpoints run as weight-only (dequantize to bf16).
    if sys.flops(ComputeDtype::Fp4).is_none() {
        let why = |o: &str| {
            format!(
                "downgraded from nvfp4 ({o}): {} has no FP4 tensor cores, so it runs weight-only",
                sys.name
            )
        };
        if gemm == GemmQuant::Nvfp4 {
            gemm = GemmQuant::Nvfp4Wo;
            gemm_o = why(&gemm_o);
        }
        if moe == MoeQuant::Nvfp4 {
            moe = MoeQuant::Nvfp4Wo;
            moe_o = why(&moe_o);
        }
    }
    let kv =
        if sys.flops(ComputeDtype::Fp8).is_none() && kvcache == KvQuant::Fp8 && r.kvcache.is_none()
        {
            kv_o = format!(
                "downgraded from fp8 ({kv_o}): {} has no FP8 support, so int8",
                sys.name
            );
            KvQuant::Int8
        } else {
            kvcache
        };
    let q = QuantConfig {
        gemm,
        moe,
        kvcache: kv,
        fmha,
        comm: r.comm.unwrap_or(crate::quant::CommQuant::Half),
    };
    let origin = QuantOrigin {
        gemm: gemm_o,
        moe: moe_o,
        kvcache: kv_o,
        fmha: fmha_o,
        comm: if r.comm.is_some() {
            flag("comm")
        } else {
            "default".into()
        },
    };
    let check = |d: ComputeDtype, name: &str| -> Result<()> {
        if sys.flops(d).is_none() {
            return Err(AicfgError::UnsupportedDtype {
                system: sys.name.clone(),
                dtype: d.name().into(),
                quant: name.into(),
                available: sys.available_dtypes().join(", "),
            });
        }
        Ok(())
    };
    check(q.gemm.compute(), q.gemm.name())?;
    if m.family.is_moe() {
        check(q.moe.compute(), q.moe.name())?;
    }
    check(q.fmha.compute(), q.fmha.name())?;
    Ok((q, origin))
}

/// Errors and notes of [`crate::admit::check`] for this request's systems and backend.
fn admit(req: &EstimateRequest) -> Result<Vec<String>> {
    let mut systems = vec![&req.system];
    if req.mode == ServeMode::Disagg {
        systems.extend(req.decode_system.as_ref());
    }
    crate::admit::check(&req.model, &systems, &[req.backend], &req.workload)
}

impl EstimateRequest {
    /// The one check of an estimate's inputs (the input spec runs it, `estimate` again).
    pub fn validate(&self) -> Result<()> {
        validate(self)
    }
}

fn validate(req: &EstimateRequest) -> Result<()> {
    req.workload.validate()?;
    crate::cost::check_price(req.gpu_cost_per_hour)?;
    admit(req)?;
    for (role, ws) in [
        ("batch_size", req.agg),
        ("prefill_batch_size", req.prefill),
        ("decode_batch_size", req.decode),
    ] {
        let max = f64::from(crate::limits::MAX_BATCH);
        if !(ws.batch_size.is_finite() && (1.0..=max).contains(&ws.batch_size)) {
            return Err(AicfgError::invalid(
                role,
                format!(
                    "must be at least 1 and at most {max}, got {}",
                    ws.batch_size
                ),
            ));
        }
    }
    crate::memory::check_fraction(req.free_gpu_memory_fraction)
}

/// The workers of one deployment: one aggregated (or static) worker, or a prefill and a decode
/// worker.
pub enum Workers<'a> {
    Agg(Worker<'a>),
    Disagg {
        prefill: Worker<'a>,
        decode: Worker<'a>,
    },
}

/// Builds `req`'s workers on `sources` — the one place the closed form (`estimate`) and the
/// simulator (`simulate`) get them from. `host` replaces the sources' closed-form host constants
/// (the simulator models host time itself and passes zeros); `None` keeps them.
pub fn build_workers<'a>(
    req: &'a EstimateRequest,
    sources: &'a DeploymentSources,
    host: Option<BackendCalib>,
) -> Result<Workers<'a>> {
    let m = &req.model;
    let w = &req.workload;
    let fraction = req.free_gpu_memory_fraction;
    let (main, dsrc) = (&sources.main, sources.decode());
    match req.mode {
        ServeMode::Agg | ServeMode::Static => {
            let q = resolve_quant(m, &req.system, &req.quant, req.backend)?;
            Ok(Workers::Agg(Worker::new(
                m,
                &req.agg.parallel,
                &q,
                &req.system,
                req.backend,
                host.unwrap_or(main.calib),
                main.source(),
                fraction,
                w.nextn,
            )?))
        }
        ServeMode::Disagg => {
            let dsys = req.decode_system.as_ref().unwrap_or(&req.system);
            let qp = resolve_quant(m, &req.system, &req.quant, req.backend)?;
            let qd = resolve_quant(m, dsys, &req.quant, req.backend)?;
            // Prefill workers draft no MTP tokens; only decode steps carry the extra layers.
            let prefill = Worker::new(
                m,
                &req.prefill.parallel,
                &qp,
                &req.system,
                req.backend,
                host.unwrap_or(main.calib),
                main.source(),
                fraction,
                0,
            )?;
            let decode = Worker::new(
                m,
                &req.decode.parallel,
                &qd,
                dsys,
                req.backend,
                host.unwrap_or(dsrc.calib),
                dsrc.source(),
                fraction,
                w.nextn,
            )?;
            Ok(Workers::Disagg { prefill, decode })
        }
    }
}

/// The request's own calibration, else the embedded one.
pub fn params_for(req: &EstimateRequest) -> EmpiricalParams {
    req.calibration
        .clone()
        .unwrap_or_else(EmpiricalParams::embedded)
}

/// TTFT and TPOT only (no breakdowns): the fast path used by harnesses and search.
pub fn predict(req: &EstimateRequest) -> Result<Perf> {
    validate(req)?;
    predict_with(req, &params_for(req))
}

/// As `predict`, with explicit empirical constants (calibration loops).
pub fn predict_with(req: &EstimateRequest, params: &EmpiricalParams) -> Result<Perf> {
    evaluate(req, params, false).map(|(perf, _)| perf)
}

/// Full prediction with memory and per-op breakdowns.
pub fn estimate(req: &EstimateRequest) -> Result<EstimateReport> {
    validate(req)?;
    let (_, report) = evaluate(req, &params_for(req), true)?;
    Ok(report.expect("evaluate builds the report when asked"))
}

/// Why one request of the workload's full length does not fit a worker of the deployment at
/// its memory settings (the framework defaults unless the request sets a fraction), or `None`
/// when it fits: weights, workspace and one sequence's KV cache. A measured run of a layout
/// that does not fit set its own memory split, which the row does not record.
pub fn one_request_misfit(
    req: &EstimateRequest,
    params: &EmpiricalParams,
) -> Result<Option<String>> {
    let dsys = req.decode_system.as_ref().unwrap_or(&req.system);
    let sources = DeploymentSources::open(
        DatabaseMode::Empirical,
        params,
        req.backend,
        &req.system,
        (req.mode == ServeMode::Disagg).then_some(dsys),
        None,
    )?;
    let w = &req.workload;
    let check = |role: &str, wk: &Worker, seq: f64, tokens: f64| {
        let m = wk.memory(1.0, seq, tokens);
        (m.oom || m.max_requests_by_kv < 1.0).then(|| {
            format!(
                "{role} worker {}: one request's KV cache needs {:.2} GiB, {:.2} GiB are left after {:.1} GiB of weights at memory fraction {:.3}",
                wk.graph.parallel.label(),
                m.kv_cache_gib,
                m.kv_budget_gib,
                m.weights_gib,
                wk.memory_fraction()
            )
        })
    };
    Ok(match build_workers(req, &sources, None)? {
        Workers::Agg(wk) => {
            let budget = wk.backend.step_token_budget(&req.system);
            check("agg", &wk, w.isl + w.osl, budget)
        }
        Workers::Disagg { prefill, decode } => {
            check("prefill", &prefill, w.isl + 1.0, w.isl - w.prefix)
                .or_else(|| check("decode", &decode, w.isl + w.osl, 1.0 + w.nextn as f64))
        }
    })
}

/// Build the workers, run the serving model, and (when `with_report`) collect the breakdowns.
fn evaluate(
    req: &EstimateRequest,
    params: &EmpiricalParams,
    with_report: bool,
) -> Result<(Perf, Option<EstimateReport>)> {
    let dsys = req.decode_system.as_ref().unwrap_or(&req.system);
    let sources = DeploymentSources::open(
        req.database_mode,
        params,
        req.backend,
        &req.system,
        (req.mode == ServeMode::Disagg).then_some(dsys),
        req.backend_version.as_deref(),
    )?;
    let (main, dsrc) = (&sources.main, sources.decode());
    let (db_p, db_d) = (&main.db, &dsrc.db);
    let effective = sources.mode();
    let strict = main.is_strict();
    let burst_waves = main.burst_waves;
    // SILICON: an op the tables cannot answer fails the whole prediction, naming the op.
    let check = || sources.check();
    let w = req.workload;
    let kv_avg = w.isl + w.osl / 2.0;
    let mut notes = if with_report { admit(req)? } else { Vec::new() };
    let database = db_p.as_ref().map(|d| db_label(d));
    if with_report {
        match (db_p, req.database_mode) {
            (Some(d), _) => {
                let decode = match &db_d {
                    Some(dd) if dd.key != d.key => format!(", decode workers {}", db_label(dd)),
                    _ => String::new(),
                };
                let rest = if strict {
                    "ops with no table family (norms, activations, embedding, P2P) use the empirical formulas"
                } else {
                    "ops the tables do not cover use the empirical model"
                };
                notes.push(format!(
                    "database mode {}: measured op tables {} ({} rows){decode}; {rest}",
                    effective.name(),
                    db_label(d),
                    d.tables.rows
                ))
            }
            (None, DatabaseMode::Auto) => notes.push(format!(
                "database mode empirical: no measured op database installed for {}/{} (`aicfg data install` adds one)",
                req.system.name,
                req.backend.name()
            )),
            _ => {}
        }
    }
    match build_workers(req, &sources, None)? {
        Workers::Agg(wk) => {
            let perf = if req.mode == ServeMode::Agg {
                serve::agg(&wk, &w, req.agg.batch_size, burst_waves)
            } else {
                serve::static_batch(&wk, &w, req.agg.batch_size)
            };
            check()?;
            if !with_report {
                return Ok((perf, None));
            }
            let per_rank = req.agg.batch_size.max(1.0);
            // Memory of the batch that actually runs; the rest wait outside the KV cache.
            let mem = wk.memory(
                perf.running_per_rank,
                w.isl + w.osl,
                wk.backend.step_token_budget(&req.system),
            );
            if perf.kv_queue_ms > 0.0 {
                notes.push(format!(
                    "KV cache holds {:.0} requests per rank; {:.0} requested, the rest queue ({:.0} ms mean wait)",
                    perf.running_per_rank, per_rank, perf.kv_queue_ms
                ));
            }
            let ctx = Step::context(1.0, w.isl - w.prefix, w.prefix);
            let dec = Step::decode(perf.running_per_rank, kv_avg, 1.0 + w.nextn as f64);
            let workers = vec![worker_report("agg", &wk, req.agg, mem)];
            let r = report(req, perf.clone(), workers, &wk, &ctx, &wk, &dec, notes);
            check()?;
            let r = EstimateReport {
                database_mode: effective.name(),
                database,
                ..r
            };
            Ok((perf, Some(r)))
        }
        Workers::Disagg {
            prefill: pre,
            decode: dec,
        } => {
            let r = serve::disagg(
                &pre,
                &dec,
                &w,
                req.prefill.batch_size,
                req.prefill.workers,
                req.decode.batch_size,
                req.decode.workers,
                burst_waves,
            );
            check()?;
            if !with_report {
                return Ok((r.perf, None));
            }
            let pb = req.prefill.batch_size.max(1.0);
            let pmem = pre.memory(pb, w.isl + 1.0, pb * (w.isl - w.prefix));
            let db = req.decode.batch_size.max(1.0);
            let dmem = dec.memory(db, w.isl + w.osl, db * (1.0 + w.nextn as f64));
            notes.push(format!(
                "prefill {:.3} seq/s/worker, decode {:.3} seq/s/worker; KV transfer {:.2} ms exposed; prefill queue {:.1} ms",
                r.prefill_seq_per_s_per_worker, r.decode_seq_per_s_per_worker, r.kv_transfer_ms, r.prefill_queue_ms
            ));
            let ctx = Step::context(pb, w.isl - w.prefix, w.prefix);
            let dstep = Step::decode(r.perf.running_per_rank, kv_avg, 1.0 + w.nextn as f64);
            let workers = vec![
                worker_report("prefill", &pre, req.prefill, pmem),
                worker_report("decode", &dec, req.decode, dmem),
            ];
            let rep = report(
                req,
                r.perf.clone(),
                workers,
                &pre,
                &ctx,
                &dec,
                &dstep,
                notes,
            );
            check()?;
            let rep = EstimateReport {
                database_mode: effective.name(),
                database,
                ..rep
            };
            Ok((r.perf, Some(rep)))
        }
    }
}

fn db_label(d: &OpDb) -> String {
    format!("{}/{}/{}", d.key.system, d.key.backend, d.key.version)
}

fn worker_report(
    role: &'static str,
    wk: &Worker,
    ws: WorkerSpec,
    memory: MemoryBreakdown,
) -> WorkerReport {
    WorkerReport {
        role,
        system: wk.system.name.clone(),
        parallel: wk.graph.parallel.label(),
        gpus: wk.gpus(),
        batch_size: ws.batch_size,
        workers: ws.workers,
        memory,
        quant: wk.graph.quant,
        quant_origin: None,
    }
}

#[allow(clippy::too_many_arguments)]
fn report(
    req: &EstimateRequest,
    perf: Perf,
    workers: Vec<WorkerReport>,
    ctx_worker: &Worker,
    ctx: &Step,
    dec_worker: &Worker,
    dec: &Step,
    notes: Vec<String>,
) -> EstimateReport {
    let mut workers = workers;
    let mut notes = notes;
    for w in &mut workers {
        let sys = match (w.role, &req.decode_system) {
            ("decode", Some(d)) => d,
            _ => &req.system,
        };
        if let Ok((_, o)) = resolve_quant_explained(&req.model, sys, &req.quant, req.backend) {
            for d in o.downgrades() {
                let n = format!("quantization {d}");
                if !notes.contains(&n) {
                    notes.push(n);
                }
            }
            w.quant_origin = Some(o);
        }
    }
    let context_ops = ctx_worker.breakdown(ctx);
    let decode_ops = dec_worker.breakdown(dec);
    let memory_gib = workers
        .iter()
        .map(|w| w.memory.total_gib)
        .fold(0.0, f64::max);
    let oom = workers.iter().any(|w| w.memory.oom);
    let cost = price(req, &workers, &perf);
    EstimateReport {
        model: req.model.name.clone(),
        backend: req.backend.name(),
        mode: req.mode,
        database_mode: req.database_mode.name(),
        database: None,
        isl: req.workload.isl,
        osl: req.workload.osl,
        ttft_ms: perf.ttft_ms,
        tpot_ms: perf.tpot_ms,
        request_latency_ms: perf.request_latency_ms,
        tokens_per_s: perf.tokens_per_s,
        tokens_per_s_per_gpu: perf.tokens_per_s_per_gpu,
        tokens_per_s_per_user: perf.tokens_per_s_per_user,
        request_rate: perf.request_rate,
        concurrency: perf.concurrency,
        num_gpus: perf.num_gpus,
        memory_gib,
        oom,
        workers,
        context_ms: context_ops.iter().map(|o| o.ms).sum(),
        context_ops,
        decode_step_ms: decode_ops.iter().map(|o| o.ms).sum(),
        decode_ops,
        cost,
        notes,
    }
}

/// The workers' GPU-hours at their systems' prices over the tokens they serve; `None` when a
/// worker's system has no price.
fn price(req: &EstimateRequest, workers: &[WorkerReport], perf: &Perf) -> Option<Cost> {
    let mut usd_per_hour = 0.0;
    for w in workers {
        let sys = match (w.role, &req.decode_system) {
            ("decode", Some(d)) => d,
            _ => &req.system,
        };
        usd_per_hour += f64::from(w.gpus * w.workers) * gpu_price(req.gpu_cost_per_hour, sys)?;
    }
    Cost::new(
        usd_per_hour,
        perf.tokens_per_s,
        perf.request_rate * req.workload.isl,
    )
}
