//! `generator_config.yaml`: the normalized inputs of the generator (docs/model.md §10), built
//! from one search candidate, then patched by `--generator-set KEY=VALUE`.
use crate::error::{GenError, Result};
use crate::versions;
use aicfg_core::hardware::Vendor;
use aicfg_core::search::{Candidate, WorkerPlan};
use aicfg_core::{Backend, ServeMode};
use serde::{Deserialize, Serialize};

/// Framework version whose behaviour the performance model describes (the reference's defaults).
pub fn modelled_version(b: Backend) -> &'static str {
    match b {
        Backend::Trtllm => "1.3.0rc20",
        Backend::Vllm => "0.24.0",
        Backend::Sglang => "0.5.14",
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
    /// Runtime image of the agg/prefill pool (and of the frontend).
    pub k8s_image: String,
    /// Runtime image of the decode pool (disagg); the same release as `k8s_image` unless set.
    pub decode_k8s_image: String,
    pub hf_token_secret: String,
    /// GPU-model node label of the agg/prefill pool (`nvidia.com/gpu.product`, AMD:
    /// `amd.com/gpu.product-name`); empty = no node selector.
    pub gpu_product: String,
    /// Node label of the decode pool (its own system's GPU in heterogeneous disagg).
    pub decode_gpu_product: String,
    pub engine_configs_dir: String,
    /// Secret for pulling the image from a private registry; empty = none.
    pub image_pull_secret: String,
    /// PersistentVolumeClaim holding the model cache, mounted at `hf_home`; empty = none.
    pub model_cache_pvc: String,
    /// `HF_HOME` inside the pods (where the cache is mounted).
    pub hf_home: String,
    /// Multi-node workers of the agg/prefill pool claim an IMEX channel of a ComputeDomain
    /// (NVIDIA DRA driver): NCCL needs one to use NVLink across the trays of an NVL72 rack.
    /// Default: on when the system's NVLink domain is larger than a node.
    #[serde(default)]
    pub compute_domain: bool,
    /// The same for the decode pool (its own system in heterogeneous disagg).
    #[serde(default)]
    pub decode_compute_domain: bool,
    /// vLLM image of the llm-d deployment (`llm-d-values.yaml`, vLLM only): the upstream vLLM
    /// release the Dynamo release pins.
    #[serde(default)]
    pub llmd_image: String,
    /// GPU maker of the agg/prefill pool: picks the Kubernetes GPU resource and node-label keys
    /// ([`gpu_keys`]). Written to generator_config.yaml only when not NVIDIA.
    #[serde(default, skip_serializing_if = "is_nvidia")]
    pub gpu_vendor: Vendor,
    /// The same for the decode pool (its own system in heterogeneous disagg).
    #[serde(default, skip_serializing_if = "is_nvidia")]
    pub decode_gpu_vendor: Vendor,
}

fn is_nvidia(v: &Vendor) -> bool {
    *v == Vendor::Nvidia
}

