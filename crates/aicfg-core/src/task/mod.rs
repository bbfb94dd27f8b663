//! Experiment definitions (the `cli exp` YAML): built-in defaults for the model, systems,
//! backend and serving mode → profiles in order → the user's `config` (patch = deep merge,
//! replace = section replaces section). The result is a fully resolved, serializable
//! [`Experiment`] that turns into a [`SearchRequest`] and writes back as a re-runnable YAML.
mod from_search;
pub mod schema;
mod study;

pub use from_search::study_yaml;
pub use study::{search_all, Failed, Outcome, Study};

use crate::backend::Backend;
pub use crate::error::ExpError;

use crate::error::{AicfgError, Result};
use crate::estimate::{resolve_quant, resolve_quant_explained, QuantOrigin, QuantRequest};
use crate::hardware::{SystemRegistry, SystemSpec};
use crate::limits::{self, SearchLimits};
use crate::model::{ModelRegistry, ModelSpec};
use crate::perf::DatabaseMode;
use crate::quant::{CommQuant, FmhaQuant, GemmQuant, KvQuant, MoeQuant, QuantConfig};
use crate::search::{
    ParallelSpace, RankBy, ReplicaConfig, Role, SearchRequest, SlaPercentile, Tuning,
};
use crate::serve::{mtp, ServeMode, Workload};
use schema::{Reader, *};
use serde::Serialize;
use serde_norway::{Mapping, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerMode {
    Patch,
    Replace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServingMode {
    Agg,
    Disagg,
}

/// Quantization and parallel lists of one worker kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerConfig {
    pub gemm_quant_mode: GemmQuant,
    pub moe_quant_mode: MoeQuant,
    pub kvcache_quant_mode: KvQuant,
    pub fmha_quant_mode: FmhaQuant,
    pub comm_quant_mode: CommQuant,
    #[serde(flatten)]
    pub parallel: ParallelSpace,
    /// Where each format came from, in the experiment's words (filled when the file is read).
    #[serde(skip)]
    pub quant_origin: QuantLabels,
}

/// Where each of a worker's formats came from in an experiment file: its key
/// (`worker_config.gemm_quant_mode`), a profile (`profile fp8_default`), or the rule that picks
/// it when neither does (`checkpoint`, `default`, ...), with any hardware downgrade. Shown in the
/// worker setup instead of the command-line flags an experiment never had. Presentation only:
/// experiments that run the same formats are equal whatever named them.
#[derive(Debug, Clone, Default)]
pub struct QuantLabels(pub Option<QuantOrigin>);

impl PartialEq for QuantLabels {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl WorkerConfig {
    pub fn quant_request(&self) -> QuantRequest {
        QuantRequest {
            gemm: Some(self.gemm_quant_mode),
            moe: Some(self.moe_quant_mode),
            kvcache: Some(self.kvcache_quant_mode),
            fmha: Some(self.fmha_quant_mode),
            comm: Some(self.comm_quant_mode),
        }
    }
}

/// Corrections and batch caps. Latency scales multiply latency; throughput scales multiply
/// throughput (so they divide latency); both may be given and then multiply.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdvancedTuning {
    pub prefill_latency_correction_scale: f64,
    pub decode_latency_correction_scale: f64,
    pub prefill_correction_scale: f64,
    pub decode_correction_scale: f64,
    /// Disagg only: requests per prefill batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill_max_batch_size: Option<u32>,
    /// Decode batch cap (agg: the worker's batch cap).
    pub decode_max_batch_size: u32,
    /// KV-cache share of free GPU memory; absent = the backend's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub free_gpu_memory_fraction: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpConfig {
    pub nextn: u32,
    pub nextn_accept_rates: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_config: Option<WorkerConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill_worker_config: Option<WorkerConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_worker_config: Option<WorkerConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_config: Option<ReplicaConfig>,
    pub advanced_tuning_config: AdvancedTuning,
}

/// One fully resolved experiment: every default filled in, profiles and user config applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Experiment {
    #[serde(skip)]
    pub name: String,
    pub mode: LayerMode,
    pub serving_mode: ServingMode,
    pub model_name: String,
    pub total_gpus: u32,
    pub system_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_system_name: Option<String>,
    pub backend_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_version: Option<String>,
    /// Performance source: `empirical` (calibrated) or `sol` (roofline bound).
    #[serde(serialize_with = "ser_database_mode")]
    pub database_mode: DatabaseMode,
    pub isl: u32,
    pub osl: u32,
    /// Cached prefix tokens of each prompt (< isl).
    pub prefix: u32,
    pub ttft: f64,
    pub tpot: f64,
    pub enable_wide_ep: bool,
    /// Price of a GPU-hour (US dollars) for every system, over the system files' own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_cost_per_hour: Option<f64>,
    /// Order of the top tables and choice of the best: throughput or cost.
    #[serde(skip_serializing_if = "RankBy::is_throughput")]
    pub rank_by: RankBy,
    /// What `ttft` and `tpot` bound: the closed-form means, or a simulated percentile.
    #[serde(skip_serializing_if = "SlaPercentile::is_mean")]
    pub sla_percentile: SlaPercentile,
    pub profiles: Vec<String>,
    pub config: ExpConfig,
}

