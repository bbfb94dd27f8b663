//! The serving models (docs/model.md §6) on hand-computed cases. GPU time is taken out of the
//! picture with a source that prices every op at zero, so step times are the backend's host
//! constants alone and every figure below follows from the formulas by hand.
use aicfg_core::backend::Backend;
use aicfg_core::estimate::{resolve_quant, QuantRequest};
use aicfg_core::hardware::SystemSpec;
use aicfg_core::model::graph::{OpKind, Parallel};
use aicfg_core::perf::{BackendCalib, PerfSource, Work};
use aicfg_core::serve::{self, mtp, ComposeInput, Worker, Workload};
use aicfg_core::{ModelRegistry, ModelSpec, SystemRegistry};

struct Free;

impl PerfSource for Free {
    fn name(&self) -> &'static str {
        "free"
    }
    fn time_ms(&self, _: &SystemSpec, _: &OpKind, _: &Work) -> f64 {
        0.0
    }
}

const CALIB: BackendCalib = BackendCalib {
    step_ms: 1.0,
    ttft_ms: 10.0,
    wait_steps: 1.0,
    req_us: 0.0,
    launch_us: 0.0,
};

fn close(a: f64, b: f64) {
    assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} vs {b}");
}

fn setup() -> (ModelSpec, SystemSpec) {
    let m = ModelRegistry::builtin().resolve("QWEN3_8B").unwrap();
    let s = SystemRegistry::builtin().get("h200_sxm").unwrap().clone();
    (m, s)
}

fn worker<'a>(m: &'a ModelSpec, s: &'a SystemSpec, backend: Backend, nextn: u32) -> Worker<'a> {
    let q = resolve_quant(m, s, &QuantRequest::default(), backend).unwrap();
    Worker::new(
        m,
        &Parallel::single(),
        &q,
        s,
        backend,
        CALIB,
        &Free,
        None,
        nextn,
    )
    .unwrap()
}

fn workload(isl: f64, osl: f64, nextn: u32, rates: &[f64]) -> Workload {
    Workload {
        isl,
        osl,
        prefix: 0.0,
        nextn,
        nextn_accepted: mtp::accepted_drafts(nextn, rates),
    }
}

#[test]
fn static_batch_is_one_prefill_then_decode() {
    let (m, s) = setup();
    let wk = worker(&m, &s, Backend::Trtllm, 0);
    // 20 prompts of 1000 tokens over an 8192-token budget: ⌈20000/8192⌉ = 3 chunks of host time.
    let p = serve::static_batch(&wk, &workload(1000.0, 101.0, 0, &[]), 20.0);
    close(p.ttft_ms, 3.0 + 10.0);
    close(p.tpot_ms, 1.0);
    close(p.request_latency_ms, 13.0 + 100.0);
    close(p.request_rate, 20.0 / 113.0 * 1000.0);
    close(p.tokens_per_s, p.request_rate * 101.0);
}

#[test]
fn mtp_divides_decode_steps_by_tokens_advanced() {
    let (m, s) = setup();
    let wk = worker(&m, &s, Backend::Trtllm, 2);
    let w = workload(1000.0, 101.0, 2, &mtp::DEFAULT_ACCEPT_RATES);
    close(w.nextn_accepted, 1.15);
    close(w.decode_iterations(), 100.0 / 2.15);
    // One step advances 1 + 1.15 tokens.
    let p = serve::static_batch(&wk, &w, 4.0);
    close(p.tpot_ms, 1.0 / 2.15);
}

