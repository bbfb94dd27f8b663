//! Layer → op graph of one worker for a parallel configuration (docs/model.md §4.2).
//!
//! One graph serves every step shape: context tokens, decode tokens, or a mixed chunked step.
//! Each op says which part of a step it applies to (`Part`), so DeepSeek's context-only
//! `kv_b_proj` and decode-only absorbed BMMs are priced in the right phase.
use super::{Family, ModelSpec};
use crate::error::{AicfgError, Result};
use crate::quant::{ComputeDtype, GemmQuant, QuantConfig};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Parallel {
    pub tp: u32,
    pub pp: u32,
    /// Attention data parallel ranks inside one worker.
    pub dp: u32,
    pub moe_tp: u32,
    pub moe_ep: u32,
}

impl Parallel {
    pub fn single() -> Self {
        Parallel {
            tp: 1,
            pp: 1,
            dp: 1,
            moe_tp: 1,
            moe_ep: 1,
        }
    }
    pub fn gpus(&self) -> u32 {
        self.tp * self.pp * self.dp
    }
    /// `tp{tp}pp{pp}dp{dp}etp{etp}ep{ep}` as in the reference reports.
    pub fn label(&self) -> String {
        format!(
            "tp{}pp{}dp{}etp{}ep{}",
            self.tp, self.pp, self.dp, self.moe_tp, self.moe_ep
        )
    }

    /// A worker layout where the expert sizes may be missing (docs/model.md §4.2): MoE experts
    /// shard like the attention (`moe_tp = tp·dp`, `moe_ep = 1`); one given size fixes the other
    /// so that `moe_tp·moe_ep = tp·dp`; dense models take 1, 1 unless sizes are given (which the
    /// graph then rejects). Given sizes are kept as given: the graph checks them.
    pub fn with_moe_defaults(
        is_moe: bool,
        tp: u32,
        pp: u32,
        dp: u32,
        moe_tp: Option<u32>,
        moe_ep: Option<u32>,
    ) -> Parallel {
        let n = tp.saturating_mul(dp);
        let (moe_tp, moe_ep) = match (moe_tp, moe_ep) {
            (Some(t), Some(e)) => (t, e),
            (Some(t), None) => (t, if is_moe { (n / t.max(1)).max(1) } else { 1 }),
            (None, Some(e)) => ((n / e.max(1)).max(1), e),
            (None, None) => (if is_moe { n } else { 1 }, 1),
        };
        Parallel {
            tp,
            pp,
            dp,
            moe_tp,
            moe_ep,
        }
    }
}

/// Which tokens of a step an op touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Part {
    All,
    ContextOnly,
    GenerationOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CommOp {
    AllReduce,
    AllGather,
    ReduceScatter,
    AllToAll,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum OpKind {
    /// `m` tokens × `k` → `n` features. `last_token_only`: one row per request (LM head).
    Gemm {
        n: f64,
        k: f64,
        quant: GemmQuant,
        last_token_only: bool,
    },
    /// Softmax attention over the KV cache (GQA/MHA, or MLA's decompressed/absorbed forms).
    Attention {
        heads: f64,
        kv_heads: f64,
        qk_dim: f64,
        v_dim: f64,
        /// Sliding window (keys per query), None for full attention.
        window: Option<f64>,
        /// Elements per token stored in the KV cache per layer for decode reads.
        kv_elems_per_token: f64,
        /// MLA decode reads one shared latent for all heads.
        latent: bool,
    },
    /// Sparse-attention key selector (DeepSeek DSA "lightning indexer"), fp8 dot products.
    Indexer { heads: f64, dim: f64 },
    /// Gated DeltaNet linear attention: chunked scan in prefill, recurrent state in decode.
    LinearAttention {
        value_heads: f64,
        key_dim: f64,
        value_dim: f64,
    },
    /// Routed experts. Tokens of all `dp` ranks meet in one expert pool.
    Moe {
        hidden: f64,
        inter: f64,
        experts: f64,
        top_k: f64,
        etp: f64,
        ep: f64,
        gated: bool,
        /// How the router spreads tokens over the experts (sets the busiest rank's load).
        routing: Routing,
    },
    Comm {
        op: CommOp,
        gpus: u32,
        /// Elements per local token moved by the collective (already × dp for gathers).
        elems_per_token: f64,
        bytes_per_elem: f64,
    },
    /// Pipeline stage hand-off.
    P2p { bytes_per_token: f64 },
    /// Bandwidth-bound elementwise work (norms, activations, residuals, embedding lookup).
    Memory { bytes_per_token: f64 },
}

impl OpKind {
    /// MLA prefill: attention over the decompressed per-head K/V, whose query/key width
    /// (nope + rope) differs from the value width; it runs its own kernels and tables.
    pub fn is_mla_prefill(&self) -> bool {
        matches!(self, OpKind::Attention { qk_dim, v_dim, latent: false, .. } if qk_dim != v_dim)
    }
}

/// Spread of routed tokens over the experts of an MoE layer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Routing {
    /// Every expert gets the same number of tokens (the tables' `balanced` rows).
    Balanced,
    /// Per-expert token counts drawn from a power law of this exponent, truncated as the
    /// op-table collector does (the tables' `power_law_<a>` rows; see `perf::routing`).
    PowerLaw(f64),
}