fn ser_database_mode<S: serde::Serializer>(
    m: &DatabaseMode,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(m.name())
}

/// Named presets that set the quantization of every worker.
pub const PROFILES: &[&str] = &[
    "fp8_default",
    "fp8_block_default",
    "float16_default",
    "nvfp4_default",
];

fn profile_quant(name: &str) -> Option<[(&'static str, &'static str); 5]> {
    let q = |g, m, k, f| {
        [
            ("gemm_quant_mode", g),
            ("moe_quant_mode", m),
            ("kvcache_quant_mode", k),
            ("fmha_quant_mode", f),
            ("comm_quant_mode", "half"),
        ]
    };
    Some(match name {
        // Per-tensor FP8 weights and activations, FP8 KV cache.
        "fp8_default" => q("fp8", "fp8", "fp8", "bfloat16"),
        "fp8_block_default" => q("fp8_block", "fp8_block", "fp8", "bfloat16"),
        "float16_default" => q("bfloat16", "bfloat16", "bfloat16", "bfloat16"),
        "nvfp4_default" => q("nvfp4", "nvfp4", "fp8", "bfloat16"),
        _ => return None,
    })
}

/// Defaults of `cli exp`, the same as `cli default`'s.
pub const DEFAULT_ISL: u32 = crate::search::DEFAULT_ISL;
pub const DEFAULT_OSL: u32 = crate::search::DEFAULT_OSL;
pub const DEFAULT_TTFT_MS: f64 = crate::search::DEFAULT_TTFT_MS;
pub const DEFAULT_TPOT_MS: f64 = crate::search::DEFAULT_TPOT_MS;

/// Parse an experiment file and resolve every experiment it runs (`exps` order, else file order).
pub fn parse_experiments(
    text: &str,
    models: &ModelRegistry,
    systems: &SystemRegistry,
) -> Result<Vec<Experiment>> {
    parse_experiments_with(text, models, systems, &SearchLimits::default())
}

/// As [`parse_experiments`], checking the parallel lists against `limits`.
pub fn parse_experiments_with(
    text: &str,
    models: &ModelRegistry,
    systems: &SystemRegistry,
    limits: &SearchLimits,
) -> Result<Vec<Experiment>> {
    Ok(parse_inner(text, models, systems, limits)?)
}

fn parse_inner(
    text: &str,
    models: &ModelRegistry,
    systems: &SystemRegistry,
    limits: &SearchLimits,
) -> std::result::Result<Vec<Experiment>, ExpError> {
    if text.trim().is_empty() {
        return Err(ExpError::file(
            "the file is empty; define at least one experiment (see examples/)",
        ));
    }
    // Before the parser: its cost grows with the square of the nesting depth.
    limits::check_yaml_depth(text, limits::MAX_YAML_DEPTH)
        .map_err(|e| ExpError::file(format!("invalid YAML: {e}")))?;
    let mut doc: Value = serde_norway::from_str(text).map_err(|e| {
        let loc = e.location();
        let mut msg = e.to_string();
        // The location goes in front; drop serde's own copy of it.
        if let Some(i) = msg.find(" at line ") {
            msg.truncate(i);
        }
        ExpError {
            line: loc.as_ref().map(|l| l.line()),
            column: loc.as_ref().map(|l| l.column()),
            ..ExpError::file(format!("invalid YAML: {msg}"))
        }
    })?;
    doc.apply_merge()
        .map_err(|e| ExpError::file(format!("invalid YAML merge key: {e}")))?;
    let top = match &doc {
        Value::Mapping(m) => m,
        Value::Null => {
            return Err(ExpError::file(
                "the file is empty; define at least one experiment (see examples/)",
            ))
        }
        v => {
            return Err(ExpError::file(format!(
                "expected a mapping of experiment names to experiments, got {}",
                describe(v)
            )))
        }
    };
    let mut defined: Vec<(&str, &Value)> = Vec::new();
    for (k, v) in top {
        match k.as_str() {
            Some("exps") => {}
            Some(name) => defined.push((name, v)),
            None => {
                return Err(ExpError::file(format!(
                    "experiment names must be strings, got {}",
                    describe(k)
                )))
            }
        }
    }
    if defined.is_empty() {
        return Err(ExpError::file(
            "no experiment is defined; add a mapping such as `my_exp: {mode: patch, serving_mode: agg, ...}`",
        ));
    }
    if defined.len() > limits::MAX_EXPERIMENTS {
        return Err(ExpError::file(format!(
            "the file defines {} experiments, more than the {} one run takes; split it",
            defined.len(),
            limits::MAX_EXPERIMENTS
        )));
    }
    let names: Vec<&str> = defined.iter().map(|(n, _)| *n).collect();
    let order: Vec<String> = match top.get("exps") {
        None | Some(Value::Null) => names.iter().map(|s| s.to_string()).collect(),
        Some(Value::Sequence(items)) => {
            let mut out = Vec::new();
            for (i, v) in items.iter().enumerate() {
                let Some(n) = v.as_str() else {
                    return Err(ExpError::file(format!(
                        "exps[{i}]: expected an experiment name, got {}",
                        describe(v)
                    )));
                };
                if !names.contains(&n) {
                    let hint = closest(n, &names)
                        .map(|s| format!("did you mean '{s}'? "))
                        .unwrap_or_default();
                    return Err(ExpError::file(format!(
                        "exps[{i}] names experiment '{n}', which the file does not define; {hint}defined: {}",
                        names.join(", ")
                    )));
                }
                if out.iter().any(|o| o == n) {
                    return Err(ExpError::file(format!(
                        "exps[{i}] lists experiment '{n}' twice"
                    )));
                }
                out.push(n.to_string());
            }
            if out.is_empty() {
                return Err(ExpError::file(
                    "exps is an empty list; name at least one experiment, or drop exps to run all",
                ));
            }
            out
        }
        Some(v) => {
            return Err(ExpError::file(format!(
                "exps: expected a list of experiment names, got {}",
                describe(v)
            )))
        }
    };
    order
        .iter()
        .map(|name| {
            let v = defined
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| *v)
                .expect("names come from the defined list");
            resolve_one(name, v, models, systems, limits)
        })
        .collect()
}

