//! Checking the embedded op model against the measured op tables: every measured point of every
//! installed table becomes an op invocation (op kind, quantization, step shape), is priced by a
//! `PerfSource` through the same `op_work` path serving uses, and is compared with its measured
//! latency. `bench ops` reports the errors; `bench calibrate --ops` fits the kernel constants
//! to the same points (see `opfit`).
use super::step::{op_work, Step};
use super::{PerfSource, Work};
use crate::error::{AicfgError, Result};
use crate::hardware::{SystemRegistry, SystemSpec};
use crate::model::graph::{CommOp, Op, OpKind, Parallel, Part, Routing, WorkerGraph};
use crate::model::Family;
use crate::perfdb::read::{read_columns, Frame};
use crate::perfdb::{cmp_version, tables::FastMap, Blend};
use crate::quant::{FmhaQuant, GemmQuant, KvQuant, MoeQuant, QuantConfig};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Tables this check understands, by file stem.
const CHECKED: &[&str] = &[
    "gemm_perf",
    "context_attention_perf",
    "generation_attention_perf",
    "context_mla_perf",
    "generation_mla_perf",
    "mla_bmm_perf",
    "moe_perf",
    "custom_allreduce_perf",
    "nccl_perf",
    "computescale_perf",
    "scale_matrix_perf",
];

/// One installed table file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableFile {
    pub system: String,
    pub backend: String,
    pub version: String,
    pub table: String,
    pub path: PathBuf,
}

/// Which tables to check.
#[derive(Debug, Clone, Default)]
pub struct OpFilter {
    pub system: Option<String>,
    pub backend: Option<String>,
    pub version: Option<String>,
    /// Family prefix (`gemm`, `moe/fp8`, `generation_attention`, ...).
    pub family: Option<String>,
    /// Every version's MoE table, not only the newest: the database keeps the fastest kernel
    /// per MoE point across versions (frameworks change MoE backends between releases, and a
    /// release's table may cover only a few shapes), so a fit sees them all.
    pub all_moe_versions: bool,
}

impl OpFilter {
    fn family_ok(&self, fam: &str) -> bool {
        self.family.as_deref().is_none_or(|f| fam.starts_with(f))
    }
}

