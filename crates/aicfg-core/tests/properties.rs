//! Property tests of the performance model through the public API: latency grows with load and
//! sequence length, and more tensor parallelism never adds per-GPU weight memory.
use aicfg_core::estimate::{predict, resolve_quant, EstimateRequest, QuantRequest, WorkerSpec};
use aicfg_core::model::graph::{Parallel, WorkerGraph};
use aicfg_core::model::Family;
use aicfg_core::perf::step::price_step;
use aicfg_core::perf::{EmpiricalSource, PerfSource, SolSource, Step};
use aicfg_core::quant::{GemmQuant, QuantConfig};
use aicfg_core::serve::{ServeMode, Workload};
use aicfg_core::{Backend, DatabaseMode, ModelRegistry, ModelSpec, SystemRegistry};
use proptest::prelude::*;

/// (model, system, tp, moe_ep) combinations that are valid deployments.
const DEPLOYMENTS: &[(&str, &str, u32, u32)] = &[
    ("QWEN3_32B", "h200_sxm", 1, 1),
    ("QWEN3_32B", "h200_sxm", 2, 1),
    ("QWEN3_32B", "h100_sxm", 4, 1),
    ("LLAMA3.1_8B", "a100_sxm", 1, 1),
    ("LLAMA3.1_70B", "b200_sxm", 8, 1),
    ("MIXTRAL_8X7B", "h200_sxm", 2, 2),
    ("QWEN3_30B_A3B", "h100_sxm", 2, 1),
    ("DEEPSEEK_V3", "h200_sxm", 8, 8),
];

const BACKENDS: [Backend; 3] = [Backend::Trtllm, Backend::Vllm, Backend::Sglang];

/// Cases per property: 64 by default (fast), `PROPTEST_CASES=N` for a deeper search.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64)
}

fn model(name: &str) -> ModelSpec {
    ModelRegistry::builtin()
        .resolve(name)
        .expect("built-in model resolves")
}

fn request(
    deployment: usize,
    backend: Backend,
    db: DatabaseMode,
    mode: ServeMode,
    batch: f64,
    isl: f64,
    osl: f64,
) -> EstimateRequest {
    let (m, s, tp, ep) = DEPLOYMENTS[deployment];
    let model = model(m);
    let system = SystemRegistry::builtin()
        .get(s)
        .expect("built-in system")
        .clone();
    let moe_tp = if model.family.is_moe() { tp / ep } else { 1 };
    let ws = WorkerSpec {
        parallel: Parallel {
            tp,
            pp: 1,
            dp: 1,
            moe_tp,
            moe_ep: ep,
        },
        batch_size: batch,
        workers: 1,
    };
    EstimateRequest {
        model,
        system,
        decode_system: None,
        backend,
        mode,
        workload: Workload {
            isl,
            osl,
            prefix: 0.0,
            nextn: 0,
            nextn_accepted: 0.0,
        },
        quant: QuantRequest::default(),
        agg: ws,
        prefill: ws,
        decode: ws,
        database_mode: db,
        backend_version: None,
        free_gpu_memory_fraction: None,
        calibration: None,
        gpu_cost_per_hour: None,
    }
}

/// Static-mode (TTFT, TPOT) in ms.
fn static_perf(
    dep: usize,
    backend: Backend,
    db: DatabaseMode,
    batch: f64,
    isl: f64,
    osl: f64,
) -> (f64, f64) {
    let req = request(dep, backend, db, ServeMode::Static, batch, isl, osl);
    let p = predict(&req).unwrap_or_else(|e| panic!("{}: {e}", DEPLOYMENTS[dep].0));
    assert!(
        p.ttft_ms.is_finite() && p.ttft_ms > 0.0,
        "ttft {}",
        p.ttft_ms
    );
    assert!(
        p.tpot_ms.is_finite() && p.tpot_ms > 0.0,
        "tpot {}",
        p.tpot_ms
    );
    (p.ttft_ms, p.tpot_ms)
}

/// `a <= b` up to floating-point noise.
fn le(a: f64, b: f64) -> bool {
    a <= b * (1.0 + 1e-9) + 1e-12
}

fn db_mode() -> impl Strategy<Value = DatabaseMode> {
    prop_oneof![Just(DatabaseMode::Empirical), Just(DatabaseMode::Sol)]
}

