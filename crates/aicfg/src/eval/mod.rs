//! `aicfg eval`: benchmark a deployment that a `--save_dir` result describes, at the
//! concurrencies its bench script names, and compare with the prediction; write the
//! measurements as calibration rows and the correction scales that would make them match.
//! `aicfg eval --config eval.yaml` (module `auto`) also deploys and tears down.
pub mod auto;

use crate::serve_bench::{self, Endpoint, Framework, Plan, Point, PromptKind};
use aicfg_core::calibrate::{Row, RowMapper};
use aicfg_core::estimate::{predict_with, EstimateRequest};
use aicfg_core::measure::calib::{DeploymentDesc, PoolDesc};
use aicfg_core::measure::{BenchSummary, CorrectionScales, LengthDist, SloTargets, CALIB_COLUMNS};
use aicfg_core::perf::EmpiricalParams;
use aicfg_core::serve::sim::{Dist as SimDist, Load, SimSpec};
use aicfg_core::simulate::{concurrency_of, simulate_with, MAX_REPLAY_TOKENS};
use aicfg_core::DatabaseMode;
use aicfg_gen::GeneratorConfig;
use anyhow::{bail, Context, Result};
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// A `--save_dir` result: the folder `cli default --save_dir` wrote (with agg/ and disagg/),
    /// the --save_dir folder holding one such result, or one `<mode>/topN` folder.
    #[arg(long = "save-dir", alias = "save_dir")]
    pub save_dir: Option<PathBuf>,
    /// Automation file: search, deploy, benchmark, compare, tear down (see docs/eval.md).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// With --config: print the plan (every command) and run nothing.
    #[arg(long = "dry-run", alias = "dry_run")]
    pub dry_run: bool,
    /// Which top-N deployment is running.
    #[arg(long, default_value_t = 1)]
    pub top: usize,
    /// Serving mode of the deployment (agg or disagg); default: the mode whose top-1 predicts
    /// the most tokens/s/gpu.
    #[arg(long)]
    pub mode: Option<String>,
    /// Endpoint base URL (default: the deployment's own http://HEAD_NODE_IP:PORT).
    #[arg(long)]
    pub url: Option<String>,
    /// Served model name (default: the deployment's).
    #[arg(long)]
    pub model: Option<String>,
    /// Concurrencies to measure (default: the points its bench_run.sh uses).
    #[arg(long, value_delimiter = ',')]
    pub concurrency: Vec<u32>,
    /// Measured requests per point = concurrency × this (default: the bench script's).
    #[arg(long = "requests-per-concurrency", alias = "requests_per_concurrency")]
    pub requests_per_concurrency: Option<u64>,
    /// Warmup requests per point = concurrency × this (default: the bench script's).
    #[arg(long = "warmup-per-concurrency", alias = "warmup_per_concurrency")]
    pub warmup_per_concurrency: Option<u64>,
    /// Route: chat (/v1/chat/completions, what bench_run.sh uses) or completions (token-id prompts).
    #[arg(long, value_enum, default_value = "chat")]
    pub endpoint: Endpoint,
    /// Which server's options force the output length (auto, vllm, sglang, trtllm, dynamo, none).
    #[arg(long, value_enum, default_value = "auto")]
    pub framework: Framework,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 600.0)]
    pub timeout: f64,
    /// Where to write the comparison (default: <topN folder>/eval).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The model's tokenizer.json: chat prompts of exactly the deployment's ISL in tokens
    /// (otherwise close to it; the server's usage field gives the count either way).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Calibration YAML for the predictions (default: the embedded constants).
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// Client runtime threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Print the comparison as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: &EvalArgs) -> Result<()> {
    match (&a.save_dir, &a.config) {
        (Some(_), Some(_)) => bail!("give --save_dir or --config, not both"),
        (None, None) => {
            bail!("aicfg eval needs --save_dir DIR (a result folder) or --config eval.yaml")
        }
        (None, Some(c)) => auto::run(c, a),
        (Some(d), None) => {
            if a.dry_run {
                bail!("--dry-run goes with --config");
            }
            let t = Deployment::locate(d, a.mode.as_deref(), a.top)?;
            evaluate(&t, a, None)
        }
    }
}

