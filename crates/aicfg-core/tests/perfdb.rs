//! The measured op database: loading, interpolation rules, modes, bad input, install.
use aicfg_core::hardware::SystemRegistry;
use aicfg_core::model::graph::{CommOp, OpKind};
use aicfg_core::perf::Lookup;
use aicfg_core::perf::{EmpiricalSource, PerfSource, Shape, SiliconSource, Work, WorkClass};
use aicfg_core::perfdb::fixture::{self, ar_ms, ctx_ms, gemm_ms, gen_ms, moe_ms, FixCol};
use aicfg_core::perfdb::install::{self, Source};
use aicfg_core::perfdb::{self, OpDb};
use aicfg_core::quant::{ComputeDtype, GemmQuant};
use aicfg_core::AicfgError;
use std::path::Path;
use std::sync::Arc;

fn fixture_root() -> (tempfile::TempDir, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("data");
    fixture::write_fixture_db(&root).unwrap();
    (t, root)
}

fn load(root: &Path, version: Option<&str>) -> OpDb {
    let key = perfdb::resolve(root, "h200_sxm", "trtllm", version).unwrap();
    OpDb::load(&key, None).unwrap()
}

fn sys() -> aicfg_core::SystemSpec {
    SystemRegistry::builtin().get("h200_sxm").unwrap().clone()
}

fn gemm(n: f64, k: f64, q: GemmQuant) -> OpKind {
    OpKind::Gemm {
        n,
        k,
        quant: q,
        last_token_only: false,
    }
}

fn gemm_work(m: f64) -> Work {
    let mut w = Work::new(WorkClass::Gemm, 0.0, 0.0, ComputeDtype::Bf16);
    w.m = m;
    w
}

fn hit(l: Lookup) -> f64 {
    match l {
        Lookup::Hit(v) => v,
        other => panic!("expected a hit, got {other:?}"),
    }
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() <= 1e-9 * b.abs().max(1e-6), "{a} vs {b}");
}

#[test]
fn gemm_exact_inside_above_below() {
    let (_t, root) = fixture_root();
    let db = load(&root, Some("1.0.0"));
    let s = sys();
    let q = |n, k, m| hit(db.lookup(&s, &gemm(n, k, GemmQuant::Bfloat16), &gemm_work(m)));
    close(q(1024.0, 1024.0, 16.0), gemm_ms(16.0, 1024.0, 1024.0));
    // Linear along m and along n (the fixture is linear in each, so interpolation is exact).
    close(q(1024.0, 1024.0, 136.0), gemm_ms(136.0, 1024.0, 1024.0));
    close(q(2560.0, 4096.0, 16.0), gemm_ms(16.0, 2560.0, 4096.0));
    // Above the measured m: utilization held → grows, but no faster than the work.
    let v256 = q(1024.0, 1024.0, 256.0);
    let v1k = q(1024.0, 1024.0, 1024.0);
    assert!(v1k > v256 && v1k < 4.01 * v256, "{v256} {v1k}");
    // A fractional (expected) row count prices that fraction of a one-row GEMM.
    close(q(1024.0, 1024.0, 0.25), 0.25 * gemm_ms(1.0, 1024.0, 1024.0));
}

#[test]
fn newest_version_answers_and_older_versions_fill_gaps() {
    let (_t, root) = fixture_root();
    let db = load(&root, None);
    assert_eq!(db.key.version, "1.1.0");
    let s = sys();
    // bf16 GEMM from 1.1.0 (latencies ×2 there), fp8 GEMM only in 1.0.0.
    let bf = hit(db.lookup(
        &s,
        &gemm(1024.0, 1024.0, GemmQuant::Bfloat16),
        &gemm_work(16.0),
    ));
    close(bf, 2.0 * gemm_ms(16.0, 1024.0, 1024.0));
    let mut w = gemm_work(16.0);
    w.dtype = ComputeDtype::Fp8;
    let fp8 = hit(db.lookup(&s, &gemm(1024.0, 1024.0, GemmQuant::Fp8), &w));
    close(fp8, gemm_ms(16.0, 1024.0, 1024.0));
    assert!(db.tables.ctx_attn.len() == 2 && !db.tables.moe.is_empty());
}

fn attn(heads: f64, kv_heads: f64) -> OpKind {
    OpKind::Attention {
        heads,
        kv_heads,
        qk_dim: 128.0,
        v_dim: 128.0,
        window: None,
        kv_elems_per_token: 2.0 * kv_heads * 128.0,
        latent: false,
    }
}

