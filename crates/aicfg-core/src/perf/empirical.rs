//! EMPIRICAL source: roofline times divided by calibrated efficiencies, plus fixed per-kernel
//! costs. The numbers live in `data/calibration/empirical.yaml` (fitted to measured serving runs
//! by `aicfg bench calibrate`; format documented in data/calibration/README.md).
use super::{comm_bytes_on_wire, PerfSource, Work, WorkClass};
use crate::error::{AicfgError, Result};
use crate::hardware::SystemSpec;
use crate::model::graph::{CommOp, OpKind};
use crate::quant::{ComputeDtype, GemmQuant, MoeQuant};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Scheduling/serving constants of one backend (framework).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BackendCalib {
    /// Exposed host cost of every scheduler step (ms), whatever its size: the scheduler pass,
    /// graph replay/launch and the device-to-host sync that ends the step.
    pub step_ms: f64,
    /// Per-request API path (ms), paid once in TTFT: HTTP, chat template, tokenization and the
    /// first detokenization.
    pub ttft_ms: f64,
    /// Steps between a request's arrival and its prefill's step, plus those until its first
    /// token is returned: half a step on average for arriving mid-step, one more where an
    /// overlapping scheduler already planned the next step or returns outputs a step late.
    pub wait_steps: f64,
    /// Exposed host cost per request in a step (µs): per-request scheduling, sampling inputs,
    /// output processing and streaming (Python loops over the batch). Absent in older files.
    #[serde(default)]
    pub req_us: f64,
    /// Host time to launch one op of a step that is not replayed from a CUDA graph (µs): the
    /// framework's Python module and dispatch work for the op's kernels. Such a step (one that
    /// carries prefill: `Backend::graphs_step`) takes at least its launches × this. Absent in
    /// older files.
    #[serde(default)]
    pub launch_us: f64,
}

impl BackendCalib {
    /// No host cost at all: the roofline's, and the simulator's workers (it adds its own).
    pub const ZERO: BackendCalib = BackendCalib {
        step_ms: 0.0,
        ttft_ms: 0.0,
        wait_steps: 0.0,
        req_us: 0.0,
        launch_us: 0.0,
    };

    /// Wall time of one step of `gpu_ms` GPU work carrying `reqs` requests (ms): the host cost
    /// adds to the GPU time. (Hiding the per-request part behind the GPU step, as overlapping
    /// schedulers claim to, fits the measured TPOTs worse: 14.0 → 15.5 % MdAPE.)
    pub fn step_wall_ms(&self, gpu_ms: f64, reqs: f64) -> f64 {
        gpu_ms + self.step_ms + self.req_us * reqs.max(0.0) * 1e-3
    }
}

/// Kernel constants of one GPU generation: efficiencies against the datasheet peaks and fixed
/// per-kernel costs. Fitted to the measured op tables (`aicfg bench calibrate --ops`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpCalib {
    /// Asymptotic fraction of tensor-core peak reached by large GEMMs, per compute dtype.
    pub gemm_eff_bf16: f64,
    pub gemm_eff_int8: f64,
    pub gemm_eff_fp8: f64,
    /// Asymptotic efficiency of block-scaled FP8 GEMMs (128×128 weight / 1×128 activation
    /// scales, DeepGEMM / CUTLASS blockwise): the per-block rescale in the main loop costs MMA
    /// issue slots a per-tensor-scaled FP8 GEMM does not pay. 0 = as `gemm_eff_fp8` (files
    /// written before it).
    #[serde(default)]
    pub gemm_eff_fp8_block: f64,
    pub gemm_eff_fp4: f64,
    /// GEMM rows at which compute efficiency reaches half its asymptote.
    pub gemm_m_half: f64,
    /// Time per token row (ns) of the runtime activation quantization in front of a GEMM whose
    /// MMAs take quantized activations (FP8/INT8/FP4, not weight-only): a per-token (or
    /// per-128-group) scale reduction, one row per thread block. vLLM and SGLang run it as a
    /// kernel of its own. 0 = none.
    #[serde(default)]
    pub gemm_quant_row_ns: f64,
    /// Bytes moved per activation element by that quantization pass (a dynamic one reads the
    /// BF16 row twice, max then scale, and writes the 1-byte copy: 5 B), at `mem_eff` of HBM
    /// bandwidth. 0 = none.
    #[serde(default)]
    pub gemm_quant_bytes: f64,
    /// The backend's per-tensor FP8 GEMMs take a calibrated static activation scale (TRT-LLM's
    /// FP8 linear): the cast fuses into the producing kernel and no quantization pass runs.
    /// False: the scale is computed per call (vLLM, SGLang). Not fitted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gemm_fp8_static_scale: bool,
    /// Multiplier on compute efficiency for weight-only modes (dequantize before the MMA).
    pub dequant_eff: f64,
    /// Fraction of HBM bandwidth reached by streaming kernels.
    pub mem_eff: f64,
    /// Fixed cost per GEMM kernel (µs).
    pub kernel_us: f64,
    /// Fixed cost per elementwise kernel (µs): norms, activations, quantize casts.
    pub elem_us: f64,
    /// Fraction of tensor-core peak reached by prefill (flash) attention.
    pub attn_ctx_eff: f64,
    /// New tokens per request at which prefill attention reaches half its asymptote.
    pub attn_ctx_m_half: f64,
    /// Work tiles (requests × heads × 128-token query blocks) at which prefill attention
    /// reaches half its efficiency: fewer tiles than the GPU has SMs leave SMs idle.
    pub attn_ctx_tiles_half: f64,
    /// Ratio of prefill-attention efficiency with an FP8 KV cache to that with a BF16 one,
    /// for BF16 MHA attention: below 1 where the kernel dequantizes K/V read back from the
    /// paged cache (SGLang on Hopper), above 1 where the backend switches to FP8 attention
    /// (TRT-LLM's FP8 context FMHA). Capped at `EFF_MAX` overall.
    #[serde(default = "one")]
    pub attn_ctx_kvq_ratio: f64,
    /// Multiplier on prefill-attention efficiency for MLA prefill (per-head K/V decompressed
    /// from the latent, qk 192 / v 128 wide): its own kernels, up to 2.5x slower than the
    /// backend's MHA kernel (SGLang on Hopper) or faster (TRT-LLM). Capped at `EFF_MAX` overall.
    #[serde(default = "one")]
    pub attn_ctx_mla_ratio: f64,
    /// Fraction of HBM bandwidth reached by decode attention KV reads.
    pub attn_gen_eff: f64,
    /// Fraction of tensor-core peak reached by decode attention when compute-bound (MLA decode:
    /// all heads share one latent KV, so FlashMLA-type kernels are bound by the MMA, not HBM).
    pub attn_gen_flops_eff: f64,
    /// Fixed cost per attention kernel (µs).
    pub attn_us: f64,
    /// Fixed cost of one decode-attention kernel (µs): launch, prologue and tail.
    #[serde(default = "default_attn_gen_us")]
    pub attn_gen_us: f64,
    /// Fixed cost per decode-attention work unit (one request's KV head, a thread block or
    /// split of one), µs of SM time: loading the query and page table, the softmax merge and
    /// the output write, paid whatever the KV length. Spread over the GPU's SMs.
    #[serde(default)]
    pub attn_gen_unit_us: f64,
    /// MLA decode's own kernel cost and per-block cost (µs): FlashMLA-type kernels run one
    /// block per request over all its heads (a 64-row tile of 576-wide queries), a larger
    /// fixed unit than an MHA/GQA block. Absent: 14 µs and 0.
    #[serde(default = "default_attn_gen_us")]
    pub attn_gen_mla_us: f64,
    #[serde(default)]
    pub attn_gen_mla_unit_us: f64,
    /// Ratio of MHA/GQA decode attention's HBM efficiency with an FP8 KV cache to that with a
    /// BF16 one (MLA decode keeps its own curve): the FP8 kernels dequantize K/V in registers
    /// and are often a different kernel family (TRT-LLM XQA FP8, FlashInfer vs
    /// FlashAttention-3 in SGLang). Capped at `EFF_MAX` overall.
    #[serde(default = "one")]
    pub attn_gen_kvq_ratio: f64,
    /// Asymptotic fraction of the format's tensor-core peak reached by grouped expert GEMMs,
    /// per expert format: the MoE kernels differ by format (per-tensor vs block-scaled FP8,
    /// weight-only 4-bit dequantizing to BF16 MMAs, FP4 MMAs on Blackwell), unlike dense GEMMs.
    #[serde(alias = "moe_eff")]
    pub moe_eff_bf16: f64,
    #[serde(default = "default_moe_eff")]
    pub moe_eff_fp8: f64,
    #[serde(default = "default_moe_eff")]
    pub moe_eff_fp8_block: f64,
    /// Weight-only formats (int4/int8/MXFP4/NVFP4 weights, BF16 activations and MMAs).
    #[serde(default = "default_moe_eff")]
    pub moe_eff_w4a16: f64,
    /// 4-bit weights with FP8 activations and MMAs (w4afp8, MXFP4 × MXFP8).
    #[serde(default = "default_moe_eff")]
    pub moe_eff_w4a8: f64,
    /// NVFP4 weights and activations (FP4 MMAs where the GPU has them).
    #[serde(default = "default_moe_eff")]
    pub moe_eff_fp4: f64,
    /// Tokens per expert at which expert GEMM efficiency reaches half its asymptote.
    pub moe_m_half: f64,
    /// Reduction length (K) at which an expert GEMM reaches half its efficiency: each output
    /// tile pays a fixed prologue/epilogue and pipeline fill, so short-K GEMMs (the down
    /// projection of narrow, tensor-sharded experts: K = inter/moe_tp) run well below wide ones.
    #[serde(default = "default_moe_k_half")]
    pub moe_k_half: f64,
    /// Bytes moved per hidden element of every routed (token, expert) pair outside the grouped
    /// GEMMs (permute into expert order, un-permute and combine the top-k outputs, activation
    /// casts), at `mem_eff` of HBM bandwidth, in series with the GEMMs.
    #[serde(default = "default_moe_route_bytes")]
    pub moe_route_bytes: f64,
    /// Fixed cost per MoE layer (µs): routing, permutation, several kernels.
    pub moe_us: f64,
    /// Fraction of link bandwidth reached by collectives.
    pub comm_eff: f64,
    /// Bandwidth reached by in-node all-reduce, as a fraction of link bandwidth against ring
    /// traffic (one-shot, two-shot and NVLS kernels move less than a ring would).
    pub allreduce_eff: f64,
    /// Latency of one all-reduce inside a node (µs): the frameworks' one-shot/two-shot custom
    /// all-reduce kernels, not NCCL.
    pub allreduce_us: f64,
    /// Bandwidth of in-node all-reduces above [`CUSTOM_ALLREDUCE_MAX_BYTES`], which the
    /// frameworks hand to NCCL (ring or NVLS), as a fraction of link bandwidth against ring
    /// traffic; their latency is `comm_us_nvlink`. 0 = no such regime (files written before it).
    #[serde(default)]
    pub allreduce_nccl_eff: f64,
    /// Latency of one NCCL collective inside an NVLink domain (µs).
    pub comm_us_nvlink: f64,
    /// Latency of one collective across the scale-out network (µs).
    pub comm_us_network: f64,
    /// NCCL latency per ring step (µs): its LL protocol hands each chunk on peer to peer, so a
    /// small collective's latency grows with the steps. Absent = 0.
    #[serde(default)]
    pub comm_hop_us: f64,
}

