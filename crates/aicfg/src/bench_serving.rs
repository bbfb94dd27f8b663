//! The simulator in the accuracy harness: each measured row replayed as the benchmark ran it
//! (a closed loop at the row's concurrency), and `aicfg bench fit-serving`, which fits the
//! simulator's serving constants (per backend, few and physical) to measured rows.
use crate::bench::read_rows;
use aicfg_core::calibrate::Prepared;
use aicfg_core::perf::EmpiricalParams;
use aicfg_core::serve::sim::{calib_bounds, ServingCalib};
use aicfg_core::simulate::{bench_spec, simulate_with};
use aicfg_core::DatabaseMode;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;

type RowPred = std::result::Result<(f64, f64), (String, String)>;

fn predict_row(p: &Prepared, params: &EmpiricalParams, serving: &ServingCalib) -> RowPred {
    match &p.req {
        Err(e) => Err(e.clone()),
        Ok(req) => match simulate_with(req, &bench_spec(req, serving), params, serving) {
            Ok(s) => Ok((s.report.ttft_ms.mean, s.report.tpot_ms.mean)),
            Err(e) => Err(("error".into(), e.to_string())),
        },
    }
}

/// Simulated (mean TTFT, mean TPOT) of every prepared row (those in `mask`), or why not; rows
/// are spread over two threads (each replay is independent and deterministic).
pub fn predict_all_sim(
    rows: &[Prepared],
    params: &EmpiricalParams,
    serving: &ServingCalib,
    mask: Option<&[bool]>,
) -> Vec<RowPred> {
    let skip = || Err(("skipped".to_string(), String::new()));
    let run = |i: usize| {
        if mask.is_some_and(|m| !m[i]) {
            skip()
        } else {
            predict_row(&rows[i], params, serving)
        }
    };
    let mut out: Vec<RowPred> = (0..rows.len()).map(|_| skip()).collect();
    std::thread::scope(|sc| {
        let odd = sc.spawn(|| {
            (0..rows.len())
                .skip(1)
                .step_by(2)
                .map(|i| (i, run(i)))
                .collect::<Vec<_>>()
        });
        for i in (0..rows.len()).step_by(2) {
            out[i] = run(i);
        }
        for (i, r) in odd.join().expect("accuracy worker thread") {
            out[i] = r;
        }
    });
    out
}

/// Serving constants to use: a file, else the embedded ones.
pub fn load_serving(path: Option<&PathBuf>) -> Result<ServingCalib> {
    match path {
        Some(p) => Ok(ServingCalib::from_yaml(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )?),
        None => Ok(ServingCalib::embedded()),
    }
}

#[derive(Args)]
pub struct FitServingArgs {
    /// CSV in the silicon_calib.csv schema (measured serving runs).
    #[arg(long)]
    pub csv: PathBuf,
    /// Where to write the fitted serving constants (YAML, the format of
    /// data/calibration/serving.yaml).
    #[arg(long)]
    pub out: PathBuf,
    /// Starting constants (default: the embedded ones).
    #[arg(long)]
    pub start: Option<PathBuf>,
    /// empirical: fit the set used with the empirical op model; hybrid: the set used with the
    /// measured op tables.
    #[arg(long = "database-mode", default_value = "empirical")]
    pub database_mode: String,
    /// Optimizer sweeps.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Fit on rows whose benchmark replay is at most this many request-iterations
    /// (requests × output tokens); the largest runs cost seconds each and are left to
    /// `bench accuracy`.
    #[arg(long = "max-request-steps", default_value_t = 500_000.0)]
    pub max_request_steps: f64,
    /// Rows per backend the fit uses at most (a deterministic sample by row id).
    #[arg(long = "sample", default_value_t = 160)]
    pub sample: usize,
}

fn row_loss(pred: &std::result::Result<(f64, f64), (String, String)>, p: &Prepared) -> Option<f64> {
    let (t, o) = pred.as_ref().ok()?;
    let lt = (t / p.row.ttft).ln().abs().min(1.0);
    let lo = (o / p.row.tpot).ln().abs().min(1.0);
    (lt + lo).is_finite().then_some(lt + lo)
}

