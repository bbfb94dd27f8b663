//! Pricing one forward step of a worker: op graph × step shape → per-op times.
use super::{PerfSource, Shape, Work, WorkClass};
use crate::hardware::SystemSpec;
use crate::model::graph::{Op, OpKind, Part, WorkerGraph};
use crate::quant::ComputeDtype;
use serde::Serialize;

/// Shape of one scheduler step on one attention-DP rank.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Step {
    /// Requests prefilling in this step.
    pub ctx_reqs: f64,
    /// New (uncached) tokens each prefilling request processes in this step.
    pub ctx_tokens: f64,
    /// Tokens of each prefilling request already in the KV cache (prefix or earlier chunks).
    pub ctx_prefix: f64,
    /// Requests decoding in this step.
    pub gen_reqs: f64,
    /// KV length each decoding request attends to.
    pub gen_kv_len: f64,
    /// Tokens per decoding request (1 + MTP draft tokens).
    pub gen_tokens_per_req: f64,
}

impl Step {
    pub fn context(reqs: f64, tokens: f64, prefix: f64) -> Self {
        Step {
            ctx_reqs: reqs,
            ctx_tokens: tokens,
            ctx_prefix: prefix,
            ..Default::default()
        }
    }
    pub fn decode(reqs: f64, kv_len: f64, tokens_per_req: f64) -> Self {
        Step {
            gen_reqs: reqs,
            gen_kv_len: kv_len,
            gen_tokens_per_req: tokens_per_req,
            ..Default::default()
        }
    }
    fn ctx_token_count(&self) -> f64 {
        self.ctx_reqs * self.ctx_tokens
    }
    fn gen_token_count(&self) -> f64 {
        self.gen_reqs * self.gen_tokens_per_req
    }
    fn tokens(&self, part: Part) -> f64 {
        match part {
            Part::All => self.ctx_token_count() + self.gen_token_count(),
            Part::ContextOnly => self.ctx_token_count(),
            Part::GenerationOnly => self.gen_token_count(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OpTime {
    pub name: &'static str,
    /// Time of all invocations in the step (ms).
    pub ms: f64,
    pub count: f64,
    pub source: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepBreakdown {
    pub ops: Vec<OpTime>,
    pub total_ms: f64,
    /// Op invocations with work in this step: the kernels an uncaptured step launches one by one.
    pub launches: f64,
}

fn dense_attention_flops(
    heads: f64,
    qk: f64,
    v: f64,
    new: f64,
    prefix: f64,
    window: Option<f64>,
) -> f64 {
    // Each new token i attends to prefix + i keys (causal), capped by the window.
    let total = prefix + new;
    let keys = match window {
        Some(w) if total > w => {
            // Tokens before position w see a growing range; after it, a full window.
            let grow_end = w.max(prefix).min(total);
            let grown = (grow_end * grow_end - prefix.min(grow_end).powi(2)) / 2.0;
            grown + (total - grow_end) * w
        }
        _ => (total * total - prefix * prefix) / 2.0,
    };
    2.0 * heads * (qk + v) * keys
}

/// Work of one invocation of `op` in `step` (zero, one or two parts).
pub fn op_work(g: &WorkerGraph, op: &Op, s: &Step) -> [Option<Work>; 2] {
    let q = &g.quant;
    let tokens = s.tokens(op.part);
    if tokens <= 0.0 {
        return [None, None];
    }
    match &op.kind {
        OpKind::Gemm {
            n,
            k,
            quant,
            last_token_only,
        } => {
            let m = if *last_token_only {
                s.ctx_reqs + s.gen_token_count()
            } else {
                tokens
            };
            if m <= 0.0 {
                return [None, None];
            }
            let wb = quant.bytes();
            let act = if quant.weight_only() {
                2.0
            } else {
                wb.max(1.0)
            };
            let mut w = Work::new(
                WorkClass::Gemm,
                2.0 * m * n * k,
                wb * n * k + act * m * k + 2.0 * m * n,
                quant.compute(),
            );
            w.m = m;
            w.dequant = quant.weight_only();
            [Some(w), None]
        }
        OpKind::Attention {
            heads,
            kv_heads,
            qk_dim,
            v_dim,
            window,
            kv_elems_per_token,
            latent,
        } => {
            let kvb = q.kvcache.bytes();
            let mut out = [None, None];
            if s.ctx_reqs > 0.0 && s.ctx_tokens > 0.0 && op.part != Part::GenerationOnly {
                let flops = s.ctx_reqs
                    * dense_attention_flops(
                        *heads,
                        *qk_dim,
                        *v_dim,
                        s.ctx_tokens,
                        s.ctx_prefix,
                        *window,
                    );
                let total = s.ctx_tokens + s.ctx_prefix;
                let io = s.ctx_reqs
                    * (s.ctx_tokens * heads * (qk_dim + v_dim) * 2.0
                        + total * kv_heads * (qk_dim + v_dim) * kvb);
                let mut w = Work::new(WorkClass::ContextAttention, flops, io, q.fmha.compute());
                w.m = s.ctx_tokens;
                w.shape = Shape {
                    batch: s.ctx_reqs,
                    seq: s.ctx_tokens,
                    prefix: s.ctx_prefix,
                    tokens: s.ctx_tokens,
                    quant: q.fmha.name(),
                    kv_quant: q.kvcache.name(),
                };
                out[0] = Some(w);
            }
            if s.gen_reqs > 0.0 && op.part != Part::ContextOnly {
                let kv = match window {
                    Some(wnd) => s.gen_kv_len.min(*wnd),
                    None => s.gen_kv_len,
                };
                let qn = s.gen_tokens_per_req;
                let flops = s.gen_reqs * 2.0 * heads * (qk_dim + v_dim) * kv * qn;
                let kv_bytes = if *latent {
                    kv * kv_elems_per_token * kvb
                } else {
                    kv * kv_heads * (qk_dim + v_dim) * kvb
                };
                let bytes = s.gen_reqs * (kv_bytes + qn * heads * (qk_dim + v_dim) * 2.0);
                let dtype = if q.kvcache.bytes() <= 1.0 && q.fmha.compute() == ComputeDtype::Fp8 {
                    ComputeDtype::Fp8
                } else {
                    ComputeDtype::Bf16
                };
                let mut w = Work::new(WorkClass::GenerationAttention, flops, bytes, dtype);
                w.m = s.gen_reqs;
                w.shape = Shape {
                    batch: s.gen_reqs,
                    seq: s.gen_kv_len,
                    prefix: 0.0,
                    tokens: qn,
                    quant: q.fmha.name(),
                    kv_quant: q.kvcache.name(),
                };
                out[1] = Some(w);
            }
            out
        }
        OpKind::Indexer { heads, dim } => {
            // Scores every cached key per query with fp8 dot products.
            let ctx_keys = s.ctx_reqs * (s.ctx_tokens * (s.ctx_prefix + s.ctx_tokens / 2.0));
            let gen_keys = s.gen_token_count() * s.gen_kv_len;
            let flops = 2.0 * heads * dim * (ctx_keys + gen_keys);
            let bytes =
                (s.ctx_reqs * (s.ctx_prefix + s.ctx_tokens) + s.gen_reqs * s.gen_kv_len) * dim;
            let mut w = Work::new(WorkClass::ContextAttention, flops, bytes, ComputeDtype::Fp8);
            w.m = tokens;
            [Some(w), None]
        }
        OpKind::LinearAttention {
            value_heads,
            key_dim,
            value_dim,
        } => {
            let state = value_heads * key_dim * value_dim;
            // Chunked delta rule (chunk 64): state update + intra-chunk attention per token.
            let flops = tokens * (6.0 * state + 2.0 * 64.0 * value_heads * (key_dim + value_dim));
            let reqs = s.ctx_reqs + s.gen_reqs;
            let bytes = reqs * state * 4.0 * 2.0
                + tokens * value_heads * (2.0 * key_dim + 2.0 * value_dim) * 2.0;
            let mut w = Work::new(WorkClass::LinearAttention, flops, bytes, ComputeDtype::Bf16);
            w.m = tokens;
            [Some(w), None]
        }
        OpKind::Moe {
            hidden,
            inter,
            experts,
            top_k,
            etp,
            ep,
            gated,
            routing,
        } => {
            let p = &g.parallel;
            let pool_tokens = tokens * p.dp as f64;
            // The layer takes as long as its busiest rank: the routed rows and the local
            // experts hit there under the routing distribution (perf/routing.rs).
            let load = super::routing::busiest_rank(pool_tokens, *experts, *top_k, *ep, *routing);
            let gate = if *gated { 3.0 } else { 2.0 };
            let flops = 2.0 * load.rows * hidden * inter * gate / etp;
            let wbytes = load.experts * hidden * inter * gate / etp * q.moe.bytes();
            let act = load.rows * (hidden * 2.0 + inter * gate / etp * 2.0);
            let mut w = Work::new(WorkClass::Moe, flops, wbytes + act, q.moe.compute());
            w.m = if load.experts > 0.0 {
                load.rows / load.experts
            } else {
                0.0
            };
            w.dequant = q.moe.weight_only();
            w.shape.tokens = pool_tokens;
            w.shape.quant = q.moe.name();
            [Some(w), None]
        }
        OpKind::Comm {
            op: c,
            gpus,
            elems_per_token,
            bytes_per_elem,
        } => {
            let mut w = Work::new(
                WorkClass::Comm(*c),
                0.0,
                tokens * elems_per_token * bytes_per_elem,
                ComputeDtype::Bf16,
            );
            w.gpus = *gpus;
            [Some(w), None]
        }
        OpKind::P2p { bytes_per_token } => [
            Some(Work::new(
                WorkClass::P2p,
                0.0,
                tokens * bytes_per_token,
                ComputeDtype::Bf16,
            )),
            None,
        ],
        OpKind::Memory { bytes_per_token } => [
            Some(Work::new(
                WorkClass::Memory,
                0.0,
                tokens * bytes_per_token,
                ComputeDtype::Bf16,
            )),
            None,
        ],
    }
}

/// Price one step. `layer_scale` multiplies per-layer ops (MTP draft layers).
pub fn price_step(
    g: &WorkerGraph,
    sys: &SystemSpec,
    src: &dyn PerfSource,
    s: &Step,
    layer_scale: f64,
    detail: bool,
) -> StepBreakdown {
    let mut total = 0.0;
    let mut launches = 0.0;
    let mut ops = Vec::new();
    for op in &g.ops {
        let works = op_work(g, op, s);
        let mut ms = 0.0;
        let mut source: Option<&'static str> = None;
        for w in works.iter().flatten() {
            let (t, tag) = src.time_tagged(sys, &op.kind, w);
            ms += t;
            source = match source {
                Some(prev) if prev != tag => Some("mixed"),
                _ => Some(tag),
            };
        }
        let count = if op.per_layer {
            op.count * layer_scale
        } else {
            op.count
        };
        let ms = ms * count;
        total += ms;
        if ms > 0.0 {
            launches += count;
        }
        if detail && ms > 0.0 {
            ops.push(OpTime {
                name: op.name,
                ms,
                count,
                source: source.unwrap_or(src.name()),
            });
        }
    }
    StepBreakdown {
        ops,
        total_ms: total,
        launches,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moe_work_is_the_busiest_ranks() {
        use crate::model::graph::{Parallel, Routing};
        use crate::quant::QuantConfig;
        let g = WorkerGraph {
            ops: Vec::new(),
            parallel: Parallel::single(),
            quant: QuantConfig::default(),
            family: crate::model::Family::Llama,
            num_layers: 1,
        };
        let moe = |routing| Op {
            name: "moe",
            kind: OpKind::Moe {
                hidden: 1024.0,
                inter: 512.0,
                experts: 8.0,
                top_k: 2.0,
                etp: 2.0,
                ep: 4.0,
                gated: true,
                routing,
            },
            count: 1.0,
            weight_bytes: 0.0,
            part: Part::All,
            per_layer: false,
        };
        // Balanced: 256 tokens × top-2 over 4 ranks = 128 rows on 2 experts per rank; expert
        // width 512/2 = 256: FLOPs 2·128·1024·256·3, weights 2·1024·256·3·2 B, activations
        // 128·(2·1024 + 2·768) B.
        let [w, none] = op_work(&g, &moe(Routing::Balanced), &Step::context(1.0, 256.0, 0.0));
        let w = w.unwrap();
        assert!(none.is_none());
        assert_eq!(w.flops, 2.0 * 128.0 * 1024.0 * 256.0 * 3.0);
        assert_eq!(
            w.bytes,
            2.0 * 1024.0 * 256.0 * 3.0 * 2.0 + 128.0 * (2048.0 + 1536.0)
        );
        assert_eq!(w.m, 64.0);
        assert_eq!(w.shape.tokens, 256.0);
        // Skewed routing: the busiest rank computes more rows than the mean.
        let [s, _] = op_work(&g, &moe(Routing::SERVING), &Step::context(1.0, 256.0, 0.0));
        assert!(s.unwrap().flops > w.flops);
    }

    #[test]
    fn causal_attention_flops_hand_value() {
        // 1 head, qk=v=128, 4 new tokens, no prefix: keys = 16/2 = 8 → 2·1·256·8 = 4096.
        assert_eq!(
            dense_attention_flops(1.0, 128.0, 128.0, 4.0, 0.0, None),
            4096.0
        );
        // Prefix 4 + 4 new: (64 − 16)/2 = 24 keys.
        assert_eq!(
            dense_attention_flops(1.0, 128.0, 128.0, 4.0, 4.0, None),
            2.0 * 256.0 * 24.0
        );
        // Window 2 over 4 tokens: grown part (4−0)/2 = 2, then 2 tokens × 2 keys = 4 → 6 keys.
        assert_eq!(
            dense_attention_flops(1.0, 128.0, 128.0, 4.0, 0.0, Some(2.0)),
            2.0 * 256.0 * 6.0
        );
    }
}