impl OpCalib {
    /// Every constant with its name, for fitting.
    pub fn fields_mut(&mut self) -> Vec<(&'static str, &mut f64)> {
        vec![
            ("gemm_eff_bf16", &mut self.gemm_eff_bf16),
            ("gemm_eff_int8", &mut self.gemm_eff_int8),
            ("gemm_eff_fp8", &mut self.gemm_eff_fp8),
            ("gemm_eff_fp8_block", &mut self.gemm_eff_fp8_block),
            ("gemm_eff_fp4", &mut self.gemm_eff_fp4),
            ("gemm_m_half", &mut self.gemm_m_half),
            ("gemm_quant_row_ns", &mut self.gemm_quant_row_ns),
            ("gemm_quant_bytes", &mut self.gemm_quant_bytes),
            ("dequant_eff", &mut self.dequant_eff),
            ("mem_eff", &mut self.mem_eff),
            ("kernel_us", &mut self.kernel_us),
            ("elem_us", &mut self.elem_us),
            ("attn_ctx_eff", &mut self.attn_ctx_eff),
            ("attn_ctx_m_half", &mut self.attn_ctx_m_half),
            ("attn_ctx_tiles_half", &mut self.attn_ctx_tiles_half),
            ("attn_ctx_kvq_ratio", &mut self.attn_ctx_kvq_ratio),
            ("attn_ctx_mla_ratio", &mut self.attn_ctx_mla_ratio),
            ("attn_gen_eff", &mut self.attn_gen_eff),
            ("attn_gen_flops_eff", &mut self.attn_gen_flops_eff),
            ("attn_us", &mut self.attn_us),
            ("attn_gen_us", &mut self.attn_gen_us),
            ("attn_gen_unit_us", &mut self.attn_gen_unit_us),
            ("attn_gen_kvq_ratio", &mut self.attn_gen_kvq_ratio),
            ("attn_gen_mla_us", &mut self.attn_gen_mla_us),
            ("attn_gen_mla_unit_us", &mut self.attn_gen_mla_unit_us),
            ("moe_eff_bf16", &mut self.moe_eff_bf16),
            ("moe_eff_fp8", &mut self.moe_eff_fp8),
            ("moe_eff_fp8_block", &mut self.moe_eff_fp8_block),
            ("moe_eff_w4a16", &mut self.moe_eff_w4a16),
            ("moe_eff_w4a8", &mut self.moe_eff_w4a8),
            ("moe_eff_fp4", &mut self.moe_eff_fp4),
            ("moe_m_half", &mut self.moe_m_half),
            ("moe_k_half", &mut self.moe_k_half),
            ("moe_route_bytes", &mut self.moe_route_bytes),
            ("moe_us", &mut self.moe_us),
            ("comm_eff", &mut self.comm_eff),
            ("allreduce_eff", &mut self.allreduce_eff),
            ("allreduce_us", &mut self.allreduce_us),
            ("allreduce_nccl_eff", &mut self.allreduce_nccl_eff),
            ("comm_us_nvlink", &mut self.comm_us_nvlink),
            ("comm_us_network", &mut self.comm_us_network),
            ("comm_hop_us", &mut self.comm_hop_us),
        ]
    }

    /// Grouped-GEMM efficiency of an expert format (by its table label).
    fn moe_eff(&self, label: &str) -> f64 {
        match MoeQuant::parse(label) {
            Ok(MoeQuant::Fp8) => self.moe_eff_fp8,
            Ok(MoeQuant::Fp8Block) => self.moe_eff_fp8_block,
            Ok(MoeQuant::W4afp8 | MoeQuant::W4a8Mxfp4Mxfp8) => self.moe_eff_w4a8,
            Ok(MoeQuant::Nvfp4) => self.moe_eff_fp4,
            Ok(q) if q.weight_only() => self.moe_eff_w4a16,
            _ => self.moe_eff_bf16,
        }
    }

