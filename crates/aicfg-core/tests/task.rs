//! Experiment files: layering (defaults → profiles → patch/replace), resolution into a search
//! request, the resolved YAML round trip, errors with key paths, and no panic on any input.
use aicfg_core::quant::{GemmQuant, KvQuant, MoeQuant};
use aicfg_core::task::{parse_experiments, Experiment, ServingMode};
use aicfg_core::{AicfgError, ModelRegistry, ServeMode, SystemRegistry};
use proptest::prelude::*;

fn parse(text: &str) -> Result<Vec<Experiment>, AicfgError> {
    parse_experiments(text, &ModelRegistry::builtin(), &SystemRegistry::builtin())
}

fn one(text: &str) -> Experiment {
    let mut v = parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(v.len(), 1);
    v.remove(0)
}

fn err(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("expected an error for\n{text}"),
        Err(e) => e.to_string(),
    }
}

const QWEN_AGG: &str = "e:
  mode: patch
  serving_mode: agg
  model_name: QWEN3_32B
  total_gpus: 16
  system_name: h200_sxm
";

const DSV3_DISAGG: &str = "e:
  mode: patch
  serving_mode: disagg
  model_name: DEEPSEEK_V3
  total_gpus: 32
  system_name: h200_sxm
";

#[test]
fn defaults_fill_everything() {
    let e = one(QWEN_AGG);
    assert_eq!(e.serving_mode, ServingMode::Agg);
    assert_eq!((e.isl, e.osl, e.ttft, e.tpot), (4000, 1000, 2000.0, 30.0));
    assert_eq!(e.backend_name, "trtllm");
    let w = e.config.worker_config.as_ref().unwrap();
    assert_eq!(w.parallel.tp_list, vec![1, 2, 4, 8]);
    assert!(e.config.prefill_worker_config.is_none() && e.config.replica_config.is_none());
    assert_eq!(e.config.advanced_tuning_config.prefill_max_batch_size, None);

    let d = one(DSV3_DISAGG);
    assert_eq!(d.decode_system_name.as_deref(), Some("h200_sxm"));
    let r = d.config.replica_config.as_ref().unwrap();
    assert_eq!((r.max_gpu_per_replica, r.max_prefill_worker), (128, 32));
    // DeepSeek-V3 ships FP8 block-scaled weights.
    let p = d.config.prefill_worker_config.as_ref().unwrap();
    assert_eq!(p.gemm_quant_mode, GemmQuant::Fp8Block);
    assert!(p.parallel.moe_ep_list.contains(&16));
}

#[test]
fn patch_merges_replace_swaps_sections() {
    let patch = one(&format!(
        "{QWEN_AGG}  config:\n    worker_config:\n      tp_list: [2]\n      num_gpu_per_worker: [2]\n"
    ));
    let w = patch.config.worker_config.unwrap();
    assert_eq!(w.parallel.tp_list, vec![2]);
    // Untouched keys keep their defaults.
    assert_eq!(w.parallel.pp_list, vec![1]);

    let replace = QWEN_AGG.replace("mode: patch", "mode: replace")
        + "  config:\n    worker_config:\n      tp_list: [2]\n";
    let msg = err(&replace);
    assert!(
        msg.contains("config.worker_config.gemm_quant_mode") && msg.contains("replace"),
        "{msg}"
    );
    let full = QWEN_AGG.replace("mode: patch", "mode: replace")
        + "  config:
    worker_config:
      gemm_quant_mode: bfloat16
      moe_quant_mode: bfloat16
      kvcache_quant_mode: bfloat16
      fmha_quant_mode: bfloat16
      comm_quant_mode: half
      num_gpu_per_worker: [4]
      tp_list: [4]
      pp_list: [1]
      dp_list: [1]
      moe_tp_list: [1]
      moe_ep_list: [1]
";
    let e = one(&full);
    let w = e.config.worker_config.unwrap();
    assert_eq!(w.parallel.tp_list, vec![4]);
    assert_eq!(w.gemm_quant_mode, GemmQuant::Bfloat16);
    // Sections not given keep their defaults.
    assert_eq!(e.config.advanced_tuning_config.decode_max_batch_size, 512);
}

