//! `aicfg bench accuracy` and `aicfg bench calibrate`: score predictions against measured serving
//! runs (the silicon_calib.csv schema) and fit the empirical constants to them.
use aicfg_core::calibrate::{
    fit, fits_silicon, free_constants, get_vec, median, predict_all, prepare, summarize, Accuracy,
    FitProgress, FitScope, Prepared, Row, Skip, Stats, REQUIRED_COLUMNS,
};
use aicfg_core::perf::EmpiricalParams;
use aicfg_core::DatabaseMode;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Predict every row of a measured-runs CSV and print error statistics.
    Accuracy(AccuracyArgs),
    /// Fit the empirical constants to a measured-runs CSV and write a calibration YAML.
    Calibrate(CalibrateArgs),
    /// Time the `cli default` search on the reference cases (wall time, peak memory).
    Search(crate::bench_search::SearchBenchArgs),
    /// Predict every measured point of the installed op tables with the embedded op model.
    Ops(crate::bench_ops::OpsArgs),
    /// Benchmark a running OpenAI-compatible endpoint (streaming TTFT, ITL, TPOT, throughput).
    Serve(Box<crate::serve_bench::ServeBenchArgs>),
    /// Time the request-level simulator on the reference cases.
    Sim(crate::bench_sim::SimBenchArgs),
}

#[derive(Args)]
pub struct AccuracyArgs {
    /// CSV in the silicon_calib.csv schema (id, backend, model_path, system, mode, isl, osl, ...).
    #[arg(long)]
    pub csv: PathBuf,
    /// silicon, hybrid, empirical, sol, or auto (hybrid where a measured database for the row's
    /// system/backend is installed, else empirical).
    #[arg(
        long = "database-mode",
        alias = "database_mode",
        default_value = "auto"
    )]
    pub database_mode: String,
    /// Backend version of the measured op database (default: the newest installed).
    #[arg(long = "backend-version", alias = "backend_version")]
    pub backend_version: Option<String>,
    /// Write per-row predictions (id,pred_ttft_ms,pred_tpot_ms,status,detail).
    #[arg(long = "predictions-out", alias = "predictions_out")]
    pub predictions_out: Option<PathBuf>,
    /// Calibration YAML replacing the embedded constants.
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// closed-form: the steady-state formulas (default); sim: replay each row's benchmark in
    /// the request-level simulator (slower: minutes for the full CSV).
    #[arg(long = "serving-model", default_value = "closed-form")]
    pub serving_model: String,
}

#[derive(Args)]
pub struct CalibrateArgs {
    /// Measured serving runs to fit, one row per run (same schema as `bench accuracy --csv`).
    #[arg(long, required_unless_present = "ops")]
    pub csv: Option<PathBuf>,
    /// Fit the kernel constants (per GPU generation and backend) to the installed measured op
    /// tables instead, and report a leave-one-system-out check.
    #[arg(long)]
    pub ops: bool,
    /// Where to write the fitted constants.
    #[arg(long)]
    pub out: PathBuf,
    /// Starting constants (default: the embedded calibration).
    #[arg(long)]
    pub start: Option<PathBuf>,
    /// Optimizer sweeps.
    #[arg(long, default_value_t = 6)]
    pub rounds: usize,
    /// With --ops: fit only this op family's constants on its tables (`<FAMILY>_*`, e.g. moe;
    /// `context` fits `attn_ctx_*` on context attention and MLA, `generation` `attn_gen_*`);
    /// every other constant keeps its starting value.
    #[arg(long = "op")]
    pub op: Option<String>,
    /// empirical: fit the serving constants used with the empirical op model (kernel constants
    /// are fitted to the op tables only, with --ops); hybrid: fit the serving constants used
    /// with the measured op database (the `silicon` section).
    #[arg(
        long = "database-mode",
        alias = "database_mode",
        default_value = "empirical"
    )]
    pub database_mode: String,
    /// What to fit: all (every serving constant of the mode: graph overlap, burst length and
    /// every backend's), serving (only the constants of the rows' backends: per-step host cost,
    /// fixed TTFT, prefill wait), or auto (serving for fewer than 100 rows, where a few load
    /// points cannot pin down the shared constants).
    #[arg(long, default_value = "auto")]
    pub fit: String,
}

pub fn run(cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Accuracy(a) => accuracy(&a),
        BenchCmd::Calibrate(a) => calibrate(&a),
        BenchCmd::Search(a) => crate::bench_search::run(&a),
        BenchCmd::Ops(a) => crate::bench_ops::run(&a),
        BenchCmd::Serve(a) => crate::serve_bench::run(&a),
        BenchCmd::Sim(a) => crate::bench_sim::run(&a),
    }
}