    fn gemm_eff(&self, d: ComputeDtype) -> f64 {
        match d {
            ComputeDtype::Bf16 => self.gemm_eff_bf16,
            ComputeDtype::Int8 => self.gemm_eff_int8,
            ComputeDtype::Fp8 => self.gemm_eff_fp8,
            ComputeDtype::Fp4 => self.gemm_eff_fp4,
        }
    }
}

// Defaults for calibration files written before the per-format MoE constants: mid-range values
// inside their bounds (`opfit::bounds`), to be refitted with `bench calibrate --ops`.
fn default_moe_eff() -> f64 {
    0.3
}
/// No kernel sustains the datasheet dense tensor-core peak (the fit's upper bound too).
pub const EFF_MAX: f64 = 0.95;

fn one() -> f64 {
    1.0
}
/// Calibration files from before `attn_gen_us`: the shared attention kernel cost they fitted.
fn default_attn_gen_us() -> f64 {
    14.0
}
fn default_moe_k_half() -> f64 {
    256.0
}
fn default_moe_route_bytes() -> f64 {
    4.0
}

/// GPU generation of a system, from its compute capability: the key of the per-generation
/// kernel constants.
pub fn generation(sys: &SystemSpec) -> Option<&'static str> {
    match sys.gpu.sm_version {
        80..=87 => Some("ampere"),
        89 => Some("ada"),
        90 => Some("hopper"),
        100..=129 => Some("blackwell"),
        _ => None,
    }
}

/// Kernel constants of one GPU generation: pooled over the backends, plus per-backend sections
/// where a framework's kernels differ (vLLM's block-FP8 GEMM, SGLang's fused MoE, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenCalib {
    #[serde(flatten)]
    pub ops: OpCalib,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub backends: BTreeMap<String, OpCalib>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmpiricalParams {
    /// Kernel constants for systems whose generation has no section in `generations`.
    #[serde(flatten)]
    pub ops: OpCalib,
    /// Kernel constants per GPU generation (`ampere`, `ada`, `hopper`, `blackwell`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub generations: BTreeMap<String, GenCalib>,
    /// Per-kernel time (µs) that the op-by-op measurements the kernel constants are fitted to
    /// carry and a CUDA-graph replay of a whole step hides; taken off every op time, never below
    /// the op's roofline (the same physics as `silicon.overlap_us`). A serving constant.
    #[serde(default)]
    pub overlap_us: f64,
    /// Benchmark length in waves of `concurrency` requests: the first wave arrives at once and
    /// queues for prefill; later waves arrive in groups spaced by the earlier prefills.
    pub burst_waves: f64,
    /// Per-backend serving constants, keyed by backend name.
    pub backends: BTreeMap<String, BackendCalib>,
    /// Serving constants for the measured-table modes (silicon / hybrid); absent → the ones above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silicon: Option<SiliconCalib>,
}

/// Serving constants used when op times come from measured tables. The host-side costs are the
/// same physics as in empirical mode, but that fit also absorbed op-level error, so they are
/// fitted separately against silicon/hybrid predictions (`aicfg bench calibrate --database-mode
/// hybrid`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiliconCalib {
    /// Per-kernel latency (µs) that isolated op measurements carry (launch, ramp-up, tail) and a
    /// CUDA-graph replay with overlapping kernels hides; taken off every measured op time,
    /// never below the op's roofline.
    pub overlap_us: f64,
    pub burst_waves: f64,
    pub backends: BTreeMap<String, BackendCalib>,
}

impl SiliconCalib {
    /// Start from the empirical serving constants.
    pub fn from_empirical(p: &EmpiricalParams) -> Self {
        SiliconCalib {
            overlap_us: 0.0,
            burst_waves: p.burst_waves,
            backends: p.backends.clone(),
        }
    }
}

const EMBEDDED: &str = include_str!("../../../../data/calibration/empirical.yaml");

impl EmpiricalParams {
    /// The embedded calibration, parsed once per process.
    pub fn embedded() -> Self {
        static PARSED: std::sync::OnceLock<EmpiricalParams> = std::sync::OnceLock::new();
        PARSED
            .get_or_init(|| {
                Self::from_yaml(EMBEDDED).expect("embedded calibration is valid (checked by tests)")
            })
            .clone()
    }

    pub fn from_yaml(text: &str) -> Result<Self> {
        crate::limits::check_yaml_depth(text, crate::limits::MAX_YAML_DEPTH)
            .map_err(AicfgError::Calibration)?;
        let p: EmpiricalParams =
            serde_norway::from_str(text).map_err(|e| AicfgError::Calibration(e.to_string()))?;
        for (n, v) in p.scalars() {
            if !(v.is_finite() && v >= 0.0) {
                return Err(AicfgError::Calibration(format!(
                    "{n} must be a non-negative number, got {v}"
                )));
            }
            // Efficiencies are fractions of a peak: 0 would make every op take forever.
            if n.ends_with("_eff") && !(v > 0.0 && v <= 1.0) {
                return Err(AicfgError::Calibration(format!(
                    "{n} is a fraction of peak and must be in (0, 1], got {v}"
                )));
            }
        }
        for b in ["trtllm", "vllm", "sglang"] {
            if !p.backends.contains_key(b) {
                return Err(AicfgError::Calibration(format!("backends.{b} is missing")));
            }
        }
        Ok(p)
    }

    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).expect("plain data serializes")
    }

    fn scalars(&self) -> Vec<(String, f64)> {
        let mut c = self.clone();
        let mut v: Vec<(String, f64)> = c.fields_mut().into_iter().map(|(n, v)| (n, *v)).collect();
        let mut c = self.clone();
        v.extend(c.silicon_fields_mut().into_iter().map(|(n, x)| (n, *x)));
        let mut c = self.clone();
        v.extend(c.op_fields_mut().into_iter().map(|(n, x)| (n, *x)));
        v
    }

    /// Kernel constants that apply to `sys` under `backend`: the generation's backend section,
    /// else the generation's pooled one, else the top-level ones.
    pub fn ops_for(&self, sys: &SystemSpec, backend: &str) -> &OpCalib {
        match generation(sys).and_then(|g| self.generations.get(g)) {
            Some(g) => g.backends.get(backend).unwrap_or(&g.ops),
            None => &self.ops,
        }
    }

    /// Every kernel constant (top level and per generation) with its name.
    pub fn op_fields_mut(&mut self) -> Vec<(String, &mut f64)> {
        let mut v: Vec<(String, &mut f64)> = self
            .ops
            .fields_mut()
            .into_iter()
            .map(|(n, x)| (n.to_string(), x))
            .collect();
        for (g, c) in self.generations.iter_mut() {
            v.extend(
                c.ops
                    .fields_mut()
                    .into_iter()
                    .map(|(n, x)| (format!("generations.{g}.{n}"), x)),
            );
            for (b, o) in c.backends.iter_mut() {
                v.extend(
                    o.fields_mut()
                        .into_iter()
                        .map(|(n, x)| (format!("generations.{g}.backends.{b}.{n}"), x)),
                );
            }
        }
        v
    }

    /// The tunable numbers of the `silicon` section (created from the empirical ones if absent).
    pub fn silicon_fields_mut(&mut self) -> Vec<(String, &mut f64)> {
        if self.silicon.is_none() {
            return Vec::new();
        }
        let s = self.silicon.as_mut().expect("checked above");
        let mut v: Vec<(String, &mut f64)> = vec![
            ("silicon.overlap_us".into(), &mut s.overlap_us),
            ("silicon.burst_waves".into(), &mut s.burst_waves),
        ];
        for (name, b) in s.backends.iter_mut() {
            v.push((format!("silicon.backends.{name}.step_ms"), &mut b.step_ms));
            v.push((format!("silicon.backends.{name}.ttft_ms"), &mut b.ttft_ms));
            v.push((
                format!("silicon.backends.{name}.wait_steps"),
                &mut b.wait_steps,
            ));
            v.push((format!("silicon.backends.{name}.req_us"), &mut b.req_us));
            v.push((
                format!("silicon.backends.{name}.launch_us"),
                &mut b.launch_us,
            ));
        }
        v
    }

    /// Serving constants for a mode: (backend constants, burst waves).
    pub fn serving(&self, backend: &str, measured: bool) -> (BackendCalib, f64) {
        match (&self.silicon, measured) {
            (Some(s), true) => (
                s.backends
                    .get(backend)
                    .copied()
                    .unwrap_or_else(|| self.backend(backend)),
                s.burst_waves,
            ),
            _ => (self.backend(backend), self.burst_waves),
        }
    }

    /// Every number a serving-run calibration (`bench calibrate --csv`) fits: the serving
    /// constants only (graph overlap, benchmark burst length, per-backend host costs). Kernel
    /// constants are fitted to kernel measurements (`op_fields_mut`, `bench calibrate --ops`),
    /// never end to end: a serving fit would absorb missing serving mechanisms into them.
    pub fn fields_mut(&mut self) -> Vec<(String, &mut f64)> {
        let mut v: Vec<(String, &mut f64)> = vec![
            ("overlap_us".into(), &mut self.overlap_us),
            ("burst_waves".into(), &mut self.burst_waves),
        ];
        for (name, b) in self.backends.iter_mut() {
            v.push((format!("backends.{name}.step_ms"), &mut b.step_ms));
            v.push((format!("backends.{name}.ttft_ms"), &mut b.ttft_ms));
            v.push((format!("backends.{name}.wait_steps"), &mut b.wait_steps));
            v.push((format!("backends.{name}.req_us"), &mut b.req_us));
            v.push((format!("backends.{name}.launch_us"), &mut b.launch_us));
        }
        v
    }

    pub fn backend(&self, name: &str) -> BackendCalib {
        self.backends.get(name).copied().unwrap_or(BackendCalib {
            wait_steps: 1.0,
            ..BackendCalib::ZERO
        })
    }
}