/// A deployment from a result folder.
pub struct Deployment {
    /// The `<mode>/topN` folder.
    pub dir: PathBuf,
    pub mode: String,
    pub gen: GeneratorConfig,
    /// `<mode>/config.yaml`: the resolved experiment (rerun by `cli exp`).
    pub exp_yaml: String,
    pub system: String,
    pub database_mode: String,
}

fn read(p: &Path) -> Result<String> {
    let meta = std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
    if meta.len() > 16 << 20 {
        bail!("{} is larger than 16 MiB; not a result file", p.display());
    }
    std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
}

fn gen_config(p: &Path) -> Result<GeneratorConfig> {
    serde_norway::from_str(&read(p)?).with_context(|| {
        format!(
            "{} is not a generator_config.yaml this aicfg wrote",
            p.display()
        )
    })
}

impl Deployment {
    /// Find `<mode>/top<N>` under `dir` (a result folder, its parent, or the topN folder).
    pub fn locate(dir: &Path, mode: Option<&str>, top: usize) -> Result<Deployment> {
        if top == 0 {
            bail!("--top counts from 1");
        }
        if !dir.is_dir() {
            bail!("--save_dir {} is not a folder", dir.display());
        }
        let topdir = if dir.join("generator_config.yaml").is_file() {
            dir.to_path_buf()
        } else {
            let result = if dir.join("agg").is_dir() || dir.join("disagg").is_dir() {
                dir.to_path_buf()
            } else {
                let mut subs: Vec<PathBuf> = std::fs::read_dir(dir)
                    .with_context(|| format!("cannot list {}", dir.display()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.join("agg").is_dir() || p.join("disagg").is_dir())
                    .collect();
                subs.sort();
                match subs.len() {
                    1 => subs.remove(0),
                    0 => bail!(
                        "{} holds no aicfg result (no agg/ or disagg/ folder); pass the folder --save_dir wrote",
                        dir.display()
                    ),
                    _ => bail!(
                        "{} holds {} results ({}); pass one of them",
                        dir.display(),
                        subs.len(),
                        subs.iter()
                            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }
            };
            let modes: Vec<&str> = ["agg", "disagg"]
                .into_iter()
                .filter(|m| result.join(m).join(format!("top{top}")).is_dir())
                .collect();
            let m = match mode {
                Some(m) => {
                    if !modes.contains(&m) {
                        bail!(
                            "{} has no {m}/top{top} (modes with a top{top}: {})",
                            result.display(),
                            if modes.is_empty() {
                                "none".into()
                            } else {
                                modes.join(", ")
                            }
                        );
                    }
                    m.to_string()
                }
                None => {
                    // The mode whose top-N predicts the most tokens/s/gpu: what the report recommends.
                    let mut best: Option<(f64, &str)> = None;
                    for m in &modes {
                        let g = gen_config(
                            &result
                                .join(m)
                                .join(format!("top{top}/generator_config.yaml")),
                        )?;
                        let v = g.sla.predicted_tokens_per_s_per_gpu;
                        if best.is_none_or(|b| v > b.0) {
                            best = Some((v, m));
                        }
                    }
                    match best {
                        Some((_, m)) => m.to_string(),
                        None => bail!("{} has no top{top} deployment", result.display()),
                    }
                }
            };
            result.join(&m).join(format!("top{top}"))
        };
        let gen = gen_config(&topdir.join("generator_config.yaml"))?;
        let mode = gen.dynamo.mode.clone();
        let exp_path = topdir
            .parent()
            .map(|p| p.join("config.yaml"))
            .filter(|p| p.is_file())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: ../config.yaml (the resolved experiment) is missing",
                    topdir.display()
                )
            })?;
        let exp_yaml = read(&exp_path)?;
        let exp: serde_norway::Value = serde_norway::from_str(&exp_yaml)
            .with_context(|| format!("{} is not YAML", exp_path.display()))?;
        let first = exp
            .as_mapping()
            .and_then(|m| m.iter().find(|(k, _)| k.as_str() != Some("exps")))
            .map(|(_, v)| v.clone())
            .ok_or_else(|| anyhow::anyhow!("{} has no experiment", exp_path.display()))?;
        let s = |k: &str| first.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let system = s("system_name")
            .ok_or_else(|| anyhow::anyhow!("{} has no system_name", exp_path.display()))?;
        let database_mode = s("database_mode").unwrap_or_else(|| "auto".into());
        Ok(Deployment {
            dir: topdir,
            mode,
            gen,
            exp_yaml,
            system,
            database_mode,
        })
    }

    pub fn num_gpus(&self) -> u32 {
        let w = &self.gen.workers;
        w.agg_workers * w.agg_gpus_per_worker
            + w.prefill_workers * w.prefill_gpus_per_worker
            + w.decode_workers * w.decode_gpus_per_worker
    }

    /// The deployment in the calibration CSV's terms.
    pub fn desc(&self) -> Result<DeploymentDesc> {
        let g = &self.gen;
        let pool = |p: &aicfg_gen::genconfig::WorkerParams, workers: u32, fixed: bool| PoolDesc {
            workers,
            tp: p.tensor_parallel_size,
            pp: p.pipeline_parallel_size,
            attention_dp: p.data_parallel_size,
            moe_tp: p.moe_tensor_parallel_size,
            moe_ep: p.moe_expert_parallel_size,
            batch_size: fixed.then_some(p.max_batch_size as f64),
        };
        let (agg, prefill, decode, q) = match (&g.params.agg, &g.params.prefill, &g.params.decode) {
            (Some(a), _, _) if self.mode == "agg" => {
                (Some(pool(a, g.workers.agg_workers, false)), None, None, a)
            }
            (_, Some(p), Some(d)) => (
                None,
                Some(pool(p, g.workers.prefill_workers, true)),
                Some(pool(d, g.workers.decode_workers, false)),
                d,
            ),
            _ => bail!(
                "{}: generator_config.yaml has no worker parameters for {}",
                self.dir.display(),
                self.mode
            ),
        };
        Ok(DeploymentDesc {
            backend: g.backend.name().to_string(),
            backend_version: g.generated_config_version.clone(),
            model_path: g.model.model_name.clone(),
            system: self.system.clone(),
            isl: g.sla.isl as u64,
            osl: g.sla.osl as u64,
            gemm_quant_mode: q.gemm_quant_mode.clone(),
            moe_quant_mode: if g.model.is_moe {
                q.moe_quant_mode.clone()
            } else {
                String::new()
            },
            agg,
            prefill,
            decode,
        })
    }

    pub fn default_url(&self) -> String {
        let s = &self.gen.service;
        format!("http://{}:{}", s.head_node_ip, s.port)
    }
}

