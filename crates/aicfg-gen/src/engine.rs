//! Engine settings per worker role: TRT-LLM LLM-API options, vLLM and SGLang server flags
//! (docs/model.md §10), from the generator config.
use crate::genconfig::{version_key, GeneratorConfig, Rule, WorkerParams};
use crate::versions::{self, Rules};
use aicfg_core::Backend;
use serde::Serialize;

pub const TOKENS_PER_BLOCK: u32 = 32;

fn round_up(v: u32, to: u32) -> u32 {
    v.div_ceil(to) * to
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleKind {
    Agg,
    Prefill,
    Decode,
}

impl RoleKind {
    pub fn name(self) -> &'static str {
        match self {
            RoleKind::Agg => "agg",
            RoleKind::Prefill => "prefill",
            RoleKind::Decode => "decode",
        }
    }
}

/// Everything the templates need about one worker role.
#[derive(Debug, Clone, Serialize)]
pub struct RoleSpec {
    pub role: RoleKind,
    /// `TRTLLMWorker`, `VllmPrefillWorker`, ...
    pub service: String,
    /// Kubernetes-safe service key (lowercase, '-').
    pub workers: u32,
    pub gpus_per_worker: u32,
    pub params: WorkerParams,
    /// Framework tensor-parallel size (MoE: derived from the expert layout).
    pub tp: u32,
    pub enable_attention_dp: bool,
    pub max_batch_size: u32,
    pub max_num_tokens: u32,
    pub cuda_graph_sizes: Vec<u32>,
    pub cuda_graph_padding: bool,
    /// Server flags after `python3 -m dynamo.<backend>` (model flags and the per-worker
    /// port flags of [`port_flags`] excluded).
    pub flags: Vec<String>,
    /// GPUs per node and node label of this pool's system; its image.
    pub gpus_per_node: u32,
    pub gpu_product: String,
    /// Kubernetes GPU resource and node-label key of this pool's GPU maker
    /// ([`crate::genconfig::gpu_keys`]).
    pub gpu_resource: &'static str,
    pub gpu_label: &'static str,
    /// Multi-node workers of this pool claim a ComputeDomain channel (`K8sConfig.compute_domain`).
    pub compute_domain: bool,
    pub image: String,
    /// TRT-LLM only: file name and content of the engine YAML.
    pub engine_file: Option<String>,
    pub engine_yaml: Option<String>,
}

/// CUDA-graph batch sizes: powers of two and coarse steps up to the batch, then the batch
/// itself; sorted, no duplicates, never above the batch the engine admits.
pub fn cuda_graph_sizes(bs: u32) -> Vec<u32> {
    let mut v: Vec<u32> = (1..=16).collect();
    for (lo, hi, step) in [
        (16, 32, 4),
        (32, 64, 8),
        (64, 128, 16),
        (128, 256, 32),
        (256, 512, 64),
        (512, 1024, 128),
    ] {
        v.extend((lo..=hi).step_by(step));
    }
    v.push(bs);
    v.retain(|b| *b <= bs.max(1));
    v.sort_unstable();
    v.dedup();
    v
}

fn service_name(backend: Backend, role: RoleKind) -> String {
    let b = match backend {
        Backend::Trtllm => "TRTLLM",
        Backend::Vllm => "Vllm",
        Backend::Sglang => "SGLang",
    };
    match role {
        RoleKind::Agg => format!("{b}Worker"),
        RoleKind::Prefill => format!("{b}PrefillWorker"),
        RoleKind::Decode => format!("{b}DecodeWorker"),
    }
}

fn kv_dtype(backend: Backend, kv: &str) -> &'static str {
    match (backend, kv) {
        (Backend::Sglang, k) if k.starts_with("fp8") => "fp8_e4m3",
        (_, k) if k.starts_with("fp8") => "fp8",
        _ => "auto",
    }
}

/// Version rules of a generator config.
pub fn rules_of(g: &GeneratorConfig) -> Rules {
    versions::rules(
        g.backend,
        &g.generated_config_version,
        &g.dynamo.dynamo_version,
    )
}