/// The GPU resource name and the GPU-model node label of a vendor's Kubernetes device plugin:
/// NVIDIA's (`nvidia.com/gpu`, GPU feature discovery's `nvidia.com/gpu.product`) or AMD's
/// (`amd.com/gpu`, its node labeller's `amd.com/gpu.product-name`).
pub fn gpu_keys(v: Vendor) -> (&'static str, &'static str) {
    match v {
        Vendor::Nvidia => ("nvidia.com/gpu", "nvidia.com/gpu.product"),
        Vendor::Amd => ("amd.com/gpu", "amd.com/gpu.product-name"),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DynConfig {
    pub mode: String,
    /// KV-aware routing in the frontend (`--router-mode kv`).
    pub enable_router: bool,
    /// Workers publish KV-cache events (what the KV router routes on); on with the router.
    pub publish_kv_events: bool,
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
    /// What the search predicted at benchmarked concurrencies (the simulated percentiles of
    /// this row; empty when it was not simulated). Only annotates the bench script.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub predictions: Vec<BenchPrediction>,
}

/// A prediction at one concurrency, in ms: the closed-form mean and the simulated tail
/// (`aicfg_core::search::percentile`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchPrediction {
    pub concurrency: u32,
    pub ttft_mean: f64,
    pub ttft_p90: f64,
    pub ttft_p99: f64,
    pub tpot_mean: f64,
    pub tpot_p90: f64,
    pub tpot_p99: f64,
}

impl BenchPrediction {
    /// The prediction of a simulated row at concurrency `c`, rounded to 3 decimals.
    pub fn of(row: &aicfg_core::search::PercentileRow, concurrency: u32) -> Self {
        BenchPrediction {
            concurrency,
            ttft_mean: r3(row.ttft_ms.mean),
            ttft_p90: r3(row.ttft_ms.p90),
            ttft_p99: r3(row.ttft_ms.p99),
            tpot_mean: r3(row.tpot_ms.mean),
            tpot_p90: r3(row.tpot_ms.p90),
            tpot_p99: r3(row.tpot_ms.p99),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeConfig {
    /// GPUs per node of the agg/prefill system.
    pub num_gpus_per_node: u32,
    /// GPUs per node of the decode system (disagg).
    pub decode_num_gpus_per_node: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub model_name: String,
    pub is_moe: bool,
    pub nextn: u32,
    pub prefix: u32,
    /// Volume for the downloaded checkpoint (GiB): parameters × 2 bytes (BF16, the widest
    /// common checkpoint dtype) plus 10 % for tokenizer and config files, rounded up.
    #[serde(default)]
    pub checkpoint_gib: u32,
}

/// [`ModelConfig::checkpoint_gib`] of a model with `params` parameters.
pub fn checkpoint_gib(params: f64) -> u32 {
    let gib = params.max(0.0) * 2.0 * 1.1 / f64::from(1u32 << 30);
    gib.ceil().clamp(1.0, 1e6) as u32
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
    pub backend: Backend,
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
    /// The decode system's (heterogeneous disagg; else the same as above).
    pub decode_num_gpus_per_node: u32,
    pub decode_gpu_product: String,
    /// GPU makers of the agg/prefill and the decode system.
    pub gpu_vendor: Vendor,
    pub decode_gpu_vendor: Vendor,
    /// The system's NVLink domain (GPUs) spans several nodes (GB200/GB300 NVL72): agg/prefill
    /// and decode pool.
    pub multi_node_nvlink: bool,
    pub decode_multi_node_nvlink: bool,
    /// Parameters of the model (every expert).
    pub param_count: f64,
    /// `--generated_config_version` and `--dynamo-version`.
    pub generated_version: Option<String>,
    pub dynamo_version: Option<String>,
}

fn params_of(w: &WorkerPlan) -> WorkerParams {
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
        free_gpu_memory_fraction: w.memory_fraction,
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
    pub fn from_candidate(c: &Candidate, ctx: &Context) -> Result<Self> {
        let backend = c.backend;
        let m = versions::matrix();
        let release = m.resolve(
            backend,
            ctx.generated_version.as_deref(),
            ctx.dynamo_version.as_deref(),
        )?;
        let version = release.framework(backend).to_string();
        let dynamo_version = release.dynamo.clone();
        let image = m.image(backend, &dynamo_version);

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
        Ok(GeneratorConfig {
            backend,
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
                k8s_image: image.clone(),
                decode_k8s_image: image,
                hf_token_secret: "hf-token-secret".into(),
                gpu_product: ctx.gpu_product.clone(),
                decode_gpu_product: ctx.decode_gpu_product.clone(),
                engine_configs_dir: "/workspace/engine_configs".into(),
                image_pull_secret: String::new(),
                model_cache_pvc: String::new(),
                hf_home: "/root/.cache/huggingface".into(),
                compute_domain: ctx.multi_node_nvlink,
                decode_compute_domain: ctx.decode_multi_node_nvlink,
                gpu_vendor: ctx.gpu_vendor,
                decode_gpu_vendor: ctx.decode_gpu_vendor,
                llmd_image: if backend == Backend::Vllm {
                    format!("docker.io/vllm/vllm-openai:v{}", release.vllm)
                } else {
                    String::new()
                },
            },
            dynamo: DynConfig {
                mode: mode.into(),
                enable_router: ctx.prefix > 0,
                publish_kv_events: ctx.prefix > 0,
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
                warmup_per_concurrency: aicfg_core::simulate::BENCH_WARMUP_PER_CLIENT,
                random_seed: 100,
                predictions: Vec::new(),
            },
            node: NodeConfig {
                num_gpus_per_node: ctx.num_gpus_per_node.max(1),
                decode_num_gpus_per_node: ctx.decode_num_gpus_per_node.max(1),
            },
            model: ModelConfig {
                model_name: ctx.model.clone(),
                is_moe: ctx.is_moe,
                nextn: ctx.nextn,
                prefix: ctx.prefix,
                checkpoint_gib: checkpoint_gib(ctx.param_count),
            },
            params: Params {
                agg: c.agg.as_ref().map(params_of),
                prefill: c.prefill.as_ref().map(params_of),
                decode: c.decode.as_ref().map(params_of),
            },
        })
    }

    /// Apply one `KEY=VALUE` override (keys as in [`KEYS`]); every value is checked against
    /// its key's type, so nothing a shell or YAML parser would read as code reaches a file.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let doc = KEYS
            .iter()
            .find(|k| k.key == key)
            .ok_or_else(|| unknown_key(key))?;
        let v = doc.kind.check(value).map_err(|reason| GenError::BadValue {
            key: key.to_string(),
            value: value.escape_debug().to_string(),
            reason: reason.to_string(),
        })?;
        let text = || v.as_text().to_string();
        match key {
            "ServiceConfig.model_path" => self.service.model_path = text(),
            "ServiceConfig.model_name" | "ServiceConfig.served_model_name" => {
                self.service.served_model_name = text()
            }
            "ServiceConfig.head_node_ip" => self.service.head_node_ip = text(),
            "ServiceConfig.port" => self.service.port = v.as_int() as u16,
            "ServiceConfig.include_frontend" => self.service.include_frontend = v.as_bool(),
            "K8sConfig.name_prefix" => self.k8s.name_prefix = text(),
            "K8sConfig.k8s_namespace" => self.k8s.k8s_namespace = text(),
            "K8sConfig.k8s_image" => {
                // One image for both pools unless the decode pool is named on its own.
                if self.k8s.decode_k8s_image == self.k8s.k8s_image {
                    self.k8s.decode_k8s_image = text();
                }
                self.k8s.k8s_image = text()
            }
            "K8sConfig.decode_k8s_image" => self.k8s.decode_k8s_image = text(),
            "K8sConfig.hf_token_secret" => self.k8s.hf_token_secret = text(),
            "K8sConfig.gpu_product" => {
                if self.k8s.decode_gpu_product == self.k8s.gpu_product {
                    self.k8s.decode_gpu_product = text();
                }
                self.k8s.gpu_product = text()
            }
            "K8sConfig.decode_gpu_product" => self.k8s.decode_gpu_product = text(),
            "K8sConfig.engine_configs_dir" => self.k8s.engine_configs_dir = text(),
            "K8sConfig.image_pull_secret" => self.k8s.image_pull_secret = text(),
            "K8sConfig.model_cache_pvc" => self.k8s.model_cache_pvc = text(),
            "K8sConfig.hf_home" => self.k8s.hf_home = text(),
            "K8sConfig.compute_domain" => {
                if self.k8s.decode_compute_domain == self.k8s.compute_domain {
                    self.k8s.decode_compute_domain = v.as_bool();
                }
                self.k8s.compute_domain = v.as_bool()
            }
            "K8sConfig.decode_compute_domain" => self.k8s.decode_compute_domain = v.as_bool(),
            "K8sConfig.llmd_image" => self.k8s.llmd_image = text(),
            "DynConfig.enable_router" => self.dynamo.enable_router = v.as_bool(),
            "DynConfig.publish_kv_events" => self.dynamo.publish_kv_events = v.as_bool(),
            "NodeConfig.num_gpus_per_node" => {
                if self.node.decode_num_gpus_per_node == self.node.num_gpus_per_node {
                    self.node.decode_num_gpus_per_node = v.as_int();
                }
                self.node.num_gpus_per_node = v.as_int()
            }
            "NodeConfig.decode_num_gpus_per_node" => {
                self.node.decode_num_gpus_per_node = v.as_int()
            }
            "BenchConfig.requests_per_concurrency" => {
                self.bench.requests_per_concurrency = v.as_int()
            }
            "rule" => {
                self.rule = if v.as_text() == "benchmark" {
                    Rule::Benchmark
                } else {
                    Rule::Production
                }
            }
            _ => return Err(unknown_key(key)),
        }
        Ok(())
    }
}

/// What a `--generator-set` value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A model path or hub id: letters, digits and `._/:@+=,~-`, not starting with `-`.
    Word,
    /// A host name (RFC 1123) or an IPv4/IPv6 address.
    Host,
    Port,
    Bool,
    /// An integer 1..=max.
    Count(u32),
    /// A Kubernetes object name (RFC 1123 label).
    DnsLabel,
    /// `""` or a DNS label (optional object reference).
    OptionalDnsLabel,
    /// A container image reference.
    Image,
    /// A Kubernetes label value (may be empty: no node selector).
    LabelValue,
    /// An absolute path of letters, digits and `._/-`.
    AbsPath,
    Rule,
}

/// A checked value.
#[derive(Debug, Clone, PartialEq)]
pub enum Checked {
    Text(String),
    Int(u32),
    Bool(bool),
}

impl Checked {
    fn as_text(&self) -> &str {
        match self {
            Checked::Text(s) => s,
            _ => "",
        }
    }
    fn as_int(&self) -> u32 {
        match self {
            Checked::Int(n) => *n,
            _ => 0,
        }
    }
    fn as_bool(&self) -> bool {
        matches!(self, Checked::Bool(true))
    }
}

fn word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._/:@+=,~-".contains(c)
}