#[derive(Debug, Clone)]
pub struct EmpiricalSource {
    pub p: EmpiricalParams,
    /// Framework whose kernel constants apply (empty: the generation's pooled ones).
    pub backend: String,
    /// Per-kernel time (ms) hidden by CUDA-graph replay, taken off every op time (0 when the
    /// source prices isolated kernels, as `bench ops` does).
    pub overlap_ms: f64,
}

impl EmpiricalSource {
    /// The embedded constants, pooled kernels, no overlap (isolated kernels).
    pub fn embedded() -> Self {
        Self::new(EmpiricalParams::embedded(), "", 0.0)
    }

    pub fn new(p: EmpiricalParams, backend: &str, overlap_ms: f64) -> Self {
        EmpiricalSource {
            p,
            backend: backend.to_string(),
            overlap_ms,
        }
    }

    /// Kernel time of `w` on `sys` before the graph overlap.
    fn kernel_s(&self, sys: &SystemSpec, op: &OpKind, w: &Work) -> f64 {
        kernel_s(self.p.ops_for(sys, &self.backend), sys, op, w)
    }
}

/// Softmax exponentials per second: 16 special-function results per clock per SM on every
/// NVIDIA architecture since Ampere (CUDA C++ Programming Guide, arithmetic-instruction
/// throughput), against the dense BF16 tensor FLOPs per clock per SM of the generation (A100
/// 2048, A10/L40S/RTX 1024, H100 4096, B200 8192; B300 doubles the SFU rate). Architecture
/// facts, not fitted.
pub fn exp_rate(sys: &SystemSpec) -> f64 {
    let tc_flops_per_exp = match sys.gpu.sm_version {
        80 => 128.0,
        86..=89 | 120..=129 => 64.0,
        100 => 512.0,
        _ => 256.0,
    };
    sys.gpu.bfloat16_tc_flops / tc_flops_per_exp
}

/// Efficiency factor of an expert's two GEMMs from their reduction lengths: the up (and gate)
/// projection reduces over `hidden`, the down projection over the expert's local width
/// `inter_local`; each runs at `K / (K + k_half)` and takes its share of the FLOPs (2/3 and 1/3
/// when gated, halves when not), so the factor is the FLOP-weighted harmonic mean.
pub(crate) fn moe_width_factor(hidden: f64, inter_local: f64, gated: bool, k_half: f64) -> f64 {
    let eff_k = |k: f64| k / (k + k_half);
    let up_share = if gated { 2.0 / 3.0 } else { 0.5 };
    1.0 / (up_share / eff_k(hidden) + (1.0 - up_share) / eff_k(inter_local.max(1.0)))
}

/// Saturating efficiency curve: `eff · m / (m + m_half)`.
/// Largest all-reduce the frameworks run with their own one-/two-shot kernels; larger ones go to
/// NCCL (vLLM's and SGLang's custom all-reduce `max_size` default, 8 MiB).
pub const CUSTOM_ALLREDUCE_MAX_BYTES: f64 = 8.0 * 1024.0 * 1024.0;

fn ramp(eff: f64, m: f64, m_half: f64) -> f64 {
    (eff * m / (m + m_half)).max(1e-6)
}

impl PerfSource for EmpiricalSource {
    fn name(&self) -> &'static str {
        "empirical"
    }

    fn time_ms(&self, sys: &SystemSpec, op: &OpKind, w: &Work) -> f64 {
        let ms = self.kernel_s(sys, op, w) * 1e3;
        if ms > 0.0 && self.overlap_ms > 0.0 {
            (ms - self.overlap_ms).max(super::sol_ms(sys, w).min(ms))
        } else {
            ms
        }
    }
}

/// Prices ops with one set of kernel constants, no overlap (fitting to isolated kernels).
pub struct OpCalibSource<'a>(pub &'a OpCalib);

impl PerfSource for OpCalibSource<'_> {
    fn name(&self) -> &'static str {
        "empirical"
    }
    fn time_ms(&self, sys: &SystemSpec, op: &OpKind, w: &Work) -> f64 {
        kernel_s(self.0, sys, op, w) * 1e3
    }
}

