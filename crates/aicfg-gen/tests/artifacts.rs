//! Generated deployment trees: golden files, parse/lint checks, schema validation of the
//! Dynamo manifests, and agreement of every number with the search result.
mod common;
use aicfg_core::search::{search, Candidate, SearchRequest, SearchResult};
use aicfg_core::{Backend, ModelRegistry, ServeMode, SystemRegistry, Workload};
use aicfg_gen::{build, OutFile, SaveRequest};
use serde_norway::Value;
use std::collections::BTreeMap;
use std::sync::OnceLock;

struct Case {
    req: SearchRequest,
    res: SearchResult,
}

fn run(model: &str, gpus: u32, backend: Backend, wide_ep: bool) -> Case {
    let model = ModelRegistry::builtin().resolve(model).unwrap();
    let system = SystemRegistry::builtin().get("h200_sxm").unwrap().clone();
    let w = Workload {
        isl: 4000.0,
        osl: 1000.0,
        prefix: 0.0,
        nextn: 0,
        nextn_accepted: 0.0,
    };
    let mut req = SearchRequest::new(model, system, backend, w, Some(gpus));
    req.enable_wide_ep = wide_ep;
    req.replica = aicfg_core::search::ReplicaConfig::defaults(wide_ep);
    req.top_n = 3;
    let res = search(&req, None).unwrap();
    Case { req, res }
}

fn cases() -> &'static Vec<(String, Case)> {
    static C: OnceLock<Vec<(String, Case)>> = OnceLock::new();
    C.get_or_init(|| {
        let mut v = Vec::new();
        for b in Backend::ALL {
            v.push((
                format!("dense_{}", b.name()),
                run("Qwen/Qwen3-32B", 32, b, false),
            ));
            v.push((
                format!("moe_wide_ep_{}", b.name()),
                run("deepseek-ai/DeepSeek-V3", 64, b, true),
            ));
        }
        v
    })
}

fn save<'a>(c: &'a Case, sets: &[(&str, &str)]) -> SaveRequest<'a> {
    SaveRequest {
        request: &c.req,
        result: &c.res,
        top_k: 3,
        sets: sets
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        generated_version: None,
        dynamo_version: None,
    }
}

fn text(f: &OutFile) -> &str {
    std::str::from_utf8(&f.bytes).unwrap()
}

fn files_under<'a>(files: &'a [OutFile], prefix: &str) -> BTreeMap<&'a str, &'a str> {
    files
        .iter()
        .filter(|f| f.path.starts_with(prefix) && !f.path.ends_with(".png"))
        .map(|f| (&f.path[prefix.len()..], text(f)))
        .collect()
}

fn top1_snapshot(files: &[OutFile], mode: &str) -> String {
    let mut out = String::new();
    let csv = files
        .iter()
        .find(|f| f.path == format!("{mode}/best_config_topn.csv"))
        .unwrap();
    out.push_str(&format!(
        "=== {mode}/best_config_topn.csv (header + rank 1) ===\n"
    ));
    for l in text(csv).lines().take(2) {
        out.push_str(l);
        out.push('\n');
    }
    for (path, body) in files_under(files, &format!("{mode}/top1/")) {
        // Later nodes repeat node 0's layout; the placement test checks them all.
        if path.contains("node_") && !path.ends_with("node_0_run.sh") {
            continue;
        }
        out.push_str(&format!("=== {path} ===\n{body}"));
    }
    out
}

#[test]
fn golden_files() {
    for (name, c) in cases() {
        let files = build(&save(c, &[])).unwrap();
        if name.starts_with("dense") {
            insta::assert_snapshot!(format!("{name}_agg"), top1_snapshot(&files, "agg"));
            insta::assert_snapshot!(format!("{name}_disagg"), top1_snapshot(&files, "disagg"));
        } else {
            // Wide EP: the disagg decode side is where expert parallelism goes widest.
            insta::assert_snapshot!(name.clone(), top1_snapshot(&files, "disagg"));
        }
    }
}

