//! The pre-indexed cache of one loaded database: the [`Tables`] of (system, backend, version,
//! NCCL version) written as one compact binary file, so a process start reads a few MB of
//! already-sliced grids instead of decoding and indexing parquet tables (data/perfdb/README.md,
//! "Index cache").
//!
//! ```text
//! header, 40 bytes, little-endian:
//!   magic     8   b"AICFGIDX"
//!   format    u32 FORMAT (bumped whenever the body layout or the indexing rules change)
//!   crc       u32 CRC-32 of everything after it (the rest of the header and the body)
//!   source    u64 fingerprint of the parquet files the body was built from (path, size, mtime)
//!   body_len  u64 bytes of body that follow
//!   rows      u64 table rows read to build it
//! body: the tables (see `encode`), then the source file paths
//! ```
//!
//! A cache is used only when every check passes: magic, format, length, checksum, and a source
//! fingerprint equal to that of the parquet files on disk now. Anything else is reported as a
//! [`CacheError`] and the caller rebuilds from parquet; a decoded body is checked structurally
//! too (axis counts, sorted finite keys), so even a file with a valid checksum cannot panic a
//! query.
use super::grid::{Grid, Node};
use super::tables::{FastMap, Tables};
use crate::bounded::Bounded;
use std::fmt;
use std::hash::Hash;
use std::io::Read;
use std::path::{Path, PathBuf};

pub const MAGIC: &[u8; 8] = b"AICFGIDX";
pub const FORMAT: u32 = 1;
const HEADER: usize = 40;
/// Largest cache file read (the largest real database indexes to about 10 MB).
const MAX_CACHE_BYTES: u64 = 1 << 30;

/// Why a cache file was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheError {
    Missing,
    Unreadable(String),
    /// Not an index cache, or a damaged one (the reason says where).
    Corrupt(String),
    /// Written by another format version of aicfg.
    Format(u32),
    /// The parquet files changed since it was built.
    Stale,
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheError::Missing => write!(f, "no index cache yet"),
            CacheError::Unreadable(e) => write!(f, "index cache unreadable: {e}"),
            CacheError::Corrupt(e) => write!(f, "index cache corrupt ({e})"),
            CacheError::Format(v) => {
                write!(f, "index cache has format {v}, this build reads {FORMAT}")
            }
            CacheError::Stale => write!(f, "index cache stale (the op tables changed)"),
        }
    }
}

fn corrupt(what: impl Into<String>) -> CacheError {
    CacheError::Corrupt(what.into())
}

/// How a load used the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheUse {
    /// Read from a valid cache.
    Hit,
    /// Built from parquet and written (the reason it was not used before).
    Written(String),
    /// Built from parquet; the cache could not be written (read-only data directory, …).
    NotWritten(String),
}

/// FNV-1a 64, for the source fingerprint (a few hundred bytes).
pub(crate) fn fnv(h: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *h ^= u64::from(*b);
        *h = h.wrapping_mul(0x100_0000_01b3);
    }
}

/// Fingerprint of the parquet files a load reads: their paths under `root`, sizes and
/// modification times, and the NCCL version picked. Any re-install, edit or added version changes it.
pub fn fingerprint(root: &Path, sources: &[(&str, PathBuf)], nccl: Option<&str>) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    fnv(&mut h, &FORMAT.to_le_bytes());
    fnv(&mut h, nccl.unwrap_or("").as_bytes());
    for (table, p) in sources {
        fnv(&mut h, table.as_bytes());
        fnv(
            &mut h,
            p.strip_prefix(root)
                .unwrap_or(p)
                .as_os_str()
                .as_encoded_bytes(),
        );
        for x in file_stamp(p) {
            fnv(&mut h, &x.to_le_bytes());
        }
        fnv(&mut h, &[0xff]);
    }
    h
}

/// Size, modification time and (Unix) inode and change time of a file: a rewrite, a replacement
/// or an edit changes at least one, even within a coarse timestamp tick.
fn file_stamp(p: &Path) -> [u64; 4] {
    let Ok(m) = std::fs::metadata(p) else {
        return [u64::MAX; 4];
    };
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    #[cfg(unix)]
    let (ino, ctime) = {
        use std::os::unix::fs::MetadataExt;
        (
            m.ino(),
            (m.ctime() as u64)
                .wrapping_mul(1_000_000_000)
                .wrapping_add(m.ctime_nsec() as u64),
        )
    };
    #[cfg(not(unix))]
    let (ino, ctime) = (0, 0);
    [m.len(), mtime, ino, ctime]
}

/// Where the cache of one database lives: beside the install's `data/` tree.
pub fn path_for(
    root: &Path,
    system: &str,
    backend: &str,
    version: &str,
    nccl: Option<&str>,
) -> PathBuf {
    let base = root.parent().unwrap_or(root).join("cache");
    base.join(system)
        .join(backend)
        .join(version)
        .join(format!("tables-nccl-{}.idx", nccl.unwrap_or("none")))
}

// ---- encoding ----

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, x: u8) {
        self.0.push(x);
    }
    fn u32(&mut self, x: u32) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn i64(&mut self, x: i64) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn f64s(&mut self, v: &[f64]) {
        self.u32(v.len() as u32);
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes());
        }
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
    }
}

