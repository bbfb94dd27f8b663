//! Hand-checkable cases and invariants of the simulator (roofline op times, so each expected
//! value is one `step_ms` call away).
use super::*;
use crate::backend::Backend;
use crate::hardware::{SystemRegistry, SystemSpec};
use crate::model::{ModelRegistry, ModelSpec};
use crate::perf::Step;
use crate::test_support::{close, roofline_worker, workload as wl};
use proptest::prelude::*;

struct Fix {
    m: ModelSpec,
    sys: SystemSpec,
}

fn fix() -> Fix {
    Fix {
        m: ModelRegistry::builtin().resolve("QWEN3_32B").unwrap(),
        sys: SystemRegistry::builtin().get("h100_sxm").unwrap().clone(),
    }
}

fn worker<'a>(f: &'a Fix, b: Backend, tp: u32, fraction: Option<f64>, nextn: u32) -> Worker<'a> {
    roofline_worker(&f.m, &f.sys, b, tp, fraction, nextn).unwrap()
}

const OV: BackendCalib = BackendCalib {
    step_ms: 0.5,
    req_us: 10.0,
    ttft_ms: 3.0,
    wait_steps: 0.0,
    launch_us: 0.0,
};

#[test]
fn one_request_is_api_plus_prefill_then_decode_steps() {
    let f = fix();
    let wk = worker(&f, Backend::Trtllm, 2, None, 0);
    let w = wl(1024.0, 2.0);
    let r = simulate_agg(&wk, &w, &SimSpec::new(Load::Concurrency(1), 1), &OV).unwrap();
    // 1024 lies on the price grid, so the prefill is priced exactly.
    let pre = wk.step_ms(&Step::context(1.0, 1024.0, 0.0));
    let ttft = OV.ttft_ms + OV.step_wall_ms(pre, 1.0);
    assert!(
        (r.ttft_ms.mean - ttft).abs() < 1e-9,
        "{} vs {ttft}",
        r.ttft_ms.mean
    );
    let dec = OV.step_wall_ms(wk.step_ms(&Step::decode(1.0, 1025.0, 1.0)), 1.0);
    assert!(
        close(r.tpot_ms.mean, dec, 0.005),
        "{} vs {dec}",
        r.tpot_ms.mean
    );
    assert!((r.e2e_ms.mean - (ttft + r.tpot_ms.mean)).abs() < 1e-9);
    assert_eq!(r.measured_requests, 1);
    assert_eq!(r.iterations, 2);
}

#[test]
fn a_batch_that_fills_the_token_budget_prefills_in_one_step() {
    let f = fix();
    let wk = worker(&f, Backend::Trtllm, 2, None, 0);
    // Four 2048-token prompts are exactly the 8192-token budget.
    let w = wl(2048.0, 2.0);
    let r = simulate_agg(&wk, &w, &SimSpec::new(Load::Offline, 4), &OV).unwrap();
    let step = OV.step_wall_ms(wk.step_ms(&Step::context(4.0, 2048.0, 0.0)), 4.0);
    assert!((r.ttft_ms.mean - (OV.ttft_ms + step)).abs() < 1e-9);
    assert!(close(r.ttft_ms.p99, r.ttft_ms.mean, 0.003));
    // A fifth prompt no longer fits: it waits one step and rides with the four decodes.
    let r5 = simulate_agg(&wk, &w, &SimSpec::new(Load::Offline, 5), &OV).unwrap();
    let mixed = Step {
        ctx_reqs: 1.0,
        ctx_tokens: 2048.0,
        ctx_prefix: 0.0,
        gen_reqs: 4.0,
        gen_kv_len: 2048.0,
        gen_tokens_per_req: 1.0,
    };
    let second = OV.step_wall_ms(wk.step_ms(&mixed), 5.0);
    let want = (4.0 * (OV.ttft_ms + step) + (OV.ttft_ms + step + second)) / 5.0;
    assert!(
        close(r5.ttft_ms.mean, want, 0.002),
        "{} vs {want}",
        r5.ttft_ms.mean
    );
}

