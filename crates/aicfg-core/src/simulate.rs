//! One estimate request → one simulation: the same workers, quantization and op source as
//! `estimate::predict`, with the simulator in place of the closed-form serving model.
use crate::error::{AicfgError, Result};
use crate::estimate::{build_workers, params_for, EstimateRequest, Workers};
use crate::perf::source::DeploymentSources;
use crate::perf::{BackendCalib, EmpiricalParams};
use crate::serve::sim::{simulate_agg, simulate_disagg, DisaggLayout, Load, SimReport, SimSpec};
use crate::serve::ServeMode;
use crate::DatabaseMode;

/// Closed-loop concurrency of a request's deployment: agg `batch × dp`, disagg the decode
/// slots of the replica (`batch × dp × workers`), as concurrency benchmarks report them.
pub fn concurrency_of(req: &EstimateRequest) -> u32 {
    let c = match req.mode {
        ServeMode::Disagg => {
            req.decode.batch_size * req.decode.parallel.dp as f64 * req.decode.workers.max(1) as f64
        }
        _ => req.agg.batch_size * req.agg.parallel.dp as f64,
    };
    c.round().clamp(1.0, 1_000_000.0) as u32
}

/// Output tokens a benchmark replay simulates at most (requests × osl), at least one wave of
/// `concurrency` requests: a cost cap (≈0.1 s per replay), not a property of the benchmark.
pub const MAX_REPLAY_TOKENS: f64 = 4.0e6;

/// Requests a concurrency benchmark sends per client: aiperf/genai-perf style harnesses set the
/// request count to concurrency × 10, the first wave starting at once.
pub const BENCH_REQUESTS_PER_CLIENT: f64 = 10.0;

/// Requests per client the generated `bench_run.sh` sends first and leaves out of its
/// statistics (its aiperf `--warmup-request-count`): the first wave, which arrives at once.
pub const BENCH_WARMUP_PER_CLIENT: u32 = 2;

/// The spec a concurrency benchmark of this request runs ([`BENCH_REQUESTS_PER_CLIENT`]
/// requests per client, cut to [`MAX_REPLAY_TOKENS`] for the largest runs).
pub fn bench_spec(req: &EstimateRequest) -> SimSpec {
    let c = concurrency_of(req);
    let full = c as f64 * BENCH_REQUESTS_PER_CLIENT;
    let cut = (MAX_REPLAY_TOKENS / req.workload.osl.max(1.0)).max(c as f64);
    let n = full
        .min(cut)
        .round()
        .clamp(1.0, crate::serve::sim::MAX_REQUESTS as f64) as u32;
    SimSpec::new(Load::Concurrency(c), n.max(c))
}

/// Outcome of a simulated estimate, with the op mode that answered.
pub struct Simulated {
    pub report: SimReport,
    pub database_mode: DatabaseMode,
    /// Host constants the simulation ran with (those of the op source's calibration).
    pub host: BackendCalib,
}

/// Simulate `req` under `spec` with the request's (or embedded) op constants.
pub fn simulate(req: &EstimateRequest, spec: &SimSpec) -> Result<Simulated> {
    simulate_with(req, spec, &params_for(req))
}

/// As `simulate`, with explicit op constants (calibration loops).
pub fn simulate_with(
    req: &EstimateRequest,
    spec: &SimSpec,
    params: &EmpiricalParams,
) -> Result<Simulated> {
    req.workload.validate()?;
    crate::memory::check_fraction(req.free_gpu_memory_fraction)?;
    let dsys = req.decode_system.as_ref().unwrap_or(&req.system);
    let disagg = req.mode == ServeMode::Disagg;
    let srcs = DeploymentSources::open(
        req.database_mode,
        params,
        req.backend,
        &req.system,
        disagg.then_some(dsys),
        req.backend_version.as_deref(),
    )?;
    let mode = srcs.mode();
    // One set of host constants for both serving models: those the op source's calibration
    // carries (zero for the roofline). The workers get none, so nothing is added twice.
    let host = srcs.main.calib;
    let w = req.workload;
    // The workers keep only the launch floor of uncaptured steps: part of a step's device
    // time (`Worker::step_ms`), not a host cost the simulator adds.
    let device = BackendCalib {
        launch_us: host.launch_us,
        ..BackendCalib::ZERO
    };
    let report = match build_workers(req, &srcs, Some(device))? {
        Workers::Agg(wk) => simulate_agg(&wk, &w, spec, &host)?,
        Workers::Disagg {
            prefill: pre,
            decode: dec,
        } => {
            let to_u32 = |x: f64| x.round().clamp(1.0, 1_000_000.0) as u32;
            let layout = DisaggLayout {
                prefill_workers: req.prefill.workers.max(1),
                prefill_batch: to_u32(req.prefill.batch_size),
                decode_workers: req.decode.workers.max(1),
                decode_batch: to_u32(req.decode.batch_size),
            };
            simulate_disagg(&pre, &dec, &w, &layout, spec, &host)?
        }
    };
    srcs.check()?;
    if !(report.ttft_ms.mean.is_finite() && report.tpot_ms.mean.is_finite()) {
        return Err(AicfgError::PerfDataMissing(
            "the measured op tables cannot price every step of this deployment (silicon mode)"
                .into(),
        ));
    }
    Ok(Simulated {
        report,
        database_mode: mode,
        host,
    })
}
