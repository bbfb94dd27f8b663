//! Size-bounded reading, the bottom layer every module that reads files uses (user-named files,
//! op tables, archives being unpacked): one reader that fails past a byte limit, and the
//! whole-file helpers built on it. Imports only `error`, so the store (`perfdb`) can use it too.
use crate::error::{AicfgError, Result};
use std::io::{Read, Write};
use std::path::Path;

fn read_err(path: &Path, reason: impl Into<String>) -> AicfgError {
    AicfgError::Read {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// A reader that fails once more than `limit` bytes came through (streams such as CSV).
pub struct Bounded<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Bounded<R> {
    pub fn new(inner: R, limit: u64) -> Self {
        Bounded {
            inner,
            left: limit,
            limit,
        }
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            // One byte past the limit tells a file of exactly `limit` bytes from a longer one.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other(format!(
                    "larger than the {} limit",
                    human_bytes(self.limit)
                ))),
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Opens a user-named file for streaming, at most `limit` bytes. Directories are refused up front.
pub fn open_bounded(path: &Path, limit: u64) -> Result<Bounded<std::fs::File>> {
    let meta = std::fs::metadata(path).map_err(|e| read_err(path, e.to_string()))?;
    if meta.is_dir() {
        return Err(read_err(path, "is a directory, expected a file"));
    }
    if meta.is_file() && meta.len() > limit {
        return Err(read_err(
            path,
            format!(
                "is {}, larger than the {} limit",
                human_bytes(meta.len()),
                human_bytes(limit)
            ),
        ));
    }
    let f = std::fs::File::open(path).map_err(|e| read_err(path, e.to_string()))?;
    Ok(Bounded::new(f, limit))
}

/// Reads a user-named file whole, at most `limit` bytes (devices and pipes included: reading
/// stops at the limit).
pub fn read_bytes(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let mut r = open_bounded(path, limit)?;
    // Sized from the file up front: one allocation, no regrowth (large files are read whole).
    let hint = std::fs::metadata(path).map_or(0, |m| m.len().min(limit));
    let mut buf = Vec::with_capacity(usize::try_from(hint).unwrap_or(0).saturating_add(1));
    r.read_to_end(&mut buf)
        .map_err(|e| read_err(path, e.to_string()))?;
    Ok(buf)
}

/// As [`read_bytes`], as UTF-8 text.
pub fn read_text(path: &Path, limit: u64) -> Result<String> {
    String::from_utf8(read_bytes(path, limit)?).map_err(|_| read_err(path, "is not UTF-8 text"))
}

/// `1.5 MiB`-style size for messages.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} bytes")
    } else if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Streams `src` into `dst`, failing once more than `limit` bytes came through (a compressed
/// entry may claim any size; memory stays flat however far it inflates). Returns bytes copied.
pub fn copy_limited(src: impl Read, dst: &mut impl Write, limit: u64) -> std::io::Result<u64> {
    std::io::copy(&mut Bounded::new(src, limit), dst)
}

/// Reads `src` whole, failing once more than `limit` bytes came through.
pub fn read_limited(src: impl Read, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    Bounded::new(src, limit).read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_reads() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"12345").unwrap();
        assert_eq!(read_text(&p, 5).unwrap(), "12345");
        assert!(read_text(&p, 4).unwrap_err().to_string().contains("limit"));
        assert!(read_text(d.path(), 4)
            .unwrap_err()
            .to_string()
            .contains("directory"));
        if Path::new("/dev/zero").exists() {
            let e = read_bytes(Path::new("/dev/zero"), 1 << 16).unwrap_err();
            assert!(e.to_string().contains("64 KiB limit"), "{e}");
        }
    }

    #[test]
    fn streams_stop_at_the_limit() {
        let mut out = Vec::new();
        assert_eq!(copy_limited(&b"abcd"[..], &mut out, 4).unwrap(), 4);
        assert_eq!(out, b"abcd");
        let e = copy_limited(&b"abcde"[..], &mut Vec::new(), 4).unwrap_err();
        assert!(e.to_string().contains("4 bytes limit"), "{e}");
        assert!(read_limited(std::io::repeat(0), 1 << 20)
            .unwrap_err()
            .to_string()
            .contains("1 MiB limit"));
    }
}
