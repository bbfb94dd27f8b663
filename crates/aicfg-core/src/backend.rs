//! Serving frameworks: their scheduler defaults and memory rules, as data (docs/model.md §6, §7).
use crate::error::Result;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Trtllm,
    Vllm,
    Sglang,
}

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

    /// Whether prefill chunks share a step with running decodes (chunked/mixed batching).
    /// SGLang runs prefill batches on their own by default.
    pub fn mixes_prefill_with_decode(self) -> bool {
        !matches!(self, Backend::Sglang)
    }

    /// Token budget of one scheduler step: TRT-LLM `max_num_tokens` (8192), vLLM
    /// `max_num_batched_tokens` (8192 in V1 online serving), SGLang `chunked_prefill_size`
    /// (8192, 16384 on GPUs with ≥ 160 GiB).
    pub fn step_token_budget(self, capacity_gib: f64) -> f64 {
        match self {
            Backend::Sglang if capacity_gib >= 160.0 => 16384.0,
            _ => 8192.0,
        }
    }

    /// Largest running batch the scheduler admits by default (vLLM `max_num_seqs` 1024 in V1 on
    /// large GPUs; TRT-LLM `max_batch_size` 2048; SGLang bounded by memory only).
    pub fn max_running(self) -> f64 {
        match self {
            Backend::Vllm => 1024.0,
            Backend::Trtllm => 2048.0,
            Backend::Sglang => 4096.0,
        }
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
