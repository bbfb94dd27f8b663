//! `generator_config.yaml`: the normalized inputs of the generator (MODELING.md §10.9), built
//! from one search candidate, then patched by `--generator-set KEY=VALUE`.
use crate::error::{GenError, Result};
use aicfg_core::search::{Candidate, WorkerPlan};
use aicfg_core::{Backend, ServeMode};
use serde::{Deserialize, Serialize};

/// Dynamo releases and the framework versions their runtime images ship (newest first):
/// (dynamo, vllm, sglang, trtllm).
pub const VERSION_MATRIX: [(&str, &str, &str, &str); 4] = [
    ("1.3.0", "0.24.0", "0.5.16", "1.3.0rc23"),
    ("1.2.0", "0.20.1", "0.5.11", "1.3.0rc14"),
    ("1.1.0", "0.19.0", "0.5.10.post1", "1.3.0rc11"),
    ("1.0.0", "0.16.0", "0.5.9", "1.3.0rc5.post1"),
];

/// Framework version whose behaviour the performance model describes (the reference's defaults).
pub fn modelled_version(b: Backend) -> &'static str {
    match b {
        Backend::Trtllm => "1.3.0rc20",
        Backend::Vllm => "0.24.0",
        Backend::Sglang => "0.5.14",
    }
}

fn matrix_version(
    row: &(&'static str, &'static str, &'static str, &'static str),
    b: Backend,
) -> &'static str {
    match b {
        Backend::Vllm => row.1,
        Backend::Sglang => row.2,
        Backend::Trtllm => row.3,
    }
}

/// (framework version, Dynamo release) for a requested target version; the newest Dynamo
/// release when none is requested or the version is not in the matrix.
pub fn target_versions(b: Backend, requested: Option<&str>) -> (String, String) {
    let newest = &VERSION_MATRIX[0];
    match requested.map(str::trim).filter(|s| !s.is_empty()) {
        None => (matrix_version(newest, b).to_string(), newest.0.to_string()),
        Some(v) => {
            let row = VERSION_MATRIX
                .iter()
                .find(|r| matrix_version(r, b) == v)
                .unwrap_or(newest);
            (v.to_string(), row.0.to_string())
        }
    }
}

/// Numeric parts of a version (`1.3.0rc20` → [1, 3, 0]); enough to order releases by format.
pub fn version_key(v: &str) -> Vec<u32> {
    v.split('.')
        .map(|p| {
            let digits: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse().unwrap_or(0)
        })
        .collect()
}