/// One load point, predicted and measured.
#[derive(Debug, Clone, Serialize)]
pub struct Compared {
    pub concurrency: u32,
    pub predicted_ttft_ms: Option<f64>,
    pub predicted_tpot_ms: Option<f64>,
    pub predicted_tokens_per_s_per_gpu: Option<f64>,
    pub predicted_tokens_per_s_per_user: Option<f64>,
    /// Why there is no prediction.
    pub prediction_note: Option<String>,
    /// The simulator's distributions at this point (the benchmark replayed: closed loop,
    /// the same requests per client and warm-up), for the percentiles a mean cannot show.
    pub simulated: Option<Simulated>,
    /// Why there is no simulation.
    pub simulation_note: Option<String>,
    pub measured: BenchSummary,
}

/// Simulated TTFT / TPOT / ITL / E2E distributions of one point (ms).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Simulated {
    pub ttft_ms: SimDist,
    pub tpot_ms: SimDist,
    pub itl_ms: SimDist,
    pub e2e_ms: SimDist,
}

fn ratio(m: Option<f64>, p: Option<f64>) -> Option<f64> {
    match (m, p) {
        (Some(m), Some(p)) if p > 0.0 && m.is_finite() => Some(m / p),
        _ => None,
    }
}

impl Compared {
    fn measured_ttft(&self) -> Option<f64> {
        self.measured.ttft_ms.map(|d| d.mean)
    }
    fn measured_tpot(&self) -> Option<f64> {
        self.measured.tpot_ms.map(|d| d.mean)
    }
}