/// Ports one worker listens on besides what the framework picks itself. In a pod the
/// defaults are free; workers sharing a node get `offset` (their first GPU index) added, so
/// each worker's range [base + first GPU, base + first GPU + its GPUs) is its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ports {
    /// NIXL side channel (vLLM adds the DP rank to it).
    pub nixl_side_channel: u32,
    /// ZMQ KV-event publisher.
    pub kv_events: u32,
    /// SGLang disaggregation bootstrap server (prefill).
    pub bootstrap: u32,
}

impl Ports {
    pub const DEFAULT: Ports = Ports {
        nixl_side_channel: 5600,
        kv_events: 5557,
        bootstrap: 8998,
    };

    pub fn offset(first_gpu: u32) -> Ports {
        let d = Ports::DEFAULT;
        Ports {
            nixl_side_channel: d.nixl_side_channel + first_gpu,
            kv_events: d.kv_events + 100 + first_gpu,
            bootstrap: d.bootstrap + first_gpu,
        }
    }
}

/// Flags that carry a worker's ports (after [`RoleSpec::flags`]).
pub fn port_flags(g: &GeneratorConfig, r: &RoleSpec, ports: Ports) -> Vec<String> {
    let mut a = Vec::new();
    let kv_events = g.dynamo.publish_kv_events;
    match g.backend {
        Backend::Vllm if kv_events => a.extend([
            "--kv-events-config".to_string(),
            format!(
                r#"{{"enable_kv_cache_events":true,"publisher":"zmq","endpoint":"tcp://*:{}"}}"#,
                ports.kv_events
            ),
        ]),
        Backend::Sglang => {
            if kv_events {
                a.extend([
                    "--kv-events-config".to_string(),
                    format!(
                        r#"{{"publisher":"zmq","topic":"kv-events","endpoint":"tcp://*:{}"}}"#,
                        ports.kv_events
                    ),
                ]);
            }
            if r.role != RoleKind::Agg {
                a.extend([
                    "--disaggregation-bootstrap-port".to_string(),
                    ports.bootstrap.to_string(),
                ]);
            }
        }
        Backend::Vllm | Backend::Trtllm => {}
    }
    a
}

/// Environment a worker needs for its ports.
pub fn port_env(g: &GeneratorConfig, r: &RoleSpec, ports: Ports) -> Vec<(String, String)> {
    if g.backend == Backend::Vllm && r.role != RoleKind::Agg {
        vec![(
            "VLLM_NIXL_SIDE_CHANNEL_PORT".to_string(),
            ports.nixl_side_channel.to_string(),
        )]
    } else {
        Vec::new()
    }
}

/// Build the role specs of one deployment, in launch order (prefill before decode).
pub fn roles(g: &GeneratorConfig) -> Vec<RoleSpec> {
    let mut out = Vec::new();
    let p = &g.params;
    let w = &g.workers;
    for (role, params, workers) in [
        (RoleKind::Agg, &p.agg, w.agg_workers),
        (RoleKind::Prefill, &p.prefill, w.prefill_workers),
        (RoleKind::Decode, &p.decode, w.decode_workers),
    ] {
        if let Some(params) = params {
            out.push(role_spec(g, role, params, workers));
        }
    }
    out
}

