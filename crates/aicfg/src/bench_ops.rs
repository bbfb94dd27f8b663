//! `aicfg bench ops`: the embedded op model against every measured point of the installed op
//! tables (the comparison lives in `aicfg_core::perf::opcheck`; this file presents it).
use aicfg_core::perf::opcheck::{self, OpFilter, PointRow};
use aicfg_core::perf::EmpiricalParams;
use aicfg_core::SystemRegistry;
use anyhow::{Context, Result};
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct OpsArgs {
    /// Only this system's tables.
    #[arg(long)]
    pub system: Option<String>,
    /// Only this backend's tables (`nccl` for the NCCL collectives).
    #[arg(long)]
    pub backend: Option<String>,
    /// Only this backend version's tables (default: each table from the newest version that has it).
    #[arg(long)]
    pub version: Option<String>,
    /// Only op families starting with this (gemm, gemm/fp8, moe, generation_attention, nccl, ...).
    #[arg(long = "op")]
    pub op: Option<String>,
    /// Write every point (system,backend,version,family,shape,measured_ms,predicted_ms).
    #[arg(long = "rows-out", alias = "rows_out")]
    pub rows_out: Option<PathBuf>,
    /// Calibration YAML replacing the embedded constants.
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// Check every installed version's MoE table (default: the newest per system and backend).
    #[arg(long = "all-moe-versions")]
    pub all_moe_versions: bool,
    /// Print `[{system, backend, version, family, n, mdape_pct, bias_pct, within25_pct}, ...]`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: &OpsArgs) -> Result<()> {
    let t0 = Instant::now();
    let root = opcheck::data_root()?;
    let filter = OpFilter {
        system: a.system.clone(),
        backend: a.backend.clone(),
        version: a.version.clone(),
        family: a.op.clone(),
        all_moe_versions: a.all_moe_versions,
    };
    let files = opcheck::discover(&root, &filter);
    if files.is_empty() {
        anyhow::bail!(
            "no measured op tables match under {} (see `aicfg data list`)",
            root.display()
        );
    }
    let params = match &a.calibration {
        Some(p) => EmpiricalParams::from_yaml(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| p.display().to_string())?,
        None => EmpiricalParams::embedded(),
    };
    let reg = SystemRegistry::builtin();
    let mut writer = match &a.rows_out {
        Some(p) => {
            let f = std::fs::File::create(p).with_context(|| format!("writing {}", p.display()))?;
            let mut w = std::io::BufWriter::new(f);
            writeln!(
                w,
                "system,backend,version,family,shape,measured_ms,predicted_ms"
            )?;
            Some(w)
        }
        None => None,
    };
    let mut io_err: Option<std::io::Error> = None;
    let mut sink = |r: PointRow<'_>| {
        if let Some(w) = writer.as_mut() {
            if io_err.is_none() {
                if let Err(e) = writeln!(
                    w,
                    "{},{},{},{},{},{:.6},{:.6}",
                    r.file.system,
                    r.file.backend,
                    r.file.version,
                    r.case.family,
                    r.case.shape,
                    r.case.measured_ms,
                    r.predicted_ms
                ) {
                    io_err = Some(e);
                }
            }
        }
    };
    let each: Option<&mut dyn FnMut(PointRow<'_>)> = if a.rows_out.is_some() {
        Some(&mut sink)
    } else {
        None
    };
    let report = opcheck::check(&files, &reg, &params, &filter, each)?;
    if let Some(e) = io_err {
        return Err(e).context("writing --rows-out");
    }
    if let Some(mut w) = writer {
        w.flush().context("writing --rows-out")?;
    }
    if a.json {
        let v: Vec<serde_json::Value> = report
            .families
            .iter()
            .map(|f| {
                serde_json::json!({
                    "system": f.system, "backend": f.backend, "version": f.version,
                    "family": f.family, "n": f.n, "mdape_pct": round2(f.mdape_pct),
                    "bias_pct": round2(f.bias_pct), "within10_pct": round2(f.within10_pct),
                    "within25_pct": round2(f.within25_pct),
                })
            })
            .collect();
        crate::emitln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "system",
        "backend",
        "version",
        "family",
        "n",
        "MdAPE",
        "±10%",
        "±25%",
        "bias",
        "worst shape (measured → predicted ms)",
    ]);
    for f in &report.families {
        let worst = f
            .worst
            .first()
            .map(|(s, m, p)| format!("{s} ({m:.4} → {p:.4})"))
            .unwrap_or_default();
        t.add_row(vec![
            f.system.clone(),
            f.backend.clone(),
            f.version.clone(),
            f.family.clone(),
            f.n.to_string(),
            format!("{:.1}%", f.mdape_pct),
            format!("{:.1}%", f.within10_pct),
            format!("{:.1}%", f.within25_pct),
            format!("{:+.1}%", f.bias_pct),
            worst,
        ]);
    }
    crate::emitln!("{t}");
    if !report.skipped_systems.is_empty() {
        crate::emitln!(
            "skipped (no system description): {}",
            report.skipped_systems.join(", ")
        );
    }
    crate::emitln!(
        "{} tables, {} points, {:.2} s",
        report.files,
        report.points,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `bench calibrate --ops`: fit the kernel constants per generation and backend to the op tables,
/// print the fits and a leave-one-system-out check, write the calibration.
pub fn calibrate_ops(a: &crate::bench::CalibrateArgs) -> Result<()> {
    use aicfg_core::perf::opfit;
    let t0 = Instant::now();
    let mut params = match &a.start {
        Some(p) => aicfg_core::perf::EmpiricalParams::from_yaml(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )?,
        None => aicfg_core::perf::EmpiricalParams::embedded(),
    };
    let root = opcheck::data_root()?;
    let reg = SystemRegistry::builtin();
    let only = a.op.as_deref().map(opfit::constant_prefix);
    // The fit reads every version's MoE table (the database serves MoE points from all).
    let filter = OpFilter {
        family: a.op.clone(),
        all_moe_versions: true,
        ..OpFilter::default()
    };
    let data = opfit::load(&root, &reg, &filter)?;
    crate::emitln!(
        "{} sampled points from {} groups on {} systems ({:.1} s)",
        data.points.len(),
        data.groups.len(),
        data.systems.len(),
        t0.elapsed().as_secs_f64()
    );
    // Start each generation from its current section when there is one.
    let start = params
        .generations
        .get("hopper")
        .map_or(params.ops.clone(), |g| g.ops.clone());
    let current = params.generations.clone();
    let scope = opfit::FitScope {
        only: only.as_deref(),
        current: only.is_some().then_some(&current),
    };
    let fitted = opfit::fit_generations(&data, &start, a.rounds, scope);
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec!["generation", "backend", "points", "loss"]);
    for (g, b, n, l) in &fitted.fits {
        t.add_row(vec![g.clone(), b.clone(), n.to_string(), format!("{l:.4}")]);
    }
    crate::emitln!("{t}");
    let loso = opfit::leave_one_out(&data, &fitted, &start, a.rounds, "hopper", scope.only);
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "held-out system",
        "fitted on",
        "family",
        "points",
        "MdAPE",
        "bias",
    ]);
    for (s, from, fams) in &loso {
        for (f, (n, md, bias)) in fams {
            t.add_row(vec![
                s.clone(),
                from.clone(),
                f.clone(),
                n.to_string(),
                format!("{md:.1}%"),
                format!("{bias:+.1}%"),
            ]);
        }
    }
    crate::emitln!("leave-one-system-out (pooled backends):\n{t}");
    // Systems of an unknown generation get the Hopper curves, scaled by their spec sheet.
    if let Some(h) = fitted.generations.get("hopper") {
        params.ops = h.ops.clone();
    }
    if let Some(o) = only.as_deref() {
        opfit::merge_scoped(&mut params.generations, fitted.generations, o);
    } else {
        params.generations = fitted.generations;
    }
    let header = format!(
        "# Kernel constants fitted by `aicfg bench calibrate --ops` to the measured op tables ({} sampled points, {} rounds);\n# serving constants by `aicfg bench calibrate --csv`. Format and meaning: data/calibration/README.md\n",
        data.points.len(),
        a.rounds
    );
    std::fs::write(&a.out, header + &params.to_yaml())
        .with_context(|| format!("writing {}", a.out.display()))?;
    crate::emitln!(
        "wrote {} in {:.1} s",
        a.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
