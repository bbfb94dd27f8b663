//! `aicfg cli estimate`: one deployment, a readable report or `--json`.
use aicfg_core::estimate::{QuantRequest, WorkerSpec};
use aicfg_core::model::graph::Parallel;
use aicfg_core::perf::EmpiricalParams;
use aicfg_core::quant::{CommQuant, FmhaQuant, GemmQuant, KvQuant, MoeQuant};
use aicfg_core::{
    estimate, Backend, DatabaseMode, EstimateReport, EstimateRequest, ModelRegistry, ServeMode,
    SystemRegistry, Workload,
};
use anyhow::{bail, Context, Result};
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct EstimateArgs {
    /// Model: a built-in name (QWEN3_32B), a Hugging Face id (Qwen/Qwen3-32B) or a path to a config.json.
    #[arg(long)]
    pub model: String,
    /// GPU system (h100_sxm, h200_sxm, b200_sxm, gb200, a100_sxm, b300_sxm, gb300, ...).
    #[arg(long)]
    pub system: String,
    /// System of the decode workers in disagg mode (defaults to --system).
    #[arg(long = "decode-system", alias = "decode_system")]
    pub decode_system: Option<String>,
    /// Serving framework: trtllm, vllm or sglang.
    #[arg(long, default_value = "trtllm")]
    pub backend: String,
    /// agg (in-flight batching), disagg (prefill + decode workers) or static (one batch).
    #[arg(
        long = "estimate-mode",
        alias = "estimate_mode",
        alias = "mode",
        default_value = "agg"
    )]
    pub estimate_mode: String,
    #[arg(long, default_value_t = 4000, allow_negative_numbers = true)]
    pub isl: i64,
    #[arg(long, default_value_t = 1000, allow_negative_numbers = true)]
    pub osl: i64,
    /// Cached prefix tokens of each prompt.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub prefix: i64,
    /// Agg/static: concurrent requests per attention-DP rank (worker concurrency = batch × dp).
    #[arg(
        long = "batch-size",
        alias = "batch_size",
        default_value_t = 1,
        allow_negative_numbers = true
    )]
    pub batch_size: i64,
    #[arg(long = "tp-size", alias = "tp_size", alias = "tp", default_value_t = 1)]
    pub tp_size: u32,
    #[arg(long = "pp-size", alias = "pp_size", alias = "pp", default_value_t = 1)]
    pub pp_size: u32,
    #[arg(
        long = "attention-dp-size",
        alias = "attention_dp_size",
        alias = "dp",
        default_value_t = 1
    )]
    pub attention_dp_size: u32,
    #[arg(long = "moe-tp-size", alias = "moe_tp_size")]
    pub moe_tp_size: Option<u32>,
    #[arg(long = "moe-ep-size", alias = "moe_ep_size")]
    pub moe_ep_size: Option<u32>,
    #[arg(long = "prefill-tp-size", alias = "prefill_tp_size")]
    pub prefill_tp_size: Option<u32>,
    #[arg(long = "prefill-pp-size", alias = "prefill_pp_size")]
    pub prefill_pp_size: Option<u32>,
    #[arg(
        long = "prefill-attention-dp-size",
        alias = "prefill_attention_dp_size"
    )]
    pub prefill_attention_dp_size: Option<u32>,
    #[arg(long = "prefill-moe-tp-size", alias = "prefill_moe_tp_size")]
    pub prefill_moe_tp_size: Option<u32>,
    #[arg(long = "prefill-moe-ep-size", alias = "prefill_moe_ep_size")]
    pub prefill_moe_ep_size: Option<u32>,
    #[arg(
        long = "prefill-batch-size",
        alias = "prefill_batch_size",
        default_value_t = 1
    )]
    pub prefill_batch_size: i64,
    #[arg(
        long = "prefill-num-workers",
        alias = "prefill_num_workers",
        default_value_t = 1
    )]
    pub prefill_num_workers: u32,
    #[arg(long = "decode-tp-size", alias = "decode_tp_size")]
    pub decode_tp_size: Option<u32>,
    #[arg(long = "decode-pp-size", alias = "decode_pp_size")]
    pub decode_pp_size: Option<u32>,
    #[arg(long = "decode-attention-dp-size", alias = "decode_attention_dp_size")]
    pub decode_attention_dp_size: Option<u32>,
    #[arg(long = "decode-moe-tp-size", alias = "decode_moe_tp_size")]
    pub decode_moe_tp_size: Option<u32>,
    #[arg(long = "decode-moe-ep-size", alias = "decode_moe_ep_size")]
    pub decode_moe_ep_size: Option<u32>,
    #[arg(
        long = "decode-batch-size",
        alias = "decode_batch_size",
        default_value_t = 1
    )]
    pub decode_batch_size: i64,
    #[arg(
        long = "decode-num-workers",
        alias = "decode_num_workers",
        default_value_t = 1
    )]
    pub decode_num_workers: u32,
    /// GEMM format: bfloat16, fp8, fp8_block, fp8_static, sq, int8_wo, int4_wo, nvfp4, ...
    #[arg(long = "gemm-quant-mode", alias = "gemm_quant_mode")]
    pub gemm_quant_mode: Option<String>,
    #[arg(long = "moe-quant-mode", alias = "moe_quant_mode")]
    pub moe_quant_mode: Option<String>,
    #[arg(long = "kvcache-quant-mode", alias = "kvcache_quant_mode")]
    pub kvcache_quant_mode: Option<String>,
    #[arg(long = "fmha-quant-mode", alias = "fmha_quant_mode")]
    pub fmha_quant_mode: Option<String>,
    #[arg(long = "comm-quant-mode", alias = "comm_quant_mode")]
    pub comm_quant_mode: Option<String>,
    /// MTP draft tokens per step.
    #[arg(long, default_value_t = 0)]
    pub nextn: u32,
    /// Mean acceptance rate of each draft token (0..1).
    #[arg(
        long = "nextn-accept-rate",
        alias = "nextn_accept_rate",
        default_value_t = 0.0
    )]
    pub nextn_accept_rate: f64,
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
    /// KV-cache memory fraction (TRT-LLM: of free memory; vLLM/SGLang: of total).
    #[arg(long = "free-gpu-memory-fraction", alias = "free_gpu_memory_fraction")]
    pub free_gpu_memory_fraction: Option<f64>,
    /// Directory of extra system YAML files.
    #[arg(long = "systems-path", alias = "systems_path")]
    pub systems_path: Option<PathBuf>,
    /// Calibration YAML replacing the embedded empirical constants.
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    pub json: bool,
}

