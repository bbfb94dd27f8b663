use super::super::{router, Limits};
use super::*;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use std::io::Read;
use tower::ServiceExt;

const QWEN: &str = r#""model":"Qwen/Qwen3-32B","system":"h200_sxm","total_gpus":32"#;

async fn post(body: &str) -> (StatusCode, String, Vec<u8>) {
    let req = Request::builder()
        .method("POST")
        .uri("/api/save")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = router(Limits::default()).oneshot(req).await.unwrap();
    let status = resp.status();
    let kind = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, kind, bytes.to_vec())
}

fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut a = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..a.len())
        .map(|i| {
            let mut f = a.by_index(i).unwrap();
            assert_eq!(f.compression(), zip::CompressionMethod::Deflated);
            let mut v = Vec::new();
            f.read_to_end(&mut v).unwrap();
            (f.name().unwrap().to_string(), v)
        })
        .collect()
}

#[tokio::test]
async fn a_rows_zip_holds_its_deployment_files_and_is_byte_stable() {
    let body = format!(r#"{{{QWEN},"mode":"disagg","rank":2}}"#);
    let (s, kind, zip) = post(&body).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&zip));
    assert_eq!(kind, "application/zip");
    let files = unzip(&zip);
    let root = "Qwen_Qwen3-32B_h200_sxm_trtllm_isl4000_osl1000_ttft2000_tpot30";
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "pareto_frontier.png",
        "disagg/config.yaml",
        "disagg/best_config_topn.csv",
        "disagg/top2/generator_config.yaml",
        "disagg/top2/disagg/k8s_deploy.yaml",
        "disagg/top2/disagg/prefill_config.yaml",
        "disagg/top2/disagg/decode_config.yaml",
        "disagg/top2/disagg/node_0_run.sh",
        "disagg/top2/disagg/bench_run.sh",
        "agg/config.yaml",
    ] {
        assert!(
            names.contains(&format!("{root}/{want}").as_str()),
            "{want} missing from {names:?}"
        );
    }
    // Only the chosen row's deployment folder.
    assert!(names
        .iter()
        .all(|n| !n.contains("/top1/") && !n.starts_with(&format!("{root}/agg/top"))));

    // The files are what the generator writes for that row of the same search.
    let input: DefaultInput = serde_json::from_str(&format!("{{{QWEN}}}")).unwrap();
    let req = input.search_request().unwrap();
    let result = aicfg_core::search::search(&req, None).unwrap();
    let s = SaveRequest {
        request: &req,
        result: &result,
        top_k: 2,
        sets: vec![],
        generated_version: None,
        dynamo_version: None,
    };
    let want = aicfg_gen::build_row(&s, ServeMode::Disagg, 2).unwrap();
    assert_eq!(files.len(), want.len());
    for (f, (name, bytes)) in want.iter().zip(&files) {
        assert_eq!(name, &format!("{root}/{}", f.path));
        assert_eq!(bytes, &f.bytes, "{name}");
    }
    let (_, _, again) = post(&body).await;
    assert!(again == zip, "two identical requests gave different zips");
}

#[tokio::test]
async fn overrides_and_version_reach_the_files() {
    let body = format!(
        r#"{{{QWEN},"mode":"agg","rank":1,"generator_set":["K8sConfig.k8s_namespace=webns"],"generated_config_version":"1.3.0rc22"}}"#
    );
    let (s, _, zip) = post(&body).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&zip));
    let files = unzip(&zip);
    let k8s = files
        .iter()
        .find(|(n, _)| n.ends_with("agg/top1/agg/k8s_deploy.yaml"))
        .expect("agg k8s manifest");
    assert!(String::from_utf8_lossy(&k8s.1).contains("namespace: webns"));
    // The image follows the version: TRT-LLM 1.3.0rc22 ships in Dynamo 1.4.2.
    assert!(String::from_utf8_lossy(&k8s.1).contains("tensorrtllm-runtime:1.4.2"));
    let gen = files
        .iter()
        .find(|(n, _)| n.ends_with("agg/top1/generator_config.yaml"))
        .unwrap();
    assert!(String::from_utf8_lossy(&gen.1).contains("1.3.0rc22"));
}