fn role_spec(g: &GeneratorConfig, role: RoleKind, p: &WorkerParams, workers: u32) -> RoleSpec {
    let isl = g.sla.isl;
    let osl = g.sla.osl;
    let bs = p.max_batch_size.max(1);
    let moe = g.model.is_moe;
    let bench = g.rule == Rule::Benchmark;
    let backend = g.backend;
    let rules = rules_of(g);
    // Tokens one decode step carries per request: the token plus the MTP draft tokens.
    let step_tokens = 1 + g.model.nextn;
    let decode_tokens = bs.saturating_mul(step_tokens);
    let expert_gpus = p.moe_tensor_parallel_size * p.moe_expert_parallel_size;
    let dp = p.data_parallel_size.max(1);
    let tp = match (backend, moe) {
        (_, false) => p.tensor_parallel_size,
        (Backend::Vllm, true) => (expert_gpus / dp).max(1),
        (Backend::Trtllm | Backend::Sglang, true) => expert_gpus.max(1),
    };
    let enable_attention_dp = moe && dp > 1;
    // Production keeps the reference's service sizing; benchmark reproduces what was simulated.
    let (max_batch_size, max_num_tokens) = match (backend, role, bench) {
        (_, RoleKind::Prefill, true) => (bs, round_up(p.max_num_tokens.max(bs), TOKENS_PER_BLOCK)),
        (_, _, true) => (
            bs,
            round_up(p.max_num_tokens.max(decode_tokens), TOKENS_PER_BLOCK),
        ),
        (Backend::Trtllm, RoleKind::Agg, _) => {
            (bs, round_up(decode_tokens + isl + 500, TOKENS_PER_BLOCK))
        }
        (Backend::Trtllm, RoleKind::Prefill, _) => (bs, round_up(isl + 500, TOKENS_PER_BLOCK)),
        (Backend::Trtllm, RoleKind::Decode, _) => (bs, round_up(decode_tokens, TOKENS_PER_BLOCK)),
        (Backend::Vllm | Backend::Sglang, RoleKind::Prefill, _) => (bs, isl + 1500),
        (Backend::Vllm | Backend::Sglang, RoleKind::Agg, _) => {
            let seqs = if bs < 512 { 512 } else { 2 * bs };
            (seqs, decode_tokens + isl + 1500)
        }
        (Backend::Vllm | Backend::Sglang, RoleKind::Decode, _) => {
            let seqs = if bs < 512 { 512 } else { 2 * bs };
            let tokens = if backend == Backend::Sglang {
                (isl + 1500).max(seqs * step_tokens)
            } else {
                seqs * step_tokens
            };
            (seqs, tokens)
        }
    };
    let graphs = match role {
        RoleKind::Prefill => vec![],
        _ => cuda_graph_sizes(bs),
    };
    let decode_pool = role == RoleKind::Decode;
    let (gpu_resource, gpu_label) = crate::genconfig::gpu_keys(if decode_pool {
        g.k8s.decode_gpu_vendor
    } else {
        g.k8s.gpu_vendor
    });
    let mut spec = RoleSpec {
        gpu_resource,
        gpu_label,
        gpus_per_node: if decode_pool {
            g.node.decode_num_gpus_per_node
        } else {
            g.node.num_gpus_per_node
        }
        .max(1),
        compute_domain: if decode_pool {
            g.k8s.decode_compute_domain
        } else {
            g.k8s.compute_domain
        },
        gpu_product: if decode_pool {
            g.k8s.decode_gpu_product.clone()
        } else {
            g.k8s.gpu_product.clone()
        },
        image: if decode_pool {
            g.k8s.decode_k8s_image.clone()
        } else {
            g.k8s.k8s_image.clone()
        },
        role,
        service: service_name(backend, role),
        workers,
        gpus_per_worker: p.gpus_per_worker,
        params: p.clone(),
        tp,
        enable_attention_dp,
        max_batch_size,
        max_num_tokens,
        cuda_graph_sizes: graphs,
        cuda_graph_padding: role != RoleKind::Prefill,
        flags: Vec::new(),
        engine_file: None,
        engine_yaml: None,
    };
    let disagg = role != RoleKind::Agg;
    let prefix = g.model.prefix > 0;
    let nextn = g.model.nextn;
    let kv = kv_dtype(backend, &p.kvcache_quant_mode);
    let f = |s: &str| s.to_string();
    match backend {
        Backend::Vllm => {
            let mut a = vec![
                f("--tensor-parallel-size"),
                tp.to_string(),
                f("--pipeline-parallel-size"),
                p.pipeline_parallel_size.to_string(),
                f("--data-parallel-size"),
                dp.to_string(),
            ];
            if p.moe_expert_parallel_size > 1 {
                a.push(f("--enable-expert-parallel"));
            }
            a.extend([
                f("--kv-cache-dtype"),
                f(kv),
                f("--max-num-seqs"),
                max_batch_size.to_string(),
                f("--max-num-batched-tokens"),
                max_num_tokens.to_string(),
                f("--gpu-memory-utilization"),
                p.free_gpu_memory_fraction.to_string(),
            ]);
            if role == RoleKind::Agg {
                a.extend([f("--max-model-len"), (isl + osl + 1500).to_string()]);
            }
            if !spec.cuda_graph_sizes.is_empty() {
                a.push(f("--cudagraph-capture-sizes"));
                a.extend(spec.cuda_graph_sizes.iter().map(|b| b.to_string()));
            }
            if !prefix {
                a.push(f("--no-enable-prefix-caching"));
            }
            if nextn > 0 {
                a.extend([
                    f("--speculative-config"),
                    format!(r#"{{"method": "mtp", "num_speculative_tokens": {nextn}}}"#),
                ]);
            }
            if disagg {
                if rules.vllm_role_booleans {
                    a.push(format!("--is-{}-worker", role.name()));
                } else {
                    a.extend([f("--disaggregation-mode"), f(role.name())]);
                }
                a.extend([
                    f("--kv-transfer-config"),
                    f(r#"{"kv_connector":"NixlConnector","kv_role":"kv_both"}"#),
                ]);
            }
            spec.flags = a;
        }
        Backend::Sglang => {
            // With attention DP SGLang divides the limit by the DP size: write what makes
            // every rank admit the planned per-rank batch.
            let running = if enable_attention_dp {
                max_batch_size.saturating_mul(dp)
            } else {
                max_batch_size
            };
            let mut a = vec![
                f("--tensor-parallel-size"),
                tp.to_string(),
                f("--pipeline-parallel-size"),
                p.pipeline_parallel_size.to_string(),
                f("--data-parallel-size"),
                dp.to_string(),
                f("--kv-cache-dtype"),
                f(kv),
                f("--max-running-requests"),
                running.to_string(),
                f("--max-prefill-tokens"),
                max_num_tokens.to_string(),
                f("--mem-fraction-static"),
                p.free_gpu_memory_fraction.to_string(),
            ];
            if role == RoleKind::Agg {
                a.push(f("--enable-mixed-chunk"));
            }
            if enable_attention_dp {
                a.push(f("--enable-dp-attention"));
            }
            if p.moe_expert_parallel_size > 1 {
                a.extend([
                    f("--expert-parallel-size"),
                    p.moe_expert_parallel_size.to_string(),
                ]);
            }
            if !spec.cuda_graph_sizes.is_empty() {
                a.push(f(rules.sglang_cuda_graph_flag));
                a.extend(spec.cuda_graph_sizes.iter().map(|b| b.to_string()));
            }
            if !prefix {
                a.push(f("--disable-radix-cache"));
            }
            if nextn > 0 {
                // SGLang needs the full triple, not just the step count.
                a.extend([
                    f("--speculative-algorithm"),
                    f("NEXTN"),
                    f("--speculative-num-steps"),
                    nextn.to_string(),
                    f("--speculative-eagle-topk"),
                    f("1"),
                    f("--speculative-num-draft-tokens"),
                    (nextn + 1).to_string(),
                ]);
            }
            if disagg {
                // The prefill bootstrap server must be reachable from the decode pods.
                a.extend([
                    f("--disaggregation-mode"),
                    f(role.name()),
                    f("--disaggregation-transfer-backend"),
                    f("nixl"),
                    f("--host"),
                    f("0.0.0.0"),
                ]);
            }
            spec.flags = a;
        }
        Backend::Trtllm => {
            let file = format!("{}_config.yaml", role.name());
            let mut a = vec![
                f("--extra-engine-args"),
                format!("{}/{file}", g.k8s.engine_configs_dir),
            ];
            if disagg {
                a.extend([f("--disaggregation-mode"), f(role.name())]);
            }
            if g.dynamo.publish_kv_events {
                a.push(f(rules.trtllm_kv_events_flag));
            }
            spec.flags = a;
            spec.engine_file = Some(file);
        }
    }
    spec
}

/// Whether the TRT-LLM release takes the grouped `cuda_graph_config` (1.0 and later) rather
/// than the flat `use_cuda_graph` keys of the 0.x releases.
pub fn trtllm_grouped_cuda_graph(version: &str) -> bool {
    version_key(version).first().copied().unwrap_or(1) >= 1
}