fn attn_work(class: WorkClass, batch: f64, seq: f64, prefix: f64) -> Work {
    let mut w = Work::new(class, 0.0, 0.0, ComputeDtype::Bf16);
    w.shape = Shape {
        batch,
        seq,
        prefix,
        tokens: 1.0,
        quant: "bfloat16",
        kv_quant: "bfloat16",
    };
    w
}

#[test]
fn context_attention_blends_sqrt_on_sequence_and_corrects_prefix() {
    let (_t, root) = fixture_root();
    let db = load(&root, Some("1.0.0"));
    let s = sys();
    let op = attn(16.0, 8.0);
    let exact = hit(db.lookup(
        &s,
        &op,
        &attn_work(WorkClass::ContextAttention, 4.0, 512.0, 0.0),
    ));
    close(exact, ctx_ms(16.0, 512.0, 4.0));
    // S = 320 is halfway between 128 and 512: blend the square roots.
    let (lo, hi) = (ctx_ms(16.0, 128.0, 1.0), ctx_ms(16.0, 512.0, 1.0));
    let mid = (0.5 * (lo.sqrt() + hi.sqrt())).powi(2);
    close(
        hit(db.lookup(
            &s,
            &op,
            &attn_work(WorkClass::ContextAttention, 1.0, 320.0, 0.0),
        )),
        mid,
    );
    // 256 new tokens after a 64-token prefix: the S = 320 value × (S² − p²)/S².
    let frac = (320.0f64.powi(2) - 64.0f64.powi(2)) / 320.0f64.powi(2);
    close(
        hit(db.lookup(
            &s,
            &op,
            &attn_work(WorkClass::ContextAttention, 1.0, 256.0, 64.0),
        )),
        mid * frac,
    );
    // Decode: s = 576 between the measured 128 and 1024, linear.
    let g = hit(db.lookup(
        &s,
        &op,
        &attn_work(WorkClass::GenerationAttention, 8.0, 576.0, 0.0),
    ));
    close(g, gen_ms(16.0, 8.0, 576.0));
    // KV heads never measured → a miss, not a guess.
    assert!(matches!(
        db.lookup(
            &s,
            &attn(16.0, 2.0),
            &attn_work(WorkClass::ContextAttention, 1.0, 128.0, 0.0)
        ),
        Lookup::Miss(_)
    ));
}

fn moe_op(ep: f64) -> OpKind {
    OpKind::Moe {
        hidden: 2048.0,
        inter: 768.0,
        experts: 128.0,
        top_k: 8.0,
        etp: 1.0,
        ep,
        gated: true,
        routing: aicfg_core::model::graph::Routing::SERVING,
    }
}

fn moe_work(tokens: f64) -> Work {
    let mut w = Work::new(WorkClass::Moe, 0.0, 0.0, ComputeDtype::Bf16);
    w.shape.tokens = tokens;
    w.shape.quant = "bfloat16";
    w
}

fn comm(gpus: u32) -> (OpKind, Work) {
    let op = OpKind::Comm {
        op: CommOp::AllReduce,
        gpus,
        elems_per_token: 1024.0,
        bytes_per_elem: 2.0,
    };
    let mut w = Work::new(
        WorkClass::Comm(CommOp::AllReduce),
        0.0,
        2048.0 * 1024.0,
        ComputeDtype::Bf16,
    );
    w.gpus = gpus;
    (op, w)
}

#[test]
fn moe_and_allreduce_tables() {
    let (_t, root) = fixture_root();
    let db = load(&root, Some("1.0.0"));
    let s = sys();
    close(
        hit(db.lookup(&s, &moe_op(1.0), &moe_work(64.0))),
        moe_ms(64.0),
    );
    close(
        hit(db.lookup(&s, &moe_op(1.0), &moe_work(544.0))),
        moe_ms(544.0),
    );
    assert!(matches!(
        db.lookup(&s, &moe_op(2.0), &moe_work(64.0)),
        Lookup::Miss(_)
    ));
    // 1024 elements measured on 2 GPUs.
    let (op, w) = comm(2);
    let mut w1 = w;
    w1.bytes = 2048.0;
    close(hit(db.lookup(&s, &op, &w1)), ar_ms(1024.0));
    // 4 GPUs not measured: the 2-GPU value plus the extra wire time of the larger ring
    // (all-reduce sends 2·(g−1)/g of the payload: 3072 B instead of 2048 B, over NVLink).
    let (op4, mut w4) = comm(4);
    w4.bytes = 2048.0;
    let extra = (3072.0 / s.group_bw(4) - 2048.0 / s.group_bw(2)) * 1e3;
    close(hit(db.lookup(&s, &op4, &w4)), ar_ms(1024.0) + extra);
}

