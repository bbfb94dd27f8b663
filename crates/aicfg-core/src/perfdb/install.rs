//! Installing a measured op database into the user's data directory (layout in `perfdb`).
//!
//! Sources: a wheel of the reference tool (`aiconfigurator_core-<v>-*.whl`, a zip archive), a
//! directory holding its `systems` tree (or the unpacked wheel), or — by default — the wheel
//! fetched with the user's own `python3 -m pip download --no-deps aiconfigurator-core==<v>`.
//! Only op tables (`systems/data/**/*.parquet`, their `collection_meta.yaml`) and system YAMLs are
//! copied. Everything is written into a fresh staging directory, every parquet footer is read
//! back, and only then does the `current` pointer switch (an atomic rename); any failure removes
//! the staging directory and leaves the previous install active.
use super::read::read_columns;
use super::tables::{Tables, TABLE_FILES};
use super::{active_root, inventory};
use crate::bounded::{copy_limited, human_bytes, read_limited};
use crate::error::{AicfgError, Result};
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// How much one install may unpack (a compressed entry may claim any size; these bound what it
/// really inflates to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest single file taken from a source (the biggest real op table is about 2 MB).
    pub file_bytes: u64,
    /// Largest total taken from one source (the real database is about 90 MB).
    pub total_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            file_bytes: 256 << 20,
            total_bytes: 4 << 30,
        }
    }
}
/// Largest system YAML (read whole to tell it from other YAMLs).
const MAX_YAML_BYTES: u64 = 1 << 20;
/// Entries of one wheel, files of one directory tree, directory depth.
const MAX_ENTRIES: usize = 200_000;
const MAX_DEPTH: usize = 16;

/// Where the database comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// `python3 -m pip download` of this aiconfigurator-core version.
    Pip { version: String },
    /// A local path: a `.whl` file or a directory.
    Path(PathBuf),
}

/// What an install holds (`manifest.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub source: String,
    pub version: String,
    /// Content digest (FNV-1a 64 over sorted paths and bytes): equal digests = same database.
    pub digest: String,
    pub files: usize,
    pub rows: u64,
    pub bytes: u64,
    pub system_yamls: Vec<String>,
    /// system → backend → versions (oldest first).
    pub systems: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub manifest: Manifest,
    /// The install directory now active.
    pub dir: PathBuf,
    /// Nothing changed: the same database was already active.
    pub unchanged: bool,
}

fn ierr(msg: impl Into<String>) -> AicfgError {
    AicfgError::Install(msg.into())
}

fn io(what: &str, p: &Path, e: std::io::Error) -> AicfgError {
    ierr(format!("{what} {}: {e}", p.display()))
}

/// Removes the staging directory however the install ends (the finished database has been
/// moved out of it by then).
struct Staging {
    path: PathBuf,
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Which files of the reference `systems` tree we keep, by path relative to `systems/`.
fn wanted(rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    if p.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    let parts: Vec<&str> = rel.split('/').collect();
    if parts.len() == 1 && rel.ends_with(".yaml") {
        return Some(Path::new("systems").join(rel));
    }
    if parts.first() == Some(&"data")
        && (rel.ends_with(".parquet") || rel.ends_with("/collection_meta.yaml"))
    {
        return Some(PathBuf::from(rel));
    }
    None
}

/// System YAMLs share the directory with other YAMLs (version slots, manifests): keep the ones
/// that describe a GPU.
fn is_system_yaml(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("gpu:")) && text.lines().any(|l| l.starts_with("node:"))
}

fn write_file(dst: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io("creating", parent, e))?;
    }
    std::fs::write(dst, bytes).map_err(|e| io("writing", dst, e))
}

/// Bytes taken so far from one source, against [`Limits::total_bytes`].
struct Taken(u64, u64);

