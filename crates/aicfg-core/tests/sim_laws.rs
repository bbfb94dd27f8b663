//! Laws the request-level simulator must obey on any deployment (issue: simulator tests):
//! one request through the public entry is prefill plus host overheads, Little's law for closed
//! loops of every backend, more offered load never lowers latency (closed and open loops), and
//! offline throughput is at least any closed loop's (aggregated and disaggregated).
use aicfg_core::backend::Backend;
use aicfg_core::estimate::{build_workers, params_for, Workers};
use aicfg_core::hardware::SystemSpec;
use aicfg_core::input::EstimateInput;
use aicfg_core::perf::source::DeploymentSources;
use aicfg_core::perf::{BackendCalib, Step};
use aicfg_core::serve::sim::{simulate_agg, simulate_disagg, DisaggLayout, Load, SimSpec};
use aicfg_core::serve::Worker;
use aicfg_core::simulate::simulate;
use aicfg_core::test_support::{close, roofline_worker, workload as wl};
use aicfg_core::{ModelRegistry, ModelSpec, SystemRegistry};
use proptest::prelude::*;

// Constants added to `BackendCalib` later stay zero here.
#[allow(clippy::needless_update)]
const OV: BackendCalib = BackendCalib {
    step_ms: 0.4,
    req_us: 15.0,
    ttft_ms: 2.0,
    ..BackendCalib::ZERO
};

fn setup() -> (ModelSpec, SystemSpec) {
    (
        ModelRegistry::builtin().resolve("QWEN3_8B").unwrap(),
        SystemRegistry::builtin().get("h200_sxm").unwrap().clone(),
    )
}

fn worker<'a>(m: &'a ModelSpec, s: &'a SystemSpec, b: Backend, tp: u32) -> Worker<'a> {
    roofline_worker(m, s, b, tp, None, 0).unwrap()
}

/// Llama-3.1-8B, a 128-token prompt, one H100, one client, the empirical op model and the
/// embedded host constants: TTFT is the API cost, one iteration's host time and the
/// prefill's device time (its GPU time, or launching its kernels one by one where the
/// framework runs it without a CUDA graph) — no floor — and TPOT one decode iteration.
#[test]
fn single_request_ttft_is_prefill_plus_host_overheads_per_backend() {
    for b in Backend::ALL {
        let input = EstimateInput {
            model: "LLAMA3.1_8B".into(),
            system: "h100_sxm".into(),
            backend: b.name().into(),
            isl: 128,
            osl: 64,
            database_mode: "empirical".into(),
            ..EstimateInput::default()
        };
        let req = input.estimate_request().unwrap();
        let srcs = DeploymentSources::open(
            req.database_mode,
            &params_for(&req),
            req.backend,
            &req.system,
            None,
            None,
        )
        .unwrap();
        // The simulator's host constants are the calibration's, as the closed form's are; the
        // workers keep the launch floor of steps run without a CUDA graph.
        let ov = srcs.main.calib;
        let device = BackendCalib {
            launch_us: ov.launch_us,
            ..BackendCalib::ZERO
        };
        let Workers::Agg(wk) = build_workers(&req, &srcs, Some(device)).unwrap() else {
            panic!("an agg request builds one worker")
        };
        let sim = simulate(&req, &SimSpec::new(Load::Concurrency(1), 1)).unwrap();
        let r = sim.report;
        // 128 lies on the simulator's prompt-length price grid, so the prefill is exact.
        let prefill = wk.step_ms(&Step::context(1.0, 128.0, 0.0));
        let want = ov.ttft_ms + ov.step_wall_ms(prefill, 1.0);
        assert!(
            (r.ttft_ms.mean - want).abs() < 1e-6,
            "{}: TTFT {} vs {want}",
            b.name(),
            r.ttft_ms.mean
        );
        // Decode attends to 129–191 tokens (KV priced on a grid: within 0.5 %).
        let dec = ov.step_wall_ms(wk.step_ms(&Step::decode(1.0, 160.0, 1.0)), 1.0);
        assert!(
            close(r.tpot_ms.mean, dec, 0.02),
            "{}: TPOT {} vs {dec}",
            b.name(),
            r.tpot_ms.mean
        );
    }
}