#[test]
fn kv_exhaustion_makes_admission_wait() {
    let f = fix();
    let wk = worker(&f, Backend::Trtllm, 2, None, 0);
    let w = wl(4000.0, 100.0);
    let spec = SimSpec::new(Load::Offline, 4);
    let free = simulate_agg(&wk, &w, &spec, &OV).unwrap();
    // Room for exactly two requests (whole request reserved at admission, 32-token blocks).
    let mut sim = Sim::new(&w, &spec, &OV);
    let pol = policy_for(&wk, &spec);
    sim.costs.push(StepCost::new(&wk, 1.0));
    sim.add_engine(Role::Agg, pol, 1, 0, 2 * blocks(4100, 32));
    sim.run().unwrap();
    let tight = sim.report(wk.gpus());
    // The last two start only when the first two finish: their TTFT exceeds a whole request.
    assert!(tight.ttft_ms.p99 > tight.e2e_ms.p50, "{tight:?}");
    assert!(tight.ttft_ms.p50 < free.ttft_ms.p99 + 1.0);
    assert!(tight.e2e_ms.p99 > free.e2e_ms.p99);
    assert!(tight.kv_utilization_peak <= 1.0 && tight.kv_utilization_peak > 0.99);
    assert_eq!(tight.preemptions, 0);
}

#[test]
fn on_demand_kv_preempts_and_still_finishes() {
    let f = fix();
    let wk = worker(&f, Backend::Vllm, 2, None, 0);
    let w = wl(1000.0, 400.0);
    let spec = SimSpec::new(Load::Offline, 6);
    let mut sim = Sim::new(&w, &spec, &OV);
    let pol = policy_for(&wk, &spec);
    sim.costs.push(StepCost::new(&wk, 1.0));
    // Three prompts fit, their outputs do not.
    sim.add_engine(Role::Agg, pol, 1, 0, 3200);
    sim.run().unwrap();
    let r = sim.report(wk.gpus());
    assert!(r.preemptions > 0);
    assert_eq!(r.measured_requests, 6);
}

#[test]
fn low_rate_poisson_converges_to_single_request_latency() {
    let f = fix();
    let wk = worker(&f, Backend::Vllm, 2, None, 0);
    let w = wl(512.0, 32.0);
    let one = simulate_agg(&wk, &w, &SimSpec::new(Load::Concurrency(1), 1), &OV).unwrap();
    let mut spec = SimSpec::new(
        Load::Rate {
            rate: 0.1,
            poisson: true,
        },
        200,
    );
    spec.seed = 3;
    let r = simulate_agg(&wk, &w, &spec, &OV).unwrap();
    assert!(close(r.ttft_ms.mean, one.ttft_ms.mean, 0.01), "{r:?}");
    assert!(close(r.tpot_ms.mean, one.tpot_ms.mean, 0.01));
}

#[test]
fn littles_law_holds_for_a_closed_loop() {
    let f = fix();
    let wk = worker(&f, Backend::Trtllm, 2, None, 0);
    let w = wl(1000.0, 200.0);
    // Clients stop at the end, so the last E2E drains with fewer in flight: enough requests
    // that the drain is well under 1 % of the run.
    let mut spec = SimSpec::new(Load::Concurrency(16), 4000);
    spec.warmup = 64;
    let r = simulate_agg(&wk, &w, &spec, &OV).unwrap();
    let n = r.request_rate / 1e3 * r.e2e_ms.mean;
    assert!(close(n, 16.0, 0.01), "{n}");
}

#[test]
fn sglang_pauses_decodes_while_prefilling() {
    let f = fix();
    let w = wl(4096.0, 64.0);
    let mut spec = SimSpec::new(Load::Concurrency(8), 64);
    spec.warmup = 8;
    let s = simulate_agg(&worker(&f, Backend::Sglang, 2, None, 0), &w, &spec, &OV).unwrap();
    let v = simulate_agg(&worker(&f, Backend::Vllm, 2, None, 0), &w, &spec, &OV).unwrap();
    // A prefill-only iteration stalls every running decode: the worst gaps are a prefill.
    let pre = wk_prefill(&f, 4096.0);
    assert!(s.itl_ms.p99 > 0.9 * pre, "{} vs {pre}", s.itl_ms.p99);
    assert!(s.itl_ms.p99 > v.itl_ms.p50);
}

