//! Launch simulation and the deployment defects it guards against: the generated node scripts
//! and the Kubernetes container commands (wrapped as the Dynamo operator wraps them) run with
//! stub `python3`, `mpirun`, `trtllm-llmapi-launch` and `aiperf` on PATH; each stub records
//! its arguments, GPU slice and ports, so the tests see what each node would start.
mod common;
use aicfg_gen::genconfig::*;
use common::*;
use serde_norway::Value;
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `--flag value` of a word list.
fn flag_value(words: &[String], name: &str) -> Option<String> {
    words
        .iter()
        .position(|w| w == name)
        .and_then(|i| words.get(i + 1).cloned())
}

// ---------------------------------------------------------------- launch simulation

struct Sim {
    dir: PathBuf,
}

/// One process a stub saw: its argv (after the program name) and environment of interest.
#[derive(Debug, Clone)]
struct Proc {
    prog: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
}

impl Sim {
    fn new(tag: &str) -> Sim {
        let dir = std::env::temp_dir().join(format!("aicfg-sim-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        // Each process writes its own record file (workers start in parallel): one line per
        // argument, ending with "--end--".
        let record = r#"#!/usr/bin/env bash
mkdir -p "$SIM_LOG"
{
  echo "prog=$(basename "$0")"
  for v in CUDA_VISIBLE_DEVICES VLLM_NIXL_SIDE_CHANNEL_PORT UNDER_LLMAPI_LAUNCH HF_HOME; do
    if [ -n "${!v+x}" ]; then echo "env:$v=${!v}"; fi
  done
  prev=""
  for a in "$@"; do
    echo "arg=$a"
    if [ "$prev" = "--extra-engine-args" ]; then
      if [ -f "$a" ]; then echo "env:ENGINE_FILE_OK=1"; else echo "env:ENGINE_FILE_OK=0"; fi
    fi
    prev="$a"
  done
  echo "--end--"
} > "$SIM_LOG/$$.$RANDOM.$(basename "$0")"
"#;
        let stubs = [
            ("python3", record.to_string()),
            ("aiperf", record.to_string()),
            (
                "mpirun",
                format!(
                    "{}\nwhile [ $# -gt 0 ] && [ \"$1\" != -n ]; do shift; done\nshift 2\nexec \"$@\"\n",
                    record.trim_end()
                ),
            ),
            (
                "trtllm-llmapi-launch",
                format!(
                    "{}\nexport UNDER_LLMAPI_LAUNCH=1\nexec \"$@\"\n",
                    record.trim_end()
                ),
            ),
        ];
        for (name, body) in stubs {
            let p = dir.join("bin").join(name);
            std::fs::write(&p, body).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Sim { dir }
    }

    fn log(&self) -> PathBuf {
        self.dir.join("sim.log")
    }

    /// Run `bash -c <script>` (or a script file) in its own process group (the node scripts
    /// `kill 0` on exit) with the stubs first on PATH.
    fn run(&self, args: &[&str], cwd: &Path) -> Vec<Proc> {
        let _ = std::fs::remove_dir_all(self.log());
        let path = format!(
            "{}:{}",
            self.dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("bash")
            .args(args)
            .current_dir(cwd)
            .env("PATH", path)
            .env("SIM_LOG", self.log())
            .env("WORKER_HOSTS", "n0,n1")
            .env("MASTER_ADDR", "10.0.0.2")
            .env("DIST_INIT_ADDR", "10.0.0.2:29500")
            .env_remove("CUDA_VISIBLE_DEVICES")
            .process_group(0)
            .output()
            .unwrap();
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.log())
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        names.sort();
        let text: String = names
            .iter()
            .map(|n| std::fs::read_to_string(n).unwrap())
            .collect();
        // The node scripts end in `kill 0` (status 143); a bash error is what counts.
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("command not found")
                && !err.contains("syntax error")
                && !err.contains("unbound variable"),
            "{args:?}: {err}"
        );
        let mut procs = Vec::new();
        let mut cur: Option<Proc> = None;
        for line in text.lines() {
            if let Some(p) = line.strip_prefix("prog=") {
                cur = Some(Proc {
                    prog: p.into(),
                    args: vec![],
                    env: BTreeMap::new(),
                });
            } else if let Some(a) = line.strip_prefix("arg=") {
                cur.as_mut().unwrap().args.push(a.into());
            } else if let Some(kv) = line.strip_prefix("env:") {
                let (k, v) = kv.split_once('=').unwrap();
                cur.as_mut().unwrap().env.insert(k.into(), v.into());
            } else if line == "--end--" {
                procs.push(cur.take().unwrap());
            }
        }
        procs
    }

    /// Write a generated tree and run one node script of it.
    fn run_node(&self, f: &BTreeMap<String, String>, node: usize) -> Vec<Proc> {
        let root = self.dir.join("tree");
        for (p, body) in f {
            let path = root.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, body).unwrap();
        }
        let script = f
            .keys()
            .find(|p| p.ends_with(&format!("node_{node}_run.sh")))
            .unwrap();
        let path = root.join(script);
        self.run(&[path.to_str().unwrap()], path.parent().unwrap())
    }

    /// Run a pod's command as the operator does for a multi-node TRT-LLM leader: the command
    /// and args joined into `bash -c '…'` under trtllm-llmapi-launch. The engine ConfigMap is
    /// materialised at its mount path first.
    fn run_pod(&self, f: &BTreeMap<String, String>, service: &str, wrap: bool) -> Vec<Proc> {
        let g: GeneratorConfig =
            serde_norway::from_str(get(f, "generator_config.yaml").split_once('\n').unwrap().1)
                .unwrap();
        for d in docs(get(f, "k8s_deploy.yaml")) {
            if d["kind"].as_str() == Some("ConfigMap") {
                let dir = Path::new(&g.k8s.engine_configs_dir);
                assert!(
                    dir.starts_with(&self.dir),
                    "engine dir must be inside the sim dir"
                );
                std::fs::create_dir_all(dir).unwrap();
                for (k, v) in d["data"].as_mapping().unwrap() {
                    std::fs::write(dir.join(k.as_str().unwrap()), v.as_str().unwrap()).unwrap();
                }
            }
        }
        let script = pod_script(f, service);
        let cmd = if wrap {
            format!("trtllm-llmapi-launch bash -c '{script}'")
        } else {
            script
        };
        self.run(&["-c", &cmd], &self.dir)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn workers(procs: &[Proc]) -> Vec<&Proc> {
    procs
        .iter()
        .filter(|p| p.prog == "python3" && p.args.get(1).is_some_and(|m| m != "dynamo.frontend"))
        .collect()
}

// ---------------------------------------------------------------- defects

/// 1. SGLang 0.5.21 (Dynamo 1.6.1) removed `--cuda-graph-bs`; `--cuda-graph-bs-decode` works.
#[test]
fn sglang_cuda_graphs_use_the_decode_flag() {
    let g = config("sglang", false, &[("agg", 1, params(4, 1, 1, 64, 4096))]);
    assert_eq!(g.generated_config_version, "0.5.21");
    let f = files(&g);
    let s = pod_script(&f, "SGLangWorker");
    assert!(s.contains("--cuda-graph-bs-decode 1 2 3"), "{s}");
    assert!(!s.contains("--cuda-graph-bs "), "{s}");
}

/// 2. Multi-node TRT-LLM: non-leading nodes launch nothing (mpirun starts their ranks), never
///    the literal `None`; the leader runs trtllm-llmapi-launch under mpirun over all GPUs.
#[test]
fn multinode_trtllm_node_scripts_start_ranks_only_from_the_leader() {
    let mut g = config("trtllm", false, &[("agg", 1, params(16, 1, 1, 64, 4096))]);
    g.node.num_gpus_per_node = 8;
    let f = files(&g);
    for (p, body) in &f {
        assert!(
            !body.contains(" None ") && !body.contains(" none "),
            "{p}:\n{body}"
        );
    }
    let sim = Sim::new("trt-mn");
    let leader = sim.run_node(&f, 0);
    let mpi: Vec<_> = leader.iter().filter(|p| p.prog == "mpirun").collect();
    assert_eq!(mpi.len(), 1);
    assert_eq!(flag_value(&mpi[0].args, "-n").as_deref(), Some("16"));
    let w = workers(&leader);
    assert_eq!(w.len(), 1);
    assert_eq!(
        w[0].env.get("UNDER_LLMAPI_LAUNCH").map(String::as_str),
        Some("1")
    );
    assert_eq!(
        w[0].env.get("ENGINE_FILE_OK").map(String::as_str),
        Some("1")
    );
    let other = sim.run_node(&f, 1);
    assert!(
        workers(&other).is_empty() && !other.iter().any(|p| p.prog == "mpirun"),
        "{other:?}"
    );
}

/// 3. In Kubernetes the engine YAML comes from a ConfigMap, and the pod command survives the
///    operator's `bash -c '…'` wrapping: the worker starts under trtllm-llmapi-launch and finds
///    its engine file.
#[test]
fn trtllm_pod_command_survives_the_operator_wrapping() {
    let sim = Sim::new("trt-pod");
    let engine_dir = sim.dir.join("engine_configs");
    let mut g = config(
        "trtllm",
        true,
        &[
            ("prefill", 1, params(16, 1, 1, 1, 8192)),
            ("decode", 1, params(16, 1, 1, 64, 64)),
        ],
    );
    g.k8s.engine_configs_dir = engine_dir.display().to_string();
    g.dynamo.publish_kv_events = true;
    g.service.model_path = "/models/my model".replace(' ', "_");
    let f = files(&g);
    let k8s = get(&f, "k8s_deploy.yaml");
    assert!(!k8s.contains("<<"), "no heredoc in pod commands");
    for svc in ["TRTLLMPrefillWorker", "TRTLLMDecodeWorker"] {
        let script = pod_script(&f, svc);
        assert!(!script.contains('\''), "{svc}: {script}");
        let procs = sim.run_pod(&f, svc, true);
        let w = workers(&procs);
        assert_eq!(w.len(), 1, "{svc}: {procs:?}");
        let a = &w[0].args;
        assert_eq!(a[..2], ["-m".to_string(), "dynamo.trtllm".to_string()]);
        assert_eq!(
            flag_value(a, "--model-path").as_deref(),
            Some("/models/my_model")
        );
        let role = if svc.contains("Prefill") {
            "prefill"
        } else {
            "decode"
        };
        assert_eq!(
            flag_value(a, "--disaggregation-mode").as_deref(),
            Some(role)
        );
        let file = flag_value(a, "--extra-engine-args").unwrap();
        assert_eq!(file, format!("{}/{role}_config.yaml", engine_dir.display()));
        assert_eq!(
            w[0].env.get("ENGINE_FILE_OK").map(String::as_str),
            Some("1")
        );
        assert_eq!(
            w[0].env.get("UNDER_LLMAPI_LAUNCH").map(String::as_str),
            Some("1")
        );
        assert!(a.contains(&"--publish-kv-events".to_string()));
        let engine: Value =
            serde_norway::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(engine["tensor_parallel_size"].as_u64(), Some(16));
    }
}

/// 4. SGLang disagg workers bind 0.0.0.0, so the prefill bootstrap server is reachable.
#[test]
fn sglang_disagg_workers_listen_on_all_interfaces() {
    let g = config(
        "sglang",
        false,
        &[
            ("prefill", 1, params(2, 1, 1, 1, 8192)),
            ("decode", 1, params(4, 1, 1, 64, 64)),
        ],
    );
    let f = files(&g);
    for svc in ["SGLangPrefillWorker", "SGLangDecodeWorker"] {
        let words: Vec<String> = pod_script(&f, svc)
            .split_whitespace()
            .map(String::from)
            .collect();
        assert_eq!(
            flag_value(&words, "--host").as_deref(),
            Some("0.0.0.0"),
            "{svc}"
        );
    }
}

/// 5. vLLM multi-node: ranks above 0 run `--headless`.
#[test]
fn vllm_multinode_followers_are_headless() {
    let g = config("vllm", false, &[("agg", 1, params(16, 1, 1, 64, 4096))]);
    let f = files(&g);
    let sim = Sim::new("vllm-mn");
    let n0 = sim.run_node(&f, 0);
    let n1 = sim.run_node(&f, 1);
    let w0 = workers(&n0);
    let w1 = workers(&n1);
    assert_eq!((w0.len(), w1.len()), (1, 1));
    assert!(!w0[0].args.contains(&"--headless".to_string()));
    assert!(w1[0].args.contains(&"--headless".to_string()));
    assert_eq!(flag_value(&w1[0].args, "--node-rank").as_deref(), Some("1"));
    assert_eq!(w1[0].env["CUDA_VISIBLE_DEVICES"], "0,1,2,3,4,5,6,7");
}

/// 6 (and the per-worker ports): co-located vLLM disagg workers get their own NIXL side
/// channel and KV-event ports, on disjoint GPU slices.
#[test]
fn colocated_vllm_workers_get_their_own_ports_and_gpus() {
    let mut g = config(
        "vllm",
        false,
        &[
            ("prefill", 2, params(2, 1, 1, 1, 8192)),
            ("decode", 2, params(2, 1, 1, 64, 64)),
        ],
    );
    g.model.prefix = 1000;
    g.dynamo.enable_router = true;
    g.dynamo.publish_kv_events = true;
    let f = files(&g);
    let sim = Sim::new("vllm-ports");
    let procs = sim.run_node(&f, 0);
    let w = workers(&procs);
    assert_eq!(w.len(), 4, "{procs:?}");
    let mut nixl = std::collections::BTreeSet::new();
    let mut kv = std::collections::BTreeSet::new();
    let mut gpus = std::collections::BTreeSet::new();
    for p in &w {
        nixl.insert(p.env["VLLM_NIXL_SIDE_CHANNEL_PORT"].clone());
        kv.insert(flag_value(&p.args, "--kv-events-config").unwrap());
        for d in p.env["CUDA_VISIBLE_DEVICES"].split(',') {
            assert!(gpus.insert(d.to_string()), "GPU {d} given twice");
        }
    }
    assert_eq!((nixl.len(), kv.len(), gpus.len()), (4, 4, 8));
    // Side-channel ranges [port, port + GPUs) do not overlap.
    let mut ports: Vec<u32> = nixl.iter().map(|p| p.parse().unwrap()).collect();
    ports.sort_unstable();
    assert!(ports.windows(2).all(|x| x[1] - x[0] >= 2), "{ports:?}");
}

/// 7. SGLang with attention DP divides --max-running-requests by the DP size: write batch × dp.
#[test]
fn sglang_attention_dp_gets_the_per_rank_batch() {
    let mut g = config(
        "sglang",
        true,
        &[
            ("prefill", 1, params(1, 4, 4, 1, 8192)),
            ("decode", 1, params(1, 8, 8, 32, 64)),
        ],
    );
    g.rule = Rule::Benchmark;
    let f = files(&g);
    let words = |svc| -> Vec<String> {
        pod_script(&f, svc)
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(
        flag_value(&words("SGLangPrefillWorker"), "--max-running-requests").as_deref(),
        Some("4")
    );
    assert_eq!(
        flag_value(&words("SGLangDecodeWorker"), "--max-running-requests").as_deref(),
        Some("256")
    );
    assert!(words("SGLangDecodeWorker").contains(&"--enable-dp-attention".to_string()));
}

/// 8. With a shared prefix the KV router gets events from every worker, and the benchmark
///    sends the prefix.
#[test]
fn prefix_routing_has_kv_events_and_a_prefix_benchmark() {
    for backend in ["vllm", "sglang", "trtllm"] {
        let mut g = config(backend, false, &[("agg", 2, params(4, 1, 1, 64, 4096))]);
        g.model.prefix = 1000;
        g.dynamo.enable_router = true;
        g.dynamo.publish_kv_events = true;
        let f = files(&g);
        let sim = Sim::new(&format!("prefix-{backend}"));
        let procs = sim.run_node(&f, 0);
        let front = procs
            .iter()
            .find(|p| p.args.get(1).map(String::as_str) == Some("dynamo.frontend"))
            .unwrap();
        assert_eq!(
            flag_value(&front.args, "--router-mode").as_deref(),
            Some("kv")
        );
        let w = workers(&procs);
        assert_eq!(w.len(), 2);
        let mut endpoints = std::collections::BTreeSet::new();
        for p in &w {
            match backend {
                "trtllm" => {
                    assert!(p.args.contains(&"--publish-kv-events".to_string()));
                    let e: Value = serde_norway::from_str(get(&f, "agg_config.yaml")).unwrap();
                    assert!(e["kv_cache_config"]["enable_block_reuse"]
                        .as_bool()
                        .unwrap());
                    assert!(
                        e["kv_cache_config"]["event_buffer_max_size"]
                            .as_u64()
                            .unwrap()
                            > 0
                    );
                }
                _ => {
                    let cfg = flag_value(&p.args, "--kv-events-config").unwrap();
                    let v: serde_json::Value = serde_json::from_str(&cfg).unwrap();
                    assert_eq!(v["publisher"], "zmq");
                    endpoints.insert(v["endpoint"].as_str().unwrap().to_string());
                }
            }
        }
        if backend != "trtllm" {
            assert_eq!(
                endpoints.len(),
                2,
                "one KV-event port per co-located worker"
            );
        }
        let bench_dir = sim.dir.join("bench");
        std::fs::create_dir_all(&bench_dir).unwrap();
        let b = bench_dir.join("bench_run.sh");
        std::fs::write(&b, get(&f, "bench_run.sh")).unwrap();
        let runs = sim.run(&[b.to_str().unwrap()], &bench_dir);
        assert_eq!(runs.len(), 2);
        for r in &runs {
            assert_eq!(
                flag_value(&r.args, "--prefix-prompt-length").as_deref(),
                Some("1000")
            );
            assert_eq!(
                flag_value(&r.args, "--synthetic-input-tokens-mean").as_deref(),
                Some("3000")
            );
        }
    }
}

/// 9. Heterogeneous disagg: each pool is pinned to its own GPU label and packed by its own
///    node size.
#[test]
fn heterogeneous_pools_keep_their_own_label_and_node_size() {
    let mut g = config(
        "trtllm",
        false,
        &[
            ("prefill", 2, params(4, 1, 1, 1, 8192)),
            ("decode", 2, params(8, 1, 1, 64, 64)),
        ],
    );
    g.k8s.gpu_product = "NVIDIA-B200".into();
    g.k8s.decode_gpu_product = "NVIDIA-H200".into();
    g.node.num_gpus_per_node = 4;
    g.node.decode_num_gpus_per_node = 8;
    let f = files(&g);
    let d = dgd(&f);
    let sel = |svc: &str| {
        services(&d)[svc]["extraPodSpec"]["nodeSelector"]["nvidia.com/gpu.product"]
            .as_str()
            .map(String::from)
    };
    assert_eq!(sel("TRTLLMPrefillWorker").as_deref(), Some("NVIDIA-B200"));
    assert_eq!(sel("TRTLLMDecodeWorker").as_deref(), Some("NVIDIA-H200"));
    // 2 prefill workers of 4 GPUs on 4-GPU nodes, 2 decode workers of 8 on 8-GPU nodes.
    let nodes = f.keys().filter(|p| p.contains("node_")).count();
    assert_eq!(nodes, 4);
    assert!(services(&d)["TRTLLMDecodeWorker"]["multinode"].is_null());
}

/// 11. MTP: a decode step carries the draft tokens too (batch 32, nextn 2 → 96 tokens).
#[test]
fn mtp_token_budget_counts_draft_tokens() {
    let mut g = config(
        "trtllm",
        true,
        &[
            ("prefill", 1, params(8, 1, 1, 1, 8192)),
            ("decode", 1, params(8, 1, 1, 32, 32)),
        ],
    );
    g.model.nextn = 2;
    let f = files(&g);
    let e: Value = serde_norway::from_str(get(&f, "decode_config.yaml")).unwrap();
    assert_eq!(e["max_num_tokens"].as_u64(), Some(96));
    g.rule = Rule::Benchmark;
    let f = files(&g);
    let e: Value = serde_norway::from_str(get(&f, "decode_config.yaml")).unwrap();
    assert_eq!(e["max_num_tokens"].as_u64(), Some(96));
    g.backend = aicfg_core::Backend::Vllm;
    g.generated_config_version = "0.31.0".into();
    let f = files(&g);
    let words: Vec<String> = pod_script(&f, "VllmDecodeWorker")
        .split_whitespace()
        .map(String::from)
        .collect();
    let tokens: u32 = flag_value(&words, "--max-num-batched-tokens")
        .unwrap()
        .parse()
        .unwrap();
    assert!(tokens >= 96, "{tokens}");
}

/// 12. `moe_config.backend: WIDEEP` is refused from TRT-LLM 1.3.0rc27; older releases keep it.
#[test]
fn wide_ep_backend_follows_the_trtllm_version() {
    let roles = [
        ("prefill", 1, params(1, 8, 8, 1, 8192)),
        ("decode", 1, params(1, 32, 32, 64, 64)),
    ];
    let g = config("trtllm", true, &roles);
    assert_eq!(g.generated_config_version, "1.3.0rc29");
    let f = files(&g);
    assert!(!get(&f, "decode_config.yaml").contains("WIDEEP"));
    let mut old = config("trtllm", true, &roles);
    old.generated_config_version = "1.3.0rc25".into();
    old.dynamo.dynamo_version = "1.5.1".into();
    let f = files(&old);
    let e: Value = serde_norway::from_str(get(&f, "decode_config.yaml")).unwrap();
    assert_eq!(e["moe_config"]["backend"].as_str(), Some("WIDEEP"));
    // Within a node the CUTLASS backend is right on every release.
    let e: Value = serde_norway::from_str(get(&f, "prefill_config.yaml")).unwrap();
    assert_eq!(e["moe_config"]["backend"].as_str(), Some("CUTLASS"));
}

/// 10 (vLLM side): Dynamo before 1.0 marks vLLM roles with --is-prefill-worker; the 0.11.0
/// files therefore differ from the default ones.
#[test]
fn vllm_0_11_uses_the_role_booleans_of_its_dynamo() {
    let roles = [
        ("prefill", 1, params(2, 1, 1, 1, 8192)),
        ("decode", 1, params(2, 1, 1, 64, 64)),
    ];
    let mut g = config("vllm", false, &roles);
    let new = pod_script(&files(&g), "VllmPrefillWorker");
    assert!(new.contains("--disaggregation-mode prefill"), "{new}");
    let r = aicfg_gen::versions::matrix()
        .resolve(aicfg_core::Backend::Vllm, Some("0.11.0"), None)
        .unwrap();
    g.generated_config_version = r.vllm.clone();
    g.dynamo.dynamo_version = r.dynamo.clone();
    let old = pod_script(&files(&g), "VllmPrefillWorker");
    assert!(
        old.contains("--is-prefill-worker") && !old.contains("--disaggregation-mode"),
        "{old}"
    );
}

/// Dynamo 1.3.0 on writes the v1beta1 layout (components list, native pod template); older
/// releases the v1alpha1 one their operator serves.
#[test]
fn dgd_api_version_follows_the_dynamo_release() {
    let mut g = config("sglang", false, &[("agg", 2, params(4, 1, 1, 64, 4096))]);
    let d = dgd(&files(&g));
    assert_eq!(d["apiVersion"].as_str(), Some("nvidia.com/v1beta1"));
    let c = &d["spec"]["components"][1];
    assert_eq!(c["name"].as_str(), Some("SGLangWorker"));
    assert_eq!(c["type"].as_str(), Some("worker"));
    assert_eq!(c["replicas"].as_u64(), Some(2));
    let main = &c["podTemplate"]["spec"]["containers"][0];
    assert_eq!(main["name"].as_str(), Some("main"));
    assert_eq!(
        main["resources"]["limits"]["nvidia.com/gpu"].as_str(),
        Some("4")
    );
    for (dynamo, api) in [
        ("1.3.0.post1", "v1beta1"),
        ("1.2.1", "v1alpha1"),
        ("0.7.1", "v1alpha1"),
    ] {
        g.dynamo.dynamo_version = dynamo.into();
        let d = dgd(&files(&g));
        assert_eq!(
            d["apiVersion"].as_str(),
            Some(format!("nvidia.com/{api}").as_str()),
            "{dynamo}"
        );
        // Same deployment either way.
        assert_eq!(
            services(&d)["SGLangWorker"]["replicas"].as_u64(),
            Some(2),
            "{dynamo}"
        );
    }
}

/// GB200/GB300 NVL72: a worker spanning trays claims an IMEX channel of one ComputeDomain
/// (as Dynamo's GB200 recipes do); single-node workers and other systems claim nothing.
#[test]
fn multinode_workers_on_an_nvl_rack_claim_a_compute_domain() {
    let roles = [
        ("prefill", 3, params(4, 1, 1, 1, 8192)),
        ("decode", 2, params(8, 1, 1, 64, 64)),
    ];
    let mut g = config("trtllm", false, &roles);
    g.node.num_gpus_per_node = 4;
    g.node.decode_num_gpus_per_node = 4;
    assert!(!get(&files(&g), "k8s_deploy.yaml").contains("ComputeDomain"));
    g.set("K8sConfig.compute_domain", "true").unwrap();
    assert!(g.k8s.decode_compute_domain, "one key turns on both pools");
    for dynamo in ["1.6.1", "1.2.1"] {
        g.dynamo.dynamo_version = dynamo.into();
        let f = files(&g);
        let all = docs(get(&f, "k8s_deploy.yaml"));
        let cd = all
            .iter()
            .find(|d| d["kind"].as_str() == Some("ComputeDomain"))
            .expect("a ComputeDomain");
        // Two decode workers of two 4-GPU trays each; prefill workers fit one tray.
        assert_eq!(cd["spec"]["numNodes"].as_u64(), Some(4), "{dynamo}");
        let template = cd["spec"]["channel"]["resourceClaimTemplate"]["name"]
            .as_str()
            .unwrap();
        let s = services(&dgd(&f));
        let decode = &s["TRTLLMDecodeWorker"];
        assert_eq!(decode["multinode"]["nodeCount"].as_u64(), Some(2));
        let claim = &decode["extraPodSpec"]["resourceClaims"][0];
        assert_eq!(claim["resourceClaimTemplateName"].as_str(), Some(template));
        let name = claim["name"].as_str().unwrap();
        // The container uses the claim the pod declares (v1alpha1: the service's resources).
        let used = if dynamo == "1.6.1" {
            &decode["extraPodSpec"]["mainContainer"]["resources"]["claims"]
        } else {
            &decode["resources"]["claims"]
        };
        assert_eq!(used[0]["name"].as_str(), Some(name), "{dynamo}");
        let prefill = &s["TRTLLMPrefillWorker"];
        assert!(
            prefill["extraPodSpec"]["resourceClaims"].is_null(),
            "{dynamo}"
        );
    }
    // Only the decode pool on the rack (heterogeneous: H200 prefill, GB200 decode).
    g.set("K8sConfig.compute_domain", "false").unwrap();
    g.set("K8sConfig.decode_compute_domain", "true").unwrap();
    g.node.num_gpus_per_node = 2;
    let s = services(&dgd(&files(&g)));
    assert!(s["TRTLLMPrefillWorker"]["extraPodSpec"]["resourceClaims"].is_null());
    assert!(!s["TRTLLMDecodeWorker"]["extraPodSpec"]["resourceClaims"].is_null());
}

// ---------------------------------------------------------------- values and extras

/// Hostile `--generator-set` values for every key: refused with the key named, or (where the
/// type allows them) written so that running every script executes nothing they carry.
#[test]
fn hostile_generator_values_are_refused_or_inert() {
    let hostile = [
        "x}$(touch PWNED):1#",
        "a'b",
        "$(touch PWNED)",
        "`touch PWNED`",
        "a b",
        ";touch PWNED",
        "x\ntouch PWNED",
        "../../etc/passwd",
        "-rf",
        "\"quoted\"",
        "99999999999",
        "",
    ];
    let base = config(
        "vllm",
        false,
        &[
            ("prefill", 1, params(2, 1, 1, 1, 8192)),
            ("decode", 1, params(2, 1, 1, 64, 64)),
        ],
    );
    let sim = Sim::new("hostile");
    let mut accepted = 0;
    for k in aicfg_gen::KEYS {
        for v in hostile {
            let item = format!("{}={v}", k.key);
            let parsed = aicfg_gen::parse_sets(std::slice::from_ref(&item));
            let mut g = base.clone();
            let set = g.set(k.key, v);
            assert_eq!(parsed.is_ok(), set.is_ok(), "{item}");
            match set {
                Err(e) => assert!(e.to_string().contains(k.key), "{e}"),
                Ok(()) => {
                    accepted += 1;
                    assert!(
                        !v.chars().any(|c| "$'\"`; \n{}#()".contains(c)),
                        "{item} was accepted"
                    );
                    let f = files(&g);
                    for n in 0..f.keys().filter(|p| p.contains("node_")).count() {
                        sim.run_node(&f, n);
                    }
                    assert!(
                        !sim.dir.join("tree").join("disagg").join("PWNED").exists(),
                        "{item}"
                    );
                    assert!(!Path::new("PWNED").exists(), "{item}");
                    for body in f.values() {
                        assert!(!body.contains("touch PWNED"), "{item} reached a file");
                    }
                }
            }
        }
    }
    assert!(accepted > 0);
}

#[test]
fn pull_secret_and_model_cache_reach_every_pod() {
    let mut g = config("sglang", false, &[("agg", 1, params(4, 1, 1, 64, 4096))]);
    g.set("K8sConfig.image_pull_secret", "regcred").unwrap();
    g.set("K8sConfig.model_cache_pvc", "model-cache").unwrap();
    let d = dgd(&files(&g));
    let s = services(&d);
    for svc in ["Frontend", "SGLangWorker"] {
        let pod = &s[svc]["extraPodSpec"];
        assert_eq!(
            pod["imagePullSecrets"][0]["name"].as_str(),
            Some("regcred"),
            "{svc}"
        );
    }
    let pod = &s["SGLangWorker"]["extraPodSpec"];
    assert_eq!(
        pod["volumes"][0]["persistentVolumeClaim"]["claimName"].as_str(),
        Some("model-cache")
    );
    let c = &pod["mainContainer"];
    assert_eq!(
        c["volumeMounts"][0]["mountPath"].as_str(),
        Some("/root/.cache/huggingface")
    );
    assert_eq!(c["env"][0]["name"].as_str(), Some("HF_HOME"));
}

/// `k8s_bench.yaml`: an in-cluster aiperf Job whose command sweeps the frontend Service.
#[test]
fn bench_job_runs_aiperf_against_the_frontend_service() {
    let mut g = config("vllm", false, &[("agg", 1, params(4, 1, 1, 64, 4096))]);
    g.set("K8sConfig.k8s_namespace", "serving").unwrap();
    g.set("K8sConfig.model_cache_pvc", "models").unwrap();
    let f = files(&g);
    let job: Value = serde_norway::from_str(get(&f, "k8s_bench.yaml")).unwrap();
    assert_eq!(job["kind"].as_str(), Some("Job"));
    assert_eq!(job["metadata"]["namespace"].as_str(), Some("serving"));
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"].as_str(), Some("Never"));
    assert_eq!(
        pod["volumes"][0]["persistentVolumeClaim"]["claimName"].as_str(),
        Some("models")
    );
    let c = &pod["containers"][0];
    assert_eq!(c["command"][1].as_str(), Some("-c"));
    let script = c["args"][0].as_str().unwrap();
    let sim = Sim::new("bench-job");
    let runs = sim.run(&["-c", script], &sim.dir);
    assert_eq!(runs.len(), g.bench.concurrencies.len());
    for r in &runs {
        assert_eq!(r.prog, "aiperf");
        assert_eq!(
            flag_value(&r.args, "--url").as_deref(),
            Some("http://dynamo-agg-frontend.serving.svc.cluster.local:8000")
        );
    }
}