/// The estimate request of the deployment at total concurrency `c`, as `bench accuracy` maps
/// a measured row.
fn request_at(
    d: &DeploymentDesc,
    mapper: &mut RowMapper,
    mode: DatabaseMode,
    c: u32,
) -> std::result::Result<EstimateRequest, String> {
    let row = d
        .row("predict", "", c as f64, f64::NAN, f64::NAN, None)
        .map_err(|e| e.to_string())?;
    let fields: HashMap<String, String> = CALIB_COLUMNS
        .iter()
        .map(|k| k.to_string())
        .zip(row.0)
        .collect();
    let r = Row {
        id: "predict".into(),
        fields,
        ttft: f64::NAN,
        tpot: f64::NAN,
    };
    mapper
        .request(&r, mode)
        .map_err(|(s, e)| format!("{s}: {e}"))
}

/// Predict the deployment at total concurrency `c` with the model `bench accuracy` uses.
fn predict(
    d: &DeploymentDesc,
    req: &EstimateRequest,
    params: &EmpiricalParams,
    c: u32,
    gpus: u32,
) -> std::result::Result<(f64, f64, f64, f64), String> {
    let perf = predict_with(req, params).map_err(|e| e.to_string())?;
    let (ttft, tpot) = (perf.ttft_ms, perf.tpot_ms);
    if !(ttft.is_finite() && tpot.is_finite() && tpot > 0.0) {
        return Err("prediction is not finite".into());
    }
    // Closed loop: each request takes TTFT + (osl − 1) TPOT; c of them run at once.
    let latency_s = (ttft + (d.osl.saturating_sub(1)) as f64 * tpot) / 1e3;
    let tps_gpu = c as f64 * d.osl as f64 / latency_s / gpus.max(1) as f64;
    Ok((ttft, tpot, tps_gpu, 1000.0 / tpot))
}

/// The simulator's replay of the benchmark point: a closed loop at the request's concurrency
/// (one worker or disagg replica, whose share of the clients `concurrency_of` gives), `per`
/// measured requests per client after `warm` warm-up requests per client, lengths fixed. The
/// replay is cut to `MAX_REPLAY_TOKENS` output tokens (at least one wave) as the accuracy
/// harness cuts it.
fn simulate_point(
    req: &EstimateRequest,
    params: &EmpiricalParams,
    per: u64,
    warm: u64,
) -> std::result::Result<Simulated, String> {
    let c = concurrency_of(req) as u64;
    let osl = req.workload.osl.max(1.0);
    let cap = ((MAX_REPLAY_TOKENS / osl) as u64).max(c);
    let measured = c.saturating_mul(per).min(cap).max(1);
    let warmup = c.saturating_mul(warm).min(cap);
    let total = measured.saturating_add(warmup);
    let max = aicfg_core::serve::sim::MAX_REQUESTS as u64;
    let mut spec = SimSpec::new(Load::Concurrency(c as u32), total.min(max) as u32);
    spec.warmup = warmup.min(total.min(max).saturating_sub(1)) as u32;
    let s = simulate_with(req, &spec, params).map_err(|e| e.to_string())?;
    let r = s.report;
    Ok(Simulated {
        ttft_ms: r.ttft_ms,
        tpot_ms: r.tpot_ms,
        itl_ms: r.itl_ms,
        e2e_ms: r.e2e_ms,
    })
}