struct Ctx<'a> {
    name: &'a str,
    model: ModelSpec,
    system: SystemSpec,
    decode_system: SystemSpec,
    backend: Backend,
    serving: ServingMode,
    total_gpus: u32,
    wide_ep: bool,
}

fn resolve_one(
    name: &str,
    v: &Value,
    models: &ModelRegistry,
    systems: &SystemRegistry,
    limits: &SearchLimits,
) -> std::result::Result<Experiment, ExpError> {
    let Value::Mapping(m) = v else {
        return Err(ExpError::exp(
            name,
            format!("expected a mapping of keys, got {}", describe(v)),
        ));
    };
    // `enable_wideep` is the spelling of the original tool's tuning guide.
    let renamed;
    let m = match m.get("enable_wideep") {
        Some(v) => {
            if m.contains_key("enable_wide_ep") {
                return Err(ExpError::at(
                    name,
                    "enable_wideep",
                    "give either enable_wide_ep or its alias enable_wideep, not both",
                ));
            }
            let mut c = m.clone();
            c.remove("enable_wideep");
            c.insert(Value::from("enable_wide_ep"), v.clone());
            renamed = c;
            &renamed
        }
        None => m,
    };
    let r = Reader::new(name, "", m);
    r.check_keys(TOP_KEYS, &[], "")?;
    let mode = match r.req_string("mode")?.as_str() {
        "patch" => LayerMode::Patch,
        "replace" => LayerMode::Replace,
        other => {
            return Err(r.err(
                "mode",
                format!("unknown mode '{other}'; known: patch, replace"),
            ))
        }
    };
    let serving = match r.req_string("serving_mode")?.as_str() {
        "agg" => ServingMode::Agg,
        "disagg" => ServingMode::Disagg,
        other => {
            return Err(r.err(
                "serving_mode",
                format!("unknown serving_mode '{other}'; known: agg, disagg"),
            ))
        }
    };
    let model_name = r.req_string("model_name")?;
    let model = models
        .resolve(&model_name)
        .map_err(|e| r.err("model_name", e.to_string()))?;
    let total_gpus = r
        .uint_max("total_gpus", 1, limits::MAX_TOTAL_GPUS)?
        .ok_or_else(|| r.err("total_gpus", "required key is missing"))?;
    let system_name = r.req_string("system_name")?;
    let system = systems
        .get(&system_name)
        .map_err(|e| r.err("system_name", e.to_string()))?
        .clone();
    let decode_system_name = r.string("decode_system_name")?;
    if serving == ServingMode::Agg && decode_system_name.is_some() {
        return Err(r.err(
            "decode_system_name",
            "applies to serving_mode disagg only (agg workers run on system_name)",
        ));
    }
    let decode_system = match &decode_system_name {
        Some(s) => systems
            .get(s)
            .map_err(|e| r.err("decode_system_name", e.to_string()))?
            .clone(),
        None => system.clone(),
    };
    let backend_name = r.string("backend_name")?.unwrap_or_else(|| "trtllm".into());
    let backend =
        Backend::parse(&backend_name).map_err(|e| r.err("backend_name", e.to_string()))?;
    let profiles = r.string_list("profiles")?.unwrap_or_default();
    for (i, p) in profiles.iter().enumerate() {
        if profile_quant(p).is_none() {
            let hint = closest(p, PROFILES)
                .map(|s| format!("did you mean '{s}'? "))
                .unwrap_or_default();
            return Err(r.err(
                &format!("profiles[{i}]"),
                format!(
                    "unknown profile '{p}'; {hint}known: {}",
                    PROFILES.join(", ")
                ),
            ));
        }
    }
    let ctx = Ctx {
        name,
        model,
        decode_system: if serving == ServingMode::Disagg {
            decode_system
        } else {
            system.clone()
        },
        system,
        backend,
        serving,
        total_gpus,
        wide_ep: r.bool("enable_wide_ep")?.unwrap_or(false),
    };

    // Check the user's keys before layering, so a typo is reported as written.
    let user_config = r.mapping("config")?;
    if let Some(c) = user_config {
        check_config_keys(name, serving, c)?;
    }
    let defaults = default_config(&ctx).map_err(|e| ExpError::exp(name, e.to_string()))?;
    let mut tree = serde_norway::to_value(&defaults)
        .map_err(|e| ExpError::exp(name, format!("internal: defaults do not serialize: {e}")))?;
    for p in &profiles {
        apply_profile(&mut tree, p);
    }
    if let Some(c) = user_config {
        let patch = Value::Mapping(c.clone());
        match mode {
            LayerMode::Patch => deep_merge(&mut tree, &patch),
            LayerMode::Replace => replace_sections(&mut tree, &patch),
        }
    }
    let Value::Mapping(merged) = &tree else {
        return Err(ExpError::exp(name, "internal: config is not a mapping"));
    };
    let config = read_config(&ctx, merged)?;
    let isl = r
        .uint_max("isl", 1, limits::MAX_TOKENS)?
        .unwrap_or(DEFAULT_ISL);
    let prefix = r.uint_max("prefix", 0, limits::MAX_TOKENS)?.unwrap_or(0);
    if prefix >= isl {
        return Err(r.err(
            "prefix",
            format!("cached prefix tokens must be fewer than isl ({isl}), got {prefix}"),
        ));
    }
    let database_mode = match r.string("database_mode")? {
        Some(s) => DatabaseMode::parse(&s).map_err(|e| r.err("database_mode", e.to_string()))?,
        // As on the command line: hybrid when a measured database is installed, else empirical.
        None => DatabaseMode::Auto,
    };
    let gpu_cost_per_hour = match r.get("gpu_cost_per_hour") {
        None => None,
        Some(v) => {
            let Some(x) = v.as_f64() else {
                return Err(r.err(
                    "gpu_cost_per_hour",
                    format!("expected a number of dollars, got {}", describe(v)),
                ));
            };
            crate::cost::check_price(Some(x))
                .map_err(|e| r.err("gpu_cost_per_hour", e.to_string()))?;
            Some(x)
        }
    };
    let rank_by = match r.string("rank_by")? {
        Some(s) => RankBy::parse(&s).map_err(|e| r.err("rank_by", e.to_string()))?,
        None => RankBy::Throughput,
    };
    let sla_percentile = match r.string("sla_percentile")? {
        Some(s) => SlaPercentile::parse(&s).map_err(|e| r.err("sla_percentile", e.to_string()))?,
        None => SlaPercentile::Mean,
    };
    let mut exp = Experiment {
        name: name.to_string(),
        mode,
        serving_mode: serving,
        model_name,
        total_gpus,
        system_name,
        decode_system_name: match serving {
            ServingMode::Disagg => Some(ctx.decode_system.name.clone()),
            ServingMode::Agg => None,
        },
        backend_name: backend.name().to_string(),
        backend_version: r.string("backend_version")?,
        database_mode,
        isl,
        osl: r
            .uint_max("osl", 1, limits::MAX_TOKENS)?
            .unwrap_or(DEFAULT_OSL),
        prefix,
        ttft: r.positive("ttft")?.unwrap_or(DEFAULT_TTFT_MS),
        tpot: r.positive("tpot")?.unwrap_or(DEFAULT_TPOT_MS),
        enable_wide_ep: ctx.wide_ep,
        gpu_cost_per_hour,
        rank_by,
        sla_percentile,
        profiles,
        config,
    };
    validate(&ctx, &mut exp, user_config, limits)?;
    Ok(exp)
}