fn dirs(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The table files to check under a data root. Without a version, each (system, backend,
/// table) is taken from the newest version that has it (the database's backward fill; every
/// version for MoE with `all_moe_versions`); with one, only that version's files. NCCL tables
/// are listed under backend `nccl`.
pub fn discover(root: &Path, f: &OpFilter) -> Vec<TableFile> {
    let mut best: BTreeMap<(String, String, String), TableFile> = BTreeMap::new();
    for sys in dirs(root) {
        if f.system.as_deref().is_some_and(|s| s != sys) {
            continue;
        }
        for fam in dirs(&root.join(&sys)) {
            for be in dirs(&root.join(&sys).join(&fam)) {
                if f.backend.as_deref().is_some_and(|b| b != be) {
                    continue;
                }
                for v in dirs(&root.join(&sys).join(&fam).join(&be)) {
                    if f.version.as_deref().is_some_and(|x| x != v) {
                        continue;
                    }
                    let dir = root.join(&sys).join(&fam).join(&be).join(&v);
                    for t in CHECKED {
                        let path = dir.join(format!("{t}.parquet"));
                        if !path.is_file() {
                            continue;
                        }
                        let tf = TableFile {
                            system: sys.clone(),
                            backend: be.clone(),
                            version: v.clone(),
                            table: t.to_string(),
                            path,
                        };
                        let key = if f.all_moe_versions && *t == "moe_perf" {
                            (sys.clone(), be.clone(), format!("{t}@{v}"))
                        } else {
                            (sys.clone(), be.clone(), t.to_string())
                        };
                        match best.get(&key) {
                            Some(old) if cmp_version(&old.version, &v).is_ge() => {}
                            _ => {
                                best.insert(key, tf);
                            }
                        }
                    }
                }
            }
        }
    }
    best.into_values().collect()
}

/// One measured point as an op invocation.
#[derive(Debug, Clone)]
pub struct OpCase {
    pub family: String,
    pub op: OpKind,
    pub quant: QuantConfig,
    pub step: Step,
    pub measured_ms: f64,
    /// Table coordinates, for reports.
    pub shape: String,
    /// An NCCL table's collective (NCCL at every size, not a custom all-reduce).
    pub nccl: bool,
}

impl OpCase {
    /// Priced by `src` on `sys` through the serving path (`op_work`).
    pub fn predict_ms(&self, src: &dyn PerfSource, sys: &SystemSpec) -> f64 {
        let (op, works) = self.works();
        works
            .iter()
            .flatten()
            .map(|w| src.time_ms(sys, &op.kind, w))
            .sum()
    }

    /// The single-op graph the case runs in and its works, as serving builds them.
    pub fn works(&self) -> (Op, [Option<Work>; 2]) {
        let g = WorkerGraph {
            ops: Vec::new(),
            parallel: Parallel::single(),
            quant: self.quant,
            family: Family::Llama,
            num_layers: 1,
        };
        let op = Op {
            name: "check",
            kind: self.op.clone(),
            count: 1.0,
            weight_bytes: 0.0,
            part: Part::All,
            per_layer: false,
        };
        let mut works = op_work(&g, &op, &self.step);
        for w in works.iter_mut().flatten() {
            w.nccl = self.nccl;
        }
        (op, works)
    }
}

fn quant(gemm: GemmQuant) -> QuantConfig {
    QuantConfig {
        gemm,
        ..QuantConfig::default()
    }
}

fn label(s: &str) -> String {
    match s {
        "float16" | "fp16" | "bf16" | "half" => "bfloat16".into(),
        x => x.to_string(),
    }
}

/// Rows of one table file as op invocations (rows the op model has no form for are skipped).
pub fn read_cases(tf: &TableFile) -> Result<Vec<OpCase>> {
    let p = tf.path.as_path();
    let lat = |fr: &Frame, r: usize| fr.col("latency").float(r);
    let ok = |v: f64| v.is_finite() && v > 0.0;
    let mut out = Vec::new();
    match tf.table.as_str() {
        "gemm_perf" => {
            let quant_t = quantize_tables(p)?;
            let fr = read_columns(p, &["gemm_dtype", "m", "n", "k", "latency"], &[])?;
            let (cd, cm, cn, ck) = (fr.col("gemm_dtype"), fr.col("m"), fr.col("n"), fr.col("k"));
            for r in 0..fr.rows {
                let Ok(q) = GemmQuant::parse(cd.str(r)) else {
                    continue;
                };
                let (m, n, k) = (cm.float(r), cn.float(r), ck.float(r));
                if !(ok(lat(&fr, r)) && m > 0.0 && n > 0.0 && k > 0.0) {
                    continue;
                }
                // The measured quantize kernels the timing includes come off
                // (`GemmQuant::measured_quantize_kernels`, the measured-table source's rule).
                let qms = |scale_only: bool| {
                    let one = |sm: bool| {
                        quant_t
                            .as_ref()
                            .and_then(|t| t.quantize.get(&sm))
                            .and_then(|g| {
                                g.query(&[m, k], &[Blend::Linear; 2], &|x: &[f64]| x[0] * x[1])
                            })
                            .unwrap_or(0.0)
                    };
                    one(true) + if scale_only { 0.0 } else { one(false) }
                };
                let floor = 2.0 * m * n * k * 1e-15;
                let measured = match q.measured_quantize_kernels(&tf.backend) {
                    Some(scale_only) => {
                        (lat(&fr, r) - qms(scale_only)).max(floor.max(0.1 * lat(&fr, r)))
                    }
                    None => lat(&fr, r),
                };
                out.push(OpCase {
                    family: format!("gemm/{}", q.name()),
                    op: OpKind::Gemm {
                        n,
                        k,
                        quant: q,
                        last_token_only: false,
                    },
                    quant: quant(q),
                    step: Step::context(1.0, m, 0.0),
                    measured_ms: measured,
                    shape: format!("m{m} n{n} k{k}"),
                    nccl: false,
                });
            }
        }
        "context_attention_perf" | "generation_attention_perf" => {
            let fr = read_columns(
                p,
                &[
                    "batch_size",
                    "isl",
                    "num_heads",
                    "num_key_value_heads",
                    "head_dim",
                    "attn_dtype",
                    "kv_cache_dtype",
                    "latency",
                ],
                &["window_size", "step"],
            )?;
            let ctx = tf.table == "context_attention_perf";
            let (cb, ci, ch, ckv, cd) = (
                fr.col("batch_size"),
                fr.col("isl"),
                fr.col("num_heads"),
                fr.col("num_key_value_heads"),
                fr.col("head_dim"),
            );
            let (ca, ckd) = (fr.col("attn_dtype"), fr.col("kv_cache_dtype"));
            for r in 0..fr.rows {
                let (Ok(fm), Ok(kv)) = (
                    FmhaQuant::parse(&label(ca.str(r))),
                    KvQuant::parse(&label(ckd.str(r))),
                ) else {
                    continue;
                };
                let (b, s, h, d) = (cb.float(r), ci.float(r), ch.float(r), cd.float(r));
                let nkv = ckv.float(r);
                let step = fr.opt("step").map_or(0.0, |c| c.float(r).max(0.0));
                let win = fr.opt("window_size").map_or(0.0, |c| c.float(r));
                if !(ok(lat(&fr, r)) && b > 0.0 && s > 0.0 && h > 0.0 && d > 0.0) {
                    continue;
                }
                let kvh = if nkv > 0.0 { nkv } else { h };
                let op = OpKind::Attention {
                    heads: h,
                    kv_heads: kvh,
                    qk_dim: d,
                    v_dim: d,
                    window: (win > 0.0).then_some(win),
                    kv_elems_per_token: 2.0 * kvh * d,
                    latent: false,
                };
                let q = QuantConfig {
                    fmha: fm,
                    kvcache: kv,
                    ..QuantConfig::default()
                };
                let wtag = if win > 0.0 {
                    format!(" w{win}")
                } else {
                    String::new()
                };
                let (family, st, shape) = if ctx {
                    (
                        format!("context_attention/{}/kv_{}", fm.name(), kv.name()),
                        Step::context(b, s + step, 0.0),
                        format!("b{b} s{} h{h} kv{kvh} d{d}{wtag}", s + step),
                    )
                } else {
                    (
                        format!("generation_attention/kv_{}", kv.name()),
                        Step::decode(b, s + step, 1.0),
                        format!("b{b} kv_len{} h{h} kv{kvh} d{d}{wtag}", s + step),
                    )
                };
                out.push(OpCase {
                    family,
                    op,
                    quant: q,
                    step: st,
                    measured_ms: lat(&fr, r),
                    shape,
                    nccl: false,
                });
            }
        }
        "context_mla_perf" | "generation_mla_perf" => {
            let fr = read_columns(
                p,
                &[
                    "kv_cache_dtype",
                    "num_heads",
                    "batch_size",
                    "isl",
                    "latency",
                ],
                &["step"],
            )?;
            let ctx = tf.table == "context_mla_perf";
            let (ckd, ch, cb, ci) = (
                fr.col("kv_cache_dtype"),
                fr.col("num_heads"),
                fr.col("batch_size"),
                fr.col("isl"),
            );
            for r in 0..fr.rows {
                let Ok(kv) = KvQuant::parse(&label(ckd.str(r))) else {
                    continue;
                };
                let (h, b, s) = (ch.float(r), cb.float(r), ci.float(r));
                let step = fr.opt("step").map_or(0.0, |c| c.float(r).max(0.0));
                if !(ok(lat(&fr, r)) && b > 0.0 && s > 0.0 && h > 0.0) {
                    continue;
                }
                // DeepSeek MLA: qk = 128 nope + 64 rope, v = 128; latent 512 + 64 rope.
                let (op, st, family, shape) = if ctx {
                    (
                        OpKind::Attention {
                            heads: h,
                            kv_heads: h,
                            qk_dim: 192.0,
                            v_dim: 128.0,
                            window: None,
                            kv_elems_per_token: 576.0,
                            latent: false,
                        },
                        Step::context(b, s + step, 0.0),
                        format!("context_mla/kv_{}", kv.name()),
                        format!("b{b} s{} h{h}", s + step),
                    )
                } else {
                    (
                        OpKind::Attention {
                            heads: h,
                            kv_heads: 1.0,
                            qk_dim: 576.0,
                            v_dim: 512.0,
                            window: None,
                            kv_elems_per_token: 576.0,
                            latent: true,
                        },
                        Step::decode(b, s + step, 1.0),
                        format!("generation_mla/kv_{}", kv.name()),
                        format!("b{b} kv_len{} h{h}", s + step),
                    )
                };
                out.push(OpCase {
                    family,
                    op,
                    quant: QuantConfig {
                        kvcache: kv,
                        fmha: if kv == KvQuant::Fp8 && !ctx {
                            FmhaQuant::Fp8
                        } else {
                            FmhaQuant::Bfloat16
                        },
                        ..QuantConfig::default()
                    },
                    step: st,
                    measured_ms: lat(&fr, r),
                    shape,
                    nccl: false,
                });
            }
        }
        "mla_bmm_perf" => {
            let fr = read_columns(
                p,
                &["op_name", "bmm_dtype", "num_tokens", "num_heads", "latency"],
                &[],
            )?;
            let (co, cd, ct, ch) = (
                fr.col("op_name"),
                fr.col("bmm_dtype"),
                fr.col("num_tokens"),
                fr.col("num_heads"),
            );
            for r in 0..fr.rows {
                let Ok(q) = GemmQuant::parse(&label(cd.str(r))) else {
                    continue;
                };
                let (t, h) = (ct.float(r), ch.float(r));
                // Absorbed decode MLA: per head q_nope (128) → latent (512), latent → v (128).
                let (n, k, name) = match co.str(r) {
                    "mla_gen_pre" => (h * 512.0, 128.0, "pre"),
                    "mla_gen_post" => (h * 128.0, 512.0, "post"),
                    _ => continue,
                };
                if !(ok(lat(&fr, r)) && t > 0.0 && h > 0.0) {
                    continue;
                }
                out.push(OpCase {
                    family: format!("mla_bmm/{}", q.name()),
                    op: OpKind::Gemm {
                        n,
                        k,
                        quant: q,
                        last_token_only: false,
                    },
                    quant: quant(q),
                    step: Step::context(1.0, t, 0.0),
                    measured_ms: lat(&fr, r),
                    shape: format!("{name} tokens{t} h{h}"),
                    nccl: false,
                });
            }
        }
        "moe_perf" => {
            let fr = read_columns(
                p,
                &[
                    "moe_dtype",
                    "num_tokens",
                    "hidden_size",
                    "inter_size",
                    "topk",
                    "num_experts",
                    "moe_tp_size",
                    "moe_ep_size",
                    "distribution",
                    "latency",
                ],
                &["kernel_source"],
            )?;
            out = moe_cases(&fr);
        }
        "custom_allreduce_perf" | "nccl_perf" => {
            let nccl = tf.table == "nccl_perf";
            let fr = if nccl {
                read_columns(
                    p,
                    &[
                        "nccl_dtype",
                        "op_name",
                        "num_gpus",
                        "message_size",
                        "latency",
                    ],
                    &[],
                )?
            } else {
                read_columns(
                    p,
                    &["allreduce_dtype", "num_gpus", "message_size", "latency"],
                    &[],
                )?
            };
            // The fastest kernel per point (the dispatcher picks it).
            let mut best: FastMap<(u8, i64, i64, u8), (f64, String)> = FastMap::default();
            let (cg, cm) = (fr.col("num_gpus"), fr.col("message_size"));
            for r in 0..fr.rows {
                let (dt, op) = if nccl {
                    let op = match fr.col("op_name").str(r) {
                        "all_reduce" => 0u8,
                        "all_gather" => 1,
                        "reduce_scatter" => 2,
                        "alltoall" | "all_to_all" => 3,
                        _ => continue,
                    };
                    (fr.col("nccl_dtype").str(r), op)
                } else {
                    (fr.col("allreduce_dtype").str(r), 0u8)
                };
                let bpe: u8 = match dt {
                    "bfloat16" | "float16" | "fp16" | "half" => 2,
                    "int8" | "fp8" => 1,
                    _ => continue,
                };
                let l = lat(&fr, r);
                if !ok(l) || cg.int(r) < 2 || cm.int(r) <= 0 {
                    continue;
                }
                let e = best
                    .entry((bpe, cg.int(r), cm.int(r), op))
                    .or_insert((f64::INFINITY, String::new()));
                if l < e.0 {
                    e.0 = l;
                }
            }
            let mut keys: Vec<_> = best.into_iter().collect();
            keys.sort_by_key(|a| a.0);
            for ((bpe, g, m, op), (l, _)) in keys {
                let c = [
                    CommOp::AllReduce,
                    CommOp::AllGather,
                    CommOp::ReduceScatter,
                    CommOp::AllToAll,
                ][op as usize];
                let fam = match (nccl, c) {
                    (false, _) => "allreduce/custom".to_string(),
                    (true, CommOp::AllReduce) => "nccl/all_reduce".into(),
                    (true, CommOp::AllGather) => "nccl/all_gather".into(),
                    (true, CommOp::ReduceScatter) => "nccl/reduce_scatter".into(),
                    (true, CommOp::AllToAll) => "nccl/all_to_all".into(),
                };
                out.push(OpCase {
                    family: fam,
                    op: OpKind::Comm {
                        op: c,
                        gpus: g as u32,
                        elems_per_token: m as f64,
                        bytes_per_elem: bpe as f64,
                    },
                    quant: QuantConfig::default(),
                    step: Step::context(1.0, 1.0, 0.0),
                    measured_ms: l,
                    shape: format!("gpus{g} elems{m} {}B", bpe),
                    nccl,
                });
            }
        }
        "computescale_perf" | "scale_matrix_perf" => {
            let fr = read_columns(p, &["m", "k", "quant_dtype", "latency"], &[])?;
            let sm = tf.table == "scale_matrix_perf";
            let (cm, ck) = (fr.col("m"), fr.col("k"));
            for r in 0..fr.rows {
                let (m, k) = (cm.float(r), ck.float(r));
                if !(ok(lat(&fr, r)) && m > 0.0 && k > 0.0) {
                    continue;
                }
                // scale_matrix reads bf16 and writes fp8; compute_scale reads bf16 (a reduction).
                let bpt = if sm { 3.0 * k } else { 2.0 * k };
                out.push(OpCase {
                    family: format!(
                        "elementwise/{}",
                        if sm { "scale_matrix" } else { "compute_scale" }
                    ),
                    op: OpKind::Memory {
                        bytes_per_token: bpt,
                    },
                    quant: QuantConfig::default(),
                    step: Step::context(1.0, m, 0.0),
                    measured_ms: lat(&fr, r),
                    shape: format!("m{m} k{k}"),
                    nccl: false,
                });
            }
        }
        _ => {}
    }
    Ok(out)
}

/// The activation-quantize tables next to a GEMM table (same system and backend, newest
/// version), if collected.
fn quantize_tables(gemm: &Path) -> Result<Option<crate::perfdb::tables::Tables>> {
    let (Some(ver), Some(be)) = (gemm.parent(), gemm.parent().and_then(Path::parent)) else {
        return Ok(None);
    };
    let (Some(backend), Some(sys)) = (be.file_name(), be.parent().and_then(Path::parent)) else {
        return Ok(None);
    };
    let qdir = sys.join("quantize").join(backend);
    let own = ver.file_name().map(|v| qdir.join(v));
    let dir = match own.filter(|d| d.is_dir()) {
        Some(d) => d,
        None => {
            let mut vs = dirs(&qdir);
            vs.sort_by(|a, b| cmp_version(a, b));
            match vs.last() {
                Some(v) => qdir.join(v),
                None => return Ok(None),
            }
        }
    };
    let mut t = crate::perfdb::tables::Tables::default();
    for name in ["computescale_perf", "scale_matrix_perf"] {
        let f = dir.join(format!("{name}.parquet"));
        if f.is_file() {
            t.load_file(name, &f)?;
        }
    }
    Ok(Some(t))
}

/// MoE rows: the distribution serving reads (power-law 1.2, else balanced, else power-law
/// 1.01, per shape and sharding) and the fastest kernel per point; each case routes its tokens
/// with the distribution its row was measured with.
fn moe_cases(fr: &Frame) -> Vec<OpCase> {
    type Key = (String, bool, i64, i64, i64, i64, i64, i64);
    let rank = |d: &str| match d {
        "power_law_1.2" => Some(0u8),
        "balanced" | "uniform" => Some(1),
        "power_law_1.01" => Some(2),
        _ => None,
    };
    let c = |n: &str| fr.col(n);
    let mut pts: BTreeMap<Key, (u8, BTreeMap<i64, f64>)> = BTreeMap::new();
    for r in 0..fr.rows {
        let Some(d) = rank(c("distribution").str(r)) else {
            continue;
        };
        let l = c("latency").float(r);
        if !(l.is_finite() && l > 0.0) {
            continue;
        }
        let nongated = fr
            .opt("kernel_source")
            .is_some_and(|k| k.str(r).contains("nongated"));
        let key = (
            c("moe_dtype").str(r).to_string(),
            nongated,
            c("topk").int(r),
            c("num_experts").int(r),
            c("hidden_size").int(r),
            c("inter_size").int(r),
            c("moe_tp_size").int(r),
            c("moe_ep_size").int(r),
        );
        let e = pts.entry(key).or_insert((d, BTreeMap::new()));
        if d < e.0 {
            *e = (d, BTreeMap::new());
        }
        if d == e.0 {
            let t = e.1.entry(c("num_tokens").int(r)).or_insert(f64::INFINITY);
            *t = t.min(l);
        }
    }
    let mut out = Vec::new();
    for ((q, nongated, k, e, h, i, tp, ep), (dd, toks)) in pts {
        let Ok(mq) = MoeQuant::parse(&q) else {
            continue;
        };
        if tp < 1 || ep < 1 || e < 1 || k < 1 {
            continue;
        }
        // The model routes as the table was measured.
        let (routing, dist) = match dd {
            0 => (Routing::PowerLaw(1.2), "power_law_1.2"),
            1 => (Routing::Balanced, "balanced"),
            _ => (Routing::PowerLaw(1.01), "power_law_1.01"),
        };
        let ng = if nongated { " nongated" } else { "" };
        for (t, l) in toks {
            if t <= 0 {
                continue;
            }
            out.push(OpCase {
                family: format!("moe/{}", mq.name()),
                op: OpKind::Moe {
                    hidden: h as f64,
                    inter: i as f64,
                    experts: e as f64,
                    top_k: k as f64,
                    etp: tp as f64,
                    ep: ep as f64,
                    gated: !nongated,
                    routing,
                },
                quant: QuantConfig {
                    moe: mq,
                    ..QuantConfig::default()
                },
                step: Step::context(1.0, t as f64, 0.0),
                measured_ms: l,
                shape: format!("tokens{t} h{h} I{i} E{e} top{k} tp{tp} ep{ep} {dist}{ng}"),
                nccl: false,
            });
        }
    }
    out
}

/// Error statistics of one (system, backend, version, family).
#[derive(Debug, Clone, Serialize)]
pub struct FamilyStats {
    pub system: String,
    pub backend: String,
    pub version: String,
    pub family: String,
    pub n: usize,
    pub mdape_pct: f64,
    pub bias_pct: f64,
    pub within10_pct: f64,
    pub within25_pct: f64,
    /// Largest errors: (shape, measured ms, predicted ms).
    #[serde(skip)]
    pub worst: Vec<(String, f64, f64)>,
}

/// Median of a non-empty slice (sorted in place).
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Stats of measured/predicted pairs (relative error `pred/meas − 1`).
pub fn stats_of(pairs: &[(f64, f64)]) -> (f64, f64, f64, f64) {
    let mut ape: Vec<f64> = pairs.iter().map(|(m, p)| (p / m - 1.0).abs()).collect();
    let mut sig: Vec<f64> = pairs.iter().map(|(m, p)| p / m - 1.0).collect();
    let n = pairs.len().max(1) as f64;
    let w10 = ape.iter().filter(|e| **e <= 0.10).count() as f64 / n * 100.0;
    let w25 = ape.iter().filter(|e| **e <= 0.25).count() as f64 / n * 100.0;
    (median(&mut ape) * 100.0, median(&mut sig) * 100.0, w10, w25)
}

/// The result of a check over many tables.
#[derive(Debug, Clone, Default)]
pub struct OpsReport {
    pub families: Vec<FamilyStats>,
    /// Table files whose system has no description (nothing to price them on).
    pub skipped_systems: Vec<String>,
    pub files: usize,
    pub points: usize,
}

/// One checked point, for `--rows-out`.
pub struct PointRow<'a> {
    pub file: &'a TableFile,
    pub case: &'a OpCase,
    pub predicted_ms: f64,
}

/// Run `f` over the files on all cores, in file order.
pub fn par_map<T: Send>(files: &[TableFile], f: impl Fn(&TableFile) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 16);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out: Vec<Option<T>> = (0..files.len()).map(|_| None).collect();
    let slots = std::sync::Mutex::new(&mut out);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= files.len() {
                    break;
                }
                let v = f(&files[i]);
                slots.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(v);
            });
        }
    });
    out.into_iter().flatten().collect()
}