/// Two ordered values in `lo..=hi`.
fn ordered(lo: u32, hi: u32) -> impl Strategy<Value = (f64, f64)> {
    (lo..=hi, lo..=hi).prop_map(|(a, b)| (a.min(b) as f64, a.max(b) as f64))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn static_latency_grows_with_batch(
        dep in 0..DEPLOYMENTS.len(),
        be in 0..BACKENDS.len(),
        db in db_mode(),
        (b1, b2) in ordered(1, 512),
        isl in 1u32..=16384,
        osl in 1u32..=4096,
    ) {
        let (t1, o1) = static_perf(dep, BACKENDS[be], db, b1, isl as f64, osl as f64);
        let (t2, o2) = static_perf(dep, BACKENDS[be], db, b2, isl as f64, osl as f64);
        prop_assert!(le(t1, t2), "TTFT batch {b1}: {t1} > batch {b2}: {t2}");
        prop_assert!(le(o1, o2), "TPOT batch {b1}: {o1} > batch {b2}: {o2}");
    }

    #[test]
    fn static_latency_grows_with_isl(
        dep in 0..DEPLOYMENTS.len(),
        be in 0..BACKENDS.len(),
        db in db_mode(),
        batch in 1u32..=256,
        // Up to Mixtral's 32768-token window with the longest osl below.
        (i1, i2) in ordered(1, 28672),
        osl in 1u32..=4096,
    ) {
        let (t1, o1) = static_perf(dep, BACKENDS[be], db, batch as f64, i1, osl as f64);
        let (t2, o2) = static_perf(dep, BACKENDS[be], db, batch as f64, i2, osl as f64);
        prop_assert!(le(t1, t2), "TTFT isl {i1}: {t1} > isl {i2}: {t2}");
        prop_assert!(le(o1, o2), "TPOT isl {i1}: {o1} > isl {i2}: {o2}");
    }

    #[test]
    fn decode_step_grows_with_kv_length(
        dep in 0..DEPLOYMENTS.len(),
        empirical in any::<bool>(),
        batch in 1u32..=512,
        (k1, k2) in ordered(1, 131072),
        draft in 0u32..=3,
    ) {
        let req = request(dep, Backend::Trtllm, DatabaseMode::Empirical, ServeMode::Static, 1.0, 1.0, 1.0);
        let q = resolve_quant(&req.model, &req.system, &req.quant, req.backend).unwrap();
        let g = WorkerGraph::build(&req.model, &req.agg.parallel, &q).unwrap();
        let emp = EmpiricalSource::embedded();
        let src: &dyn PerfSource = if empirical { &emp } else { &SolSource };
        let step = |kv: f64| {
            price_step(&g, &req.system, src, &Step::decode(batch as f64, kv, 1.0 + draft as f64), 1.0, false).total_ms
        };
        let (d1, d2) = (step(k1), step(k2));
        prop_assert!(d1 > 0.0 && d1.is_finite());
        prop_assert!(le(d1, d2), "decode step kv {k1}: {d1} > kv {k2}: {d2}");
    }

    #[test]
    fn more_tp_never_adds_weight_memory(
        dense in 0usize..64,
        quant in prop_oneof![
            Just(GemmQuant::Bfloat16),
            Just(GemmQuant::Fp8),
            Just(GemmQuant::Int4Wo),
            Just(GemmQuant::Nvfp4),
        ],
        pp in 1u32..=4,
    ) {
        let reg = ModelRegistry::builtin();
        let dense_ids: Vec<&str> = reg
            .ids()
            .into_iter()
            .filter(|id| matches!(reg.resolve(id).unwrap().family, Family::Llama | Family::Gpt))
            .collect();
        prop_assume!(!dense_ids.is_empty());
        let id = dense_ids[dense % dense_ids.len()];
        let m = reg.resolve(id).unwrap();
        let q = QuantConfig { gemm: quant, ..Default::default() };
        let mut last: Option<(u32, f64)> = None;
        for tp in 1..=64u32 {
            let p = Parallel { tp, pp, dp: 1, moe_tp: 1, moe_ep: 1 };
            // Sizes that do not divide the model are rejected; skip them.
            let Ok(g) = WorkerGraph::build(&m, &p, &q) else { continue };
            let w = g.weight_bytes_per_gpu();
            prop_assert!(w > 0.0 && w.is_finite(), "{id} tp{tp}: weights {w}");
            if let Some((tp0, w0)) = last {
                prop_assert!(le(w, w0), "{id} pp{pp} {quant}: tp{tp} holds {w} B/GPU > tp{tp0} {w0}");
            }
            last = Some((tp, w));
        }
        prop_assert!(last.is_some(), "{id}: no valid tp at pp {pp}");
    }
}

/// Every dense built-in splits over 8 GPUs, and tp8 holds strictly less than tp1.
#[test]
fn dense_builtins_shrink_with_tp8() {
    let reg = ModelRegistry::builtin();
    let q = QuantConfig::default();
    let mut checked = 0;
    for id in reg.ids() {
        let m = reg.resolve(id).unwrap();
        // Qwen2.5-7B's 28 heads do not split over 8 GPUs (frameworks refuse it too).
        if !matches!(m.family, Family::Llama) || !m.num_heads.is_multiple_of(8) {
            continue;
        }
        let w = |tp| {
            WorkerGraph::build(
                &m,
                &Parallel {
                    tp,
                    pp: 1,
                    dp: 1,
                    moe_tp: 1,
                    moe_ep: 1,
                },
                &q,
            )
            .unwrap_or_else(|e| panic!("{id} tp{tp}: {e}"))
            .weight_bytes_per_gpu()
        };
        assert!(w(8) < w(1), "{id}: tp8 {} vs tp1 {}", w(8), w(1));
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} dense built-ins");
}
