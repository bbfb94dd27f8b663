//! Per-deployment files (`topN/`): generator config, engine YAMLs, Dynamo manifest, node run
//! scripts and the benchmark script, rendered with minijinja from the generator config.
use crate::engine::{
    port_env, port_flags, roles, rules_of, trtllm_grouped_cuda_graph, Ports, RoleKind, RoleSpec,
    TOKENS_PER_BLOCK,
};
use crate::error::{GenError, Result};
use crate::genconfig::GeneratorConfig;
use aicfg_core::Backend;
use minijinja::{context, Environment, UndefinedBehavior};
use serde::Serialize;

const TEMPLATES: [(&str, &str); 7] = [
    (
        "llmd_values.yaml.j2",
        include_str!("../templates/llmd_values.yaml.j2"),
    ),
    (
        "k8s_deploy_v1beta1.yaml.j2",
        include_str!("../templates/k8s_deploy_v1beta1.yaml.j2"),
    ),
    (
        "k8s_bench.yaml.j2",
        include_str!("../templates/k8s_bench.yaml.j2"),
    ),
    (
        "trtllm_engine.yaml.j2",
        include_str!("../templates/trtllm_engine.yaml.j2"),
    ),
    (
        "k8s_deploy.yaml.j2",
        include_str!("../templates/k8s_deploy.yaml.j2"),
    ),
    (
        "node_run.sh.j2",
        include_str!("../templates/node_run.sh.j2"),
    ),
    (
        "bench_run.sh.j2",
        include_str!("../templates/bench_run.sh.j2"),
    ),
];

/// Quote a word for bash only when it needs it.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:=,@+-%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
            .expect("default delimiters are valid"),
    );
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // YAML and shell are not HTML or JSON: quoting is the templates' job (tojson, shq).
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.add_filter("shq", |s: String| shell_quote(&s));
    for (name, src) in TEMPLATES {
        env.add_template(name, src)
            .expect("embedded templates are valid");
    }
    env
}

/// Template value of any serializable data.
fn val<T: Serialize>(x: &T) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(x))
}

fn render_template(env: &Environment, name: &str, ctx: minijinja::Value) -> Result<String> {
    env.get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|source| GenError::Template {
            name: name.to_string(),
            source,
        })
}

/// A word for a command that the Dynamo operator wraps in `bash -c '…'`: double quotes (never
/// single quotes, which would close the operator's), with `\ " $ \``  escaped.
pub fn k8s_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:=,@+-%".contains(c));
    if plain {
        return s.to_string();
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        if "\\\"$`".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// One worker process started on one node.
#[derive(Debug, Clone, Serialize)]
struct NodeWorker {
    name: String,
    gpus: u32,
    devices: String,
    /// `VAR=value ` assignments the launch needs (per-worker ports).
    env: String,
    /// None on the non-leading nodes of a multi-node TRT-LLM worker (mpirun starts them).
    launch: Option<String>,
    nnodes: u32,
    node_rank: u32,
}

#[derive(Debug, Clone, Serialize)]
struct Node {
    index: usize,
    frontend: bool,
    summary: String,
    workers: Vec<NodeWorker>,
}

#[derive(Debug, Clone, Serialize)]
struct RoleView {
    #[serde(flatten)]
    spec: RoleSpec,
    nnodes: u32,
    gpus_per_pod: u32,
    k8s_script: String,
    /// The pods claim the deployment's ComputeDomain channel (multi-node on an NVL rack).
    claims_domain: bool,
}

/// How a launch line is written: into a node script file, or into a pod command the operator
/// re-wraps.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    NodeScript,
    Pod,
}

fn launch_cmd(
    g: &GeneratorConfig,
    r: &RoleSpec,
    engine_dir: &str,
    target: Target,
    ports: Ports,
) -> String {
    let literal_model = target == Target::Pod;
    let quote = |s: &str| match target {
        Target::NodeScript => shell_quote(s),
        Target::Pod => k8s_quote(s),
    };
    let module = format!("dynamo.{}", g.backend);
    let model_flag = if g.backend == Backend::Vllm {
        "--model"
    } else {
        "--model-path"
    };
    let (model, served) = if literal_model {
        (
            quote(&g.service.model_path),
            quote(&g.service.served_model_name),
        )
    } else {
        (
            "\"$MODEL_PATH\"".to_string(),
            "\"$SERVED_MODEL_NAME\"".to_string(),
        )
    };
    let mut parts = vec![
        "python3".to_string(),
        "-m".into(),
        module,
        model_flag.into(),
        model,
        "--served-model-name".into(),
        served,
    ];
    for f in &r.flags {
        match (&r.engine_file, f.strip_prefix(&g.k8s.engine_configs_dir)) {
            (Some(_), Some(rest)) => parts.push(format!("{engine_dir}{rest}")),
            _ => parts.push(quote(f)),
        }
    }
    for f in port_flags(g, r, ports) {
        parts.push(quote(&f));
    }
    parts.join(" ")
}