#[test]
fn profiles_apply_in_order_then_user_config() {
    let e = one(&format!(
        "{QWEN_AGG}  profiles: [float16_default, fp8_default]\n"
    ));
    let w = e.config.worker_config.unwrap();
    assert_eq!(w.gemm_quant_mode, GemmQuant::Fp8);
    assert_eq!(w.kvcache_quant_mode, KvQuant::Fp8);
    let e = one(&format!(
        "{QWEN_AGG}  profiles: [fp8_default]\n  config:\n    worker_config:\n      kvcache_quant_mode: bfloat16\n"
    ));
    let w = e.config.worker_config.unwrap();
    assert_eq!(
        (w.gemm_quant_mode, w.kvcache_quant_mode),
        (GemmQuant::Fp8, KvQuant::Bfloat16)
    );
    // A profile sets both disagg workers.
    let d = one(&format!("{DSV3_DISAGG}  profiles: [float16_default]\n"));
    for w in [
        d.config.prefill_worker_config.unwrap(),
        d.config.decode_worker_config.unwrap(),
    ] {
        assert_eq!(w.moe_quant_mode, MoeQuant::Bfloat16);
    }
}

#[test]
fn request_maps_scales_mtp_and_hetero_systems() {
    let e = one(&format!(
        "{}  decode_system_name: h200_sxm\n  config:
    nextn: 2
    nextn_accept_rates: [0.8, 0.5, 0.25]
    advanced_tuning_config:
      prefill_latency_correction_scale: 1.1
      prefill_correction_scale: 0.5
      decode_correction_scale: 0.8
      decode_max_batch_size: 64
",
        DSV3_DISAGG.replace("h200_sxm", "b200_sxm")
    ));
    let req = e
        .search_request(&ModelRegistry::builtin(), &SystemRegistry::builtin())
        .unwrap();
    assert_eq!(req.modes, vec![ServeMode::Disagg]);
    assert_eq!(req.system.name, "b200_sxm");
    assert_eq!(req.decode_system.as_ref().unwrap().name, "h200_sxm");
    assert!((req.tuning.prefill_latency_scale - 2.2).abs() < 1e-12);
    assert!((req.tuning.decode_latency_scale - 1.25).abs() < 1e-12);
    assert_eq!(req.tuning.decode_max_batch_size, 64);
    assert_eq!(req.workload.nextn, 2);
    assert!((req.workload.nextn_accepted - 1.3).abs() < 1e-12);
    assert_eq!(req.total_gpus, Some(32));
}

#[test]
fn wide_ep_widens_moe_lists_and_replica_cap() {
    let narrow = one(DSV3_DISAGG);
    let wide = one(&format!("{DSV3_DISAGG}  enable_wide_ep: true\n"));
    let ep = |e: &Experiment| {
        e.config
            .decode_worker_config
            .as_ref()
            .unwrap()
            .parallel
            .moe_ep_list
            .clone()
    };
    assert!(ep(&wide).contains(&64) && !ep(&narrow).contains(&64));
    let cap = |e: &Experiment| {
        e.config
            .replica_config
            .as_ref()
            .unwrap()
            .max_gpu_per_replica
    };
    assert!(cap(&wide) > cap(&narrow));
}

/// `sla_percentile` reaches the search request and survives the resolved YAML; a value outside
/// mean/p50/p90/p99 names the key and the accepted values.
#[test]
fn sla_percentile_key_reaches_the_search() {
    let e = one(&format!("{QWEN_AGG}  sla_percentile: p90\n"));
    let req = e
        .search_request(&ModelRegistry::builtin(), &SystemRegistry::builtin())
        .unwrap();
    assert_eq!(req.sla_percentile, aicfg_core::search::SlaPercentile::P90);
    let yaml = e.resolved_yaml();
    assert!(yaml.contains("sla_percentile: p90"), "{yaml}");
    assert_eq!(one(&yaml), e);
    assert!(!one(QWEN_AGG).resolved_yaml().contains("sla_percentile"));
    let msg = err(&format!("{QWEN_AGG}  sla_percentile: p95\n"));
    assert!(
        msg.contains("sla_percentile") && msg.contains("mean, p50, p90, p99"),
        "{msg}"
    );
}

/// `gpu_cost_per_hour` and `rank_by` reach the search request and survive the resolved YAML;
/// without them the YAML has neither key.
#[test]
fn price_and_ranking_keys_reach_the_search() {
    let e = one(&format!(
        "{QWEN_AGG}  gpu_cost_per_hour: 2.5\n  rank_by: cost\n"
    ));
    let req = e
        .search_request(&ModelRegistry::builtin(), &SystemRegistry::builtin())
        .unwrap();
    assert_eq!(req.gpu_cost_per_hour, Some(2.5));
    assert_eq!(req.rank_by, aicfg_core::search::RankBy::Cost);
    let yaml = e.resolved_yaml();
    assert!(yaml.contains("gpu_cost_per_hour: 2.5") && yaml.contains("rank_by: cost"));
    assert_eq!(one(&yaml), e);
    let plain = one(QWEN_AGG).resolved_yaml();
    assert!(!plain.contains("gpu_cost_per_hour") && !plain.contains("rank_by"));
    for (bad, needle) in [
        ("gpu_cost_per_hour: -1", "non-negative"),
        ("gpu_cost_per_hour: cheap", "a number of dollars"),
        ("rank_by: price", "throughput, cost"),
    ] {
        let msg = err(&format!("{QWEN_AGG}  {bad}\n"));
        let key = bad.split(':').next().unwrap();
        assert!(msg.contains(key) && msg.contains(needle), "{bad}: {msg}");
    }
}