/// Benchmark and compare. `url` overrides the argument's (automation knows the endpoint).
pub fn evaluate(t: &Deployment, a: &EvalArgs, url: Option<String>) -> Result<()> {
    let desc = t.desc()?;
    let gpus = t.num_gpus();
    let mut concs: Vec<u32> = if a.concurrency.is_empty() {
        t.gen.bench.concurrencies.clone()
    } else {
        a.concurrency.clone()
    };
    concs.retain(|c| *c > 0);
    concs.sort_unstable();
    concs.dedup();
    if concs.is_empty() {
        bail!("no concurrency to measure (the bench config lists none; pass --concurrency)");
    }
    let per = a
        .requests_per_concurrency
        .unwrap_or(t.gen.bench.requests_per_concurrency as u64)
        .max(1);
    let warm = a
        .warmup_per_concurrency
        .unwrap_or(t.gen.bench.warmup_per_concurrency as u64);
    let url = url
        .or_else(|| a.url.clone())
        .unwrap_or_else(|| t.default_url());
    let model = a
        .model
        .clone()
        .unwrap_or_else(|| t.gen.service.served_model_name.clone());
    let out = a.out.clone().unwrap_or_else(|| t.dir.join("eval"));
    let params = match &a.calibration {
        Some(p) => EmpiricalParams::from_yaml(&read(p)?)
            .with_context(|| format!("calibration {}", p.display()))?,
        None => EmpiricalParams::embedded(),
    };
    let db = DatabaseMode::parse(&t.database_mode)?;
    let mut mapper = RowMapper::new();
    let words = a
        .tokenizer
        .as_deref()
        .map(serve_bench::tokenized::TokenWords::from_file)
        .transpose()?
        .map(std::sync::Arc::new);
    let plan = Plan {
        target: serve_bench::client::Target::parse(&url)?,
        model: model.clone(),
        endpoint: a.endpoint,
        prompt: match a.endpoint {
            Endpoint::Completions => PromptKind::Ids,
            Endpoint::Chat => PromptKind::Text,
        },
        framework: a.framework,
        extra: serde_json::Map::new(),
        isl: LengthDist::Fixed(desc.isl),
        osl: LengthDist::Fixed(desc.osl),
        words,
        seed: t.gen.bench.random_seed as u64,
        warmup: 0,
        num_requests: None,
        duration: None,
        timeout: Duration::from_secs_f64(if a.timeout.is_finite() && a.timeout > 0.0 {
            a.timeout.min(1e7)
        } else {
            bail!("--timeout must be a positive number")
        }),
        api_key: std::env::var("OPENAI_API_KEY")
            .ok()
            .filter(|k| !k.is_empty()),
        num_gpus: Some(gpus),
        targets: SloTargets {
            ttft_ms: Some(t.gen.sla.ttft),
            tpot_ms: Some(t.gen.sla.tpot),
        },
        progress: !a.json,
    };
    if !a.json {
        crate::emitln!(
            "aicfg eval — {} ({} top{}, {} GPUs) at {url}, concurrencies {:?}",
            t.dir.display(),
            t.mode,
            a.top,
            gpus,
            concs
        );
    }
    let rt = serve_bench::runtime(a.threads.clamp(1, 256))?;
    let results = rt.block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("interrupted: comparing what finished");
                let _ = tx.send(true);
            }
        });
        let mut all = Vec::new();
        for c in &concs {
            if *rx.borrow() {
                break;
            }
            let mut p = plan.clone();
            p.num_requests = Some((*c as u64).saturating_mul(per).min(10_000_000));
            p.warmup = (*c as u64).saturating_mul(warm).min(10_000_000);
            let r = serve_bench::sweep(
                &p,
                &[Point {
                    concurrency: Some(*c),
                    rate: None,
                }],
                &rx,
            )
            .await;
            all.extend(r);
        }
        all
    });
    let mut points = Vec::new();
    for (p, _, s) in &results {
        let c = p.concurrency.unwrap_or(1);
        let req = request_at(&desc, &mut mapper, db, c);
        let closed = req
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|r| predict(&desc, r, &params, c, gpus));
        let (pt, po, pg, pu, note) = match closed {
            Ok((a, b, g, u)) => (Some(a), Some(b), Some(g), Some(u), None),
            Err(e) => (None, None, None, None, Some(e)),
        };
        let sim = req
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|r| simulate_point(r, &params, per, warm));
        let (simulated, simulation_note) = match sim {
            Ok(x) => (Some(x), None),
            Err(e) => (None, Some(e)),
        };
        points.push(Compared {
            concurrency: c,
            predicted_ttft_ms: pt,
            predicted_tpot_ms: po,
            predicted_tokens_per_s_per_gpu: pg,
            predicted_tokens_per_s_per_user: pu,
            prediction_note: note,
            simulated,
            simulation_note,
            measured: s.clone(),
        });
    }
    let scales = CorrectionScales::fit(
        &points
            .iter()
            .filter_map(|p| Some((p.predicted_ttft_ms?, p.measured_ttft()?)))
            .collect::<Vec<_>>(),
        &points
            .iter()
            .filter_map(|p| Some((p.predicted_tpot_ms?, p.measured_tpot()?)))
            .collect::<Vec<_>>(),
    );
    write_outputs(t, &desc, &out, &results, &points, scales.as_ref())?;
    if a.json {
        crate::emitln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "deployment": t.dir.display().to_string(),
                "mode": t.mode,
                "num_gpus": gpus,
                "points": points,
                "correction_scales": scales,
                "out": out.display().to_string(),
            }))?
        );
    } else {
        crate::emitln!("{}", comparison_table(&points));
        crate::emitln!("{}", percentile_table(&points));
        match &scales {
            Some(s) => crate::emitln!(
                "suggested corrections (median measured/predicted over {} points; {}/corrected_config.yaml reruns the search with them):\n{}",
                s.points,
                out.display(),
                s.snippet(false)
            ),
            None => crate::emitln!("no point has both a prediction and a measurement: no correction to suggest"),
        }
        crate::emitln!(
            "wrote {}/{{comparison.csv,measured_rows.csv,corrections.yaml,corrected_config.yaml,predicted_vs_measured.png,bench/}}",
            out.display()
        );
    }
    let total: u64 = points.iter().map(|p| p.measured.requests).sum();
    let errs: u64 = points.iter().map(|p| p.measured.errors).sum();
    if total > 0 && errs == total {
        bail!("every request failed; is the deployment serving at {url}?");
    }
    Ok(())
}