fn positive(name: &str, v: i64) -> Result<f64> {
    if v <= 0 {
        bail!("--{name} must be a positive integer, got {v}");
    }
    Ok(v as f64)
}

fn parse_opt<T>(v: &Option<String>, f: fn(&str) -> aicfg_core::Result<T>) -> Result<Option<T>> {
    v.as_deref().map(f).transpose().map_err(Into::into)
}

pub fn build_request(a: &EstimateArgs) -> Result<EstimateRequest> {
    let mut systems = SystemRegistry::builtin();
    if let Some(dir) = &a.systems_path {
        systems.add_dir(dir)?;
    }
    let model = ModelRegistry::builtin().resolve(&a.model)?;
    let system = systems.get(&a.system)?.clone();
    let decode_system = a
        .decode_system
        .as_deref()
        .map(|s| systems.get(s).cloned())
        .transpose()?;
    let backend = Backend::parse(&a.backend)?;
    let mode = ServeMode::parse(&a.estimate_mode)?;
    let isl = positive("isl", a.isl)?;
    let osl = positive("osl", a.osl)?;
    if a.prefix < 0 {
        bail!("--prefix must be zero or positive, got {}", a.prefix);
    }
    if !(0.0..=1.0).contains(&a.nextn_accept_rate) {
        bail!(
            "--nextn-accept-rate must be between 0 and 1, got {}",
            a.nextn_accept_rate
        );
    }
    let accepted: f64 = (1..=a.nextn)
        .map(|i| a.nextn_accept_rate.powi(i as i32))
        .sum();
    let quant = QuantRequest {
        gemm: parse_opt(&a.gemm_quant_mode, GemmQuant::parse)?,
        moe: parse_opt(&a.moe_quant_mode, MoeQuant::parse)?,
        kvcache: parse_opt(&a.kvcache_quant_mode, KvQuant::parse)?,
        fmha: parse_opt(&a.fmha_quant_mode, FmhaQuant::parse)?,
        comm: parse_opt(&a.comm_quant_mode, CommQuant::parse)?,
    };
    let moe = model.family.is_moe();
    let mk =
        |tp: u32, pp: u32, dp: u32, etp: Option<u32>, ep: Option<u32>, bs: f64, workers: u32| {
            // MoE default: experts split like the attention (etp = tp·dp, ep = 1) unless given.
            let (etp, ep) = match (etp, ep) {
                (Some(t), Some(e)) => (t, e),
                (Some(t), None) => (t, if moe { (tp * dp / t.max(1)).max(1) } else { 1 }),
                (None, Some(e)) => ((tp * dp / e.max(1)).max(1), e),
                (None, None) => (if moe { tp * dp } else { 1 }, 1),
            };
            WorkerSpec {
                parallel: Parallel {
                    tp,
                    pp,
                    dp,
                    moe_tp: etp,
                    moe_ep: ep,
                },
                batch_size: bs,
                workers,
            }
        };
    let agg = mk(
        a.tp_size,
        a.pp_size,
        a.attention_dp_size,
        a.moe_tp_size,
        a.moe_ep_size,
        positive("batch-size", a.batch_size)?,
        1,
    );
    let prefill = mk(
        a.prefill_tp_size.unwrap_or(a.tp_size),
        a.prefill_pp_size.unwrap_or(a.pp_size),
        a.prefill_attention_dp_size.unwrap_or(a.attention_dp_size),
        a.prefill_moe_tp_size.or(a.moe_tp_size),
        a.prefill_moe_ep_size.or(a.moe_ep_size),
        positive("prefill-batch-size", a.prefill_batch_size)?,
        a.prefill_num_workers.max(1),
    );
    let decode = mk(
        a.decode_tp_size.unwrap_or(a.tp_size),
        a.decode_pp_size.unwrap_or(a.pp_size),
        a.decode_attention_dp_size.unwrap_or(a.attention_dp_size),
        a.decode_moe_tp_size.or(a.moe_tp_size),
        a.decode_moe_ep_size.or(a.moe_ep_size),
        positive("decode-batch-size", a.decode_batch_size)?,
        a.decode_num_workers.max(1),
    );
    let calibration = match &a.calibration {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading calibration {}", p.display()))?;
            Some(EmpiricalParams::from_yaml(&text)?)
        }
        None => None,
    };
    Ok(EstimateRequest {
        model,
        system,
        decode_system,
        backend,
        mode,
        workload: Workload {
            isl,
            osl,
            prefix: a.prefix as f64,
            nextn: a.nextn,
            nextn_accepted: accepted,
        },
        quant,
        agg,
        prefill,
        decode,
        database_mode: DatabaseMode::parse(&a.database_mode)?,
        backend_version: a.backend_version.clone(),
        free_gpu_memory_fraction: a.free_gpu_memory_fraction,
        calibration,
    })
}

