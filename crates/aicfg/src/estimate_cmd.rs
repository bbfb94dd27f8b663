//! `aicfg cli estimate`: one deployment, a readable report or `--json`.
use crate::view::{estimate_json as json_view, origin_tag, QUANT_HINT};
use aicfg_core::input::EstimateInput;
use aicfg_core::{estimate, EstimateReport, ServeMode};
use anyhow::Result;
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
    /// Input (prompt) tokens per request.
    #[arg(long, default_value_t = 4000, allow_negative_numbers = true)]
    pub isl: i64,
    /// Output tokens per request.
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
    /// Tensor-parallel GPUs of each agg/static worker (attention and dense GEMMs).
    #[arg(long = "tp-size", alias = "tp_size", alias = "tp", default_value_t = 1)]
    pub tp_size: u32,
    /// Pipeline stages of each agg/static worker.
    #[arg(long = "pp-size", alias = "pp_size", alias = "pp", default_value_t = 1)]
    pub pp_size: u32,
    /// Attention data-parallel ranks of each agg/static worker (MoE models).
    #[arg(
        long = "attention-dp-size",
        alias = "attention_dp_size",
        alias = "dp",
        default_value_t = 1
    )]
    pub attention_dp_size: u32,
    /// Tensor-parallel split of each expert (MoE; default: tp × dp / moe-ep-size, or tp × dp when ep is unset too).
    #[arg(long = "moe-tp-size", alias = "moe_tp_size")]
    pub moe_tp_size: Option<u32>,
    /// Expert-parallel GPUs (MoE; default: 1, experts split by moe-tp-size).
    #[arg(long = "moe-ep-size", alias = "moe_ep_size")]
    pub moe_ep_size: Option<u32>,
    /// Disagg: tensor-parallel GPUs of each prefill worker (default: --tp-size).
    #[arg(long = "prefill-tp-size", alias = "prefill_tp_size")]
    pub prefill_tp_size: Option<u32>,
    /// Disagg: pipeline stages of each prefill worker (default: --pp-size).
    #[arg(long = "prefill-pp-size", alias = "prefill_pp_size")]
    pub prefill_pp_size: Option<u32>,
    /// Disagg: attention data-parallel ranks of each prefill worker (default: --attention-dp-size).
    #[arg(
        long = "prefill-attention-dp-size",
        alias = "prefill_attention_dp_size"
    )]
    pub prefill_attention_dp_size: Option<u32>,
    /// Disagg: expert tensor-parallel split of each prefill worker (default: --moe-tp-size).
    #[arg(long = "prefill-moe-tp-size", alias = "prefill_moe_tp_size")]
    pub prefill_moe_tp_size: Option<u32>,
    /// Disagg: expert-parallel GPUs of each prefill worker (default: --moe-ep-size).
    #[arg(long = "prefill-moe-ep-size", alias = "prefill_moe_ep_size")]
    pub prefill_moe_ep_size: Option<u32>,
    /// Disagg: prompts per prefill step per attention-DP rank (requests).
    #[arg(
        long = "prefill-batch-size",
        alias = "prefill_batch_size",
        default_value_t = 1
    )]
    pub prefill_batch_size: i64,
    /// Disagg: prefill workers per replica.
    #[arg(
        long = "prefill-num-workers",
        alias = "prefill_num_workers",
        default_value_t = 1
    )]
    pub prefill_num_workers: u32,
    /// Disagg: tensor-parallel GPUs of each decode worker (default: --tp-size).
    #[arg(long = "decode-tp-size", alias = "decode_tp_size")]
    pub decode_tp_size: Option<u32>,
    /// Disagg: pipeline stages of each decode worker (default: --pp-size).
    #[arg(long = "decode-pp-size", alias = "decode_pp_size")]
    pub decode_pp_size: Option<u32>,
    /// Disagg: attention data-parallel ranks of each decode worker (default: --attention-dp-size).
    #[arg(long = "decode-attention-dp-size", alias = "decode_attention_dp_size")]
    pub decode_attention_dp_size: Option<u32>,
    /// Disagg: expert tensor-parallel split of each decode worker (default: --moe-tp-size).
    #[arg(long = "decode-moe-tp-size", alias = "decode_moe_tp_size")]
    pub decode_moe_tp_size: Option<u32>,
    /// Disagg: expert-parallel GPUs of each decode worker (default: --moe-ep-size).
    #[arg(long = "decode-moe-ep-size", alias = "decode_moe_ep_size")]
    pub decode_moe_ep_size: Option<u32>,
    /// Disagg: concurrent requests per decode worker per attention-DP rank.
    #[arg(
        long = "decode-batch-size",
        alias = "decode_batch_size",
        default_value_t = 1
    )]
    pub decode_batch_size: i64,
    /// Disagg: decode workers per replica.
    #[arg(
        long = "decode-num-workers",
        alias = "decode_num_workers",
        default_value_t = 1
    )]
    pub decode_num_workers: u32,
    /// GEMM format: bfloat16, fp8, fp8_block, fp8_static, sq, int8_wo, int4_wo, nvfp4, ...
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
    /// Exit 3 when the deployment does not fit in GPU memory (the report is printed either way,
    /// headed by an OOM line).
    #[arg(long)]
    pub strict: bool,
    /// MTP draft tokens per step.
    #[arg(long, default_value_t = 0)]
    pub nextn: u32,
    /// Acceptance of the i-th draft token, comma separated (default 0.85,0.3,0,0,0, as in
    /// `cli default`).
    #[arg(
        long = "nextn-accept-rates",
        alias = "nextn_accept_rates",
        value_delimiter = ',',
        conflicts_with = "nextn_accept_rate",
        value_parser = crate::limits_args::finite
    )]
    pub nextn_accept_rates: Option<Vec<f64>>,
    /// Or one per-token acceptance rate r (0..1): draft i is kept with probability r^i.
    #[arg(long = "nextn-accept-rate", alias = "nextn_accept_rate", value_parser = crate::limits_args::finite)]
    pub nextn_accept_rate: Option<f64>,
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
    #[arg(long = "free-gpu-memory-fraction", alias = "free_gpu_memory_fraction", value_parser = crate::limits_args::finite)]
    pub free_gpu_memory_fraction: Option<f64>,
    /// Price of one GPU-hour in US dollars, for every system (default: the system file's
    /// misc.gpu_cost_per_hour; the built-in files leave it unset). Adds $/M tokens to the report.
    #[arg(
        long = "gpu-cost-per-hour",
        alias = "gpu_cost_per_hour",
        allow_negative_numbers = true
    )]
    pub gpu_cost_per_hour: Option<f64>,
    /// Directory of extra system YAML files.
    #[arg(long = "systems-path", alias = "systems_path")]
    pub systems_path: Option<PathBuf>,
    /// Calibration YAML replacing the embedded empirical constants.
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub sim: crate::estimate_sim::SimArgs,
}