#[test]
fn resolved_yaml_runs_again_unchanged() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/exp_disagg_full.yaml"
    ))
    .unwrap();
    let e = one(&text);
    let yaml = e.resolved_yaml();
    assert!(yaml.starts_with("exp_disagg_full:"), "{yaml}");
    let again = one(&yaml);
    assert_eq!(again, e);
    assert_eq!(again.resolved_yaml(), yaml);
}

#[test]
fn exps_selects_and_orders() {
    let text = format!(
        "exps: [b, a]\n{}{}{}",
        QWEN_AGG.replacen("e:", "a:", 1),
        QWEN_AGG.replacen("e:", "b:", 1),
        QWEN_AGG.replacen("e:", "c:", 1)
    );
    let v = parse(&text).unwrap();
    let names: Vec<&str> = v.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, vec!["b", "a"]);
}

#[test]
fn errors_name_experiment_key_and_line() {
    let m = err(&format!(
        "{QWEN_AGG}  config:\n    worker_config:\n      moe_ep_lst: [1]\n"
    ));
    assert!(m.contains("experiment 'e'"), "{m}");
    assert!(m.contains("config.worker_config.moe_ep_lst"), "{m}");
    assert!(m.contains("did you mean 'moe_ep_list'"), "{m}");
    let m = err(&format!("{QWEN_AGG}  isl: [1]\n"));
    assert!(
        m.contains("key 'isl'") && m.contains("expected a whole number"),
        "{m}"
    );
    let m = err(&format!(
        "{QWEN_AGG}  config:\n    worker_config:\n      tp_list: 4\n"
    ));
    assert!(
        m.contains("config.worker_config.tp_list") && m.contains("a list"),
        "{m}"
    );
    let m = err("a:\n  mode: patch\n  serving_mode: [agg\n");
    assert!(m.contains("line 4") || m.contains("line 3"), "{m}");
    let m = err("a: 1\n");
    assert!(m.contains("experiment 'a'") && m.contains("mapping"), "{m}");
    let m = err("exps: [a]\n");
    assert!(m.contains("no experiment is defined"), "{m}");
    let m = err(&QWEN_AGG.replace("  total_gpus: 16\n", ""));
    assert!(m.contains("'total_gpus'") && m.contains("missing"), "{m}");
    let m = err(&QWEN_AGG.replace("h200_sxm", "a100_sxm").replace(
        "total_gpus: 16",
        "total_gpus: 16\n  profiles: [fp8_default]",
    ));
    assert!(
        m.contains("config.worker_config") && m.contains("fp8"),
        "{m}"
    );
    let m = err(&format!(
        "{DSV3_DISAGG}  config:\n    decode_worker_config:\n      num_gpu_per_worker: [64]\n"
    ));
    assert!(
        m.contains("config.decode_worker_config") && m.contains("exceeds total_gpus 32"),
        "{m}"
    );
    let m = err(&format!(
        "{QWEN_AGG}  config:\n    replica_config:\n      max_gpu_per_replica: 8\n"
    ));
    assert!(m.contains("does not apply to serving_mode agg"), "{m}");
}

const KEYS: &[&str] = &[
    "mode",
    "serving_mode",
    "model_name",
    "total_gpus",
    "system_name",
    "decode_system_name",
    "backend_name",
    "isl",
    "osl",
    "ttft",
    "tpot",
    "enable_wide_ep",
    "profiles",
    "config",
    "nextn",
    "nextn_accept_rates",
    "worker_config",
    "prefill_worker_config",
    "decode_worker_config",
    "replica_config",
    "advanced_tuning_config",
    "tp_list",
    "num_gpu_per_worker",
    "exps",
];
const VALUES: &[&str] = &[
    "patch",
    "replace",
    "agg",
    "disagg",
    "QWEN3_32B",
    "h200_sxm",
    "0",
    "-1",
    "8",
    "1e400",
    "[]",
    "[1, 2]",
    "{}",
    "~",
    "true",
    "\"x\"",
    "[fp8_default]",
    ".nan",
    "*a",
    "&a 1",
    "!!str 3",
    "[0]",
];

