//! `best_config_topn.csv` and `pareto.csv` (docs/model.md §10): one row per deployment with
//! every predicted metric and config column. Per-replica figures, as in the reference, plus the
//! replica count and the cluster figures.
use crate::error::{GenError, Result};
use crate::genconfig::modelled_version;
use aicfg_core::search::{Candidate, WorkerPlan};
use aicfg_core::ServeMode;

/// Workload columns shared by every row.
#[derive(Debug, Clone)]
pub struct RowContext {
    pub model: String,
    pub isl: u32,
    pub osl: u32,
    pub prefix: u32,
}

fn f3(v: f64) -> String {
    let r = (v * 1000.0).round() / 1000.0;
    if r == r.trunc() && r.abs() < 1e15 {
        format!("{r:.1}")
    } else {
        format!("{r}")
    }
}

const WORKER_COLS: [&str; 14] = [
    "tp", "pp", "dp", "moe_tp", "moe_ep", "parallel", "gemm", "kvcache", "fmha", "moe", "comm",
    "memory", "backend", "version",
];

fn worker_cols(w: &WorkerPlan, c: &Candidate) -> Vec<String> {
    let p = &w.parallel;
    vec![
        p.tp.to_string(),
        p.pp.to_string(),
        p.dp.to_string(),
        p.moe_tp.to_string(),
        p.moe_ep.to_string(),
        format!(
            "tp{}pp{}dp{}etp{}ep{}",
            p.tp, p.pp, p.dp, p.moe_tp, p.moe_ep
        ),
        w.quant.gemm.name().to_string(),
        w.quant.kvcache.name().to_string(),
        w.quant.fmha.name().to_string(),
        w.quant.moe.name().to_string(),
        w.quant.comm.name().to_string(),
        f3(w.memory_gib),
        c.backend.name().to_string(),
        modelled_version(c.backend).to_string(),
    ]
}

fn header(mode: ServeMode, priced: bool) -> Vec<String> {
    let mut h: Vec<String> = [
        "model",
        "isl",
        "osl",
        "prefix",
        "concurrency",
        "request_rate",
    ]
    .map(String::from)
    .to_vec();
    match mode {
        ServeMode::Disagg => {
            for r in ["(p)", "(d)"] {
                for c in ["bs", "global_bs", "workers"] {
                    h.push(format!("{r}{c}"));
                }
            }
        }
        _ => h.extend(["bs", "global_bs"].map(String::from)),
    }
    h.extend(
        [
            "ttft",
            "tpot",
            "request_latency",
            "seq/s",
            "seq/s/gpu",
            "tokens/s",
            "tokens/s/gpu",
            "tokens/s/user",
            "num_total_gpus",
        ]
        .map(String::from),
    );
    match mode {
        ServeMode::Disagg => {
            for r in ["(p)", "(d)"] {
                for c in WORKER_COLS {
                    h.push(format!("{r}{c}"));
                }
                h.push(format!("{r}system"));
            }
        }
        _ => {
            h.extend(WORKER_COLS.map(String::from));
            h.push("system".into());
        }
    }
    h.extend(
        [
            "replicas",
            "total_gpus_used",
            "concurrency_cluster",
            "tokens/s/gpu_cluster",
            "meets_sla",
        ]
        .map(String::from),
    );
    if priced {
        h.extend(COST_COLS.map(String::from));
    }
    h
}

/// Cluster cost columns, present when a GPU-hour price is known (empty where a row has none).
const COST_COLS: [&str; 3] = [
    "usd_per_hour",
    "usd_per_m_output_tokens",
    "usd_per_m_input_tokens",
];

fn row(c: &Candidate, ctx: &RowContext, priced: bool) -> Vec<String> {
    let gpus = c.gpus_per_replica.max(1) as f64;
    let mut r = vec![
        ctx.model.clone(),
        ctx.isl.to_string(),
        ctx.osl.to_string(),
        ctx.prefix.to_string(),
        f3(c.concurrency_per_replica),
        f3(c.replica_request_rate),
    ];
    let bs = |w: &WorkerPlan| (w.batch_size, w.batch_size * w.parallel.dp);
    match (&c.prefill, &c.decode, &c.agg) {
        (Some(p), Some(d), _) => {
            for w in [p, d] {
                let (b, gb) = bs(w);
                r.extend([b.to_string(), gb.to_string(), w.workers.to_string()]);
            }
        }
        (_, _, Some(a)) => {
            let (b, gb) = bs(a);
            r.extend([b.to_string(), gb.to_string()]);
        }
        _ => {}
    }
    let tokens = c.replica_tokens_per_s_per_gpu * gpus;
    r.extend([
        f3(c.ttft_ms),
        f3(c.tpot_ms),
        f3(c.request_latency_ms),
        f3(c.replica_request_rate),
        f3(c.replica_request_rate / gpus),
        f3(tokens),
        f3(c.replica_tokens_per_s_per_gpu),
        f3(c.tokens_per_s_per_user),
        c.gpus_per_replica.to_string(),
    ]);
    for w in [&c.prefill, &c.decode, &c.agg].into_iter().flatten() {
        r.extend(worker_cols(w, c));
        r.push(w.system.clone());
    }
    r.extend([
        c.replicas.to_string(),
        c.total_gpus_used.to_string(),
        f3(c.concurrency),
        f3(c.tokens_per_s_per_gpu),
        c.meets_sla.to_string(),
    ]);
    if priced {
        match &c.cost {
            Some(k) => r.extend([
                f3(k.usd_per_hour),
                f3(k.usd_per_m_output_tokens),
                f3(k.usd_per_m_input_tokens),
            ]),
            None => r.extend(COST_COLS.map(|_| String::new())),
        }
    }
    r
}

/// CSV text of a list of deployments of one mode.
pub fn csv(mode: ServeMode, rows: &[Candidate], ctx: &RowContext) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| GenError::Csv(e.to_string());
    let priced = rows.iter().any(|c| c.cost.is_some());
    w.write_record(header(mode, priced)).map_err(err)?;
    for c in rows {
        w.write_record(row(c, ctx, priced)).map_err(err)?;
    }
    let bytes = w.into_inner().map_err(|e| GenError::Csv(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| GenError::Csv(e.to_string()))
}
