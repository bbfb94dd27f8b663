//! Input handling shared by the commands and the webapp: field-tagged errors, quantization and
//! model/system/calibration loading.
use aicfg_core::estimate::QuantRequest;
use aicfg_core::perf::EmpiricalParams;
use aicfg_core::quant::{CommQuant, FmhaQuant, GemmQuant, KvQuant, MoeQuant};
use aicfg_core::{ModelRegistry, SystemRegistry};
use std::path::PathBuf;

/// A bad input, with the input field it belongs to (the webapp shows it next to that field).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct InputError {
    /// The JSON key of the field (the CLI flag with `_`).
    pub field: &'static str,
    pub message: String,
}

impl InputError {
    pub fn new(field: &'static str, message: impl std::fmt::Display) -> Self {
        InputError {
            field,
            message: message.to_string(),
        }
    }
}

/// Tags a fallible value with the field it came from.
pub trait OnField<T> {
    fn on(self, field: &'static str) -> std::result::Result<T, InputError>;
}

impl<T, E: std::fmt::Display> OnField<T> for std::result::Result<T, E> {
    fn on(self, field: &'static str) -> std::result::Result<T, InputError> {
        self.map_err(|e| InputError::new(field, e))
    }
}

pub type InputResult<T> = std::result::Result<T, InputError>;

fn parse_opt<T>(
    v: &Option<String>,
    field: &'static str,
    f: fn(&str) -> aicfg_core::Result<T>,
) -> InputResult<Option<T>> {
    v.as_deref().map(f).transpose().on(field)
}

/// The five per-component formats (gemm, moe, kvcache, fmha, comm); unset ones come from the
/// checkpoint.
pub fn quant_request(modes: [&Option<String>; 5]) -> InputResult<QuantRequest> {
    let [gemm, moe, kv, fmha, comm] = modes;
    Ok(QuantRequest {
        gemm: parse_opt(gemm, "gemm_quant_mode", GemmQuant::parse)?,
        moe: parse_opt(moe, "moe_quant_mode", MoeQuant::parse)?,
        kvcache: parse_opt(kv, "kvcache_quant_mode", KvQuant::parse)?,
        fmha: parse_opt(fmha, "fmha_quant_mode", FmhaQuant::parse)?,
        comm: parse_opt(comm, "comm_quant_mode", CommQuant::parse)?,
    })
}

/// The built-in systems plus those of `--systems-path`.
pub fn load_systems(dir: &Option<PathBuf>) -> InputResult<SystemRegistry> {
    let mut systems = SystemRegistry::builtin();
    if let Some(dir) = dir {
        systems.add_dir(dir).on("systems_path")?;
    }
    Ok(systems)
}

/// `--calibration FILE`, replacing the embedded empirical constants.
pub fn load_calibration(path: &Option<PathBuf>) -> InputResult<Option<EmpiricalParams>> {
    let Some(p) = path else { return Ok(None) };
    let text = aicfg_core::limits::read_text(p, aicfg_core::limits::MAX_TEXT_FILE_BYTES)
        .on("calibration")?;
    EmpiricalParams::from_yaml(&text)
        .map(Some)
        .on("calibration")
}

/// The model of `model` / `model_config`; a web request may not name a local path.
pub fn resolve_model(
    name: &str,
    config: Option<&str>,
    local_files: bool,
) -> InputResult<aicfg_core::ModelSpec> {
    let registry = ModelRegistry::builtin();
    if let Some(text) = config {
        let name = if name.trim().is_empty() {
            "custom"
        } else {
            name.trim()
        };
        return aicfg_core::ModelSpec::from_hf_json(text, name, "pasted config.json")
            .on("model_config");
    }
    if name.trim().is_empty() {
        return Err(InputError::new(
            "model",
            "--model is required: a built-in name, or paste a config.json",
        ));
    }
    if local_files {
        registry.resolve(name).on("model")
    } else {
        registry.resolve_builtin(name).on("model")
    }
}