fn env_prefix(g: &GeneratorConfig, r: &RoleSpec, ports: Ports) -> String {
    port_env(g, r, ports)
        .into_iter()
        .map(|(k, v)| format!("{k}={} ", shell_quote(&v)))
        .collect()
}

fn devices(first: u32, n: u32) -> String {
    (first..first + n)
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Pack workers onto nodes in launch order; a worker never straddles nodes unless it is
/// larger than a node, and then it takes whole nodes. Each pool uses its own system's node
/// size, and the decode pool of a heterogeneous deployment starts on its own nodes.
fn place(g: &GeneratorConfig, specs: &[RoleSpec]) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    let mut used = u32::MAX; // forces a fresh node for the first worker
    let mut pool: Option<(u32, String)> = None;
    let new_node = |nodes: &mut Vec<Node>| {
        let index = nodes.len();
        nodes.push(Node {
            index,
            frontend: index == 0 && g.service.include_frontend,
            summary: String::new(),
            workers: Vec::new(),
        });
    };
    for r in specs {
        let gpn = r.gpus_per_node.max(1);
        let this_pool = (gpn, r.gpu_product.clone());
        if pool.as_ref().is_some_and(|p| *p != this_pool) {
            used = u32::MAX;
        }
        pool = Some(this_pool);
        for i in 0..r.workers {
            let name = format!("{}-{i}", r.role.name());
            let g_w = r.gpus_per_worker.max(1);
            if g_w > gpn {
                let nnodes = g_w.div_ceil(gpn);
                let ports = Ports::offset(0);
                let leader = launch_cmd(g, r, "\"$ENGINE_DIR\"", Target::NodeScript, ports);
                for rank in 0..nnodes {
                    new_node(&mut nodes);
                    let here = gpn.min(g_w - rank * gpn);
                    let launch = match g.backend {
                        Backend::Trtllm if rank == 0 => Some(format!(
                            "mpirun --allow-run-as-root -H \"${{WORKER_HOSTS:?set WORKER_HOSTS to the {nnodes} hosts of {name}, comma separated}}\" -n {g_w} trtllm-llmapi-launch {leader}"
                        )),
                        // mpirun on the first node starts these ranks over ssh.
                        Backend::Trtllm => None,
                        Backend::Sglang => Some(format!(
                            "{leader} --nnodes {nnodes} --node-rank {rank} --dist-init-addr \"${{DIST_INIT_ADDR:?set DIST_INIT_ADDR to host:port of the first node of {name}}}\""
                        )),
                        Backend::Vllm => Some(format!(
                            "{leader} --nnodes {nnodes} --node-rank {rank} --master-addr \"${{MASTER_ADDR:?set MASTER_ADDR to the first node of {name}}}\"{}",
                            if rank > 0 { " --headless" } else { "" }
                        )),
                    };
                    let last = nodes.len() - 1;
                    nodes[last].workers.push(NodeWorker {
                        name: name.clone(),
                        gpus: here,
                        devices: devices(0, here),
                        env: env_prefix(g, r, ports),
                        launch,
                        nnodes,
                        node_rank: rank,
                    });
                }
                used = u32::MAX;
            } else {
                if used.saturating_add(g_w) > gpn {
                    new_node(&mut nodes);
                    used = 0;
                }
                let last = nodes.len() - 1;
                let ports = Ports::offset(used);
                nodes[last].workers.push(NodeWorker {
                    name,
                    gpus: g_w,
                    devices: devices(used, g_w),
                    env: env_prefix(g, r, ports),
                    launch: Some(launch_cmd(
                        g,
                        r,
                        "\"$ENGINE_DIR\"",
                        Target::NodeScript,
                        ports,
                    )),
                    nnodes: 1,
                    node_rank: 0,
                });
                used += g_w;
            }
        }
    }
    if nodes.is_empty() {
        new_node(&mut nodes);
    }
    for n in &mut nodes {
        let mut parts = Vec::new();
        if n.frontend {
            parts.push("frontend".to_string());
        }
        for role in [RoleKind::Agg, RoleKind::Prefill, RoleKind::Decode] {
            let k = n
                .workers
                .iter()
                .filter(|w| w.name.starts_with(role.name()))
                .count();
            if k > 0 {
                parts.push(format!("{k} {} worker(s)", role.name()));
            }
        }
        n.summary = parts.join(", ");
    }
    nodes
}