impl Routing {
    /// What serving assumes: inference routing is skewed, not uniform. No trace of real router
    /// statistics is available, so the skew is the one the measured MoE tables were collected
    /// with and the measured-table modes read (power law, exponent 1.2).
    pub const SERVING: Routing = Routing::PowerLaw(1.2);
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Op {
    pub name: &'static str,
    pub kind: OpKind,
    /// Invocations per forward step (usually the layer count).
    pub count: f64,
    /// Weight bytes per GPU of one invocation (for memory).
    pub weight_bytes: f64,
    pub part: Part,
    /// Repeated per layer (scaled by MTP draft layers), as opposed to once per step.
    pub per_layer: bool,
}

/// Everything a worker needs to price steps and memory.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerGraph {
    pub ops: Vec<Op>,
    pub parallel: Parallel,
    pub quant: QuantConfig,
    pub family: Family,
    pub num_layers: u32,
}

fn div_exact(a: u64, b: u32, what: &str, p: &Parallel, m: &ModelSpec) -> Result<f64> {
    if b == 0 || !a.is_multiple_of(b as u64) {
        return Err(AicfgError::Parallel {
            parallel: p.label(),
            model: m.name.clone(),
            reason: format!("{what} ({a}) is not divisible by {b}"),
        });
    }
    Ok((a / b as u64) as f64)
}