fn check_config_keys(
    name: &str,
    serving: ServingMode,
    c: &Mapping,
) -> std::result::Result<(), ExpError> {
    let (known, other, tuning, tuning_other, mode) = match serving {
        ServingMode::Agg => (
            CONFIG_AGG_KEYS,
            CONFIG_DISAGG_KEYS,
            TUNING_AGG_KEYS,
            TUNING_DISAGG_KEYS,
            "agg",
        ),
        ServingMode::Disagg => (
            CONFIG_DISAGG_KEYS,
            CONFIG_AGG_KEYS,
            TUNING_DISAGG_KEYS,
            TUNING_AGG_KEYS,
            "disagg",
        ),
    };
    let r = Reader::new(name, "config", c);
    r.check_keys(known, other, mode)?;
    for w in [
        "worker_config",
        "prefill_worker_config",
        "decode_worker_config",
    ] {
        if let Some(c) = r.child(w)? {
            c.check_keys(WORKER_KEYS, &[], mode)?;
        }
    }
    if let Some(c) = r.child("replica_config")? {
        c.check_keys(REPLICA_KEYS, &[], mode)?;
    }
    if let Some(c) = r.child("advanced_tuning_config")? {
        c.check_keys(tuning, tuning_other, mode)?;
    }
    Ok(())
}