fn o(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into())
}

fn comparison_table(points: &[Compared]) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "concurrency",
        "TTFT pred",
        "TTFT meas",
        "ratio",
        "TPOT pred",
        "TPOT meas",
        "ratio",
        "tok/s/gpu pred",
        "tok/s/gpu meas",
        "ratio",
        "tok/s/user pred",
        "tok/s/user meas",
        "ratio",
        "errors",
    ]);
    for p in points {
        let m = &p.measured;
        t.add_row(vec![
            p.concurrency.to_string(),
            o(p.predicted_ttft_ms),
            o(p.measured_ttft()),
            o(ratio(p.measured_ttft(), p.predicted_ttft_ms)),
            o(p.predicted_tpot_ms),
            o(p.measured_tpot()),
            o(ratio(p.measured_tpot(), p.predicted_tpot_ms)),
            o(p.predicted_tokens_per_s_per_gpu),
            o(m.output_tokens_per_s_per_gpu),
            o(ratio(
                m.output_tokens_per_s_per_gpu,
                p.predicted_tokens_per_s_per_gpu,
            )),
            o(p.predicted_tokens_per_s_per_user),
            o(m.tokens_per_s_per_user),
            o(ratio(
                m.tokens_per_s_per_user,
                p.predicted_tokens_per_s_per_user,
            )),
            format!("{}/{}", m.errors, m.requests),
        ]);
    }
    let mut s = format!("{t}\n(TTFT/TPOT in ms, means; ratio = measured / predicted)");
    for p in points.iter().filter(|p| p.prediction_note.is_some()) {
        s.push_str(&format!(
            "\nconcurrency {}: no prediction ({})",
            p.concurrency,
            p.prediction_note.as_deref().unwrap_or("")
        ));
    }
    s
}