#[test]
fn output_is_deterministic() {
    let (_, c) = &cases()[0];
    assert_eq!(build(&save(c, &[])).unwrap(), build(&save(c, &[])).unwrap());
}

fn shellcheck_available() -> bool {
    std::process::Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `bash -n` each script, then one shellcheck run over all of them (it is slow to start).
fn check_scripts(scripts: &[(&str, &str)]) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let k = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("aicfg-gen-sh-{}-{k}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut paths = Vec::new();
    for (path, body) in scripts {
        let file = dir.join(path.replace('/', "_"));
        std::fs::write(&file, body).unwrap();
        let out = std::process::Command::new("bash")
            .arg("-n")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "bash -n {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        paths.push(file);
    }
    if shellcheck_available() && !paths.is_empty() {
        let out = std::process::Command::new("shellcheck")
            .args(&paths)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "shellcheck:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn check_tree(files: &[OutFile]) {
    let mut scripts = Vec::new();
    for f in files {
        let p = f.path.as_str();
        if p.ends_with(".yaml") {
            assert!(!docs(text(f)).is_empty(), "{p}");
        } else if p.ends_with(".sh") {
            scripts.push((p, text(f)));
        } else if p.ends_with(".csv") {
            let mut r = csv::Reader::from_reader(f.bytes.as_slice());
            let width = r.headers().unwrap().len();
            for rec in r.records() {
                assert_eq!(rec.unwrap().len(), width, "{p}: ragged row");
            }
        } else if p.ends_with(".png") {
            assert!(f.bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{p}");
        } else if p == "percentiles.json" {
            let v: serde_json::Value = serde_json::from_slice(&f.bytes).unwrap();
            assert!(v["rows"].is_array(), "{p}");
        } else {
            panic!("unexpected file {p}");
        }
    }
    check_scripts(&scripts);
}

#[test]
fn every_file_parses_and_every_script_passes_bash_n_and_shellcheck() {
    if !shellcheck_available() {
        // Written past the test harness's capture, so the skip shows in the test summary.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED shellcheck of the generated scripts: shellcheck not installed (they get `bash -n` only)"
        );
    }
    for (_, c) in cases() {
        check_tree(&build(&save(c, &[])).unwrap());
    }
    // Workers larger than a node: multi-node launch lines for every backend (rank 1 only,
    // since two-GPU nodes multiply the scripts). The top 3 of each search hold a worker wider
    // than two GPUs whichever deployment wins.
    for (_, c) in cases().iter().filter(|(n, _)| n.starts_with("dense")) {
        let s = save(c, &[("NodeConfig.num_gpus_per_node", "2")]);
        let files = build(&s).unwrap();
        assert!(files
            .iter()
            .filter(|f| f.path.ends_with(".sh"))
            .any(|f| text(f).contains("--node-rank 1") || text(f).contains("mpirun")));
        check_tree(&files);
    }
}

/// Validators of the objects `k8s_deploy.yaml` holds, by `apiVersion`: the DGD CRD in both
/// API versions and the DRA driver's ComputeDomain, each with the core/v1 types merged in.
struct Schemas(BTreeMap<&'static str, jsonschema::Validator>);

impl Schemas {
    fn is_valid(&self, doc: &serde_json::Value) -> bool {
        let api = doc["apiVersion"].as_str().unwrap_or_default();
        self.0.get(api).is_some_and(|v| v.is_valid(doc))
    }
}

fn schema() -> Schemas {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemas/");
    let read = |f: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}{f}")).unwrap()).unwrap()
    };
    let core = read("k8s-core-v1.json");
    let mut out = BTreeMap::new();
    for (api, file) in [
        ("nvidia.com/v1alpha1", "dynamographdeployment-v1alpha1.json"),
        ("nvidia.com/v1beta1", "dynamographdeployment-v1beta1.json"),
        ("resource.nvidia.com/v1beta1", "computedomain-v1beta1.json"),
        ("llm-d", "llm-d-modelservice-values.json"),
    ] {
        let mut s = read(file);
        let defs = s["$defs"].as_object_mut().unwrap();
        for (k, v) in core["$defs"].as_object().unwrap() {
            defs.insert(k.clone(), v.clone());
        }
        out.insert(api, jsonschema::validator_for(&s).unwrap());
    }
    Schemas(out)
}

/// Every document of a (multi-document) YAML file.
fn docs(s: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_norway::Deserializer::from_str(s)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{e}\n{s}")))
        .collect()
}

/// The DynamoGraphDeployment of a k8s_deploy.yaml (after the optional engine ConfigMap).
fn dgd(s: &str) -> Value {
    docs(s)
        .into_iter()
        .find(|d| d["kind"].as_str() == Some("DynamoGraphDeployment"))
        .expect("a DynamoGraphDeployment document")
}

/// Validates every DGD and ComputeDomain of the manifests; returns how many DGDs there were.
fn validate_manifests(v: &Schemas, files: &[OutFile]) -> usize {
    let mut n = 0;
    for f in files.iter().filter(|f| f.path.ends_with("k8s_deploy.yaml")) {
        for d in docs(text(f)) {
            let kind = d["kind"].as_str().unwrap_or_default().to_string();
            if kind == "ConfigMap" {
                continue;
            }
            let doc: serde_json::Value = serde_json::to_value(d).unwrap();
            let api = doc["apiVersion"].as_str().unwrap_or_default();
            let val =
                v.0.get(api)
                    .unwrap_or_else(|| panic!("{}: no schema for {api} {kind}", f.path));
            let errors: Vec<String> = val.iter_errors(&doc).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{} {kind}: {errors:#?}", f.path);
            n += usize::from(kind == "DynamoGraphDeployment");
        }
    }
    n
}

/// `llm-d-values.yaml` (vLLM): valid chart values whose workers are the search's.
#[test]
fn llm_d_values_validate_and_match_the_search() {
    let v = schema();
    let llmd = &v.0["llm-d"];
    let mut seen = 0;
    for (name, c) in cases() {
        let files = build(&save(c, &[])).unwrap();
        let values: Vec<&OutFile> = files
            .iter()
            .filter(|f| f.path.ends_with("llm-d-values.yaml"))
            .collect();
        if !name.ends_with("vllm") {
            assert!(values.is_empty(), "{name}: llm-d values are vLLM only");
            continue;
        }
        for f in values {
            let doc: Value = serde_norway::from_str(text(f)).unwrap();
            let j: serde_json::Value = serde_json::to_value(&doc).unwrap();
            let errors: Vec<String> = llmd.iter_errors(&j).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{}: {errors:#?}", f.path);
            // The same workers as the Dynamo manifest of that folder.
            let k8s = common::services(&yaml(
                &files,
                &f.path.replace("llm-d-values.yaml", "k8s_deploy.yaml"),
            ));
            let disagg = f.path.starts_with("disagg/");
            let pick = |role: &str| {
                k8s.as_mapping()
                    .unwrap()
                    .iter()
                    .find(|(k, _)| k.as_str().unwrap().contains(role))
                    .map(|(_, s)| s.clone())
                    .unwrap()
            };
            let pairs = if disagg {
                vec![("decode", pick("Decode")), ("prefill", pick("Prefill"))]
            } else {
                vec![("decode", pick("VllmWorker"))]
            };
            for (section, svc) in pairs {
                let s = &doc[section];
                assert_eq!(s["replicas"], svc["replicas"], "{} {section}", f.path);
                let gpus = &s["containers"][0]["resources"]["limits"]["nvidia.com/gpu"];
                assert_eq!(
                    gpus, &svc["resources"]["limits"]["gpu"],
                    "{} {section}",
                    f.path
                );
                let args: Vec<String> = s["containers"][0]["args"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string())
                    .collect();
                assert!(!args.iter().any(|a| a == "--disaggregation-mode"));
                assert_eq!(
                    flag(&args.join(" "), "--tensor-parallel-size"),
                    s["parallelism"]["tensor"].as_u64().map(|t| t.to_string())
                );
            }
            assert_eq!(
                doc["prefill"]["create"].as_bool(),
                Some(disagg),
                "{}",
                f.path
            );
            seen += 1;
        }
    }
    assert!(seen >= 2, "{seen}");
    // The validator refuses what the chart refuses.
    let bad = serde_json::json!({"modelArtifacts": {"name": "m", "uri": "s3://x"}, "servers": 1});
    assert!(!llmd.is_valid(&bad));
}

#[test]
fn k8s_manifests_validate_against_the_dgd_crd_and_core_schemas() {
    let v = schema();
    for (i, (_, c)) in cases().iter().enumerate() {
        assert!(validate_manifests(&v, &build(&save(c, &[])).unwrap()) > 0);
        let extras = [
            ("K8sConfig.image_pull_secret", "regcred"),
            ("K8sConfig.model_cache_pvc", "model-cache"),
        ];
        assert!(validate_manifests(&v, &build(&save(c, &extras)).unwrap()) > 0);
        let multi = build(&save(c, &[("NodeConfig.num_gpus_per_node", "2")])).unwrap();
        validate_manifests(&v, &multi);
        assert!(multi
            .iter()
            .any(|f| f.path.ends_with("k8s_deploy.yaml") && text(f).contains("nodeCount:")));
        // Multi-node workers claiming a ComputeDomain channel, in both API versions (by turns:
        // every backend meets each version in one of its two cases).
        {
            let dynamo = ["1.6.1", "1.2.1"][i % 2];
            let mut s = save(
                c,
                &[
                    ("NodeConfig.num_gpus_per_node", "2"),
                    ("K8sConfig.compute_domain", "true"),
                ],
            );
            s.dynamo_version = Some(dynamo.into());
            let files = build(&s).unwrap();
            assert!(validate_manifests(&v, &files) > 0);
            assert!(files.iter().any(|f| f.path.ends_with("k8s_deploy.yaml")
                && text(f).contains("kind: ComputeDomain")
                && text(f).contains("resourceClaimTemplateName:")));
        }
    }
    // The validators do reject broken manifests.
    let bad: serde_json::Value = serde_json::json!({
        "apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
        "metadata": {"name": "x"},
        "spec": {"services": {"W": {"replicas": "two", "resources": {"limits": {"gpu": 2}}}}}
    });
    assert!(!v.is_valid(&bad));
    let beta = |component: serde_json::Value| {
        serde_json::json!({
            "apiVersion": "nvidia.com/v1beta1", "kind": "DynamoGraphDeployment",
            "metadata": {"name": "x"}, "spec": {"components": [component]}
        })
    };
    let main = serde_json::json!({"name": "main", "image": "i",
        "resources": {"limits": {"nvidia.com/gpu": "4"}}});
    let ok = beta(
        serde_json::json!({"name": "W", "type": "decode", "replicas": 1,
        "podTemplate": {"spec": {"containers": [main]}}}),
    );
    assert!(v.is_valid(&ok));
    // The v1alpha1 spellings are not v1beta1 fields.
    for broken in [
        serde_json::json!({"name": "W", "componentType": "worker"}),
        serde_json::json!({"name": "W", "type": "prefill-worker"}),
        serde_json::json!({"name": "W", "extraPodSpec": {}}),
        serde_json::json!({"name": "W_1"}),
        serde_json::json!({"name": "W", "multinode": {"nodeCount": 1}}),
        serde_json::json!({"name": "W", "podTemplate": {"spec": {"containers": [
            {"name": "main", "image": "i", "resources": {"limits": {"gpu": "x"}}}]}}}),
    ] {
        assert!(!v.is_valid(&beta(broken.clone())), "{broken}");
    }
}

fn yaml(files: &[OutFile], path: &str) -> Value {
    let f = files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("missing {path}"));
    if path.ends_with("k8s_deploy.yaml") {
        dgd(text(f))
    } else {
        serde_norway::from_str(text(f)).unwrap()
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("not an integer: {v:?}"))
}

/// Flags of the worker command in a manifest service: `--flag value` pairs.
fn flag(args: &str, name: &str) -> Option<String> {
    let words: Vec<&str> = args.split_whitespace().collect();
    words
        .iter()
        .position(|w| *w == name)
        .and_then(|i| words.get(i + 1))
        .map(|s| s.to_string())
}

fn check_numbers(c: &Candidate, mode: &str, top: &str, files: &[OutFile], backend: Backend) {
    let base = format!("{mode}/{top}/{mode}/");
    let k8s = yaml(files, &format!("{base}k8s_deploy.yaml"));
    let services = &common::services(&k8s);
    let roles: Vec<(&str, &aicfg_core::search::WorkerPlan)> = match c.mode {
        ServeMode::Disagg => vec![
            ("Prefill", c.prefill.as_ref().unwrap()),
            ("Decode", c.decode.as_ref().unwrap()),
        ],
        _ => vec![("", c.agg.as_ref().unwrap())],
    };
    let prefix = match backend {
        Backend::Trtllm => "TRTLLM",
        Backend::Vllm => "Vllm",
        Backend::Sglang => "SGLang",
    };
    let mut total_workers = 0;
    for (role, w) in &roles {
        let svc = &services[format!("{prefix}{role}Worker").as_str()];
        let workers = w.workers * c.replicas;
        total_workers += workers;
        assert_eq!(
            u(&svc["replicas"]),
            workers as u64,
            "{base} {role} replicas"
        );
        let nodes = svc["multinode"]["nodeCount"].as_u64().unwrap_or(1);
        let gpu: u64 = svc["resources"]["limits"]["gpu"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(gpu * nodes, w.gpus as u64, "{base} {role} GPUs per worker");
        let args = svc["extraPodSpec"]["mainContainer"]["args"][0]
            .as_str()
            .unwrap();
        let p = &w.parallel;
        let moe = c
            .agg
            .as_ref()
            .or(c.decode.as_ref())
            .unwrap()
            .parallel
            .moe_ep
            > 1
            || p.moe_tp > 1
            || p.moe_ep > 1;
        match backend {
            Backend::Trtllm => {
                let file = if role.is_empty() {
                    "agg".to_string()
                } else {
                    role.to_lowercase()
                };
                let e = yaml(files, &format!("{base}{file}_config.yaml"));
                assert_eq!(u(&e["max_batch_size"]), w.batch_size as u64);
                assert_eq!(u(&e["pipeline_parallel_size"]), p.pp as u64);
                let tp = if moe { p.moe_tp * p.moe_ep } else { p.tp };
                assert_eq!(u(&e["tensor_parallel_size"]), tp as u64);
                if moe {
                    assert_eq!(u(&e["moe_expert_parallel_size"]), p.moe_ep as u64);
                    assert_eq!(
                        e["enable_attention_dp"].as_bool().unwrap(),
                        p.dp > 1,
                        "{base}"
                    );
                }
                assert!(args.contains(&format!(
                    "--extra-engine-args /workspace/engine_configs/{file}_config.yaml"
                )));
            }
            Backend::Vllm | Backend::Sglang => {
                assert_eq!(
                    flag(args, "--pipeline-parallel-size"),
                    Some(p.pp.to_string())
                );
                assert_eq!(flag(args, "--data-parallel-size"), Some(p.dp.to_string()));
                let tp = match (backend, moe) {
                    (_, false) => p.tp,
                    (Backend::Vllm, true) => p.moe_tp * p.moe_ep / p.dp,
                    _ => p.moe_tp * p.moe_ep,
                };
                assert_eq!(flag(args, "--tensor-parallel-size"), Some(tp.to_string()));
            }
        }
    }
    // Node scripts start every worker once, on disjoint GPU slices.
    let launches: usize = files
        .iter()
        .filter(|f| f.path.starts_with(&base) && f.path.contains("/node_"))
        .map(|f| {
            text(f)
                .lines()
                .filter(|l| l.starts_with("CUDA_VISIBLE_DEVICES="))
                .count()
        })
        .sum();
    let single_node = roles.iter().all(|(_, w)| w.gpus <= 8);
    if single_node {
        assert_eq!(launches, total_workers as usize, "{base} launches");
    }
    let g = yaml(files, &format!("{mode}/{top}/generator_config.yaml"));
    let gen = roles.last().unwrap().1;
    let estimate = (gen.workers * c.replicas * gen.batch_size * gen.parallel.dp) as u64;
    assert_eq!(u(&g["BenchConfig"]["estimated_concurrency"]), estimate);
    assert!((estimate as f64 - c.concurrency).abs() <= 1.0 + 0.01 * c.concurrency);
    let bench = files
        .iter()
        .find(|f| f.path == format!("{base}bench_run.sh"))
        .unwrap();
    assert!(text(bench).contains(&format!(" {estimate} ")));
}

#[test]
fn numbers_in_the_files_agree_with_the_search() {
    for (_, c) in cases() {
        let files = build(&save(c, &[])).unwrap();
        for m in &c.res.modes {
            let mode = aicfg_gen::mode_dir(m.mode);
            for (i, cand) in m.top.iter().take(3).enumerate() {
                check_numbers(
                    cand,
                    mode,
                    &format!("top{}", i + 1),
                    &files,
                    c.req.backends[0],
                );
            }
            // The CSV's first row is the rank-1 deployment.
            let csv = files
                .iter()
                .find(|f| f.path == format!("{mode}/best_config_topn.csv"))
                .unwrap();
            let mut r = csv::Reader::from_reader(csv.bytes.as_slice());
            let h = r.headers().unwrap().clone();
            let row = r.records().next().unwrap().unwrap();
            let col = |n: &str| {
                row.get(h.iter().position(|x| x == n).unwrap())
                    .unwrap()
                    .to_string()
            };
            let best = &m.top[0];
            assert_eq!(col("replicas"), best.replicas.to_string());
            match best.mode {
                ServeMode::Disagg => {
                    assert_eq!(
                        col("(p)workers"),
                        best.prefill.as_ref().unwrap().workers.to_string()
                    );
                    assert_eq!(
                        col("(d)bs"),
                        best.decode.as_ref().unwrap().batch_size.to_string()
                    );
                }
                _ => assert_eq!(col("bs"), best.agg.as_ref().unwrap().batch_size.to_string()),
            }
            assert_eq!(
                files
                    .iter()
                    .filter(|f| f.path.starts_with(&format!("{mode}/top"))
                        && f.path.ends_with("generator_config.yaml"))
                    .count(),
                m.top.len().min(3)
            );
        }
    }
}

#[test]
fn trtllm_rules_follow_the_reference_formulas() {
    let (_, c) = cases().iter().find(|(n, _)| n == "dense_trtllm").unwrap();
    let files = build(&save(c, &[])).unwrap();
    let d = c.res.mode(ServeMode::Disagg).unwrap();
    let best = &d.top[0];
    let pre = yaml(&files, "disagg/top1/disagg/prefill_config.yaml");
    // isl 4000: prefill ⌈4500/32⌉·32 = 4512, buffer ⌈5500/32⌉·32 = 5504 (docs/model.md §10).
    assert_eq!(u(&pre["max_num_tokens"]), 4512);
    assert_eq!(
        u(&pre["cache_transceiver_config"]["max_tokens_in_buffer"]),
        5504
    );
    let dec = yaml(&files, "disagg/top1/disagg/decode_config.yaml");
    let bs = best.decode.as_ref().unwrap().batch_size;
    assert_eq!(u(&dec["max_num_tokens"]), bs.div_ceil(32) as u64 * 32);
    let agg = yaml(&files, "agg/top1/agg/agg_config.yaml");
    let abs = c.res.mode(ServeMode::Agg).unwrap().top[0]
        .agg
        .as_ref()
        .unwrap()
        .batch_size;
    assert_eq!(
        u(&agg["max_num_tokens"]),
        (abs + 4500).div_ceil(32) as u64 * 32
    );
    let graphs: Vec<u64> = agg["cuda_graph_config"]["batch_sizes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(u)
        .collect();
    assert!(graphs.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(*graphs.last().unwrap(), abs as u64);
}

#[test]
fn generator_overrides_reach_the_files() {
    let (_, c) = cases().iter().find(|(n, _)| n == "dense_vllm").unwrap();
    let files = build(&save(
        c,
        &[
            ("ServiceConfig.model_path", "/models/qwen3-32b"),
            ("ServiceConfig.model_name", "qwen3"),
            ("K8sConfig.k8s_namespace", "dynamo"),
            ("K8sConfig.k8s_image", "registry.local/vllm:dev"),
            ("rule", "benchmark"),
        ],
    ))
    .unwrap();
    let k8s = yaml(&files, "agg/top1/agg/k8s_deploy.yaml");
    assert_eq!(k8s["metadata"]["namespace"].as_str(), Some("dynamo"));
    let services = common::services(&k8s);
    let svc = &services["VllmWorker"]["extraPodSpec"]["mainContainer"];
    assert_eq!(svc["image"].as_str(), Some("registry.local/vllm:dev"));
    let args = svc["args"][0].as_str().unwrap();
    assert_eq!(flag(args, "--model").as_deref(), Some("/models/qwen3-32b"));
    assert_eq!(flag(args, "--served-model-name").as_deref(), Some("qwen3"));
    // Benchmark rule: the engine admits exactly the simulated batch.
    let bs = c.res.mode(ServeMode::Agg).unwrap().top[0]
        .agg
        .as_ref()
        .unwrap()
        .batch_size;
    assert_eq!(flag(args, "--max-num-seqs"), Some(bs.to_string()));
    let node0 = files
        .iter()
        .find(|f| f.path == "agg/top1/agg/node_0_run.sh")
        .unwrap();
    assert!(text(node0).contains("MODEL_PATH=${MODEL_PATH:-/models/qwen3-32b}"));

    let err = build(&save(c, &[("K8sConfig.k8s_namespace", "Bad Name")])).unwrap_err();
    assert!(err.to_string().contains("K8sConfig.k8s_namespace"), "{err}");
    let err = aicfg_gen::parse_sets(&["K8sConfig.nope=1".to_string()]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("K8sConfig.nope") && msg.contains("K8sConfig.k8s_image"),
        "{msg}"
    );
    assert!(aicfg_gen::parse_sets(&["rule".to_string()]).is_err());
}

/// Defect 10: the version decides the image, and a version no image ships is refused
/// instead of being written into files the paired image rejects.
#[test]
fn generated_config_version_picks_the_matching_release_and_image() {
    let (_, c) = cases().iter().find(|(n, _)| n == "dense_trtllm").unwrap();
    let mut s = save(c, &[]);
    s.generated_version = Some("1.3.0rc19".into());
    s.top_k = 1;
    let files = build(&s).unwrap();
    let g = yaml(&files, "agg/top1/generator_config.yaml");
    assert_eq!(g["generated_config_version"].as_str(), Some("1.3.0rc19"));
    assert_eq!(g["DynConfig"]["dynamo_version"].as_str(), Some("1.3.1"));
    let k8s = common::services(&yaml(&files, "agg/top1/agg/k8s_deploy.yaml"));
    let img = k8s["TRTLLMWorker"]["extraPodSpec"]["mainContainer"]["image"]
        .as_str()
        .unwrap();
    assert_eq!(img, "nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:1.3.1");
    // --dynamo-version alone picks the release's framework version.
    let mut s = save(c, &[]);
    s.dynamo_version = Some("1.3.0.post1".into());
    s.top_k = 1;
    let files = build(&s).unwrap();
    let g = yaml(&files, "agg/top1/generator_config.yaml");
    assert_eq!(g["generated_config_version"].as_str(), Some("1.3.0rc19"));
    assert!(text(
        files
            .iter()
            .find(|f| f.path == "agg/top1/agg/k8s_deploy.yaml")
            .unwrap()
    )
    .contains("tensorrtllm-runtime:1.3.0.post1"));
    // K8sConfig.k8s_image still wins.
    let mut s = save(c, &[("K8sConfig.k8s_image", "registry.local/trt:dev")]);
    s.generated_version = Some("1.3.0rc19".into());
    s.top_k = 1;
    let k8s = common::services(&yaml(&build(&s).unwrap(), "agg/top1/agg/k8s_deploy.yaml"));
    assert_eq!(
        k8s["TRTLLMWorker"]["extraPodSpec"]["mainContainer"]["image"].as_str(),
        Some("registry.local/trt:dev")
    );
    // 0.20.0 is in no image of the matrix: a clear error, not files the 1.x image rejects.
    let mut s = save(c, &[]);
    s.generated_version = Some("0.20.0".into());
    let e = build(&s).unwrap_err().to_string();
    assert!(e.contains("0.20.0") && e.contains("1.3.0rc29"), "{e}");
}

#[test]
fn folder_name_is_one_safe_component() {
    let (_, c) = &cases()[0];
    assert_eq!(
        aicfg_gen::folder_name(&c.req),
        "Qwen_Qwen3-32B_h200_sxm_trtllm_isl4000_osl1000_ttft2000_tpot30"
    );
    for f in build(&save(c, &[])).unwrap() {
        assert!(!f.path.starts_with('/') && !f.path.split('/').any(|p| p == ".." || p.is_empty()));
    }
}

#[test]
fn build_row_writes_only_the_chosen_rows_folder() {
    let c = &cases()[0].1;
    let s = save(c, &[]);
    let full = build(&s).unwrap();
    let row = aicfg_gen::build_row(&s, ServeMode::Disagg, 2).unwrap();
    // Every file of the row tree is the same file of the full tree.
    for f in &row {
        assert_eq!(
            full.iter().find(|g| g.path == f.path),
            Some(f),
            "{}",
            f.path
        );
    }
    let tops: std::collections::BTreeSet<&str> = row
        .iter()
        .filter_map(|f| f.path.split('/').nth(1).filter(|p| p.starts_with("top")))
        .collect();
    assert_eq!(tops.into_iter().collect::<Vec<_>>(), ["top2"]);
    assert!(row.iter().any(|f| f.path.starts_with("disagg/top2/")));
    assert!(!row.iter().any(|f| f.path.starts_with("agg/top")));
    assert!(row.iter().any(|f| f.path == "agg/config.yaml"));
    for bad in [0, 99] {
        let e = aicfg_gen::build_row(&s, ServeMode::Disagg, bad).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
}

/// The bench script states the search's prediction at each benchmarked concurrency it was given
/// one for (the generator is handed the simulated percentiles; it computes none), and stays as
/// it was without one.
#[test]
fn bench_script_states_the_predicted_percentiles_it_is_given() {
    let mut g = common::config(
        "trtllm",
        false,
        &[("agg", 1, common::params(4, 1, 1, 64, 4096))],
    );
    let plain = common::files(&g);
    let plain = common::get(&plain, "bench_run.sh").to_string();
    assert!(!plain.contains("# Predicted at concurrency"), "{plain}");
    g.bench.predictions = vec![aicfg_gen::genconfig::BenchPrediction {
        concurrency: 64,
        ttft_mean: 812.5,
        ttft_p90: 950.25,
        ttft_p99: 2400.0,
        tpot_mean: 21.5,
        tpot_p90: 22.125,
        tpot_p99: 23.75,
    }];
    let f = common::files(&g);
    let script = common::get(&f, "bench_run.sh");
    let want = "# Predicted at concurrency 64: TTFT mean 812.5 ms (p90 950.25, p99 2400.0), TPOT mean 21.5 ms (p90 22.125, p99 23.75); mean from the closed form, p90/p99 from the simulated benchmark.\n";
    assert!(script.contains(want), "{script}");
    // One comment line more, nothing else changed.
    assert_eq!(script.replace(want, ""), plain);
    assert!(common::get(&f, "generator_config.yaml").contains("predictions:"));
}