impl Taken {
    fn add(&mut self, n: u64, what: &str) -> Result<()> {
        self.0 += n;
        if self.0 > self.1 {
            return Err(ierr(format!(
                "{what}: the source holds more than {} of op data; refusing to unpack it",
                human_bytes(self.1)
            )));
        }
        Ok(())
    }
}

/// Streams `src` into `dst`, at most `limit` bytes (a compressed entry may claim any size).
fn copy_bounded(src: impl Read, dst: &Path, limit: u64, what: &str) -> Result<u64> {
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io("creating", parent, e))?;
    }
    let mut out = std::fs::File::create(dst).map_err(|e| io("writing", dst, e))?;
    copy_limited(src, &mut out, limit).map_err(|e| ierr(format!("{what}: {e}; refusing it")))
}

/// Reads `src` whole, at most `limit` bytes.
fn read_bounded(src: impl Read, limit: u64, what: &str) -> Result<Vec<u8>> {
    read_limited(src, limit).map_err(|e| ierr(format!("{what}: {e}; refusing it")))
}

/// Copy what we keep from a wheel; returns the number of files taken.
fn from_wheel(wheel: &Path, out: &Path, lim: &Limits) -> Result<usize> {
    let f = std::fs::File::open(wheel).map_err(|e| io("opening", wheel, e))?;
    let mut zip = zip::ZipArchive::new(f).map_err(|e| {
        ierr(format!(
            "{} is not a readable wheel/zip: {e}",
            wheel.display()
        ))
    })?;
    if zip.len() > MAX_ENTRIES {
        return Err(ierr(format!(
            "{} has {} entries, more than the {MAX_ENTRIES} a wheel of op data holds",
            wheel.display(),
            zip.len()
        )));
    }
    let mut n = 0;
    let mut taken = Taken(0, lim.total_bytes);
    for i in 0..zip.len() {
        let entry = zip
            .by_index(i)
            .map_err(|e| ierr(format!("{}: entry {i}: {e}", wheel.display())))?;
        if entry.is_dir() {
            continue;
        }
        let name = entry
            .name()
            .map_err(|e| ierr(format!("{}: entry {i}: {e}", wheel.display())))?
            .to_string();
        let Some(pos) = name.find("systems/") else {
            continue;
        };
        let Some(rel) = wanted(&name[pos + "systems/".len()..]) else {
            continue;
        };
        let what = format!("{}: {name}", wheel.display());
        if rel.starts_with("systems") {
            let buf = read_bounded(entry, MAX_YAML_BYTES, &what)?;
            if !is_system_yaml(&String::from_utf8_lossy(&buf)) {
                continue;
            }
            taken.add(buf.len() as u64, &what)?;
            write_file(&out.join(rel), &buf)?;
        } else {
            // Streamed: memory stays flat however far an entry inflates.
            let got = copy_bounded(entry, &out.join(&rel), lim.file_bytes, &what)?;
            taken.add(got, &what)?;
        }
        n += 1;
    }
    Ok(n)
}

/// The `systems` directory inside a user-given directory (itself, an unpacked wheel, or a parent).
fn systems_dir(dir: &Path) -> Option<PathBuf> {
    [
        dir.to_path_buf(),
        dir.join("aiconfigurator_core").join("systems"),
        dir.join("systems"),
    ]
    .into_iter()
    .find(|c| c.join("data").is_dir())
}

/// Regular files under `dir`, sorted. Directories are entered only when real (a symlinked
/// directory could loop); a symlink counts when it resolves to a regular file; FIFOs, sockets,
/// devices and broken or looping links are skipped (opening a FIFO would block forever).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    walk_depth(dir, out, 0)
}

fn walk_depth(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(ierr(format!(
            "{} nests deeper than {MAX_DEPTH} directories",
            dir.display()
        )));
    }
    let rd = std::fs::read_dir(dir).map_err(|e| io("reading", dir, e))?;
    let mut entries: Vec<(PathBuf, std::fs::FileType)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.path(), e.file_type().ok()?)))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (p, t) in entries {
        if t.is_dir() {
            walk_depth(&p, out, depth + 1)?;
        } else if t.is_file()
            || (t.is_symlink() && std::fs::metadata(&p).is_ok_and(|m| m.is_file()))
        {
            out.push(p);
            if out.len() > MAX_ENTRIES {
                return Err(ierr(format!(
                    "{} holds more than {MAX_ENTRIES} files",
                    dir.display()
                )));
            }
        }
    }
    Ok(())
}