pub fn read_rows(path: &std::path::Path) -> Result<Vec<Row>> {
    let file = aicfg_core::limits::open_bounded(path, aicfg_core::limits::MAX_CSV_BYTES)?;
    let mut rdr = csv::Reader::from_reader(file);
    let headers = rdr.headers()?.clone();
    for need in REQUIRED_COLUMNS {
        if !headers.iter().any(|h| h == need) {
            anyhow::bail!(
                "{}: missing column '{need}' (expected the silicon_calib.csv schema)",
                path.display()
            );
        }
    }
    let mut rows = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: row {}", path.display(), i + 2))?;
        let fields: HashMap<String, String> = headers
            .iter()
            .zip(rec.iter())
            .map(|(h, v)| (h.to_string(), v.to_string()))
            .collect();
        rows.push(Row::new(fields));
    }
    Ok(rows)
}

fn pct(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * x)
    }
}

fn add_rows(t: &mut Table, label: &str, s: &Stats) {
    let a = summarize(&s.ttft);
    let b = summarize(&s.tpot);
    t.add_row(vec![
        label.to_string(),
        format!("{}/{}", s.ok, s.rows),
        pct(a.med),
        pct(a.mean),
        pct(a.w10),
        pct(a.w25),
        format!("{:+.1}%", 100.0 * a.bias),
        pct(b.med),
        pct(b.mean),
        pct(b.w10),
        pct(b.w25),
        format!("{:+.1}%", 100.0 * b.bias),
    ]);
    let _ = (a.n, b.n);
}

fn accuracy(a: &AccuracyArgs) -> Result<()> {
    let start = Instant::now();
    let mode = DatabaseMode::parse(&a.database_mode)?;
    let params = match &a.calibration {
        Some(p) => EmpiricalParams::from_yaml(&aicfg_core::limits::read_text(
            p,
            aicfg_core::limits::MAX_TEXT_FILE_BYTES,
        )?)?,
        None => EmpiricalParams::embedded(),
    };
    let rows = read_rows(&a.csv)?;
    let prepared = prepare(rows, mode, a.backend_version.clone());
    let preds = match a.serving_model.as_str() {
        "sim" => crate::bench_serving::predict_all_sim(&prepared, &params),
        "closed-form" | "closed" => predict_all(&prepared, &params),
        m => anyhow::bail!("unknown --serving-model '{m}' (known: sim, closed-form)"),
    };
    let elapsed = start.elapsed();

    if let Some(out) = &a.predictions_out {
        let mut w =
            csv::Writer::from_path(out).with_context(|| format!("writing {}", out.display()))?;
        w.write_record(["id", "pred_ttft_ms", "pred_tpot_ms", "status", "detail"])?;
        for (p, r) in prepared.iter().zip(&preds) {
            match r {
                Ok((t, o)) => w.write_record([
                    p.row.id.as_str(),
                    &format!("{t:.3}"),
                    &format!("{o:.3}"),
                    "ok",
                    "",
                ])?,
                Err((s, d)) => {
                    w.write_record([p.row.id.as_str(), "", "", s.as_str(), d.as_str()])?
                }
            }
        }
        w.flush()?;
    }

    let acc = Accuracy::of(&prepared, &preds);
    crate::emitln!(
        "aicfg accuracy — {} ({} database)",
        a.csv.display(),
        mode.name()
    );
    crate::emitln!(
        "rows {}; predicted {} ({:.1}% of {} rows with complete inputs); {}",
        acc.overall.rows,
        acc.overall.ok,
        100.0 * acc.overall.ok as f64 / acc.complete.max(1) as f64,
        acc.complete,
        acc.status
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "group",
        "predicted",
        "TTFT MdAPE",
        "TTFT MAPE",
        "±10%",
        "±25%",
        "bias",
        "TPOT MdAPE",
        "TPOT MAPE",
        "±10%",
        "±25%",
        "bias",
    ]);
    add_rows(&mut t, "overall", &acc.overall);
    let mut last = String::new();
    for ((k, v), s) in &acc.groups {
        if *k != last {
            t.add_row(vec![format!("— by {k} —")]);
            last = k.clone();
        }
        add_rows(&mut t, if v.is_empty() { "(empty)" } else { v }, s);
    }
    crate::emitln!("{t}");
    crate::emitln!(
        "elapsed {:.2} s ({} rows)",
        elapsed.as_secs_f64(),
        acc.overall.rows
    );
    Ok(())
}

