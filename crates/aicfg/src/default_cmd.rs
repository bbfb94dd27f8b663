//! `aicfg cli default`: agg vs disagg search for one model, system and GPU budget.
use crate::chart::{self, Series};
use crate::view::{json_view, origin_tag, QUANT_HINT};
use aicfg_core::input::DefaultInput;
use aicfg_core::search::percentile::{SIM_MAX_RUNS, SIM_TOP_K};
use aicfg_core::search::{
    mode_name, search, Candidate, LoadTarget, ModeResult, RankBy, Role, SearchResult, WorkerPlan,
};
use aicfg_core::ServeMode;
use anyhow::Result;
use clap::Args;
use comfy_table::{Cell, CellAlignment, Table};
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct DefaultArgs {
    /// Model: a built-in name (QWEN3_32B), a Hugging Face id (Qwen/Qwen3-32B) or a path to a config.json.
    #[arg(long)]
    pub model: String,
    /// GPUs in the cluster. Omit it with --target-request-rate / --target-concurrency to find
    /// the fewest GPUs that carry that load.
    #[arg(
        long = "total-gpus",
        alias = "total_gpus",
        allow_negative_numbers = true
    )]
    pub total_gpus: Option<i64>,
    /// GPU system (h100_sxm, h200_sxm, b200_sxm, gb200, a100_sxm, b300_sxm, gb300, ...).
    #[arg(long)]
    pub system: String,
    /// System of the decode workers in disagg (defaults to --system).
    #[arg(long = "decode-system", alias = "decode_system")]
    pub decode_system: Option<String>,
    /// Serving framework: trtllm, vllm, sglang, or auto (search all three and compare).
    #[arg(long, default_value = "trtllm")]
    pub backend: String,
    /// Input sequence length (tokens).
    #[arg(long, default_value_t = 4000, allow_negative_numbers = true)]
    pub isl: i64,
    /// Output sequence length (tokens).
    #[arg(long, default_value_t = 1000, allow_negative_numbers = true)]
    pub osl: i64,
    /// Time-to-first-token target (ms).
    #[arg(long, default_value_t = 2000.0, allow_negative_numbers = true, value_parser = crate::limits_args::finite)]
    pub ttft: f64,
    /// Time-per-output-token target (ms).
    #[arg(long, default_value_t = 30.0, allow_negative_numbers = true, value_parser = crate::limits_args::finite)]
    pub tpot: f64,
    /// Cached prefix tokens of each prompt.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub prefix: i64,
    /// MTP draft tokens per step.
    #[arg(long, default_value_t = 0)]
    pub nextn: u32,
    /// Acceptance of the i-th draft token, comma separated (used when --nextn > 0).
    #[arg(
        long = "nextn-accept-rates",
        alias = "nextn_accept_rates",
        value_delimiter = ',',
        default_value = "0.85,0.3,0,0,0",
        value_parser = crate::limits_args::finite
    )]
    pub nextn_accept_rates: Vec<f64>,
    /// agg, disagg or auto (both, compared).
    #[arg(long = "serving-mode", alias = "serving_mode", default_value = "auto")]
    pub serving_mode: String,
    /// silicon (measured op tables), hybrid (measured where covered, else empirical), empirical
    /// (embedded calibrated roofline) or sol. Default: hybrid when a measured database for the
    /// system/backend is installed (`aicfg data install`), else empirical.
    #[arg(
        long = "database-mode",
        alias = "database_mode",
        default_value = "auto"
    )]
    pub database_mode: String,
    /// Backend version of the measured op database (default: the newest installed).
    #[arg(long = "backend-version", alias = "backend_version")]
    pub backend_version: Option<String>,
    /// Rows per top-N table.
    #[arg(long = "top-n", alias = "top_n", default_value_t = 5)]
    pub top_n: usize,
    /// KV-cache memory fraction (TRT-LLM: of free memory; vLLM/SGLang: of total).
    #[arg(long = "free-gpu-memory-fraction", alias = "free_gpu_memory_fraction", value_parser = crate::limits_args::finite)]
    pub free_gpu_memory_fraction: Option<f64>,
    /// Recommend mode: requests per second the cluster must serve.
    #[arg(long = "target-request-rate", alias = "target_request_rate", value_parser = crate::limits_args::finite)]
    pub target_request_rate: Option<f64>,
    /// Recommend mode: requests in flight the cluster must hold.
    #[arg(long = "target-concurrency", alias = "target_concurrency", value_parser = crate::limits_args::finite)]
    pub target_concurrency: Option<f64>,
    /// Draw the Pareto frontier only from points that meet TPOT as well as TTFT.
    #[arg(long = "strict-sla", alias = "strict_sla")]
    pub strict_sla: bool,
    /// Search expert parallelism beyond one node for fine-grained MoE models (also spelled
    /// --enable_wideep, the experiment key's alias) [default: off].
    #[arg(
        long = "enable-wide-ep",
        aliases = ["enable_wide_ep", "enable-wideep", "enable_wideep"]
    )]
    pub enable_wide_ep: bool,
    /// GEMM format for every worker: bfloat16, fp8, fp8_block, nvfp4, ... (default: the checkpoint's).
    #[arg(long = "gemm-quant-mode", alias = "gemm_quant_mode")]
    pub gemm_quant_mode: Option<String>,
    /// MoE expert format: bfloat16, fp8, fp8_block, w4afp8, nvfp4, w4a16_mxfp4, ... (default: the checkpoint's, else follows --gemm-quant-mode).
    #[arg(long = "moe-quant-mode", alias = "moe_quant_mode")]
    pub moe_quant_mode: Option<String>,
    /// KV-cache format: bfloat16, fp8, int8 (default: fp8 for FP8/FP4 checkpoints or an FP8/FP4 --gemm-quant-mode, else bfloat16).
    #[arg(long = "kvcache-quant-mode", alias = "kvcache_quant_mode")]
    pub kvcache_quant_mode: Option<String>,
    /// Attention math format: bfloat16, fp8 (default: fp8 when the KV cache is fp8 on a GPU with FP8 tensor cores, except vLLM).
    #[arg(long = "fmha-quant-mode", alias = "fmha_quant_mode")]
    pub fmha_quant_mode: Option<String>,
    /// Collective payload format: half, fp8, int8 (default: half).
    #[arg(long = "comm-quant-mode", alias = "comm_quant_mode")]
    pub comm_quant_mode: Option<String>,
    /// Directory of extra system YAML files.
    #[arg(long = "systems-path", alias = "systems_path")]
    pub systems_path: Option<PathBuf>,
    /// Calibration YAML replacing the embedded empirical constants.
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// Price of one GPU-hour in US dollars, for every system (default: the system file's
    /// misc.gpu_cost_per_hour; the built-in files leave it unset). Adds $/M tokens to the report.
    #[arg(
        long = "gpu-cost-per-hour",
        alias = "gpu_cost_per_hour",
        allow_negative_numbers = true
    )]
    pub gpu_cost_per_hour: Option<f64>,
    /// Order of the top-N tables and choice of the best: throughput (tokens/s/gpu; recommend
    /// mode: fewest GPUs) or cost ($/M output tokens; recommend mode: cheapest cluster per hour).
    #[arg(long = "rank-by", alias = "rank_by", default_value = "throughput")]
    pub rank_by: String,
    /// What --ttft and --tpot bound: mean (the closed form's means), or p50, p90, p99 of the
    /// simulated top configurations of each mode (only a simulated one can then be the best).
    #[arg(
        long = "sla-percentile",
        alias = "sla_percentile",
        default_value = "mean"
    )]
    pub sla_percentile: String,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub save: crate::save::SaveArgs,
    #[command(flatten)]
    pub limits: crate::limits_args::LimitArgs,
}

