//! `POST /api/save`: one top-table row's `--save_dir` files as a zip, built in memory.
use super::{core_error, run_limited, typed, ApiError, AppState};
use aicfg_core::input::DefaultInput;
use aicfg_core::ServeMode;
use aicfg_gen::{GenError, OutFile, SaveRequest};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use std::io::Write;
use std::sync::Arc;

/// The keys `/api/save` adds to the `/api/default` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SaveExtra {
    mode: String,
    rank: usize,
    #[serde(default)]
    generator_set: Vec<String>,
    #[serde(default)]
    generated_config_version: Option<String>,
    /// `--dynamo-version`: picks the release (and image) from the version matrix.
    #[serde(default)]
    dynamo_version: Option<String>,
}

const EXTRA_KEYS: [&str; 5] = [
    "mode",
    "rank",
    "generator_set",
    "generated_config_version",
    "dynamo_version",
];

fn unprocessable(field: &str, msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, Some(field.into()), msg)
}

/// Splits the body into the search input and the save keys; both keep their field names in errors.
fn parse(bytes: &[u8]) -> Result<(DefaultInput, SaveExtra), ApiError> {
    let v: Value = typed(&mut serde_json::Deserializer::from_slice(bytes))?;
    let Value::Object(mut rest) = v else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            None,
            "invalid JSON body: expected an object",
        ));
    };
    let mut extra = serde_json::Map::new();
    for k in EXTRA_KEYS {
        if let Some(v) = rest.remove(k) {
            extra.insert(k.into(), v);
        }
    }
    let input: DefaultInput = typed(Value::Object(rest))?;
    let extra: SaveExtra = typed(Value::Object(extra))?;
    Ok((input, extra))
}

/// A generator error names `generator_set` when an override caused it.
fn gen_error(e: GenError) -> ApiError {
    match e {
        GenError::BadAssignment(_) | GenError::UnknownKey { .. } | GenError::BadValue { .. } => {
            unprocessable("generator_set", e.to_string())
        }
        e => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            format!("generating the files failed: {e}"),
        ),
    }
}

/// Stored, not extracted, so plain characters suffice: the version lands in YAML and scripts.
fn check_version(field: &str, v: &str) -> Result<(), ApiError> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(unprocessable(
            field,
            format!("'{v}' is not a version (letters, digits and . _ + - only, e.g. 1.3.0rc23)"),
        ))
    }
}

/// A deflated zip of `files` under `root/`; fixed timestamps and modes make it byte-stable.
pub fn zip_tree(root: &str, files: &[OutFile]) -> zip::result::ZipResult<Vec<u8>> {
    use zip::write::SimpleFileOptions;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let base = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    for f in files {
        let mode = if f.path.ends_with(".sh") {
            0o755
        } else {
            0o644
        };
        w.start_file(format!("{root}/{}", f.path), base.unix_permissions(mode))?;
        w.write_all(&f.bytes)?;
    }
    Ok(w.finish()?.into_inner())
}

pub(super) async fn save_zip(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = super::body_bytes(body)?;
    let (input, extra) = parse(&bytes)?;
    let mode = match extra.mode.as_str() {
        "agg" => ServeMode::Agg,
        "disagg" => ServeMode::Disagg,
        m => {
            return Err(unprocessable(
                "mode",
                format!("mode '{m}': use agg or disagg"),
            ))
        }
    };
    if extra.rank == 0 {
        return Err(unprocessable("rank", "rank is 1-based (row 1 is the best)"));
    }
    let sets = aicfg_gen::parse_sets(&extra.generator_set).map_err(gen_error)?;
    if let Some(v) = &extra.generated_config_version {
        check_version("generated_config_version", v)?;
    }
    if let Some(v) = &extra.dynamo_version {
        check_version("dynamo_version", v)?;
    }
    let req = input.search_request()?;
    let rank = extra.rank;
    let version = extra.generated_config_version;
    let dynamo_version = extra.dynamo_version;
    // A version the matrix lacks is the caller's mistake: name the field that was sent.
    let version_field = if dynamo_version.is_some() {
        "dynamo_version"
    } else {
        "generated_config_version"
    };
    let (name, zip) = run_limited(&state, move |cancel| {
        let result =
            aicfg_core::search::search_with(&req, None, Some(cancel)).map_err(core_error)?;
        let rows = result
            .modes
            .iter()
            .find(|m| m.mode == mode)
            .map(|m| m.top.len())
            .ok_or_else(|| {
                unprocessable(
                    "mode",
                    format!(
                        "this search has no {} results (serving_mode is {})",
                        extra.mode, input.serving_mode
                    ),
                )
            })?;
        if rank > rows {
            return Err(unprocessable(
                "rank",
                format!("rank {rank}: the {} table has {rows} rows", extra.mode),
            ));
        }
        // What the files do differently from the prediction travels with them.
        let notes = aicfg_gen::file_notes(&req, &result, &sets);
        let s = SaveRequest {
            request: &req,
            result: &result,
            top_k: rank,
            sets,
            generated_version: version,
            dynamo_version,
        };
        let mut files = aicfg_gen::build_row(&s, mode, rank).map_err(|e| match e {
            GenError::Version(m) => unprocessable(version_field, m),
            e => gen_error(e),
        })?;
        if !notes.is_empty() {
            let text: String = notes.iter().map(|n| format!("note: {n}\n")).collect();
            files.push(OutFile {
                path: "NOTES.txt".into(),
                bytes: text.into_bytes(),
            });
        }
        let name = aicfg_gen::folder_name(&req);
        let zip = zip_tree(&name, &files).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                format!("writing the zip failed: {e}"),
            )
        })?;
        Ok((name, zip))
    })
    .await?;
    // The folder name is [A-Za-z0-9._-] only, so it is safe inside the header.
    let disposition = format!(
        "attachment; filename=\"{name}_{}_top{rank}.zip\"",
        aicfg_gen::mode_dir(mode)
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        zip,
    )
        .into_response())
}

#[cfg(test)]
mod tests;
