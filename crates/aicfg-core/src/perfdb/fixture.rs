//! Tiny synthetic op databases for tests (a few rows per table, same layout and schema as the
//! real one). Latencies follow simple closed forms so tests can check interpolation by hand.
use parquet::basic::{Compression, ZstdLevel};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use std::path::Path;
use std::sync::Arc;

/// One column of a fixture table.
pub enum FixCol {
    Str(Vec<String>),
    Int(Vec<i64>),
    F64(Vec<f64>),
}

/// Write a zstd parquet file with the given columns (all required).
pub fn write_table(path: &Path, cols: &[(&str, FixCol)]) -> std::io::Result<()> {
    let fields: Vec<String> = cols
        .iter()
        .map(|(n, c)| match c {
            FixCol::Str(_) => format!("required binary {n} (UTF8);"),
            FixCol::Int(_) => format!("required int64 {n};"),
            FixCol::F64(_) => format!("required double {n};"),
        })
        .collect();
    let schema = parse_message_type(&format!("message t {{ {} }}", fields.join(" ")))
        .map_err(std::io::Error::other)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    let file = std::fs::File::create(path)?;
    let mut w = SerializedFileWriter::new(file, Arc::new(schema), Arc::new(props))
        .map_err(std::io::Error::other)?;
    let mut rg = w.next_row_group().map_err(std::io::Error::other)?;
    let mut i = 0;
    while let Some(mut col) = rg.next_column().map_err(std::io::Error::other)? {
        let res = match &cols[i].1 {
            FixCol::Str(v) => {
                let vals: Vec<ByteArray> = v.iter().map(|s| ByteArray::from(s.as_str())).collect();
                col.typed::<ByteArrayType>().write_batch(&vals, None, None)
            }
            FixCol::Int(v) => col.typed::<Int64Type>().write_batch(v, None, None),
            FixCol::F64(v) => col.typed::<DoubleType>().write_batch(v, None, None),
        };
        res.map_err(std::io::Error::other)?;
        col.close().map_err(std::io::Error::other)?;
        i += 1;
    }
    rg.close().map_err(std::io::Error::other)?;
    w.close().map_err(std::io::Error::other)?;
    Ok(())
}

fn s(v: &[&str]) -> FixCol {
    FixCol::Str(v.iter().map(|x| x.to_string()).collect())
}

fn rep(x: &str, n: usize) -> FixCol {
    FixCol::Str(vec![x.to_string(); n])
}

/// Fixture GEMM latency (ms): 5 µs + m·n·k / 4e11.
pub fn gemm_ms(m: f64, n: f64, k: f64) -> f64 {
    0.005 + m * n * k / 4e11
}

/// Fixture context attention (ms): 10 µs + b·heads·S² / 1e9.
pub fn ctx_ms(heads: f64, s: f64, b: f64) -> f64 {
    0.01 + b * heads * s * s / 1e9
}

/// Fixture decode attention (ms): 4 µs + b·heads·s / 1e8.
pub fn gen_ms(heads: f64, b: f64, s: f64) -> f64 {
    0.004 + b * heads * s / 1e8
}

/// Fixture MoE (ms): 20 µs + tokens / 1e4.
pub fn moe_ms(t: f64) -> f64 {
    0.02 + t / 1e4
}

/// Fixture all-reduce (ms): 8 µs + elements / 1e8.
pub fn ar_ms(e: f64) -> f64 {
    0.008 + e / 1e8
}

