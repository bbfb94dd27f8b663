//! Deployment artifacts from a search result (docs/model.md §10): TRT-LLM engine YAMLs, vLLM and
//! SGLang server flags, Dynamo `DynamoGraphDeployment` manifests, per-node run scripts,
//! benchmark scripts, CSV tables, the resolved experiment and the Pareto chart.
//!
//! [`build`] returns the whole output tree as relative paths and bytes; writing it is the
//! caller's job, so everything here is pure and deterministic.
pub mod engine;
mod error;
mod exp;
pub mod genconfig;
mod notes;
pub mod plot;
pub mod render;
pub mod table;
pub mod validate;
pub mod versions;

pub use error::{GenError, Result};
pub use exp::experiment_yaml;
pub use genconfig::{generator_help, parse_sets, GeneratorConfig, KEYS};
pub use notes::file_notes;

use aicfg_core::search::{Candidate, SearchRequest, SearchResult};
use aicfg_core::ServeMode;

/// Folder of a mode (`agg`, `disagg`).
pub fn mode_dir(m: ServeMode) -> &'static str {
    match m {
        ServeMode::Disagg => "disagg",
        ServeMode::Static => "static",
        ServeMode::Agg => "agg",
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct SaveRequest<'a> {
    pub request: &'a SearchRequest,
    pub result: &'a SearchResult,
    /// `topN/` folders per mode.
    pub top_k: usize,
    /// `--generator-set` overrides, already checked by [`parse_sets`].
    pub sets: Vec<(String, String)>,
    /// `--generated_config_version`.
    pub generated_version: Option<String>,
    /// `--dynamo-version`.
    pub dynamo_version: Option<String>,
}

/// One output file, `path` relative to the result folder with `/` separators.
#[derive(Debug, Clone, PartialEq)]
pub struct OutFile {
    pub path: String,
    pub bytes: Vec<u8>,
}