impl DefaultArgs {
    pub fn to_input(&self) -> DefaultInput {
        DefaultInput {
            model: self.model.clone(),
            model_config: None,
            total_gpus: self.total_gpus,
            system: self.system.clone(),
            decode_system: self.decode_system.clone(),
            backend: self.backend.clone(),
            isl: self.isl,
            osl: self.osl,
            ttft: self.ttft,
            tpot: self.tpot,
            prefix: self.prefix,
            nextn: self.nextn,
            nextn_accept_rates: self.nextn_accept_rates.clone(),
            serving_mode: self.serving_mode.clone(),
            database_mode: self.database_mode.clone(),
            backend_version: self.backend_version.clone(),
            top_n: self.top_n,
            free_gpu_memory_fraction: self.free_gpu_memory_fraction,
            target_request_rate: self.target_request_rate,
            target_concurrency: self.target_concurrency,
            strict_sla: self.strict_sla,
            enable_wide_ep: self.enable_wide_ep,
            gemm_quant_mode: self.gemm_quant_mode.clone(),
            moe_quant_mode: self.moe_quant_mode.clone(),
            kvcache_quant_mode: self.kvcache_quant_mode.clone(),
            fmha_quant_mode: self.fmha_quant_mode.clone(),
            comm_quant_mode: self.comm_quant_mode.clone(),
            agg_parallel: None,
            prefill_parallel: None,
            decode_parallel: None,
            gpu_cost_per_hour: self.gpu_cost_per_hour,
            rank_by: self.rank_by.clone(),
            sla_percentile: self.sla_percentile.clone(),
            systems_path: self.systems_path.clone(),
            calibration: self.calibration.clone(),
            allow_local_files: true,
        }
    }
}