/// Write a database for `h200_sxm`/`trtllm` under `root` (the `data` directory): version 1.0.0
/// has GEMM, attention, MoE and all-reduce; version 1.1.0 has only a GEMM table (bf16, other
/// latencies ×2) so backward fill and "newest wins" can be told apart. Returns the rows written.
pub fn write_fixture_db(root: &Path) -> std::io::Result<usize> {
    let base = root.join("h200_sxm");
    let meta = "common: [framework, version, device, op_name, kernel_source]\n";
    let mut rows = 0;
    for (ver, scale, dtypes) in [
        ("1.0.0", 1.0, &["bfloat16", "fp8"][..]),
        ("1.1.0", 2.0, &["bfloat16"][..]),
    ] {
        let (mut d, mut m, mut n, mut k, mut l) = (vec![], vec![], vec![], vec![], vec![]);
        for dt in dtypes {
            for nn in [1024i64, 4096] {
                for kk in [1024i64, 4096] {
                    for mm in [1i64, 16, 256] {
                        d.push(dt.to_string());
                        m.push(mm);
                        n.push(nn);
                        k.push(kk);
                        l.push(scale * gemm_ms(mm as f64, nn as f64, kk as f64));
                    }
                }
            }
        }
        rows += l.len();
        let dir = base.join("gemm/trtllm").join(ver);
        write_table(
            &dir.join("gemm_perf.parquet"),
            &[
                ("framework", rep("trtllm", l.len())),
                ("gemm_dtype", FixCol::Str(d)),
                ("m", FixCol::Int(m)),
                ("n", FixCol::Int(n)),
                ("k", FixCol::Int(k)),
                ("latency", FixCol::F64(l)),
            ],
        )?;
        std::fs::write(dir.join("collection_meta.yaml"), meta)?;
    }
    let v = base.join("attention/trtllm/1.0.0");
    // Context: heads {8, 16}, S {128, 512}, batch {1, 4}; GQA with 8 KV heads (16-head rows) and
    // MHA (8-head rows store n_kv = 8 = heads).
    let (mut h, mut kv, mut isl, mut b, mut l) = (vec![], vec![], vec![], vec![], vec![]);
    for hh in [8i64, 16] {
        for ss in [128i64, 512] {
            for bb in [1i64, 4] {
                h.push(hh);
                kv.push(8);
                isl.push(ss);
                b.push(bb);
                l.push(ctx_ms(hh as f64, ss as f64, bb as f64));
            }
        }
    }
    let nrow = l.len();
    rows += nrow;
    write_table(
        &v.join("context_attention_perf.parquet"),
        &[
            ("batch_size", FixCol::Int(b)),
            ("isl", FixCol::Int(isl)),
            ("num_heads", FixCol::Int(h)),
            ("num_key_value_heads", FixCol::Int(kv)),
            ("head_dim", FixCol::Int(vec![128; nrow])),
            ("window_size", FixCol::Int(vec![0; nrow])),
            ("attn_dtype", rep("bfloat16", nrow)),
            ("kv_cache_dtype", rep("bfloat16", nrow)),
            ("step", FixCol::Int(vec![0; nrow])),
            ("latency", FixCol::F64(l)),
        ],
    )?;
    let (mut h, mut b, mut step, mut l) = (vec![], vec![], vec![], vec![]);
    for hh in [8i64, 16] {
        for bb in [1i64, 8] {
            for st in [127i64, 1023] {
                h.push(hh);
                b.push(bb);
                step.push(st);
                l.push(gen_ms(hh as f64, bb as f64, (st + 1) as f64));
            }
        }
    }
    let nrow = l.len();
    rows += nrow;
    write_table(
        &v.join("generation_attention_perf.parquet"),
        &[
            ("batch_size", FixCol::Int(b)),
            ("isl", FixCol::Int(vec![1; nrow])),
            ("num_heads", FixCol::Int(h)),
            ("num_key_value_heads", FixCol::Int(vec![8; nrow])),
            ("head_dim", FixCol::Int(vec![128; nrow])),
            ("attn_dtype", rep("bfloat16", nrow)),
            ("kv_cache_dtype", rep("bfloat16", nrow)),
            ("step", FixCol::Int(step)),
            ("latency", FixCol::F64(l)),
        ],
    )?;
    std::fs::write(v.join("collection_meta.yaml"), meta)?;
    let toks = [1i64, 64, 1024];
    rows += toks.len();
    write_table(
        &base.join("moe/trtllm/1.0.0/moe_perf.parquet"),
        &[
            ("kernel_source", rep("moe_torch_flow", 3)),
            ("moe_dtype", rep("bfloat16", 3)),
            ("num_tokens", FixCol::Int(toks.to_vec())),
            ("hidden_size", FixCol::Int(vec![2048; 3])),
            ("inter_size", FixCol::Int(vec![768; 3])),
            ("topk", FixCol::Int(vec![8; 3])),
            ("num_experts", FixCol::Int(vec![128; 3])),
            ("moe_tp_size", FixCol::Int(vec![1; 3])),
            ("moe_ep_size", FixCol::Int(vec![1; 3])),
            ("distribution", s(&["balanced", "balanced", "balanced"])),
            (
                "latency",
                FixCol::F64(toks.iter().map(|t| moe_ms(*t as f64)).collect()),
            ),
        ],
    )?;
    let sizes = [1024i64, 1 << 20];
    rows += sizes.len();
    write_table(
        &base.join("comm/trtllm/1.0.0/custom_allreduce_perf.parquet"),
        &[
            ("allreduce_dtype", rep("bfloat16", 2)),
            ("num_gpus", FixCol::Int(vec![2; 2])),
            ("message_size", FixCol::Int(sizes.to_vec())),
            (
                "latency",
                FixCol::F64(sizes.iter().map(|e| ar_ms(*e as f64)).collect()),
            ),
        ],
    )?;
    Ok(rows)
}
