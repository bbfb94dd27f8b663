//! Per-GPU memory of a worker and the KV-cache budget (docs/model.md §7).
use crate::backend::Backend;
use crate::hardware::{SystemSpec, GIB};
use crate::model::graph::WorkerGraph;
use crate::model::{Family, ModelSpec};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MemoryBreakdown {
    pub weights_gib: f64,
    pub kv_cache_gib: f64,
    pub activations_gib: f64,
    pub nccl_gib: f64,
    pub other_gib: f64,
    pub total_gib: f64,
    pub capacity_gib: f64,
    /// KV bytes the framework can hold per GPU at its memory fraction (GiB).
    pub kv_budget_gib: f64,
    /// Requests whose whole KV fits the budget on one attention-DP rank.
    pub max_requests_by_kv: f64,
    /// Capacity exceeded, or the requested batch's KV does not fit the budget.
    pub oom: bool,
}

/// A user-given KV-cache memory fraction must be in (0, 1].
pub fn check_fraction(f: Option<f64>) -> crate::error::Result<()> {
    match f {
        Some(f) if !(f > 0.0 && f <= 1.0) => Err(crate::error::AicfgError::invalid(
            "free gpu memory fraction",
            format!("must be in (0, 1], got {f}"),
        )),
        _ => Ok(()),
    }
}

/// Activation coefficient per family and TP (the reference tool's tables; docs/model.md §7).
fn act_coeff(family: Family, tp: u32, backend: Backend) -> f64 {
    let idx = match tp {
        1 => 0,
        2 => 1,
        4 => 2,
        _ => 3,
    };
    let trt: [f64; 4] = match family {
        Family::Gpt => [10.0, 6.0, 5.0, 5.0],
        Family::Llama => [11.0, 6.5, 5.0, 5.0],
        _ => [22.0, 13.0, 10.0, 10.0],
    };
    let sgl: [f64; 4] = match family {
        Family::Gpt => [13.0, 8.0, 6.5, 6.5],
        Family::Llama => [14.0, 8.5, 6.5, 6.5],
        _ => [28.0, 17.0, 13.0, 13.0],
    };
    if backend == Backend::Sglang {
        sgl[idx]
    } else {
        trt[idx]
    }
}

/// KV-cache bytes of one sequence of `seq` tokens on one GPU (layers split over pp).
pub fn kv_bytes_per_seq(m: &ModelSpec, g: &WorkerGraph, seq: f64) -> f64 {
    let p = &g.parallel;
    // MLA with attention-DP keeps each rank's own sequences; latent is not TP-sharded.
    let per_token = m.kv_elems_per_token(p.tp, seq) * g.quant.kvcache.bytes();
    (seq * per_token + m.linear_state_bytes(p.tp)) / p.pp as f64
}

pub struct MemoryInput {
    /// Concurrent sequences per attention-DP rank.
    pub batch: f64,
    /// KV tokens each sequence holds at its longest.
    pub seq_len: f64,
    /// Tokens of the largest step (activation workspace).
    pub step_tokens: f64,
    pub free_gpu_memory_fraction: Option<f64>,
    /// Draft tokens (MTP/EAGLE) run beside the model: SGLang reserves more memory for them.
    pub spec_decode: bool,
}

