//! `POST /api/exp`: an experiment YAML, run like `aicfg cli exp --json` (built-in models and
//! systems only: a web request reads no local files).
use super::{parse_body, run_limited, ApiError, AppState};
use aicfg_core::task::{parse_experiments, ExpError};
use aicfg_core::{AicfgError, ModelRegistry, SystemRegistry};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// The page's prefilled YAML: two small studies that finish in well under a second.
pub const EXAMPLE: &str = include_str!("../../../../../examples/exp_compare_small.yaml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpInput {
    yaml: String,
    /// Rows per top-N table, as `cli exp --top_n` (5).
    #[serde(default = "default_top_n")]
    top_n: usize,
}

fn default_top_n() -> usize {
    aicfg_core::input::DEFAULT_TOP_N
}

/// A 422 carrying where in the YAML the problem is.
fn exp_error(e: &ExpError) -> ApiError {
    let mut err = ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("yaml".into()),
        e.to_string(),
    );
    err.extra.insert("experiment".into(), json!(e.experiment));
    err.extra.insert("key".into(), json!(e.key));
    err.extra.insert("line".into(), json!(e.line));
    err.extra.insert("column".into(), json!(e.column));
    err
}

fn search_error(e: &anyhow::Error) -> ApiError {
    match e.downcast_ref::<AicfgError>() {
        Some(AicfgError::Experiment(x)) => exp_error(x),
        _ => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("yaml".into()),
            format!("{e:#}"),
        ),
    }
}

pub(super) async fn run_experiments(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let input: ExpInput = parse_body(body)?;
    let outcomes = run_limited(&state, move |cancel| {
        let models = ModelRegistry::builtin_only();
        let systems = SystemRegistry::builtin();
        let exps = parse_experiments(&input.yaml, &models, &systems).map_err(|e| match e {
            AicfgError::Experiment(x) => exp_error(&x),
            e => super::core_error(e),
        })?;
        let limits = aicfg_core::limits::SearchLimits::default();
        let study =
            aicfg_core::task::search_all(exps, &models, &systems, input.top_n, &limits, |req| {
                aicfg_core::search::search_with(req, None, Some(cancel))
            })
            .map_err(super::core_error)?;
        // A study where nothing could run is an error, like one failing search.
        match (study.outcomes.is_empty(), study.failed.first()) {
            (true, Some(f)) => Err(search_error(&anyhow::anyhow!(
                "experiment '{}': {}",
                f.experiment.name,
                f.reason
            ))),
            _ => Ok(study),
        }
    })
    .await?;
    Ok(Json(crate::view::study_json(&outcomes)))
}

#[cfg(test)]
mod tests;