fn default_worker(ctx: &Ctx, role: Role) -> Result<WorkerConfig> {
    let sys = if role == Role::Decode {
        &ctx.decode_system
    } else {
        &ctx.system
    };
    let q: QuantConfig = resolve_quant(&ctx.model, sys, &QuantRequest::default(), ctx.backend)?;
    Ok(WorkerConfig {
        gemm_quant_mode: q.gemm,
        moe_quant_mode: q.moe,
        kvcache_quant_mode: q.kvcache,
        fmha_quant_mode: q.fmha,
        comm_quant_mode: q.comm,
        parallel: ParallelSpace::defaults(&ctx.model, sys, ctx.backend, role, ctx.wide_ep),
        quant_origin: QuantLabels::default(),
    })
}

/// Built-in defaults for this model, system(s), backend and serving mode.
fn default_config(ctx: &Ctx) -> Result<ExpConfig> {
    let t = Tuning::default();
    let disagg = ctx.serving == ServingMode::Disagg;
    Ok(ExpConfig {
        nextn: 0,
        nextn_accept_rates: mtp::DEFAULT_ACCEPT_RATES.to_vec(),
        worker_config: (!disagg)
            .then(|| default_worker(ctx, Role::Agg))
            .transpose()?,
        prefill_worker_config: disagg
            .then(|| default_worker(ctx, Role::Prefill))
            .transpose()?,
        decode_worker_config: disagg
            .then(|| default_worker(ctx, Role::Decode))
            .transpose()?,
        replica_config: disagg.then(|| ReplicaConfig::defaults(ctx.wide_ep)),
        advanced_tuning_config: AdvancedTuning {
            prefill_latency_correction_scale: 1.0,
            decode_latency_correction_scale: 1.0,
            prefill_correction_scale: 1.0,
            decode_correction_scale: 1.0,
            prefill_max_batch_size: disagg.then_some(t.prefill_max_batch_size),
            decode_max_batch_size: if disagg {
                t.decode_max_batch_size
            } else {
                t.agg_max_batch_size
            },
            free_gpu_memory_fraction: None,
        },
    })
}

fn apply_profile(tree: &mut Value, profile: &str) {
    let Some(q) = profile_quant(profile) else {
        return;
    };
    let Value::Mapping(cfg) = tree else { return };
    for w in [
        "worker_config",
        "prefill_worker_config",
        "decode_worker_config",
    ] {
        if let Some(Value::Mapping(wm)) = cfg.get_mut(w) {
            for (k, v) in q {
                wm.insert(Value::from(k), Value::from(v));
            }
        }
    }
}

fn read_worker(r: &Reader, key: &str) -> std::result::Result<WorkerConfig, ExpError> {
    let w = r
        .child(key)?
        .ok_or_else(|| r.err(key, "required section is missing"))?;
    let quant = |k: &str| w.string(k)?.ok_or_else(|| w.err(k, MISSING));
    let list = |k: &str| {
        let v = w.uint_list(k)?.ok_or_else(|| w.err(k, MISSING))?;
        if v.is_empty() {
            return Err(w.err(k, "the list is empty; give at least one value"));
        }
        Ok(v)
    };
    let parse = |k: &str, e: AicfgError| w.err(k, e.to_string());
    Ok(WorkerConfig {
        gemm_quant_mode: GemmQuant::parse(&quant("gemm_quant_mode")?)
            .map_err(|e| parse("gemm_quant_mode", e))?,
        moe_quant_mode: MoeQuant::parse(&quant("moe_quant_mode")?)
            .map_err(|e| parse("moe_quant_mode", e))?,
        kvcache_quant_mode: KvQuant::parse(&quant("kvcache_quant_mode")?)
            .map_err(|e| parse("kvcache_quant_mode", e))?,
        fmha_quant_mode: FmhaQuant::parse(&quant("fmha_quant_mode")?)
            .map_err(|e| parse("fmha_quant_mode", e))?,
        comm_quant_mode: CommQuant::parse(&quant("comm_quant_mode")?)
            .map_err(|e| parse("comm_quant_mode", e))?,
        parallel: ParallelSpace {
            num_gpu_per_worker: list("num_gpu_per_worker")?,
            tp_list: list("tp_list")?,
            pp_list: list("pp_list")?,
            dp_list: list("dp_list")?,
            moe_tp_list: list("moe_tp_list")?,
            moe_ep_list: list("moe_ep_list")?,
        },
        quant_origin: QuantLabels::default(),
    })
}

const MISSING: &str =
    "required key is missing (mode: replace needs every key of a section it gives)";