#[test]
fn agg_mixed_steady_state() {
    let (m, s) = setup();
    let wk = worker(&m, &s, Backend::Trtllm, 0);
    let w = workload(1000.0, 101.0, 0, &[]);
    // Every step costs the 1 ms host time. Steady TTFT: ttft_ms + wait_steps·T for the 15/16 of
    // arrivals that find the other 15 requests running, + one prefill step = 10 + 15/16 + 1; the
    // first wave's 16 requests prefill in ⌈16/8⌉ = 2 groups of 8, mean wait 10 + 1·(2+1)/2 =
    // 11.5 < 11.9375, so the steady state dominates whatever the wave count.
    for waves in [1.0, 4.0] {
        let p = serve::agg(&wk, &w, 16.0, waves);
        close(p.ttft_ms, 11.9375);
        close(p.tpot_ms, 1.0);
        close(p.request_latency_ms, 111.9375);
        close(p.running_per_rank, 16.0);
        close(p.kv_queue_ms, 0.0);
        close(p.request_rate, 16.0 / 111.9375 * 1000.0);
    }
}

#[test]
fn agg_lone_request_pays_only_api_path_and_prefill() {
    let (m, s) = setup();
    let wk = worker(&m, &s, Backend::Trtllm, 0);
    // One request on an idle engine: no scheduler wait, TTFT = ttft_ms + one prefill step.
    let p = serve::agg(&wk, &workload(1000.0, 101.0, 0, &[]), 1.0, 1.0);
    close(p.ttft_ms, 11.0);
    close(p.tpot_ms, 1.0);
}

#[test]
fn host_time_grows_with_requests_in_the_step() {
    let (m, s) = setup();
    let mut wk = worker(&m, &s, Backend::Trtllm, 0);
    wk.calib = BackendCalib {
        req_us: 250.0,
        ..CALIB
    };
    // 16 running: host 1 + 0.25·16 = 5 ms per step, so TPOT 5 ms. Steady TTFT
    // 10 + (15/16)·5 + 5 = 19.6875 (the burst, 10 + 5·(2+1)/2 = 17.5, is lower).
    let p = serve::agg(&wk, &workload(1000.0, 101.0, 0, &[]), 16.0, 1.0);
    close(p.tpot_ms, 5.0);
    close(p.ttft_ms, 19.6875);
    // Static batch of 4: prefill step 1 + 1 ms host, decode 1 + 1 ms.
    let p = serve::static_batch(&wk, &workload(1000.0, 101.0, 0, &[]), 4.0);
    close(p.tpot_ms, 2.0);
    close(p.ttft_ms, 12.0);
}

#[test]
fn agg_first_wave_burst_weighs_by_waves() {
    let (m, s) = setup();
    let wk = worker(&m, &s, Backend::Trtllm, 0);
    // 4000-token prompts: 2 per 8192 budget; 64 requests → 32 groups; burst 10 + 1·33/2 = 26.5
    // against a steady 10 + 63/64 + 1: TTFT = (26.5 + (waves − 1)·steady) / waves.
    let w = workload(4000.0, 101.0, 0, &[]);
    let steady = 11.0 + 63.0 / 64.0;
    close(serve::agg(&wk, &w, 64.0, 1.0).ttft_ms, 26.5);
    close(
        serve::agg(&wk, &w, 64.0, 2.0).ttft_ms,
        (26.5 + steady) / 2.0,
    );
}

#[test]
fn sglang_agg_runs_in_lockstep_waves() {
    let (m, s) = setup();
    let wk = worker(&m, &s, Backend::Sglang, 0);
    // SGLang's budget on a 141 GB GPU is 8192 → 8 prompts of 1000 per group; 16 requests form
    // 2 groups. TTFT = 10 + 1·(15/16)·1 + 1·(2+1)/2 = 12.4375; the first group stalls
    // 1·(2−1)/2 = 0.5 ms before its second token: TPOT = (100·1 + 0.5) / 100.
    let p = serve::agg(&wk, &workload(1000.0, 101.0, 0, &[]), 16.0, 1.0);
    close(p.ttft_ms, 12.4375);
    close(p.tpot_ms, 100.5 / 100.0);
}

