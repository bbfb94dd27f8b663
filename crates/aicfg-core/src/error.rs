//! Typed errors of the core library. Every message says what was wrong and what to do.
use std::fmt;
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum AicfgError {
    #[error("unknown {what} '{given}'; known: {known}")]
    Unknown {
        what: &'static str,
        given: String,
        known: String,
    },
    /// [`AicfgError::Unknown`] with the known name a typo most likely meant
    /// (built by [`crate::suggest::unknown`]).
    #[error("unknown {what} '{given}'; did you mean '{suggestion}'? known: {known}")]
    UnknownNear {
        what: &'static str,
        given: String,
        suggestion: String,
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
    Experiment(Box<ExpError>),
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

/// What went wrong in an experiment file, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpError {
    pub experiment: Option<String>,
    /// Dotted key path inside the experiment, e.g. `config.worker_config.tp_list[2]`.
    pub key: Option<String>,
    /// 1-based line and column (YAML syntax errors).
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl ExpError {
    pub fn file(msg: impl Into<String>) -> Self {
        ExpError {
            experiment: None,
            key: None,
            line: None,
            column: None,
            message: msg.into(),
        }
    }
    pub fn exp(exp: &str, msg: impl Into<String>) -> Self {
        ExpError {
            experiment: Some(exp.to_string()),
            ..ExpError::file(msg)
        }
    }
    pub fn at(exp: &str, key: &str, msg: impl Into<String>) -> Self {
        ExpError {
            experiment: Some(exp.to_string()),
            key: (!key.is_empty()).then(|| key.to_string()),
            ..ExpError::file(msg)
        }
    }
}

impl fmt::Display for ExpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.experiment, &self.key) {
            (Some(e), Some(k)) => write!(f, "experiment '{e}', key '{k}'")?,
            (Some(e), None) => write!(f, "experiment '{e}'")?,
            _ => write!(f, "experiment file")?,
        }
        if let Some(l) = self.line {
            write!(f, ", line {l}")?;
            if let Some(c) = self.column {
                write!(f, " column {c}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl From<ExpError> for AicfgError {
    fn from(e: ExpError) -> Self {
        AicfgError::Experiment(Box::new(e))
    }
}