impl WorkerGraph {
    pub fn build(m: &ModelSpec, p: &Parallel, q: &QuantConfig) -> Result<Self> {
        let perr = |reason: String| AicfgError::Parallel {
            parallel: p.label(),
            model: m.name.clone(),
            reason,
        };
        if p.tp == 0 || p.pp == 0 || p.dp == 0 || p.moe_tp == 0 || p.moe_ep == 0 {
            return Err(perr("every parallel size must be at least 1".into()));
        }
        if p.pp > m.num_layers {
            return Err(perr(format!(
                "pp {} exceeds the {} layers",
                p.pp, m.num_layers
            )));
        }
        if m.family.is_moe() {
            if p.tp * p.dp != p.moe_tp * p.moe_ep {
                return Err(perr(format!(
                    "MoE needs tp×dp = moe_tp×moe_ep ({}×{} ≠ {}×{})",
                    p.tp, p.dp, p.moe_tp, p.moe_ep
                )));
            }
            let e = m.moe.as_ref().map_or(0, |x| x.num_experts);
            // An uneven split is allowed: wide-EP deployments place redundant expert copies (EPLB)
            // so ranks hold ⌈e/ep⌉ slots; per-rank work is priced on the average e/ep.
            if p.moe_ep > e {
                return Err(perr(format!("moe_ep {} exceeds the {e} experts", p.moe_ep)));
            }
        } else if p.dp > 1 || p.moe_ep > 1 || p.moe_tp > 1 {
            return Err(perr(
                "attention-dp/moe_tp/moe_ep apply to MoE models only; use tp and pp".into(),
            ));
        }
        let tp = p.tp;
        let h = m.hidden as f64;
        let l = m.num_layers as f64;
        let g = q.gemm;
        let wb = g.bytes();
        let mut ops: Vec<Op> = Vec::with_capacity(32);
        let mut push = |name, kind, count: f64, weight_bytes: f64, part, per_layer| {
            if count > 0.0 {
                ops.push(Op {
                    name,
                    kind,
                    count,
                    weight_bytes,
                    part,
                    per_layer,
                })
            }
        };
        let gemm = |n: f64, k: f64| OpKind::Gemm {
            n,
            k,
            quant: g,
            last_token_only: false,
        };
        let vocab_rows = (m.vocab as f64 / tp as f64).ceil();

        push(
            "embedding",
            OpKind::Memory {
                bytes_per_token: h * 2.0,
            },
            1.0,
            vocab_rows * h * 2.0,
            Part::All,
            false,
        );
        push(
            "add_norm_1",
            OpKind::Memory {
                bytes_per_token: 8.0 * h,
            },
            l,
            0.0,
            Part::All,
            true,
        );

        // ---- attention block ----
        let full_layers = m.full_attention_layers() as f64;
        if let Some(mla) = &m.mla {
            let heads = div_exact(m.num_heads, tp, "attention heads", p, m)?;
            let qk = (mla.qk_nope_head_dim + mla.qk_rope_head_dim) as f64;
            let nope = mla.qk_nope_head_dim as f64;
            let v = mla.v_head_dim as f64;
            let kvl = mla.kv_lora_rank as f64;
            let rope = mla.qk_rope_head_dim as f64;
            let ql = mla.q_lora_rank as f64;
            let down_n = ql + kvl + rope;
            push(
                "mla_down_proj",
                gemm(down_n, h),
                l,
                down_n * h * wb,
                Part::All,
                true,
            );
            let (qn, qk_in) = (heads * qk, if ql > 0.0 { ql } else { h });
            push(
                "mla_q_up_proj",
                gemm(qn, qk_in),
                l,
                qn * qk_in * wb,
                Part::All,
                true,
            );
            // Context decompresses the latent into per-head K and V.
            push(
                "mla_kv_up_proj",
                gemm(heads * (nope + v), kvl),
                l,
                heads * (nope + v) * kvl * wb,
                Part::ContextOnly,
                true,
            );
            // Decode absorbs W_UK / W_UV into the query and output (same weights as kv_up).
            push(
                "mla_bmm_pre",
                gemm(heads * kvl, nope),
                l,
                0.0,
                Part::GenerationOnly,
                true,
            );
            push(
                "mla_bmm_post",
                gemm(heads * v, kvl),
                l,
                0.0,
                Part::GenerationOnly,
                true,
            );
            let window = mla.sparse_topk.map(|t| t as f64);
            push(
                "context_attention",
                OpKind::Attention {
                    heads,
                    kv_heads: heads,
                    qk_dim: qk,
                    v_dim: v,
                    window,
                    kv_elems_per_token: kvl + rope,
                    latent: false,
                },
                l,
                0.0,
                Part::ContextOnly,
                true,
            );
            push(
                "generation_attention",
                OpKind::Attention {
                    heads,
                    kv_heads: 1.0,
                    qk_dim: kvl + rope,
                    v_dim: kvl,
                    window,
                    kv_elems_per_token: kvl + rope,
                    latent: true,
                },
                l,
                0.0,
                Part::GenerationOnly,
                true,
            );
            if mla.sparse_topk.is_some() && mla.indexer_heads > 0 {
                let ih = mla.indexer_heads as f64;
                let id = mla.indexer_head_dim as f64;
                push(
                    "indexer_proj",
                    gemm(ih * id + id, ql.max(1.0)),
                    l,
                    (ih * id + id) * ql.max(1.0) * wb,
                    Part::All,
                    true,
                );
                push(
                    "indexer",
                    OpKind::Indexer { heads: ih, dim: id },
                    l,
                    0.0,
                    Part::All,
                    true,
                );
            }
            push(
                "attn_out_proj",
                gemm(h, heads * v),
                l,
                h * heads * v * wb,
                Part::All,
                true,
            );
        } else {
            if !m.num_heads.is_multiple_of(tp as u64) {
                return Err(perr(format!(
                    "tp {tp} does not divide the {} attention heads",
                    m.num_heads
                )));
            }
            let heads = (m.num_heads / tp as u64) as f64;
            let kvh = m.num_kv_heads.div_ceil(tp as u64) as f64;
            let d = m.head_dim as f64;
            let gate = if m.attn_output_gate { 2.0 } else { 1.0 };
            let qkv_n = heads * d * gate + 2.0 * kvh * d;
            push(
                "qkv_proj",
                gemm(qkv_n, h),
                full_layers,
                qkv_n * h * wb,
                Part::All,
                true,
            );
            let windowed = m.sliding.as_ref().map_or(0.0, |s| s.windowed_layers as f64);
            let attn = |window| OpKind::Attention {
                heads,
                kv_heads: kvh,
                qk_dim: d,
                v_dim: d,
                window,
                kv_elems_per_token: 2.0 * kvh * d,
                latent: false,
            };
            push(
                "attention",
                attn(None),
                full_layers - windowed,
                0.0,
                Part::All,
                true,
            );
            if let Some(s) = &m.sliding {
                push(
                    "attention_windowed",
                    attn(Some(s.window as f64)),
                    windowed,
                    0.0,
                    Part::All,
                    true,
                );
            }
            push(
                "attn_out_proj",
                gemm(h, heads * d),
                full_layers,
                h * heads * d * wb,
                Part::All,
                true,
            );
            if let Some(la) = &m.linear_attn {
                let ll = la.layers as f64;
                let vh = (la.value_heads as f64 / tp as f64).max(1.0);
                let kh = (la.key_heads as f64 / tp as f64).max(1.0);
                let kd = la.key_head_dim as f64;
                let vd = la.value_head_dim as f64;
                let in_n = 2.0 * kh * kd + 2.0 * vh * vd + 2.0 * vh;
                push(
                    "linear_in_proj",
                    gemm(in_n, h),
                    ll,
                    in_n * h * wb,
                    Part::All,
                    true,
                );
                push(
                    "linear_attention",
                    OpKind::LinearAttention {
                        value_heads: vh,
                        key_dim: kd,
                        value_dim: vd,
                    },
                    ll,
                    0.0,
                    Part::All,
                    true,
                );
                push(
                    "linear_out_proj",
                    gemm(h, vh * vd),
                    ll,
                    h * vh * vd * wb,
                    Part::All,
                    true,
                );
            }
        }
        // Attention-output all-reduce inside the attention TP group.
        if tp > 1 {
            push(
                "attn_allreduce",
                OpKind::Comm {
                    op: CommOp::AllReduce,
                    gpus: tp,
                    elems_per_token: h,
                    bytes_per_elem: q.comm.bytes(),
                },
                l,
                0.0,
                Part::All,
                true,
            );
        }
        push(
            "add_norm_2",
            OpKind::Memory {
                bytes_per_token: 8.0 * h,
            },
            l,
            0.0,
            Part::All,
            true,
        );

        // ---- FFN / MoE block ----
        let dense_ffn = |ops_push: &mut dyn FnMut(&'static str, OpKind, f64, f64, Part, bool),
                         inter: f64,
                         layers: f64,
                         prefix: &'static [&'static str; 3]|
         -> Result<()> {
            if layers <= 0.0 || inter <= 0.0 {
                return Ok(());
            }
            let i_gpu = inter / tp as f64;
            let up = if m.gated_ffn { 2.0 * i_gpu } else { i_gpu };
            ops_push(prefix[0], gemm(up, h), layers, up * h * wb, Part::All, true);
            ops_push(
                prefix[1],
                OpKind::Memory {
                    bytes_per_token: 2.0 * (up + i_gpu),
                },
                layers,
                0.0,
                Part::All,
                true,
            );
            ops_push(
                prefix[2],
                gemm(h, i_gpu),
                layers,
                h * i_gpu * wb,
                Part::All,
                true,
            );
            Ok(())
        };
        match &m.moe {
            None => {
                dense_ffn(
                    &mut push,
                    m.intermediate as f64,
                    l,
                    &["ffn_gate_up", "ffn_act", "ffn_down"],
                )?;
            }
            Some(moe) => {
                let dense_l = moe.first_dense_layers as f64;
                let moe_l = l - dense_l;
                dense_ffn(
                    &mut push,
                    moe.dense_inter as f64,
                    dense_l,
                    &["dense_ffn_gate_up", "dense_ffn_act", "dense_ffn_down"],
                )?;
                dense_ffn(
                    &mut push,
                    moe.shared_inter as f64,
                    moe_l,
                    &[
                        "shared_expert_gate_up",
                        "shared_expert_act",
                        "shared_expert_down",
                    ],
                )?;
                let e = moe.num_experts as f64;
                push(
                    "router",
                    OpKind::Gemm {
                        n: e,
                        k: h,
                        quant: GemmQuant::Bfloat16,
                        last_token_only: false,
                    },
                    moe_l,
                    e * h * 2.0,
                    Part::All,
                    true,
                );
                if p.dp > 1 {
                    // Attention-DP ranks gather tokens into the shared expert pool and scatter back.
                    let n = p.moe_tp * p.moe_ep;
                    push(
                        "moe_dispatch",
                        OpKind::Comm {
                            op: CommOp::AllGather,
                            gpus: n,
                            elems_per_token: h * p.dp as f64,
                            bytes_per_elem: q.moe.bytes().min(q.comm.bytes()),
                        },
                        moe_l,
                        0.0,
                        Part::All,
                        true,
                    );
                    push(
                        "moe_combine",
                        OpKind::Comm {
                            op: CommOp::ReduceScatter,
                            gpus: n,
                            elems_per_token: h * p.dp as f64,
                            bytes_per_elem: q.comm.bytes(),
                        },
                        moe_l,
                        0.0,
                        Part::All,
                        true,
                    );
                }
                let gate = if moe.gated { 3.0 } else { 2.0 };
                let expert_w = h * moe.expert_inter as f64 * gate * q.moe.bytes();
                push(
                    "moe_experts",
                    OpKind::Moe {
                        hidden: h,
                        inter: moe.expert_inter as f64,
                        experts: e,
                        top_k: moe.top_k as f64,
                        etp: p.moe_tp as f64,
                        ep: p.moe_ep as f64,
                        gated: moe.gated,
                        routing: Routing::SERVING,
                    },
                    moe_l,
                    expert_w * e / (p.moe_ep * p.moe_tp) as f64,
                    Part::All,
                    true,
                );
            }
        }
        if tp > 1 {
            push(
                "ffn_allreduce",
                OpKind::Comm {
                    op: CommOp::AllReduce,
                    gpus: tp,
                    elems_per_token: h,
                    bytes_per_elem: q.comm.bytes(),
                },
                l,
                0.0,
                Part::All,
                true,
            );
        }
        if p.pp > 1 {
            push(
                "pp_p2p",
                OpKind::P2p {
                    bytes_per_token: h * 2.0,
                },
                (p.pp - 1) as f64,
                0.0,
                Part::All,
                false,
            );
        }
        push(
            "final_norm",
            OpKind::Memory {
                bytes_per_token: 4.0 * h,
            },
            1.0,
            0.0,
            Part::All,
            false,
        );
        let lm_w = if m.tie_embeddings {
            0.0
        } else {
            vocab_rows * h * 2.0
        };
        push(
            "lm_head",
            OpKind::Gemm {
                n: vocab_rows,
                k: h,
                quant: GemmQuant::Bfloat16,
                last_token_only: true,
            },
            1.0,
            lm_w,
            Part::All,
            false,
        );

        Ok(WorkerGraph {
            ops,
            parallel: *p,
            quant: *q,
            family: m.family,
            num_layers: m.num_layers,
        })
    }