/// An open loop offered `rate` req/s, seeded: gaps are the same draws scaled by 1/rate.
fn open(rate: f64, n: u32) -> SimSpec {
    let mut s = SimSpec::new(
        Load::Rate {
            rate,
            poisson: true,
        },
        n,
    );
    s.seed = 11;
    s.warmup = n / 10;
    s
}

#[test]
fn open_loop_below_capacity_serves_the_offered_rate_and_more_rate_never_helps() {
    let (m, s) = setup();
    let wk = worker(&m, &s, Backend::Vllm, 1);
    let w = wl(1000.0, 100.0);
    let mut last = 0.0;
    for rate in [1.0, 4.0, 8.0, 16.0] {
        let r = simulate_agg(&wk, &w, &open(rate, 2000), &OV).unwrap();
        // Stable queue: what goes in comes out (a finite Poisson sample: within 5 %).
        assert!(
            close(r.request_rate, rate, 0.05),
            "{rate}: {}",
            r.request_rate
        );
        assert!(r.e2e_ms.mean >= last * 0.999, "{rate}: {}", r.e2e_ms.mean);
        last = r.e2e_ms.mean;
    }
}

#[test]
fn disagg_offline_throughput_is_at_least_a_closed_loop() {
    let (m, s) = setup();
    let pre = worker(&m, &s, Backend::Trtllm, 1);
    let dec = worker(&m, &s, Backend::Trtllm, 1);
    let w = wl(2000.0, 150.0);
    let layout = DisaggLayout {
        prefill_workers: 1,
        prefill_batch: 2,
        decode_workers: 2,
        decode_batch: 32,
    };
    let off = simulate_disagg(
        &pre,
        &dec,
        &w,
        &layout,
        &SimSpec::new(Load::Offline, 640),
        &OV,
    )
    .unwrap();
    for c in [4, 16, 64] {
        let mut spec = SimSpec::new(Load::Concurrency(c), 10 * c);
        spec.warmup = c;
        let r = simulate_disagg(&pre, &dec, &w, &layout, &spec, &OV).unwrap();
        assert!(
            off.tokens_per_s >= r.tokens_per_s * 0.98,
            "c={c}: offline {} < closed loop {}",
            off.tokens_per_s,
            r.tokens_per_s
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    /// Concurrency = achieved rate × mean E2E within 1 %, for any backend and closed loop.
    #[test]
    fn littles_law_holds_for_closed_loops(
        c in 1u32..24,
        isl in 64.0f64..2000.0,
        osl in 8.0f64..64.0,
        b in 0usize..3,
    ) {
        let (m, s) = setup();
        let wk = worker(&m, &s, Backend::ALL[b], 1);
        let w = wl(isl.round(), osl.round());
        // The drain at the end (fewer than c in flight) must stay under 1 % of the run.
        let mut spec = SimSpec::new(Load::Concurrency(c), 250 * c);
        spec.warmup = 2 * c;
        let r = simulate_agg(&wk, &w, &spec, &OV).unwrap();
        let n = r.request_rate / 1e3 * r.e2e_ms.mean;
        prop_assert!(close(n, c as f64, 0.01), "{} in flight for c = {}", n, c);
    }

    /// A higher offered rate (the same arrivals compressed in time) never lowers latency.
    #[test]
    fn more_open_loop_load_never_lowers_latency(
        rate in 0.5f64..30.0,
        isl in 128.0f64..3000.0,
        b in 0usize..3,
    ) {
        let (m, s) = setup();
        let wk = worker(&m, &s, Backend::ALL[b], 1);
        let w = wl(isl.round(), 64.0);
        let lo = simulate_agg(&wk, &w, &open(rate, 300), &OV).unwrap();
        let hi = simulate_agg(&wk, &w, &open(2.0 * rate, 300), &OV).unwrap();
        prop_assert!(hi.ttft_ms.mean >= lo.ttft_ms.mean * 0.99, "{} < {}", hi.ttft_ms.mean, lo.ttft_ms.mean);
        prop_assert!(hi.e2e_ms.mean >= lo.e2e_ms.mean * 0.99, "{} < {}", hi.e2e_ms.mean, lo.e2e_ms.mean);
    }
}
