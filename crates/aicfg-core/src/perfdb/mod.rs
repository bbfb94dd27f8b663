//! Measured op database (docs/model.md §5.3), a pure store: where it lives, which versions are
//! installed, loading one (system, backend, version) into memory as indexed tables. Turning an
//! op into a table query is `crate::perf`'s job (`perf::Lookup`).
//!
//! On-disk layout (written by [`install`]):
//!
//! ```text
//! $AICFG_DATA_DIR (else $XDG_DATA_HOME/aicfg, else ~/.local/share/aicfg)
//!   current                      one line: the name of the active install directory
//!   perf-<source version>-<id>/  one complete install
//!     manifest.json              what was installed (source, systems, backends, versions, rows, bytes)
//!     systems/<system>.yaml      system descriptions shipped with the data
//!     data/<system>/<op family>/<backend>/<version>/<table>.parquet (+ collection_meta.yaml)
//!     data/<system>/comm/nccl/<nccl version>/nccl_perf.parquet
//! ```
//!
//! `current` is replaced by an atomic rename, so an interrupted install never leaves a half
//! database active. Users who collect their own data can point `AICFG_DATA_DIR` at a directory
//! laid out the same way (or install it with `aicfg data install --from DIR`).
pub mod cache;
#[doc(hidden)]
pub mod fixture;
mod grid;
pub mod install;
pub mod read;
pub mod tables;

pub use cache::CacheUse;
pub use grid::{Blend, Grid};

use crate::error::{AicfgError, Result};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use tables::{Tables, TABLE_FILES};

/// The user's data directory for aicfg: `AICFG_DATA_DIR`, else the XDG data directory.
pub fn data_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = env("AICFG_DATA_DIR") {
        return Some(d);
    }
    if let Some(x) = env("XDG_DATA_HOME") {
        return Some(x.join("aicfg"));
    }
    env("HOME").map(|h| h.join(".local/share/aicfg"))
}

/// The active install directory under `dir`, if any.
pub fn active_root(dir: &Path) -> Option<PathBuf> {
    let name = std::fs::read_to_string(dir.join("current")).ok()?;
    let name = name.trim();
    if name.is_empty() || name.contains('/') || name.contains("..") {
        return None;
    }
    let root = dir.join(name).join("data");
    root.is_dir().then_some(root)
}

