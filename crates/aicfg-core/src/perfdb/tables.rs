//! The measured op tables of one (system, backend, version), indexed for queries.
//!
//! Each table is split into slices by its exact-match keys (docs/model.md §5.3) after the
//! normalizations (MHA `num_key_value_heads` → 0, absent `window_size` → 0, bf16/fp16 comm dtypes →
//! `half`); each slice is a [`Grid`] over the interpolation axes. String keys become small codes so a
//! query hashes a few integers and allocates nothing.
use super::grid::{Blend, Grid, Pt};
use super::read::{read_columns, Frame};
use crate::error::Result;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;

/// Multiply-rotate hasher for the small integer keys of the index (SipHash dominated load time).
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(*b as u64);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(i as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Dtype / label vocabulary of the tables; anything else is skipped at load.
const LABELS: &[&str] = &[
    "bfloat16",
    "fp8",
    "fp8_block",
    "nvfp4",
    "int4_wo",
    "int8_wo",
    "sq",
    "w4a16_mxfp4",
    "w4a8_mxfp4_mxfp8",
    "w4afp8",
    "half",
    "int8",
];

/// The label of a dtype code.
pub fn label(code: u8) -> &'static str {
    LABELS.get(code as usize).copied().unwrap_or("")
}

pub fn label_code(s: &str) -> Option<u8> {
    let s = match s {
        "float16" | "fp16" | "bf16" => "bfloat16",
        x => x,
    };
    LABELS.iter().position(|l| *l == s).map(|i| i as u8)
}

/// Communication dtypes collapse 16-bit formats into `half` (docs/model.md §5.3).
fn comm_code(s: &str) -> Option<u8> {
    match s {
        "bfloat16" | "float16" | "fp16" | "half" => label_code("half"),
        x => label_code(x),
    }
}

pub const DIST_BALANCED: u8 = 0;
pub const DIST_POWER_101: u8 = 1;
pub const DIST_POWER_12: u8 = 2;

fn dist_code(s: &str) -> Option<u8> {
    match s {
        "balanced" | "uniform" => Some(DIST_BALANCED),
        "power_law_1.01" => Some(DIST_POWER_101),
        "power_law_1.2" => Some(DIST_POWER_12),
        _ => None,
    }
}

pub const NCCL_ALL_GATHER: u8 = 0;
pub const NCCL_REDUCE_SCATTER: u8 = 1;
pub const NCCL_ALL_REDUCE: u8 = 2;
pub const NCCL_ALL_TO_ALL: u8 = 3;

fn nccl_op_code(s: &str) -> Option<u8> {
    match s {
        "all_gather" => Some(NCCL_ALL_GATHER),
        "reduce_scatter" => Some(NCCL_REDUCE_SCATTER),
        "all_reduce" => Some(NCCL_ALL_REDUCE),
        "alltoall" | "all_to_all" => Some(NCCL_ALL_TO_ALL),
        _ => None,
    }
}

/// Context attention: (attn dtype, kv dtype, n_kv or 0 for MHA, head_dim, window or 0).
pub type CtxAttnKey = (u8, u8, i64, i64, i64);
/// Generation attention: (kv dtype, n_kv or 0, head_dim, window or 0).
pub type GenAttnKey = (u8, i64, i64, i64);
/// MoE: (dtype, distribution, non-gated, topk, experts, hidden, full inter, moe_tp, moe_ep).
pub type MoeKey = (u8, u8, bool, i64, i64, i64, i64, i64, i64);
/// MoE shape without sharding: (dtype, non-gated, topk, experts, hidden, inter).
pub type MoeShape = (u8, bool, i64, i64, i64, i64);
/// MLA BMM: (dtype, post (else pre), heads).
pub type BmmKey = (u8, bool, i64);
/// NCCL: (dtype, op, gpus).
pub type NcclKey = (u8, u8, i64);

/// Axis blending per table kind.
pub const GEMM_BLEND: [Blend; 3] = [Blend::Linear, Blend::Linear, Blend::Linear];
pub const CTX_BLEND: [Blend; 3] = [Blend::Linear, Blend::Sqrt, Blend::Linear];
pub const GEN_BLEND: [Blend; 3] = [Blend::Linear, Blend::Linear, Blend::Linear];
pub const ONE_D: [Blend; 1] = [Blend::Linear];

