//! Serving frameworks: their scheduler defaults and memory rules, as data (docs/model.md §6, §7).
use crate::error::Result;
use crate::hardware::SystemSpec;
use crate::model::graph::Parallel;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Trtllm,
    Vllm,
    Sglang,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// vLLM V1's largest CUDA-graph capture size (tokens per step): `max_cudagraph_capture_size`
/// defaults to 512.
const VLLM_GRAPH_CAPTURE_TOKENS: f64 = 512.0;

impl Backend {
    pub const ALL: [Backend; 3] = [Backend::Trtllm, Backend::Vllm, Backend::Sglang];

    pub fn parse(s: &str) -> Result<Self> {
        match s
            .trim()
            .to_ascii_lowercase()
            .replace(['-', '_'], "")
            .as_str()
        {
            "trtllm" | "tensorrtllm" => Ok(Backend::Trtllm),
            "vllm" => Ok(Backend::Vllm),
            "sglang" => Ok(Backend::Sglang),
            _ => {
                let known = ["trtllm", "vllm", "sglang"];
                Err(crate::suggest::unknown(
                    "backend",
                    s,
                    &known,
                    known.join(", "),
                ))
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Trtllm => "trtllm",
            Backend::Vllm => "vllm",
            Backend::Sglang => "sglang",
        }
    }

    /// Whether the framework replays a step of `step_tokens` tokens, `prefill_tokens` of them
    /// prefill, from a captured CUDA graph (one launch) rather
    /// than launching its kernels one by one. Pure decode steps are graphed everywhere
    /// (TRT-LLM's decode CUDA graphs, SGLang's decode graphs, vLLM's full graphs). A step with
    /// prefill runs eagerly in TRT-LLM and SGLang (their graphs hold decode batches only);
    /// vLLM V1 replays piecewise graphs up to its capture size (512 tokens) and runs the
    /// compiled model above it.
    pub fn graphs_step(self, prefill_tokens: f64, step_tokens: f64) -> bool {
        if prefill_tokens <= 0.0 {
            return true;
        }
        match self {
            Backend::Vllm => step_tokens <= VLLM_GRAPH_CAPTURE_TOKENS,
            Backend::Trtllm | Backend::Sglang => false,
        }
    }

    /// Whether prefill chunks share a step with running decodes (chunked/mixed batching).
    /// SGLang runs prefill batches on their own by default.
    pub fn mixes_prefill_with_decode(self) -> bool {
        !matches!(self, Backend::Sglang)
    }

    /// Scheduler defaults on `sys`: (token budget of one step, running requests per rank), for
    /// an online server or an offline engine (`offline`: vLLM's `LLM` class, as `vllm bench
    /// throughput` runs it). Each framework picks them from the GPU:
    /// - TRT-LLM: `max_num_tokens` 8192, `max_batch_size` 2048 on every GPU;
    /// - vLLM V1 (`EngineArgs` batch defaults): on GPUs of ≥ 70 GiB other than the A100,
    ///   `max_num_batched_tokens` 8192 (offline 16384) and `max_num_seqs` 1024; elsewhere (A100,
    ///   L40S, L4, A10, ...) 2048 (offline 8192) and 256;
    /// - SGLang (`ServerArgs` GPU-memory defaults): `chunked_prefill_size` 2048 below 35 GiB,
    ///   4096 below 60 GiB, 8192 below 160 GiB, 16384 above; running requests bounded by memory.
    pub fn scheduler_defaults(self, sys: &SystemSpec, offline: bool) -> (f64, f64) {
        let gib = sys.capacity_gib();
        match self {
            Backend::Trtllm => (8192.0, 2048.0),
            Backend::Vllm => {
                // vLLM tests the device name for "a100"; compute capability 8.0 is the A100
                // (and the 24 GiB A30, below the threshold anyway).
                let large = gib >= 70.0 && sys.gpu.sm_version != 80;
                match (large, offline) {
                    (true, false) => (8192.0, 1024.0),
                    (true, true) => (16384.0, 1024.0),
                    (false, false) => (2048.0, 256.0),
                    (false, true) => (8192.0, 256.0),
                }
            }
            Backend::Sglang => {
                let budget = if gib < 35.0 {
                    2048.0
                } else if gib < 60.0 {
                    4096.0
                } else if gib < 160.0 {
                    8192.0
                } else {
                    16384.0
                };
                (budget, 4096.0)
            }
        }
    }

    /// Token budget of one step of an online server on `sys` (TRT-LLM `max_num_tokens`, vLLM
    /// `max_num_batched_tokens`, SGLang `chunked_prefill_size`).
    pub fn step_token_budget(self, sys: &SystemSpec) -> f64 {
        self.scheduler_defaults(sys, false).0
    }

    /// Largest running batch per rank an online server admits by default (TRT-LLM
    /// `max_batch_size`, vLLM `max_num_seqs`; SGLang is bounded by memory only).
    pub fn max_running(self, sys: &SystemSpec) -> f64 {
        self.scheduler_defaults(sys, false).1
    }

    /// Default GPU-memory fraction of a worker with parallel layout `p` on `sys` (with draft
    /// tokens when `spec_decode`), and whether it is a share of free memory (TRT-LLM
    /// `free_gpu_memory_fraction` 0.9) or of total memory (vLLM `gpu_memory_utilization` 0.9,
    /// SGLang `mem_fraction_static`, see [`sglang_mem_fraction_static`]).
    pub fn memory_fraction(self, sys: &SystemSpec, p: &Parallel, spec_decode: bool) -> (f64, bool) {
        match self {
            Backend::Trtllm => (0.9, true),
            Backend::Vllm => (0.9, false),
            Backend::Sglang => (sglang_mem_fraction_static(sys, p, spec_decode), false),
        }
    }

    /// Whether the memory fraction covers only the weights and the KV pool (SGLang's
    /// `mem_fraction_static`: `profile_max_num_token` gives the KV pool what is left of
    /// `total · fraction` after the weights, so activations, CUDA graphs and the runtime reserve
    /// live in the `1 − fraction` share) rather than everything the worker allocates (vLLM's
    /// `gpu_memory_utilization` is the whole process's share of the GPU).
    pub fn fraction_is_static_pool(self) -> bool {
        matches!(self, Backend::Sglang)
    }

    /// Minimum activation workspace (bytes): 70 MiB TRT-LLM/vLLM, 90 MiB SGLang.
    pub fn min_activation_bytes(self) -> f64 {
        match self {
            Backend::Sglang => 90.0 * 1024.0 * 1024.0,
            _ => 70.0 * 1024.0 * 1024.0,
        }
    }

    /// Runtime reserve multiplier on `other_mem` (SGLang keeps more aside).
    pub fn other_mem_scale(self) -> f64 {
        match self {
            Backend::Sglang => 1.2,
            _ => 1.0,
        }
    }
}

/// SGLang's `mem_fraction_static` when the user sets none (`ServerArgs`'s GPU-memory
/// defaults, SGLang 0.5): total memory minus a reserve for activations and CUDA graphs, in MiB,
/// `512 + 1.5 · max(chunked_prefill_size, 2048) + 2 · cuda_graph_max_bs + 1024 · tp · pp / 8`,
/// plus `(3 + 1.5 if cuda_graph_max_bs > 300) · cuda_graph_max_bs · dp` with attention DP,
/// at least 10 GiB on GPUs above 60 GiB, plus 2 GiB for draft (EAGLE/MTP) models; rounded to
/// three decimals like SGLang. A 4×B200 DeepSeek-R1 FP8 worker gets 0.856 (its 157.5 GiB of
/// weights do not fit), an 8×H100 worker 0.819.
pub fn sglang_mem_fraction_static(sys: &SystemSpec, p: &Parallel, spec_decode: bool) -> f64 {
    let mib = sys.gpu.mem_capacity / (1024.0 * 1024.0);
    let gib = mib / 1024.0;
    // SGLang's tp_size spans the attention-DP ranks (`--tp 8 --dp 8` is 8 GPUs).
    let tp_size = p.tp.saturating_mul(p.dp);
    let tp = f64::from(tp_size);
    let chunk = Backend::Sglang.step_token_budget(sys);
    let graph_bs = if gib < 20.0 {
        8.0
    } else if gib < 35.0 {
        if tp_size < 4 {
            24.0
        } else {
            80.0
        }
    } else if gib < 60.0 {
        if tp_size < 4 {
            32.0
        } else {
            160.0
        }
    } else if gib < 160.0 {
        if tp_size < 4 {
            256.0
        } else {
            512.0
        }
    } else {
        512.0
    };
    let mut reserved =
        512.0 + 1.5 * chunk.max(2048.0) + 2.0 * graph_bs + tp * f64::from(p.pp) / 8.0 * 1024.0;
    if p.dp > 1 {
        let per = if graph_bs > 300.0 { 4.5 } else { 3.0 };
        reserved += per * graph_bs * f64::from(p.dp);
    }
    if gib > 60.0 {
        reserved = reserved.max(10.0 * 1024.0);
    }
    if spec_decode {
        reserved += 2.0 * 1024.0;
    }
    (((mib - reserved) / mib).max(0.0) * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::SystemRegistry;

    fn defaults(b: Backend, sys: &str, offline: bool) -> (f64, f64) {
        let r = SystemRegistry::builtin();
        b.scheduler_defaults(r.get(sys).unwrap(), offline)
    }

    #[test]
    fn sglang_static_fraction_follows_its_memory_heuristic() {
        let r = SystemRegistry::builtin();
        let par = |tp: u32, dp: u32| Parallel {
            tp,
            pp: 1,
            dp,
            moe_tp: 1,
            moe_ep: 1,
        };
        let f = |sys: &str, p: Parallel, spec: bool| {
            sglang_mem_fraction_static(r.get(sys).unwrap(), &p, spec)
        };
        // H100, 81 920 MiB, tp8: 512 + 1.5·8192 + 2·512 + 1024 = 14 848 MiB reserved.
        assert_eq!(f("h100_sxm", par(8, 1), false), 0.819);
        // H200, 144 384 MiB, tp1: 512 + 12 288 + 2·256 + 128 = 13 440 MiB.
        assert_eq!(f("h200_sxm", par(1, 1), false), 0.907);
        // B200, 184 320 MiB, tp4: 512 + 1.5·16 384 + 1024 + 512 = 26 624 MiB.
        assert_eq!(f("b200_sxm", par(4, 1), false), 0.856);
        // Attention DP over 8 ranks (tp_size 8) adds 4.5·512·8 MiB: 45 568 MiB.
        assert_eq!(f("b200_sxm", par(1, 8), false), 0.753);
        // A draft model reserves 2 GiB more: 28 672 MiB.
        assert_eq!(f("b200_sxm", par(4, 1), true), 0.844);
        // L40S (45 GiB, below 60 GiB): no 10 GiB floor; 4096-token chunks, 32 graph batches.
        let l40s = r.get("l40s").unwrap();
        let mib = l40s.gpu.mem_capacity / (1024.0 * 1024.0);
        let want =
            ((mib - (512.0 + 1.5 * 4096.0 + 2.0 * 32.0 + 128.0)) / mib * 1000.0).round() / 1000.0;
        assert_eq!(f("l40s", par(1, 1), false), want);
        // The other backends keep their fixed defaults.
        let h = r.get("h200_sxm").unwrap();
        assert_eq!(
            Backend::Vllm.memory_fraction(h, &par(1, 1), false),
            (0.9, false)
        );
        assert_eq!(
            Backend::Trtllm.memory_fraction(h, &par(1, 1), false),
            (0.9, true)
        );
    }

    #[test]
    fn vllm_picks_its_batch_defaults_from_the_gpu() {
        // ≥ 70 GiB and not an A100: the large defaults, doubled budget offline.
        assert_eq!(defaults(Backend::Vllm, "h100_sxm", false), (8192.0, 1024.0));
        assert_eq!(defaults(Backend::Vllm, "h100_sxm", true), (16384.0, 1024.0));
        assert_eq!(defaults(Backend::Vllm, "b200_sxm", false), (8192.0, 1024.0));
        // The 80 GiB A100 and the 48 GiB L40S get the small ones.
        assert_eq!(defaults(Backend::Vllm, "a100_sxm", false), (2048.0, 256.0));
        assert_eq!(defaults(Backend::Vllm, "a100_sxm", true), (8192.0, 256.0));
        assert_eq!(defaults(Backend::Vllm, "l40s", false), (2048.0, 256.0));
    }

    #[test]
    fn sglang_chunk_follows_gpu_memory_and_trtllm_is_fixed() {
        assert_eq!(defaults(Backend::Sglang, "l4", false).0, 2048.0);
        assert_eq!(defaults(Backend::Sglang, "l40s", false).0, 4096.0);
        assert_eq!(defaults(Backend::Sglang, "h200_sxm", false).0, 8192.0);
        assert_eq!(defaults(Backend::Sglang, "b200_sxm", false).0, 16384.0);
        for s in ["l4", "a100_sxm", "h100_sxm", "gb200"] {
            assert_eq!(defaults(Backend::Trtllm, s, false), (8192.0, 2048.0));
            assert_eq!(defaults(Backend::Trtllm, s, true), (8192.0, 2048.0));
        }
    }
}
