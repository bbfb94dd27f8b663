use super::*;
// The CLI's own argument types: the tests check the page and the CLI agree.
use crate::{default_cmd, estimate_cmd};
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

const QWEN: &str = r#"{"model":"Qwen/Qwen3-32B","system":"h200_sxm","total_gpus":32}"#;

async fn call(app: &Router, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, v)
}

fn app() -> Router {
    router(Limits::default())
}

/// The error body of a bad request: its status is 4xx and it names `field`.
async fn rejects(body: &str, status: StatusCode, field: &str, needle: &str) {
    let (s, v) = call(&app(), "POST", "/api/default", body).await;
    assert_eq!(s, status, "{body} -> {v}");
    assert_eq!(v["field"], field, "{body} -> {v}");
    let msg = v["error"].as_str().unwrap();
    assert!(msg.contains(needle), "{body}: {msg:?} lacks {needle:?}");
}

fn with(extra: &str) -> String {
    format!("{},{extra}}}", &QWEN[..QWEN.len() - 1])
}

#[tokio::test]
async fn default_matches_the_cli_json_view() {
    let (s, v) = call(&app(), "POST", "/api/default", QWEN).await;
    assert_eq!(s, StatusCode::OK);
    let input: DefaultInput = serde_json::from_str(QWEN).unwrap();
    let req = input.search_request().unwrap();
    let want = view::json_view(&aicfg_core::search::search(&req, None).unwrap());
    // The page's per-row details requests ride along; the rest is the CLI's JSON.
    let mut v = v;
    for m in v["modes"].as_array_mut().unwrap() {
        for c in m["top"].as_array_mut().unwrap() {
            assert!(c["estimate"].is_object(), "{c}");
            c.as_object_mut().unwrap().remove("estimate");
        }
    }
    assert_eq!(v, want);
    assert_eq!(v["model"], "Qwen/Qwen3-32B");
    assert!(v["best"]["tokens_per_s_per_gpu"].as_f64().unwrap() > 0.0);
}