pub fn memory(
    m: &ModelSpec,
    g: &WorkerGraph,
    sys: &SystemSpec,
    backend: Backend,
    inp: &MemoryInput,
) -> MemoryBreakdown {
    let p = &g.parallel;
    let weights = g.weight_bytes_per_gpu();
    let act = (2.0 * inp.step_tokens * m.hidden as f64 * act_coeff(m.family, p.tp, backend))
        .max(backend.min_activation_bytes());
    let nccl = sys.nccl_mem(p.tp * p.dp);
    let other = sys.misc.other_mem * backend.other_mem_scale();
    let per_seq = kv_bytes_per_seq(m, g, inp.seq_len);
    let kv = inp.batch * per_seq;
    let cap = sys.gpu.mem_capacity;
    let non_kv = weights + act + nccl + other;
    let (default_f, of_free) = backend.memory_fraction(sys, p, inp.spec_decode);
    let f = inp.free_gpu_memory_fraction.unwrap_or(default_f);
    let budget = if of_free {
        (cap - non_kv) * f
    } else if backend.fraction_is_static_pool() {
        // NCCL buffers are allocated before SGLang measures the memory left after the weights.
        cap * f - weights - nccl
    } else {
        cap * f - non_kv
    }
    .max(0.0);
    let total = non_kv + kv;
    let max_requests = if per_seq > 0.0 {
        (budget / per_seq).floor()
    } else {
        f64::INFINITY
    };
    MemoryBreakdown {
        weights_gib: weights / GIB,
        kv_cache_gib: kv / GIB,
        activations_gib: act / GIB,
        nccl_gib: nccl / GIB,
        other_gib: other / GIB,
        total_gib: total / GIB,
        capacity_gib: cap / GIB,
        kv_budget_gib: budget / GIB,
        max_requests_by_kv: max_requests,
        oom: non_kv >= cap || kv > budget * 1.0001,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::SystemRegistry;
    use crate::model::graph::Parallel;
    use crate::model::ModelRegistry;
    use crate::quant::QuantConfig;

    fn qwen3_32b_tp2_h200() -> (
        crate::model::ModelSpec,
        crate::hardware::SystemSpec,
        WorkerGraph,
    ) {
        let m = ModelRegistry::builtin().resolve("QWEN3_32B").unwrap();
        let sys = SystemRegistry::builtin().get("h200_sxm").unwrap().clone();
        let p = Parallel {
            tp: 2,
            ..Parallel::single()
        };
        let g = WorkerGraph::build(&m, &p, &QuantConfig::default()).unwrap();
        (m, sys, g)
    }

    #[test]
    fn qwen3_32b_tp2_h200_hand_calculation() {
        // Hand count: weights 30.51, KV 56·5000·(4·128·64·2·2) B = 34.18 GiB,
        // act 2·8192·5120·6.5 B (we use hidden size), nccl 358612992 B, other 3.5 GiB.
        let (m, sys, g) = qwen3_32b_tp2_h200();
        let mb = memory(
            &m,
            &g,
            &sys,
            Backend::Trtllm,
            &MemoryInput {
                batch: 56.0,
                seq_len: 5000.0,
                step_tokens: 8192.0,
                free_gpu_memory_fraction: None,
                spec_decode: false,
            },
        );
        assert!((mb.weights_gib - 30.51).abs() < 0.01, "{}", mb.weights_gib);
        assert!((mb.kv_cache_gib - 56.0 * 5000.0 * 131072.0 / GIB).abs() < 1e-9);
        assert!((mb.kv_cache_gib - 34.18).abs() < 0.01);
        let act = 2.0 * 8192.0 * 5120.0 * 6.5 / GIB;
        assert!((mb.activations_gib - act).abs() < 1e-9);
        assert!((mb.nccl_gib - 358612992.0 / GIB).abs() < 1e-12);
        assert!((mb.other_gib - 3.5).abs() < 1e-12);
        let total = mb.weights_gib + mb.kv_cache_gib + act + mb.nccl_gib + 3.5;
        assert!((mb.total_gib - total).abs() < 1e-9);
        assert!(!mb.oom);
    }

    #[test]
    fn sglang_static_fraction_covers_weights_and_kv_only() {
        // Qwen3-32B tp2 on H200 under SGLang: the KV pool is what 0.906 (SGLang's default for
        // 144 384 MiB, tp2: 13 568 MiB reserved) of the 151 397 597 184 B leaves after the
        // weights (32 761 446 400 B) and the NCCL buffers (358 612 992 B); activations and the
        // runtime reserve sit in the other 9.4 %.
        let (m, sys, g) = qwen3_32b_tp2_h200();
        let inp = MemoryInput {
            batch: 1.0,
            seq_len: 5000.0,
            step_tokens: 8192.0,
            free_gpu_memory_fraction: None,
            spec_decode: false,
        };
        let mb = memory(&m, &g, &sys, Backend::Sglang, &inp);
        let budget = 0.906 * 151_397_597_184.0 - 32_761_446_400.0 - 358_612_992.0;
        assert!(
            (mb.kv_budget_gib - budget / GIB).abs() < 1e-9,
            "{}",
            mb.kv_budget_gib
        );
        // 5000 tokens of 131 072 B each per request: ⌊104 046 163 657 / 655 360 000⌋ = 158.
        assert_eq!(mb.max_requests_by_kv, 158.0);
        // vLLM's utilization covers the whole process: activations and reserve come out of it.
        let v = memory(&m, &g, &sys, Backend::Vllm, &inp);
        let act = 2.0 * 8192.0 * 5120.0 * 6.5;
        let rest = 32_761_446_400.0 + act + 358_612_992.0 + 3.5 * GIB;
        assert!((v.kv_budget_gib - (0.9 * 151_397_597_184.0 - rest) / GIB).abs() < 1e-9);
    }

    #[test]
    fn more_tp_never_increases_weights() {
        let m = ModelRegistry::builtin().resolve("LLAMA3.1_70B").unwrap();
        let mut last = f64::INFINITY;
        for tp in [1, 2, 4, 8] {
            let p = Parallel {
                tp,
                ..Parallel::single()
            };
            let g = WorkerGraph::build(&m, &p, &QuantConfig::default()).unwrap();
            let w = g.weight_bytes_per_gpu();
            assert!(w <= last);
            last = w;
        }
    }
}