/// Every table of one (system, backend, version), each slice a grid.
#[derive(Debug, Default, PartialEq)]
pub struct Tables {
    /// GEMM per dtype, axes (n, k, m).
    pub gemm: FastMap<u8, Grid>,
    /// Axes (heads, sequence, batch).
    pub ctx_attn: FastMap<CtxAttnKey, Grid>,
    /// Axes (heads, batch, s).
    pub gen_attn: FastMap<GenAttnKey, Grid>,
    /// Context MLA per kv dtype, axes (heads, sequence, batch).
    pub ctx_mla: FastMap<u8, Grid>,
    /// Generation MLA per kv dtype, axes (heads, batch, s).
    pub gen_mla: FastMap<u8, Grid>,
    /// Axis tokens.
    pub mla_bmm: FastMap<BmmKey, Grid>,
    /// Axis tokens (all attention-DP ranks' tokens).
    pub moe: FastMap<MoeKey, Grid>,
    /// Custom all-reduce per (GPU count, launched eagerly), axis message elements.
    pub allreduce: FastMap<(i64, bool), Grid>,
    /// NCCL collectives, axis message elements.
    pub nccl: FastMap<NcclKey, Grid>,
    /// fp8 activation quantization kernels (false: compute_scale, true: scale_matrix), axes (m, k).
    pub quantize: FastMap<bool, Grid>,
    /// MoE shardings (moe_tp, moe_ep) collected per (dtype, non-gated, topk, experts, hidden,
    /// inter), for sharding fallbacks.
    pub moe_sharding_index: FastMap<MoeShape, Vec<(i64, i64)>>,
    /// MoE points of every version, until `finish` keeps the fastest per point.
    moe_raw: FastMap<MoeKey, Points>,
    /// Rows read, files read.
    pub rows: usize,
    pub files: Vec<String>,
}

type Points = Vec<(Pt, f64)>;

/// Group rows into slices; `f` maps one row to (key, coordinates), or None to skip it.
fn slices<K: std::hash::Hash + Eq>(
    fr: &Frame,
    mut f: impl FnMut(usize) -> Option<(K, Pt)>,
) -> FastMap<K, Points> {
    let lat = fr.col("latency");
    let mut out: FastMap<K, Points> = FastMap::default();
    for i in 0..fr.rows {
        let l = lat.float(i);
        if !(l.is_finite() && l > 0.0) {
            continue;
        }
        if let Some((k, x)) = f(i) {
            out.entry(k).or_default().push((x, l));
        }
    }
    out
}

/// Add slices that the newer versions already loaded did not provide ("first wins").
fn merge<K: std::hash::Hash + Eq>(
    dst: &mut FastMap<K, Grid>,
    src: FastMap<K, Points>,
    dims: usize,
) {
    for (k, pts) in src {
        dst.entry(k).or_insert_with(|| Grid::build(dims, pts));
    }
}

/// As `merge`, keeping the fastest measurement per point across kernels of one slice (the
/// framework's autotuner / dispatcher picks the best kernel it has).
fn merge_min<K: std::hash::Hash + Eq + Clone>(
    dst: &mut FastMap<K, Grid>,
    src: FastMap<K, Points>,
    dims: usize,
) {
    for (k, mut pts) in src {
        if dst.contains_key(&k) {
            continue;
        }
        pts.sort_by(|a, b| {
            a.0.iter()
                .zip(&b.0)
                .map(|(x, y)| x.total_cmp(y))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.1.total_cmp(&b.1))
        });
        dst.insert(k, Grid::build(dims, pts));
    }
}

impl Tables {
    /// Index the MoE shardings (call after the last file is loaded).
    pub fn finish(&mut self) {
        let raw = std::mem::take(&mut self.moe_raw);
        merge_min(&mut self.moe, raw, 1);
        self.moe_sharding_index.clear();
        for k in self.moe.keys() {
            let v = self
                .moe_sharding_index
                .entry((k.0, k.2, k.3, k.4, k.5, k.6))
                .or_default();
            if !v.contains(&(k.7, k.8)) {
                v.push((k.7, k.8));
            }
        }
        for v in self.moe_sharding_index.values_mut() {
            v.sort();
        }
    }

    /// Collected (moe_tp, moe_ep) pairs of one MoE shape.
    pub fn moe_shardings(
        &self,
        q: u8,
        nongated: bool,
        topk: f64,
        experts: f64,
        hidden: f64,
        inter: f64,
    ) -> Vec<(i64, i64)> {
        self.moe_sharding_index
            .get(&(
                q,
                nongated,
                topk as i64,
                experts as i64,
                hidden as i64,
                inter as i64,
            ))
            .cloned()
            .unwrap_or_default()
    }