/// RFC 1123 host name or an IP address.
pub fn valid_host(v: &str) -> bool {
    if v.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !v.is_empty()
        && v.len() <= 253
        && v.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

impl Kind {
    /// Check (and normalise) one value; the reason says what was expected.
    pub fn check(self, v: &str) -> std::result::Result<Checked, &'static str> {
        let t = v.trim();
        let text = |s: &str| Ok(Checked::Text(s.to_string()));
        match self {
            Kind::Word => {
                if !t.is_empty()
                    && t.len() <= 1024
                    && t.chars().all(word_char)
                    && !t.starts_with('-')
                {
                    text(t)
                } else {
                    Err("expected a path or model id: letters, digits and ._/:@+=,~- (no spaces, quotes or shell characters), not starting with '-'")
                }
            }
            Kind::Host => {
                if valid_host(t) {
                    text(t)
                } else {
                    Err("expected a host name (letters, digits, '-' and '.') or an IP address")
                }
            }
            Kind::Port => match t.parse::<u32>() {
                Ok(p) if (1..=65535).contains(&p) => Ok(Checked::Int(p)),
                _ => Err("expected a port number 1-65535"),
            },
            Kind::Bool => match t.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(Checked::Bool(true)),
                "false" | "0" | "no" | "off" => Ok(Checked::Bool(false)),
                _ => Err("expected true or false"),
            },
            Kind::Count(max) => match t.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => Ok(Checked::Int(n)),
                _ => {
                    Err("expected a positive integer within the key's limit (see --generator-help)")
                }
            },
            Kind::DnsLabel | Kind::OptionalDnsLabel => {
                if (t.is_empty() && self == Kind::OptionalDnsLabel) || dns_label(t) {
                    text(t)
                } else {
                    Err("expected a DNS label: 1-63 lowercase letters, digits and '-', alphanumeric at both ends")
                }
            }
            Kind::Image => {
                let ok = !t.is_empty()
                    && t.len() <= 255
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._/:@-".contains(c))
                    && t.starts_with(|c: char| c.is_ascii_alphanumeric());
                if ok {
                    text(t)
                } else {
                    Err("expected an image reference: letters, digits and ._/:@-")
                }
            }
            Kind::LabelValue => {
                if t.is_empty() || aicfg_core::hardware::valid_label_value(t) {
                    text(t)
                } else {
                    Err("expected a label value: up to 63 letters, digits, '-', '_', '.', alphanumeric at both ends")
                }
            }
            Kind::AbsPath => {
                let ok = t.starts_with('/')
                    && t.len() <= 1024
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c))
                    && !t.split('/').any(|p| p == "..");
                if ok {
                    text(t.trim_end_matches('/').max("/"))
                } else {
                    Err("expected an absolute path of letters, digits and ._/- (no '..')")
                }
            }
            Kind::Rule => match t.to_ascii_lowercase().as_str() {
                "production" | "default" => text("production"),
                "benchmark" => text("benchmark"),
                _ => Err("expected production or benchmark"),
            },
        }
    }
}

