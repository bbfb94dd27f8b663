//! Op → table query (docs/model.md §5.4): which table, which slice keys, which coordinates, and the
//! roofline used to hold utilization outside the measured range.
use super::{comm_bytes_on_wire, Work, WorkClass};
use crate::hardware::SystemSpec;
use crate::model::graph::{CommOp, OpKind};
use crate::perfdb::tables::{self, label_code, CTX_BLEND, GEMM_BLEND, GEN_BLEND, ONE_D};
use crate::perfdb::{Blend, Grid, OpDb};
use crate::quant::{ComputeDtype, GemmQuant, MoeQuant};
use std::cell::Cell;

/// Largest step (tokens) that vLLM/SGLang run as a captured CUDA graph by default.
const GRAPH_MAX_TOKENS: f64 = 512.0;

/// Answer of the measured tables for one op invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// Measured or interpolated latency (ms).
    Hit(f64),
    /// Latency from a neighbouring slice (another KV dtype, window, sibling format or sharding
    /// over the same GPUs) rescaled by the roofline ratio: SILICON uses it, HYBRID prefers the
    /// empirical model (it scores better on the measured serving runs).
    Estimated(f64),
    /// The op has a table family but the installed data has no slice for it.
    Miss(String),
    /// No table family exists for this op (elementwise, P2P, ...): analytic formulas answer.
    NoTable,
}

/// Table label of a GEMM format; formats without a table of their own read their compute twin.
fn gemm_label(q: GemmQuant) -> Option<&'static str> {
    Some(match q {
        GemmQuant::Bfloat16 => "bfloat16",
        // fp8_static runs the fp8 kernel (its quantize overhead is a few µs, not modelled).
        GemmQuant::Fp8 | GemmQuant::Fp8Static => "fp8",
        GemmQuant::Fp8Block => "fp8_block",
        GemmQuant::Sq => "sq",
        GemmQuant::Int8Wo => "int8_wo",
        GemmQuant::Int4Wo => "int4_wo",
        GemmQuant::Nvfp4 => "nvfp4",
        GemmQuant::Nvfp4Wo | GemmQuant::W4a16Nvfp4 => return None,
    })
}

fn peak(sys: &SystemSpec, d: ComputeDtype) -> f64 {
    sys.flops(d).unwrap_or(sys.gpu.bfloat16_tc_flops)
}

fn kv_bytes(label: &str) -> f64 {
    match label {
        "fp8" | "int8" => 1.0,
        _ => 2.0,
    }
}

/// The serving model prices expected steps, so a count axis (batch, tokens) can be fractional:
/// below one, the op runs in that fraction of steps — the latency at one, scaled by the fraction.
fn expected(x: f64) -> (f64, f64) {
    if x > 0.0 && x < 1.0 {
        (1.0, x)
    } else {
        (x, 1.0)
    }
}

/// `want / have` for roofline rescaling of a substitute slice (1 when degenerate).
fn ratio(want: f64, have: f64) -> f64 {
    if want > 0.0 && have > 0.0 && want.is_finite() && have.is_finite() {
        want / have
    } else {
        1.0
    }
}

/// MoE formats with the same weight width and kernel family, tried when a format was not
/// collected (e.g. gpt-oss runs its 4-bit experts as MXFP4 whatever the label says).
fn sibling_formats(label: &str) -> &'static [&'static str] {
    match label {
        "fp8" => &["fp8_block"],
        "fp8_block" => &["fp8"],
        "nvfp4" => &["w4a8_mxfp4_mxfp8", "w4a16_mxfp4"],
        "w4a16_mxfp4" => &["w4a8_mxfp4_mxfp8", "nvfp4"],
        "w4a8_mxfp4_mxfp8" => &["w4a16_mxfp4", "nvfp4"],
        _ => &[],
    }
}

fn need(grid: Option<&Grid>, what: impl FnOnce() -> String) -> Result<&Grid, Lookup> {
    grid.ok_or_else(|| Lookup::Miss(what()))
}

fn code(label: &str, what: &str) -> Result<u8, Lookup> {
    label_code(label).ok_or_else(|| Lookup::Miss(format!("no {what} table for dtype '{label}'")))
}