impl EstimateArgs {
    pub fn to_input(&self) -> EstimateInput {
        EstimateInput {
            model: self.model.clone(),
            model_config: None,
            system: self.system.clone(),
            decode_system: self.decode_system.clone(),
            backend: self.backend.clone(),
            estimate_mode: self.estimate_mode.clone(),
            isl: self.isl,
            osl: self.osl,
            prefix: self.prefix,
            batch_size: self.batch_size,
            tp_size: self.tp_size,
            pp_size: self.pp_size,
            attention_dp_size: self.attention_dp_size,
            moe_tp_size: self.moe_tp_size,
            moe_ep_size: self.moe_ep_size,
            prefill_tp_size: self.prefill_tp_size,
            prefill_pp_size: self.prefill_pp_size,
            prefill_attention_dp_size: self.prefill_attention_dp_size,
            prefill_moe_tp_size: self.prefill_moe_tp_size,
            prefill_moe_ep_size: self.prefill_moe_ep_size,
            prefill_batch_size: self.prefill_batch_size,
            prefill_num_workers: self.prefill_num_workers,
            decode_tp_size: self.decode_tp_size,
            decode_pp_size: self.decode_pp_size,
            decode_attention_dp_size: self.decode_attention_dp_size,
            decode_moe_tp_size: self.decode_moe_tp_size,
            decode_moe_ep_size: self.decode_moe_ep_size,
            decode_batch_size: self.decode_batch_size,
            decode_num_workers: self.decode_num_workers,
            gemm_quant_mode: self.gemm_quant_mode.clone(),
            moe_quant_mode: self.moe_quant_mode.clone(),
            kvcache_quant_mode: self.kvcache_quant_mode.clone(),
            fmha_quant_mode: self.fmha_quant_mode.clone(),
            comm_quant_mode: self.comm_quant_mode.clone(),
            nextn: self.nextn,
            nextn_accept_rates: self.nextn_accept_rates.clone(),
            nextn_accept_rate: self.nextn_accept_rate,
            database_mode: self.database_mode.clone(),
            backend_version: self.backend_version.clone(),
            free_gpu_memory_fraction: self.free_gpu_memory_fraction,
            gpu_cost_per_hour: self.gpu_cost_per_hour,
            systems_path: self.systems_path.clone(),
            calibration: self.calibration.clone(),
            allow_local_files: true,
        }
    }
}