    /// Load one table file into the matching index; slices already present win.
    pub fn load_file(&mut self, table: &str, path: &Path) -> Result<()> {
        let before = self.rows;
        match table {
            "gemm_perf" => {
                let fr = read_columns(path, &["gemm_dtype", "m", "n", "k", "latency"], &[])?;
                self.rows += fr.rows;
                let (c_n, c_k, c_m, c_d) =
                    (fr.col("n"), fr.col("k"), fr.col("m"), fr.col("gemm_dtype"));
                let s = slices(&fr, |r| {
                    let q = label_code(c_d.str(r))?;
                    let x = [c_n.int(r) as f64, c_k.int(r) as f64, c_m.int(r) as f64];
                    Some((q, x))
                });
                merge(&mut self.gemm, s, 3);
            }
            "context_attention_perf" | "generation_attention_perf" => {
                let fr = read_columns(
                    path,
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
                self.rows += fr.rows;
                let c_attn_dtype = fr.col("attn_dtype");
                let c_batch_size = fr.col("batch_size");
                let c_head_dim = fr.col("head_dim");
                let c_isl = fr.col("isl");
                let c_kv_cache_dtype = fr.col("kv_cache_dtype");
                let c_num_heads = fr.col("num_heads");
                let c_num_key_value_heads = fr.col("num_key_value_heads");
                let win = |r: usize| fr.opt("window_size").map_or(0, |c| c.int(r)).max(0);
                let step = |r: usize| fr.opt("step").map_or(0, |c| c.int(r));
                let nkv = |r: usize| {
                    let (n, kv) = (c_num_heads.int(r), c_num_key_value_heads.int(r));
                    if kv == n {
                        0
                    } else {
                        kv
                    }
                };
                if table == "context_attention_perf" {
                    let s = slices(&fr, |r| {
                        let a = label_code(c_attn_dtype.str(r))?;
                        let kv = label_code(c_kv_cache_dtype.str(r))?;
                        let key = (a, kv, nkv(r), c_head_dim.int(r), win(r));
                        let x = [
                            c_num_heads.int(r) as f64,
                            (c_isl.int(r) + step(r)) as f64,
                            c_batch_size.int(r) as f64,
                        ];
                        Some((key, x))
                    });
                    merge(&mut self.ctx_attn, s, 3);
                } else {
                    let s = slices(&fr, |r| {
                        let kv = label_code(c_kv_cache_dtype.str(r))?;
                        let key = (kv, nkv(r), c_head_dim.int(r), win(r));
                        let x = [
                            c_num_heads.int(r) as f64,
                            c_batch_size.int(r) as f64,
                            (c_isl.int(r) + step(r)) as f64,
                        ];
                        Some((key, x))
                    });
                    merge(&mut self.gen_attn, s, 3);
                }
            }
            "context_mla_perf" | "generation_mla_perf" => {
                let fr = read_columns(
                    path,
                    &[
                        "kv_cache_dtype",
                        "num_heads",
                        "batch_size",
                        "isl",
                        "latency",
                    ],
                    &["step"],
                )?;
                self.rows += fr.rows;
                let c_batch_size = fr.col("batch_size");
                let c_isl = fr.col("isl");
                let c_kv_cache_dtype = fr.col("kv_cache_dtype");
                let c_num_heads = fr.col("num_heads");
                let step = |r: usize| fr.opt("step").map_or(0, |c| c.int(r));
                let ctx = table == "context_mla_perf";
                let s = slices(&fr, |r| {
                    let kv = label_code(c_kv_cache_dtype.str(r))?;
                    let (h, b, s) = (
                        c_num_heads.int(r) as f64,
                        c_batch_size.int(r) as f64,
                        (c_isl.int(r) + step(r)) as f64,
                    );
                    Some((kv, if ctx { [h, s, b] } else { [h, b, s] }))
                });
                merge(
                    if ctx {
                        &mut self.ctx_mla
                    } else {
                        &mut self.gen_mla
                    },
                    s,
                    3,
                );
            }
            "mla_bmm_perf" => {
                let fr = read_columns(
                    path,
                    &["op_name", "bmm_dtype", "num_tokens", "num_heads", "latency"],
                    &[],
                )?;
                self.rows += fr.rows;
                let c_bmm_dtype = fr.col("bmm_dtype");
                let c_num_heads = fr.col("num_heads");
                let c_num_tokens = fr.col("num_tokens");
                let c_op_name = fr.col("op_name");
                let s = slices(&fr, |r| {
                    let q = label_code(c_bmm_dtype.str(r))?;
                    let post = match c_op_name.str(r) {
                        "mla_gen_post" => true,
                        "mla_gen_pre" => false,
                        _ => return None,
                    };
                    Some((
                        (q, post, c_num_heads.int(r)),
                        [c_num_tokens.int(r) as f64, 0.0, 0.0],
                    ))
                });
                merge(&mut self.mla_bmm, s, 1);
            }
            "moe_perf" => {
                let fr = read_columns(
                    path,
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
                self.rows += fr.rows;
                let c_distribution = fr.col("distribution");
                let c_hidden_size = fr.col("hidden_size");
                let c_inter_size = fr.col("inter_size");
                let c_moe_dtype = fr.col("moe_dtype");
                let c_moe_ep_size = fr.col("moe_ep_size");
                let c_moe_tp_size = fr.col("moe_tp_size");
                let c_num_experts = fr.col("num_experts");
                let c_num_tokens = fr.col("num_tokens");
                let c_topk = fr.col("topk");
                let s = slices(&fr, |r| {
                    let q = label_code(c_moe_dtype.str(r))?;
                    let d = dist_code(c_distribution.str(r))?;
                    let nongated = fr
                        .opt("kernel_source")
                        .is_some_and(|c| c.str(r).contains("nongated"));
                    let key = (
                        q,
                        d,
                        nongated,
                        c_topk.int(r),
                        c_num_experts.int(r),
                        c_hidden_size.int(r),
                        c_inter_size.int(r),
                        c_moe_tp_size.int(r),
                        c_moe_ep_size.int(r),
                    );
                    Some((key, [c_num_tokens.int(r) as f64, 0.0, 0.0]))
                });
                // Several MoE kernels are collected per format and shape, within a version and
                // across versions (vLLM/SGLang switch backends between releases); the dispatcher
                // is configured for the fast one, so every version's points meet and the fastest
                // per token count is kept (see `finish`).
                for (k, mut pts) in s {
                    self.moe_raw.entry(k).or_default().append(&mut pts);
                }
            }
            "custom_allreduce_perf" => {
                let fr = read_columns(
                    path,
                    &["allreduce_dtype", "num_gpus", "message_size", "latency"],
                    &["implementation", "backend"],
                )?;
                self.rows += fr.rows;
                let c_allreduce_dtype = fr.col("allreduce_dtype");
                let c_message_size = fr.col("message_size");
                let c_num_gpus = fr.col("num_gpus");
                // vLLM/SGLang collect the kernel inside a CUDA graph (`*_graph`) and launched
                // eagerly (`*_eager`); the two are kept apart.
                let eager = |r: usize| {
                    ["implementation", "backend"]
                        .iter()
                        .any(|c| fr.opt(c).is_some_and(|c| c.str(r).contains("eager")))
                };
                let s = slices(&fr, |r| {
                    (comm_code(c_allreduce_dtype.str(r))? == comm_code("half")?).then_some(())?;
                    Some((
                        (c_num_gpus.int(r), eager(r)),
                        [c_message_size.int(r) as f64, 0.0, 0.0],
                    ))
                });
                merge_min(&mut self.allreduce, s, 1);
            }
            "nccl_perf" => {
                let fr = read_columns(
                    path,
                    &[
                        "nccl_dtype",
                        "op_name",
                        "num_gpus",
                        "message_size",
                        "latency",
                    ],
                    &[],
                )?;
                self.rows += fr.rows;
                let c_message_size = fr.col("message_size");
                let c_nccl_dtype = fr.col("nccl_dtype");
                let c_num_gpus = fr.col("num_gpus");
                let c_op_name = fr.col("op_name");
                let s = slices(&fr, |r| {
                    let q = comm_code(c_nccl_dtype.str(r))?;
                    let op = nccl_op_code(c_op_name.str(r))?;
                    Some((
                        (q, op, c_num_gpus.int(r)),
                        [c_message_size.int(r) as f64, 0.0, 0.0],
                    ))
                });
                merge_min(&mut self.nccl, s, 1);
            }
            "computescale_perf" | "scale_matrix_perf" => {
                let fr = read_columns(path, &["m", "k", "quant_dtype", "latency"], &[])?;
                self.rows += fr.rows;
                let c_k = fr.col("k");
                let c_m = fr.col("m");
                let c_quant_dtype = fr.col("quant_dtype");
                let sm = table == "scale_matrix_perf";
                let s = slices(&fr, |r| {
                    (c_quant_dtype.str(r) == "fp8").then_some(())?;
                    Some((sm, [c_m.int(r) as f64, c_k.int(r) as f64, 0.0]))
                });
                merge(&mut self.quantize, s, 2);
            }
            _ => return Ok(()),
        }
        if self.rows > before {
            self.files.push(path.display().to_string());
        }
        Ok(())
    }
}

/// The table files the reader understands: (op family directory, table name).
pub const TABLE_FILES: &[(&str, &str)] = &[
    ("gemm", "gemm_perf"),
    ("attention", "context_attention_perf"),
    ("attention", "generation_attention_perf"),
    ("mla", "context_mla_perf"),
    ("mla", "generation_mla_perf"),
    ("mla_bmm", "mla_bmm_perf"),
    ("moe", "moe_perf"),
    ("comm", "custom_allreduce_perf"),
    ("quantize", "computescale_perf"),
    ("quantize", "scale_matrix_perf"),
];