/// The pod command: the engine YAML comes from the ConfigMap mounted at the engine
/// directory, so nothing here needs a heredoc or single quotes (the operator re-wraps it).
fn k8s_script(g: &GeneratorConfig, r: &RoleSpec) -> String {
    format!(
        "exec {}",
        launch_cmd(g, r, &g.k8s.engine_configs_dir, Target::Pod, Ports::DEFAULT)
    )
}

/// One role of `llm-d-values.yaml`: the chart's `decode` section serves agg and decode.
#[derive(Debug, Clone, Serialize)]
struct LlmdRole {
    #[serde(flatten)]
    view: RoleView,
    llmd_section: &'static str,
    dp: u32,
    dp_local: u32,
    /// `vllm serve` options: the worker's, less Dynamo's own role flags.
    args: Vec<String>,
}

/// The llm-d modelservice values of a vLLM deployment; None when a worker's tensor/pipeline
/// group spans nodes (the chart spreads a worker over nodes by data parallelism only).
fn llmd_values(
    env: &Environment,
    g: &GeneratorConfig,
    views: &[RoleView],
    name: &str,
) -> Result<Option<String>> {
    if g.backend != Backend::Vllm {
        return Ok(None);
    }
    let mut roles = Vec::new();
    for v in views {
        let r = &v.spec;
        let group = r.tp.saturating_mul(r.params.pipeline_parallel_size.max(1));
        if group > r.gpus_per_node.max(1) {
            return Ok(None);
        }
        let dp = r.params.data_parallel_size.max(1);
        let mut args = Vec::new();
        let mut i = 0;
        while i < r.flags.len() {
            match r.flags[i].as_str() {
                "--disaggregation-mode" => i += 2,
                "--is-prefill-worker" | "--is-decode-worker" => i += 1,
                a => {
                    args.push(a.to_string());
                    i += 1;
                }
            }
        }
        roles.push(LlmdRole {
            view: v.clone(),
            llmd_section: if r.role == RoleKind::Prefill {
                "prefill"
            } else {
                "decode"
            },
            dp,
            dp_local: (v.gpus_per_pod / group.max(1)).clamp(1, dp),
            args,
        });
    }
    let s = &g.service.model_path;
    let uri = if s.starts_with('/') && !g.k8s.model_cache_pvc.is_empty() {
        format!("pvc://{}{}", g.k8s.model_cache_pvc, s)
    } else {
        format!("hf://{}", s.trim_start_matches('/'))
    };
    Ok(Some(render_template(
        env,
        "llmd_values.yaml.j2",
        context! {
            g => val(g),
            roles => val(&roles),
            name => name,
            uri => uri,
            multinode => views.iter().any(|v| v.nnodes > 1),
        },
    )?))
}

#[derive(Debug, Clone, Serialize)]
struct EngineFile {
    name: String,
    yaml: String,
}

/// Frontend URL from the head node (IPv6 in brackets).
fn bench_url(g: &GeneratorConfig) -> String {
    let h = &g.service.head_node_ip;
    let host = if h.contains(':') {
        format!("[{h}]")
    } else {
        h.clone()
    };
    format!("http://{host}:{}", g.service.port)
}