fn mutate(base: &str, picks: &[(usize, usize, usize)]) -> String {
    let mut lines: Vec<String> = base.lines().map(str::to_string).collect();
    for &(l, k, v) in picks {
        let indent = " ".repeat((l % 4) * 2);
        let line = format!(
            "{indent}{}: {}",
            KEYS[k % KEYS.len()],
            VALUES[v % VALUES.len()]
        );
        let at = l % (lines.len() + 1);
        lines.insert(at, line);
    }
    lines.join("\n")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary text never panics the parser.
    #[test]
    fn random_text_never_panics(s in "\\PC{0,200}") {
        let _ = parse(&s);
    }

    /// Mutations of a valid file (keys and values inserted at random places and depths)
    /// either resolve or give an error; never a panic.
    #[test]
    fn mutated_files_never_panic(picks in prop::collection::vec((0usize..40, 0usize..64, 0usize..64), 1..4),
                                 cut in 0usize..400) {
        let base = format!("{DSV3_DISAGG}  config:\n    nextn: 1\n    replica_config:\n      max_gpu_per_replica: 64\n");
        let text = mutate(&base, &picks);
        let _ = parse(&text);
        let cut_at = text.char_indices().nth(cut).map_or(text.len(), |(i, _)| i);
        let _ = parse(&text[..cut_at]);
    }
}

#[test]
fn prefix_database_mode_and_memory_fraction_reach_the_request() {
    let e = one(&format!(
        "{QWEN_AGG}  isl: 2000\n  prefix: 500\n  database_mode: sol\n  config:
    advanced_tuning_config:
      free_gpu_memory_fraction: 0.8
"
    ));
    assert_eq!(e.prefix, 500);
    assert_eq!(e.database_mode, aicfg_core::DatabaseMode::Sol);
    assert_eq!(
        e.config.advanced_tuning_config.free_gpu_memory_fraction,
        Some(0.8)
    );
    let req = e
        .search_request(&ModelRegistry::builtin(), &SystemRegistry::builtin())
        .unwrap();
    assert_eq!(req.workload.prefix, 500.0);
    assert_eq!(req.database_mode, aicfg_core::DatabaseMode::Sol);
    assert_eq!(req.free_gpu_memory_fraction, Some(0.8));
    // Written back and read again, nothing changes.
    assert_eq!(one(&e.resolved_yaml()), e);

    // Absent: no prefix, auto (hybrid only with a measured database installed), the backend's
    // own fraction (and the key is not written).
    let d = one(QWEN_AGG);
    assert_eq!(
        (d.prefix, d.database_mode),
        (0, aicfg_core::DatabaseMode::Auto)
    );
    assert!(!d.resolved_yaml().contains("free_gpu_memory_fraction"));
    assert!(d.resolved_yaml().contains("database_mode: auto"));
}

#[test]
fn bad_prefix_database_mode_and_memory_fraction_are_clear_errors() {
    let m = err(&format!("{QWEN_AGG}  isl: 100\n  prefix: 100\n"));
    assert!(
        m.contains("key 'prefix'") && m.contains("fewer than isl"),
        "{m}"
    );
    let m = err(&format!("{QWEN_AGG}  database_mode: measured\n"));
    assert!(
        m.contains("key 'database_mode'") && m.contains("empirical"),
        "{m}"
    );
    for bad in ["1.5", "0", "-0.2", "high"] {
        let m = err(&format!(
            "{QWEN_AGG}  config:\n    advanced_tuning_config:\n      free_gpu_memory_fraction: {bad}\n"
        ));
        assert!(
            m.contains("config.advanced_tuning_config.free_gpu_memory_fraction"),
            "{bad}: {m}"
        );
    }
    let m = err(&format!("{QWEN_AGG}  prefx: 10\n"));
    assert!(m.contains("did you mean 'prefix'"), "{m}");
}