pub fn run(a: &DefaultArgs) -> Result<()> {
    let sets = a.save.validate()?;
    let mut req = a.to_input().search_request()?;
    req.limits = a.limits.limits();
    // The top list must be at least as long as the folders --save_dir writes.
    if a.save.save_dir.is_some() {
        req.top_n = req.top_n.max(a.save.save_top);
    }
    let started = std::time::Instant::now();
    let bar = crate::progress::Bar::new(!a.json);
    let mut result = search(&req, Some(&|d, t| bar.update(d, t)))?;
    bar.finish();
    if a.save.save_dir.is_some() {
        let n = aicfg_gen::file_notes(&req, &result, &sets);
        result.notes.extend(n);
    }
    if a.json {
        crate::emitln!("{}", serde_json::to_string_pretty(&json_view(&result))?);
    } else {
        crate::emitf!("{}", render(&result));
    }
    if let Some(dir) = crate::save::save(&a.save, sets, &req, &result)? {
        eprintln!("deployment files written to {}", dir.display());
    }
    let evaluated: usize = result.modes.iter().map(|m| m.evaluated).sum();
    eprintln!(
        "searched {evaluated} deployments in {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}

fn title(mode: ServeMode) -> &'static str {
    match mode {
        ServeMode::Agg => "Agg",
        ServeMode::Disagg => "Disagg",
        ServeMode::Static => "Static",
    }
}

const RULE: &str = "  ----------------------------------------------------------------------------";

pub fn render(r: &SearchResult) -> String {
    render_with(r, true)
}

/// The report without its Pareto chart (`cli exp` draws one chart for every experiment).
pub fn render_without_chart(r: &SearchResult) -> String {
    render_with(r, false)
}

fn render_with(r: &SearchResult, chart: bool) -> String {
    let mut o = String::new();
    let stars = "*".repeat(80);
    let _ = writeln!(o, "{stars}");
    let _ = writeln!(o, "*{:^78}*", "aicfg deployment search results");
    let _ = writeln!(o, "{stars}");
    let _ = writeln!(o, "{RULE}");
    let _ = writeln!(o, "  Input Configuration & SLA Target:");
    let _ = writeln!(
        o,
        "    Model: {} (is_moe: {})",
        r.model,
        if r.is_moe { "True" } else { "False" }
    );
    match (r.total_gpus, r.target) {
        (Some(g), _) => {
            let _ = writeln!(o, "    Total GPUs: {g}");
        }
        (None, _) => {
            let _ = writeln!(o, "    Total GPUs: as few as the target load needs");
        }
    }
    if let Some(t) = r.target {
        let _ = writeln!(o, "    Target Load: {}", target_text(t));
    }
    let backends: Vec<&str> = r.backends.iter().map(|b| b.name()).collect();
    let _ = writeln!(
        o,
        "    System: {}{}  Backend: {}  Database: {}",
        r.system,
        if r.decode_system != r.system {
            format!(" (decode: {})", r.decode_system)
        } else {
            String::new()
        },
        backends.join(", "),
        r.database_mode
    );
    let w = &r.workload;
    let _ = writeln!(
        o,
        "    I/O Length (tokens): Input={}, Output={}{}",
        w.isl,
        w.osl,
        if w.prefix > 0.0 {
            format!(", cached prefix={}", w.prefix)
        } else {
            String::new()
        }
    );
    if w.nextn > 0 {
        let _ = writeln!(
            o,
            "    MTP: nextn={} ({:.2} draft tokens accepted per step)",
            w.nextn, w.nextn_accepted
        );
    }
    let _ = writeln!(
        o,
        "    SLA Target: TTFT <= {:.1}ms, TPOT <= {:.1}ms{}",
        r.ttft_ms,
        r.tpot_ms,
        if r.sla_percentile.is_mean() {
            String::new()
        } else {
            format!(
                " at {} (simulated top configurations)",
                r.sla_percentile.name()
            )
        }
    );
    let _ = writeln!(o, "{RULE}");
    best_block(&mut o, r);
    percentile_table(&mut o, r);
    if chart {
        let _ = writeln!(o, "{RULE}");
        let _ = writeln!(o, "  Pareto Frontier:");
        o.push_str(&pareto_chart(r));
    }
    let _ = writeln!(o, "{RULE}");
    worker_setup(&mut o, r);
    let _ = writeln!(o, "{RULE}");
    let _ = writeln!(o, "  Deployment Details:");
    let _ = writeln!(o, "    (p) stands for prefill, (d) stands for decode, bs stands for batch size (per attention-DP rank), a replica stands for the smallest scalable unit xPyD of the disagg system");
    let _ = writeln!(
        o,
        "    Some math: total gpus used = replicas * gpus/replica"
    );
    let _ = writeln!(o, "               gpus/replica = (p)gpus/worker * (p)workers + (d)gpus/worker * (d)workers; for Agg, gpus/replica = gpus/worker");
    let _ = writeln!(o, "               gpus/worker = tp * pp * dp = etp * ep * pp for MoE models; tp * pp for dense models");
    let _ = writeln!(o, "               concurrency = concurrency/replica * replicas; concurrency/replica = bs * dp * (d)workers");
    for m in r.modes.iter().rev() {
        let _ = writeln!(o);
        top_table(&mut o, r, m);
    }
    if !r.notes.is_empty() {
        let _ = writeln!(o);
        for n in &r.notes {
            let _ = writeln!(o, "  note: {n}");
        }
    }
    let _ = writeln!(o, "{stars}");
    o
}

fn target_text(t: LoadTarget) -> String {
    match t {
        LoadTarget::RequestRate(x) => format!("{x} requests/s"),
        LoadTarget::Concurrency(x) => format!("{x} concurrent requests"),
    }
}

fn best_block(o: &mut String, r: &SearchResult) {
    let recommend = r.target.is_some();
    let Some(best) = &r.best else {
        let at = if r.sla_percentile.is_mean() {
            String::new()
        } else {
            format!(" at {}", r.sla_percentile.name())
        };
        let _ = writeln!(
            o,
            "  No configuration meets the SLA (TTFT <= {:.1}ms, TPOT <= {:.1}ms{at}).",
            r.ttft_ms, r.tpot_ms
        );
        let _ = writeln!(
            o,
            "  The tables below show the closest points; relax --ttft/--tpot, add GPUs, or try another quantization."
        );
        return;
    };
    let verdict = match &r.comparison {
        Some(c) => format!(
            " ({} {:.2}x better than {})",
            mode_name(c.winner),
            c.ratio,
            mode_name(c.loser)
        ),
        None => String::new(),
    };
    let by_cost = r.rank_by == RankBy::Cost;
    if recommend && by_cost {
        let _ = writeln!(
            o,
            "  Overall best system chosen: {} at ${:.2} per hour{}",
            mode_name(best.mode),
            best.cost.map_or(f64::NAN, |c| c.usd_per_hour),
            verdict.replace("better", "cheaper")
        );
    } else if recommend {
        let _ = writeln!(
            o,
            "  Overall best system chosen: {} with {} GPUs{}",
            mode_name(best.mode),
            best.total_gpus_used,
            verdict
        );
    } else if by_cost {
        let _ = writeln!(
            o,
            "  Overall best system chosen: {} at ${:.3} per million output tokens{}",
            mode_name(best.mode),
            best.cost.map_or(f64::NAN, |c| c.usd_per_m_output_tokens),
            verdict.replace("better", "cheaper")
        );
    } else {
        let _ = writeln!(
            o,
            "  Overall best system chosen: {} at {:.2} tokens/s/gpu{}",
            mode_name(best.mode),
            best.tokens_per_s_per_gpu,
            verdict
        );
    }
    for m in &r.modes {
        match m.top.first() {
            Some(c) if m.sla_met => {
                let _ = writeln!(
                    o,
                    "    - {} Actual Best: {:.2} tokens/s/gpu  {:.2} tokens/s/user | TTFT: {:.2}ms TPOT: {:.2}ms{}",
                    title(m.mode),
                    c.tokens_per_s_per_gpu,
                    c.tokens_per_s_per_user,
                    c.ttft_ms,
                    c.tpot_ms,
                    if recommend {
                        format!(" | {} GPUs", c.total_gpus_used)
                    } else {
                        String::new()
                    }
                );
            }
            _ => {
                let _ = writeln!(o, "    - {}: no configuration meets the SLA", title(m.mode));
            }
        }
    }
    let _ = writeln!(o, "  Overall Best Configuration:");
    let _ = writeln!(
        o,
        "    - Best Throughput: {:.2} tokens/s/gpu ({:.2} tokens/s in total)",
        best.tokens_per_s_per_gpu,
        best.tokens_per_s_per_gpu * best.total_gpus as f64
    );
    let _ = writeln!(
        o,
        "    - User Throughput: {:.2} tokens/s/user",
        best.tokens_per_s_per_user
    );
    let _ = writeln!(o, "    - TTFT: {:.2}ms", best.ttft_ms);
    let _ = writeln!(o, "    - TPOT: {:.2}ms", best.tpot_ms);
    let _ = writeln!(o, "    - Request Latency: {:.2}ms", best.request_latency_ms);
    let _ = writeln!(
        o,
        "    - Request Rate: {:.3} requests/s at concurrency {}",
        best.request_rate,
        fmt_num(best.concurrency)
    );
    if let Some(c) = &best.cost {
        let _ = writeln!(
            o,
            "    - Cost: ${:.3} per million output tokens (or ${:.3} per million input tokens); ${:.2} per hour for {} GPUs",
            c.usd_per_m_output_tokens, c.usd_per_m_input_tokens, c.usd_per_hour, best.total_gpus_used
        );
    }
    if let Some(p) = best.load_served_pct {
        let _ = writeln!(
            o,
            "    - The GPU ceiling serves only {p:.1}% of the target load"
        );
    }
    let layout = match (&best.agg, &best.prefill, &best.decode) {
        (Some(a), _, _) => format!(
            "{} x 1 worker {} (bs {})",
            plural(best.replicas, "replica"),
            a.parallel_label,
            a.batch_size
        ),
        (None, Some(p), Some(d)) => format!(
            "{} x ({}P {} bs {} + {}D {} bs {})",
            plural(best.replicas, "replica"),
            p.workers,
            p.parallel_label,
            p.batch_size,
            d.workers,
            d.parallel_label,
            d.batch_size
        ),
        _ => String::new(),
    };
    let _ = writeln!(
        o,
        "    - Deployment: {} on {} of {} GPUs ({})",
        layout,
        best.total_gpus_used,
        best.total_gpus,
        best.backend.name()
    );
}

/// The simulated rows: level from the closed form, shape from the simulator
/// (`aicfg_core::search::percentile`).
fn percentile_table(o: &mut String, r: &SearchResult) {
    if r.percentiles.is_empty() {
        return;
    }
    let n = r
        .modes
        .iter()
        .map(|m| r.percentiles.iter().filter(|p| p.mode == m.mode).count())
        .max()
        .unwrap_or(0);
    let _ = writeln!(o, "{RULE}");
    if r.sla_percentile.is_mean() {
        let _ = writeln!(
            o,
            "  Predicted latency percentiles (simulated top {n} per mode):"
        );
    } else {
        let _ = writeln!(
            o,
            "  Predicted latency percentiles (simulated down the ranking for the SLA at {}):",
            r.sla_percentile.name()
        );
    }
    let mut t = Table::new();
    t.load_preset(ASCII_SEED);
    let multi_backend = r.backends.len() > 1;
    let mut header = vec!["mode", "rank"];
    if multi_backend {
        header.push("backend");
    }
    header.extend([
        "layout",
        "concurrency",
        "TTFT mean",
        "TTFT p50",
        "TTFT p90",
        "TTFT p99",
        "TPOT mean",
        "TPOT p90",
        "TPOT p99",
        "tokens/s/gpu",
    ]);
    t.set_header(header);
    for p in &r.percentiles {
        let mut row = vec![
            mode_name(p.mode).to_string(),
            p.rank.map_or("-".into(), |k| k.to_string()),
        ];
        if multi_backend {
            row.push(p.backend.name().to_string());
        }
        row.extend([
            p.layout.clone(),
            fmt_num(p.concurrency),
            format!("{:.2}", p.ttft_ms.mean),
            format!("{:.2}", p.ttft_ms.p50),
            format!("{:.2}", p.ttft_ms.p90),
            format!("{:.2}", p.ttft_ms.p99),
            format!("{:.2}", p.tpot_ms.mean),
            format!("{:.2}", p.tpot_ms.p90),
            format!("{:.2}", p.tpot_ms.p99),
            format!("{:.2}", p.tokens_per_s_per_gpu),
        ]);
        t.add_row(row);
    }
    for col in t.column_iter_mut() {
        col.set_cell_alignment(CellAlignment::Right);
    }
    for line in t.to_string().lines() {
        let _ = writeln!(o, "    {line}");
    }
    let _ = writeln!(
        o,
        "    ms; the mean is the closed form's, each percentile the mean times the simulator's percentile/mean ratio (benchmark replay at the row's concurrency)."
    );
    if !r.sla_percentile.is_mean() {
        let _ = writeln!(
            o,
            "    --sla-percentile {p}: rank is the row of the top table below; '-' rows were simulated and left out (they miss TTFT or TPOT at {p}). Up to {SIM_MAX_RUNS} rows per mode are simulated to find {SIM_TOP_K} that meet it.",
            p = r.sla_percentile.name()
        );
    }
}

fn plural(n: u32, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn pareto_chart(r: &SearchResult) -> String {
    let recommend = r.target.is_some();
    let y = |c: &Candidate| {
        if recommend {
            c.replica_tokens_per_s_per_gpu
        } else {
            c.tokens_per_s_per_gpu
        }
    };
    let series: Vec<Series> = r
        .modes
        .iter()
        .rev()
        .map(|m| Series {
            label: mode_name(m.mode).to_string(),
            mark: if m.mode == ServeMode::Agg { 'a' } else { 'd' },
            points: m
                .pareto
                .iter()
                .map(|c| (c.tokens_per_s_per_user, y(c)))
                .collect(),
        })
        .collect();
    if series.iter().all(|s| s.points.is_empty()) {
        return "    (no point meets the TTFT target; nothing to draw)\n".to_string();
    }
    let best = r.best.as_ref().map(|c| (c.tokens_per_s_per_user, y(c)));
    let text = chart::render(
        &format!("{} Pareto Frontier: tokens/s/gpu vs tokens/s/user", r.model),
        &series,
        best,
    );
    let mut out = String::new();
    for line in text.lines() {
        let _ = writeln!(out, "    {line}");
    }
    out
}

fn quant_line(
    q: &aicfg_core::QuantConfig,
    o: &aicfg_core::estimate::QuantOrigin,
    moe: bool,
) -> String {
    let mut s = format!("GEMM: {} ({})", q.gemm.name(), origin_tag(&o.gemm));
    if moe {
        let _ = write!(s, ", MoE: {} ({})", q.moe.name(), origin_tag(&o.moe));
    }
    let _ = write!(
        s,
        ", KVCache: {} ({}), FMHA: {} ({}), Comm: {} ({})",
        q.kvcache.name(),
        origin_tag(&o.kvcache),
        q.fmha.name(),
        origin_tag(&o.fmha),
        q.comm.name(),
        origin_tag(&o.comm)
    );
    s
}

fn worker_setup(o: &mut String, r: &SearchResult) {
    let _ = writeln!(o, "  Worker Setup:");
    let _ = writeln!(
        o,
        "    Model: {} (is_moe: {})",
        r.model,
        if r.is_moe { "True" } else { "False" }
    );
    for q in &r.quant {
        let role = match q.role {
            Role::Agg => "Agg",
            Role::Prefill => "Disagg Prefill",
            Role::Decode => "Disagg Decode",
        };
        let _ = writeln!(
            o,
            "    {role}: {} ({}) — {}",
            q.system,
            q.backend.name(),
            quant_line(&q.quant, &q.origin, r.is_moe)
        );
    }
    let _ = writeln!(o, "    {QUANT_HINT}");
}

fn fmt_num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-6 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

fn product(total: u32, parts: &[u32]) -> String {
    let f: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
    format!("{total} (={})", f.join("x"))
}

fn worker_gpus(w: &WorkerPlan, moe: bool) -> String {
    let p = &w.parallel;
    if moe {
        product(w.gpus, &[p.tp, p.pp, p.dp])
    } else {
        product(w.gpus, &[p.tp, p.pp])
    }
}

/// `+----+` tables with a header rule only, as the seeds print them.
const ASCII_SEED: &str = "||--+-++|    ++++++";

fn top_table(o: &mut String, r: &SearchResult, m: &ModeResult) {
    let recommend = r.target.is_some();
    let by_cost = r.rank_by == RankBy::Cost;
    let sorted = if !m.sla_met {
        "closest to the SLA; none meets it"
    } else if by_cost && recommend {
        "Sorted by cost per hour"
    } else if by_cost {
        "Sorted by $/M output tokens"
    } else if recommend {
        "Sorted by GPUs needed"
    } else {
        "Sorted by tokens/s/gpu"
    };
    let at = if r.sla_percentile.is_mean() {
        String::new()
    } else if m.sla_met {
        format!(
            "; simulated, meeting the SLA at {}",
            r.sla_percentile.name()
        )
    } else {
        format!("; simulated, at {}", r.sla_percentile.name())
    };
    let _ = writeln!(
        o,
        "{} Top Configurations: ({sorted}{at})",
        mode_name(m.mode)
    );
    if m.top.is_empty() {
        let _ = writeln!(
            o,
            "  (none: no {} deployment fits in GPU memory with these lists)",
            mode_name(m.mode)
        );
        return;
    }
    let multi_backend = r.backends.len() > 1;
    let mut header: Vec<&str> = vec!["Rank"];
    if multi_backend {
        header.push("backend");
    }
    let priced = m.top.iter().any(|c| c.cost.is_some());
    if priced {
        header.push("$/M output tokens");
    }
    header.extend([
        "tokens/s/gpu",
        "tokens/s/user",
        "TTFT",
        "TPOT",
        "concurrency",
        "total_gpus(used)",
        "replicas",
        "gpus/replica",
    ]);
    if m.mode == ServeMode::Agg {
        header.extend(["workers", "gpus/worker", "parallel", "bs"]);
    } else {
        header.extend([
            "(p)workers",
            "(p)gpus/worker",
            "(p)parallel",
            "(p)bs",
            "(d)workers",
            "(d)gpus/worker",
            "(d)parallel",
            "(d)bs",
        ]);
    }
    let mut t = Table::new();
    t.load_preset(ASCII_SEED);
    t.set_header(header.iter().map(Cell::new).collect::<Vec<_>>());
    for (i, c) in m.top.iter().enumerate() {
        let mut row: Vec<String> = vec![format!("{}", i + 1)];
        if multi_backend {
            row.push(c.backend.name().to_string());
        }
        if priced {
            row.push(
                c.cost
                    .map_or("-".into(), |c| format!("{:.3}", c.usd_per_m_output_tokens)),
            );
        }
        row.extend([
            format!("{:.2}", c.tokens_per_s_per_gpu),
            format!("{:.2}", c.tokens_per_s_per_user),
            format!("{:.2}", c.ttft_ms),
            format!("{:.2}", c.tpot_ms),
            format!(
                "{}(={}x{})",
                fmt_num(c.concurrency),
                fmt_num(c.concurrency_per_replica),
                c.replicas
            ),
            format!(
                "{} ({}={}x{})",
                c.total_gpus, c.total_gpus_used, c.replicas, c.gpus_per_replica
            ),
            c.replicas.to_string(),
        ]);
        match (&c.agg, &c.prefill, &c.decode) {
            (Some(a), _, _) => {
                row.push(c.gpus_per_replica.to_string());
                row.push(c.replicas.to_string());
                row.push(worker_gpus(a, r.is_moe));
                row.push(a.parallel_label.clone());
                row.push(a.batch_size.to_string());
            }
            (None, Some(p), Some(d)) => {
                row.push(format!(
                    "{} (={}x{}+{}x{})",
                    c.gpus_per_replica, p.workers, p.gpus, d.workers, d.gpus
                ));
                for w in [p, d] {
                    row.push(w.workers.to_string());
                    row.push(worker_gpus(w, r.is_moe));
                    row.push(w.parallel_label.clone());
                    row.push(w.batch_size.to_string());
                }
            }
            _ => {}
        }
        t.add_row(
            row.into_iter()
                .map(|s| Cell::new(s).set_alignment(CellAlignment::Center))
                .collect::<Vec<_>>(),
        );
    }
    for col in t.column_iter_mut() {
        col.set_cell_alignment(CellAlignment::Center);
    }
    let _ = writeln!(o, "{t}");
    for (i, c) in m
        .top
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.same_as.is_empty())
    {
        let _ = writeln!(
            o,
            "  rank {} also stands for {} more layout{} with the same numbers (another expert split): {}",
            i + 1,
            c.same_as.len(),
            if c.same_as.len() == 1 { "" } else { "s" },
            c.same_as.join(", ")
        );
    }
}