/// Predict every point of `files` with the empirical model under `params` (each table with its
/// backend's kernel constants, isolated kernels: no graph overlap) and summarize per family.
/// `each` sees every point (in file order) when given.
pub fn check(
    files: &[TableFile],
    reg: &SystemRegistry,
    params: &super::EmpiricalParams,
    filter: &OpFilter,
    each: Option<&mut dyn FnMut(PointRow<'_>)>,
) -> Result<OpsReport> {
    let mut report = OpsReport::default();
    let usable: Vec<TableFile> = files
        .iter()
        .filter(|f| {
            let ok = reg.get(&f.system).is_ok();
            if !ok && !report.skipped_systems.contains(&f.system) {
                report.skipped_systems.push(f.system.clone());
            }
            ok
        })
        .cloned()
        .collect();
    let want_rows = each.is_some();
    type Done = Result<(Vec<OpCase>, Vec<f64>)>;
    let results: Vec<Done> = par_map(&usable, |tf| {
        let sys = reg.get(&tf.system)?;
        let src = super::EmpiricalSource::new(params.clone(), &tf.backend, 0.0);
        let src: &dyn PerfSource = &src;
        let mut cases = read_cases(tf)?;
        cases.retain(|c| filter.family_ok(&c.family));
        let preds = cases.iter().map(|c| c.predict_ms(src, sys)).collect();
        Ok((cases, preds))
    });
    let mut each = each;
    for (tf, r) in usable.iter().zip(results) {
        let (cases, preds) = r?;
        report.files += 1;
        report.points += cases.len();
        let mut by: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, c) in cases.iter().enumerate() {
            by.entry(c.family.as_str()).or_default().push(i);
        }
        for (fam, idx) in by {
            let pairs: Vec<(f64, f64)> = idx
                .iter()
                .map(|&i| (cases[i].measured_ms, preds[i]))
                .collect();
            let (mdape, bias, w10, w25) = stats_of(&pairs);
            let mut worst: Vec<usize> = idx.clone();
            worst.sort_by(|a, b| {
                let e = |i: usize| (preds[i] / cases[i].measured_ms).ln().abs();
                e(*b).total_cmp(&e(*a))
            });
            report.families.push(FamilyStats {
                system: tf.system.clone(),
                backend: tf.backend.clone(),
                version: tf.version.clone(),
                family: fam.to_string(),
                n: idx.len(),
                mdape_pct: mdape,
                bias_pct: bias,
                within10_pct: w10,
                within25_pct: w25,
                worst: worst
                    .into_iter()
                    .take(3)
                    .map(|i| (cases[i].shape.clone(), cases[i].measured_ms, preds[i]))
                    .collect(),
            });
        }
        if want_rows {
            if let Some(f) = each.as_deref_mut() {
                for (c, p) in cases.iter().zip(&preds) {
                    f(PointRow {
                        file: tf,
                        case: c,
                        predicted_ms: *p,
                    });
                }
            }
        }
    }
    report.families.sort_by(|a, b| {
        (&a.system, &a.backend, &a.family, &a.version)
            .cmp(&(&b.system, &b.backend, &b.family, &b.version))
    });
    Ok(report)
}

/// The active data root, or a typed error saying how to install one.
pub fn data_root() -> Result<PathBuf> {
    let dir = crate::perfdb::data_dir().ok_or_else(|| {
        AicfgError::PerfDbMissing("no data directory (set AICFG_DATA_DIR or HOME)".into())
    })?;
    crate::perfdb::active_root(&dir).ok_or_else(|| {
        AicfgError::PerfDbMissing(format!(
            "no measured op database installed under {} (run `aicfg data install`)",
            dir.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_hand_values() {
        // errors +5 %, −20 %, +50 %: |e| median 20 %, signed median +5 %.
        let (md, bias, w10, w25) = stats_of(&[(1.0, 1.05), (1.0, 0.8), (2.0, 3.0)]);
        assert!((md - 20.0).abs() < 1e-9);
        assert!((bias - 5.0).abs() < 1e-9);
        assert!((w10 - 100.0 / 3.0).abs() < 1e-9);
        assert!((w25 - 200.0 / 3.0).abs() < 1e-9);
    }
}