pub fn run(a: &EstimateArgs) -> Result<()> {
    let req = a.to_input().estimate_request()?;
    let r = estimate(&req)?;
    // With a load flag the simulator answers: its percentiles replace the steady-state means
    // (kept under `steady_state`).
    let sim = if a.sim.requested() {
        Some(a.sim.run(&req)?)
    } else {
        None
    };
    if a.json {
        let mut v = json_view(&r);
        if let (Some((spec, s)), Some(o)) = (&sim, v.as_object_mut()) {
            let mut steady = serde_json::Map::new();
            let j = crate::estimate_sim::json(spec, s);
            for (k, x) in j.as_object().into_iter().flatten() {
                if let Some(old) = o.insert(k.clone(), x.clone()) {
                    steady.insert(k.clone(), old);
                }
            }
            o.insert("steady_state".into(), serde_json::Value::Object(steady));
        }
        crate::emitln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        crate::emitf!("{}", render(&r));
        if let Some((spec, s)) = &sim {
            crate::emitf!("\n{}", crate::estimate_sim::render(spec, s));
        }
    }
    if r.oom && a.strict {
        eprintln!("error: the deployment does not fit in GPU memory (--strict)");
        std::process::exit(3);
    }
    Ok(())
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
    if r.oom {
        for w in r.workers.iter().filter(|w| w.memory.oom) {
            out.push_str(&format!(
                "OOM: the {} worker ({}) needs {:.1} GiB per GPU of {:.1} GiB; the metrics below assume it fits. \
                 Use more GPUs per worker, a lower-precision format or a smaller batch.\n",
                w.role, w.parallel, w.memory.total_gib, w.memory.capacity_gib
            ));
        }
    }
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
    if let Some(c) = &r.cost {
        for (k, v) in [
            ("$ per million output tokens", c.usd_per_m_output_tokens),
            ("$ per million input tokens", c.usd_per_m_input_tokens),
            ("$ per hour (GPUs)", c.usd_per_hour),
        ] {
            t.add_row(vec![Cell::new(k), num(v)]);
        }
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
        let q = &w.quant;
        match &w.quant_origin {
            Some(o) => {
                let tag = origin_tag;
                out.push_str(&format!(
                    "{} quantization: gemm {} ({}), moe {} ({}), kvcache {} ({}), fmha {} ({}), comm {} ({})\n",
                    w.role,
                    q.gemm,
                    tag(&o.gemm),
                    q.moe,
                    tag(&o.moe),
                    q.kvcache,
                    tag(&o.kvcache),
                    q.fmha,
                    tag(&o.fmha),
                    q.comm,
                    tag(&o.comm)
                ))
            }
            None => out.push_str(&format!(
                "{} quantization: gemm {}, moe {}, kvcache {}, fmha {}, comm {}\n",
                w.role, q.gemm, q.moe, q.kvcache, q.fmha, q.comm
            )),
        }
    }
    out.push_str(&format!("{}\n", QUANT_HINT));
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