/// The result carries the simulated percentiles of each mode's top rows, as `cli default
/// --json` does; with `sla_percentile` the best is a simulated row that meets it.
#[tokio::test]
async fn default_carries_the_percentile_rows() {
    let (s, v) = call(&app(), "POST", "/api/default", QWEN).await;
    assert_eq!(s, StatusCode::OK);
    let rows = v["percentiles"].as_array().unwrap();
    for mode in ["agg", "disagg"] {
        let ranks: Vec<&Value> = rows
            .iter()
            .filter(|r| r["mode"] == mode)
            .map(|r| &r["rank"])
            .collect();
        assert_eq!(
            ranks,
            [1, 2, 3, 4].map(|k| json!(k)).iter().collect::<Vec<_>>()
        );
    }
    let body = with(r#""ttft":5000,"sla_percentile":"p99""#);
    let (s, v) = call(&app(), "POST", "/api/default", &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["sla_percentile"], "p99");
    let best = &v["best"];
    let row = v["percentiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["mode"] == best["mode"] && r["rank"] == 1)
        .expect("the best is a simulated row");
    assert!(row["ttft_ms"]["p99"].as_f64().unwrap() <= 5000.0, "{row}");
    assert!(row["tpot_ms"]["p99"].as_f64().unwrap() <= 30.0, "{row}");
}

/// Every top row's `estimate` request predicts that row: same TTFT and TPOT, MTP included
/// (the page used to send `nextn` without its acceptance, pricing zero accepted drafts).
#[tokio::test]
async fn each_rows_details_estimate_reproduces_the_row() {
    let body = r#"{"model":"QWEN3_32B","system":"h200_sxm","total_gpus":8,"isl":2000,"osl":200,
        "nextn":2,"nextn_accept_rates":[0.7,0.4],"top_n":3,
        "agg_parallel":{"tp":[2,4]},"prefill_parallel":{"tp":[2]},"decode_parallel":{"tp":[2,4]}}"#;
    let (s, v) = call(&app(), "POST", "/api/default", body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut rows = 0;
    for m in v["modes"].as_array().unwrap() {
        for c in m["top"].as_array().unwrap() {
            let e = &c["estimate"];
            assert_eq!(e["nextn"], 2);
            assert_eq!(e["nextn_accept_rates"], json!([0.7, 0.4]));
            let (s, r) = call(&app(), "POST", "/api/estimate", &e.to_string()).await;
            assert_eq!(s, StatusCode::OK, "{e} -> {r}");
            for k in ["ttft_ms", "tpot_ms"] {
                let (want, got) = (c[k].as_f64().unwrap(), r[k].as_f64().unwrap());
                assert!(
                    (want - got).abs() <= 1e-3 * want.max(1.0),
                    "{} row {k}: search {want}, details {got}\n{e}",
                    m["mode"]
                );
            }
            rows += 1;
        }
    }
    assert!(rows >= 2, "{v}");
}

#[derive(clap::Parser)]
struct DefaultCli {
    #[command(flatten)]
    a: default_cmd::DefaultArgs,
}

#[derive(clap::Parser)]
struct EstimateCli {
    #[command(flatten)]
    a: estimate_cmd::EstimateArgs,
}

#[test]
fn body_defaults_are_the_cli_defaults() {
    use clap::Parser;
    let req = ["--model", "Qwen/Qwen3-32B", "--system", "h200_sxm"];
    let cli = DefaultCli::try_parse_from([&["x"][..], &req, &["--total_gpus", "32"]].concat())
        .unwrap()
        .a
        .to_input();
    let web: DefaultInput = serde_json::from_str(QWEN).unwrap();
    assert_eq!(
        serde_json::to_value(&cli).unwrap(),
        serde_json::to_value(&web).unwrap()
    );
    assert!(cli.allow_local_files && !web.allow_local_files);
    let cli = EstimateCli::try_parse_from([&["x"][..], &req].concat())
        .unwrap()
        .a
        .to_input();
    let web: EstimateInput =
        serde_json::from_str(r#"{"model":"Qwen/Qwen3-32B","system":"h200_sxm"}"#).unwrap();
    assert_eq!(
        serde_json::to_value(&cli).unwrap(),
        serde_json::to_value(&web).unwrap()
    );
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let unproc = StatusCode::UNPROCESSABLE_ENTITY;
    rejects(&with(r#""isl":0"#), unproc, "isl", "positive").await;
    rejects(&with(r#""osl":-3"#), unproc, "osl", "positive").await;
    rejects(&with(r#""ttft":-5"#), unproc, "ttft", "ttft").await;
    rejects(&with(r#""prefix":4000"#), unproc, "prefix", "prefix").await;
    rejects(&with(r#""backend":"tgi""#), unproc, "backend", "tgi").await;
    rejects(
        &with(r#""serving_mode":"both2""#),
        unproc,
        "serving_mode",
        "both2",
    )
    .await;
    rejects(
        &with(r#""gemm_quant_mode":"fp7""#),
        unproc,
        "gemm_quant_mode",
        "fp7",
    )
    .await;
    rejects(&with(r#""top_n":0"#), unproc, "top_n", "top_n").await;
    rejects(
        &with(r#""sla_percentile":"p95""#),
        unproc,
        "sla_percentile",
        "known: mean, p50, p90, p99",
    )
    .await;
    rejects(&with(r#""nextn":99"#), unproc, "nextn", "16").await;
    rejects(
        &with(r#""decode_system":"h999""#),
        unproc,
        "decode_system",
        "h999",
    )
    .await;
    rejects(
        &with(r#""agg_parallel":{"tp":[0]}"#),
        unproc,
        "agg_parallel",
        "between 1",
    )
    .await;
    rejects(
        &with(r#""free_gpu_memory_fraction":1.5"#),
        unproc,
        "free_gpu_memory_fraction",
        "(0, 1]",
    )
    .await;
    rejects(
        r#"{"model":"Qwen/Qwen3-32B","system":"h200_sxm"}"#,
        unproc,
        "total_gpus",
        "total_gpus",
    )
    .await;
    rejects(
        r#"{"model":"nope","system":"h200_sxm","total_gpus":8}"#,
        unproc,
        "model",
        "nope",
    )
    .await;
    rejects(
        r#"{"model":"Qwen/Qwen3-32B","system":"z900","total_gpus":8}"#,
        unproc,
        "system",
        "z900",
    )
    .await;
}

#[tokio::test]
async fn malformed_bodies_are_400_with_the_field() {
    let bad = StatusCode::BAD_REQUEST;
    rejects(&with(r#""isl":"many""#), bad, "isl", "isl").await;
    rejects(
        r#"{"model":"Qwen/Qwen3-32B","system":"h200_sxm","total_gpus":1.5}"#,
        bad,
        "total_gpus",
        "total_gpus",
    )
    .await;
    rejects(&with(r#""total_gpus":8"#), bad, "total_gpus", "duplicate").await;
    rejects(
        &with(r#""agg_parallel":{"tp":["x"]}"#),
        bad,
        "agg_parallel",
        "tp",
    )
    .await;
    rejects(&with(r#""colour":"red""#), bad, "colour", "unknown field").await;
    let (s, v) = call(&app(), "POST", "/api/default", "{not json").await;
    assert_eq!(s, bad);
    assert!(v["error"].as_str().unwrap().contains("invalid JSON"));
}

#[tokio::test]
async fn a_web_request_cannot_read_local_files() {
    // A path would be read by the CLI; the API only knows built-in names.
    let dir = std::env::temp_dir().join(format!("aicfg-webapp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("config.json");
    let qwen = include_str!("../../../../../data/models/Qwen--Qwen3-32B_config.json");
    std::fs::write(&cfg, qwen).unwrap();
    let body = json!({"model": cfg.display().to_string(), "system": "h200_sxm", "total_gpus": 8});
    let (s, v) = call(&app(), "POST", "/api/default", &body.to_string()).await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "model");
    // Fields that name files on the CLI are not part of the body.
    let (s, v) = call(
        &app(),
        "POST",
        "/api/default",
        &with(r#""calibration":"/etc/passwd""#),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["field"], "calibration");
}

#[tokio::test]
async fn pasted_config_json_is_searched() {
    let qwen = include_str!("../../../../../data/models/Qwen--Qwen3-32B_config.json");
    let body = json!({"model": "my-qwen", "model_config": qwen, "system": "h200_sxm", "total_gpus": 8, "serving_mode": "agg"});
    let (s, v) = call(&app(), "POST", "/api/default", &body.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["model"], "my-qwen");
    assert_eq!(v["modes"].as_array().unwrap().len(), 1);
    let body =
        json!({"model_config": "{\"architectures\": 5}", "system": "h200_sxm", "total_gpus": 8});
    let (s, v) = call(&app(), "POST", "/api/default", &body.to_string()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "model_config");
}

#[tokio::test]
async fn parallel_lists_narrow_the_search() {
    let body = with(r#""serving_mode":"agg","agg_parallel":{"tp":[8],"pp":[1]}"#);
    let (s, v) = call(&app(), "POST", "/api/default", &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let top = v["modes"][0]["top"].as_array().unwrap();
    assert!(!top.is_empty());
    for c in top {
        assert_eq!(c["agg"]["parallel"]["tp"], 8, "{c}");
    }
}

#[tokio::test]
async fn estimate_matches_the_cli_and_validates() {
    let body = r#"{"model":"QWEN3_32B","system":"h200_sxm","tp_size":4,"batch_size":16}"#;
    let (s, v) = call(&app(), "POST", "/api/estimate", body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let input: EstimateInput = serde_json::from_str(body).unwrap();
    let want =
        view::estimate_json(&aicfg_core::estimate(&input.estimate_request().unwrap()).unwrap());
    // Both sides parsed from text, as a client reading the CLI's output would.
    let want: Value = serde_json::from_str(&want.to_string()).unwrap();
    assert_eq!(v, want);
    assert!(v["ttft_ms"].as_f64().unwrap() > 0.0);
    let (s, v) = call(
        &app(),
        "POST",
        "/api/estimate",
        r#"{"model":"QWEN3_32B","system":"h200_sxm","tp_size":0}"#,
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["field"], "tp_size");
    let (s, v) = call(
        &app(),
        "POST",
        "/api/estimate",
        r#"{"model":"QWEN3_32B","system":"h200_sxm","estimate_mode":"fast"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["field"], "estimate_mode");
}

#[tokio::test]
async fn options_list_the_pickers() {
    let (s, v) = call(&app(), "GET", "/api/options", "").await;
    assert_eq!(s, StatusCode::OK);
    let has = |k: &str, x: &str| v[k].as_array().unwrap().iter().any(|m| m == x);
    assert!(has("models", "Qwen/Qwen3-32B"));
    assert!(has("systems", "h200_sxm"));
    assert!(has("backends", "auto"));
    assert!(v["quant"]["gemm"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == "fp8"));
    assert_eq!(v["defaults"]["total_gpus"], 32);
    // The defaults the page submits are a valid body.
    let (s, _) = call(&app(), "POST", "/api/default", &v["defaults"].to_string()).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn page_and_assets_are_served() {
    for (uri, kind, needle) in [
        ("/", "text/html", "search-form"),
        ("/app.js", "text/javascript", "/api/default"),
        ("/style.css", "text/css", "--accent"),
    ] {
        let req = Request::builder().uri(uri).body(Body::empty()).unwrap();
        let resp = app().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let ct = resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        assert!(ct.starts_with(kind), "{uri}: {ct}");
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&bytes).contains(needle), "{uri}");
    }
    // No external resources: the page works offline.
    for text in [INDEX_HTML, APP_JS, STYLE_CSS] {
        // The SVG namespace is a name, not something fetched.
        let text = text.replace("http://www.w3.org/2000/svg", "");
        for bad in ["http://", "https://", "//cdn", "@import", "url("] {
            assert!(!text.contains(bad), "asset refers to {bad}");
        }
    }
    let (s, v) = call(&app(), "GET", "/nope", "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["error"].is_string());
    let (s, _) = call(&app(), "GET", "/api/default", "").await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let app = router(Limits {
        body_limit: 1024,
        ..Limits::default()
    });
    let big = with(&format!(r#""model_config":"{}""#, "x".repeat(4096)));
    let (s, v) = call(&app, "POST", "/api/default", &big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(v["error"].as_str().unwrap().contains("limit"));
    // The default limit is 1 MiB: a 2 MiB body is refused too.
    let big = with(&format!(r#""model_config":"{}""#, "x".repeat(2 << 20)));
    let (s, _) = call(&self::app(), "POST", "/api/default", &big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn searches_past_the_time_limit_are_cancelled() {
    let (app, state) = router_with_state(Limits {
        time_limit: Duration::from_millis(1),
        ..Limits::default()
    });
    let body = r#"{"model":"DEEPSEEK_V3","system":"h200_sxm","total_gpus":64,"backend":"auto"}"#;
    let (s, v) = call(&app, "POST", "/api/default", body).await;
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT, "{v}");
    assert!(v["error"].as_str().unwrap().contains("longer than"));
    // The cancelled search gives its slot back promptly.
    let max = Limits::default().max_searches;
    for _ in 0..200 {
        if state.slots.available_permits() == max {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(state.running.load(Ordering::SeqCst), 0);
    assert_eq!(state.slots.available_permits(), max);
}

fn rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_requests_complete_with_bounded_work() {
    // About bounded work and determinism, not speed: a loaded machine must not turn queueing
    // into a refusal.
    let (app, state) = router_with_state(Limits {
        max_searches: 2,
        // Unoptimized builds on a busy machine queue the last requests for tens of seconds.
        queue_limit: Duration::from_secs(600),
        ..Limits::default()
    });
    let body = r#"{"model":"Qwen/Qwen3-32B","system":"h200_sxm","total_gpus":8}"#;
    let before = rss_kib();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { call(&app, "POST", "/api/default", body).await })
        })
        .collect();
    let mut first: Option<Value> = None;
    for t in tasks {
        let (s, v) = t.await.unwrap();
        assert_eq!(s, StatusCode::OK, "{v}");
        // Same input, same answer, however the requests interleave.
        match &first {
            Some(f) => assert_eq!(f, &v),
            None => first = Some(v),
        }
    }
    let peak = state.peak.load(Ordering::SeqCst);
    assert!((1..=2).contains(&peak), "peak concurrent searches {peak}");
    if let (Some(a), Some(b)) = (before, rss_kib()) {
        // Queued requests hold only their body; 100 of them stay far below this.
        assert!(
            b.saturating_sub(a) < 512 * 1024,
            "RSS grew by {} KiB",
            b - a
        );
    }
}