fn read_config(ctx: &Ctx, m: &Mapping) -> std::result::Result<ExpConfig, ExpError> {
    let r = Reader::new(ctx.name, "config", m);
    let disagg = ctx.serving == ServingMode::Disagg;
    let nextn = r.uint("nextn", 0)?.unwrap_or(0);
    if nextn > mtp::MAX_NEXTN {
        return Err(r.err(
            "nextn",
            format!(
                "must be at most {} draft tokens, got {nextn}",
                mtp::MAX_NEXTN
            ),
        ));
    }
    let nextn_accept_rates = r
        .rate_list("nextn_accept_rates")?
        .unwrap_or_else(|| mtp::DEFAULT_ACCEPT_RATES.to_vec());
    let replica_config = if disagg {
        let c = r
            .child("replica_config")?
            .ok_or_else(|| r.err("replica_config", "required section is missing"))?;
        Some(ReplicaConfig {
            num_gpu_per_replica: c
                .uint_list("num_gpu_per_replica")?
                .ok_or_else(|| c.err("num_gpu_per_replica", MISSING))?,
            max_gpu_per_replica: c
                .uint_max("max_gpu_per_replica", 0, limits::MAX_PARALLEL)?
                .ok_or_else(|| c.err("max_gpu_per_replica", MISSING))?,
            max_prefill_worker: c
                .uint_max("max_prefill_worker", 1, limits::MAX_WORKERS_PER_REPLICA)?
                .ok_or_else(|| c.err("max_prefill_worker", MISSING))?,
            max_decode_worker: c
                .uint_max("max_decode_worker", 1, limits::MAX_WORKERS_PER_REPLICA)?
                .ok_or_else(|| c.err("max_decode_worker", MISSING))?,
        })
    } else {
        None
    };
    let t = r
        .child("advanced_tuning_config")?
        .ok_or_else(|| r.err("advanced_tuning_config", "required section is missing"))?;
    let scale = |k: &str| t.positive(k).map(|v| v.unwrap_or(1.0));
    let advanced_tuning_config = AdvancedTuning {
        prefill_latency_correction_scale: scale("prefill_latency_correction_scale")?,
        decode_latency_correction_scale: scale("decode_latency_correction_scale")?,
        prefill_correction_scale: scale("prefill_correction_scale")?,
        decode_correction_scale: scale("decode_correction_scale")?,
        prefill_max_batch_size: if disagg {
            Some(
                t.uint_max("prefill_max_batch_size", 1, limits::MAX_PREFILL_BATCH)?
                    .ok_or_else(|| t.err("prefill_max_batch_size", MISSING))?,
            )
        } else {
            None
        },
        decode_max_batch_size: t
            .uint_max("decode_max_batch_size", 1, limits::MAX_BATCH)?
            .ok_or_else(|| t.err("decode_max_batch_size", MISSING))?,
        free_gpu_memory_fraction: match t.positive("free_gpu_memory_fraction")? {
            Some(f) if f > 1.0 => {
                return Err(t.err(
                    "free_gpu_memory_fraction",
                    format!("must be in (0, 1], got {f}"),
                ))
            }
            f => f,
        },
    };
    Ok(ExpConfig {
        nextn,
        nextn_accept_rates,
        worker_config: (!disagg)
            .then(|| read_worker(&r, "worker_config"))
            .transpose()?,
        prefill_worker_config: disagg
            .then(|| read_worker(&r, "prefill_worker_config"))
            .transpose()?,
        decode_worker_config: disagg
            .then(|| read_worker(&r, "decode_worker_config"))
            .transpose()?,
        replica_config,
        advanced_tuning_config,
    })
}

/// Checks that need the model and hardware: quantization runs on the system, and every worker
/// list yields at least one parallel layout (else say why). The quantization recorded is the
/// one that runs (NVFP4 without FP4 tensor cores runs weight-only).
fn validate(
    ctx: &Ctx,
    exp: &mut Experiment,
    user_config: Option<&Mapping>,
    limits: &SearchLimits,
) -> std::result::Result<(), ExpError> {
    let profiles = exp.profiles.clone();
    let c = &mut exp.config;
    if let Some(r) = &mut c.replica_config {
        r.num_gpu_per_replica =
            limits::normalize_list("num_gpu_per_replica", &r.num_gpu_per_replica, limits).map_err(
                |e| {
                    ExpError::at(
                        ctx.name,
                        "config.replica_config.num_gpu_per_replica",
                        e.to_string(),
                    )
                },
            )?;
    }
    let workers = [
        (
            "config.worker_config",
            &mut c.worker_config,
            &ctx.system,
            Role::Agg,
        ),
        (
            "config.prefill_worker_config",
            &mut c.prefill_worker_config,
            &ctx.system,
            Role::Prefill,
        ),
        (
            "config.decode_worker_config",
            &mut c.decode_worker_config,
            &ctx.decode_system,
            Role::Decode,
        ),
    ];
    for (path, w, sys, role) in workers {
        let Some(w) = w else { continue };
        // Duplicates dropped and sizes capped before anything enumerates the lists.
        w.parallel = w
            .parallel
            .normalized(role, limits)
            .map_err(|e| ExpError::at(ctx.name, path, e.to_string()))?;
        let (q, asked) = resolve_quant_explained(&ctx.model, sys, &w.quant_request(), ctx.backend)
            .map_err(|e| {
                ExpError::at(
                    ctx.name,
                    path,
                    format!("{e} (check the quant modes or the profiles)"),
                )
            })?;
        let section = path.trim_start_matches("config.");
        let user = user_config
            .and_then(|m| m.get(section))
            .and_then(Value::as_mapping);
        w.quant_origin = QuantLabels(Some(quant_labels(
            ctx, sys, section, user, &profiles, &asked,
        )));
        w.gemm_quant_mode = q.gemm;
        w.moe_quant_mode = q.moe;
        w.kvcache_quant_mode = q.kvcache;
        w.fmha_quant_mode = q.fmha;
        w.comm_quant_mode = q.comm;
        if w.parallel
            .enumerate(&ctx.model, ctx.backend, ctx.total_gpus)
            .is_empty()
        {
            return Err(ExpError::at(
                ctx.name,
                path,
                format!(
                    "the parallel lists give no valid layout for {} with {} on {} GPUs: {}",
                    ctx.model.name,
                    ctx.backend.name(),
                    ctx.total_gpus,
                    explain_empty(&w.parallel, &ctx.model, ctx.backend, ctx.total_gpus)
                ),
            ));
        }
    }
    Ok(())
}