fn from_dir(dir: &Path, out: &Path, lim: &Limits) -> Result<usize> {
    let Some(sys) = systems_dir(dir) else {
        return Err(ierr(format!(
            "{} holds no op database (expected a `data/<system>/<op family>/<backend>/<version>/*.parquet` tree, \
             an unpacked wheel, or a .whl file)",
            dir.display()
        )));
    };
    let mut files = Vec::new();
    walk(&sys, &mut files)?;
    let mut n = 0;
    let mut taken = Taken(0, lim.total_bytes);
    for p in files {
        let Ok(rel) = p.strip_prefix(&sys) else {
            continue;
        };
        let Some(rel) = rel.to_str().and_then(wanted) else {
            continue;
        };
        let what = p.display().to_string();
        let f = std::fs::File::open(&p).map_err(|e| io("reading", &p, e))?;
        if rel.starts_with("systems") {
            let bytes = read_bounded(f, MAX_YAML_BYTES, &what)?;
            if !is_system_yaml(&String::from_utf8_lossy(&bytes)) {
                continue;
            }
            taken.add(bytes.len() as u64, &what)?;
            write_file(&out.join(rel), &bytes)?;
        } else {
            let got = copy_bounded(f, &out.join(&rel), lim.file_bytes, &what)?;
            taken.add(got, &what)?;
        }
        n += 1;
    }
    Ok(n)
}

