//! Property tests of the deployment search: frontiers are non-dominated and sorted, every
//! reported configuration fits in memory and meets the SLA it claims, more GPUs never lower the
//! best feasible throughput, and a search is deterministic.
use aicfg_core::search::{pareto::frontier, search, SearchRequest, SearchResult};
use aicfg_core::serve::Workload;
use aicfg_core::{Backend, ModelRegistry, SystemRegistry};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16)
}

const SETUPS: &[(&str, &str)] = &[
    ("QWEN3_32B", "h200_sxm"),
    ("LLAMA3.1_8B", "h100_sxm"),
    ("QWEN3_30B_A3B", "h200_sxm"),
];

fn request(
    setup: usize,
    backend: Backend,
    gpus: u32,
    isl: f64,
    osl: f64,
    ttft: f64,
    tpot: f64,
) -> SearchRequest {
    let (m, s) = SETUPS[setup];
    let model = ModelRegistry::builtin().resolve(m).unwrap();
    let system = SystemRegistry::builtin().get(s).unwrap().clone();
    let w = Workload {
        isl,
        osl,
        prefix: 0.0,
        nextn: 0,
        nextn_accepted: 0.0,
    };
    let mut r = SearchRequest::new(model, system, backend, w, Some(gpus));
    r.ttft_ms = ttft;
    r.tpot_ms = tpot;
    r
}

fn best_total(r: &SearchResult) -> f64 {
    r.best
        .as_ref()
        .map_or(0.0, |b| b.tokens_per_s_per_gpu * b.total_gpus as f64)
}

fn backend(i: usize) -> Backend {
    Backend::ALL[i % 3]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn frontier_is_non_dominated_and_sorted(pts in proptest::collection::vec((0.0f64..100.0, 0.0f64..100.0), 0..60)) {
        let f = frontier(&pts);
        for w in f.windows(2) {
            prop_assert!(pts[w[0]].0 <= pts[w[1]].0);
            prop_assert!(pts[w[0]].1 > pts[w[1]].1, "y falls along the frontier");
        }
        for &i in &f {
            for (j, q) in pts.iter().enumerate() {
                let p = pts[i];
                let dominated = q.0 >= p.0 && q.1 >= p.1 && (q.0 > p.0 || q.1 > p.1);
                prop_assert!(!dominated, "{:?} (#{}) dominated by {:?} (#{})", p, i, q, j);
            }
        }
        // Every point left out is dominated by (or equal to) a kept one.
        for (j, q) in pts.iter().enumerate() {
            if !f.contains(&j) {
                prop_assert!(f.iter().any(|&i| pts[i].0 >= q.0 && pts[i].1 >= q.1));
            }
        }
    }

    #[test]
    fn reported_configs_fit_and_meet_their_sla(
        setup in 0..SETUPS.len(), b in 0usize..3, gpus in 1u32..17,
        isl in 256.0f64..8000.0, osl in 16.0f64..2000.0,
        ttft in 200.0f64..5000.0, tpot in 5.0f64..80.0,
    ) {
        let req = request(setup, backend(b), gpus, isl.round(), osl.round(), ttft, tpot);
        let Ok(r) = search(&req, None) else { return Ok(()); };
        let cap = req.system.capacity_gib();
        for m in &r.modes {
            for c in m.top.iter().chain(&m.pareto) {
                prop_assert!(c.total_gpus_used <= gpus);
                prop_assert!(c.total_gpus_used == c.replicas * c.gpus_per_replica);
                for w in [&c.agg, &c.prefill, &c.decode].into_iter().flatten() {
                    prop_assert!(w.memory_gib <= cap + 1e-9, "{} GiB > {} GiB", w.memory_gib, cap);
                }
            }
            for c in &m.pareto {
                prop_assert!(c.ttft_ms <= ttft, "the frontier respects TTFT");
            }
            if m.sla_met {
                for c in &m.top {
                    prop_assert!(c.meets_sla && c.ttft_ms <= ttft && c.tpot_ms <= tpot);
                }
            }
            // Ranked by throughput per GPU.
            for w in m.top.windows(2) {
                prop_assert!(w[0].tokens_per_s_per_gpu >= w[1].tokens_per_s_per_gpu || !m.sla_met);
            }
        }
        if let Some(best) = &r.best {
            prop_assert!(best.meets_sla);
        }
    }

    #[test]
    fn more_gpus_never_lower_best_throughput(
        setup in 0..SETUPS.len(), b in 0usize..3, gpus in 1u32..24, extra in 1u32..9,
        ttft in 300.0f64..4000.0, tpot in 8.0f64..60.0,
    ) {
        let small = search(&request(setup, backend(b), gpus, 2000.0, 500.0, ttft, tpot), None);
        let large = search(&request(setup, backend(b), gpus + extra, 2000.0, 500.0, ttft, tpot), None);
        if let (Ok(s), Ok(l)) = (&small, &large) {
            prop_assert!(best_total(l) >= best_total(s) * (1.0 - 1e-9),
                "{} GPUs: {} tokens/s; {} GPUs: {}", gpus, best_total(s), gpus + extra, best_total(l));
        }
        // A search that fits on fewer GPUs fits on more.
        prop_assert!(!(small.is_ok() && large.is_err()));
    }
}

#[test]
fn search_is_deterministic() {
    let req = request(2, Backend::Trtllm, 16, 4000.0, 1000.0, 2000.0, 30.0);
    let a = serde_json::to_string(&search(&req, None).unwrap()).unwrap();
    let b = serde_json::to_string(&search(&req, None).unwrap()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn disagg_replicas_match_rates() {
    // The composed replica never claims more than its prefill pool can feed.
    let req = request(0, Backend::Trtllm, 32, 4000.0, 1000.0, 2000.0, 30.0);
    let r = search(&req, None).unwrap();
    let d = r.mode(aicfg_core::ServeMode::Disagg).unwrap();
    assert!(d.sla_met);
    for c in &d.top {
        let p = c.prefill.as_ref().unwrap();
        let dec = c.decode.as_ref().unwrap();
        assert_eq!(
            c.gpus_per_replica,
            p.workers * p.gpus + dec.workers * dec.gpus
        );
        assert!(c.replica_request_rate > 0.0);
    }
}