/// The origin of each format of one worker in the experiment's words. `asked` is the origin
/// [`resolve_quant_explained`] gave for the worker's (all explicit) formats: each flag name in it
/// becomes the key, profile or rule that set that format, keeping any downgrade it records.
fn quant_labels(
    ctx: &Ctx,
    sys: &SystemSpec,
    section: &str,
    user: Option<&Mapping>,
    profiles: &[String],
    asked: &QuantOrigin,
) -> QuantOrigin {
    // What the built-in defaults say when neither the file nor a profile sets a format.
    let rule = resolve_quant_explained(&ctx.model, sys, &QuantRequest::default(), ctx.backend)
        .map(|(_, o)| o)
        .ok();
    let label = |part: &str, key: &str, asked: &str, rule: Option<&String>| -> String {
        let source = if user.is_some_and(|m| m.contains_key(key)) {
            format!("{section}.{key}")
        } else if let Some(p) = profiles.iter().rev().find(|p| profile_quant(p).is_some()) {
            format!("profile {p}")
        } else {
            rule.cloned().unwrap_or_else(|| "default".into())
        };
        asked.replace(&format!("--{part}-quant-mode"), &source)
    };
    let r = rule.as_ref();
    QuantOrigin {
        gemm: label("gemm", "gemm_quant_mode", &asked.gemm, r.map(|o| &o.gemm)),
        moe: label("moe", "moe_quant_mode", &asked.moe, r.map(|o| &o.moe)),
        kvcache: label(
            "kvcache",
            "kvcache_quant_mode",
            &asked.kvcache,
            r.map(|o| &o.kvcache),
        ),
        fmha: label("fmha", "fmha_quant_mode", &asked.fmha, r.map(|o| &o.fmha)),
        comm: label("comm", "comm_quant_mode", &asked.comm, r.map(|o| &o.comm)),
    }
}

