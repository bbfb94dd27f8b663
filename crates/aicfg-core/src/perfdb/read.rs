//! Column-wise parquet reading (no Arrow): only the named columns, strings interned per column.
//! Every failure (unreadable file, corrupt page, missing or mistyped column) is one typed error
//! naming the file.
use crate::error::{AicfgError, Result};
use parquet::basic::Type as Physical;
use parquet::column::reader::ColumnReader;
use parquet::file::reader::{FileReader, SerializedFileReader};
use std::collections::HashMap;
use std::path::Path;

/// One column, decoded. Nulls become 0 / NaN / "" (the tables' own "absent" sentinels).
#[derive(Debug, Clone)]
pub enum Col {
    Int(Vec<i64>),
    Float(Vec<f64>),
    /// Interned: per-row index into `dict`.
    Str {
        ids: Vec<u16>,
        dict: Vec<String>,
    },
}

impl Col {
    pub fn int(&self, i: usize) -> i64 {
        match self {
            Col::Int(v) => v[i],
            Col::Float(v) => v[i] as i64,
            Col::Str { .. } => 0,
        }
    }
    pub fn float(&self, i: usize) -> f64 {
        match self {
            Col::Int(v) => v[i] as f64,
            Col::Float(v) => v[i],
            Col::Str { .. } => f64::NAN,
        }
    }
    pub fn str(&self, i: usize) -> &str {
        match self {
            Col::Str { ids, dict } => &dict[ids[i] as usize],
            _ => "",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Frame {
    pub rows: usize,
    pub cols: HashMap<String, Col>,
}

impl Frame {
    /// A column the caller asked for as required (present by construction).
    pub fn col(&self, name: &str) -> &Col {
        &self.cols[name]
    }
    pub fn opt(&self, name: &str) -> Option<&Col> {
        self.cols.get(name)
    }
}

/// Rows one table may claim (the largest real table has a few hundred thousand).
pub const MAX_ROWS: usize = 1 << 23;
/// Rows per byte of file a table may claim: a footer saying 2^40 rows in 10 KB is corrupt.
const MAX_ROWS_PER_BYTE: u64 = 1024;
/// Reserved up front per column; more grows as rows really arrive.
const PREALLOC_ROWS: usize = 1 << 16;

fn err(path: &Path, reason: impl Into<String>) -> AicfgError {
    AicfgError::PerfData {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Read `required` (error if absent) and `optional` columns of one parquet file.
pub fn read_columns(path: &Path, required: &[&str], optional: &[&str]) -> Result<Frame> {
    let file = std::fs::File::open(path).map_err(|e| err(path, e.to_string()))?;
    let file_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    let reader = SerializedFileReader::new(file)
        .map_err(|e| err(path, format!("not a readable parquet file ({e})")))?;
    let meta = reader.metadata();
    let schema = meta.file_metadata().schema_descr();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, c) in schema.columns().iter().enumerate() {
        index.insert(c.name(), i);
    }
    for r in required {
        if !index.contains_key(r) {
            return Err(err(path, format!("missing column '{r}'")));
        }
    }
    let claimed = meta.file_metadata().num_rows();
    let rows = usize::try_from(claimed)
        .ok()
        .filter(|&r| r <= MAX_ROWS && r as u64 <= file_bytes.saturating_mul(MAX_ROWS_PER_BYTE))
        .ok_or_else(|| {
            err(
                path,
                format!(
                    "the footer claims {claimed} rows in a {file_bytes}-byte file (at most {MAX_ROWS}); the file is corrupt"
                ),
            )
        })?;
    let group_rows: i64 = meta.row_groups().iter().map(|g| g.num_rows().max(0)).sum();
    if group_rows != claimed {
        return Err(err(
            path,
            format!(
                "row groups hold {group_rows} rows, the footer says {claimed}; the file is corrupt"
            ),
        ));
    }
    let cap = rows.min(PREALLOC_ROWS);
    let mut frame = Frame {
        rows,
        cols: HashMap::new(),
    };
    for name in required.iter().chain(optional) {
        let Some(&ci) = index.get(name) else {
            continue;
        };
        let descr = schema.column(ci);
        let col = match descr.physical_type() {
            Physical::INT64 | Physical::INT32 => Col::Int(Vec::with_capacity(cap)),
            Physical::DOUBLE | Physical::FLOAT => Col::Float(Vec::with_capacity(cap)),
            Physical::BYTE_ARRAY => Col::Str {
                ids: Vec::with_capacity(cap),
                dict: Vec::new(),
            },
            t => {
                return Err(err(
                    path,
                    format!("column '{name}' has unsupported type {t}"),
                ))
            }
        };
        frame.cols.insert(name.to_string(), col);
    }
    let mut seen: HashMap<String, HashMap<Vec<u8>, u16>> = HashMap::new();
    for g in 0..reader.num_row_groups() {
        let rg = reader
            .get_row_group(g)
            .map_err(|e| err(path, format!("row group {g}: {e}")))?;
        let n = rg.metadata().num_rows().max(0) as usize;
        for (name, col) in frame.cols.iter_mut() {
            let ci = index[name.as_str()];
            let nullable = schema.column(ci).max_def_level() > 0;
            let cr = rg
                .get_column_reader(ci)
                .map_err(|e| err(path, format!("column '{name}': {e}")))?;
            let mut defs: Vec<i16> = Vec::new();
            let bad = |e: parquet::errors::ParquetError| err(path, format!("column '{name}': {e}"));
            // Values come back without nulls; `defs` says where they belong.
            macro_rules! read_all {
                ($r:expr, $vals:expr) => {{
                    let mut got = 0usize;
                    while got < n {
                        let (recs, _, _) = $r
                            .read_records(
                                n - got,
                                if nullable { Some(&mut defs) } else { None },
                                None,
                                $vals,
                            )
                            .map_err(bad)?;
                        if recs == 0 {
                            return Err(err(
                                path,
                                format!("column '{name}' ends early (truncated file?)"),
                            ));
                        }
                        got += recs;
                    }
                }};
            }
            match (cr, col) {
                (ColumnReader::Int64ColumnReader(mut r), Col::Int(out)) => {
                    let mut v: Vec<i64> = Vec::with_capacity(n.min(PREALLOC_ROWS));
                    read_all!(r, &mut v);
                    spread(out, v, &defs, nullable, 0);
                }
                (ColumnReader::Int32ColumnReader(mut r), Col::Int(out)) => {
                    let mut v: Vec<i32> = Vec::with_capacity(n.min(PREALLOC_ROWS));
                    read_all!(r, &mut v);
                    spread(
                        out,
                        v.into_iter().map(i64::from).collect(),
                        &defs,
                        nullable,
                        0,
                    );
                }
                (ColumnReader::DoubleColumnReader(mut r), Col::Float(out)) => {
                    let mut v: Vec<f64> = Vec::with_capacity(n.min(PREALLOC_ROWS));
                    read_all!(r, &mut v);
                    spread(out, v, &defs, nullable, f64::NAN);
                }
                (ColumnReader::FloatColumnReader(mut r), Col::Float(out)) => {
                    let mut v: Vec<f32> = Vec::with_capacity(n.min(PREALLOC_ROWS));
                    read_all!(r, &mut v);
                    spread(
                        out,
                        v.into_iter().map(f64::from).collect(),
                        &defs,
                        nullable,
                        f64::NAN,
                    );
                }
                (ColumnReader::ByteArrayColumnReader(mut r), Col::Str { ids, dict }) => {
                    let mut v: Vec<parquet::data_type::ByteArray> =
                        Vec::with_capacity(n.min(PREALLOC_ROWS));
                    read_all!(r, &mut v);
                    let map = seen.entry(name.clone()).or_default();
                    if dict.is_empty() {
                        dict.push(String::new());
                        map.insert(Vec::new(), 0);
                    }
                    let mut intern = |b: &[u8]| -> Result<u16> {
                        if let Some(id) = map.get(b) {
                            return Ok(*id);
                        }
                        let s = std::str::from_utf8(b)
                            .map_err(|_| err(path, format!("column '{name}' is not UTF-8")))?;
                        let id = u16::try_from(dict.len()).map_err(|_| {
                            err(
                                path,
                                format!("column '{name}' has too many distinct values"),
                            )
                        })?;
                        dict.push(s.to_string());
                        map.insert(b.to_vec(), id);
                        Ok(id)
                    };
                    let vals: Vec<u16> =
                        v.iter().map(|b| intern(b.data())).collect::<Result<_>>()?;
                    spread(ids, vals, &defs, nullable, 0);
                }
                _ => return Err(err(path, format!("column '{name}' has an unexpected type"))),
            }
        }
    }
    for (name, c) in &frame.cols {
        let len = match c {
            Col::Int(v) => v.len(),
            Col::Float(v) => v.len(),
            Col::Str { ids, .. } => ids.len(),
        };
        if len != rows {
            return Err(err(
                path,
                format!("column '{name}' has {len} values for {rows} rows"),
            ));
        }
    }
    Ok(frame)
}

/// Append `vals` to `out`, placing `null` where the definition level says the value is absent.
fn spread<T: Copy>(out: &mut Vec<T>, vals: Vec<T>, defs: &[i16], nullable: bool, null: T) {
    if !nullable || defs.len() == vals.len() {
        out.extend(vals);
        return;
    }
    let mut it = vals.into_iter();
    for d in defs {
        if *d > 0 {
            out.push(it.next().unwrap_or(null));
        } else {
            out.push(null);
        }
    }
}