fn calibrate(a: &CalibrateArgs) -> Result<()> {
    if a.ops {
        return crate::bench_ops::calibrate_ops(a);
    }
    let Some(csv) = a.csv.as_ref() else {
        anyhow::bail!("bench calibrate needs --csv FILE (or --ops)");
    };
    let start = Instant::now();
    let mut params = match &a.start {
        Some(p) => EmpiricalParams::from_yaml(&aicfg_core::limits::read_text(
            p,
            aicfg_core::limits::MAX_TEXT_FILE_BYTES,
        )?)?,
        None => EmpiricalParams::embedded(),
    };
    let mode = DatabaseMode::parse(&a.database_mode)?;
    let silicon = fits_silicon(mode)?;
    let rows = read_rows(csv)?;
    let prepared = prepare(rows, mode, None);
    let scope = FitScope::choose(&a.fit, prepared.len())?;
    let free = free_constants(&prepared, &params, silicon, scope);
    if scope == FitScope::Serving {
        let backends: std::collections::BTreeSet<String> =
            prepared.iter().map(|p| p.row.group("backend")).collect();
        crate::emitln!(
            "fitting only the serving constants of {} ({} rows; --fit all refits every serving constant)",
            backends.iter().cloned().collect::<Vec<_>>().join(", "),
            prepared.len()
        );
    }
    let before = predict_all(&prepared, &params);
    let f = fit(
        &prepared,
        &mut params,
        silicon,
        scope,
        a.rounds,
        &mut |p| match p {
            FitProgress::Start { loss } => crate::emitln!("start loss {loss:.4}"),
            FitProgress::Round { round, loss, step } => {
                crate::emitln!("round {round}: loss {loss:.4} (step {step:.3})")
            }
        },
    );
    let best = f.loss;
    crate::emitln!(
        "fitted loss: fold A {:.4}, fold B {:.4}",
        f.fold_a,
        f.fold_b
    );
    let after = predict_all(&prepared, &params);
    crate::emitln!("{}", before_after(&prepared, &before, &after));
    if scope == FitScope::Serving {
        let values = get_vec(&params, silicon);
        for ((n, is_free), v) in free.iter().zip(values) {
            if *is_free {
                crate::emitln!("  {n} = {v:.4}");
            }
        }
    }
    let header = format!(
        "# Empirical constants fitted by `aicfg bench calibrate` to {} ({} rows); loss {:.4}.\n# Format and meaning: data/calibration/README.md\n",
        csv.file_name().and_then(|s| s.to_str()).unwrap_or("csv"),
        prepared.len(),
        best
    );
    std::fs::write(&a.out, header + &params.to_yaml())
        .with_context(|| format!("writing {}", a.out.display()))?;
    crate::emitln!(
        "wrote {} in {:.1} s",
        a.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

type Preds = [std::result::Result<(f64, f64), Skip>];

/// Per-row (up to 40 rows) and overall error before and after the fit.
fn before_after(rows: &[Prepared], before: &Preds, after: &Preds) -> String {
    let err = |p: f64, m: f64| 100.0 * (p - m) / m;
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "row",
        "TTFT meas",
        "pred before",
        "err",
        "pred after",
        "err",
        "TPOT meas",
        "pred before",
        "err",
        "pred after",
        "err",
    ]);
    let (mut eb, mut ea): (Vec<f64>, Vec<f64>) = (vec![], vec![]);
    for (i, p) in rows.iter().enumerate() {
        let (Ok((tb, ob)), Ok((ta, oa))) = (&before[i], &after[i]) else {
            continue;
        };
        let (mt, mo) = (p.row.ttft, p.row.tpot);
        eb.extend([err(*tb, mt).abs(), err(*ob, mo).abs()]);
        ea.extend([err(*ta, mt).abs(), err(*oa, mo).abs()]);
        if i < 40 {
            t.add_row(vec![
                p.row.id.clone(),
                format!("{mt:.1}"),
                format!("{tb:.1}"),
                format!("{:+.1}%", err(*tb, mt)),
                format!("{ta:.1}"),
                format!("{:+.1}%", err(*ta, mt)),
                format!("{mo:.2}"),
                format!("{ob:.2}"),
                format!("{:+.1}%", err(*ob, mo)),
                format!("{oa:.2}"),
                format!("{:+.1}%", err(*oa, mo)),
            ]);
        }
    }
    format!(
        "{t}\nmedian |error| over TTFT and TPOT: before {:.1}%, after {:.1}%",
        median(&mut eb),
        median(&mut ea)
    )
}