impl OpDb {
    /// Latency of one invocation of `op` doing `w`, from the measured tables.
    pub fn lookup(&self, sys: &SystemSpec, op: &OpKind, w: &Work) -> Lookup {
        let est = Cell::new(false);
        match self.lookup_inner(sys, op, w, &est) {
            Ok(ms) if ms.is_finite() && ms >= 0.0 && est.get() => Lookup::Estimated(ms),
            Ok(ms) if ms.is_finite() && ms >= 0.0 => Lookup::Hit(ms),
            Ok(ms) => Lookup::Miss(format!("non-finite interpolation ({ms})")),
            Err(l) => l,
        }
    }

    fn lookup_inner(
        &self,
        sys: &SystemSpec,
        op: &OpKind,
        w: &Work,
        est: &Cell<bool>,
    ) -> Result<f64, Lookup> {
        let t = &self.tables;
        let bw = sys.gpu.mem_bw;
        match (op, w.class) {
            (OpKind::Gemm { n, k, quant, .. }, WorkClass::Gemm) => {
                let label = gemm_label(*quant).ok_or_else(|| {
                    Lookup::Miss(format!("no GEMM table for quantization '{}'", quant.name()))
                })?;
                let g = need(t.gemm.get(&code(label, "GEMM")?), || {
                    format!("no {label} GEMM data")
                })?;
                let (f, b) = (peak(sys, quant.compute()), quant.bytes());
                let sol = move |p: &[f64]| {
                    let (n, k, m) = (p[0], p[1], p[2]);
                    (2.0 * m * n * k / f).max(b * (m * n + m * k + n * k) / bw) * 1e3
                };
                let (m, frac) = expected(w.m);
                let v = g
                    .query(&[*n, *k, m], &GEMM_BLEND, &sol)
                    .ok_or(Lookup::NoTable)?;
                // The measured quantize kernels the table's timing includes
                // (`GemmQuant::measured_quantize_kernels`) come off, floored at the roofline:
                // serving fuses the cast into the producing kernel (docs/model.md §5.4).
                let quant_ms = |scale_only: bool| {
                    let q = |sm: bool| {
                        t.quantize.get(&sm).and_then(|g| {
                            g.query(&[m, *k], &[Blend::Linear; 2], &|x: &[f64]| x[0] * x[1])
                        })
                    };
                    q(true).unwrap_or(0.0)
                        + if scale_only {
                            0.0
                        } else {
                            q(false).unwrap_or(0.0)
                        }
                };
                let v = match quant.measured_quantize_kernels(&self.key.backend) {
                    Some(scale_only) => (v - quant_ms(scale_only)).max(sol(&[*n, *k, m])),
                    None => v,
                };
                Ok(v * frac)
            }
            (
                OpKind::Attention {
                    heads,
                    kv_heads,
                    qk_dim,
                    v_dim,
                    window,
                    ..
                },
                WorkClass::ContextAttention,
            ) => {
                let sh = &w.shape;
                let (b, s, p) = (sh.batch, sh.seq, sh.prefix);
                let total = s + p;
                if b <= 0.0 || s <= 0.0 {
                    return Ok(0.0);
                }
                let (b, bfrac) = expected(b);
                let kvb = kv_bytes(sh.kv_quant);
                let f = peak(sys, w.dtype);
                let kvc = code(sh.kv_quant, "KV-cache")?;
                let ms = if op.is_mla_prefill() {
                    // MLA prefill (decompressed K/V): context_mla table, keyed on the KV dtype.
                    if window.is_some() {
                        return Err(Lookup::Miss(
                            "sparse (DSA) MLA prefill has no granular table".into(),
                        ));
                    }
                    // The other KV-cache dtype answers when this one was not collected; prefill
                    // MLA is compute-bound, the roofline ratio carries the byte difference.
                    let (g, kvb_g) = match t.ctx_mla.get(&kvc) {
                        Some(g) => (g, kvb),
                        None => {
                            est.set(true);
                            t.ctx_mla
                                .iter()
                                .min_by_key(|(k, _)| **k)
                                .map(|(k, g)| (g, kv_bytes(tables::label(*k))))
                                .ok_or_else(|| Lookup::Miss("no context MLA data".into()))?
                        }
                    };
                    let dd = qk_dim + v_dim;
                    let sol_kv = move |kb: f64, x: &[f64]| {
                        let (n, sq, bb) = (x[0], x[1], x[2]);
                        let fl = bb * n * dd * sq * sq;
                        let by = bb * n * (kb * sq * dd + 2.0 * sq * dd);
                        (fl / f).max(by / bw) * 1e3
                    };
                    let x = [*heads, total, b];
                    let sol = move |x: &[f64]| sol_kv(kvb_g, x);
                    g.query(&x, &CTX_BLEND, &sol)
                        .map(|v| v * ratio(sol_kv(kvb, &x), sol_kv(kvb_g, &x)))
                } else {
                    let nkv = if kv_heads == heads {
                        0
                    } else {
                        *kv_heads as i64
                    };
                    let win = window.map_or(0, |x| x as i64);
                    let fmha = code(sh.quant, "attention")?;
                    let key = |w: i64| (fmha, kvc, nkv, *qk_dim as i64, w);
                    // A window that was not collected: the full-attention slice, scaled by the
                    // roofline ratio (exact when the sequence fits in the window).
                    let (g, wnd_g) = match t.ctx_attn.get(&key(win)) {
                        Some(g) => (g, win as f64),
                        None => (
                            need(t.ctx_attn.get(&key(0)).inspect(|_| est.set(true)), || {
                                format!(
                                    "no context attention data for fmha {}, kv {}, kv heads {}, head dim {}, window {}",
                                    sh.quant, sh.kv_quant, kv_heads, qk_dim, win
                                )
                            })?,
                            0.0,
                        ),
                    };
                    let (d, nkvh) = (*qk_dim, *kv_heads);
                    let sol_w = move |wnd: f64, x: &[f64]| {
                        let (n, sq, bb) = (x[0], x[1], x[2]);
                        let fl = if wnd > 0.0 && sq > wnd {
                            4.0 * bb * sq * wnd * n * d
                        } else {
                            2.0 * bb * sq * sq * n * d
                        };
                        let by = 4.0 * bb * n * sq * d + kvb * bb * 2.0 * nkvh * sq * d;
                        (fl / f).max(by / bw) * 1e3
                    };
                    let x = [*heads, total, b];
                    let sol = move |x: &[f64]| sol_w(wnd_g, x);
                    let want = window.unwrap_or(0.0);
                    g.query(&x, &CTX_BLEND, &sol)
                        .map(|v| v * ratio(sol_w(want, &x), sol_w(wnd_g, &x)))
                };
                // Causal work of the uncached part only (docs/model.md §4.3).
                let frac = if total > 0.0 {
                    (total * total - p * p) / (total * total)
                } else {
                    1.0
                };
                ms.map(|v| v * frac * bfrac).ok_or(Lookup::NoTable)
            }
            (
                OpKind::Attention {
                    heads,
                    kv_heads,
                    qk_dim,
                    v_dim,
                    window,
                    kv_elems_per_token,
                    latent,
                },
                WorkClass::GenerationAttention,
            ) => {
                let sh = &w.shape;
                // Draft tokens (MTP) query as extra rows of the batch.
                let b = sh.batch * sh.tokens.max(1.0);
                let s = match window {
                    Some(wnd) => sh.seq.min(*wnd),
                    None => sh.seq,
                }
                .max(1.0);
                if b <= 0.0 {
                    return Ok(0.0);
                }
                let (b, bfrac) = expected(b);
                let kvb = kv_bytes(sh.kv_quant);
                let f = peak(sys, w.dtype);
                let kvc = code(sh.kv_quant, "KV-cache")?;
                let ms = if *latent {
                    let (g, kvb_g) = match t.gen_mla.get(&kvc) {
                        Some(g) => (g, kvb),
                        None => {
                            est.set(true);
                            t.gen_mla
                                .iter()
                                .min_by_key(|(k, _)| **k)
                                .map(|(k, g)| (g, kv_bytes(tables::label(*k))))
                                .ok_or_else(|| Lookup::Miss("no generation MLA data".into()))?
                        }
                    };
                    let (dd, lat) = (qk_dim + v_dim, *kv_elems_per_token);
                    let sol_kv = move |kb: f64, x: &[f64]| {
                        let (n, bb, sq) = (x[0], x[1], x[2]);
                        let fl = 2.0 * bb * n * dd * sq;
                        let by = bb * (2.0 * n * dd + (sq - 1.0).max(0.0) * lat * kb);
                        (fl / f).max(by / bw) * 1e3
                    };
                    let x = [*heads, b, s];
                    let sol = move |x: &[f64]| sol_kv(kvb_g, x);
                    g.query(&x, &GEN_BLEND, &sol)
                        .map(|v| v * ratio(sol_kv(kvb, &x), sol_kv(kvb_g, &x)))
                } else {
                    let nkv = if kv_heads == heads {
                        0
                    } else {
                        *kv_heads as i64
                    };
                    let win = window.map_or(0, |x| x as i64);
                    let key = (kvc, nkv, *qk_dim as i64, win);
                    // Decode over a window reads min(s, w) keys: the full-attention slice at that
                    // length is the same kernel work when the windowed one was not collected.
                    let g = t.gen_attn.get(&key).or_else(|| {
                        est.set(true);
                        t.gen_attn.get(&(kvc, nkv, *qk_dim as i64, 0))
                    });
                    let g = need(g, || {
                        format!(
                            "no generation attention data for kv {}, kv heads {}, head dim {}, window {}",
                            sh.kv_quant, kv_heads, qk_dim, win
                        )
                    })?;
                    let (d, nkvh) = (*qk_dim, *kv_heads);
                    let sol = move |x: &[f64]| {
                        let (n, bb, sq) = (x[0], x[1], x[2]);
                        let kv = (sq - 1.0).max(0.0);
                        let fl = 4.0 * bb * n * d * kv;
                        let by = bb * (4.0 * n * d + 2.0 * nkvh * kv * d * kvb);
                        (fl / f).max(by / bw) * 1e3
                    };
                    g.query(&[*heads, b, s], &GEN_BLEND, &sol)
                };
                ms.map(|v| v * bfrac).ok_or(Lookup::NoTable)
            }
            (
                OpKind::Moe {
                    hidden,
                    inter,
                    experts,
                    top_k,
                    etp,
                    ep,
                    gated,
                    ..
                },
                WorkClass::Moe,
            ) => {
                let tokens = w.shape.tokens;
                if tokens <= 0.0 {
                    return Ok(0.0);
                }
                let q = code(w.shape.quant, "MoE")?;
                let (h, i, e, k) = (*hidden, *inter, *experts, *top_k);
                let gate = if *gated { 3.0 } else { 2.0 };
                let f = peak(sys, w.dtype);
                let sol_at = move |mem: f64, etp: f64, ep: f64, x: &[f64]| {
                    let tt = x[0] * k / ep;
                    let fl = 2.0 * tt * h * i * gate / etp;
                    let by = mem
                        * (tt * h * 2.0
                            + tt * i * gate / etp
                            + h * i * gate / etp * (e / ep).min(tt));
                    (fl / f).max(by / bw) * 1e3
                };
                let slice = |q: u8, etp: i64, ep: i64| {
                    self.moe_distributions.iter().find_map(|d| {
                        t.moe.get(&(
                            q,
                            *d,
                            !gated,
                            *top_k as i64,
                            *experts as i64,
                            *hidden as i64,
                            *inter as i64,
                            etp,
                            ep,
                        ))
                    })
                };
                // Resolution: this format and sharding; else a sibling format with the same
                // weight width (fp8 ↔ fp8_block, the 4-bit formats); else another sharding over
                // the same number of GPUs. Substitutes are rescaled by the roofline ratio.
                let (qe, qp) = (*etp as i64, *ep as i64);
                let mut cands: Vec<u8> = vec![q];
                cands.extend(
                    sibling_formats(w.shape.quant)
                        .iter()
                        .filter_map(|l| label_code(l)),
                );
                let found = cands
                    .iter()
                    .find_map(|c| slice(*c, qe, qp).map(|g| (g, *c, qe, qp)))
                    .or_else(|| {
                        cands.iter().find_map(|c| {
                            t.moe_shardings(*c, !gated, *top_k, *experts, *hidden, *inter)
                                .into_iter()
                                .filter(|(a, b)| a * b == qe * qp)
                                .find_map(|(a, b)| slice(*c, a, b).map(|g| (g, *c, a, b)))
                        })
                    });
                if let Some((_, qg, ge, gp)) = found {
                    if (qg, ge, gp) != (q, qe, qp) {
                        est.set(true);
                    }
                }
                let Some((g, qg, ge, gp)) = found else {
                    return Err(Lookup::Miss(format!(
                        "no MoE data for {} h{} I{} E{} top{} etp{} ep{}{}",
                        w.shape.quant,
                        hidden,
                        inter,
                        experts,
                        top_k,
                        etp,
                        ep,
                        if *gated { "" } else { " (non-gated)" }
                    )));
                };
                let mem_of = |l: &str| MoeQuant::parse(l).map_or(2.0, |m| m.bytes());
                let (mem_q, mem_g) = (mem_of(w.shape.quant), mem_of(tables::label(qg)));
                let (ge, gp, etp, ep) = (ge as f64, gp as f64, *etp, *ep);
                let sol = move |x: &[f64]| sol_at(mem_g, ge, gp, x);
                let (tq, frac) = expected(tokens);
                let x = [tq];
                g.query(&x, &ONE_D, &sol)
                    .map(|v| {
                        v * frac * ratio(sol_at(mem_q, etp, ep, &x), sol_at(mem_g, ge, gp, &x))
                    })
                    .ok_or(Lookup::NoTable)
            }
            (
                OpKind::Comm {
                    op: c,
                    gpus,
                    bytes_per_elem,
                    elems_per_token,
                },
                WorkClass::Comm(_),
            ) => {
                let g = *gpus;
                if g <= 1 || w.bytes <= 0.0 {
                    return Ok(0.0);
                }
                let elems = w.bytes / bytes_per_elem.max(1e-9);
                let half = label_code("half").unwrap_or(0);
                let dtype = if *bytes_per_elem >= 2.0 {
                    half
                } else {
                    label_code("int8").unwrap_or(0)
                };
                let nccl_op = match c {
                    CommOp::AllReduce => tables::NCCL_ALL_REDUCE,
                    CommOp::AllGather => tables::NCCL_ALL_GATHER,
                    CommOp::ReduceScatter => tables::NCCL_REDUCE_SCATTER,
                    CommOp::AllToAll => tables::NCCL_ALL_TO_ALL,
                };
                // The one-shot/two-shot custom all-reduce covers TP groups inside a node; beyond
                // the largest measured group NCCL answers.
                if *c == CommOp::AllReduce {
                    // The table is 16-bit: a narrower payload moves as fewer half elements.
                    let half_elems = elems * bytes_per_elem / 2.0;
                    // vLLM and SGLang replay CUDA graphs only for decode-sized steps (up to a few
                    // hundred tokens); larger (prefill) steps launch the all-reduce eagerly.
                    let eager = elems / elems_per_token.max(1.0) > GRAPH_MAX_TOKENS;
                    let ar = comm_query(sys, g, half_elems, *c, w.bytes, |n| {
                        t.allreduce
                            .get(&(n, eager))
                            .or_else(|| t.allreduce.get(&(n, !eager)))
                    });
                    let max_ar = t.allreduce.keys().map(|k| k.0).max().unwrap_or(0);
                    if g as i64 <= max_ar {
                        if let Some(v) = ar {
                            return Ok(v);
                        }
                    }
                    let nccl = comm_query(sys, g, half_elems, *c, w.bytes, |n| {
                        t.nccl.get(&(half, nccl_op, n))
                    });
                    if let Some(v) = nccl.or(ar) {
                        return Ok(v);
                    }
                    return Err(Lookup::Miss(format!("no all-reduce data for {g} GPUs")));
                }
                comm_query(sys, g, elems, *c, w.bytes, |n| {
                    t.nccl.get(&(dtype, nccl_op, n))
                })
                .ok_or_else(|| Lookup::Miss(format!("no NCCL {c:?} data for {g} GPUs")))
            }
            _ => Err(Lookup::NoTable),
        }
    }
}

/// A collective over `g` GPUs: the table at `g`, else at the largest measured group `n` below
/// it plus the extra wire time of the larger group — more bytes per GPU (`(g−1)/g`) over its
/// slower fabric: `L(n) + max(0, B(g)/BW(g) − B(n)/BW(n))`. (The reference scales the whole
/// latency by the bandwidth ratio, which inflates small, latency-bound messages ~20× when a
/// group leaves the NVLink domain.)
fn comm_query<'a>(
    sys: &SystemSpec,
    g: u32,
    elems: f64,
    op: CommOp,
    bytes: f64,
    table: impl Fn(i64) -> Option<&'a Grid>,
) -> Option<f64> {
    let sol = |x: &[f64]| x[0];
    if let Some(grid) = table(g as i64) {
        return grid.query(&[elems], &ONE_D, &sol);
    }
    let n = (2..g).rev().find(|n| table(*n as i64).is_some())?;
    let v = table(n as i64)?.query(&[elems], &ONE_D, &sol)?;
    let wire = |k: u32| comm_bytes_on_wire(op, k, bytes) / sys.group_bw(k) * 1e3;
    Some(v + (wire(g) - wire(n)).max(0.0))
}
