//! The JSON API behind the page (docs/api.md) and the embedded assets.
use crate::view;
use aicfg_core::input::{DefaultInput, EstimateInput, InputError};
use aicfg_core::quant::{CommQuant, FmhaQuant, GemmQuant, KvQuant, MoeQuant};
use aicfg_core::{AicfgError, Backend, ModelRegistry, SystemRegistry};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// Limits of one server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest a search may run, counted from when it gets its slot; past it the search is
    /// cancelled and its slot freed.
    pub time_limit: Duration,
    /// Longest a request waits for a free slot before it is refused as busy.
    pub queue_limit: Duration,
    /// Largest request body.
    pub body_limit: usize,
    /// Searches and estimates running at once; the rest wait.
    pub max_searches: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            time_limit: Duration::from_secs(30),
            queue_limit: Duration::from_secs(30),
            body_limit: 1 << 20,
            max_searches: 2,
        }
    }
}

/// Shared by every request.
pub struct AppState {
    limits: Limits,
    slots: Arc<Semaphore>,
    running: AtomicUsize,
    /// Most searches seen running at once (tests check the semaphore holds).
    pub peak: AtomicUsize,
}

pub fn router(limits: Limits) -> Router {
    router_with_state(limits).0
}

/// The router and its state, so tests can read the state.
pub fn router_with_state(limits: Limits) -> (Router, Arc<AppState>) {
    let state = Arc::new(AppState {
        limits,
        slots: Arc::new(Semaphore::new(limits.max_searches.max(1))),
        running: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", INDEX_HTML)))
        .route(
            "/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/style.css",
            get(|| asset("text/css; charset=utf-8", STYLE_CSS)),
        )
        .route("/api/options", get(options))
        .route("/api/default", post(default_search))
        .route("/api/estimate", post(estimate))
        .route("/api/save", post(save::save_zip))
        .route("/api/exp", post(exp::run_experiments))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, None, "no such page or API route")
        })
        .layer(DefaultBodyLimit::max(limits.body_limit))
        .with_state(state.clone());
    (app, state)
}

async fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `{"error": "...", "field": "isl"}` with a 4xx status (5xx only for a timeout or a bug).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    field: Option<String>,
    message: String,
    /// More keys of the error body (an experiment error's experiment, key and line).
    extra: serde_json::Map<String, Value>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        field: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            field,
            message: message.into(),
            extra: serde_json::Map::new(),
        }
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.field.map(str::to_string),
            e.message,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.extra;
        body.insert("error".into(), self.message.into());
        body.insert("field".into(), self.field.into());
        (self.status, Json(Value::Object(body))).into_response()
    }
}

/// The body's bytes, or the 4xx of a missing or oversized body.
fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|r| {
        let status = r.status();
        let msg = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "request body is larger than the limit".to_string()
        } else {
            r.body_text()
        };
        ApiError::new(status, None, msg)
    })
}

/// Parses a body, naming the offending field when a value has the wrong type or is unknown.
fn parse_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body_bytes(body)?;
    typed(&mut serde_json::Deserializer::from_slice(&bytes))
}

/// Deserializes with the path of the first bad value, as a 400 naming its top-level key.
fn typed<'de, T: serde::Deserialize<'de>, D: serde::Deserializer<'de>>(
    de: D,
) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner().to_string();
        // The top-level key; an unknown key has no path, its name is in backticks.
        let field = match path.split(['.', '[']).next() {
            Some(f) if !f.is_empty() && f != "?" => Some(f.to_string()),
            _ if inner.starts_with("unknown field") || inner.starts_with("duplicate field") => {
                inner.split('`').nth(1).map(str::to_string)
            }
            _ => None,
        };
        let msg = if matches!(path.as_str(), "" | "." | "?") {
            format!("invalid JSON body: {inner}")
        } else {
            format!("invalid value for {path}: {inner}")
        };
        ApiError::new(StatusCode::BAD_REQUEST, field, msg)
    })
}

/// The request field a core validation error belongs to, where it names one.
fn core_error(e: AicfgError) -> ApiError {
    if e == AicfgError::Cancelled {
        return ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            None,
            "the search was cancelled",
        );
    }
    InputError::from_core(e).into()
}

