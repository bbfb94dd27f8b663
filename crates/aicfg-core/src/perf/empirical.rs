//! EMPIRICAL source: roofline times divided by calibrated efficiencies, plus fixed per-kernel
//! costs. The numbers live in `data/calibration/empirical.yaml` (fitted to measured serving runs
//! by `aicfg bench calibrate`; format documented in data/calibration/README.md).
use super::{comm_bytes_on_wire, PerfSource, Work, WorkClass};
use crate::error::{AicfgError, Result};
use crate::hardware::SystemSpec;
use crate::model::graph::OpKind;
use crate::quant::ComputeDtype;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Scheduling/serving constants of one backend (framework).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BackendCalib {
    /// Host-side cost of every scheduler step (ms): scheduling, sampling, output processing.
    pub step_ms: f64,
    /// Fixed time added to every TTFT (ms): HTTP, tokenization, first detokenization.
    pub ttft_ms: f64,
    /// Steps a newly arrived request waits before its prefill is scheduled.
    pub wait_steps: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmpiricalParams {
    /// Asymptotic fraction of tensor-core peak reached by large GEMMs, per compute dtype.
    pub gemm_eff_bf16: f64,
    pub gemm_eff_int8: f64,
    pub gemm_eff_fp8: f64,
    pub gemm_eff_fp4: f64,
    /// GEMM rows at which compute efficiency reaches half its asymptote.
    pub gemm_m_half: f64,
    /// Multiplier on compute efficiency for weight-only modes (dequantize before the MMA).
    pub dequant_eff: f64,
    /// Fraction of HBM bandwidth reached by streaming kernels.
    pub mem_eff: f64,
    /// Fixed cost per GEMM/elementwise kernel (µs).
    pub kernel_us: f64,
    /// Fraction of tensor-core peak reached by prefill (flash) attention.
    pub attn_ctx_eff: f64,
    /// Fraction of HBM bandwidth reached by decode attention KV reads.
    pub attn_gen_eff: f64,
    /// Fixed cost per attention kernel (µs).
    pub attn_us: f64,
    /// Asymptotic fraction of tensor-core peak reached by grouped expert GEMMs.
    pub moe_eff: f64,
    /// Tokens per expert at which expert GEMM efficiency reaches half its asymptote.
    pub moe_m_half: f64,
    /// Fixed cost per MoE layer (µs): routing, permutation, several kernels.
    pub moe_us: f64,
    /// Fraction of link bandwidth reached by collectives.
    pub comm_eff: f64,
    /// Latency of one collective inside an NVLink domain (µs).
    pub comm_us_nvlink: f64,
    /// Latency of one collective across the scale-out network (µs).
    pub comm_us_network: f64,
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

    /// Every tunable number with its name, for calibration.
    pub fn fields_mut(&mut self) -> Vec<(String, &mut f64)> {
        let mut v: Vec<(String, &mut f64)> = vec![
            ("gemm_eff_bf16".into(), &mut self.gemm_eff_bf16),
            ("gemm_eff_int8".into(), &mut self.gemm_eff_int8),
            ("gemm_eff_fp8".into(), &mut self.gemm_eff_fp8),
            ("gemm_eff_fp4".into(), &mut self.gemm_eff_fp4),
            ("gemm_m_half".into(), &mut self.gemm_m_half),
            ("dequant_eff".into(), &mut self.dequant_eff),
            ("mem_eff".into(), &mut self.mem_eff),
            ("kernel_us".into(), &mut self.kernel_us),
            ("attn_ctx_eff".into(), &mut self.attn_ctx_eff),
            ("attn_gen_eff".into(), &mut self.attn_gen_eff),
            ("attn_us".into(), &mut self.attn_us),
            ("moe_eff".into(), &mut self.moe_eff),
            ("moe_m_half".into(), &mut self.moe_m_half),
            ("moe_us".into(), &mut self.moe_us),
            ("comm_eff".into(), &mut self.comm_eff),
            ("comm_us_nvlink".into(), &mut self.comm_us_nvlink),
            ("comm_us_network".into(), &mut self.comm_us_network),
            ("burst_waves".into(), &mut self.burst_waves),
        ];
        for (name, b) in self.backends.iter_mut() {
            v.push((format!("backends.{name}.step_ms"), &mut b.step_ms));
            v.push((format!("backends.{name}.ttft_ms"), &mut b.ttft_ms));
            v.push((format!("backends.{name}.wait_steps"), &mut b.wait_steps));
        }
        v
    }

    pub fn backend(&self, name: &str) -> BackendCalib {
        self.backends.get(name).copied().unwrap_or(BackendCalib {
            step_ms: 0.0,
            ttft_ms: 0.0,
            wait_steps: 1.0,
        })
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

#[derive(Debug, Clone)]
pub struct EmpiricalSource {
    pub p: EmpiricalParams,
}

impl EmpiricalSource {
    pub fn embedded() -> Self {
        EmpiricalSource {
            p: EmpiricalParams::embedded(),
        }
    }
}

/// Saturating efficiency curve: `eff · m / (m + m_half)`.
fn ramp(eff: f64, m: f64, m_half: f64) -> f64 {
    (eff * m / (m + m_half)).max(1e-6)
}

impl PerfSource for EmpiricalSource {
    fn name(&self) -> &'static str {
        "empirical"
    }

    fn time_ms(&self, sys: &SystemSpec, _op: &OpKind, w: &Work) -> f64 {
        let p = &self.p;
        let peak = |d: ComputeDtype| sys.flops(d).unwrap_or(sys.gpu.bfloat16_tc_flops);
        let bw = sys.gpu.mem_bw * p.mem_eff;
        let s = match w.class {
            WorkClass::Gemm => {
                let mut eff = ramp(p.gemm_eff(w.dtype), w.m, p.gemm_m_half);
                if w.dequant {
                    eff *= p.dequant_eff;
                }
                p.kernel_us * 1e-6 + (w.flops / (peak(w.dtype) * eff)).max(w.bytes / bw)
            }
            WorkClass::ContextAttention | WorkClass::LinearAttention => {
                let eff = ramp(p.attn_ctx_eff, w.m, p.gemm_m_half);
                p.attn_us * 1e-6 + (w.flops / (peak(w.dtype) * eff)).max(w.bytes / bw)
            }
            WorkClass::GenerationAttention => {
                let kv_bw = sys.gpu.mem_bw * p.attn_gen_eff;
                p.attn_us * 1e-6 + (w.flops / (peak(w.dtype) * p.attn_ctx_eff)).max(w.bytes / kv_bw)
            }
            WorkClass::Moe => {
                let mut eff = ramp(p.moe_eff, w.m, p.moe_m_half);
                if w.dequant {
                    eff *= p.dequant_eff;
                }
                p.moe_us * 1e-6 + (w.flops / (peak(w.dtype) * eff)).max(w.bytes / bw)
            }
            WorkClass::Comm(op) => {
                if w.gpus <= 1 || w.bytes <= 0.0 {
                    return 0.0;
                }
                let lat = if sys.on_nvlink(w.gpus) {
                    p.comm_us_nvlink
                } else {
                    p.comm_us_network
                };
                lat * 1e-6
                    + comm_bytes_on_wire(op, w.gpus, w.bytes) / (sys.group_bw(w.gpus) * p.comm_eff)
            }
            WorkClass::P2p => {
                // Stage hand-off: NVLink when stages share a node, otherwise the network.
                sys.node.p2p_latency + w.bytes / (sys.node.inter_node_bw * p.comm_eff)
            }
            WorkClass::Memory => p.kernel_us * 1e-6 + w.bytes / bw,
        };
        s * 1e3
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::SystemRegistry;

    #[test]
    fn embedded_calibration_loads() {
        let p = EmpiricalParams::embedded();
        assert!(p.mem_eff > 0.3 && p.mem_eff <= 1.0);
        let back = EmpiricalParams::from_yaml(&p.to_yaml()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn gemm_time_is_overhead_plus_roofline() {
        let reg = SystemRegistry::builtin();
        let sys = reg.get("h200_sxm").unwrap();
        let src = EmpiricalSource::embedded();
        let p = &src.p;
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

    #[test]
    fn rejects_negative_values() {
        let mut p = EmpiricalParams::embedded();
        p.mem_eff = -1.0;
        assert!(EmpiricalParams::from_yaml(&p.to_yaml()).is_err());
    }
}
