//! Generator configs built directly (no search) and readers of the rendered files, shared by
//! the launch-simulation and schema tests.
#![allow(dead_code)]
use aicfg_gen::genconfig::*;
use aicfg_gen::render::render;
use serde_norway::Value;
use std::collections::BTreeMap;

pub fn params(tp: u32, dp: u32, ep: u32, bs: u32, tokens: u32) -> WorkerParams {
    let gpus = if ep > 1 { ep } else { tp * dp };
    WorkerParams {
        tensor_parallel_size: tp,
        pipeline_parallel_size: 1,
        data_parallel_size: dp,
        moe_tensor_parallel_size: if ep > 1 { 1 } else { tp },
        moe_expert_parallel_size: ep.max(1),
        gpus_per_worker: gpus,
        max_batch_size: bs,
        max_num_tokens: tokens,
        gemm_quant_mode: "fp8_block".into(),
        moe_quant_mode: "fp8_block".into(),
        kvcache_quant_mode: "fp8".into(),
        fmha_quant_mode: "bfloat16".into(),
        comm_quant_mode: "half".into(),
        memory_gib: 100.0,
        free_gpu_memory_fraction: 0.85,
    }
}

/// A deployment as the generator sees it; `roles` = (role, workers, params).
pub fn config(backend: &str, moe: bool, roles: &[(&str, u32, WorkerParams)]) -> GeneratorConfig {
    let find = |r: &str| roles.iter().find(|x| x.0 == r);
    let count = |r: &str| find(r).map_or((0, 0), |x| (x.1, x.2.gpus_per_worker));
    let disagg = find("prefill").is_some();
    let release = &aicfg_gen::versions::matrix().releases[0];
    let b = aicfg_core::Backend::parse(backend).unwrap();
    let image = aicfg_gen::versions::matrix().image(b, &release.dynamo);
    GeneratorConfig {
        backend: b,
        generated_config_version: release.framework(b).to_string(),
        rule: Rule::Production,
        service: ServiceConfig {
            model_path: "Qwen/Qwen3-32B".into(),
            served_model_name: "Qwen/Qwen3-32B".into(),
            head_node_ip: "10.0.0.1".into(),
            port: 8000,
            include_frontend: true,
        },
        k8s: K8sConfig {
            name_prefix: "dynamo".into(),
            k8s_namespace: "default".into(),
            k8s_image: image.clone(),
            decode_k8s_image: image,
            hf_token_secret: "hf-token-secret".into(),
            gpu_product: "NVIDIA-H200".into(),
            decode_gpu_product: "NVIDIA-H200".into(),
            engine_configs_dir: "/workspace/engine_configs".into(),
            image_pull_secret: String::new(),
            model_cache_pvc: String::new(),
            hf_home: "/root/.cache/huggingface".into(),
            compute_domain: false,
            decode_compute_domain: false,
            llmd_image: format!("docker.io/vllm/vllm-openai:v{}", release.vllm),
            gpu_vendor: Default::default(),
            decode_gpu_vendor: Default::default(),
        },
        dynamo: DynConfig {
            mode: if disagg { "disagg" } else { "agg" }.into(),
            enable_router: false,
            publish_kv_events: false,
            dynamo_version: release.dynamo.clone(),
        },
        workers: WorkerConfig {
            agg_workers: count("agg").0,
            agg_gpus_per_worker: count("agg").1,
            prefill_workers: count("prefill").0,
            prefill_gpus_per_worker: count("prefill").1,
            decode_workers: count("decode").0,
            decode_gpus_per_worker: count("decode").1,
        },
        sla: SlaConfig {
            isl: 4000,
            osl: 1000,
            ttft: 2000.0,
            tpot: 30.0,
            predicted_ttft: 500.0,
            predicted_tpot: 20.0,
            predicted_tokens_per_s_per_gpu: 1000.0,
            predicted_tokens_per_s_per_user: 50.0,
            predicted_concurrency: 64.0,
        },
        bench: BenchConfig {
            estimated_concurrency: 64,
            concurrencies: vec![1, 64],
            requests_per_concurrency: 2,
            warmup_per_concurrency: 0,
            random_seed: 100,
            predictions: Vec::new(),
        },
        node: NodeConfig {
            num_gpus_per_node: 8,
            decode_num_gpus_per_node: 8,
        },
        model: ModelConfig {
            model_name: "Qwen/Qwen3-32B".into(),
            is_moe: moe,
            nextn: 0,
            prefix: 0,
            checkpoint_gib: 67,
        },
        params: Params {
            agg: find("agg").map(|x| x.2.clone()),
            prefill: find("prefill").map(|x| x.2.clone()),
            decode: find("decode").map(|x| x.2.clone()),
        },
    }
}