/// Runs `work` on a blocking thread, holding one of the search slots, within the time limit.
/// `work` gets the cancellation flag the search checks in its loops: past the limit the flag is
/// set, the search stops at its next step and its thread gives the slot back.
async fn run_limited<T: Send + 'static>(
    state: &Arc<AppState>,
    work: impl FnOnce(&AtomicBool) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let limit = state.limits.time_limit;
    let permit = tokio::time::timeout(
        state.limits.queue_limit,
        state.slots.clone().acquire_owned(),
    )
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "the server is busy with other searches; try again",
        )
    })?
    .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, None, "server stopping"))?;
    let cancel = Arc::new(AtomicBool::new(false));
    let st = state.clone();
    let flag = cancel.clone();
    // The clock starts once the search has its slot: queueing is not search time.
    let deadline = tokio::time::Instant::now() + limit;
    let handle = tokio::task::spawn_blocking(move || {
        // The slot is held until the work really ends, so abandoned searches still count.
        let _permit = permit;
        let now = st.running.fetch_add(1, Ordering::SeqCst) + 1;
        st.peak.fetch_max(now, Ordering::SeqCst);
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&flag)));
        st.running.fetch_sub(1, Ordering::SeqCst);
        match out {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    });
    match tokio::time::timeout_at(deadline, handle).await {
        Ok(Ok(r)) => r,
        Err(_) => {
            cancel.store(true, Ordering::SeqCst);
            Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                None,
                format!(
                    "the search took longer than {} s; narrow it (fewer GPUs, one backend or mode)",
                    limit.as_secs_f64()
                ),
            ))
        }
        Ok(Err(_)) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "internal error while searching",
        )),
    }
}

async fn default_search(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let input: DefaultInput = parse_body(body)?;
    let req = input.search_request()?;
    let result = run_limited(&state, move |cancel| {
        aicfg_core::search::search_with(&req, None, Some(cancel)).map_err(core_error)
    })
    .await?;
    let mut v = view::json_view(&result);
    // Each top row carries the estimate that explains it, built here from the row and the
    // search's inputs (MTP acceptance included), so the page only posts it back.
    for (m, mv) in result
        .modes
        .iter()
        .zip(v["modes"].as_array_mut().into_iter().flatten())
    {
        for (c, cv) in m
            .top
            .iter()
            .zip(mv["top"].as_array_mut().into_iter().flatten())
        {
            cv["estimate"] = serde_json::to_value(EstimateInput::for_row(&input, c))
                .expect("estimate input serializes");
        }
    }
    Ok(Json(v))
}

async fn estimate(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let input: EstimateInput = parse_body(body)?;
    let req = input.estimate_request()?;
    let report = run_limited(&state, move |_| {
        aicfg_core::estimate(&req).map_err(core_error)
    })
    .await?;
    Ok(Json(view::estimate_json(&report)))
}

fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<&'static str> {
    all.iter().map(|q| name(*q)).collect()
}

/// What the page's pickers offer, and the form's defaults.
async fn options(State(state): State<Arc<AppState>>) -> Json<Value> {
    let mut systems = SystemRegistry::builtin().names();
    systems.sort();
    let mut backends = names(&Backend::ALL, Backend::name);
    backends.push("auto");
    let defaults = DefaultInput {
        model: "Qwen/Qwen3-32B".into(),
        system: "h200_sxm".into(),
        total_gpus: Some(32),
        ..DefaultInput::default()
    };
    Json(json!({
        "models": ModelRegistry::builtin().ids(),
        "systems": systems,
        "backends": backends,
        "serving_modes": ["auto", "agg", "disagg"],
        "estimate_modes": ["agg", "disagg", "static"],
        "database_modes": ["auto", "hybrid", "silicon", "empirical", "sol"],
        "quant": {
            "gemm": names(GemmQuant::ALL, GemmQuant::name),
            "moe": names(MoeQuant::ALL, MoeQuant::name),
            "kvcache": names(KvQuant::ALL, KvQuant::name),
            "fmha": names(FmhaQuant::ALL, FmhaQuant::name),
            "comm": names(CommQuant::ALL, CommQuant::name),
        },
        "defaults": defaults,
        "limits": {
            "body_bytes": state.limits.body_limit,
            "time_limit_s": state.limits.time_limit.as_secs_f64(),
            "max_searches": state.limits.max_searches,
        },
        // POST /api/save returns a row's --save_dir files as a zip.
        "save_dir_zip": true,
        "exp_example": exp::EXAMPLE,
    }))
}

mod exp;
mod save;
#[cfg(test)]
mod tests;