/// Files of one `topN/` folder, paths relative to it, in a fixed order.
pub fn render(g: &GeneratorConfig) -> Result<Vec<(String, String)>> {
    let env = env();
    let mode = g.dynamo.mode.clone();
    let gv = val(g);
    let mut specs = roles(g);
    let mut files = vec![(
        "generator_config.yaml".to_string(),
        format!(
            "# Inputs of the aicfg generator for this deployment; edit and regenerate, or read as a summary.\n{}",
            serde_norway::to_string(g)?
        ),
    )];
    let rules = rules_of(g);
    if g.backend == Backend::Trtllm {
        let isl = g.sla.isl;
        let osl = g.sla.osl;
        for r in &mut specs {
            let kv = if r.params.kvcache_quant_mode.starts_with("fp8") {
                "fp8"
            } else {
                "auto"
            };
            let wide = r.params.moe_expert_parallel_size > r.gpus_per_node;
            let moe_backend = if wide {
                rules.trtllm_wide_ep_backend
            } else {
                Some("CUTLASS")
            };
            let yaml = render_template(
                &env,
                "trtllm_engine.yaml.j2",
                context! {
                    g => gv.clone(),
                    r => val(&*r),
                    kv_dtype => kv,
                    moe_backend => moe_backend,
                    tokens_per_block => TOKENS_PER_BLOCK,
                    max_seq_len => isl + osl + 500,
                    max_tokens_in_buffer => (isl + osl + 500).div_ceil(TOKENS_PER_BLOCK) * TOKENS_PER_BLOCK,
                    grouped_cuda_graph => trtllm_grouped_cuda_graph(&g.generated_config_version),
                },
            )?;
            if let Some(file) = &r.engine_file {
                files.push((format!("{mode}/{file}"), yaml.clone()));
            }
            r.engine_yaml = Some(yaml);
        }
    }
    let views: Vec<RoleView> = specs
        .iter()
        .map(|r| {
            let nnodes = r.gpus_per_worker.div_ceil(r.gpus_per_node.max(1)).max(1);
            RoleView {
                spec: r.clone(),
                nnodes,
                gpus_per_pod: r.gpus_per_worker.div_ceil(nnodes),
                k8s_script: k8s_script(g, r),
                claims_domain: r.compute_domain && nnodes > 1,
            }
        })
        .collect();
    // One IMEX domain for every claiming pod: all their nodes (Dynamo's GB200 recipe).
    let domain_nodes: u32 = views
        .iter()
        .filter(|v| v.claims_domain)
        .map(|v| v.nnodes.saturating_mul(v.spec.workers))
        .fold(0, u32::saturating_add);
    let k8s_template = if rules.crd_api_version.ends_with("v1alpha1") {
        "k8s_deploy.yaml.j2"
    } else {
        "k8s_deploy_v1beta1.yaml.j2"
    };
    files.push((
        format!("{mode}/k8s_deploy.yaml"),
        render_template(
            &env,
            k8s_template,
            context! {
                g => gv.clone(),
                roles => val(&views),
                name => format!("{}-{}", g.k8s.name_prefix, mode),
                api_version => rules.crd_api_version,
                domain_nodes => domain_nodes,
                engine_files => val(&specs.iter().filter_map(|r| Some(EngineFile {
                    name: r.engine_file.clone()?,
                    yaml: r.engine_yaml.clone()?,
                })).collect::<Vec<_>>()),
            },
        )?,
    ));
    if let Some(values) = llmd_values(&env, g, &views, &format!("{}-{}", g.k8s.name_prefix, mode))?
    {
        files.push((format!("{mode}/llm-d-values.yaml"), values));
    }
    let nodes = place(g, &specs);
    let count = nodes.len();
    for node in nodes {
        let i = node.index;
        files.push((
            format!("{mode}/node_{i}_run.sh"),
            render_template(
                &env,
                "node_run.sh.j2",
                context! { g => gv.clone(), node => val(&node), nodes => count },
            )?,
        ));
    }
    files.push((
        format!("{mode}/bench_run.sh"),
        render_template(
            &env,
            "bench_run.sh.j2",
            context! { g => gv.clone(), url => bench_url(g) },
        )?,
    ));
    // The same sweep from inside the cluster, against the frontend Service the operator makes.
    let name = format!("{}-{}", g.k8s.name_prefix, mode);
    let in_cluster = format!(
        "http://{name}-frontend.{}.svc.cluster.local:{}",
        g.k8s.k8s_namespace, g.service.port
    );
    let script = render_template(
        &env,
        "bench_run.sh.j2",
        context! { g => gv.clone(), url => in_cluster },
    )?;
    files.push((
        format!("{mode}/k8s_bench.yaml"),
        render_template(
            &env,
            "k8s_bench.yaml.j2",
            context! { g => gv.clone(), name => name, script => script },
        )?,
    ));
    Ok(files)
}