/// The experiment rebuilt from a finished search runs that same search again.
#[test]
fn experiment_from_search_reruns_the_search() {
    use aicfg_core::search::search;
    use aicfg_core::task::study_yaml;
    let models = ModelRegistry::builtin();
    let systems = SystemRegistry::builtin();
    for text in [
        format!("{QWEN_AGG}  prefix: 1000\n  database_mode: sol\n  config:\n    nextn: 2\n    nextn_accept_rates: [0.9, 0.6]\n    advanced_tuning_config:\n      decode_latency_correction_scale: 1.2\n      free_gpu_memory_fraction: 0.7\n"),
        format!("{DSV3_DISAGG}  enable_wide_ep: true\n  profiles: [nvfp4_default]\n").replace("h200_sxm", "b200_sxm"),
    ] {
        let e = one(&text);
        let req = e.search_request(&models, &systems).unwrap();
        let res = search(&req, None).unwrap();
        let back = Experiment::from_search("again", &req, &res, e.serve_mode(), req.backends[0])
            .unwrap();
        let req2 = back.search_request(&models, &systems).unwrap();
        assert_eq!(req2.workload, req.workload);
        assert_eq!(req2.tuning, req.tuning);
        assert_eq!(
            (req2.agg_space.clone(), req2.prefill_space.clone(), req2.decode_space.clone()),
            (req.agg_space.clone(), req.prefill_space.clone(), req.decode_space.clone())
        );
        let parsed = one(&study_yaml(std::slice::from_ref(&back)).unwrap());
        assert_eq!(parsed, back);
        let res2 = search(&parsed.search_request(&models, &systems).unwrap(), None).unwrap();
        let best = |r: &aicfg_core::search::SearchResult| r.best.clone().unwrap();
        assert_eq!(best(&res2), best(&res));
    }
}

/// The worker setup of an experiment says which key, profile or rule set each format, never a
/// command-line flag the experiment did not have; a format the hardware changed gets a note.
#[test]
fn quant_origins_name_the_experiment_keys_profiles_and_rules() {
    use aicfg_core::search::{search, Role};
    use aicfg_core::task::search_all;
    let models = ModelRegistry::builtin();
    let systems = SystemRegistry::builtin();
    let origin = |text: &str, role: Role| {
        let exps = parse(text).unwrap();
        let study = search_all(exps, &models, &systems, 3, &Default::default(), |r| {
            search(r, None)
        })
        .unwrap();
        assert!(study.failed.is_empty(), "{}", study.failed[0].reason);
        let res = &study.outcomes[0].result;
        let q = res.quant.iter().find(|q| q.role == role).unwrap();
        (q.origin.clone(), res.notes.clone())
    };
    // Nothing set: the checkpoint's format and the defaults.
    let (o, _) = origin(QWEN_AGG, Role::Agg);
    assert_eq!(
        (
            o.gemm.as_str(),
            o.kvcache.as_str(),
            o.fmha.as_str(),
            o.comm.as_str()
        ),
        ("checkpoint", "default", "default", "default")
    );
    // A profile, then a key of the file over it.
    let (o, _) = origin(
        &format!("{QWEN_AGG}  profiles: [fp8_default]\n  config:\n    worker_config:\n      kvcache_quant_mode: bfloat16\n"),
        Role::Agg,
    );
    assert_eq!(o.gemm, "profile fp8_default");
    assert_eq!(o.kvcache, "worker_config.kvcache_quant_mode");
    // Disagg: each worker's own section; DeepSeek-V3's FP8 block weights from the checkpoint.
    let text = format!(
        "{DSV3_DISAGG}  config:\n    decode_worker_config:\n      moe_quant_mode: bfloat16\n"
    );
    let (p, _) = origin(&text, Role::Prefill);
    let (d, _) = origin(&text, Role::Decode);
    assert_eq!(
        (p.gemm.as_str(), p.moe.as_str()),
        ("checkpoint", "checkpoint")
    );
    assert_eq!(d.moe, "decode_worker_config.moe_quant_mode");
    // NVFP4 asked for by a profile on Hopper runs weight-only: said in the origin and a note.
    let (o, notes) = origin(
        &format!("{QWEN_AGG}  profiles: [nvfp4_default]\n"),
        Role::Agg,
    );
    assert!(
        o.gemm
            .starts_with("downgraded from nvfp4 (profile nvfp4_default): h200_sxm has no FP4"),
        "{}",
        o.gemm
    );
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("quantization downgraded from nvfp4 (profile nvfp4_default)")),
        "{notes:?}"
    );
    // An NVFP4 checkpoint on Hopper with nothing set: the checkpoint's downgrade, also a note.
    let (o, notes) = origin(
        &QWEN_AGG.replace("QWEN3_32B", "nvidia/Qwen3-32B-NVFP4"),
        Role::Agg,
    );
    assert!(
        o.gemm.starts_with("downgraded from nvfp4 (checkpoint)"),
        "{}",
        o.gemm
    );
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("quantization downgraded from nvfp4 (checkpoint)")),
        "{notes:?}"
    );
}