pub fn run(a: &EstimateArgs) -> Result<()> {
    let req = build_request(a)?;
    let r = estimate(&req)?;
    if a.json {
        crate::emitln!("{}", serde_json::to_string_pretty(&json_view(&r))?);
    } else {
        crate::emitf!("{}", render(&r));
    }
    Ok(())
}

fn json_view(r: &EstimateReport) -> serde_json::Value {
    let mut v = serde_json::to_value(r).expect("report serializes");
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    if let Some(o) = v.as_object_mut() {
        for k in [
            "ttft_ms",
            "tpot_ms",
            "request_latency_ms",
            "tokens_per_s",
            "tokens_per_s_per_gpu",
            "tokens_per_s_per_user",
            "request_rate",
            "memory_gib",
            "context_ms",
            "decode_step_ms",
        ] {
            if let Some(x) = o.get(k).and_then(|x| x.as_f64()) {
                o.insert(k.to_string(), serde_json::json!(round(x)));
            }
        }
    }
    v
}

fn num(x: f64) -> Cell {
    Cell::new(format!("{x:.3}")).set_alignment(CellAlignment::Right)
}

pub fn render(r: &EstimateReport) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "aicfg estimate — {} on {} ({}, {} mode, {} database)\n",
        r.model,
        r.workers.first().map(|w| w.system.as_str()).unwrap_or(""),
        r.backend,
        match r.mode {
            ServeMode::Agg => "agg",
            ServeMode::Disagg => "disagg",
            ServeMode::Static => "static",
        },
        match &r.database {
            Some(d) => format!("{}: {d}", r.database_mode),
            None => r.database_mode.to_string(),
        }
    ));
    out.push_str(&format!("isl {} / osl {}\n\n", r.isl, r.osl));
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(vec!["metric", "value"]);
    for (k, v) in [
        ("TTFT (ms)", r.ttft_ms),
        ("TPOT (ms)", r.tpot_ms),
        ("request latency (ms)", r.request_latency_ms),
        ("tokens/s", r.tokens_per_s),
        ("tokens/s/gpu", r.tokens_per_s_per_gpu),
        ("tokens/s/user", r.tokens_per_s_per_user),
        ("request rate (req/s)", r.request_rate),
        ("concurrency", r.concurrency),
        ("GPUs", r.num_gpus as f64),
    ] {
        t.add_row(vec![Cell::new(k), num(v)]);
    }
    out.push_str(&format!("{t}\n\nMemory per GPU (GiB)\n"));
    let mut m = Table::new();
    m.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "worker",
        "parallel",
        "batch",
        "weights",
        "kv cache",
        "activations",
        "nccl",
        "other",
        "total",
        "capacity",
        "kv budget",
        "verdict",
    ]);
    for w in &r.workers {
        let mb = &w.memory;
        m.add_row(vec![
            Cell::new(w.role),
            Cell::new(&w.parallel),
            num(w.batch_size),
            num(mb.weights_gib),
            num(mb.kv_cache_gib),
            num(mb.activations_gib),
            num(mb.nccl_gib),
            num(mb.other_gib),
            num(mb.total_gib),
            num(mb.capacity_gib),
            num(mb.kv_budget_gib),
            Cell::new(if mb.oom { "OOM" } else { "fits" }),
        ]);
    }
    out.push_str(&format!("{m}\n"));
    for w in &r.workers {
        out.push_str(&format!(
            "{} quantization: gemm {}, moe {}, kvcache {}, fmha {}, comm {}\n",
            w.role, w.quant.gemm, w.quant.moe, w.quant.kvcache, w.quant.fmha, w.quant.comm
        ));
    }
    for (title, ops, total) in [
        ("Context pass (one prefill)", &r.context_ops, r.context_ms),
        (
            "Decode step (running batch)",
            &r.decode_ops,
            r.decode_step_ms,
        ),
    ] {
        let mut o = Table::new();
        o.load_preset(UTF8_FULL_CONDENSED)
            .set_header(vec!["op", "count", "ms", "share", "source"]);
        for op in ops.iter() {
            o.add_row(vec![
                Cell::new(op.name),
                num(op.count),
                num(op.ms),
                Cell::new(format!("{:.1}%", 100.0 * op.ms / total.max(1e-12)))
                    .set_alignment(CellAlignment::Right),
                Cell::new(op.source),
            ]);
        }
        o.add_row(vec![
            Cell::new("total"),
            Cell::new(""),
            num(total),
            Cell::new(""),
            Cell::new(""),
        ]);
        out.push_str(&format!("\n{title}\n{o}\n"));
    }
    for n in &r.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}