/// Order version strings the way releases go: numeric parts numerically, a pre-release tag
/// (`1.3.0rc20`) before the release, `post`/`dev` parts as extra components.
pub fn cmp_version(a: &str, b: &str) -> Ordering {
    fn parts(s: &str) -> Vec<(u64, String)> {
        s.split(['.', '-', '+'])
            .map(|p| {
                let digits: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
                let rest = p[digits.len()..].to_string();
                (digits.parse().unwrap_or(0), rest)
            })
            .collect()
    }
    let (pa, pb) = (parts(a), parts(b));
    for i in 0..pa.len().max(pb.len()) {
        let o = match (pa.get(i), pb.get(i)) {
            (Some(x), Some(y)) => x.0.cmp(&y.0).then_with(|| {
                // "0" > "0rc20": an empty suffix is the release.
                match (x.1.is_empty(), y.1.is_empty()) {
                    (true, false) => Ordering::Greater,
                    (false, true) => Ordering::Less,
                    _ => natural(&x.1, &y.1),
                }
            }),
            (Some(_), None) => Ordering::Greater,
            (None, Some(_)) => Ordering::Less,
            (None, None) => Ordering::Equal,
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.cmp(b)
}

/// `rc9` < `rc20`: letters compared as text, trailing numbers as numbers.
fn natural(a: &str, b: &str) -> Ordering {
    let split = |s: &str| {
        let t = s.trim_end_matches(|c: char| c.is_ascii_digit());
        (t.to_string(), s[t.len()..].parse::<u64>().unwrap_or(0))
    };
    split(a).cmp(&split(b))
}

fn sorted_dirs(p: &Path) -> Vec<String> {
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

/// What is installed for one system under a data root: backend → versions (newest last).
pub fn system_inventory(root: &Path, sys: &str) -> BTreeMap<String, Vec<String>> {
    let mut backends: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for fam in sorted_dirs(&root.join(sys)) {
        for be in sorted_dirs(&root.join(sys).join(&fam)) {
            if be == "nccl" || be == "oneccl" {
                continue;
            }
            for v in sorted_dirs(&root.join(sys).join(&fam).join(&be)) {
                backends.entry(be.clone()).or_default().insert(v);
            }
        }
    }
    backends
        .into_iter()
        .map(|(be, vs)| {
            let mut vs: Vec<String> = vs.into_iter().collect();
            vs.sort_by(|a, b| cmp_version(a, b));
            (be, vs)
        })
        .collect()
}

/// What is installed under one data root: system → backend → versions (newest last).
pub fn inventory(root: &Path) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    sorted_dirs(root)
        .into_iter()
        .map(|sys| {
            let inv = system_inventory(root, &sys);
            (sys, inv)
        })
        .filter(|(_, inv)| !inv.is_empty())
        .collect()
}

/// Which database a run uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DbKey {
    pub root: PathBuf,
    pub system: String,
    pub backend: String,
    pub version: String,
}

/// Resolve (system, backend, version) against what is installed under `root`.
/// `version = None` picks the newest installed version.
pub fn resolve(root: &Path, system: &str, backend: &str, version: Option<&str>) -> Result<DbKey> {
    // Install directories are content-addressed (`perf-<version>-<digest>`), so a root's listing
    // never changes under the same path: walk each system once per process, and only the
    // systems asked for (the whole tree is ~450 directories).
    type Inv = Arc<BTreeMap<String, Vec<String>>>;
    static LISTINGS: OnceLock<Mutex<HashMap<(PathBuf, String), Inv>>> = OnceLock::new();
    // A system name is one directory name, never a path.
    let plain = !system.is_empty() && !system.contains(['/', '\\']) && !system.starts_with('.');
    let backends = if !plain {
        Arc::default()
    } else {
        let mut m = LISTINGS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        m.entry((root.to_path_buf(), system.to_string()))
            .or_insert_with(|| Arc::new(system_inventory(root, system)))
            .clone()
    };
    if backends.is_empty() {
        let inv = inventory(root);
        return Err(AicfgError::PerfDbMissing(format!(
            "no measured op data for system '{system}' under {}; installed systems: {}",
            root.display(),
            list_or_none(inv.keys())
        )));
    }
    let Some(versions) = backends.get(backend) else {
        return Err(AicfgError::PerfDbMissing(format!(
            "no measured op data for backend '{backend}' on {system}; installed backends: {}",
            list_or_none(backends.keys())
        )));
    };
    let version = match version {
        None => versions.last().cloned().unwrap_or_default(),
        Some(v) => {
            if !versions.iter().any(|x| x == v) {
                return Err(AicfgError::Unknown {
                    what: "backend version",
                    given: format!("{v} (for {system}/{backend})"),
                    known: versions.join(", "),
                });
            }
            v.to_string()
        }
    };
    Ok(DbKey {
        root: root.to_path_buf(),
        system: system.to_string(),
        backend: backend.to_string(),
        version,
    })
}

fn list_or_none<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = it.map(|s| s.as_str()).collect();
    if v.is_empty() {
        "none (run `aicfg data install`)".into()
    } else {
        v.join(", ")
    }
}

/// One loaded database: every table of (system, backend, version), with backward fill.
#[derive(Debug)]
pub struct OpDb {
    pub key: DbKey,
    pub tables: Tables,
    /// NCCL version directory used for the collectives.
    pub nccl_version: Option<String>,
    pub load_ms: f64,
    /// MoE routing distributions tried in order (the benchmark's routing skew is unknown; the
    /// first slice present answers).
    pub moe_distributions: Vec<u8>,
    /// Whether the tables came from the index cache ([`cache`]).
    pub cache: CacheUse,
}