#[tokio::test]
async fn dynamo_version_picks_the_release_and_image() {
    let body = format!(r#"{{{QWEN},"mode":"agg","rank":1,"dynamo_version":"1.5.1"}}"#);
    let (s, _, zip) = post(&body).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&zip));
    let files = unzip(&zip);
    let k8s = files
        .iter()
        .find(|(n, _)| n.ends_with("agg/top1/agg/k8s_deploy.yaml"))
        .expect("agg k8s manifest");
    assert!(String::from_utf8_lossy(&k8s.1).contains("tensorrtllm-runtime:1.5.1"));
    let gen = files
        .iter()
        .find(|(n, _)| n.ends_with("agg/top1/generator_config.yaml"))
        .unwrap();
    // Dynamo 1.5.1 pins TRT-LLM 1.3.0rc25 (data/versions.yaml).
    let gen = String::from_utf8_lossy(&gen.1);
    assert!(
        gen.contains("1.3.0rc25") && gen.contains("dynamo_version: 1.5.1"),
        "{gen}"
    );
}

#[tokio::test]
async fn bad_save_keys_are_4xx_naming_the_field() {
    let cases = [
        (
            r#""mode":"static","rank":1"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "mode",
            "agg or disagg",
        ),
        (
            r#""rank":1"#,
            StatusCode::BAD_REQUEST,
            "",
            "missing field `mode`",
        ),
        (
            r#""mode":"agg","rank":0"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "rank",
            "1-based",
        ),
        (
            r#""mode":"agg","rank":99"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "rank",
            "rows",
        ),
        (
            r#""mode":"agg","rank":-1"#,
            StatusCode::BAD_REQUEST,
            "rank",
            "invalid value",
        ),
        (
            r#""mode":"agg","rank":"1""#,
            StatusCode::BAD_REQUEST,
            "rank",
            "invalid value",
        ),
        (
            r#""mode":"agg","rank":1,"generator_set":["NoSuch.key=1"]"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "generator_set",
            "unknown generator key",
        ),
        (
            r#""mode":"agg","rank":1,"generator_set":["no equals sign"]"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "generator_set",
            "KEY=VALUE",
        ),
        (
            r#""mode":"agg","rank":1,"generator_set":["K8sConfig.k8s_namespace=Bad Name"]"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "generator_set",
            "K8sConfig.k8s_namespace",
        ),
        (
            r#""mode":"agg","rank":1,"generated_config_version":"1.0; rm -rf /""#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "generated_config_version",
            "not a version",
        ),
        (
            r#""mode":"agg","rank":1,"dynamo_version":"1.6.1 x""#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "dynamo_version",
            "not a version",
        ),
        (
            r#""mode":"agg","rank":1,"dynamo_version":"9.9.9""#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "dynamo_version",
            "9.9.9",
        ),
        (
            r#""mode":"agg","rank":1,"generated_config_version":"0.1.0""#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "generated_config_version",
            "0.1.0",
        ),
        (
            r#""mode":"agg","rank":1,"bogus":1"#,
            StatusCode::BAD_REQUEST,
            "bogus",
            "unknown field",
        ),
        (
            r#""mode":"agg","rank":1,"isl":0"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "isl",
            "",
        ),
        (
            r#""mode":"disagg","rank":1,"serving_mode":"agg""#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "mode",
            "no disagg results",
        ),
    ];
    for (extra, status, field, needle) in cases {
        let body = format!("{{{QWEN},{extra}}}");
        let (s, _, bytes) = post(&body).await;
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(s, status, "{extra} -> {v}");
        if field.is_empty() {
            assert!(
                v["field"].is_null() || v["field"] == "mode",
                "{extra} -> {v}"
            );
        } else {
            assert_eq!(v["field"], field, "{extra} -> {v}");
        }
        assert!(
            v["error"].as_str().unwrap().contains(needle),
            "{extra} -> {v}"
        );
    }
    let (s, _, _) = post("[1,2]").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, _) = post("{").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

/// The download says what its files do differently from the prediction, as the CLI's notes do:
/// an AMD GPU's row carries NOTES.txt about the CUDA runtime image (none once an image is named).
#[tokio::test]
async fn an_amd_rows_zip_carries_the_image_note() {
    let amd = r#""model":"Qwen/Qwen3-8B","system":"mi300x","backend":"vllm","total_gpus":8"#;
    let (s, _, zip) = post(&format!(r#"{{{amd},"mode":"agg","rank":1}}"#)).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&zip));
    let files = unzip(&zip);
    let notes = files
        .iter()
        .find(|(n, _)| n.ends_with("/NOTES.txt"))
        .expect("NOTES.txt in the zip");
    let text = String::from_utf8_lossy(&notes.1);
    assert!(
        text.starts_with("note: mi300x is an AMD GPU") && text.contains("CUDA builds"),
        "{text}"
    );
    let body = format!(
        r#"{{{amd},"mode":"agg","rank":1,"generator_set":["K8sConfig.k8s_image=rocm/vllm:latest"]}}"#
    );
    let (s, _, zip) = post(&body).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&zip));
    assert!(unzip(&zip).iter().all(|(n, _)| !n.ends_with("NOTES.txt")));
}