pub fn files(g: &GeneratorConfig) -> BTreeMap<String, String> {
    render(g).unwrap().into_iter().collect()
}

pub fn get<'a>(f: &'a BTreeMap<String, String>, suffix: &str) -> &'a str {
    f.iter()
        .find(|(p, _)| p.ends_with(suffix))
        .unwrap_or_else(|| panic!("no {suffix} in {:?}", f.keys().collect::<Vec<_>>()))
        .1
}

pub fn docs(s: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_norway::Deserializer::from_str(s)
        .map(|d| Value::deserialize(d).unwrap())
        .collect()
}

pub fn dgd(f: &BTreeMap<String, String>) -> Value {
    docs(get(f, "k8s_deploy.yaml"))
        .into_iter()
        .find(|d| d["kind"].as_str() == Some("DynamoGraphDeployment"))
        .unwrap()
}

/// The pod command of a worker service (`bash -c` script).
pub fn pod_script(f: &BTreeMap<String, String>, service: &str) -> String {
    services(&dgd(f))[service]["extraPodSpec"]["mainContainer"]["args"][0]
        .as_str()
        .unwrap()
        .to_string()
}

/// The worker/frontend services of a DynamoGraphDeployment in the v1alpha1 shape (a map of
/// service name → `replicas`, `multinode`, `resources.limits.gpu`, `resources.claims`,
/// `extraPodSpec` with `mainContainer`), whichever API version it was written in: v1beta1
/// components are mapped field by field (`podTemplate.spec` → `extraPodSpec`, container `main`
/// → `mainContainer`, `nvidia.com/gpu` → `gpu`), so one set of assertions covers both.
pub fn services(d: &Value) -> Value {
    if d["apiVersion"].as_str() == Some("nvidia.com/v1alpha1") {
        return d["spec"]["services"].clone();
    }
    assert_eq!(
        d["apiVersion"].as_str(),
        Some("nvidia.com/v1beta1"),
        "{d:?}"
    );
    let mut out = serde_norway::Mapping::new();
    for c in d["spec"]["components"].as_sequence().expect("components") {
        let name = c["name"].as_str().expect("component name");
        let spec = &c["podTemplate"]["spec"];
        let containers = spec["containers"].as_sequence().expect("containers");
        let main = containers
            .iter()
            .find(|k| k["name"].as_str() == Some("main"))
            .expect("a container named main");
        let mut pod = spec.as_mapping().unwrap().clone();
        pod.remove("containers");
        pod.insert("mainContainer".into(), main.clone());
        let mut svc = serde_norway::Mapping::new();
        for k in ["replicas", "multinode"] {
            if !c[k].is_null() {
                svc.insert(k.into(), c[k].clone());
            }
        }
        let mut res = serde_norway::Mapping::new();
        if let Some(g) = main["resources"]["limits"]["nvidia.com/gpu"].as_str() {
            let mut l = serde_norway::Mapping::new();
            l.insert("gpu".into(), g.into());
            res.insert("limits".into(), Value::Mapping(l));
        }
        if !main["resources"]["claims"].is_null() {
            res.insert("claims".into(), main["resources"]["claims"].clone());
        }
        svc.insert("resources".into(), Value::Mapping(res));
        svc.insert("extraPodSpec".into(), Value::Mapping(pod));
        out.insert(name.into(), Value::Mapping(svc));
    }
    Value::Mapping(out)
}