fn sides(prefill_seq_per_s: f64) -> (serve::PrefillSide, serve::DecodeSide) {
    let (m, s) = setup();
    let wk = worker(&m, &s, Backend::Trtllm, 0);
    let mem = wk.memory(1.0, 1100.0, 1000.0);
    (
        serve::PrefillSide {
            batch: 1.0,
            batch_ms: 100.0,
            seq_per_s: prefill_seq_per_s,
            gpus: 1,
            memory: mem,
        },
        serve::DecodeSide {
            batch: 10.0,
            running: 10.0,
            step_ms: 10.0,
            tpot_ms: 10.0,
            seq_per_s: 10.0,
            gpus: 1,
            memory: mem,
        },
    )
}

fn input<'a>(p: &'a serve::PrefillSide, d: &'a serve::DecodeSide, waves: f64) -> ComposeInput<'a> {
    ComposeInput {
        prefill: p,
        decode: d,
        prefill_dp: 1,
        decode_dp: 1,
        ttft_overhead_ms: 0.0,
        kv_transfer_ms: 0.0,
        burst_waves: waves,
    }
}

#[test]
fn disagg_closed_loop_over_decode_slots() {
    let (p, d) = sides(10.0);
    let w = workload(1000.0, 101.0, 0, &[]);
    // 10 slots; unqueued TTFT 100 + 10 = 110 ms; latency 110 + wait + 100·10 ms, where the
    // prefill queue is M/D/1 at load ρ = λ/10: wait = 100·ρ / 2(1 − ρ). The closed loop settles
    // where λ = 10 / (1110 + wait) per ms, under the prefill capacity of 10/s.
    let c = input(&p, &d, 1.0);
    close(c.unqueued_ttft_ms(), 110.0);
    let r = serve::compose(&c, &w, 1, 1);
    let lambda = r.perf.request_rate;
    let rho = lambda / 10.0;
    let wait = 100.0 * rho / (2.0 * (1.0 - rho));
    assert!(
        lambda < 10.0 / 1110.0 * 1000.0,
        "queueing lowers the rate: {lambda}"
    );
    assert!(((10.0 / (1110.0 + wait) * 1000.0) / lambda - 1.0).abs() < 1e-3);
    close(r.prefill_queue_ms, wait);
    close(r.perf.tpot_ms, 10.0);
    // First wave: the 10 requests queue on one prefill worker, mean (10+1)/2 batches: 560 ms,
    // above the steady 110 + wait.
    let steady = 110.0 + wait;
    assert!(steady < 560.0);
    close(r.perf.ttft_ms, 560.0);
    let r = serve::compose(&input(&p, &d, 10.0), &w, 1, 1);
    close(r.perf.ttft_ms, (560.0 + 9.0 * steady) / 10.0);
    close(r.perf.num_gpus as f64, 2.0);
}

#[test]
fn disagg_prefill_bound_requests_wait() {
    let (p, d) = sides(5.0);
    let w = workload(1000.0, 101.0, 0, &[]);
    // Capacity 5/s < 9.009/s: λ = 5/s, and the closed loop's latency 10/5 s = 2000 ms less the
    // 1000 ms of decode leaves 1000 ms to the first token.
    let r = serve::compose(&input(&p, &d, 1.0), &w, 1, 1);
    close(r.perf.request_rate, 5.0);
    close(r.perf.ttft_ms, 1000.0);
    // A second prefill worker lifts the cap to 10/s: back to a decode-bound loop that queues
    // a little on the two workers (M/D/1 over √2), so under the unqueued 9.009/s.
    let r = serve::compose(&input(&p, &d, 1.0), &w, 2, 1);
    let rho = r.perf.request_rate / 10.0;
    close(
        r.prefill_queue_ms,
        100.0 * rho / (2.0 * (1.0 - rho)) / 2f64.sqrt(),
    );
    assert!(r.perf.request_rate < 10.0 / 1110.0 * 1000.0 && r.perf.request_rate > 5.0);
}