/// Simulated vs measured TTFT and TPOT percentiles per point.
fn percentile_table(points: &[Compared]) -> String {
    let mut t = Table::new();
    let mut head = vec!["concurrency".to_string()];
    for m in ["TTFT", "TPOT"] {
        for q in ["p50", "p90", "p99"] {
            head.push(format!("{m} {q} sim"));
            head.push(format!("{m} {q} meas"));
        }
    }
    t.load_preset(UTF8_FULL_CONDENSED).set_header(head);
    for p in points {
        let mut row = vec![p.concurrency.to_string()];
        let sims = p.simulated.map(|s| (s.ttft_ms, s.tpot_ms));
        let meas = [p.measured.ttft_ms, p.measured.tpot_ms];
        for (i, m) in meas.iter().enumerate() {
            let s = sims.map(|x| if i == 0 { x.0 } else { x.1 });
            for q in [0, 1, 2] {
                let pick_s = |d: SimDist| [d.p50, d.p90, d.p99][q];
                let pick_m = |d: aicfg_core::measure::Dist| [d.p50, d.p90, d.p99][q];
                row.push(o(s.map(pick_s)));
                row.push(o(m.map(pick_m)));
            }
        }
        t.add_row(row);
    }
    let mut s =
        format!("{t}\n(ms; sim = the core's request-level simulator replaying the benchmark)");
    for p in points.iter().filter(|p| p.simulation_note.is_some()) {
        s.push_str(&format!(
            "\nconcurrency {}: no simulation ({})",
            p.concurrency,
            p.simulation_note.as_deref().unwrap_or("")
        ));
    }
    s
}