fn wk_prefill(f: &Fix, isl: f64) -> f64 {
    worker(f, Backend::Sglang, 2, None, 0).step_ms(&Step::context(1.0, isl, 0.0))
}

#[test]
fn mtp_acceptance_is_a_per_step_draw_with_the_asked_mean() {
    let f = fix();
    let wk = worker(&f, Backend::Trtllm, 2, None, 2);
    let mut w = wl(512.0, 2001.0);
    w.nextn = 2;
    w.nextn_accepted = 1.2;
    let r = simulate_agg(&wk, &w, &SimSpec::new(Load::Concurrency(1), 1), &OV).unwrap();
    let step = OV.step_wall_ms(wk.step_ms(&Step::decode(1.0, 1512.0, 3.0)), 1.0);
    assert!(
        close(r.tpot_ms.mean, step / 2.2, 0.05),
        "{} vs {}",
        r.tpot_ms.mean,
        step / 2.2
    );
    assert!((acceptance_prob(2, 1.2) * (1.0 + acceptance_prob(2, 1.2)) - 1.2).abs() < 1e-9);
}

#[test]
fn same_seed_same_bytes() {
    let f = fix();
    let wk = worker(&f, Backend::Vllm, 2, None, 0);
    let w = wl(1000.0, 100.0);
    let mut spec = SimSpec::new(
        Load::Rate {
            rate: 5.0,
            poisson: true,
        },
        300,
    );
    spec.isl_dist = LengthDist::Uniform(0.5);
    spec.osl_dist = LengthDist::Exponential;
    spec.seed = 11;
    let a = serde_json::to_string(&simulate_agg(&wk, &w, &spec, &OV).unwrap()).unwrap();
    let b = serde_json::to_string(&simulate_agg(&wk, &w, &spec, &OV).unwrap()).unwrap();
    assert_eq!(a, b);
    spec.seed = 12;
    let c = serde_json::to_string(&simulate_agg(&wk, &w, &spec, &OV).unwrap()).unwrap();
    assert_ne!(a, c);
}

#[test]
fn a_request_larger_than_the_kv_cache_is_an_error() {
    let f = fix();
    let wk = worker(&f, Backend::Trtllm, 1, Some(0.01), 0);
    let w = wl(100000.0, 1000.0);
    let e = simulate_agg(&wk, &w, &SimSpec::new(Load::Concurrency(1), 1), &OV).unwrap_err();
    assert!(e.to_string().contains("does not fit the KV cache"), "{e}");
    assert!(simulate_agg(
        &wk,
        &wl(10.0, 10.0),
        &SimSpec::new(Load::Concurrency(0), 1),
        &OV
    )
    .is_err());
    let mut spec = SimSpec::new(Load::Concurrency(1), 2);
    spec.warmup = 2;
    assert!(simulate_agg(&wk, &wl(10.0, 10.0), &spec, &OV).is_err());
}

fn disagg_fix(f: &Fix) -> (Worker<'_>, Worker<'_>) {
    (
        worker(f, Backend::Trtllm, 2, None, 0),
        worker(f, Backend::Trtllm, 2, None, 0),
    )
}

#[test]
fn disagg_single_request_is_prefill_transfer_then_decode() {
    let f = fix();
    let (pre, dec) = disagg_fix(&f);
    let w = wl(1024.0, 3.0);
    let layout = DisaggLayout {
        prefill_workers: 1,
        prefill_batch: 1,
        decode_workers: 1,
        decode_batch: 8,
    };
    let spec = SimSpec::new(Load::Concurrency(1), 1);
    let r = simulate_disagg(&pre, &dec, &w, &layout, &spec, &OV).unwrap();
    let p = OV.step_wall_ms(pre.step_ms(&Step::context(1.0, 1024.0, 0.0)), 1.0);
    let kv = kv_transfer_ms(&pre, &dec, &w, p);
    let ttft = OV.ttft_ms + p + kv;
    assert!(
        (r.ttft_ms.mean - ttft).abs() < 1e-9,
        "{} vs {ttft}",
        r.ttft_ms.mean
    );
    let step = OV.step_wall_ms(dec.step_ms(&Step::decode(1.0, 1025.0, 1.0)), 1.0);
    assert!(close(r.tpot_ms.mean, step, 0.005));
    assert_eq!(r.num_gpus, 4);
}

