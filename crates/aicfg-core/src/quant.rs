//! Numeric formats per model component (docs/model.md §3): bytes per element and the tensor-core
//! dtype that bounds compute.
use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Tensor-core compute dtype; selects the system's FLOPS key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputeDtype {
    Bf16,
    Int8,
    Fp8,
    Fp4,
}

impl ComputeDtype {
    pub fn name(self) -> &'static str {
        match self {
            ComputeDtype::Bf16 => "bfloat16",
            ComputeDtype::Int8 => "int8",
            ComputeDtype::Fp8 => "fp8",
            ComputeDtype::Fp4 => "fp4",
        }
    }
}

macro_rules! quant_enum {
    ($(#[$m:meta])* $name:ident, $what:literal, { $($var:ident => $s:literal, $bytes:expr, $dt:ident);* $(;)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $s)] $var),* }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$var),*];
            pub fn name(self) -> &'static str { match self { $($name::$var => $s),* } }
            /// Bytes per stored element.
            pub fn bytes(self) -> f64 { match self { $($name::$var => $bytes),* } }
            /// Tensor-core dtype that bounds this mode's math.
            pub fn compute(self) -> ComputeDtype { match self { $($name::$var => ComputeDtype::$dt),* } }
            pub fn parse(s: &str) -> Result<Self> {
                let norm = s.trim().to_ascii_lowercase().replace('-', "_");
                let norm = match norm.as_str() { "bf16" => "bfloat16".to_string(), "fp16" | "half" | "float16" if $what != "comm quant mode" => "bfloat16".to_string(), _ => norm };
                $(if norm == $s { return Ok($name::$var); })*
                let known: Vec<&str> = $name::ALL.iter().map(|q| q.name()).collect();
                Err($crate::suggest::unknown($what, s, &known, known.join(", ")))
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.name()) }
        }
    };
}

quant_enum!(
    /// GEMM weight/activation format.
    GemmQuant, "gemm quant mode", {
    Bfloat16 => "bfloat16", 2.0, Bf16;
    Fp8 => "fp8", 1.0, Fp8;
    Fp8Static => "fp8_static", 1.0, Fp8;
    Fp8Block => "fp8_block", 1.0, Fp8;
    Sq => "sq", 1.0, Int8;
    Int8Wo => "int8_wo", 1.0, Bf16;
    Int4Wo => "int4_wo", 0.5, Bf16;
    Nvfp4 => "nvfp4", 0.5625, Fp4;
    Nvfp4Wo => "nvfp4_wo", 0.5625, Bf16;
    W4a16Nvfp4 => "w4a16_nvfp4", 0.5625, Bf16;
});

quant_enum!(
    /// MoE expert format.
    MoeQuant, "moe quant mode", {
    Bfloat16 => "bfloat16", 2.0, Bf16;
    Fp8 => "fp8", 1.0, Fp8;
    Fp8Block => "fp8_block", 1.0, Fp8;
    Int8Wo => "int8_wo", 1.0, Bf16;
    Int4Wo => "int4_wo", 0.5, Bf16;
    W4afp8 => "w4afp8", 0.5, Fp8;
    Nvfp4 => "nvfp4", 0.5625, Fp4;
    Nvfp4Wo => "nvfp4_wo", 0.5625, Bf16;
    W4a16Mxfp4 => "w4a16_mxfp4", 0.53125, Bf16;
    W4a8Mxfp4Mxfp8 => "w4a8_mxfp4_mxfp8", 0.53125, Fp8;
    W4a16Nvfp4 => "w4a16_nvfp4", 0.5625, Bf16;
});

quant_enum!(
    /// Attention math format.
    FmhaQuant, "fmha quant mode", {
    Bfloat16 => "bfloat16", 2.0, Bf16;
    Fp8 => "fp8", 1.0, Fp8;
});

quant_enum!(
    /// KV-cache storage format (memory only).
    KvQuant, "kvcache quant mode", {
    Bfloat16 => "bfloat16", 2.0, Bf16;
    Fp8 => "fp8", 1.0, Fp8;
    Int8 => "int8", 1.0, Int8;
});

quant_enum!(
    /// Communication payload format (memory only).
    CommQuant, "comm quant mode", {
    Half => "half", 2.0, Bf16;
    Fp8 => "fp8", 1.0, Fp8;
    Int8 => "int8", 1.0, Int8;
});

impl GemmQuant {
    /// Which activation-quantize kernels a measured GEMM latency of this format carries that
    /// the GEMM itself does not: the collector times TRT-LLM's and vLLM's per-tensor FP8 GEMMs
    /// with the scale computation and the scale-and-cast (`Some(false)`), their NVFP4 GEMMs with
    /// the scale computation (`Some(true)`); SGLang's table times the GEMM alone (`None`). The
    /// measured quantize tables of those kernels come off, in `bench ops` and in the
    /// measured-table source alike.
    pub fn measured_quantize_kernels(self, backend: &str) -> Option<bool> {
        if backend == "sglang" {
            return None;
        }
        match self {
            GemmQuant::Fp8 | GemmQuant::Fp8Static => Some(false),
            GemmQuant::Nvfp4 => Some(true),
            _ => None,
        }
    }