fn write_outputs(
    t: &Deployment,
    desc: &DeploymentDesc,
    out: &Path,
    results: &[(Point, Vec<aicfg_core::measure::RequestRecord>, BenchSummary)],
    points: &[Compared],
    scales: Option<&CorrectionScales>,
) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    serve_bench::write_outputs(&out.join("bench"), results)?;
    // comparison.csv
    let p = out.join("comparison.csv");
    let mut w =
        csv::Writer::from_path(&p).with_context(|| format!("cannot write {}", p.display()))?;
    w.write_record([
        "concurrency",
        "predicted_ttft_ms",
        "measured_ttft_ms",
        "ttft_ratio",
        "predicted_tpot_ms",
        "measured_tpot_ms",
        "tpot_ratio",
        "predicted_tokens_per_s_per_gpu",
        "measured_tokens_per_s_per_gpu",
        "tokens_per_s_per_gpu_ratio",
        "predicted_tokens_per_s_per_user",
        "measured_tokens_per_s_per_user",
        "tokens_per_s_per_user_ratio",
        "measured_ttft_p50_ms",
        "measured_ttft_p90_ms",
        "measured_ttft_p99_ms",
        "measured_tpot_p50_ms",
        "measured_tpot_p90_ms",
        "measured_tpot_p99_ms",
        "simulated_ttft_p50_ms",
        "simulated_ttft_p90_ms",
        "simulated_ttft_p99_ms",
        "simulated_tpot_p50_ms",
        "simulated_tpot_p90_ms",
        "simulated_tpot_p99_ms",
        "requests",
        "errors",
    ])?;
    let c4 = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_default();
    for p in points {
        let m = &p.measured;
        w.write_record([
            p.concurrency.to_string(),
            c4(p.predicted_ttft_ms),
            c4(p.measured_ttft()),
            c4(ratio(p.measured_ttft(), p.predicted_ttft_ms)),
            c4(p.predicted_tpot_ms),
            c4(p.measured_tpot()),
            c4(ratio(p.measured_tpot(), p.predicted_tpot_ms)),
            c4(p.predicted_tokens_per_s_per_gpu),
            c4(m.output_tokens_per_s_per_gpu),
            c4(ratio(
                m.output_tokens_per_s_per_gpu,
                p.predicted_tokens_per_s_per_gpu,
            )),
            c4(p.predicted_tokens_per_s_per_user),
            c4(m.tokens_per_s_per_user),
            c4(ratio(
                m.tokens_per_s_per_user,
                p.predicted_tokens_per_s_per_user,
            )),
            c4(m.ttft_ms.map(|d| d.p50)),
            c4(m.ttft_ms.map(|d| d.p90)),
            c4(m.ttft_ms.map(|d| d.p99)),
            c4(m.tpot_ms.map(|d| d.p50)),
            c4(m.tpot_ms.map(|d| d.p90)),
            c4(m.tpot_ms.map(|d| d.p99)),
            c4(p.simulated.map(|d| d.ttft_ms.p50)),
            c4(p.simulated.map(|d| d.ttft_ms.p90)),
            c4(p.simulated.map(|d| d.ttft_ms.p99)),
            c4(p.simulated.map(|d| d.tpot_ms.p50)),
            c4(p.simulated.map(|d| d.tpot_ms.p90)),
            c4(p.simulated.map(|d| d.tpot_ms.p99)),
            m.requests.to_string(),
            m.errors.to_string(),
        ])?;
    }
    w.flush()?;
    // measured_rows.csv: the calibration schema; points without a complete measurement are left out.
    let p = out.join("measured_rows.csv");
    let mut w =
        csv::Writer::from_path(&p).with_context(|| format!("cannot write {}", p.display()))?;
    w.write_record(CALIB_COLUMNS)?;
    let name = t
        .dir
        .iter()
        .rev()
        .take(3)
        .filter_map(|s| s.to_str())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("/");
    for p in points {
        let (Some(ttft), Some(tpot)) = (p.measured_ttft(), p.measured_tpot()) else {
            continue;
        };
        let id = format!(
            "{}_{}_{}_{}x{}_c{}",
            aicfg_gen::safe_component(&desc.model_path),
            desc.system,
            desc.backend,
            desc.isl,
            desc.osl,
            p.concurrency
        );
        let source = format!(
            "aicfg eval; {}; silicon_concurrency={}; requests={}; errors={}",
            name, p.concurrency, p.measured.requests, p.measured.errors
        );
        let row = desc.row(
            &id,
            &source,
            p.concurrency as f64,
            ttft,
            tpot,
            p.measured.output_tokens_per_s_per_gpu,
        )?;
        w.write_record(&row.0)?;
    }
    w.flush()?;
    // corrections.yaml and corrected_config.yaml
    if let Some(s) = scales {
        let text = format!(
            "# Correction scales suggested by `aicfg eval` for {name}\n# (median measured/predicted over {} points). Latency style; put under an experiment's `config:`\n{}\n# Or the throughput style (the same correction, as throughput multipliers):\n# {}",
            s.points,
            s.snippet(false),
            s.snippet(true).trim_end().replace('\n', "\n# ")
        );
        std::fs::write(out.join("corrections.yaml"), text + "\n")?;
        let corrected = s.apply_to_exp_yaml(&t.exp_yaml)?;
        std::fs::write(
            out.join("corrected_config.yaml"),
            format!(
                "# The experiment of this result with the corrections of corrections.yaml;\n# rerun with `aicfg cli exp --yaml_path corrected_config.yaml`.\n{corrected}"
            ),
        )?;
    }
    // predicted_vs_measured.png
    let series = vec![
        aicfg_gen::plot::Series {
            label: "predicted".into(),
            points: points
                .iter()
                .filter_map(|p| {
                    Some((
                        p.predicted_tokens_per_s_per_user?,
                        p.predicted_tokens_per_s_per_gpu?,
                    ))
                })
                .collect(),
            best: None,
        },
        aicfg_gen::plot::Series {
            label: "measured".into(),
            points: points
                .iter()
                .filter_map(|p| {
                    Some((
                        p.measured.tokens_per_s_per_user?,
                        p.measured.output_tokens_per_s_per_gpu?,
                    ))
                })
                .collect(),
            best: None,
        },
    ];
    let png = aicfg_gen::plot::pareto_png(
        &format!("{name}: predicted vs measured"),
        &series,
        Some(1000.0 / t.gen.sla.tpot),
    )?;
    std::fs::write(out.join("predicted_vs_measured.png"), png)?;
    Ok(())
}