fn num(v: f64) -> String {
    if v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// `<model>_<system>_<backend>_isl<I>_osl<O>_ttft<T>_tpot<P>`, safe as one path component.
pub fn folder_name(req: &SearchRequest) -> String {
    let backend = match req.backends.as_slice() {
        [b] => b.name(),
        _ => "auto",
    };
    let w = &req.workload;
    let raw = format!(
        "{}_{}_{}_isl{}_osl{}_ttft{}_tpot{}",
        req.model.name,
        req.system.name,
        backend,
        num(w.isl),
        num(w.osl),
        num(req.ttft_ms),
        num(req.tpot_ms)
    );
    safe_component(&raw)
}

/// `raw` as one path component: characters other than ASCII letters, digits, `.`, `_` and `-`
/// become `_`, leading dots go (no hidden or `..` folders); never empty.
pub fn safe_component(raw: &str) -> String {
    let s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_start_matches('.');
    if s.is_empty() {
        "_".to_string()
    } else {
        s.to_string()
    }
}

/// Generator inputs of one candidate with the overrides applied.
pub fn generator_config(s: &SaveRequest, c: &Candidate) -> Result<GeneratorConfig> {
    let req = s.request;
    let w = &req.workload;
    let decode_system = req.decode_system.as_ref().unwrap_or(&req.system);
    let ctx = genconfig::Context {
        model: req.model.name.clone(),
        is_moe: s.result.is_moe,
        isl: w.isl as u32,
        osl: w.osl as u32,
        prefix: w.prefix as u32,
        nextn: w.nextn,
        ttft: req.ttft_ms,
        tpot: req.tpot_ms,
        num_gpus_per_node: req.system.node.num_gpus_per_node,
        gpu_product: req.system.misc.k8s_gpu_product.clone().unwrap_or_default(),
        decode_num_gpus_per_node: decode_system.node.num_gpus_per_node,
        decode_gpu_product: decode_system
            .misc
            .k8s_gpu_product
            .clone()
            .unwrap_or_default(),
        gpu_vendor: req.system.gpu.vendor,
        decode_gpu_vendor: decode_system.gpu.vendor,
        multi_node_nvlink: req.system.nvlink_domain() > req.system.node.num_gpus_per_node,
        decode_multi_node_nvlink: decode_system.nvlink_domain()
            > decode_system.node.num_gpus_per_node,
        param_count: req.model.param_count(),
        generated_version: s.generated_version.clone(),
        dynamo_version: s.dynamo_version.clone(),
    };
    let mut g = GeneratorConfig::from_candidate(c, &ctx)?;
    g.bench.predictions = predictions(s.result, c, g.bench.estimated_concurrency);
    for (k, v) in &s.sets {
        g.set(k, v)?;
    }
    Ok(g)
}

/// The search's predictions for the concurrencies row `c`'s bench script runs: the row's
/// simulated percentiles at its own concurrency, when the search simulated it. Read from the
/// result, never computed here.
fn predictions(r: &SearchResult, c: &Candidate, estimated: u32) -> Vec<genconfig::BenchPrediction> {
    let label = c.layout_label();
    r.percentiles
        .iter()
        .filter(|p| {
            p.rank.is_some()
                && p.mode == c.mode
                && p.backend == c.backend
                && p.layout == label
                && p.concurrency == c.concurrency
        })
        .take(1)
        .map(|p| genconfig::BenchPrediction::of(p, estimated))
        .collect()
}

/// `percentiles.json`: the simulated rows of the report's percentile table.
fn percentiles_json(r: &SearchResult) -> Result<Vec<u8>> {
    fn round(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Number(n) if !n.is_i64() && !n.is_u64() => {
                if let Some(f) = n.as_f64() {
                    *v = serde_json::json!((f * 1000.0).round() / 1000.0);
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(round),
            serde_json::Value::Object(o) => o.values_mut().for_each(round),
            _ => {}
        }
    }
    let mut v = serde_json::json!({
        "sla_percentile": r.sla_percentile,
        "ttft_ms": r.ttft_ms,
        "tpot_ms": r.tpot_ms,
        "rows": r.percentiles,
    });
    round(&mut v);
    let mut text = serde_json::to_string_pretty(&v)
        .map_err(|e| GenError::Invalid(format!("percentiles.json: {e}")))?;
    text.push('\n');
    Ok(text.into_bytes())
}

/// The whole result tree, in a fixed order.
pub fn build(s: &SaveRequest) -> Result<Vec<OutFile>> {
    build_with(s, None)
}

/// The tree with one deployment folder only: row `rank` (1-based) of `mode`'s top list, kept as
/// `<mode>/top<rank>/` so it matches the full tree (the webapp's per-row download).
pub fn build_row(s: &SaveRequest, mode: ServeMode, rank: usize) -> Result<Vec<OutFile>> {
    let rows = s
        .result
        .modes
        .iter()
        .find(|m| m.mode == mode)
        .map_or(0, |m| m.top.len());
    if rank == 0 || rank > rows {
        return Err(GenError::Invalid(format!(
            "{} has {rows} top configurations; row {rank} does not exist",
            mode_dir(mode)
        )));
    }
    build_with(s, Some((mode, rank)))
}

fn build_with(s: &SaveRequest, only: Option<(ServeMode, usize)>) -> Result<Vec<OutFile>> {
    let req = s.request;
    let res = s.result;
    let mut out = Vec::new();
    let mut push = |path: String, text: Vec<u8>| out.push(OutFile { path, bytes: text });
    let series: Vec<plot::Series> = res
        .modes
        .iter()
        .filter(|m| !m.pareto.is_empty())
        .map(|m| plot::Series {
            label: mode_dir(m.mode).to_string(),
            points: m
                .pareto
                .iter()
                .map(|c| (c.tokens_per_s_per_user, c.tokens_per_s_per_gpu))
                .collect(),
            best: m
                .top
                .first()
                .map(|c| (c.tokens_per_s_per_user, c.tokens_per_s_per_gpu)),
        })
        .collect();
    let title = format!(
        "{} on {} ({}): isl {}, osl {}, TTFT ≤ {} ms, TPOT ≤ {} ms",
        req.model.name,
        req.system.name,
        req.backends
            .iter()
            .map(|b| b.name())
            .collect::<Vec<_>>()
            .join("/"),
        num(req.workload.isl),
        num(req.workload.osl),
        num(req.ttft_ms),
        num(req.tpot_ms)
    );
    push(
        "pareto_frontier.png".into(),
        plot::pareto_png(&title, &series, Some(1000.0 / req.tpot_ms))?,
    );
    push("percentiles.json".into(), percentiles_json(res)?);
    let ctx = table::RowContext {
        model: req.model.name.clone(),
        isl: req.workload.isl as u32,
        osl: req.workload.osl as u32,
        prefix: req.workload.prefix as u32,
    };
    for m in &res.modes {
        let dir = mode_dir(m.mode);
        push(
            format!("{dir}/best_config_topn.csv"),
            table::csv(m.mode, &m.top, &ctx)?.into_bytes(),
        );
        push(
            format!("{dir}/pareto.csv"),
            table::csv(m.mode, &m.pareto, &ctx)?.into_bytes(),
        );
        push(
            format!("{dir}/config.yaml"),
            experiment_yaml(req, res, m.mode)?.into_bytes(),
        );
        for (i, c) in m.top.iter().enumerate() {
            let wanted = match only {
                None => i < s.top_k,
                Some((mode, rank)) => mode == m.mode && i + 1 == rank,
            };
            if !wanted {
                continue;
            }
            let g = generator_config(s, c)?;
            for (path, text) in render::render(&g)? {
                push(format!("{dir}/top{}/{path}", i + 1), text.into_bytes());
            }
        }
    }
    Ok(out)
}