    /// Weight-only modes dequantize to bf16 before the MMA.
    pub fn weight_only(self) -> bool {
        matches!(
            self,
            GemmQuant::Int8Wo | GemmQuant::Int4Wo | GemmQuant::Nvfp4Wo | GemmQuant::W4a16Nvfp4
        )
    }
    /// The MMAs take activations quantized per call (a scale computed from the data): block
    /// FP8, NVFP4, SmoothQuant and dynamic per-tensor FP8. BF16, weight-only and static-scale
    /// FP8 (`fp8_static`, whose cast fuses into the producing kernel) quantize nothing.
    pub fn dynamic_activation_scale(self) -> bool {
        matches!(
            self,
            GemmQuant::Fp8 | GemmQuant::Fp8Block | GemmQuant::Sq | GemmQuant::Nvfp4
        )
    }
    /// The MoE mode that stores experts the same way.
    pub fn as_moe(self) -> MoeQuant {
        match self {
            GemmQuant::Bfloat16 => MoeQuant::Bfloat16,
            GemmQuant::Fp8 | GemmQuant::Fp8Static | GemmQuant::Sq => MoeQuant::Fp8,
            GemmQuant::Fp8Block => MoeQuant::Fp8Block,
            GemmQuant::Int8Wo => MoeQuant::Int8Wo,
            GemmQuant::Int4Wo => MoeQuant::Int4Wo,
            GemmQuant::Nvfp4 => MoeQuant::Nvfp4,
            GemmQuant::Nvfp4Wo => MoeQuant::Nvfp4Wo,
            GemmQuant::W4a16Nvfp4 => MoeQuant::W4a16Nvfp4,
        }
    }
}

impl MoeQuant {
    pub fn weight_only(self) -> bool {
        matches!(
            self,
            MoeQuant::Int8Wo
                | MoeQuant::Int4Wo
                | MoeQuant::Nvfp4Wo
                | MoeQuant::W4a16Mxfp4
                | MoeQuant::W4a16Nvfp4
        )
    }
}

/// The five per-component modes of one worker.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QuantConfig {
    pub gemm: GemmQuant,
    pub moe: MoeQuant,
    pub kvcache: KvQuant,
    pub fmha: FmhaQuant,
    pub comm: CommQuant,
}

impl Default for QuantConfig {
    fn default() -> Self {
        QuantConfig {
            gemm: GemmQuant::Bfloat16,
            moe: MoeQuant::Bfloat16,
            kvcache: KvQuant::Bfloat16,
            fmha: FmhaQuant::Bfloat16,
            comm: CommQuant::Half,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measured_quantize_kernels_follow_the_collectors_timing() {
        assert_eq!(
            GemmQuant::Fp8.measured_quantize_kernels("trtllm"),
            Some(false)
        );
        assert_eq!(
            GemmQuant::Fp8Static.measured_quantize_kernels("vllm"),
            Some(false)
        );
        assert_eq!(
            GemmQuant::Nvfp4.measured_quantize_kernels("trtllm"),
            Some(true)
        );
        // SGLang's GEMM table times the GEMM alone; block FP8 quantizes inside the kernel.
        assert_eq!(GemmQuant::Fp8.measured_quantize_kernels("sglang"), None);
        assert_eq!(GemmQuant::Fp8Block.measured_quantize_kernels("vllm"), None);
        assert_eq!(
            GemmQuant::Bfloat16.measured_quantize_kernels("trtllm"),
            None
        );
    }

    #[test]
    fn parse_and_bytes() {
        assert_eq!(GemmQuant::parse("fp8_block").unwrap(), GemmQuant::Fp8Block);
        assert_eq!(GemmQuant::parse("BF16").unwrap(), GemmQuant::Bfloat16);
        assert_eq!(GemmQuant::parse("nvfp4").unwrap().bytes(), 9.0 / 16.0);
        assert_eq!(KvQuant::parse("fp8").unwrap().bytes(), 1.0);
        assert_eq!(CommQuant::parse("half").unwrap().bytes(), 2.0);
        assert_eq!(
            MoeQuant::parse("w4afp8").unwrap().compute(),
            ComputeDtype::Fp8
        );
    }

    #[test]
    fn unknown_lists_known() {
        let e = GemmQuant::parse("fp3").unwrap_err().to_string();
        assert!(e.contains("unknown gemm quant mode 'fp3'"), "{e}");
        assert!(e.contains("fp8_block") && e.contains("nvfp4"), "{e}");
    }
}