/// Streams a cache body: every read is counted against the bytes the header promised and fed
/// to the checksum; large arrays are converted chunk by chunk, so the file is never held whole.
struct R<'a> {
    src: &'a mut dyn Read,
    left: u64,
    at: u64,
    crc: crc32fast::Hasher,
    buf: Vec<u8>,
}

impl<'a> R<'a> {
    fn fill(&mut self, n: usize) -> Result<(), CacheError> {
        if n as u64 > self.left {
            return Err(corrupt(format!("truncated body at byte {}", self.at)));
        }
        self.buf.resize(n, 0);
        self.src
            .read_exact(&mut self.buf)
            .map_err(|e| corrupt(format!("truncated body at byte {}: {e}", self.at)))?;
        self.crc.update(&self.buf);
        self.left -= n as u64;
        self.at += n as u64;
        Ok(())
    }
    fn take(&mut self, n: usize) -> Result<&[u8], CacheError> {
        self.fill(n)?;
        Ok(&self.buf)
    }
    fn u8(&mut self) -> Result<u8, CacheError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, CacheError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or([0; 4]),
        ))
    }
    fn i64(&mut self) -> Result<i64, CacheError> {
        Ok(i64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or([0; 8]),
        ))
    }
    /// A count of items of at least `min` bytes each: never more than the bytes left allow, so
    /// no allocation is sized by an unchecked number.
    fn count(&mut self, min: u64) -> Result<usize, CacheError> {
        let n = self.u32()?;
        if u64::from(n) * min > self.left {
            return Err(corrupt(format!(
                "count {n} past the end at byte {}",
                self.at
            )));
        }
        Ok(n as usize)
    }
    fn f64s(&mut self) -> Result<Vec<f64>, CacheError> {
        const CHUNK: usize = 8192;
        let n = self.count(8)?;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let k = (n - out.len()).min(CHUNK);
            self.fill(k * 8)?;
            out.extend(
                self.buf
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))),
            );
        }
        Ok(out)
    }
    fn str(&mut self) -> Result<String, CacheError> {
        let n = self.count(1)?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| corrupt("a name is not UTF-8"))
    }
}

/// Map keys as fixed fields.
trait Key: Sized + Ord + Clone + Hash + Eq {
    fn put(&self, w: &mut W);
    fn get(r: &mut R) -> Result<Self, CacheError>;
}

impl Key for u8 {
    fn put(&self, w: &mut W) {
        w.u8(*self)
    }
    fn get(r: &mut R) -> Result<Self, CacheError> {
        r.u8()
    }
}
impl Key for bool {
    fn put(&self, w: &mut W) {
        w.u8(*self as u8)
    }
    fn get(r: &mut R) -> Result<Self, CacheError> {
        match r.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            x => Err(corrupt(format!("flag {x}"))),
        }
    }
}
impl Key for i64 {
    fn put(&self, w: &mut W) {
        w.i64(*self)
    }
    fn get(r: &mut R) -> Result<Self, CacheError> {
        r.i64()
    }
}

macro_rules! tuple_key {
    ($($t:ident $i:tt),+) => {
        impl<$($t: Key),+> Key for ($($t,)+) {
            fn put(&self, w: &mut W) {
                $(self.$i.put(w);)+
            }
            fn get(r: &mut R) -> Result<Self, CacheError> {
                Ok(($($t::get(r)?,)+))
            }
        }
    };
}
tuple_key!(A 0, B 1);
tuple_key!(A 0, B 1, C 2);
tuple_key!(A 0, B 1, C 2, D 3);
tuple_key!(A 0, B 1, C 2, D 3, E 4);
tuple_key!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);

fn put_map<K: Key>(w: &mut W, m: &FastMap<K, Grid>) {
    let mut keys: Vec<&K> = m.keys().collect();
    keys.sort();
    w.u32(keys.len() as u32);
    for k in keys {
        k.put(w);
        let g = &m[k];
        w.u8(g.dims as u8);
        w.u32(g.nodes.len() as u32);
        for n in &g.nodes {
            w.u32(n.start);
            w.u32(n.len);
            w.u32(n.child);
        }
        w.f64s(&g.keys);
        w.f64s(&g.leaves);
    }
}

fn get_map<K: Key>(r: &mut R, dims: usize) -> Result<FastMap<K, Grid>, CacheError> {
    let n = r.count(6)?;
    let mut m = FastMap::default();
    m.reserve(n);
    for _ in 0..n {
        let k = K::get(r)?;
        let d = r.u8()? as usize;
        if d != dims {
            return Err(corrupt(format!("a grid has {d} axes, its table {dims}")));
        }
        let nn = r.count(12)?;
        let raw = r.take(nn * 12)?;
        let u = |c: &[u8]| u32::from_le_bytes(c.try_into().unwrap_or([0; 4]));
        let nodes = raw
            .chunks_exact(12)
            .map(|c| Node {
                start: u(&c[0..4]),
                len: u(&c[4..8]),
                child: u(&c[8..12]),
            })
            .collect();
        let g = Grid {
            dims,
            nodes,
            keys: r.f64s()?,
            leaves: r.f64s()?,
        };
        g.check().map_err(|e| corrupt(format!("grid: {e}")))?;
        if m.insert(k, g).is_some() {
            return Err(corrupt("a slice appears twice"));
        }
    }
    Ok(m)
}