/// Production (default) sizes the engine like a service; benchmark matches what was simulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    Production,
    Benchmark,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceConfig {
    pub model_path: String,
    pub served_model_name: String,
    pub head_node_ip: String,
    pub port: u16,
    pub include_frontend: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct K8sConfig {
    pub name_prefix: String,
    pub k8s_namespace: String,
    pub k8s_image: String,
    pub hf_token_secret: String,
    /// `nvidia.com/gpu.product` node label; empty = no node selector.
    pub gpu_product: String,
    pub engine_configs_dir: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DynConfig {
    pub mode: String,
    pub enable_router: bool,
    pub dynamo_version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerConfig {
    pub agg_workers: u32,
    pub agg_gpus_per_worker: u32,
    pub prefill_workers: u32,
    pub prefill_gpus_per_worker: u32,
    pub decode_workers: u32,
    pub decode_gpus_per_worker: u32,
}

/// Targets and what the model predicted for this deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaConfig {
    pub isl: u32,
    pub osl: u32,
    pub ttft: f64,
    pub tpot: f64,
    pub predicted_ttft: f64,
    pub predicted_tpot: f64,
    pub predicted_tokens_per_s_per_gpu: f64,
    pub predicted_tokens_per_s_per_user: f64,
    pub predicted_concurrency: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchConfig {
    /// Requests in flight the deployment holds at full batch (workers × batch × DP ranks).
    pub estimated_concurrency: u32,
    pub concurrencies: Vec<u32>,
    pub requests_per_concurrency: u32,
    pub warmup_per_concurrency: u32,
    pub random_seed: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeConfig {
    pub num_gpus_per_node: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub model_name: String,
    pub is_moe: bool,
    pub nextn: u32,
    pub prefix: u32,
}

/// One worker role as the search planned it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerParams {
    pub tensor_parallel_size: u32,
    pub pipeline_parallel_size: u32,
    pub data_parallel_size: u32,
    pub moe_tensor_parallel_size: u32,
    pub moe_expert_parallel_size: u32,
    pub gpus_per_worker: u32,
    /// Requests per attention-DP rank.
    pub max_batch_size: u32,
    /// Step token budget the prediction assumed.
    pub max_num_tokens: u32,
    pub gemm_quant_mode: String,
    pub moe_quant_mode: String,
    pub kvcache_quant_mode: String,
    pub fmha_quant_mode: String,
    pub comm_quant_mode: String,
    pub memory_gib: f64,
    /// KV-cache memory fraction the memory model assumed.
    pub free_gpu_memory_fraction: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Params {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub agg: Option<WorkerParams>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub prefill: Option<WorkerParams>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub decode: Option<WorkerParams>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorConfig {
    pub backend: String,
    /// Framework version the files are written for.
    pub generated_config_version: String,
    pub rule: Rule,
    #[serde(rename = "ServiceConfig")]
    pub service: ServiceConfig,
    #[serde(rename = "K8sConfig")]
    pub k8s: K8sConfig,
    #[serde(rename = "DynConfig")]
    pub dynamo: DynConfig,
    #[serde(rename = "WorkerConfig")]
    pub workers: WorkerConfig,
    #[serde(rename = "SlaConfig")]
    pub sla: SlaConfig,
    #[serde(rename = "BenchConfig")]
    pub bench: BenchConfig,
    #[serde(rename = "NodeConfig")]
    pub node: NodeConfig,
    #[serde(rename = "ModelConfig")]
    pub model: ModelConfig,
    pub params: Params,
}

/// What the generator needs besides the candidate.
#[derive(Debug, Clone)]
pub struct Context {
    pub model: String,
    pub is_moe: bool,
    pub isl: u32,
    pub osl: u32,
    pub prefix: u32,
    pub nextn: u32,
    pub ttft: f64,
    pub tpot: f64,
    pub num_gpus_per_node: u32,
    /// Node label of the GPU; empty when unknown.
    pub gpu_product: String,
    /// KV memory fraction the memory model used (None = the backend default).
    pub free_gpu_memory_fraction: Option<f64>,
    pub generated_version: Option<String>,
}

fn image_for(b: Backend, dynamo: &str) -> String {
    let kind = match b {
        Backend::Trtllm => "tensorrtllm",
        Backend::Vllm => "vllm",
        Backend::Sglang => "sglang",
    };
    format!("nvcr.io/nvidia/ai-dynamo/{kind}-runtime:{dynamo}")
}

fn params_of(w: &WorkerPlan, fraction: f64) -> WorkerParams {
    WorkerParams {
        tensor_parallel_size: w.parallel.tp,
        pipeline_parallel_size: w.parallel.pp,
        data_parallel_size: w.parallel.dp,
        moe_tensor_parallel_size: w.parallel.moe_tp,
        moe_expert_parallel_size: w.parallel.moe_ep,
        gpus_per_worker: w.gpus,
        max_batch_size: w.batch_size,
        max_num_tokens: w.max_num_tokens,
        gemm_quant_mode: w.quant.gemm.name().to_string(),
        moe_quant_mode: w.quant.moe.name().to_string(),
        kvcache_quant_mode: w.quant.kvcache.name().to_string(),
        fmha_quant_mode: w.quant.fmha.name().to_string(),
        comm_quant_mode: w.quant.comm.name().to_string(),
        memory_gib: (w.memory_gib * 1000.0).round() / 1000.0,
        free_gpu_memory_fraction: fraction,
    }
}

/// Benchmark concurrencies: a fixed ladder plus the estimate and ±5 % around it.
pub fn bench_concurrencies(estimate: u32) -> Vec<u32> {
    let e = estimate as f64;
    let mut v = vec![1, 2, 8, 16, 32, 64, 128];
    v.extend([
        (0.95 * e).floor() as u32,
        estimate,
        (1.05 * e).floor() as u32,
    ]);
    v.retain(|c| *c >= 1);
    v.sort_unstable();
    v.dedup();
    v
}

fn r3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

impl GeneratorConfig {
    /// The generator inputs for one candidate (workers counted over the whole cluster).
    pub fn from_candidate(c: &Candidate, ctx: &Context) -> Self {
        let backend = c.backend;
        let (version, dynamo_version) = target_versions(backend, ctx.generated_version.as_deref());
        let fraction = ctx
            .free_gpu_memory_fraction
            .unwrap_or(backend.memory_fraction().0);
        let count = |w: &Option<WorkerPlan>| {
            w.as_ref()
                .map_or((0, 0), |w| (w.workers * c.replicas, w.gpus))
        };
        let (agg_workers, agg_gpus) = count(&c.agg);
        let (prefill_workers, prefill_gpus) = count(&c.prefill);
        let (decode_workers, decode_gpus) = count(&c.decode);
        let (gen_workers, gen_plan) = match c.mode {
            ServeMode::Disagg => (decode_workers, c.decode.as_ref()),
            _ => (agg_workers, c.agg.as_ref()),
        };
        let estimate = gen_plan.map_or(0, |w| gen_workers * w.batch_size * w.parallel.dp);
        let mode = match c.mode {
            ServeMode::Disagg => "disagg",
            _ => "agg",
        };
        GeneratorConfig {
            backend: backend.name().to_string(),
            generated_config_version: version,
            rule: Rule::Production,
            service: ServiceConfig {
                model_path: ctx.model.clone(),
                served_model_name: ctx.model.clone(),
                head_node_ip: "0.0.0.0".into(),
                port: 8000,
                include_frontend: true,
            },
            k8s: K8sConfig {
                name_prefix: "dynamo".into(),
                k8s_namespace: "default".into(),
                k8s_image: image_for(backend, &dynamo_version),
                hf_token_secret: "hf-token-secret".into(),
                gpu_product: ctx.gpu_product.clone(),
                engine_configs_dir: "/workspace/engine_configs".into(),
            },
            dynamo: DynConfig {
                mode: mode.into(),
                enable_router: ctx.prefix > 0,
                dynamo_version,
            },
            workers: WorkerConfig {
                agg_workers,
                agg_gpus_per_worker: agg_gpus,
                prefill_workers,
                prefill_gpus_per_worker: prefill_gpus,
                decode_workers,
                decode_gpus_per_worker: decode_gpus,
            },
            sla: SlaConfig {
                isl: ctx.isl,
                osl: ctx.osl,
                ttft: ctx.ttft,
                tpot: ctx.tpot,
                predicted_ttft: r3(c.ttft_ms),
                predicted_tpot: r3(c.tpot_ms),
                predicted_tokens_per_s_per_gpu: r3(c.tokens_per_s_per_gpu),
                predicted_tokens_per_s_per_user: r3(c.tokens_per_s_per_user),
                predicted_concurrency: r3(c.concurrency),
            },
            bench: BenchConfig {
                estimated_concurrency: estimate,
                concurrencies: bench_concurrencies(estimate),
                requests_per_concurrency: 20,
                warmup_per_concurrency: 2,
                random_seed: 100,
            },
            node: NodeConfig {
                num_gpus_per_node: ctx.num_gpus_per_node.max(1),
            },
            model: ModelConfig {
                model_name: ctx.model.clone(),
                is_moe: ctx.is_moe,
                nextn: ctx.nextn,
                prefix: ctx.prefix,
            },
            params: Params {
                agg: c.agg.as_ref().map(|w| params_of(w, fraction)),
                prefill: c.prefill.as_ref().map(|w| params_of(w, fraction)),
                decode: c.decode.as_ref().map(|w| params_of(w, fraction)),
            },
        }
    }

    /// Apply one `KEY=VALUE` override (keys as in [`KNOWN_KEYS`]).
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let bad = |reason: &str| GenError::BadValue {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let text = value.to_string();
        match key {
            "ServiceConfig.model_path" => self.service.model_path = text,
            "ServiceConfig.model_name" | "ServiceConfig.served_model_name" => {
                self.service.served_model_name = text
            }
            "ServiceConfig.head_node_ip" => self.service.head_node_ip = text,
            "ServiceConfig.port" => {
                self.service.port = value
                    .parse()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad("expected a port number 1-65535"))?
            }
            "ServiceConfig.include_frontend" => {
                self.service.include_frontend =
                    parse_bool(value).ok_or_else(|| bad("expected true or false"))?
            }
            "K8sConfig.name_prefix" => {
                self.k8s.name_prefix = dns_label(value)
                    .ok_or_else(|| bad("expected a DNS label: lowercase letters, digits and '-'"))?
            }
            "K8sConfig.k8s_namespace" => {
                self.k8s.k8s_namespace = dns_label(value)
                    .ok_or_else(|| bad("expected a DNS label: lowercase letters, digits and '-'"))?
            }
            "K8sConfig.k8s_image" => {
                if value.trim().is_empty() || value.contains(char::is_whitespace) {
                    return Err(bad("expected an image reference without spaces"));
                }
                self.k8s.k8s_image = text
            }
            "K8sConfig.hf_token_secret" => {
                self.k8s.hf_token_secret = dns_label(value).ok_or_else(|| {
                    bad("expected a secret name: lowercase letters, digits and '-'")
                })?
            }
            "K8sConfig.gpu_product" => self.k8s.gpu_product = text,
            "DynConfig.enable_router" => {
                self.dynamo.enable_router =
                    parse_bool(value).ok_or_else(|| bad("expected true or false"))?
            }
            "NodeConfig.num_gpus_per_node" => {
                self.node.num_gpus_per_node = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("expected a positive integer"))?
            }
            "BenchConfig.requests_per_concurrency" => {
                self.bench.requests_per_concurrency = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("expected a positive integer"))?
            }
            "rule" => {
                self.rule = match value.trim().to_ascii_lowercase().as_str() {
                    "production" | "default" => Rule::Production,
                    "benchmark" => Rule::Benchmark,
                    _ => return Err(bad("expected production or benchmark")),
                }
            }
            _ => return Err(unknown_key(key)),
        }
        Ok(())
    }
}

/// Keys `--generator-set` accepts.
pub const KNOWN_KEYS: [&str; 15] = [
    "ServiceConfig.model_path",
    "ServiceConfig.model_name",
    "ServiceConfig.served_model_name",
    "ServiceConfig.head_node_ip",
    "ServiceConfig.port",
    "ServiceConfig.include_frontend",
    "K8sConfig.name_prefix",
    "K8sConfig.k8s_namespace",
    "K8sConfig.k8s_image",
    "K8sConfig.hf_token_secret",
    "K8sConfig.gpu_product",
    "DynConfig.enable_router",
    "NodeConfig.num_gpus_per_node",
    "BenchConfig.requests_per_concurrency",
    "rule",
];

fn unknown_key(key: &str) -> GenError {
    GenError::UnknownKey {
        key: key.to_string(),
        known: KNOWN_KEYS.join(", "),
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn dns_label(v: &str) -> Option<String> {
    let ok = !v.is_empty()
        && v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !v.starts_with('-')
        && !v.ends_with('-');
    ok.then(|| v.to_string())
}

/// Parse `KEY=VALUE` overrides, rejecting unknown keys and bad values before any search runs.
pub fn parse_sets(items: &[String]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for it in items {
        let (k, v) = it
            .split_once('=')
            .ok_or_else(|| GenError::BadAssignment(it.clone()))?;
        let k = k.trim();
        if !KNOWN_KEYS.contains(&k) {
            return Err(unknown_key(k));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}
