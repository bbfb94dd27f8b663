use super::super::{router, Limits};
use super::*;
use crate::exp_cmd;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn post(body: &Value) -> (StatusCode, Value) {
    let req = Request::builder()
        .method("POST")
        .uri("/api/exp")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = router(Limits::default()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// What `aicfg cli exp --json` prints for a file holding `yaml`.
fn cli_json(yaml: &str) -> Value {
    // A directory per call: tests of this binary run in parallel in one process.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exp.yaml");
    std::fs::write(&path, yaml).unwrap();
    let a = exp_cmd::ExpArgs {
        yaml_path: path,
        top_n: 5,
        systems_path: None,
        gpu_cost_per_hour: None,
        sla_percentile: None,
        json: true,
        strict: false,
        save: Default::default(),
        limits: Default::default(),
    };
    crate::view::study_json(&exp_cmd::run_file(&a).unwrap())
}

#[tokio::test]
async fn the_example_matches_the_cli_json() {
    let (s, v) = post(&json!({ "yaml": EXAMPLE })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, cli_json(EXAMPLE));
    let names: Vec<&str> = v["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["agg_8", "disagg_8"]);
    assert!(v["best_experiment"].is_string());
    let ratios: Vec<f64> = v["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["ratio_to_best"].as_f64().unwrap())
        .collect();
    assert!(ratios.contains(&1.0) && ratios.iter().all(|r| *r > 0.0 && *r <= 1.0));
}

#[tokio::test]
async fn the_shipped_agg_example_matches_the_cli_json() {
    let yaml = include_str!("../../../../../../examples/exp_agg_full.yaml");
    let (s, v) = post(&json!({ "yaml": yaml, "top_n": 5 })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, cli_json(yaml));
}

#[tokio::test]
async fn yaml_errors_are_422_naming_the_experiment_and_key() {
    let typo = EXAMPLE.replace("  isl: 4000\n", "  isll: 4000\n");
    let (s, v) = post(&json!({ "yaml": typo })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "yaml");
    assert_eq!(v["experiment"], "agg_8");
    assert_eq!(v["key"], "isll");
    let msg = v["error"].as_str().unwrap();
    assert!(msg.starts_with("experiment 'agg_8', key 'isll'"), "{msg}");

    let (s, v) = post(&json!({ "yaml": "a: [1, 2\nb: 3\n" })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["line"].as_u64().is_some(), "{v}");
    assert!(v["error"].as_str().unwrap().contains("invalid YAML"), "{v}");

    let (s, v) = post(&json!({ "yaml": "" })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["error"].as_str().unwrap().contains("empty"), "{v}");

    // An unknown system is named with its experiment.
    let (s, v) =
        post(&json!({ "yaml": EXAMPLE.replacen("system_name: h200_sxm", "system_name: h999", 1) }))
            .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["experiment"], "agg_8", "{v}");
}

#[tokio::test]
async fn a_web_experiment_cannot_read_local_files() {
    let dir = std::env::temp_dir().join(format!("aicfg-webexp-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("config.json");
    std::fs::write(&cfg, "{}").unwrap();
    let yaml = EXAMPLE.replacen(
        "model_name: QWEN3_32B",
        &format!("model_name: {}", cfg.display()),
        1,
    );
    let (s, v) = post(&json!({ "yaml": yaml })).await;
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["key"], "model_name", "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("unknown model"),
        "{v}"
    );
}

#[tokio::test]
async fn bad_bodies_are_4xx() {
    let (s, v) = post(&json!({ "yaml": EXAMPLE, "top_n": 0 })).await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("top_n"))
    );
    let (s, v) = post(&json!({ "yml": EXAMPLE })).await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("yml"))
    );
    let (s, v) = post(&json!({ "yaml": 3 })).await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("yaml"))
    );
}