/// One `--generator-set` key: its type and what it changes.
#[derive(Debug, Clone, Copy)]
pub struct KeyDoc {
    pub key: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

/// Every key `--generator-set` accepts, as `--generator-help` lists them.
pub const KEYS: &[KeyDoc] = &[
    KeyDoc { key: "ServiceConfig.model_path", kind: Kind::Word, help: "model path or hub id the workers load (default: the model name)" },
    KeyDoc { key: "ServiceConfig.model_name", kind: Kind::Word, help: "alias of ServiceConfig.served_model_name" },
    KeyDoc { key: "ServiceConfig.served_model_name", kind: Kind::Word, help: "name clients send in requests" },
    KeyDoc { key: "ServiceConfig.head_node_ip", kind: Kind::Host, help: "host of etcd, NATS and the frontend in the node scripts (default 0.0.0.0)" },
    KeyDoc { key: "ServiceConfig.port", kind: Kind::Port, help: "frontend HTTP port (default 8000)" },
    KeyDoc { key: "ServiceConfig.include_frontend", kind: Kind::Bool, help: "start the frontend on node 0 (default true)" },
    KeyDoc { key: "K8sConfig.name_prefix", kind: Kind::DnsLabel, help: "prefix of the Kubernetes object names (default dynamo)" },
    KeyDoc { key: "K8sConfig.k8s_namespace", kind: Kind::DnsLabel, help: "namespace of the manifests (default default)" },
    KeyDoc { key: "K8sConfig.k8s_image", kind: Kind::Image, help: "runtime image (default: the Dynamo release's image from the version matrix); also the decode pool's unless K8sConfig.decode_k8s_image is set" },
    KeyDoc { key: "K8sConfig.decode_k8s_image", kind: Kind::Image, help: "runtime image of the decode pool (disagg)" },
    KeyDoc { key: "K8sConfig.hf_token_secret", kind: Kind::DnsLabel, help: "secret holding HF_TOKEN (default hf-token-secret)" },
    KeyDoc { key: "K8sConfig.gpu_product", kind: Kind::LabelValue, help: "GPU-model node label of the agg/prefill pool, nvidia.com/gpu.product (AMD GPUs: amd.com/gpu.product-name) (default: the system's misc.k8s_gpu_product; empty = no node selector)" },
    KeyDoc { key: "K8sConfig.decode_gpu_product", kind: Kind::LabelValue, help: "node label of the decode pool (default: the decode system's)" },
    KeyDoc { key: "K8sConfig.engine_configs_dir", kind: Kind::AbsPath, help: "where the TRT-LLM engine ConfigMap is mounted in the pods (default /workspace/engine_configs)" },
    KeyDoc { key: "K8sConfig.image_pull_secret", kind: Kind::OptionalDnsLabel, help: "image pull secret of every pod (default none)" },
    KeyDoc { key: "K8sConfig.model_cache_pvc", kind: Kind::OptionalDnsLabel, help: "PersistentVolumeClaim with the model cache, mounted at K8sConfig.hf_home in every worker and the bench job (default none)" },
    KeyDoc { key: "K8sConfig.hf_home", kind: Kind::AbsPath, help: "HF_HOME in the pods, where the model cache PVC is mounted (default /root/.cache/huggingface)" },
    KeyDoc { key: "K8sConfig.compute_domain", kind: Kind::Bool, help: "multi-node agg/prefill workers claim a channel of a ComputeDomain (resource.nvidia.com, NVIDIA DRA driver) for NVLink across nodes (default: on when the system's NVLink domain spans nodes, e.g. GB200/GB300 NVL72)" },
    KeyDoc { key: "K8sConfig.decode_compute_domain", kind: Kind::Bool, help: "the same for multi-node decode workers (default: from the decode system)" },
    KeyDoc { key: "K8sConfig.llmd_image", kind: Kind::Image, help: "vLLM image of llm-d-values.yaml (vLLM deployments; default: vllm/vllm-openai at the vLLM version of the Dynamo release)" },
    KeyDoc { key: "DynConfig.enable_router", kind: Kind::Bool, help: "KV-aware routing in the frontend (default: on with --prefix)" },
    KeyDoc { key: "DynConfig.publish_kv_events", kind: Kind::Bool, help: "workers publish KV-cache events for the router (default: on with --prefix)" },
    KeyDoc { key: "NodeConfig.num_gpus_per_node", kind: Kind::Count(1024), help: "GPUs per node of the agg/prefill pool (default: the system's); also the decode pool's unless set on its own" },
    KeyDoc { key: "NodeConfig.decode_num_gpus_per_node", kind: Kind::Count(1024), help: "GPUs per node of the decode pool (default: the decode system's)" },
    KeyDoc { key: "BenchConfig.requests_per_concurrency", kind: Kind::Count(100_000), help: "benchmark requests per concurrency level (default 20)" },
    KeyDoc { key: "rule", kind: Kind::Rule, help: "production (service sizing, default) or benchmark (exactly the simulated batch and token budget)" },
];

/// The `--generator-help` text.
pub fn generator_help() -> String {
    let mut s = String::from(
        "Keys of --generator-set KEY=VALUE (repeatable; values are checked by type):\n",
    );
    for k in KEYS {
        let ty = match k.kind {
            Kind::Word => "path/id".to_string(),
            Kind::Host => "host".into(),
            Kind::Port => "port".into(),
            Kind::Bool => "bool".into(),
            Kind::Count(m) => format!("int 1..{m}"),
            Kind::DnsLabel => "name".into(),
            Kind::OptionalDnsLabel => "name or empty".into(),
            Kind::Image => "image".into(),
            Kind::LabelValue => "label or empty".into(),
            Kind::AbsPath => "abs path".into(),
            Kind::Rule => "production|benchmark".into(),
        };
        s.push_str(&format!("  {:<38} {:<22} {}\n", k.key, ty, k.help));
    }
    s.push_str("\nTarget versions: --generated_config_version V (a framework version of the version matrix) or --dynamo-version D; default: the newest Dynamo release.\n");
    s.push_str("Version matrix (Dynamo: image tag = release; vLLM / SGLang / TRT-LLM as the ai-dynamo wheel pins them):\n");
    for r in &versions::matrix().releases {
        s.push_str(&format!(
            "  {:<12} vllm {:<8} sglang {:<13} trtllm {}\n",
            r.dynamo, r.vllm, r.sglang, r.trtllm
        ));
    }
    s
}

fn unknown_key(key: &str) -> GenError {
    GenError::UnknownKey {
        key: key.to_string(),
        known: KEYS.iter().map(|k| k.key).collect::<Vec<_>>().join(", "),
    }
}

fn dns_label(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !v.starts_with('-')
        && !v.ends_with('-')
}

/// Parse `KEY=VALUE` overrides, rejecting unknown keys and bad values before any search runs.
pub fn parse_sets(items: &[String]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for it in items {
        let (k, v) = it
            .split_once('=')
            .ok_or_else(|| GenError::BadAssignment(it.clone()))?;
        let k = k.trim();
        let doc = KEYS
            .iter()
            .find(|d| d.key == k)
            .ok_or_else(|| unknown_key(k))?;
        doc.kind.check(v).map_err(|reason| GenError::BadValue {
            key: k.to_string(),
            value: v.escape_debug().to_string(),
            reason: reason.to_string(),
        })?;
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}