fn loss(rows: &[Prepared], params: &EmpiricalParams, s: &ServingCalib, mask: &[bool]) -> f64 {
    let preds = predict_all_sim(rows, params, s, Some(mask));
    let (mut sum, mut n) = (0.0, 0.0);
    for ((p, r), m) in rows.iter().zip(&preds).zip(mask) {
        if *m {
            if let Some(l) = row_loss(r, p) {
                sum += l;
                n += 1.0;
            }
        }
    }
    sum / f64::max(n, 1.0)
}

/// Coordinate search in log space per backend (each backend's constants only move its own
/// rows, so each is fitted on its rows alone); the harness length stays as given.
pub fn fit(a: &FitServingArgs) -> Result<()> {
    let start = Instant::now();
    let mode = DatabaseMode::parse(&a.database_mode)?;
    let measured = match mode {
        DatabaseMode::Empirical => false,
        DatabaseMode::Hybrid | DatabaseMode::Silicon => true,
        m => anyhow::bail!(
            "fit-serving fits empirical or hybrid constants, not '{}'",
            m.name()
        ),
    };
    let params = EmpiricalParams::embedded();
    let mut serving = load_serving(a.start.as_ref())?;
    let rows = aicfg_core::calibrate::prepare(read_rows(&a.csv)?, mode, None);
    let set = if measured { "measured" } else { "empirical" };
    for backend in ["trtllm", "vllm", "sglang"] {
        let cheap: Vec<bool> = rows
            .iter()
            .map(|p| {
                p.row.group("backend") == backend
                    && p.req.as_ref().is_ok_and(|r| {
                        let spec = bench_spec(r, &serving);
                        spec.num_requests as f64 * r.workload.osl <= a.max_request_steps
                    })
            })
            .collect();
        // Deterministic sample: the rows with the smallest hash of their id.
        let mut order: Vec<(u64, usize)> = (0..rows.len())
            .filter(|i| cheap[*i])
            .map(|i| (fnv(&rows[i].row.id), i))
            .collect();
        order.sort_unstable();
        let mut mask = vec![false; rows.len()];
        for (_, i) in order.into_iter().take(a.sample) {
            mask[i] = true;
        }
        let n = mask.iter().filter(|m| **m).count();
        if n == 0 {
            continue;
        }
        let names: Vec<String> = ["iter_ms", "per_req_us", "api_ms"]
            .iter()
            .map(|k| format!("{set}.{backend}.{k}"))
            .collect();
        let get = |s: &mut ServingCalib, name: &str| -> f64 {
            s.fields_mut()
                .into_iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| *v)
                .unwrap_or(0.0)
        };
        let set_v = |s: &mut ServingCalib, name: &str, x: f64| {
            if let Some((_, v)) = s.fields_mut().into_iter().find(|(n, _)| n == name) {
                *v = x;
            }
        };
        let mut best = loss(&rows, &params, &serving, &mask);
        crate::emitln!("{backend}: {n} rows, start loss {best:.4}");
        let mut step = 0.7f64;
        for round in 0..a.rounds {
            for name in &names {
                let (lo, hi) = calib_bounds(name);
                for dir in [1.0, -1.0] {
                    loop {
                        let x = get(&mut serving, name);
                        let base = if x <= 0.0 { 0.05 * hi.max(1e-3) } else { x };
                        let y = (base * (dir * step).exp()).clamp(lo, hi);
                        if y == x {
                            break;
                        }
                        let mut trial = serving.clone();
                        set_v(&mut trial, name, y);
                        let l = loss(&rows, &params, &trial, &mask);
                        if l + 1e-5 < best {
                            best = l;
                            serving = trial;
                        } else {
                            break;
                        }
                    }
                }
            }
            crate::emitln!(
                "{backend} round {round}: loss {best:.4} (step {step:.2}) — {}",
                names
                    .iter()
                    .map(|n| format!(
                        "{} {:.3}",
                        n.rsplit('.').next().unwrap_or(n),
                        get(&mut serving, n)
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            step *= 0.5;
        }
    }
    let header = format!(
        "# Serving constants of the request-level simulator; the {set} set fitted by `aicfg bench fit-serving --database-mode {}` to {} ({} rows).\n# Format and meaning: data/calibration/README.md\n",
        mode.name(),
        a.csv.file_name().and_then(|s| s.to_str()).unwrap_or("csv"),
        rows.len()
    );
    std::fs::write(&a.out, header + &serving.to_yaml())
        .with_context(|| format!("writing {}", a.out.display()))?;
    crate::emitln!(
        "wrote {} in {:.0} s",
        a.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}
