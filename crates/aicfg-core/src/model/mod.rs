//! Model architectures: Hugging Face `config.json` parsing and the built-in model registry
//! (docs/model.md §4.1). The op graph for a parallel configuration lives in `graph`.
pub mod graph;

use crate::error::{AicfgError, Result};
use crate::quant::{GemmQuant, KvQuant, MoeQuant};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Non-gated FFN, learned positions (GPT-2 style).
    Gpt,
    /// Dense gated-FFN GQA/MHA (Llama, Qwen2/3, Mistral).
    Llama,
    /// GQA attention + routed experts (Mixtral, Qwen3-MoE, gpt-oss, MiniMax-M2).
    Moe,
    /// MLA attention + routed/shared experts (DeepSeek-V3/R1, Kimi-K2, GLM-5).
    Deepseek,
    /// Linear-attention (Gated DeltaNet) layers interleaved with gated full attention + MoE (Qwen3.5).
    Hybrid,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Gpt => "GPT",
            Family::Llama => "LLAMA",
            Family::Moe => "MOE",
            Family::Deepseek => "DEEPSEEK",
            Family::Hybrid => "HYBRID_MOE",
        }
    }
    pub fn is_moe(self) -> bool {
        matches!(self, Family::Moe | Family::Deepseek | Family::Hybrid)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MoeSpec {
    pub num_experts: u32,
    pub top_k: u32,
    /// Intermediate size of one routed expert.
    pub expert_inter: u64,
    /// Total intermediate of the always-on shared expert(s), 0 if none.
    pub shared_inter: u64,
    /// Layers that use a dense FFN instead of experts (DeepSeek: the leading ones; Llama 4
    /// Maverick: every other one). Only their count matters to the cost.
    pub first_dense_layers: u32,
    /// Intermediate of those dense layers.
    pub dense_inter: u64,
    pub gated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MlaSpec {
    /// 0 when queries are projected directly (no low-rank q).
    pub q_lora_rank: u64,
    pub kv_lora_rank: u64,
    pub qk_nope_head_dim: u64,
    pub qk_rope_head_dim: u64,
    pub v_head_dim: u64,
    /// DeepSeek sparse attention: keys attended per query (None = dense).
    pub sparse_topk: Option<u64>,
    pub indexer_heads: u64,
    pub indexer_head_dim: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlidingSpec {
    pub window: u64,
    /// How many of the layers use the window.
    pub windowed_layers: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinearAttnSpec {
    /// Layers that use linear attention (the rest use full attention).
    pub layers: u32,
    pub key_heads: u64,
    pub value_heads: u64,
    pub key_head_dim: u64,
    pub value_head_dim: u64,
    pub conv_kernel: u64,
}

/// Quantization the checkpoint itself declares.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct CheckpointQuant {
    pub gemm: Option<GemmQuant>,
    pub moe: Option<MoeQuant>,
    pub kvcache: Option<KvQuant>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelSpec {
    pub name: String,
    pub architecture: String,
    pub family: Family,
    pub num_layers: u32,
    pub hidden: u64,
    pub num_heads: u64,
    pub num_kv_heads: u64,
    pub head_dim: u64,
    pub intermediate: u64,
    pub vocab: u64,
    pub gated_ffn: bool,
    pub qk_norm: bool,
    /// Attention output gate (Qwen3.5): doubles the q projection width.
    pub attn_output_gate: bool,
    pub tie_embeddings: bool,
    pub moe: Option<MoeSpec>,
    pub mla: Option<MlaSpec>,
    pub sliding: Option<SlidingSpec>,
    pub linear_attn: Option<LinearAttnSpec>,
    /// MTP draft layers the checkpoint ships.
    pub nextn_layers: u32,
    pub quant: CheckpointQuant,
    /// Longest sequence (prompt + output tokens) the checkpoint serves: `max_position_embeddings`,
    /// or the RoPE-scaled length (`original_max_position_embeddings × factor`) when larger.
    /// None when the config gives neither.
    pub context_window: Option<u64>,
}

const SUPPORTED: &str =
    "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, \
MiMoForCausalLM, GPT2LMHeadModel, MixtralForCausalLM, Qwen2MoeForCausalLM, Qwen3MoeForCausalLM, \
GptOssForCausalLM, MiniMaxM2ForCausalLM, DeepseekV3ForCausalLM, DeepseekV32ForCausalLM, KimiK25ForConditionalGeneration, \
GlmMoeDsaForCausalLM, Qwen3_5MoeForConditionalGeneration, Llama4ForConditionalGeneration";

fn family_of(arch: &str) -> Option<Family> {
    Some(match arch {
        "LlamaForCausalLM" | "MistralForCausalLM" | "Qwen2ForCausalLM" | "Qwen3ForCausalLM"
        | "MiMoForCausalLM" => Family::Llama,
        "GPT2LMHeadModel" | "GPTBigCodeForCausalLM" => Family::Gpt,
        "MixtralForCausalLM"
        | "Qwen2MoeForCausalLM"
        | "Qwen3MoeForCausalLM"
        | "GptOssForCausalLM"
        | "MiniMaxM2ForCausalLM"
        | "Llama4ForConditionalGeneration"
        | "Llama4ForCausalLM" => Family::Moe,
        "DeepseekV3ForCausalLM"
        | "DeepseekV32ForCausalLM"
        | "DeepseekV2ForCausalLM"
        | "KimiK25ForConditionalGeneration"
        | "KimiK2ForCausalLM"
        | "GlmMoeDsaForCausalLM" => Family::Deepseek,
        "Qwen3_5MoeForConditionalGeneration" | "Qwen3_5MoeForCausalLM" | "Qwen3NextForCausalLM" => {
            Family::Hybrid
        }
        _ => return None,
    })
}

/// `max_position_embeddings` (`n_positions` for GPT-2), raised to what RoPE scaling reaches
/// (YaRN / Llama-3 style `original_max_position_embeddings × factor`).
fn context_window(v: &Value) -> Option<u64> {
    let num = |x: &Value| {
        x.as_u64().or_else(|| {
            x.as_f64()
                .filter(|f| f.is_finite() && *f > 0.0)
                .map(|f| f as u64)
        })
    };
    let base = ["max_position_embeddings", "n_positions", "seq_length"]
        .iter()
        .find_map(|k| v.get(*k).and_then(num))
        .filter(|&n| n > 0);
    let scaled = v
        .get("rope_scaling")
        .filter(|r| r.is_object())
        .and_then(|r| {
            let orig = r.get("original_max_position_embeddings").and_then(num)?;
            let factor = r.get("factor").and_then(Value::as_f64)?;
            (1.0..=1024.0)
                .contains(&factor)
                .then_some((orig as f64 * factor) as u64)
        });
    // Past any request the workload bounds accept: a larger claim changes nothing.
    match (base, scaled) {
        (Some(b), Some(s)) => Some(b.max(s)),
        (b, s) => b.or(s),
    }
    .map(|n| n.min(bound::TOKENS))
}

/// Largest value accepted per kind of `config.json` size field: several times the largest
/// published model (layers 126, hidden 16,384, vocab 262,144, experts 512), and small enough that
/// weight and KV products of these fields stay far inside `u64` and exact in `f64`.
mod bound {
    pub const LAYERS: u64 = 1 << 10;
    pub const HIDDEN: u64 = 1 << 17;
    pub const HEADS: u64 = 1 << 12;
    pub const HEAD_DIM: u64 = 1 << 12;
    pub const INTER: u64 = 1 << 20;
    pub const VOCAB: u64 = 1 << 23;
    pub const EXPERTS: u64 = 1 << 14;
    /// MLA low-rank widths and rope/nope head dims.
    pub const RANK: u64 = 1 << 16;
    /// Token counts (windows, sparse top-k).
    pub const TOKENS: u64 = crate::limits::MAX_TOKENS as u64;
    pub const CONV: u64 = 1 << 8;
    pub const MTP_LAYERS: u64 = 64;
}

struct Cfg<'a> {
    v: &'a Value,
    path: &'a str,
}

impl<'a> Cfg<'a> {
    /// The first of `keys` present (null counts as absent), as an integer in `lo..=hi`. A value
    /// that is present but negative, fractional, non-numeric or out of range is an error naming
    /// the field, never a silent default or a truncation.
    fn opt_u64(&self, keys: &[&str], lo: u64, hi: u64) -> Result<Option<u64>> {
        let Some((k, x)) = keys
            .iter()
            .find_map(|k| self.v.get(*k).filter(|x| !x.is_null()).map(|x| (*k, x)))
        else {
            return Ok(None);
        };
        let n = x.as_u64().or_else(|| {
            x.as_f64()
                .filter(|f| f.fract() == 0.0 && (0.0..=hi as f64).contains(f))
                .map(|f| f as u64)
        });
        match n {
            Some(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
            _ => Err(self.err(format!(
                "'{k}' must be an integer from {lo} to {hi}, got {}",
                short(x)
            ))),
        }
    }
    /// As [`Self::opt_u64`], required, at least 1.
    fn u64(&self, keys: &[&str], hi: u64) -> Result<u64> {
        self.opt_u64(keys, 1, hi)?
            .ok_or_else(|| self.err(format!("missing required field '{}'", keys.join("' or '"))))
    }
    fn u32(&self, keys: &[&str], hi: u64) -> Result<u32> {
        // Every bound is below 2^32.
        Ok(self.u64(keys, hi)? as u32)
    }
    fn bool(&self, key: &str) -> Option<bool> {
        self.v.get(key).and_then(Value::as_bool)
    }
    fn str(&self, key: &str) -> Option<&'a str> {
        self.v.get(key).and_then(Value::as_str)
    }
    fn err(&self, reason: String) -> AicfgError {
        AicfgError::ModelConfig {
            path: self.path.to_string(),
            reason,
        }
    }
}

/// A JSON value for an error message, cut short.
fn short(x: &Value) -> String {
    let s = x.to_string();
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

impl ModelSpec {
    /// Parse a Hugging Face `config.json` text. `name` is the model id to report.
    pub fn from_hf_json(text: &str, name: &str, origin: &str) -> Result<Self> {
        let root: Value = serde_json::from_str(text).map_err(|e| AicfgError::ModelConfig {
            path: origin.to_string(),
            reason: format!("not valid JSON: {e}"),
        })?;
        if !root.is_object() {
            return Err(AicfgError::ModelConfig {
                path: origin.to_string(),
                reason: "expected a JSON object".into(),
            });
        }
        let arch = root
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(Value::as_str)
            .ok_or_else(|| AicfgError::ModelConfig {
                path: origin.to_string(),
                reason: "missing 'architectures' (e.g. [\"LlamaForCausalLM\"])".into(),
            })?
            .to_string();
        let family = family_of(&arch).ok_or_else(|| AicfgError::UnsupportedArchitecture {
            arch: arch.clone(),
            path: origin.to_string(),
            supported: SUPPORTED.to_string(),
        })?;
        // Multimodal wrappers keep the language model under text_config.
        let text_v = root
            .get("text_config")
            .filter(|t| t.is_object())
            .unwrap_or(&root);
        let c = Cfg {
            v: text_v,
            path: origin,
        };
        let hidden = c.u64(&["hidden_size", "n_embd", "d_model"], bound::HIDDEN)?;
        let num_layers = c.u32(
            &["num_hidden_layers", "n_layer", "num_layers"],
            bound::LAYERS,
        )?;
        let num_heads = c.u64(&["num_attention_heads", "n_head"], bound::HEADS)?;
        let num_kv_heads = c
            .opt_u64(&["num_key_value_heads"], 1, bound::HEADS)?
            .unwrap_or(num_heads);
        let vocab = c.u64(&["vocab_size"], bound::VOCAB)?;
        let given_head_dim = c.opt_u64(&["head_dim"], 0, bound::HEAD_DIM)?;
        let head_dim = match given_head_dim {
            Some(d) if d > 0 && family != Family::Deepseek => d,
            _ if hidden % num_heads == 0 => hidden / num_heads,
            _ => {
                return Err(c.err(format!(
                    "hidden_size {hidden} is not a multiple of num_attention_heads {num_heads} \
                     (and no head_dim is given)"
                )))
            }
        };
        let intermediate = match family {
            Family::Gpt => c
                .opt_u64(&["n_inner", "intermediate_size"], 1, bound::INTER)?
                .unwrap_or(4 * hidden),
            Family::Hybrid => c
                .opt_u64(&["intermediate_size"], 0, bound::INTER)?
                .unwrap_or(0),
            _ => c.u64(&["intermediate_size"], bound::INTER)?,
        };
        if num_heads % num_kv_heads != 0 {
            return Err(c.err(format!(
                "num_attention_heads {num_heads} is not a multiple of num_key_value_heads {num_kv_heads}"
            )));
        }
        // Per-layer kinds, when given, must describe every layer exactly once.
        let layer_types = match text_v.get("layer_types") {
            None | Some(Value::Null) => None,
            Some(Value::Array(t)) if t.len() == num_layers as usize => Some(t),
            Some(Value::Array(t)) => {
                return Err(c.err(format!(
                    "'layer_types' lists {} layers but num_hidden_layers is {num_layers}",
                    t.len()
                )))
            }
            Some(x) => {
                return Err(c.err(format!(
                    "'layer_types' must be a list of layer kinds, got {}",
                    short(x)
                )))
            }
        };
        let count_layers = |kind: &str| {
            layer_types.map(|t| t.iter().filter(|x| x.as_str() == Some(kind)).count() as u32)
        };
        let model_type = c.str("model_type").unwrap_or("");
        let qk_norm = arch.starts_with("Qwen3")
            || c.bool("use_qk_norm").unwrap_or(false)
            || family == Family::Hybrid;

        let moe = if family.is_moe() {
            let num_experts = c.u32(
                &[
                    "num_local_experts",
                    "n_routed_experts",
                    "num_experts",
                    "moe_num_experts",
                ],
                bound::EXPERTS,
            )?;
            let top_k = c.u32(
                &[
                    "num_experts_per_tok",
                    "top_k_experts",
                    "moe_top_k",
                    "experts_per_token",
                ],
                bound::EXPERTS,
            )?;
            let expert_inter = c
                .opt_u64(&["moe_intermediate_size"], 0, bound::INTER)?
                .filter(|x| *x > 0)
                .unwrap_or(intermediate);
            if expert_inter == 0 {
                return Err(c.err(
                    "missing required field 'moe_intermediate_size' (or 'intermediate_size')"
                        .into(),
                ));
            }
            let shared_inter =
                match c.opt_u64(&["shared_expert_intermediate_size"], 0, bound::INTER)? {
                    Some(s) => s,
                    None => {
                        c.opt_u64(&["n_shared_experts"], 0, bound::EXPERTS)?
                            .unwrap_or(0)
                            * expert_inter
                            + c.opt_u64(&["shared_intermediate_size"], 0, bound::INTER)?
                                .unwrap_or(0)
                    }
                };
            let llama4 = arch.starts_with("Llama4");
            // Llama 4 MoE layers always add one shared expert of the routed size (no config key).
            let shared_inter = if llama4 { expert_inter } else { shared_inter };
            // Llama 4: every `interleave_moe_layer_step`-th layer is MoE, the rest dense with
            // `intermediate_size_mlp`.
            let (first_dense_layers, dense_inter) = if llama4 {
                let step = c
                    .opt_u64(&["interleave_moe_layer_step"], 1, u64::from(num_layers))?
                    .unwrap_or(1) as u32;
                let mlp = c
                    .opt_u64(&["intermediate_size_mlp"], 1, bound::INTER)?
                    .unwrap_or(intermediate);
                (num_layers - num_layers / step, mlp)
            } else {
                let n = c
                    .opt_u64(&["first_k_dense_replace"], 0, u64::from(num_layers))?
                    .unwrap_or(0) as u32;
                (n, intermediate)
            };
            if num_experts < top_k {
                return Err(c.err(format!(
                    "num_experts_per_tok {top_k} exceeds the number of experts {num_experts}"
                )));
            }
            Some(MoeSpec {
                num_experts,
                top_k,
                expert_inter,
                shared_inter,
                first_dense_layers,
                dense_inter,
                gated: true,
            })
        } else {
            None
        };

        let mla = if family == Family::Deepseek {
            let kv_lora_rank = c.u64(&["kv_lora_rank"], bound::RANK)?;
            let sparse = arch == "GlmMoeDsaForCausalLM"
                || arch == "DeepseekV32ForCausalLM"
                || model_type.contains("dsa");
            Some(MlaSpec {
                q_lora_rank: c.opt_u64(&["q_lora_rank"], 0, bound::RANK)?.unwrap_or(0),
                kv_lora_rank,
                qk_nope_head_dim: c.u64(&["qk_nope_head_dim"], bound::RANK)?,
                qk_rope_head_dim: c.u64(&["qk_rope_head_dim"], bound::RANK)?,
                v_head_dim: c.u64(&["v_head_dim"], bound::RANK)?,
                sparse_topk: if sparse {
                    c.opt_u64(&["index_topk"], 1, bound::TOKENS)?
                } else {
                    None
                },
                indexer_heads: if sparse {
                    c.opt_u64(&["index_n_heads"], 0, bound::HEADS)?.unwrap_or(0)
                } else {
                    0
                },
                indexer_head_dim: if sparse {
                    c.opt_u64(&["index_head_dim"], 0, bound::HEAD_DIM)?
                        .unwrap_or(0)
                } else {
                    0
                },
            })
        } else {
            None
        };

        let window = c.opt_u64(&["sliding_window"], 0, bound::TOKENS)?;
        let chunk = c.opt_u64(&["attention_chunk_size"], 0, bound::TOKENS)?;
        let sliding = match (window, count_layers("sliding_attention")) {
            // Llama 4 iRoPE: RoPE layers attend within their chunk of `attention_chunk_size`
            // tokens, every 4th (NoPE) layer attends globally. A chunk is priced as a window of
            // its size: exact while prompt + output fit in one chunk, an upper bound beyond (a
            // token at position p sees p mod chunk + 1 keys, at most the chunk).
            _ if arch.starts_with("Llama4") && chunk.is_some_and(|w| w > 0) => {
                let rope_layers = match text_v.get("no_rope_layers").and_then(Value::as_array) {
                    Some(l) if l.len() == num_layers as usize => {
                        l.iter().filter(|x| x.as_u64() == Some(1)).count() as u32
                    }
                    _ => num_layers - num_layers / 4,
                };
                Some(SlidingSpec {
                    window: chunk.unwrap_or(0),
                    windowed_layers: rope_layers,
                })
                .filter(|s| s.windowed_layers > 0)
            }
            (Some(w), Some(n)) if w > 0 => (n > 0).then_some(SlidingSpec {
                window: w,
                windowed_layers: n,
            }),
            (Some(w), _) if w > 0 && arch == "GptOssForCausalLM" => Some(SlidingSpec {
                window: w,
                windowed_layers: num_layers / 2,
            }),
            _ => None,
        };

        let linear_attn = if family == Family::Hybrid {
            let layers = match count_layers("linear_attention") {
                Some(n) => n,
                None => {
                    let every = c
                        .opt_u64(&["full_attention_interval"], 1, u64::from(num_layers))?
                        .unwrap_or(4) as u32;
                    num_layers - num_layers / every
                }
            };
            Some(LinearAttnSpec {
                layers,
                key_heads: c.u64(&["linear_num_key_heads"], bound::HEADS)?,
                value_heads: c.u64(&["linear_num_value_heads"], bound::HEADS)?,
                key_head_dim: c.u64(&["linear_key_head_dim"], bound::HEAD_DIM)?,
                value_head_dim: c.u64(&["linear_value_head_dim"], bound::HEAD_DIM)?,
                conv_kernel: c
                    .opt_u64(&["linear_conv_kernel_dim"], 1, bound::CONV)?
                    .unwrap_or(4),
            })
        } else {
            None
        };

        let nextn_layers = c
            .opt_u64(
                &["num_nextn_predict_layers", "mtp_num_hidden_layers"],
                0,
                bound::MTP_LAYERS,
            )?
            .unwrap_or(0) as u32;
        let quant = checkpoint_quant(&root, text_v);
        let context_window = context_window(text_v);
        let tie_embeddings = root
            .get("tie_word_embeddings")
            .and_then(Value::as_bool)
            .unwrap_or(family == Family::Gpt);

        Ok(ModelSpec {
            name: name.to_string(),
            architecture: arch.clone(),
            family,
            num_layers,
            hidden,
            num_heads,
            num_kv_heads,
            head_dim,
            intermediate,
            vocab,
            gated_ffn: family != Family::Gpt,
            qk_norm,
            attn_output_gate: c.bool("attn_output_gate").unwrap_or(false),
            tie_embeddings,
            moe,
            mla,
            sliding,
            linear_attn,
            nextn_layers,
            quant,
            context_window,
        })
    }

    /// Layers with full softmax attention (the others are linear-attention layers).
    pub fn full_attention_layers(&self) -> u32 {
        self.num_layers - self.linear_attn.as_ref().map_or(0, |l| l.layers)
    }

    /// KV-cache elements per token per GPU over all layers, before dtype (docs/model.md §7).
    pub fn kv_elems_per_token(&self, tp: u32, seq: f64) -> f64 {
        let full = self.full_attention_layers() as f64;
        if let Some(m) = &self.mla {
            // Compressed latent + rope key, replicated on every TP rank.
            return full * (m.kv_lora_rank + m.qk_rope_head_dim) as f64;
        }
        let kv_gpu = self.num_kv_heads.div_ceil(tp as u64) as f64;
        let per_layer = 2.0 * kv_gpu * self.head_dim as f64;
        match &self.sliding {
            Some(s) if seq > 0.0 => {
                let w = s.windowed_layers as f64;
                let eff = (full - w) + w * (s.window as f64).min(seq) / seq;
                per_layer * eff
            }
            _ => per_layer * full,
        }
    }

    /// Recurrent state bytes per sequence per GPU (linear-attention layers), fp32 state.
    pub fn linear_state_bytes(&self, tp: u32) -> f64 {
        match &self.linear_attn {
            Some(l) => {
                let vh = (l.value_heads as f64 / tp as f64).max(1.0);
                let kh = (l.key_heads as f64 / tp as f64).max(1.0);
                let ssm = vh * (l.key_head_dim * l.value_head_dim) as f64 * 4.0;
                let conv = (2.0 * kh * l.key_head_dim as f64 + vh * l.value_head_dim as f64)
                    * l.conv_kernel as f64
                    * 2.0;
                l.layers as f64 * (ssm + conv)
            }
            None => 0.0,
        }
    }

    /// Total parameters (for reports), counting every expert.
    pub fn param_count(&self) -> f64 {
        let g = graph::WorkerGraph::build(self, &graph::Parallel::single(), &Default::default())
            .expect("tp=1 is always valid");
        g.weight_elems_total()
    }
}

fn checkpoint_quant(root: &Value, text: &Value) -> CheckpointQuant {
    let qc = root
        .get("quantization_config")
        .or_else(|| text.get("quantization_config"));
    let Some(qc) = qc else {
        return CheckpointQuant::default();
    };
    let method = qc
        .get("quant_method")
        .or_else(|| qc.get("quant_algo"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    let block = qc.get("weight_block_size").is_some();
    let dynamic = qc.get("activation_scheme").and_then(Value::as_str) == Some("dynamic");
    let (gemm, moe) = match method.as_str() {
        "fp8" if block => (Some(GemmQuant::Fp8Block), Some(MoeQuant::Fp8Block)),
        "fp8" if dynamic => (Some(GemmQuant::Fp8), Some(MoeQuant::Fp8)),
        "fp8" => (Some(GemmQuant::Fp8Static), Some(MoeQuant::Fp8)),
        "fp8_block" => (Some(GemmQuant::Fp8Block), Some(MoeQuant::Fp8Block)),
        "nvfp4" | "modelopt_fp4" => (Some(GemmQuant::Nvfp4), Some(MoeQuant::Nvfp4)),
        "mxfp4" => (Some(GemmQuant::Bfloat16), Some(MoeQuant::W4a16Mxfp4)),
        // Kimi-K2.x ships int4 group-quantized experts with bf16 attention and shared experts.
        "compressed-tensors" => (Some(GemmQuant::Bfloat16), Some(MoeQuant::Int4Wo)),
        _ => (None, None),
    };
    let kv = qc
        .get("kv_cache_quant_algo")
        .and_then(Value::as_str)
        .and_then(|s| KvQuant::parse(s).ok());
    CheckpointQuant {
        gemm,
        moe,
        kvcache: kv,
    }
}

/// One entry of `data/models/index.yaml`.
#[derive(Debug, Clone, Deserialize)]
struct IndexEntry {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
    file: String,
    #[serde(default)]
    quant: Option<String>,
}

macro_rules! model_files {
    ($($f:literal),*) => {
        &[$(($f, include_str!(concat!("../../../../data/models/", $f)))),*]
    };
}

const MODEL_INDEX: &str = include_str!("../../../../data/models/index.yaml");
const MODEL_FILES: &[(&str, &str)] = model_files!(
    "Qwen--Qwen3-32B_config.json",
    "Qwen--Qwen3-8B_config.json",
    "Qwen--Qwen3-30B-A3B_config.json",
    "Qwen--Qwen3-235B-A22B_config.json",
    "Qwen--Qwen3-235B-A22B-FP8_config.json",
    "Qwen--Qwen3.5-397B-A17B_config.json",
    "meta-llama--Meta-Llama-3.1-8B_config.json",
    "meta-llama--Meta-Llama-3.1-70B_config.json",
    "meta-llama--Meta-Llama-3.1-405B_config.json",
    "meta-llama--Llama-2-7b-hf_config.json",
    "meta-llama--Llama-2-13b-hf_config.json",
    "meta-llama--Llama-2-70b-hf_config.json",
    "mistralai--Mixtral-8x7B-v0.1_config.json",
    "mistralai--Mixtral-8x22B-v0.1_config.json",
    "deepseek-ai--DeepSeek-V3_config.json",
    "deepseek-ai--DeepSeek-R1_config.json",
    "nvidia--DeepSeek-V3.1-NVFP4_config.json",
    "moonshotai--Kimi-K2.5_config.json",
    "MiniMaxAI--MiniMax-M2.5_config.json",
    "openai--gpt-oss-120b_config.json",
    "openai--gpt-oss-20b_config.json",
    "zai-org--GLM-5_config.json",
    "openai-community--gpt2-xl_config.json",
    "Qwen--Qwen2.5-7B-Instruct_config.json",
    "Qwen--Qwen2.5-14B-Instruct_config.json",
    "Qwen--Qwen2.5-32B-Instruct_config.json",
    "Qwen--Qwen2.5-72B-Instruct_config.json",
    "meta-llama--Llama-4-Scout-17B-16E_config.json",
    "meta-llama--Llama-4-Scout-17B-16E-Instruct_config.json",
    "meta-llama--Llama-4-Maverick-17B-128E_config.json",
    "Qwen--Qwen3-Coder-480B-A35B-Instruct_config.json",
    "deepseek-ai--DeepSeek-V3.2-Exp_config.json"
);

/// Built-in models by id and alias.
pub struct ModelRegistry {
    entries: Vec<IndexEntry>,
    /// Whether `resolve` may read a local config.json (not for web requests).
    local_files: bool,
}

fn norm_name(s: &str) -> String {
    s.trim().to_ascii_lowercase().replace(['-', '.'], "_")
}

impl ModelRegistry {
    pub fn builtin() -> Self {
        let entries: Vec<IndexEntry> =
            serde_norway::from_str(MODEL_INDEX).expect("embedded model index is valid");
        ModelRegistry {
            entries,
            local_files: true,
        }
    }

    /// Built-in models only: `resolve` never reads a path (the webapp's experiment YAML).
    pub fn builtin_only() -> Self {
        ModelRegistry {
            local_files: false,
            ..Self::builtin()
        }
    }

    pub fn ids(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.id.as_str()).collect()
    }

    fn find(&self, name: &str) -> Option<&IndexEntry> {
        let n = norm_name(name);
        self.entries
            .iter()
            .find(|e| norm_name(&e.id) == n || e.aliases.iter().any(|a| norm_name(a) == n))
    }

    /// Resolve a built-in model only, never touching the file system (the webapp's case).
    pub fn resolve_builtin(&self, name: &str) -> Result<ModelSpec> {
        match self.find(name) {
            Some(_) => self.resolve(name),
            None => Err(self.unknown(name, "")),
        }
    }

    fn unknown(&self, name: &str, extra: &str) -> AicfgError {
        let known = format!(
            "{}{extra}",
            self.entries
                .iter()
                .map(|e| match e.aliases.first() {
                    Some(a) => format!("{a} ({})", e.id),
                    None => e.id.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
        // Typos are measured on the matching form (case, `-`/`.`/`_` folded); the suggestion
        // is shown as the index spells it.
        let spelled: Vec<&str> = self
            .entries
            .iter()
            .flat_map(|e| {
                std::iter::once(e.id.as_str()).chain(e.aliases.iter().map(String::as_str))
            })
            .collect();
        let folded: Vec<String> = spelled.iter().map(|n| norm_name(n)).collect();
        let refs: Vec<&str> = folded.iter().map(String::as_str).collect();
        match crate::suggest::closest(&norm_name(name), &refs)
            .and_then(|f| refs.iter().position(|r| *r == f))
        {
            Some(i) => AicfgError::UnknownNear {
                what: "model",
                given: name.to_string(),
                suggestion: spelled[i].to_string(),
                known,
            },
            None => AicfgError::Unknown {
                what: "model",
                given: name.to_string(),
                known,
            },
        }
    }

    /// Resolve a model by built-in name/id, or by a local `config.json` file or directory.
    pub fn resolve(&self, name: &str) -> Result<ModelSpec> {
        if let Some(e) = self.find(name) {
            let text = MODEL_FILES
                .iter()
                .find(|(f, _)| *f == e.file)
                .map(|(_, t)| *t)
                .expect("index names an embedded file");
            let mut m = ModelSpec::from_hf_json(text, &e.id, &format!("data/models/{}", e.file))?;
            if let Some(q) = &e.quant {
                let g = GemmQuant::parse(q)?;
                m.quant.gemm = Some(g);
                m.quant.moe = Some(g.as_moe());
            }
            return Ok(m);
        }
        let p = Path::new(name);
        if !self.local_files {
            return Err(self.unknown(name, ""));
        }
        if p.exists() {
            let file = if p.is_dir() {
                p.join("config.json")
            } else {
                p.to_path_buf()
            };
            let text = crate::limits::read_text(&file, crate::limits::MAX_TEXT_FILE_BYTES)
                .map_err(|e| AicfgError::ModelConfig {
                    path: file.display().to_string(),
                    reason: format!("cannot read: {e}"),
                })?;
            let id = if p.is_dir() {
                p.file_name()
                    .and_then(|s| s.to_str())
                    .unwrap_or(name)
                    .to_string()
            } else {
                p.parent()
                    .and_then(|d| d.file_name())
                    .and_then(|s| s.to_str())
                    .filter(|s| !s.is_empty())
                    .unwrap_or(name)
                    .to_string()
            };
            let mut m = ModelSpec::from_hf_json(&text, &id, &file.display().to_string())?;
            // hf_quant_config.json (ModelOpt) beside config.json declares the checkpoint format.
            if let Some(dir) = file.parent() {
                let qpath = dir.join("hf_quant_config.json");
                if let Ok(q) = crate::limits::read_text(&qpath, crate::limits::MAX_TEXT_FILE_BYTES)
                {
                    apply_hf_quant_config(&mut m, &q);
                }
            }
            return Ok(m);
        }
        Err(self.unknown(
            name,
            " (or a path to a Hugging Face config.json or its directory)",
        ))
    }
}

fn apply_hf_quant_config(m: &mut ModelSpec, text: &str) {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let q = v.get("quantization").unwrap_or(&v);
    let algo = q.get("quant_algo").and_then(Value::as_str).unwrap_or("");
    let g = match algo.to_ascii_lowercase().as_str() {
        "fp8" => Some(GemmQuant::Fp8),
        "fp8_block_scales" | "fp8_block" => Some(GemmQuant::Fp8Block),
        "nvfp4" => Some(GemmQuant::Nvfp4),
        _ => None,
    };
    if let Some(g) = g {
        m.quant.gemm = Some(g);
        m.quant.moe = Some(g.as_moe());
    }
    if let Some(kv) = q
        .get("kv_cache_quant_algo")
        .and_then(Value::as_str)
        .and_then(|s| KvQuant::parse(s).ok())
    {
        m.quant.kvcache = Some(kv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses() {
        let r = ModelRegistry::builtin();
        for id in r.ids() {
            r.resolve(id).unwrap_or_else(|e| panic!("{id}: {e}"));
        }
    }

    #[test]
    fn names_and_hf_ids_reach_the_same_model() {
        let r = ModelRegistry::builtin();
        let a = r.resolve("QWEN3_32B").unwrap();
        let b = r.resolve("Qwen/Qwen3-32B").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.family, Family::Llama);
        assert_eq!(
            (a.hidden, a.num_layers, a.num_heads, a.num_kv_heads),
            (5120, 64, 64, 8)
        );
        assert!(a.qk_norm);
        assert_eq!(r.resolve("LLAMA3.1_70B").unwrap().intermediate, 28672);
    }

    #[test]
    fn deepseek_fields() {
        let m = ModelRegistry::builtin().resolve("DEEPSEEK_V3").unwrap();
        assert_eq!(m.family, Family::Deepseek);
        let moe = m.moe.as_ref().unwrap();
        assert_eq!(
            (moe.num_experts, moe.top_k, moe.expert_inter),
            (256, 8, 2048)
        );
        assert_eq!(moe.shared_inter, 2048);
        assert_eq!(moe.first_dense_layers, 3);
        let mla = m.mla.as_ref().unwrap();
        assert_eq!((mla.kv_lora_rank, mla.qk_rope_head_dim), (512, 64));
        assert_eq!(m.quant.gemm, Some(GemmQuant::Fp8Block));
        assert_eq!(m.nextn_layers, 1);
        // 576 latent elements per token per layer, not sharded by TP.
        assert_eq!(m.kv_elems_per_token(8, 1000.0), 61.0 * 576.0);
    }

    #[test]
    fn kv_per_token_matches_hand_values() {
        let r = ModelRegistry::builtin();
        // docs/model.md §4.1: Qwen3-32B 262144 B/token bf16, Llama-3.1-70B 327680.
        assert_eq!(
            r.resolve("QWEN3_32B").unwrap().kv_elems_per_token(1, 1.0) * 2.0,
            262144.0
        );
        assert_eq!(
            r.resolve("LLAMA3.1_70B")
                .unwrap()
                .kv_elems_per_token(1, 1.0)
                * 2.0,
            327680.0
        );
        // tp beyond kv heads replicates heads.
        assert_eq!(
            r.resolve("QWEN3_32B").unwrap().kv_elems_per_token(16, 1.0),
            64.0 * 2.0 * 128.0
        );
    }

    #[test]
    fn llama4_interleaved_moe_shared_expert_and_chunked_attention() {
        let r = ModelRegistry::builtin();
        let scout = r.resolve("LLAMA4_SCOUT").unwrap();
        let mav = r
            .resolve("meta-llama/Llama-4-Maverick-17B-128E-Instruct")
            .unwrap();
        for m in [&scout, &mav] {
            assert_eq!(m.family, Family::Moe);
            let moe = m.moe.as_ref().unwrap();
            assert_eq!(
                (moe.top_k, moe.expert_inter, moe.shared_inter),
                (1, 8192, 8192)
            );
            // 3 of 4 layers attend within 8192-token chunks, every 4th globally.
            let w = m.sliding.as_ref().unwrap();
            assert_eq!((w.window, w.windowed_layers), (8192, 36));
        }
        let (s, m) = (scout.moe.clone().unwrap(), mav.moe.clone().unwrap());
        assert_eq!((s.num_experts, s.first_dense_layers), (16, 0));
        assert_eq!(
            (m.num_experts, m.first_dense_layers, m.dense_inter),
            (128, 24, 16384)
        );
        // Total parameters: the published 109B and 400B (text weights).
        let params = |x: &ModelSpec, moe: &MoeSpec| {
            let h = x.hidden as f64;
            let attn = h * (2.0 * h + 2.0 * 1024.0);
            let expert = 3.0 * h * 8192.0;
            let moe_l = f64::from(x.num_layers - moe.first_dense_layers);
            let dense_l = f64::from(moe.first_dense_layers);
            48.0 * attn
                + moe_l * (f64::from(moe.num_experts) + 1.0) * expert
                + dense_l * 3.0 * h * moe.dense_inter as f64
                + 2.0 * x.vocab as f64 * h
        };
        let mav = r.resolve("LLAMA4_MAVERICK").unwrap();
        assert!((params(&scout, &s) / 1e9 - 107.8).abs() < 0.5);
        assert!((params(&mav, &m) / 1e9 - 400.7).abs() < 0.5);
        let fp8 = r
            .resolve("meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8")
            .unwrap();
        assert!(fp8.quant.gemm.is_some());
    }

    /// The keys besides the shapes, as the Hugging Face config.json files give them: QK norm on
    /// Scout only, Scout's llama3 rope scaling (the pretrained model's 256K window, the instruct
    /// model's 10M), no scaling on Maverick's 1M window, 8192-token chunks on 3 of 4 layers.
    #[test]
    fn llama4_non_shape_keys_follow_the_checkpoints() {
        let r = ModelRegistry::builtin();
        let scout = r.resolve("LLAMA4_SCOUT").unwrap();
        let instruct = r
            .resolve("meta-llama/Llama-4-Scout-17B-16E-Instruct")
            .unwrap();
        let mav = r.resolve("LLAMA4_MAVERICK").unwrap();
        assert!(scout.qk_norm && instruct.qk_norm && !mav.qk_norm);
        assert_eq!(scout.context_window, Some(262_144));
        assert_eq!(instruct.context_window, Some(10_485_760));
        assert_eq!(mav.context_window, Some(1_048_576));
        assert_eq!(scout.name, "meta-llama/Llama-4-Scout-17B-16E");
        assert_eq!(instruct.name, "meta-llama/Llama-4-Scout-17B-16E-Instruct");
        for m in [&scout, &instruct, &mav] {
            let w = m.sliding.as_ref().unwrap();
            assert_eq!((w.window, w.windowed_layers), (8192, 36));
        }
        // Same shapes: the instruct model differs only in its window.
        assert_eq!(scout.moe, instruct.moe);
        assert_eq!(
            (scout.hidden, scout.num_layers, scout.vocab),
            (instruct.hidden, instruct.num_layers, instruct.vocab)
        );
    }

    #[test]
    fn hybrid_and_sliding_models() {
        let r = ModelRegistry::builtin();
        let q = r.resolve("Qwen/Qwen3.5-397B-A17B").unwrap();
        assert_eq!(q.family, Family::Hybrid);
        assert_eq!(q.linear_attn.as_ref().unwrap().layers, 45);
        assert_eq!(q.full_attention_layers(), 15);
        let g = r.resolve("openai/gpt-oss-120b").unwrap();
        assert_eq!(g.sliding.as_ref().unwrap().windowed_layers, 18);
        assert_eq!(g.quant.moe, Some(MoeQuant::W4a16Mxfp4));
        let glm = r.resolve("zhipuai/GLM-5").unwrap();
        assert_eq!(glm.mla.as_ref().unwrap().sparse_topk, Some(2048));
    }

    #[test]
    fn config_errors_are_typed() {
        let e = ModelSpec::from_hf_json("{not json", "x", "c.json").unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
        let e = ModelSpec::from_hf_json(r#"{"architectures":["FooForCausalLM"]}"#, "x", "c.json")
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("unsupported architecture 'FooForCausalLM'"),
            "{e}"
        );
        let e = ModelSpec::from_hf_json(
            r#"{"architectures":["LlamaForCausalLM"],"hidden_size":4096}"#,
            "x",
            "c.json",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("missing required field 'num_hidden_layers"),
            "{e}"
        );
    }

    /// The Qwen3-32B config with `field` set to the JSON text `val` (`None` removes it).
    fn mutated(base: &str, field: &str, val: Option<&str>) -> String {
        let mut v: Value = serde_json::from_str(base).unwrap();
        let o = v.as_object_mut().unwrap();
        match val {
            Some(t) => o.insert(field.into(), serde_json::from_str(t).unwrap()),
            None => o.remove(field),
        };
        v.to_string()
    }

    fn parse_err(text: &str) -> String {
        ModelSpec::from_hf_json(text, "x", "c.json")
            .map(|m| format!("parsed: {m:?}"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn hostile_sizes_are_refused_naming_the_field() {
        let base = MODEL_FILES[0].1;
        for (field, val, want) in [
            // `as u32` used to wrap 2^32 + 1 layers to 1.
            (
                "num_hidden_layers",
                "4294967297",
                "'num_hidden_layers' must be an integer from 1 to 1024",
            ),
            ("num_hidden_layers", "-3", "got -3"),
            ("num_hidden_layers", "0", "'num_hidden_layers' must be"),
            ("num_hidden_layers", "12.5", "got 12.5"),
            ("num_hidden_layers", "\"64\"", "got \"64\""),
            ("num_hidden_layers", "1e300", "'num_hidden_layers'"),
            // 2^32 heads gave head_dim 0 and a 0 GiB KV cache.
            (
                "num_attention_heads",
                "4294967296",
                "'num_attention_heads' must be",
            ),
            (
                "num_key_value_heads",
                "0",
                "'num_key_value_heads' must be an integer from 1",
            ),
            (
                "num_key_value_heads",
                "7",
                "not a multiple of num_key_value_heads 7",
            ),
            ("hidden_size", "18446744073709551615", "'hidden_size'"),
            ("vocab_size", "-1", "'vocab_size'"),
            ("intermediate_size", "[1]", "'intermediate_size'"),
            ("head_dim", "1000000", "'head_dim'"),
        ] {
            let e = parse_err(&mutated(base, field, Some(val)));
            assert!(e.contains(want), "{field}={val}: {e}");
            assert!(e.contains("c.json"), "{e}");
        }
        // Without head_dim, the heads must divide the hidden size.
        let t = mutated(
            &mutated(base, "head_dim", None),
            "num_attention_heads",
            Some("48"),
        );
        let t = mutated(&t, "num_key_value_heads", Some("8"));
        assert!(
            parse_err(&t).contains("hidden_size 5120 is not a multiple of num_attention_heads 48")
        );
        // Null is absent: the default applies.
        let m =
            ModelSpec::from_hf_json(&mutated(base, "head_dim", Some("null")), "x", "c").unwrap();
        assert_eq!(m.head_dim, 5120 / 64);
    }

    #[test]
    fn layer_kinds_must_cover_the_layers_exactly() {
        let gpt = MODEL_FILES
            .iter()
            .find(|(f, _)| f.contains("gpt-oss-120b"))
            .unwrap()
            .1;
        // Extra sliding entries used to give a negative KV cache.
        let mut v: Value = serde_json::from_str(gpt).unwrap();
        let lt = v["layer_types"].as_array_mut().unwrap();
        lt.push("sliding_attention".into());
        let e = parse_err(&v.to_string());
        assert!(
            e.contains("'layer_types' lists 37 layers but num_hidden_layers is 36"),
            "{e}"
        );
        v["layer_types"] = "full_attention".into();
        assert!(parse_err(&v.to_string()).contains("'layer_types' must be a list"));
        // 61 linear layers for a 60-layer hybrid used to underflow the full-attention count.
        let qwen35 = MODEL_FILES
            .iter()
            .find(|(f, _)| f.contains("Qwen3.5"))
            .unwrap()
            .1;
        let mut v: Value = serde_json::from_str(qwen35).unwrap();
        v["text_config"]["layer_types"] = Value::Array(vec!["linear_attention".into(); 61]);
        let e = parse_err(&v.to_string());
        assert!(
            e.contains("lists 61 layers but num_hidden_layers is 60"),
            "{e}"
        );
        v["text_config"]["layer_types"] = Value::Null;
        v["text_config"]["full_attention_interval"] = 0.into();
        assert!(parse_err(&v.to_string())
            .contains("'full_attention_interval' must be an integer from 1 to 60"));
        v["text_config"]["full_attention_interval"] = 4.into();
        let m = ModelSpec::from_hf_json(&v.to_string(), "x", "c").unwrap();
        assert_eq!(m.full_attention_layers(), 15);
    }

    #[test]
    fn hostile_moe_fields() {
        let ds = MODEL_FILES
            .iter()
            .find(|(f, _)| f.contains("DeepSeek-V3_"))
            .unwrap()
            .1;
        for (field, val, want) in [
            (
                "n_routed_experts",
                "4294967552",
                "'n_routed_experts' must be an integer from 1 to 16384",
            ),
            ("num_experts_per_tok", "0", "'num_experts_per_tok' must be"),
            (
                "num_experts_per_tok",
                "300",
                "exceeds the number of experts 256",
            ),
            (
                "first_k_dense_replace",
                "62",
                "'first_k_dense_replace' must be an integer from 0 to 61",
            ),
            ("kv_lora_rank", "-512", "'kv_lora_rank'"),
            ("n_shared_experts", "1e10", "'n_shared_experts'"),
            (
                "num_nextn_predict_layers",
                "4294967296",
                "'num_nextn_predict_layers'",
            ),
        ] {
            let e = parse_err(&mutated(ds, field, Some(val)));
            assert!(e.contains(want), "{field}={val}: {e}");
        }
    }

    #[test]
    fn unknown_model_lists_known() {
        let e = ModelRegistry::builtin()
            .resolve("QWEN9")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("unknown model 'QWEN9'"), "{e}");
        assert!(e.contains("QWEN3_32B (Qwen/Qwen3-32B)"), "{e}");
        assert!(!e.contains("did you mean"), "{e}");
    }

    #[test]
    fn a_mistyped_model_gets_a_did_you_mean_as_the_index_spells_it() {
        let r = ModelRegistry::builtin();
        let e = r.resolve("qwen3-32").unwrap_err().to_string();
        assert!(
            e.starts_with("unknown model 'qwen3-32'; did you mean 'QWEN3_32B'? known: "),
            "{e}"
        );
        let e = r.resolve("Qwen/Qwen3-32B-FP9").unwrap_err().to_string();
        assert!(e.contains("did you mean 'Qwen/Qwen3-32B-FP8'?"), "{e}");
    }

    #[test]
    fn added_models_carry_their_published_shapes() {
        let r = ModelRegistry::builtin();
        let q = r.resolve("QWEN2_5_72B").unwrap();
        assert_eq!((q.num_layers, q.hidden, q.num_kv_heads), (80, 8192, 8));
        assert_eq!(q.context_window, Some(32768));
        let c = r.resolve("QWEN3_CODER_480B").unwrap();
        let moe = c.moe.as_ref().unwrap();
        assert_eq!(
            (moe.num_experts, moe.top_k, moe.expert_inter),
            (160, 8, 2560)
        );
        let d = r.resolve("DEEPSEEK_V3.2").unwrap();
        assert_eq!(d.mla.as_ref().unwrap().sparse_topk, Some(2048));
        assert_eq!(d.mla.as_ref().unwrap().indexer_heads, 64);
        let f = r.resolve("Qwen/Qwen3-32B-FP8").unwrap();
        assert_eq!(f.quant.gemm, Some(GemmQuant::Fp8Block));
        let n = r.resolve("nvidia/Llama-3.3-70B-Instruct-FP4").unwrap();
        assert_eq!(n.quant.gemm, Some(GemmQuant::Nvfp4));
    }
}