/// The body of a cache: every indexed table, then the source files (relative to `root`).
pub fn encode(t: &Tables, root: &Path) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(1 << 20));
    put_map(&mut w, &t.gemm);
    put_map(&mut w, &t.ctx_attn);
    put_map(&mut w, &t.gen_attn);
    put_map(&mut w, &t.ctx_mla);
    put_map(&mut w, &t.gen_mla);
    put_map(&mut w, &t.mla_bmm);
    put_map(&mut w, &t.moe);
    put_map(&mut w, &t.allreduce);
    put_map(&mut w, &t.nccl);
    put_map(&mut w, &t.quantize);
    w.u32(t.files.len() as u32);
    for f in &t.files {
        let p = Path::new(f);
        w.str(&p.strip_prefix(root).unwrap_or(p).to_string_lossy());
    }
    w.0
}

fn decode(r: &mut R, rows: u64, root: &Path) -> Result<Tables, CacheError> {
    let mut t = Tables::default();
    t.gemm = get_map(r, 3)?;
    t.ctx_attn = get_map(r, 3)?;
    t.gen_attn = get_map(r, 3)?;
    t.ctx_mla = get_map(r, 3)?;
    t.gen_mla = get_map(r, 3)?;
    t.mla_bmm = get_map(r, 1)?;
    t.moe = get_map(r, 1)?;
    t.allreduce = get_map(r, 1)?;
    t.nccl = get_map(r, 1)?;
    t.quantize = get_map(r, 2)?;
    t.rows = usize::try_from(rows).map_err(|_| corrupt("row count"))?;
    let n = r.count(4)?;
    for _ in 0..n {
        t.files.push(root.join(r.str()?).display().to_string());
    }
    if r.left != 0 {
        return Err(corrupt(format!("{} bytes after the tables", r.left)));
    }
    t.finish();
    Ok(t)
}

/// The whole cache file for `t` built from sources with fingerprint `source`.
pub fn to_bytes(t: &Tables, root: &Path, source: u64) -> Vec<u8> {
    let body = encode(t, root);
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&source.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&(t.rows as u64).to_le_bytes());
    out.extend_from_slice(&body);
    let crc = crc32fast::hash(&out[16..]);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Parse a cache of `total` bytes from `src`, expecting sources with fingerprint `source`.
/// The tables are returned only once the whole body was read and its checksum matched.
pub fn parse(
    src: &mut dyn Read,
    total: u64,
    root: &Path,
    source: u64,
) -> Result<Tables, CacheError> {
    let mut h = [0u8; HEADER];
    if total < HEADER as u64 || src.read_exact(&mut h).is_err() || &h[..8] != MAGIC {
        return Err(corrupt("not an aicfg index cache"));
    }
    let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().unwrap_or([0; 8]));
    let format = u32_at(8);
    if format != FORMAT {
        return Err(CacheError::Format(format));
    }
    let (crc, src_fp, len, rows) = (u32_at(12), u64_at(16), u64_at(24), u64_at(32));
    if len != total - HEADER as u64 {
        return Err(corrupt(format!(
            "header says {len} bytes of tables, the file holds {}",
            total - HEADER as u64
        )));
    }
    if src_fp != source {
        return Err(CacheError::Stale);
    }
    let mut r = R {
        src,
        left: len,
        at: 0,
        crc: {
            let mut c = crc32fast::Hasher::new();
            c.update(&h[16..]);
            c
        },
        buf: Vec::with_capacity(8 * 8192),
    };
    let t = decode(&mut r, rows, root)?;
    if r.crc.finalize() != crc {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(t)
}

/// As [`parse`], from bytes in memory.
pub fn from_bytes(b: &[u8], root: &Path, source: u64) -> Result<Tables, CacheError> {
    parse(&mut &b[..], b.len() as u64, root, source)
}

/// Read the cache at `path`.
pub fn read(path: &Path, root: &Path, source: u64) -> Result<Tables, CacheError> {
    let unreadable = |e: std::io::Error| CacheError::Unreadable(format!("{}: {e}", path.display()));
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(CacheError::Missing),
        Err(e) => return Err(unreadable(e)),
    };
    let m = f.metadata().map_err(unreadable)?;
    if !m.is_file() || m.len() > MAX_CACHE_BYTES {
        return Err(corrupt(format!(
            "{} is not a cache file of at most 1 GiB",
            path.display()
        )));
    }
    let mut src = std::io::BufReader::with_capacity(1 << 16, Bounded::new(f, m.len()));
    parse(&mut src, m.len(), root, source)
}

/// Write the cache at `path` atomically (a temporary file renamed over it), so a concurrent
/// reader sees the old file or the new one, never half of one.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("cache"),
        std::process::id()
    ));
    let res = std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}
