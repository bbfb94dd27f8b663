//! Typed errors of the core library. Every message says what was wrong and what to do.
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum AicfgError {
    #[error("unknown {what} '{given}'; known: {known}")]
    Unknown {
        what: &'static str,
        given: String,
        known: String,
    },
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("model config {path}: {reason}")]
    ModelConfig { path: String, reason: String },
    #[error("unsupported architecture '{arch}' in {path}; supported families: {supported}")]
    UnsupportedArchitecture {
        arch: String,
        path: String,
        supported: String,
    },
    #[error("system file {path}: {reason}")]
    SystemFile { path: String, reason: String },
    #[error("system '{system}' has no {dtype} tensor cores, so quantization '{quant}' cannot run there; pick a mode that uses {available}")]
    UnsupportedDtype {
        system: String,
        dtype: String,
        quant: String,
        available: String,
    },
    #[error("parallel configuration {parallel} is invalid for {model}: {reason}")]
    Parallel {
        parallel: String,
        model: String,
        reason: String,
    },
    #[error("calibration file: {0}")]
    Calibration(String),
    /// An experiment file (`cli exp`): names the experiment, key path and line where known.
    #[error("{0}")]
    Experiment(Box<crate::task::ExpError>),
    /// A measured-database file that cannot be read (corrupt, truncated, missing column).
    #[error("performance database file {path}: {reason}")]
    PerfData { path: String, reason: String },
    /// No installed database for what was asked.
    #[error("{0}")]
    PerfDbMissing(String),
    /// SILICON mode: the measured tables cannot answer an op.
    #[error("performance data missing: {0} (use --database-mode hybrid to fall back to empirical for such ops)")]
    PerfDataMissing(String),
    #[error("data install: {0}")]
    Install(String),
    /// A user-sized input past one of the bounds in `limits`.
    #[error("{what}: {detail}")]
    Limit { what: String, detail: String },
    /// A user-named file that cannot be read (missing, a directory, too large, not text).
    #[error("reading {path}: {reason}")]
    Read { path: String, reason: String },
    /// The caller stopped the search (a web request past its time limit).
    #[error("the search was cancelled")]
    Cancelled,
}

pub type Result<T> = std::result::Result<T, AicfgError>;

impl AicfgError {
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        AicfgError::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