#[test]
fn silicon_fails_on_a_miss_hybrid_falls_back() {
    let (_t, root) = fixture_root();
    let db = Arc::new(load(&root, Some("1.0.0")));
    let s = sys();
    let emp = EmpiricalSource::embedded();
    let strict = SiliconSource::new(db.clone(), emp.clone(), true);
    let (v, tag) = strict.time_tagged(&s, &moe_op(2.0), &moe_work(64.0));
    assert!(v.is_nan() && tag == "silicon");
    assert!(strict.take_miss().unwrap().contains("no MoE data"));
    let hybrid = SiliconSource::new(db, emp.clone(), false);
    let (v, tag) = hybrid.time_tagged(&s, &moe_op(2.0), &moe_work(64.0));
    assert_eq!(tag, "empirical");
    assert_eq!(v, emp.time_ms(&s, &moe_op(2.0), &moe_work(64.0)));
    let (_, tag) = hybrid.time_tagged(&s, &moe_op(1.0), &moe_work(64.0));
    assert_eq!(tag, "silicon");
    // Elementwise ops have no table: empirical answers in both modes, no miss recorded.
    let mem = OpKind::Memory {
        bytes_per_token: 8.0,
    };
    let w = Work::new(WorkClass::Memory, 0.0, 1e6, ComputeDtype::Bf16);
    assert_eq!(strict.time_tagged(&s, &mem, &w).1, "empirical");
    assert!(strict.take_miss().is_none());
}

fn load_err(root: &Path) -> String {
    let key = perfdb::resolve(root, "h200_sxm", "trtllm", Some("1.0.0")).unwrap();
    match OpDb::load(&key, None) {
        Err(e @ AicfgError::PerfData { .. }) => e.to_string(),
        other => panic!("expected a PerfData error, got {other:?}"),
    }
}

#[test]
fn corrupt_truncated_and_incomplete_tables_are_clear_errors() {
    let (_t, root) = fixture_root();
    let f = root.join("h200_sxm/gemm/trtllm/1.0.0/gemm_perf.parquet");
    let good = std::fs::read(&f).unwrap();
    std::fs::write(&f, b"this is not parquet at all").unwrap();
    let e = load_err(&root);
    assert!(
        e.contains("gemm_perf.parquet") && e.contains("not a readable parquet"),
        "{e}"
    );
    std::fs::write(&f, &good[..good.len() / 2]).unwrap();
    let e = load_err(&root);
    assert!(e.contains("gemm_perf.parquet"), "{e}");
    // A page body overwritten in the middle (footer intact).
    let mut bad = good.clone();
    for b in bad.iter_mut().skip(8).take(good.len() / 3) {
        *b = 0xAB;
    }
    std::fs::write(&f, &bad).unwrap();
    let e = load_err(&root);
    assert!(e.contains("gemm_perf.parquet"), "{e}");
    fixture::write_table(
        &f,
        &[
            ("gemm_dtype", FixCol::Str(vec!["bfloat16".into()])),
            ("m", FixCol::Int(vec![1])),
            ("n", FixCol::Int(vec![1])),
            ("k", FixCol::Int(vec![1])),
        ],
    )
    .unwrap();
    let e = load_err(&root);
    assert!(e.contains("missing column 'latency'"), "{e}");
}

