//! `aicfg data install|list`: the optional measured op database (SILICON / HYBRID modes).
use aicfg_core::perfdb::{self, install};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum DataCmd {
    /// Install the reference tool's measured op database (default: `python3 -m pip download
    /// aiconfigurator-core==VERSION`; or a wheel / extracted `systems` directory with --from).
    #[command(disable_version_flag = true)]
    Install(InstallArgs),
    /// Show the installed measured op database: systems, backends, versions.
    List,
    /// Time loading one system/backend and querying it (load ms, resident memory, µs per query).
    Bench(BenchArgs),
}

#[derive(Args)]
pub struct BenchArgs {
    /// System whose installed tables are timed.
    #[arg(long, default_value = "h200_sxm")]
    pub system: String,
    /// Backend whose installed tables are timed: trtllm, vllm or sglang.
    #[arg(long, default_value = "trtllm")]
    pub backend: String,
    /// Version directory of the tables (default: the newest installed).
    #[arg(long = "backend-version", alias = "backend_version")]
    pub backend_version: Option<String>,
    /// Queries to time.
    #[arg(long, default_value_t = 200_000)]
    pub queries: usize,
}

#[derive(Args)]
pub struct InstallArgs {
    /// aiconfigurator-core version to download (or the label of a --from directory).
    #[arg(long)]
    pub version: Option<String>,
    /// A local wheel (.whl) or a directory holding the `systems` tree (or the unpacked wheel).
    #[arg(long = "from")]
    pub from: Option<PathBuf>,
}

const DEFAULT_VERSION: &str = "0.12.0";

fn data_dir() -> Result<PathBuf> {
    perfdb::data_dir()
        .context("cannot tell where to store data: set AICFG_DATA_DIR (or HOME / XDG_DATA_HOME)")
}

pub fn run(cmd: DataCmd) -> Result<()> {
    match cmd {
        DataCmd::Install(a) => run_install(&a),
        DataCmd::List => list(),
        DataCmd::Bench(a) => bench(&a),
    }
}

fn human(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn inventory_table(
    systems: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<String>>>,
) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "system",
        "backend",
        "versions (newest last)",
    ]);
    for (s, backends) in systems {
        for (b, vs) in backends {
            t.add_row(vec![s.clone(), b.clone(), vs.join(", ")]);
        }
    }
    t
}

fn run_install(a: &InstallArgs) -> Result<()> {
    let dir = data_dir()?;
    let src = match &a.from {
        Some(p) => install::Source::Path(p.clone()),
        None => install::Source::Pip {
            version: a.version.clone().unwrap_or_else(|| DEFAULT_VERSION.into()),
        },
    };
    let s = install::install(&dir, &src, a.version.as_deref())?;
    let m = &s.manifest;
    if s.unchanged {
        crate::emitln!(
            "already installed: the same database (digest {}) is active in {}",
            m.digest,
            s.dir.display()
        );
    } else {
        crate::emitln!("installed into {}", s.dir.display());
    }
    crate::emitln!(
        "source {} (version {}): {} tables, {} rows, {}; {} system YAMLs",
        m.source,
        m.version,
        m.files,
        m.rows,
        human(m.bytes),
        m.system_yamls.len()
    );
    crate::emitln!("{}", inventory_table(&m.systems));
    let t0 = std::time::Instant::now();
    let built = aicfg_core::perf::source::build_index_caches(&dir)?;
    let unwritten: Vec<String> = built
        .iter()
        .filter_map(|(k, u)| match u {
            perfdb::CacheUse::NotWritten(why) => Some(format!("{}/{}: {why}", k.system, k.backend)),
            _ => None,
        })
        .collect();
    crate::emitln!(
        "index caches: {} of {} databases ready in {:.1} s",
        built.len() - unwritten.len(),
        built.len(),
        t0.elapsed().as_secs_f64()
    );
    for u in unwritten {
        crate::emitln!("  not written (loads will read parquet): {u}");
    }
    Ok(())
}