/// Seconds of one invocation under kernel constants `p`.
pub(crate) fn kernel_s(p: &OpCalib, sys: &SystemSpec, op: &OpKind, w: &Work) -> f64 {
    let peak = |d: ComputeDtype| sys.flops(d).unwrap_or(sys.gpu.bfloat16_tc_flops);
    let bw = sys.gpu.mem_bw * p.mem_eff;
    match w.class {
        WorkClass::Gemm => {
            let asym = match op {
                OpKind::Gemm {
                    quant: GemmQuant::Fp8Block,
                    ..
                } if p.gemm_eff_fp8_block > 0.0 => p.gemm_eff_fp8_block,
                _ => p.gemm_eff(w.dtype),
            };
            let mut eff = ramp(asym, w.m, p.gemm_m_half);
            if w.dequant {
                eff *= p.dequant_eff;
            }
            let quant_s = match op {
                OpKind::Gemm { k, quant, .. }
                    if quant.dynamic_activation_scale()
                        && !w.dequant
                        && w.dtype != ComputeDtype::Bf16
                        && !(p.gemm_fp8_static_scale && *quant == GemmQuant::Fp8) =>
                {
                    w.m * (p.gemm_quant_row_ns * 1e-9 + k * p.gemm_quant_bytes / bw)
                }
                _ => 0.0,
            };
            p.kernel_us * 1e-6 + (w.flops / (peak(w.dtype) * eff)).max(w.bytes / bw) + quant_s
        }
        WorkClass::ContextAttention | WorkClass::LinearAttention => {
            let mut eff = ramp(p.attn_ctx_eff, w.m, p.attn_ctx_m_half);
            let mma_s = w.flops / peak(w.dtype);
            let mut sfu_s = 0.0;
            if let OpKind::Attention {
                heads,
                qk_dim,
                v_dim,
                ..
            } = op
            {
                if op.is_mla_prefill() {
                    eff = (eff * p.attn_ctx_mla_ratio).min(EFF_MAX);
                } else if w.dtype == ComputeDtype::Bf16 && w.shape.kv_quant.starts_with("fp8") {
                    // Paged MHA prefill reads K/V back from the cache; MLA prefill attends over
                    // freshly up-projected BF16 K/V, whatever the latent cache's format.
                    eff = (eff * p.attn_ctx_kvq_ratio).min(EFF_MAX);
                }
                if w.shape.batch > 0.0 {
                    let tiles = w.shape.batch.max(1.0) * heads * (w.m / 128.0).ceil().max(1.0);
                    eff *= tiles / (tiles + p.attn_ctx_tiles_half);
                }
                // Softmax: one exponential per score on the special-function units, which
                // flash kernels overlap with the MMAs; bounds FP8 (and Blackwell) attention.
                let scores = w.flops / (2.0 * (qk_dim + v_dim)).max(1.0);
                sfu_s = scores / exp_rate(sys);
            }
            // The exponentials run between a tile's two MMAs (the warp waits on them), so
            // their time adds to the MMAs' rather than hiding under it.
            p.attn_us * 1e-6 + ((mma_s + sfu_s) / eff).max(w.bytes / bw)
        }
        WorkClass::GenerationAttention => {
            // Decode kernels run one thread block per (request, KV head): a large batch of
            // short sequences pays the blocks' fixed costs, not the KV stream.
            let (mha, units) = match op {
                OpKind::Attention {
                    kv_heads, latent, ..
                } => (!latent, w.shape.batch.max(1.0) * kv_heads.max(1.0)),
                _ => (false, w.shape.batch.max(1.0)),
            };
            let eff = if mha && w.shape.kv_quant.starts_with("fp8") {
                (p.attn_gen_eff * p.attn_gen_kvq_ratio).min(EFF_MAX)
            } else {
                p.attn_gen_eff
            };
            let kv_bw = sys.gpu.mem_bw * eff;
            let (fixed_us, unit_us) = if mha {
                (p.attn_gen_us, p.attn_gen_unit_us)
            } else {
                (p.attn_gen_mla_us, p.attn_gen_mla_unit_us)
            };
            fixed_us * 1e-6
                + (w.flops / (peak(w.dtype) * p.attn_gen_flops_eff)).max(w.bytes / kv_bw)
                + units * unit_us * 1e-6 / sys.sms()
        }
        WorkClass::Moe => {
            let mut eff = ramp(p.moe_eff(w.shape.quant), w.m, p.moe_m_half);
            let mut route_s = 0.0;
            if let OpKind::Moe {
                hidden,
                inter,
                etp,
                top_k,
                gated,
                ..
            } = op
            {
                eff *= moe_width_factor(*hidden, inter / etp.max(1.0), *gated, p.moe_k_half);
                route_s = p.moe_route_bytes * w.shape.tokens * top_k * hidden / bw;
            }
            p.moe_us * 1e-6 + (w.flops / (peak(w.dtype) * eff)).max(w.bytes / bw) + route_s
        }
        WorkClass::Comm(op) => {
            if w.gpus <= 1 || w.bytes <= 0.0 {
                return 0.0;
            }
            let in_node_ar = op == CommOp::AllReduce && w.gpus <= sys.node.num_gpus_per_node;
            let ring = matches!(
                op,
                CommOp::AllReduce | CommOp::AllGather | CommOp::ReduceScatter
            );
            if let Some(t) = sys.allreduce_tier(w.gpus).filter(|_| ring) {
                // A PCIe tree: the measured tier of this group size prices every ring
                // collective over the same links (both all-reduce regimes included).
                return t.latency_us * 1e-6 + comm_bytes_on_wire(op, w.gpus, w.bytes) / t.bus_bw;
            }
            // Inside a node NCCL runs rings, whose small-message latency grows with the steps:
            // n − 1 hops for a gather, scatter or all-to-all, 2(n − 1) for an all-reduce.
            // Across nodes it switches to trees and NVLS, which the op tables do not measure:
            // the base latency alone.
            let hops = if w.gpus <= sys.node.num_gpus_per_node {
                f64::from(w.gpus - 1) * if op == CommOp::AllReduce { 2.0 } else { 1.0 }
            } else {
                0.0
            };
            let nccl_ar = in_node_ar
                && (w.nccl || (p.allreduce_nccl_eff > 0.0 && w.bytes > CUSTOM_ALLREDUCE_MAX_BYTES));
            let (lat, eff) = if nccl_ar {
                let eff = if p.allreduce_nccl_eff > 0.0 {
                    p.allreduce_nccl_eff
                } else {
                    p.comm_eff
                };
                (p.comm_us_nvlink + hops * p.comm_hop_us, eff)
            } else if in_node_ar {
                (p.allreduce_us, p.allreduce_eff)
            } else if sys.on_nvlink(w.gpus) {
                (p.comm_us_nvlink + hops * p.comm_hop_us, p.comm_eff)
            } else {
                (p.comm_us_network + hops * p.comm_hop_us, p.comm_eff)
            };
            lat * 1e-6 + comm_bytes_on_wire(op, w.gpus, w.bytes) / (sys.group_bw(w.gpus) * eff)
        }
        WorkClass::P2p => {
            // Stage hand-off: NVLink when stages share a node, otherwise the network.
            sys.node.p2p_latency + w.bytes / (sys.node.inter_node_bw * p.comm_eff)
        }
        WorkClass::Memory => p.elem_us * 1e-6 + w.bytes / bw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::SystemRegistry;

    #[test]
    fn embedded_calibration_loads() {
        let p = EmpiricalParams::embedded();
        assert!(p.ops.mem_eff > 0.3 && p.ops.mem_eff <= 1.0);
        let back = EmpiricalParams::from_yaml(&p.to_yaml()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn gemm_time_is_overhead_plus_roofline() {
        let reg = SystemRegistry::builtin();
        let sys = reg.get("h200_sxm").unwrap();
        let src = EmpiricalSource::embedded();
        let p = src.p.ops_for(sys, "");
        // Large square bf16 GEMM: compute-bound.
        let (m, n, k) = (8192.0, 8192.0, 8192.0);
        let mut w = Work::new(
            WorkClass::Gemm,
            2.0 * m * n * k,
            2.0 * (m * n + n * k + m * k),
            ComputeDtype::Bf16,
        );
        w.m = m;
        let eff = p.gemm_eff_bf16 * m / (m + p.gemm_m_half);
        let expect = (p.kernel_us * 1e-6 + 2.0 * m * n * k / (989e12 * eff)) * 1e3;
        let got = src.time_ms(
            sys,
            &OpKind::Memory {
                bytes_per_token: 0.0,
            },
            &w,
        );
        assert!((got - expect).abs() < 1e-9, "{got} vs {expect}");
        // m = 1: weight streaming dominates.
        let mut w1 = Work::new(
            WorkClass::Gemm,
            2.0 * n * k,
            2.0 * n * k,
            ComputeDtype::Bf16,
        );
        w1.m = 1.0;
        let expect1 = (p.kernel_us * 1e-6 + 2.0 * n * k / (4.8e12 * p.mem_eff)) * 1e3;
        let got1 = src.time_ms(
            sys,
            &OpKind::Memory {
                bytes_per_token: 0.0,
            },
            &w1,
        );
        assert!((got1 - expect1).abs() < 1e-9);
    }

    fn gemm_op(n: f64, k: f64, quant: GemmQuant) -> OpKind {
        OpKind::Gemm {
            n,
            k,
            quant,
            last_token_only: false,
        }
    }

    #[test]
    fn quantized_activation_gemms_pay_the_quantization_pass() {
        let reg = SystemRegistry::builtin();
        let sys = reg.get("h200_sxm").unwrap();
        let mut p = EmpiricalSource::embedded().p.ops_for(sys, "vllm").clone();
        p.gemm_quant_row_ns = 5.0;
        p.gemm_quant_bytes = 4.0;
        let (m, n, k) = (4096.0, 8192.0, 8192.0);
        let gemm = |quant| gemm_op(n, k, quant);
        let work = |dtype: ComputeDtype, dequant: bool| {
            let mut w = Work::new(WorkClass::Gemm, 2.0 * m * n * k, n * k + m * k, dtype);
            w.m = m;
            w.dequant = dequant;
            w
        };
        let bw = 4.8e12 * p.mem_eff;
        let base = |eff: f64, peak: f64| {
            p.kernel_us * 1e-6
                + (2.0 * m * n * k / (peak * eff * m / (m + p.gemm_m_half)))
                    .max((n * k + m * k) / bw)
        };
        // FP8: 4096 rows at 5 ns plus 4 bytes per activation element, on top of the GEMM.
        let got = kernel_s(
            &p,
            sys,
            &gemm(GemmQuant::Fp8),
            &work(ComputeDtype::Fp8, false),
        );
        let want = base(p.gemm_eff_fp8, 1978e12) + m * 5e-9 + m * k * 4.0 / bw;
        assert!((got - want).abs() / want < 1e-9, "{got} vs {want}");
        // BF16 and weight-only GEMMs quantize nothing at run time.
        let bf = kernel_s(
            &p,
            sys,
            &gemm(GemmQuant::Bfloat16),
            &work(ComputeDtype::Bf16, false),
        );
        let want_bf = base(p.gemm_eff_bf16, 989e12);
        assert!((bf - want_bf).abs() / want_bf < 1e-9, "{bf} vs {want_bf}");
        let mut q = p.clone();
        q.gemm_quant_row_ns = 0.0;
        q.gemm_quant_bytes = 0.0;
        let fp8 = work(ComputeDtype::Fp8, false);
        let bare = kernel_s(&q, sys, &gemm(GemmQuant::Fp8), &fp8);
        // A static activation scale (fp8_static, or a backend whose FP8 linear is static)
        // fuses the cast into the producer: no pass.
        assert_eq!(kernel_s(&p, sys, &gemm(GemmQuant::Fp8Static), &fp8), bare);
        let mut st = p.clone();
        st.gemm_fp8_static_scale = true;
        assert_eq!(kernel_s(&st, sys, &gemm(GemmQuant::Fp8), &fp8), bare);
        // ... but block-scaled FP8 quantizes each 128-group at run time whatever the backend.
        let blk = kernel_s(&st, sys, &gemm(GemmQuant::Fp8Block), &fp8);
        let blk0 = kernel_s(&q, sys, &gemm(GemmQuant::Fp8Block), &fp8);
        assert!((blk - blk0 - (m * 5e-9 + m * k * 4.0 / bw)).abs() < 1e-12);
        let wo = work(ComputeDtype::Fp8, true);
        assert_eq!(
            kernel_s(&p, sys, &gemm(GemmQuant::Fp8), &wo),
            kernel_s(&q, sys, &gemm(GemmQuant::Fp8), &wo)
        );
    }

    #[test]
    fn nccl_latency_grows_with_the_rings_steps_inside_a_node_only() {
        let reg = SystemRegistry::builtin();
        let sys = reg.get("h200_sxm").unwrap();
        let mut p = EmpiricalSource::embedded().p.ops_for(sys, "").clone();
        p.comm_us_nvlink = 4.5;
        p.comm_hop_us = 0.9;
        p.comm_eff = 0.5;
        p.allreduce_nccl_eff = 0.0;
        let op = |c: CommOp, gpus: u32| OpKind::Comm {
            op: c,
            gpus,
            elems_per_token: 512.0,
            bytes_per_elem: 2.0,
        };
        let work = |c: CommOp, gpus: u32, nccl: bool| {
            let mut w = Work::new(WorkClass::Comm(c), 0.0, 1024.0, ComputeDtype::Bf16);
            w.gpus = gpus;
            w.nccl = nccl;
            w
        };
        let wire = |c: CommOp, n: u32| comm_bytes_on_wire(c, n, 1024.0) / (sys.group_bw(n) * 0.5);
        let time = |c: CommOp, n: u32, nccl: bool| kernel_s(&p, sys, &op(c, n), &work(c, n, nccl));
        // 8-GPU all-gather: 7 ring steps.
        let ag = time(CommOp::AllGather, 8, false);
        let want = (4.5 + 7.0 * 0.9) * 1e-6 + wire(CommOp::AllGather, 8);
        assert!((ag - want).abs() < 1e-12, "{ag} vs {want}");
        // The NCCL tables' 8-GPU all-reduce: 14 steps at the NCCL regime, not the custom kernel.
        let ar = time(CommOp::AllReduce, 8, true);
        let want = (4.5 + 14.0 * 0.9) * 1e-6 + wire(CommOp::AllReduce, 8);
        assert!((ar - want).abs() < 1e-12, "{ar} vs {want}");
        // Across nodes: the base latency only (NCCL's trees are not measured).
        let far = time(CommOp::AllGather, 16, false);
        let base = if sys.on_nvlink(16) {
            4.5
        } else {
            p.comm_us_network
        };
        let want = base * 1e-6 + wire(CommOp::AllGather, 16);
        assert!((far - want).abs() < 1e-12, "{far} vs {want}");
    }

    #[test]
    fn decode_attention_pays_the_kv_stream_and_each_blocks_fixed_cost() {
        let reg = SystemRegistry::builtin();
        let sys = reg.get("h200_sxm").unwrap();
        assert_eq!(sys.sms(), 132.0);
        let mut unsaid = sys.clone();
        unsaid.gpu.sm_count = 0;
        assert_eq!(
            unsaid.sms(),
            132.0,
            "an H100's SMs when the description does not say"
        );
        let mut p = EmpiricalSource::embedded().p.ops_for(sys, "").clone();
        p.attn_gen_eff = 0.8;
        p.attn_gen_flops_eff = 0.5;
        p.attn_gen_us = 8.0;
        p.attn_gen_unit_us = 1.32;
        p.attn_gen_kvq_ratio = 1.1;
        p.attn_gen_mla_us = 12.0;
        p.attn_gen_mla_unit_us = 6.6;
        let op = |latent: bool| OpKind::Attention {
            heads: 32.0,
            kv_heads: 8.0,
            qk_dim: 128.0,
            v_dim: 128.0,
            window: None,
            kv_elems_per_token: 2048.0,
            latent,
        };
        // 256 requests over 4096 cached tokens, 8 KV heads of 128, BF16 cache:
        // 256·4096·8·256·2 B of K/V; 4·32·128·4096 FLOPs per request.
        let (b, l) = (256.0, 4096.0);
        let bytes = b * l * 8.0 * 256.0 * 2.0;
        let flops = b * 4.0 * 32.0 * 128.0 * l;
        let work = |kv: &'static str, bytes: f64| {
            let mut w = Work::new(
                WorkClass::GenerationAttention,
                flops,
                bytes,
                ComputeDtype::Bf16,
            );
            w.shape.batch = b;
            w.shape.kv_quant = kv;
            w
        };
        // 256·8 blocks of 1.32 µs spread over 132 SMs: 20.48 µs.
        let blocks = 256.0 * 8.0 * 1.32e-6 / 132.0;
        let bf16 = 8e-6 + bytes / (4.8e12 * 0.8) + blocks;
        let got = kernel_s(&p, sys, &op(false), &work("bfloat16", bytes));
        assert!((got - bf16).abs() < 1e-12, "{got} vs {bf16}");
        // An FP8 cache: half the bytes at the ratio's bandwidth.
        let fp8 = 8e-6 + bytes / 2.0 / (4.8e12 * 0.88) + blocks;
        let got8 = kernel_s(&p, sys, &op(false), &work("fp8", bytes / 2.0));
        assert!((got8 - fp8).abs() < 1e-12, "{got8} vs {fp8}");
        // MLA decode keeps the BF16-cache curve whatever the latent's format, and its own
        // kernel and block costs (one block per request and KV head: 256·8·6.6 µs / 132).
        let mla = 12e-6 + bytes / 2.0 / (4.8e12 * 0.8) + 5.0 * blocks;
        let gotm = kernel_s(&p, sys, &op(true), &work("fp8", bytes / 2.0));
        assert!((gotm - mla).abs() < 1e-12, "{gotm} vs {mla}");
        // Short sequences: the blocks' fixed cost, not the KV stream, sets the time.
        let short = kernel_s(&p, sys, &op(false), &work("bfloat16", bytes / 4096.0));
        assert!(short - 8e-6 > 0.9 * blocks);
    }

    #[test]
    fn prefill_attention_adds_the_exponentials_and_applies_kernel_ratios() {
        let reg = SystemRegistry::builtin();
        let sys = reg.get("h100_sxm").unwrap();
        let mut p = EmpiricalSource::embedded().p.ops_for(sys, "").clone();
        // Flat curves so the hand value is the formula alone.
        p.attn_ctx_eff = 0.5;
        p.attn_ctx_m_half = 0.0;
        p.attn_ctx_tiles_half = 0.0;
        p.attn_us = 10.0;
        p.attn_ctx_kvq_ratio = 0.5;
        p.attn_ctx_mla_ratio = 1.5;
        // One 8192-token causal prompt, 32 heads of 128: 4·h·d·s²/2 FLOPs, h·s²/2 scores.
        let (h, d, s) = (32.0, 128.0, 8192.0);
        let attn = |qk: f64, v: f64| OpKind::Attention {
            heads: h,
            kv_heads: 8.0,
            qk_dim: qk,
            v_dim: v,
            window: None,
            kv_elems_per_token: 2.0 * 8.0 * d,
            latent: false,
        };
        let work = |qk: f64, v: f64, dtype: ComputeDtype, kv: &'static str| {
            let flops = 2.0 * h * (qk + v) * s * s / 2.0;
            let mut w = Work::new(WorkClass::ContextAttention, flops, 1.0, dtype);
            w.m = s;
            w.shape.batch = 1.0;
            w.shape.kv_quant = kv;
            w
        };
        let exp_rate = 989e12 / 256.0; // 16 exponentials per clock per SM on Hopper
        let scores = h * s * s / 2.0;
        let flops = 4.0 * h * d * s * s / 2.0;
        let bf16 = 10e-6 + (flops / 989e12 + scores / exp_rate) / 0.5;
        let got = kernel_s(
            &p,
            sys,
            &attn(d, d),
            &work(d, d, ComputeDtype::Bf16, "bfloat16"),
        );
        assert!((got - bf16).abs() < 1e-12, "{got} vs {bf16}");
        // FP8 halves the MMA time but not the exponentials': at d = 128, 2/3 of BF16's.
        let fp8 = 10e-6 + (flops / 1978e12 + scores / exp_rate) / 0.5;
        let got8 = kernel_s(&p, sys, &attn(d, d), &work(d, d, ComputeDtype::Fp8, "fp8"));
        assert!((got8 - fp8).abs() < 1e-12, "{got8} vs {fp8}");
        assert!((got8 - 10e-6) / (got - 10e-6) > 0.66);
        // BF16 attention over an FP8 cache runs at the ratio's efficiency.
        let kvq = 10e-6 + (flops / 989e12 + scores / exp_rate) / 0.25;
        let gotq = kernel_s(&p, sys, &attn(d, d), &work(d, d, ComputeDtype::Bf16, "fp8"));
        assert!((gotq - kvq).abs() < 1e-12);
        // MLA prefill (qk 192, v 128) takes its own ratio, whatever the cache format.
        let (qk, v) = (192.0, 128.0);
        let mla_flops = 2.0 * h * (qk + v) * s * s / 2.0;
        let mla = 10e-6 + (mla_flops / 989e12 + scores / exp_rate) / 0.75;
        for kv in ["bfloat16", "fp8"] {
            let g = kernel_s(&p, sys, &attn(qk, v), &work(qk, v, ComputeDtype::Bf16, kv));
            assert!((g - mla).abs() < 1e-12, "{kv}: {g} vs {mla}");
        }
    }

    #[test]
    fn pcie_ring_collectives_use_the_measured_tier_of_their_group() {
        let reg = SystemRegistry::builtin();
        let sys = reg.get("l40s").unwrap();
        let p = EmpiricalSource::embedded().p.ops_for(sys, "").clone();
        let t = |op: CommOp, gpus: u32, bytes: f64| {
            let kind = OpKind::Comm {
                op,
                gpus,
                elems_per_token: 8192.0,
                bytes_per_elem: 2.0,
            };
            let mut w = Work::new(WorkClass::Comm(op), 0.0, bytes, ComputeDtype::Bf16);
            w.gpus = gpus;
            kernel_s(&p, sys, &kind, &w)
        };
        let mib16 = 16.0 * 1024.0 * 1024.0;
        // Four GPUs span PCIe switches: 13.5 µs + 2·3/4·16 MiB at 3.7 GB/s = 6.8154 ms.
        let want = 13.5e-6 + 1.5 * mib16 / 3.7e9;
        assert!((t(CommOp::AllReduce, 4, mib16) - want).abs() < 1e-12);
        // Three GPUs cross the same links as four; an all-gather moves (n−1)/n of the bytes.
        assert!(
            (t(CommOp::AllReduce, 3, mib16) - (13.5e-6 + 4.0 / 3.0 * mib16 / 3.7e9)).abs() < 1e-12
        );
        let ag = 13.5e-6 + 0.75 * mib16 / 3.7e9;
        assert!((t(CommOp::AllGather, 4, mib16) - ag).abs() < 1e-12);
        // Two GPUs under one switch are five times faster per byte.
        assert!(t(CommOp::AllReduce, 2, mib16) < t(CommOp::AllReduce, 4, mib16) / 5.0);
        assert!(sys.allreduce_tier(16).is_none() && sys.allreduce_tier(1).is_none());
        // NVLink systems carry no tiers.
        assert!(reg.get("h200_sxm").unwrap().allreduce_tier(8).is_none());
    }

    #[test]
    fn in_node_all_reduce_switches_to_nccl_above_the_custom_kernel_limit() {
        let reg = SystemRegistry::builtin();
        let sys = reg.get("h200_sxm").unwrap();
        let p = EmpiricalSource::embedded().p.ops_for(sys, "").clone();
        assert!(p.allreduce_nccl_eff > 0.0);
        let op = OpKind::Comm {
            op: CommOp::AllReduce,
            gpus: 8,
            elems_per_token: 8192.0,
            bytes_per_elem: 2.0,
        };
        let ar = |c: &OpCalib, bytes: f64| {
            let mut w = Work::new(
                WorkClass::Comm(CommOp::AllReduce),
                0.0,
                bytes,
                ComputeDtype::Bf16,
            );
            w.gpus = 8;
            kernel_s(c, sys, &op, &w)
        };
        // Ring traffic 2·7/8 of the message over 450 GB/s NVLink (one direction).
        let ring = |bytes: f64| 1.75 * bytes / sys.node.intra_node_bw;
        let small = 4.0 * 1024.0 * 1024.0;
        let want = p.allreduce_us * 1e-6 + ring(small) / p.allreduce_eff;
        assert!((ar(&p, small) - want).abs() < 1e-12);
        let large = 64.0 * 1024.0 * 1024.0;
        // NCCL's ring: 2·7 steps of `comm_hop_us` on its base latency.
        let want =
            (p.comm_us_nvlink + 14.0 * p.comm_hop_us) * 1e-6 + ring(large) / p.allreduce_nccl_eff;
        assert!((ar(&p, large) - want).abs() < 1e-12);
        // Without the constant (older files) one regime prices every size.
        let mut c = p.clone();
        c.allreduce_nccl_eff = 0.0;
        let want = p.allreduce_us * 1e-6 + ring(large) / p.allreduce_eff;
        assert!((ar(&c, large) - want).abs() < 1e-12);
    }

    #[test]
    fn block_scaled_fp8_gemm_has_its_own_asymptote() {
        let reg = SystemRegistry::builtin();
        let sys = reg.get("h200_sxm").unwrap();
        let src = EmpiricalSource::embedded();
        let p = src.p.ops_for(sys, "");
        assert!(p.gemm_eff_fp8_block > 0.0 && p.gemm_eff_fp8_block < p.gemm_eff_fp8);
        let (m, n, k) = (8192.0, 8192.0, 8192.0);
        let mut w = Work::new(
            WorkClass::Gemm,
            2.0 * m * n * k,
            m * n * 2.0 + n * k + m * k,
            ComputeDtype::Fp8,
        );
        w.m = m;
        let gemm = |quant| gemm_op(n, k, quant);
        let ramp = m / (m + p.gemm_m_half);
        let peak = sys.gpu.fp8_tc_flops.unwrap();
        let bw = sys.gpu.mem_bw * p.mem_eff;
        assert!(!p.gemm_fp8_static_scale);
        for (q, eff) in [
            (GemmQuant::Fp8, p.gemm_eff_fp8),
            (GemmQuant::Fp8Block, p.gemm_eff_fp8_block),
        ] {
            // Both quantize the activations at run time (the pooled set has no static scale).
            let quant = m * (p.gemm_quant_row_ns * 1e-9 + k * p.gemm_quant_bytes / bw);
            let expect = (p.kernel_us * 1e-6 + 2.0 * m * n * k / (peak * eff * ramp) + quant) * 1e3;
            let got = src.time_ms(sys, &gemm(q), &w);
            assert!((got - expect).abs() < 1e-9, "{q:?}: {got} vs {expect}");
        }
        // A file without the constant prices block FP8 as per-tensor FP8.
        let mut c = p.clone();
        c.gemm_eff_fp8_block = 0.0;
        let t = |c: &OpCalib, q| kernel_s(c, sys, &gemm(q), &w);
        assert_eq!(t(&c, GemmQuant::Fp8Block), t(&c, GemmQuant::Fp8));
    }

    #[test]
    fn moe_format_efficiency_and_width_hand_values() {
        let mut c = EmpiricalParams::embedded().ops;
        (c.moe_eff_bf16, c.moe_eff_fp8, c.moe_eff_fp8_block) = (0.1, 0.2, 0.3);
        (c.moe_eff_w4a16, c.moe_eff_w4a8, c.moe_eff_fp4) = (0.4, 0.5, 0.6);
        for (label, eff) in [
            ("bfloat16", 0.1),
            ("fp8", 0.2),
            ("fp8_block", 0.3),
            ("w4a16_mxfp4", 0.4),
            ("int4_wo", 0.4),
            ("w4afp8", 0.5),
            ("w4a8_mxfp4_mxfp8", 0.5),
            ("nvfp4", 0.6),
        ] {
            assert_eq!(c.moe_eff(label), eff, "{label}");
        }
        // Gated expert, hidden 4096, local width 1024, k_half 1024: the up GEMMs (2/3 of the
        // FLOPs) run at 4096/5120 = 0.8, the down GEMM at 1024/2048 = 0.5:
        // 1 / (2/3 / 0.8 + 1/3 / 0.5) = 1 / (0.8333 + 0.6667) = 2/3.
        let f = moe_width_factor(4096.0, 1024.0, true, 1024.0);
        assert!((f - 2.0 / 3.0).abs() < 1e-12, "{f}");
        // Non-gated: halves, 1 / (0.5/0.8 + 0.5/0.5) = 1 / 1.625.
        let f = moe_width_factor(4096.0, 1024.0, false, 1024.0);
        assert!((f - 1.0 / 1.625).abs() < 1e-12, "{f}");
    }

    #[test]
    fn moe_time_is_busiest_rank_roofline_plus_routing_traffic() {
        use crate::model::graph::Routing;
        let reg = SystemRegistry::builtin();
        let sys = reg.get("h200_sxm").unwrap();
        let mut c = EmpiricalParams::embedded().ops;
        (c.moe_eff_bf16, c.moe_m_half, c.moe_k_half) = (0.5, 16.0, 256.0);
        (c.moe_route_bytes, c.moe_us, c.mem_eff) = (4.0, 20.0, 0.8);
        let op = OpKind::Moe {
            hidden: 4096.0,
            inter: 2048.0,
            experts: 8.0,
            top_k: 2.0,
            etp: 1.0,
            ep: 1.0,
            gated: true,
            routing: Routing::Balanced,
        };
        // 1024 tokens, balanced, one GPU: 2048 rows over 8 experts (m = 256).
        let (rows, experts) = (2048.0, 8.0);
        let flops = 2.0 * rows * 4096.0 * 2048.0 * 3.0;
        let bytes = experts * 4096.0 * 2048.0 * 3.0 * 2.0 + rows * (2.0 * 4096.0 + 2.0 * 6144.0);
        let mut w = Work::new(WorkClass::Moe, flops, bytes, ComputeDtype::Bf16);
        w.m = rows / experts;
        w.shape.tokens = 1024.0;
        w.shape.quant = "bfloat16";
        let width = moe_width_factor(4096.0, 2048.0, true, 256.0);
        let eff = 0.5 * 256.0 / (256.0 + 16.0) * width;
        let bw = 4.8e12 * 0.8;
        let expect = 20e-6 + (flops / (989e12 * eff)).max(bytes / bw) + 4.0 * 2048.0 * 4096.0 / bw;
        let got = kernel_s(&c, sys, &op, &w);
        assert!((got - expect).abs() < 1e-15, "{got} vs {expect}");
    }

    #[test]
    fn rejects_negative_values() {
        let mut p = EmpiricalParams::embedded();
        p.ops.mem_eff = -1.0;
        assert!(EmpiricalParams::from_yaml(&p.to_yaml()).is_err());
    }
}
