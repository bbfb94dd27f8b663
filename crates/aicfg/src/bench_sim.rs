//! `aicfg bench sim`: wall time of the request-level simulator on the reference cases (one
//! core). Prints numbers; BENCHMARKS.md records them.
use aicfg_core::estimate::{QuantRequest, WorkerSpec};
use aicfg_core::model::graph::Parallel;
use aicfg_core::serve::sim::{Load, SimSpec};
use aicfg_core::simulate::simulate;
use aicfg_core::{
    Backend, DatabaseMode, EstimateRequest, ModelRegistry, ServeMode, SystemRegistry, Workload,
};
use anyhow::Result;
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use std::time::Instant;

#[derive(Args)]
pub struct SimBenchArgs {
    /// Timed runs per case (after one warm-up run).
    #[arg(long, default_value_t = 10)]
    pub repeat: usize,
    /// Requests per simulation.
    #[arg(long = "num-requests", default_value_t = 2000)]
    pub num_requests: u32,
    /// Op source (empirical needs no database).
    #[arg(long = "database-mode", default_value = "empirical")]
    pub database_mode: String,
}

fn par(tp: u32, dp: u32, ep: u32) -> Parallel {
    Parallel {
        tp,
        pp: 1,
        dp,
        moe_tp: (tp * dp) / ep.max(1),
        moe_ep: ep,
    }
}

/// CPU time of this thread (Linux schedstat, ns): wall time on a shared machine overstates.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

pub fn run(a: &SimBenchArgs) -> Result<()> {
    let mode = DatabaseMode::parse(&a.database_mode)?;
    let models = ModelRegistry::builtin();
    let systems = SystemRegistry::builtin();
    let w = Workload {
        isl: 4000.0,
        osl: 500.0,
        prefix: 0.0,
        nextn: 0,
        nextn_accepted: 0.0,
    };
    let mk = |model: &str, mode_: ServeMode, agg: WorkerSpec, pre: WorkerSpec, dec: WorkerSpec| {
        Ok::<_, anyhow::Error>(EstimateRequest {
            model: models.resolve(model)?,
            system: systems.get("h200_sxm")?.clone(),
            decode_system: None,
            backend: Backend::Trtllm,
            mode: mode_,
            workload: w,
            quant: QuantRequest::default(),
            agg,
            prefill: pre,
            decode: dec,
            database_mode: mode,
            backend_version: None,
            free_gpu_memory_fraction: None,
            calibration: None,
            gpu_cost_per_hour: None,
        })
    };
    let ws = |p: Parallel, b: f64, n: u32| WorkerSpec {
        parallel: p,
        batch_size: b,
        workers: n,
    };
    let agg = ws(
        Parallel {
            tp: 2,
            ..Parallel::single()
        },
        64.0,
        1,
    );
    let cases = vec![
        (
            "Qwen3-32B agg tp2, concurrency 64, 4000/500",
            mk("QWEN3_32B", ServeMode::Agg, agg, agg, agg)?,
            64,
        ),
        (
            "DeepSeek-V3 disagg 2× prefill dp8ep8 + 1× decode dp8ep8 (batch 64/rank), concurrency 512",
            mk(
                "DEEPSEEK_V3",
                ServeMode::Disagg,
                ws(par(1, 8, 8), 64.0, 1),
                ws(par(1, 8, 8), 1.0, 2),
                ws(par(1, 8, 8), 64.0, 1),
            )?,
            512,
        ),
    ];
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "case",
        "requests",
        "iterations",
        "median CPU ms",
        "min CPU ms",
        "TTFT p50/p99 ms",
        "TPOT p50 ms",
    ]);
    for (label, req, c) in cases {
        let spec = SimSpec::new(Load::Concurrency(c), a.num_requests);
        let first = simulate(&req, &spec)?;
        let mut times: Vec<f64> = (0..a.repeat.max(1))
            .map(|_| {
                let (t0, c0) = (Instant::now(), cpu_ns());
                let _ = simulate(&req, &spec);
                match (c0, cpu_ns()) {
                    (Some(a), Some(b)) => (b - a) as f64 * 1e-6,
                    _ => t0.elapsed().as_secs_f64() * 1e3,
                }
            })
            .collect();
        times.sort_by(|x, y| x.total_cmp(y));
        let r = &first.report;
        t.add_row(vec![
            label.to_string(),
            a.num_requests.to_string(),
            r.iterations.to_string(),
            format!("{:.2}", times[times.len() / 2]),
            format!("{:.2}", times[0]),
            format!("{:.0} / {:.0}", r.ttft_ms.p50, r.ttft_ms.p99),
            format!("{:.2}", r.tpot_ms.p50),
        ]);
    }
    crate::emitln!("aicfg bench sim ({} database, one thread)", mode.name());
    crate::emitln!("{t}");
    Ok(())
}