/// The parquet files one database reads, in load order, and the NCCL version picked.
/// Each table comes from the requested version directory; slices it lacks are filled from
/// older versions of the same backend (newest first, own rows win), as the reference
/// database's backward fill does. NCCL tables are shared by the backends: the system's own
/// version if present, else the newest.
pub fn sources(
    key: &DbKey,
    nccl_pref: Option<&str>,
) -> (Vec<(&'static str, PathBuf)>, Option<String>) {
    let mut out = Vec::new();
    let sys_dir = key.root.join(&key.system);
    for (fam, table) in TABLE_FILES {
        let be_dir = sys_dir.join(fam).join(&key.backend);
        let mut versions = sorted_dirs(&be_dir);
        versions.retain(|v| cmp_version(v, &key.version) != Ordering::Greater);
        versions.sort_by(|a, b| cmp_version(b, a));
        for v in versions {
            let p = be_dir.join(&v).join(format!("{table}.parquet"));
            if p.is_file() {
                out.push((*table, p));
            }
        }
    }
    let nccl_dir = sys_dir.join("comm").join("nccl");
    let mut nv = sorted_dirs(&nccl_dir);
    nv.sort_by(|a, b| cmp_version(a, b));
    let nccl_version = nccl_pref
        .filter(|p| nv.iter().any(|v| v == p))
        .map(str::to_string)
        .or_else(|| nv.last().cloned());
    if let Some(v) = &nccl_version {
        let p = nccl_dir.join(v).join("nccl_perf.parquet");
        if p.is_file() {
            out.push(("nccl_perf", p));
        }
    }
    (out, nccl_version)
}

impl OpDb {
    /// Load from the index cache when it is valid for the parquet files on disk, else from
    /// the parquet files (then the cache is rewritten; a read-only data directory only costs
    /// speed).
    pub fn load(key: &DbKey, nccl_pref: Option<&str>) -> Result<OpDb> {
        let t0 = std::time::Instant::now();
        let (srcs, nccl_version) = sources(key, nccl_pref);
        let fp = cache::fingerprint(&key.root, &srcs, nccl_version.as_deref());
        let path = cache::path_for(
            &key.root,
            &key.system,
            &key.backend,
            &key.version,
            nccl_version.as_deref(),
        );
        let (tables, used) = match cache::read(&path, &key.root, fp) {
            Ok(t) => (t, CacheUse::Hit),
            Err(why) => {
                let t = Self::parse(&srcs)?;
                let used = match cache::write(&path, &cache::to_bytes(&t, &key.root, fp)) {
                    Ok(()) => CacheUse::Written(why.to_string()),
                    Err(e) => {
                        CacheUse::NotWritten(format!("{why}; writing {}: {e}", path.display()))
                    }
                };
                (t, used)
            }
        };
        Ok(OpDb {
            key: key.clone(),
            tables,
            nccl_version,
            load_ms: t0.elapsed().as_secs_f64() * 1e3,
            moe_distributions: vec![
                tables::DIST_POWER_12,
                tables::DIST_BALANCED,
                tables::DIST_POWER_101,
            ],
            cache: used,
        })
    }

    /// Read and index the parquet files themselves (no cache).
    pub fn parse(srcs: &[(&str, PathBuf)]) -> Result<Tables> {
        let mut tables = Tables::default();
        for (table, p) in srcs {
            tables.load_file(table, p)?;
        }
        tables.finish();
        Ok(tables)
    }
}

type Cache = Mutex<HashMap<DbKey, Arc<OpDb>>>;

/// Load once per process; later calls share the indexed tables.
pub fn open_cached(key: &DbKey, nccl_pref: Option<&str>) -> Result<Arc<OpDb>> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut guard = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(db) = guard.get(key) {
        return Ok(db.clone());
    }
    let db = Arc::new(OpDb::load(key, nccl_pref)?);
    guard.insert(key.clone(), db.clone());
    Ok(db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_order() {
        let mut v = vec![
            "1.3.0rc23",
            "1.0.0",
            "1.3.0rc20",
            "1.3.0rc9",
            "1.3.0",
            "0.5.6.post2",
            "0.5.14",
            "0.1.dev19262",
        ];
        v.sort_by(|a, b| cmp_version(a, b));
        assert_eq!(
            v,
            vec![
                "0.1.dev19262",
                "0.5.6.post2",
                "0.5.14",
                "1.0.0",
                "1.3.0rc9",
                "1.3.0rc20",
                "1.3.0rc23",
                "1.3.0"
            ]
        );
    }
}