fn list() -> Result<()> {
    let dir = data_dir()?;
    match install::current_manifest(&dir) {
        Some((d, m)) => {
            crate::emitln!("measured op database in {}", d.display());
            crate::emitln!(
                "source {} (version {}): {} tables, {} rows, {}",
                m.source,
                m.version,
                m.files,
                m.rows,
                human(m.bytes)
            );
            crate::emitln!("{}", inventory_table(&m.systems));
        }
        None => match perfdb::active_root(&dir) {
            // A hand-made tree (no manifest): list what is there.
            Some(root) => {
                crate::emitln!("measured op database in {}", root.display());
                crate::emitln!("{}", inventory_table(&perfdb::inventory(&root)));
            }
            None => crate::emitln!(
                "no measured op database installed in {}; `aicfg data install` fetches one \
                 (estimates use the empirical model meanwhile)",
                dir.display()
            ),
        },
    }
    Ok(())
}

/// Resident set size of this process (Linux), MB.
fn rss_mb() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096.0 / 1e6)
}

fn bench(a: &BenchArgs) -> Result<()> {
    use aicfg_core::model::graph::OpKind;
    use aicfg_core::perf::{Shape, Work, WorkClass};
    use aicfg_core::quant::{ComputeDtype, GemmQuant};
    let dir = data_dir()?;
    let root = perfdb::active_root(&dir)
        .with_context(|| format!("no measured op database installed in {}", dir.display()))?;
    let sys = aicfg_core::SystemRegistry::builtin()
        .get(&a.system)?
        .clone();
    let before = rss_mb().unwrap_or(0.0);
    let t0 = std::time::Instant::now();
    let key = perfdb::resolve(&root, &a.system, &a.backend, a.backend_version.as_deref())?;
    let db = perfdb::OpDb::load(&key, sys.misc.nccl_version.as_deref())?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let rss = rss_mb().unwrap_or(0.0) - before;
    // A fixed pseudo-random mix of GEMM (measured and unmeasured shapes), prefill and decode
    // attention queries.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let ns = [1024.0, 3000.0, 5120.0, 7168.0, 12288.0, 25600.0];
    let mut ops = Vec::with_capacity(1024);
    for _ in 0..1024 {
        let (op, w) = match next(3) {
            0 => {
                let mut w = Work::new(WorkClass::Gemm, 0.0, 0.0, ComputeDtype::Bf16);
                w.m = 1.0 + next(8192) as f64;
                let op = OpKind::Gemm {
                    n: ns[next(6) as usize],
                    k: ns[next(6) as usize],
                    quant: GemmQuant::Bfloat16,
                    last_token_only: false,
                };
                (op, w)
            }
            c => {
                let class = if c == 1 {
                    WorkClass::ContextAttention
                } else {
                    WorkClass::GenerationAttention
                };
                let mut w = Work::new(class, 0.0, 0.0, ComputeDtype::Bf16);
                w.shape = Shape {
                    batch: 1.0 + next(64) as f64,
                    seq: 16.0 + next(8000) as f64,
                    prefix: 0.0,
                    tokens: 1.0,
                    quant: "bfloat16",
                    kv_quant: "bfloat16",
                };
                let op = OpKind::Attention {
                    heads: [8.0, 16.0, 32.0][next(3) as usize],
                    kv_heads: 8.0,
                    qk_dim: 128.0,
                    v_dim: 128.0,
                    window: None,
                    kv_elems_per_token: 2048.0,
                    latent: false,
                };
                (op, w)
            }
        };
        ops.push((op, w));
    }
    let t1 = std::time::Instant::now();
    let (mut hits, mut sum) = (0usize, 0.0);
    for i in 0..a.queries {
        let (op, w) = &ops[i % ops.len()];
        if let aicfg_core::perf::Lookup::Hit(v) = db.lookup(&sys, op, w) {
            hits += 1;
            sum += v;
        }
    }
    let per_q = t1.elapsed().as_secs_f64() * 1e6 / a.queries.max(1) as f64;
    let cache = match &db.cache {
        perfdb::CacheUse::Hit => "index cache".to_string(),
        perfdb::CacheUse::Written(why) => format!("parquet ({why}; cache written)"),
        perfdb::CacheUse::NotWritten(why) => format!("parquet ({why})"),
    };
    crate::emitln!("loaded from {cache}");
    crate::emitln!(
        "{} ({} rows, {} files): load {:.0} ms, +{:.0} MB resident; {} queries ({} answered, checksum {:.3}): {:.2} µs per query",
        format!("{}/{}/{}", key.system, key.backend, key.version),
        db.tables.rows,
        db.tables.files.len(),
        load_ms,
        rss,
        a.queries,
        hits,
        sum,
        per_q
    );
    Ok(())
}