    /// Weight bytes held by one GPU (layers split over pp stages).
    pub fn weight_bytes_per_gpu(&self) -> f64 {
        self.ops
            .iter()
            .map(|o| o.weight_bytes * o.count)
            .sum::<f64>()
            / self.parallel.pp as f64
    }

    /// Parameter count of the whole model at tp=1 (bytes ÷ element width).
    pub fn weight_elems_total(&self) -> f64 {
        self.ops
            .iter()
            .map(|o| {
                let per_elem = match &o.kind {
                    OpKind::Gemm { quant, .. } => quant.bytes(),
                    OpKind::Moe { .. } => self.quant.moe.bytes(),
                    _ => 2.0,
                };
                o.weight_bytes * o.count / per_elem
            })
            .sum()
    }
}

/// The compute dtype of a GEMM on a given quant, used by the perf sources.
pub fn gemm_dtype(q: GemmQuant) -> ComputeDtype {
    q.compute()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelRegistry;

    fn q32() -> ModelSpec {
        ModelRegistry::builtin().resolve("QWEN3_32B").unwrap()
    }

    #[test]
    fn qwen3_32b_weights_match_hand_count() {
        // Hand count: 65 522 892 800 B at tp1 (GEMMs + embedding + LM head), bf16.
        let g = WorkerGraph::build(&q32(), &Parallel::single(), &QuantConfig::default()).unwrap();
        let norm_free = g.weight_bytes_per_gpu();
        // Router/norm weights are not counted; the hand value covers exactly our GEMMs + tables.
        assert_eq!(norm_free, 65_522_892_800.0);
        let mut p = Parallel::single();
        p.tp = 2;
        let g2 = WorkerGraph::build(&q32(), &p, &QuantConfig::default()).unwrap();
        assert!((g2.weight_bytes_per_gpu() / (1u64 << 30) as f64 - 30.51).abs() < 0.01);
    }

    #[test]
    fn tp_must_divide_heads() {
        let mut p = Parallel::single();
        p.tp = 3;
        let e = WorkerGraph::build(&q32(), &p, &QuantConfig::default()).unwrap_err();
        assert!(
            e.to_string()
                .contains("tp 3 does not divide the 64 attention heads"),
            "{e}"
        );
    }

    #[test]
    fn moe_sizes_default_to_the_attention_split() {
        let p = |t, e| Parallel::with_moe_defaults(true, 2, 1, 4, t, e);
        assert_eq!((p(None, None).moe_tp, p(None, None).moe_ep), (8, 1));
        assert_eq!((p(None, Some(4)).moe_tp, p(None, Some(4)).moe_ep), (2, 4));
        assert_eq!((p(Some(2), None).moe_tp, p(Some(2), None).moe_ep), (2, 4));
        // Given sizes stay as given (the graph rejects 3·3 ≠ 8).
        assert_eq!(
            (p(Some(3), Some(3)).moe_tp, p(Some(3), Some(3)).moe_ep),
            (3, 3)
        );
        let d = Parallel::with_moe_defaults(false, 4, 2, 1, None, None);
        assert_eq!(
            d,
            Parallel {
                tp: 4,
                pp: 2,
                dp: 1,
                moe_tp: 1,
                moe_ep: 1
            }
        );
    }

    #[test]
    fn moe_parallel_rule() {
        let m = ModelRegistry::builtin()
            .resolve("Qwen/Qwen3-30B-A3B")
            .unwrap();
        let p = Parallel {
            tp: 2,
            pp: 1,
            dp: 1,
            moe_tp: 1,
            moe_ep: 4,
        };
        assert!(WorkerGraph::build(&m, &p, &QuantConfig::default()).is_err());
        let ok = Parallel { moe_ep: 2, ..p };
        assert!(WorkerGraph::build(&m, &ok, &QuantConfig::default()).is_ok());
    }

    #[test]
    fn deepseek_graph_has_phase_specific_mla_ops() {
        let m = ModelRegistry::builtin().resolve("DEEPSEEK_V3").unwrap();
        let p = Parallel {
            tp: 8,
            pp: 1,
            dp: 1,
            moe_tp: 1,
            moe_ep: 8,
        };
        let g = WorkerGraph::build(&m, &p, &QuantConfig::default()).unwrap();
        let find = |n: &str| g.ops.iter().find(|o| o.name == n).unwrap();
        assert_eq!(find("mla_kv_up_proj").part, Part::ContextOnly);
        assert_eq!(find("mla_bmm_pre").part, Part::GenerationOnly);
        assert_eq!(find("dense_ffn_gate_up").count, 3.0);
        assert_eq!(find("moe_experts").count, 58.0);
    }
}