#[test]
fn disagg_littles_law_and_balancing() {
    let f = fix();
    let (pre, dec) = disagg_fix(&f);
    let w = wl(2000.0, 200.0);
    let layout = DisaggLayout {
        prefill_workers: 2,
        prefill_batch: 1,
        decode_workers: 2,
        decode_batch: 64,
    };
    let mut spec = SimSpec::new(Load::Concurrency(32), 6000);
    spec.warmup = 64;
    let r = simulate_disagg(&pre, &dec, &w, &layout, &spec, &OV).unwrap();
    let n = r.request_rate / 1e3 * r.e2e_ms.mean;
    assert!(close(n, 32.0, 0.01), "{n}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn percentiles_ordered_and_load_never_helps(
        c in 1u32..48,
        isl in 64.0f64..3000.0,
        osl in 2.0f64..80.0,
        b in 0usize..3,
    ) {
        let f = fix();
        let wk = worker(&f, Backend::ALL[b], 2, None, 0);
        let w = wl(isl.round(), osl.round());
        let run = |c: u32| {
            let mut s = SimSpec::new(Load::Concurrency(c), 6 * c);
            s.warmup = c;
            simulate_agg(&wk, &w, &s, &OV).unwrap()
        };
        let lo = run(c);
        let hi = run(2 * c);
        for d in [lo.ttft_ms, lo.tpot_ms, lo.itl_ms, lo.e2e_ms] {
            prop_assert!(d.p50 <= d.p90 && d.p90 <= d.p99);
        }
        prop_assert!(hi.e2e_ms.mean >= lo.e2e_ms.mean * 0.99, "{} < {}", hi.e2e_ms.mean, lo.e2e_ms.mean);
        prop_assert!(hi.tpot_ms.mean >= lo.tpot_ms.mean * 0.99);
        let off = simulate_agg(&wk, &w, &SimSpec::new(Load::Offline, 8 * c), &OV).unwrap();
        prop_assert!(off.tokens_per_s >= lo.tokens_per_s * 0.98, "{} < {}", off.tokens_per_s, lo.tokens_per_s);
    }
}

#[test]
fn a_scheduler_that_polls_every_n_steps_delays_arrivals_on_a_busy_engine_only() {
    let f = fix();
    let wk = worker(&f, Backend::Sglang, 2, None, 0);
    let w = wl(1024.0, 64.0);
    let run = |c: u32, n: u32, recv: u32| {
        let mut s = SimSpec::new(Load::Concurrency(c), n);
        s.isl_dist = LengthDist::Uniform(0.1);
        s.osl_dist = LengthDist::Uniform(0.1);
        s.recv_interval = recv;
        simulate_agg(&wk, &w, &s, &OV).unwrap()
    };
    // A lone request finds the engine idle: it is taken in at once, whatever the interval.
    assert_eq!(run(1, 1, 30).ttft_ms.mean, run(1, 1, 1).ttft_ms.mean);
    // Eight clients with spread lengths: arrivals find the engine decoding and wait for the
    // next poll, at most 30 steps (each ≥ one decode step of the batch).
    let (every, sparse) = (run(8, 200, 1), run(8, 200, 30));
    assert!(sparse.ttft_ms.mean > every.ttft_ms.mean + 5.0 * every.tpot_ms.p50);
    assert!(sparse.ttft_ms.mean < every.ttft_ms.mean + 30.0 * sparse.itl_ms.p99);
    let mut bad = SimSpec::new(Load::Concurrency(1), 1);
    bad.recv_interval = 0;
    assert!(simulate_agg(&wk, &w, &bad, &OV).is_err());
}