#[test]
fn unknown_system_backend_version_list_what_is_installed() {
    let (_t, root) = fixture_root();
    let e = perfdb::resolve(&root, "b200_sxm", "trtllm", None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'b200_sxm'") && e.contains("installed systems: h200_sxm"),
        "{e}"
    );
    let e = perfdb::resolve(&root, "h200_sxm", "vllm", None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("installed backends: trtllm"), "{e}");
    let e = perfdb::resolve(&root, "h200_sxm", "trtllm", Some("9.9"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("9.9") && e.contains("1.0.0, 1.1.0"), "{e}");
}

fn zip_dir(src: &Path, out: &Path, extra: &[(&str, &[u8])]) {
    let f = std::fs::File::create(out).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut files = vec![];
    fn walk(d: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out)
            } else {
                out.push(p)
            }
        }
    }
    walk(src, &mut files);
    files.sort();
    for p in files {
        let rel = p.strip_prefix(src).unwrap().to_string_lossy().to_string();
        z.start_file(format!("aiconfigurator_core/systems/{rel}"), opts)
            .unwrap();
        std::io::Write::write_all(&mut z, &std::fs::read(&p).unwrap()).unwrap();
    }
    for (name, bytes) in extra {
        z.start_file(name.to_string(), opts).unwrap();
        std::io::Write::write_all(&mut z, bytes).unwrap();
    }
    z.finish().unwrap();
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[test]
fn install_from_wheel_and_directory_is_idempotent_and_atomic() {
    let (t, root) = fixture_root();
    let wheel = t.path().join("aiconfigurator_core-9.1.0-py3-none-any.whl");
    // Beside the tables: a system YAML (kept), a version-slot YAML and the measured-runs CSV
    // (both left out).
    let yaml = "gpu:\n  mem_bw: 1\nnode:\n  num_gpus_per_node: 8\n";
    std::fs::write(t.path().join("h200_sxm.yaml"), yaml).unwrap();
    std::fs::write(t.path().join("query_versions.yaml"), "defaults: {}\n").unwrap();
    std::fs::write(t.path().join("silicon_sample.csv"), "id,ttft\n1,2\n").unwrap();
    zip_dir(t.path(), &wheel, &[]);
    let data_dir = tempfile::tempdir().unwrap();
    let d = data_dir.path();
    let s = install::install(d, &Source::Path(wheel.clone()), None).unwrap();
    assert!(!s.unchanged);
    assert_eq!(s.manifest.version, "9.1.0");
    assert_eq!(s.manifest.system_yamls, vec!["h200_sxm.yaml".to_string()]);
    assert_eq!(
        s.manifest.systems["h200_sxm"]["trtllm"],
        vec!["1.0.0", "1.1.0"]
    );
    assert!(s.manifest.rows > 50 && s.manifest.files == 6);
    let active = perfdb::active_root(d).unwrap();
    assert!(active
        .join("h200_sxm/gemm/trtllm/1.1.0/gemm_perf.parquet")
        .is_file());
    assert!(!active.parent().unwrap().join("silicon_sample.csv").exists());
    // Same content again: nothing changes.
    let again = install::install(d, &Source::Path(wheel), None).unwrap();
    assert!(again.unchanged && again.dir == s.dir);
    // The same tables from a directory: same digest, still unchanged.
    let dir_src = install::install(d, &Source::Path(t.path().to_path_buf()), None).unwrap();
    assert!(dir_src.unchanged);
    assert!(leftovers(d).is_empty(), "{:?}", leftovers(d));

    // A wheel without data: clear error, previous install still active, nothing left behind.
    let empty = t.path().join("empty.whl");
    let f = std::fs::File::create(&empty).unwrap();
    let mut z = zip::ZipWriter::new(f);
    z.start_file(
        "aiconfigurator_core/__init__.py",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    z.finish().unwrap();
    let e = install::install(d, &Source::Path(empty), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("contains no op tables"), "{e}");
    assert_eq!(perfdb::active_root(d).unwrap(), active);
    assert!(leftovers(d).is_empty());

    // A corrupt table in the source: rejected before anything switches.
    std::fs::write(
        root.join("h200_sxm/moe/trtllm/1.0.0/moe_perf.parquet"),
        b"PAR1 garbage",
    )
    .unwrap();
    let e = install::install(d, &Source::Path(t.path().to_path_buf()), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("moe_perf.parquet"), "{e}");
    assert_eq!(perfdb::active_root(d).unwrap(), active);
    assert!(leftovers(d).is_empty());
    // Not a wheel at all.
    let e = install::install(
        d,
        &Source::Path(
            t.path()
                .join("data/h200_sxm/moe/trtllm/1.0.0/moe_perf.parquet"),
        ),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not a readable wheel"), "{e}");
}

#[test]
fn neighbouring_slices_answer_as_estimates() {
    let (_t, root) = fixture_root();
    let db = Arc::new(load(&root, Some("1.0.0")));
    let s = sys();
    // A window that was not collected: the full-attention slice is exact while S ≤ window.
    let windowed = OpKind::Attention {
        heads: 16.0,
        kv_heads: 8.0,
        qk_dim: 128.0,
        v_dim: 128.0,
        window: Some(2048.0),
        kv_elems_per_token: 2048.0,
        latent: false,
    };
    let w = attn_work(WorkClass::ContextAttention, 4.0, 512.0, 0.0);
    match db.lookup(&s, &windowed, &w) {
        Lookup::Estimated(v) => close(v, ctx_ms(16.0, 512.0, 4.0)),
        other => panic!("expected an estimate, got {other:?}"),
    }
    // fp8 MoE: neither it nor its sibling fp8_block is in the fixture → still a miss.
    let mut w8 = moe_work(64.0);
    w8.shape.quant = "fp8";
    assert!(matches!(db.lookup(&s, &moe_op(1.0), &w8), Lookup::Miss(_)));
    // SILICON takes estimates (tagged), HYBRID answers them from the empirical model.
    let emp = EmpiricalSource::embedded();
    let strict = SiliconSource::new(db.clone(), emp.clone(), true);
    assert_eq!(strict.time_tagged(&s, &windowed, &w).1, "estimated");
    let hybrid = SiliconSource::new(db, emp, false);
    assert_eq!(hybrid.time_tagged(&s, &windowed, &w).1, "empirical");
}

// ---- the index cache (perfdb::cache) ----

use aicfg_core::perfdb::cache::{self, CacheError};
use aicfg_core::perfdb::CacheUse;

fn cache_file(root: &Path, db: &OpDb) -> std::path::PathBuf {
    cache::path_for(
        root,
        &db.key.system,
        &db.key.backend,
        &db.key.version,
        db.nccl_version.as_deref(),
    )
}

#[test]
fn the_index_cache_answers_exactly_as_the_parquet_tables() {
    let (_t, root) = fixture_root();
    let first = load(&root, None);
    assert!(
        matches!(&first.cache, CacheUse::Written(why) if why.contains("no index cache")),
        "{:?}",
        first.cache
    );
    let second = load(&root, None);
    assert_eq!(second.cache, CacheUse::Hit);
    // Same indexed tables, field by field (every grid, every slice key, rows, files).
    assert_eq!(first.tables, second.tables);
    assert!(first.tables.rows > 0 && !first.tables.moe.is_empty());
    let s = sys();
    for m in [1.0, 16.0, 100.0, 4096.0] {
        let op = gemm(4096.0, 1024.0, GemmQuant::Bfloat16);
        assert_eq!(
            first.lookup(&s, &op, &gemm_work(m)),
            second.lookup(&s, &op, &gemm_work(m))
        );
    }
    // Deterministic: rebuilding writes the same bytes.
    let path = cache_file(&root, &first);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    load(&root, None);
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn truncated_bit_flipped_and_stale_caches_are_never_trusted() {
    let (_t, root) = fixture_root();
    let good = load(&root, None);
    let path = cache_file(&root, &good);
    let bytes = std::fs::read(&path).unwrap();
    let (srcs, nccl) = perfdb::sources(&good.key, None);
    let fp = cache::fingerprint(&root, &srcs, nccl.as_deref());
    assert_eq!(cache::from_bytes(&bytes, &root, fp).unwrap(), good.tables);

    // Every truncation is refused.
    for n in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
        let e = cache::from_bytes(&bytes[..n], &root, fp).unwrap_err();
        assert!(matches!(e, CacheError::Corrupt(_)), "cut at {n}: {e}");
    }
    // Every single-bit flip, header or body, is refused (CRC-32 catches all of them; a flipped
    // format or fingerprint reads as another format or as stale; a flipped structure byte may
    // fail the structural check first).
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 1 << (i % 8);
        assert!(
            cache::from_bytes(&b, &root, fp).is_err(),
            "flip at byte {i}"
        );
    }
    // Through the loader: a damaged cache is reported and rebuilt, the answer is unchanged.
    let mut b = bytes.clone();
    let mid = b.len() / 2;
    b[mid] ^= 0x10;
    std::fs::write(&path, &b).unwrap();
    let db = load(&root, None);
    assert!(
        matches!(&db.cache, CacheUse::Written(why) if why.contains("corrupt (checksum mismatch)")),
        "{:?}",
        db.cache
    );
    assert_eq!(db.tables, good.tables);
    std::fs::write(&path, &bytes[..100]).unwrap();
    assert!(matches!(&load(&root, None).cache, CacheUse::Written(w) if w.contains("corrupt")));
    assert_eq!(load(&root, None).cache, CacheUse::Hit);

    // Stale: a table replaced in place (same path, other latencies) is seen.
    let f = root.join("h200_sxm/gemm/trtllm/1.1.0/gemm_perf.parquet");
    let before = hit(load(&root, None).lookup(
        &sys(),
        &gemm(1024.0, 1024.0, GemmQuant::Bfloat16),
        &gemm_work(16.0),
    ));
    let other = root.join("h200_sxm/gemm/trtllm/1.0.0/gemm_perf.parquet");
    std::fs::copy(&other, &f).unwrap();
    let fp2 = cache::fingerprint(&root, &perfdb::sources(&good.key, None).0, nccl.as_deref());
    assert_ne!(fp2, fp);
    assert_eq!(
        cache::read(&path, &root, fp2).unwrap_err(),
        CacheError::Stale
    );
    let db = load(&root, None);
    assert!(
        matches!(&db.cache, CacheUse::Written(w) if w.contains("stale")),
        "{:?}",
        db.cache
    );
    let after = hit(db.lookup(
        &sys(),
        &gemm(1024.0, 1024.0, GemmQuant::Bfloat16),
        &gemm_work(16.0),
    ));
    // The 1.1.0 fixture is twice as slow as 1.0.0.
    close(before, 2.0 * after);
    // So is a table removed.
    std::fs::remove_file(&f).unwrap();
    assert!(matches!(&load(&root, None).cache, CacheUse::Written(w) if w.contains("stale")));
}

#[test]
fn a_cache_with_a_valid_checksum_but_bad_structure_is_refused() {
    let (_t, root) = fixture_root();
    let good = load(&root, None);
    let (srcs, nccl) = perfdb::sources(&good.key, None);
    let fp = cache::fingerprint(&root, &srcs, nccl.as_deref());
    let mut t = load(&root, None).tables;
    // An axis out of order, written with a correct checksum: the structural check refuses it.
    let g = t.gemm.values_mut().next().unwrap();
    g.keys.swap(0, 1);
    let e = cache::from_bytes(&cache::to_bytes(&t, &root, fp), &root, fp).unwrap_err();
    assert!(
        e.to_string()
            .contains("grid: axis values not finite and increasing"),
        "{e}"
    );
    let mut t = load(&root, None).tables;
    t.gemm.values_mut().next().unwrap().nodes[0].child = 1 << 30;
    assert!(matches!(
        cache::from_bytes(&cache::to_bytes(&t, &root, fp), &root, fp),
        Err(CacheError::Corrupt(_))
    ));
    // Another file entirely.
    let e = cache::from_bytes(
        b"PAR1 not a cache at all, but long enough to hold a header",
        &root,
        fp,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "index cache corrupt (not an aicfg index cache)"
    );
}

#[cfg(unix)]
#[test]
fn a_read_only_data_directory_still_loads() {
    use std::os::unix::fs::PermissionsExt;
    let (t, root) = fixture_root();
    let ro =
        |mode| std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    ro(0o555);
    let db = load(&root, None);
    let writable = std::fs::write(t.path().join("probe"), b"x").is_ok(); // root ignores modes
    ro(0o755);
    if !writable {
        assert!(
            matches!(&db.cache, CacheUse::NotWritten(w) if w.contains("no index cache yet")),
            "{:?}",
            db.cache
        );
    }
    assert!(db.tables.rows > 0);
}

// ---- hostile install sources ----

/// A wheel whose entries are `(name, bytes)`, deflated.
fn wheel_of(path: &Path, entries: &[(String, Vec<u8>)]) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        z.start_file(name.clone(), opts).unwrap();
        std::io::Write::write_all(&mut z, bytes).unwrap();
    }
    z.finish().unwrap();
}

