//! Typed errors of the generator.
use thiserror::Error;

#[derive(Debug, Error)]
pub enum GenError {
    #[error("--generator-set expects KEY=VALUE, got '{0}'")]
    BadAssignment(String),
    #[error("unknown generator key '{key}'; known keys: {known}")]
    UnknownKey { key: String, known: String },
    #[error("bad value '{value}' for generator key '{key}': {reason}")]
    BadValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error("template {name}: {source}")]
    Template {
        name: String,
        #[source]
        source: minijinja::Error,
    },
    #[error("YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    #[error("CSV: {0}")]
    Csv(String),
    #[error("plot: {0}")]
    Plot(String),
    #[error("{0}")]
    Invalid(String),
    /// `--generated_config_version` / `--dynamo-version` names no release of the matrix.
    #[error("{0}")]
    Version(String),
    #[error(transparent)]
    Core(#[from] aicfg_core::AicfgError),
}

pub type Result<T> = std::result::Result<T, GenError>;