/// Why no combination of the lists survives: each reason with how many combinations it removed.
pub fn explain_empty(
    s: &ParallelSpace,
    model: &ModelSpec,
    backend: Backend,
    max_gpus: u32,
) -> String {
    let moe = model.family.is_moe();
    let experts = model.moe.as_ref().map_or(1, |m| m.num_experts);
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let dps: &[u32] = if moe { &s.dp_list } else { &[1] };
    let (etps, eps): (&[u32], &[u32]) = if moe {
        (&s.moe_tp_list, &s.moe_ep_list)
    } else {
        (&[1], &[1])
    };
    for &tp in &s.tp_list {
        for &pp in &s.pp_list {
            for &dp in dps {
                for &etp in etps {
                    for &ep in eps {
                        let g = u64::from(tp) * u64::from(pp) * u64::from(dp);
                        let why = if !model.num_heads.is_multiple_of(u64::from(tp)) {
                            format!(
                                "tp {tp} does not divide the {} attention heads",
                                model.num_heads
                            )
                        } else if pp > model.num_layers {
                            format!("pp {pp} exceeds the {} layers", model.num_layers)
                        } else if !s.num_gpu_per_worker.iter().any(|&n| u64::from(n) == g) {
                            format!(
                                "tp×pp×dp = {g} is not in num_gpu_per_worker {:?}",
                                s.num_gpu_per_worker
                            )
                        } else if g > u64::from(max_gpus) {
                            format!("a {g}-GPU worker exceeds total_gpus {max_gpus}")
                        } else if moe && u64::from(etp) * u64::from(ep) != u64::from(tp * dp) {
                            "moe_tp×moe_ep must equal tp×dp".to_string()
                        } else if moe && !experts.is_multiple_of(ep) {
                            format!("moe_ep {ep} does not divide the {experts} experts")
                        } else if backend == Backend::Trtllm && dp > 1 && tp > 1 {
                            "trtllm runs attention with tp or dp, not both".to_string()
                        } else if backend == Backend::Vllm && etp > 1 && ep > 1 {
                            "vllm shards experts with moe_tp or moe_ep, not both".to_string()
                        } else {
                            continue;
                        };
                        *reasons.entry(why).or_default() += 1;
                    }
                }
            }
        }
    }
    if reasons.is_empty() {
        return "a list is empty".into();
    }
    let mut v: Vec<(String, usize)> = reasons.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.iter()
        .map(|(why, n)| format!("{why} ({n} combination{})", if *n == 1 { "" } else { "s" }))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Experiment {
    pub fn serve_mode(&self) -> ServeMode {
        match self.serving_mode {
            ServingMode::Agg => ServeMode::Agg,
            ServingMode::Disagg => ServeMode::Disagg,
        }
    }

    /// Draft tokens accepted per step: the sum of the first `nextn` acceptance rates.
    pub fn nextn_accepted(&self) -> f64 {
        let c = &self.config;
        mtp::accepted_drafts(c.nextn, &c.nextn_accept_rates)
    }

    /// The search this experiment runs.
    pub fn search_request(
        &self,
        models: &ModelRegistry,
        systems: &SystemRegistry,
    ) -> Result<SearchRequest> {
        let wrap = |key: &str, e: AicfgError| {
            AicfgError::from(ExpError::at(&self.name, key, e.to_string()))
        };
        let model = models
            .resolve(&self.model_name)
            .map_err(|e| wrap("model_name", e))?;
        let system = systems
            .get(&self.system_name)
            .map_err(|e| wrap("system_name", e))?
            .clone();
        let decode_system = self
            .decode_system_name
            .as_deref()
            .map(|s| systems.get(s).cloned())
            .transpose()
            .map_err(|e| wrap("decode_system_name", e))?;
        let backend = Backend::parse(&self.backend_name).map_err(|e| wrap("backend_name", e))?;
        let workload = Workload {
            isl: f64::from(self.isl),
            osl: f64::from(self.osl),
            prefix: f64::from(self.prefix),
            nextn: self.config.nextn,
            nextn_accepted: self.nextn_accepted(),
        };
        let mut req = SearchRequest::new(model, system, backend, workload, Some(self.total_gpus));
        req.decode_system = decode_system;
        req.ttft_ms = self.ttft;
        req.tpot_ms = self.tpot;
        req.modes = vec![self.serve_mode()];
        req.enable_wide_ep = self.enable_wide_ep;
        req.gpu_cost_per_hour = self.gpu_cost_per_hour;
        req.rank_by = self.rank_by;
        req.sla_percentile = self.sla_percentile;
        req.database_mode = self.database_mode;
        // The version only picks measured tables; naming one must not demand a database.
        if matches!(
            self.database_mode,
            DatabaseMode::Silicon | DatabaseMode::Hybrid
        ) {
            req.backend_version = self.backend_version.clone();
        }
        req.free_gpu_memory_fraction = self.config.advanced_tuning_config.free_gpu_memory_fraction;
        let c = &self.config;
        if let Some(w) = &c.worker_config {
            req.agg_quant = w.quant_request();
            req.agg_space = Some(w.parallel.clone());
        }
        if let Some(w) = &c.prefill_worker_config {
            req.prefill_quant = w.quant_request();
            req.prefill_space = Some(w.parallel.clone());
        }
        if let Some(w) = &c.decode_worker_config {
            req.decode_quant = w.quant_request();
            req.decode_space = Some(w.parallel.clone());
        }
        if let Some(r) = &c.replica_config {
            req.replica = r.clone();
        }
        let t = &c.advanced_tuning_config;
        let d = Tuning::default();
        req.tuning = Tuning {
            prefill_latency_scale: t.prefill_latency_correction_scale / t.prefill_correction_scale,
            decode_latency_scale: t.decode_latency_correction_scale / t.decode_correction_scale,
            agg_max_batch_size: t.decode_max_batch_size,
            prefill_max_batch_size: t.prefill_max_batch_size.unwrap_or(d.prefill_max_batch_size),
            decode_max_batch_size: t.decode_max_batch_size,
        };
        Ok(req)
    }

    /// Puts the experiment's own words for where each format came from (its keys, profiles or
    /// the default rule) into a search result's worker setup, with a note for each format the
    /// hardware changed (the search itself only sees the formats that run).
    pub fn label_quant(&self, r: &mut crate::search::SearchResult) {
        let c = &self.config;
        for q in &mut r.quant {
            let w = match q.role {
                Role::Agg => &c.worker_config,
                Role::Prefill => &c.prefill_worker_config,
                Role::Decode => &c.decode_worker_config,
            };
            if let Some(QuantLabels(Some(o))) = w.as_ref().map(|w| &w.quant_origin) {
                q.origin = o.clone();
            }
        }
        let notes: Vec<String> = r
            .quant
            .iter()
            .flat_map(|q| q.origin.downgrades())
            .map(|d| format!("quantization {d}"))
            .collect();
        for n in notes {
            if !r.notes.contains(&n) {
                r.notes.push(n);
            }
        }
    }

    /// This experiment as a YAML file `cli exp` runs again unchanged (`name:` then every key).
    pub fn resolved_yaml(&self) -> String {
        let mut top = Mapping::new();
        top.insert(
            Value::from(self.name.as_str()),
            serde_norway::to_value(self).expect("experiment serializes"),
        );
        serde_norway::to_string(&top).expect("experiment serializes")
    }
}