#[test]
fn zip_bombs_and_corrupt_wheels_are_refused_and_leave_nothing() {
    let (t, _root) = fixture_root();
    let good = t.path().join("aiconfigurator_core-1.0.0-py3-none-any.whl");
    zip_dir(t.path(), &good, &[]);
    let data_dir = tempfile::tempdir().unwrap();
    let d = data_dir.path();
    let first = install::install(d, &Source::Path(good.clone()), None).unwrap();
    let active = perfdb::active_root(d).unwrap();
    let lim = install::Limits {
        file_bytes: 1 << 20,
        total_bytes: 3 << 20,
    };
    let table = |i: usize| {
        format!("aiconfigurator_core/systems/data/h200_sxm/gemm/trtllm/1.0.{i}/gemm_perf.parquet")
    };
    // One entry inflating 8 KiB of deflate to 16 MiB: stopped at the per-file limit.
    let bomb = t.path().join("bomb.whl");
    wheel_of(&bomb, &[(table(0), vec![0u8; 16 << 20])]);
    assert!(std::fs::metadata(&bomb).unwrap().len() < 64 << 10);
    let e = install::install_with(d, &Source::Path(bomb), None, &lim)
        .unwrap_err()
        .to_string();
    assert!(e.contains("larger than the 1 MiB limit"), "{e}");
    // Many entries each under the limit, together over the total.
    let many = t.path().join("many.whl");
    let entries: Vec<(String, Vec<u8>)> =
        (0..5).map(|i| (table(i), vec![0u8; 900 << 10])).collect();
    wheel_of(&many, &entries);
    let e = install::install_with(d, &Source::Path(many), None, &lim)
        .unwrap_err()
        .to_string();
    assert!(e.contains("more than 3 MiB of op data"), "{e}");
    // A wheel cut short, and one with a flipped byte in the middle of its data.
    let bytes = std::fs::read(&good).unwrap();
    let cut = t.path().join("cut.whl");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = install::install(d, &Source::Path(cut), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a readable wheel"), "{e}");
    // The flip lands inside the deflated data of a table the install takes: the zip CRC (or
    // the inflater) catches it.
    let (start, size) = {
        let mut z = zip::ZipArchive::new(std::fs::File::open(&good).unwrap()).unwrap();
        let e = z
            .by_name(
                "aiconfigurator_core/systems/data/h200_sxm/gemm/trtllm/1.0.0/gemm_perf.parquet",
            )
            .unwrap();
        (
            e.data_start().unwrap() as usize,
            e.compressed_size() as usize,
        )
    };
    let mut flipped = bytes.clone();
    flipped[start + size / 2] ^= 0x55;
    let bad = t.path().join("flipped.whl");
    std::fs::write(&bad, &flipped).unwrap();
    let e = install::install(d, &Source::Path(bad), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("gemm_perf.parquet"), "{e}");
    // A "parquet" that is zeros: decoded and refused before the switch.
    let zeros = t.path().join("zeros.whl");
    wheel_of(&zeros, &[(table(0), vec![0u8; 4096])]);
    let e = install::install(d, &Source::Path(zeros), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("gemm_perf.parquet"), "{e}");
    // Through it all the first install stayed active and nothing was left behind.
    assert_eq!(perfdb::active_root(d).unwrap(), active);
    assert!(leftovers(d).is_empty(), "{:?}", leftovers(d));
    assert!(first.dir.join("data").is_dir());
}

#[cfg(unix)]
#[test]
fn fifos_symlink_loops_and_killed_installs_do_not_hang_or_linger() {
    let (t, root) = fixture_root();
    let dir = root.join("h200_sxm/gemm/trtllm/1.0.0");
    // A FIFO named like a table (opening it would block forever), two links pointing at each
    // other, and a directory link back to the top.
    let fifo = dir.join("context_attention_perf.parquet");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    std::os::unix::fs::symlink("b.parquet", dir.join("a.parquet")).unwrap();
    std::os::unix::fs::symlink("a.parquet", dir.join("b.parquet")).unwrap();
    std::os::unix::fs::symlink(&root, dir.join("loop")).unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let d = data_dir.path().to_path_buf();
    // A staging directory of an install that was killed (its process is gone).
    std::fs::create_dir_all(d.join(".staging-4000000-1/db")).unwrap();
    let src = t.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    let d2 = d.clone();
    std::thread::spawn(move || {
        let _ = tx.send(install::install(&d2, &Source::Path(src), None).map(|s| s.manifest));
    });
    let m = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("install hung")
        .unwrap();
    assert_eq!(m.systems["h200_sxm"]["trtllm"], vec!["1.0.0", "1.1.0"]);
    let active = perfdb::active_root(&d).unwrap();
    let got = active.join("h200_sxm/gemm/trtllm/1.0.0");
    assert!(got.join("gemm_perf.parquet").is_file());
    if made {
        assert!(!got.join("context_attention_perf.parquet").exists());
    }
    assert!(!got.join("a.parquet").exists() && !got.join("loop").exists());
    assert!(leftovers(&d).is_empty(), "{:?}", leftovers(&d));
}
