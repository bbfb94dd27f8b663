//! `aicfg bench search`: wall time and peak memory of the `cli default` search on the reference
//! cases (docs/model.md §11). Prints numbers; BENCHMARKS.md records them.
use aicfg_core::search::{search, SearchRequest};
use aicfg_core::{Backend, ModelRegistry, SystemRegistry, Workload};
use anyhow::Result;
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use std::time::Instant;

#[derive(Args)]
pub struct SearchBenchArgs {
    /// Timed runs per case (after one warm-up run).
    #[arg(long, default_value_t = 10)]
    pub repeat: usize,
}

/// (label, model, system, backend, total GPUs)
const CASES: &[(&str, &str, &str, Backend, u32)] = &[
    (
        "Qwen3-32B / 32 × h200_sxm / trtllm",
        "QWEN3_32B",
        "h200_sxm",
        Backend::Trtllm,
        32,
    ),
    (
        "Qwen3-30B-A3B / 16 × h200_sxm / vllm",
        "QWEN3_30B_A3B",
        "h200_sxm",
        Backend::Vllm,
        16,
    ),
    (
        "DeepSeek-V3 / 16 × h200_sxm / sglang",
        "DEEPSEEK_V3",
        "h200_sxm",
        Backend::Sglang,
        16,
    ),
    (
        "DeepSeek-V3 / 64 × h200_sxm / trtllm",
        "DEEPSEEK_V3",
        "h200_sxm",
        Backend::Trtllm,
        64,
    ),
];

/// Peak resident memory of this process (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub fn run(a: &SearchBenchArgs) -> Result<()> {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "case",
        "deployments",
        "min ms",
        "median ms",
        "max ms",
        "peak RSS MiB",
    ]);
    let start_all = Instant::now();
    for &(label, model, system, backend, gpus) in CASES {
        // Model and system loading are part of what a user waits for.
        let run_once = || -> Result<(usize, f64)> {
            let t0 = Instant::now();
            let m = ModelRegistry::builtin().resolve(model)?;
            let s = SystemRegistry::builtin().get(system)?.clone();
            let w = Workload {
                isl: 4000.0,
                osl: 1000.0,
                prefix: 0.0,
                nextn: 0,
                nextn_accepted: 0.0,
            };
            let req = SearchRequest::new(m, s, backend, w, Some(gpus));
            let r = search(&req, None)?;
            let n = r.modes.iter().map(|m| m.evaluated).sum();
            Ok((n, t0.elapsed().as_secs_f64() * 1000.0))
        };
        let (n, _) = run_once()?;
        let mut times = Vec::with_capacity(a.repeat);
        for _ in 0..a.repeat.max(1) {
            times.push(run_once()?.1);
        }
        times.sort_by(f64::total_cmp);
        t.add_row(vec![
            label.to_string(),
            n.to_string(),
            format!("{:.1}", times[0]),
            format!("{:.1}", times[times.len() / 2]),
            format!("{:.1}", times[times.len() - 1]),
            peak_rss_mib().map_or("n/a".into(), |m| format!("{m:.1}")),
        ]);
    }
    crate::emitln!("aicfg search speed — one thread, release build, empirical database");
    crate::emitln!("{t}");
    crate::emitln!(
        "total {:.2} s; peak RSS is the whole process so far (cumulative)",
        start_all.elapsed().as_secs_f64()
    );
    Ok(())
}