/// `python3 -m pip download --no-deps aiconfigurator-core==V` into `dir`; returns the wheel.
fn pip_download(version: &str, dir: &Path) -> Result<PathBuf> {
    let python = std::env::var("AICFG_PYTHON").unwrap_or_else(|_| "python3".into());
    std::fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
    let out = std::process::Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--quiet"])
        .arg(format!("aiconfigurator-core=={version}"))
        .arg("-d")
        .arg(dir)
        .output()
        .map_err(|e| {
            ierr(format!(
                "cannot run '{python}' ({e}); install Python 3 with pip, or download the \
                 aiconfigurator-core {version} wheel yourself and pass it with --from"
            ))
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(3).collect();
        return Err(ierr(format!(
            "'{python} -m pip download aiconfigurator-core=={version}' failed ({}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        )));
    }
    let mut wheels: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io("reading", dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "whl"))
        .collect();
    wheels.sort();
    wheels
        .pop()
        .ok_or_else(|| ierr(format!("pip downloaded no wheel into {}", dir.display())))
}

/// `aiconfigurator_core-0.12.0-cp311-...whl` → `0.12.0`.
fn wheel_version(p: &Path) -> Option<String> {
    let name = p.file_name()?.to_str()?;
    name.split('-').nth(1).map(str::to_string)
}

/// The table a staged parquet file holds, by its name (`gemm_perf.parquet` → `gemm_perf`).
fn table_of(rel: &str) -> Option<&'static str> {
    let stem = Path::new(rel).file_stem()?.to_str()?;
    TABLE_FILES
        .iter()
        .map(|(_, t)| *t)
        .chain(["nccl_perf"])
        .find(|t| *t == stem)
}

/// Decodes one staged table completely, as a query would, and checks its values: every page
/// readable, the columns the reader needs present with their types, values finite and in range.
fn validate_table(table: &str, p: &Path, rel: &str) -> Result<()> {
    let bad = |reason: String| AicfgError::PerfData {
        path: rel.to_string(),
        reason,
    };
    let mut t = Tables::default();
    t.load_file(table, p).map_err(|e| match e {
        AicfgError::PerfData { reason, .. } => bad(reason),
        e => e,
    })?;
    let numeric = numeric_columns(p).map_err(|e| bad(e.to_string()))?;
    let names: Vec<&str> = numeric.iter().map(String::as_str).collect();
    let fr = read_columns(p, &[], &names)?;
    for (name, col) in &fr.cols {
        for i in 0..fr.rows {
            let v = col.float(i);
            // NaN is the tables' "not measured"; infinities and values past 2^53 are corruption.
            if v.is_infinite() || v.abs() > 9.0e15 {
                return Err(bad(format!("column '{name}' row {i} holds {v}")));
            }
            if name == "latency" && v < 0.0 {
                return Err(bad(format!(
                    "column 'latency' row {i} is negative ({v} ms)"
                )));
            }
        }
    }
    Ok(())
}

fn numeric_columns(p: &Path) -> std::result::Result<Vec<String>, parquet::errors::ParquetError> {
    use parquet::basic::Type as Physical;
    let f =
        std::fs::File::open(p).map_err(|e| parquet::errors::ParquetError::External(e.into()))?;
    let r = SerializedFileReader::new(f)?;
    let schema = r.metadata().file_metadata().schema_descr_ptr();
    Ok(schema
        .columns()
        .iter()
        .filter(|c| {
            matches!(
                c.physical_type(),
                Physical::INT32 | Physical::INT64 | Physical::FLOAT | Physical::DOUBLE
            )
        })
        .map(|c| c.name().to_string())
        .collect())
}

/// Read back and fully validate every table; returns (files, rows, bytes, digest).
fn verify(root: &Path) -> Result<(usize, u64, u64, String)> {
    let mut files = Vec::new();
    walk(root, &mut files)?;
    let mut h: u64 = 0xcbf29ce484222325;
    let mut feed = |b: &[u8]| {
        for x in b {
            h ^= *x as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    };
    let (mut n, mut rows, mut bytes) = (0usize, 0u64, 0u64);
    for p in &files {
        let rel = p
            .strip_prefix(root)
            .unwrap_or(p)
            .to_string_lossy()
            .to_string();
        let f = std::fs::File::open(p).map_err(|e| io("reading back", p, e))?;
        let content = read_bounded(f, Limits::default().file_bytes, &rel)?;
        feed(rel.as_bytes());
        feed(&content);
        bytes += content.len() as u64;
        if rel.ends_with(".parquet") {
            let f = std::fs::File::open(p).map_err(|e| io("reading back", p, e))?;
            let r = SerializedFileReader::new(f).map_err(|e| AicfgError::PerfData {
                path: rel.clone(),
                reason: format!("not a readable parquet file ({e})"),
            })?;
            rows += r.metadata().file_metadata().num_rows().max(0) as u64;
            if let Some(table) = table_of(&rel) {
                validate_table(table, p, &rel)?;
            }
            n += 1;
        }
    }
    Ok((n, rows, bytes, format!("{h:016x}")))
}

/// Staging directories (and pointer temp files) of installs that were killed: their process is
/// gone. Those of a running install are left alone.
fn remove_stale_staging(data_dir: &Path) {
    let Ok(rd) = std::fs::read_dir(data_dir) else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name
            .strip_prefix(".staging-")
            .or_else(|| name.strip_prefix(".current-"))
        else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || process_alive(pid) {
            continue;
        }
        let p = e.path();
        let _ = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
    }
}

fn process_alive(pid: u32) -> bool {
    let proc_root = Path::new("/proc");
    if proc_root.join("self").exists() {
        proc_root.join(pid.to_string()).exists()
    } else {
        // No /proc to ask: keep it (a stale directory wastes disk, removing a live one breaks).
        true
    }
}

/// The active install's manifest, if any.
pub fn current_manifest(data_dir: &Path) -> Option<(PathBuf, Manifest)> {
    let root = active_root(data_dir)?;
    let dir = root.parent()?.to_path_buf();
    let text = std::fs::read_to_string(dir.join("manifest.json")).ok()?;
    Some((dir, serde_json::from_str(&text).ok()?))
}

/// Install `src` into `data_dir`, replacing the active database only once the new one is
/// complete and verified. `version` labels a local source (default: from the wheel name).
pub fn install(data_dir: &Path, src: &Source, version: Option<&str>) -> Result<Summary> {
    install_with(data_dir, src, version, &Limits::default())
}

/// As [`install`], within `lim`.
pub fn install_with(
    data_dir: &Path,
    src: &Source,
    version: Option<&str>,
    lim: &Limits,
) -> Result<Summary> {
    std::fs::create_dir_all(data_dir).map_err(|e| io("creating", data_dir, e))?;
    remove_stale_staging(data_dir);
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let staging = Staging {
        path: data_dir.join(format!(".staging-{}-{nonce}", std::process::id())),
    };
    let stage = staging.path.clone();
    let db = stage.join("db");
    std::fs::create_dir_all(&db).map_err(|e| io("creating", &db, e))?;
    let (label, version) = match src {
        Source::Pip { version: v } => {
            let wheel = pip_download(v, &stage.join("download"))?;
            from_wheel(&wheel, &db, lim)?;
            (
                format!("pip download aiconfigurator-core=={v}"),
                v.to_string(),
            )
        }
        Source::Path(p) if p.is_file() => {
            from_wheel(p, &db, lim)?;
            let v = version
                .map(str::to_string)
                .or_else(|| wheel_version(p))
                .unwrap_or_else(|| "local".into());
            (p.display().to_string(), v)
        }
        Source::Path(p) if p.is_dir() => {
            from_dir(p, &db, lim)?;
            let v = version.unwrap_or("local").to_string();
            (p.display().to_string(), v)
        }
        Source::Path(p) => return Err(ierr(format!("{} does not exist", p.display()))),
    };
    let data = db.join("data");
    let systems = inventory(&data);
    if systems.is_empty() {
        return Err(ierr(format!(
            "{label} contains no op tables (expected systems/data/<system>/<op family>/<backend>/<version>/*.parquet)"
        )));
    }
    let (files, rows, bytes, digest) = verify(&db)?;
    let mut system_yamls: Vec<String> = std::fs::read_dir(db.join("systems"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    system_yamls.sort();
    let manifest = Manifest {
        source: label,
        version: version.clone(),
        digest: digest.clone(),
        files,
        rows,
        bytes,
        system_yamls,
        systems,
    };
    if let Some((dir, m)) = current_manifest(data_dir) {
        if m.digest == manifest.digest {
            return Ok(Summary {
                manifest: m,
                dir,
                unchanged: true,
            });
        }
    }
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| ierr(e.to_string()))?;
    write_file(&db.join("manifest.json"), text.as_bytes())?;
    let safe: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = format!("perf-{safe}-{}", &digest[..12]);
    let dest = data_dir.join(&name);
    if dest.exists() {
        std::fs::remove_dir_all(&dest).map_err(|e| io("removing", &dest, e))?;
    }
    std::fs::rename(&db, &dest).map_err(|e| io("moving into place", &dest, e))?;
    let previous = current_manifest(data_dir).map(|(d, _)| d);
    let tmp = data_dir.join(format!(".current-{}-{nonce}", std::process::id()));
    std::fs::write(&tmp, format!("{name}\n")).map_err(|e| io("writing", &tmp, e))?;
    if let Err(e) = std::fs::rename(&tmp, data_dir.join("current")) {
        let _ = std::fs::remove_file(&tmp);
        let _ = std::fs::remove_dir_all(&dest);
        return Err(io("switching", &data_dir.join("current"), e));
    }
    if let Some(prev) = previous.filter(|p| *p != dest) {
        let _ = std::fs::remove_dir_all(prev);
    }
    drop(staging);
    Ok(Summary {
        manifest,
        dir: dest,
        unchanged: false,
    })
}
