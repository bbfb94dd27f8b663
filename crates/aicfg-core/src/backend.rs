//! Serving frameworks: their scheduler defaults and memory rules, as data (docs/model.md §6, §7).
use crate::error::Result;
use crate::hardware::SystemSpec;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Trtllm,
    Vllm,
    Sglang,
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

    /// Default GPU-memory fraction and whether it is a share of free memory (TRT-LLM) or of
    /// total memory (vLLM `gpu_memory_utilization`, SGLang `mem_fraction_static`).
    pub fn memory_fraction(self) -> (f64, bool) {
        match self {
            Backend::Trtllm => (0.9, true),
            Backend::Vllm => (0.9, false),
            Backend::Sglang => (0.88, false),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::SystemRegistry;

    fn defaults(b: Backend, sys: &str, offline: bool) -> (f64, f64) {
        let r = SystemRegistry::builtin();
        b.scheduler_defaults(r.get(sys).unwrap(), offline)
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
