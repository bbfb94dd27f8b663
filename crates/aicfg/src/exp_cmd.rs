//! `aicfg cli exp --yaml_path F`: run every experiment of a YAML study, report each one, then
//! compare them and draw one Pareto chart with all of them.
use crate::chart::{self, Series};
use crate::default_cmd::render_without_chart;
use crate::view::{bests, study_json as json};
use aicfg_core::search::{mode_name, search};
use aicfg_core::task::{parse_experiments_with, search_all, Experiment, Outcome, Study};
use aicfg_core::{ModelRegistry, SystemRegistry};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct ExpArgs {
    /// Experiment file (see examples/): an optional `exps:` list, then one mapping per experiment.
    #[arg(long = "yaml-path", alias = "yaml_path")]
    pub yaml_path: PathBuf,
    /// Rows per top-N table.
    #[arg(long = "top-n", alias = "top_n", default_value_t = 5)]
    pub top_n: usize,
    /// Directory of extra system YAML files.
    #[arg(long = "systems-path", alias = "systems_path")]
    pub systems_path: Option<PathBuf>,
    /// Price of one GPU-hour in US dollars, for every system of every experiment (over the
    /// experiments' `gpu_cost_per_hour` and the system files' misc.gpu_cost_per_hour). Adds $/M
    /// tokens to the tables.
    #[arg(
        long = "gpu-cost-per-hour",
        alias = "gpu_cost_per_hour",
        allow_negative_numbers = true
    )]
    pub gpu_cost_per_hour: Option<f64>,
    /// What every experiment's ttft and tpot bound (over the experiments' `sla_percentile`):
    /// mean (the closed form), or p50, p90, p99 of the simulated top configurations.
    #[arg(long = "sla-percentile", alias = "sla_percentile")]
    pub sla_percentile: Option<String>,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    pub json: bool,
    /// Exit non-zero (3) when any experiment is infeasible; by default only when all of them are.
    #[arg(long)]
    pub strict: bool,
    /// `--save_dir DIR` writes each experiment's files under `DIR/<experiment name>/`.
    #[command(flatten)]
    pub save: crate::save::SaveArgs,
    #[command(flatten)]
    pub limits: crate::limits_args::LimitArgs,
}

/// Parse, resolve and search every experiment of the file, in `exps` order.
pub fn run_file(a: &ExpArgs) -> Result<Study> {
    let text = aicfg_core::limits::read_text(&a.yaml_path, aicfg_core::limits::MAX_TEXT_FILE_BYTES)
        .context("reading experiment file")?;
    let mut systems = SystemRegistry::builtin();
    if let Some(dir) = &a.systems_path {
        systems.add_dir(dir)?;
    }
    let models = ModelRegistry::builtin();
    let limits = a.limits.limits();
    let mut exps = parse_experiments_with(&text, &models, &systems, &limits)
        .with_context(|| format!("in {}", a.yaml_path.display()))?;
    aicfg_core::cost::check_price(a.gpu_cost_per_hour)?;
    if let Some(p) = a.gpu_cost_per_hour {
        for e in &mut exps {
            e.gpu_cost_per_hour = Some(p);
        }
    }
    if let Some(s) = &a.sla_percentile {
        let p = aicfg_core::search::SlaPercentile::parse(s)?;
        for e in &mut exps {
            e.sla_percentile = p;
        }
    }
    // The top list must be at least as long as the folders --save_dir writes.
    let top_n = if a.save.save_dir.is_some() {
        a.top_n.max(a.save.save_top)
    } else {
        a.top_n
    };
    Ok(search_all(
        exps,
        &models,
        &systems,
        top_n,
        &limits,
        |req| {
            let bar = crate::progress::Bar::new(!a.json);
            let result = search(req, Some(&|d, t| bar.update(d, t)));
            bar.finish();
            result
        },
    )?)
}

pub fn run(a: &ExpArgs) -> Result<()> {
    let sets = a.save.validate()?;
    let started = std::time::Instant::now();
    let mut study = run_file(a)?;
    if a.save.save_dir.is_some() {
        for o in &mut study.outcomes {
            let n = aicfg_gen::file_notes(&o.request, &o.result, &sets);
            o.result.notes.extend(n);
        }
    }
    if study.outcomes.is_empty() {
        let lines: Vec<String> = study
            .failed
            .iter()
            .map(|f| format!("experiment '{}': {}", f.experiment.name, f.reason))
            .collect();
        match lines.as_slice() {
            [one] => bail!("{one}"),
            _ => bail!(
                "no experiment of the study could run:\n  {}",
                lines.join("\n  ")
            ),
        }
    }
    if a.json {
        crate::emitln!("{}", serde_json::to_string_pretty(&json(&study))?);
    } else {
        crate::emitf!("{}", render(&study));
    }
    let outcomes = &study.outcomes;
    let runs = outcomes
        .iter()
        .map(|o| (o.experiment.name.as_str(), &o.request, &o.result));
    for (name, dir) in crate::save::save_experiments(&a.save, &sets, runs)? {
        eprintln!(
            "deployment files of experiment '{name}' written to {}",
            dir.display()
        );
    }
    let evaluated: usize = outcomes
        .iter()
        .flat_map(|o| o.result.modes.iter().map(|m| m.evaluated))
        .sum();
    eprintln!(
        "{} experiments, {evaluated} deployments searched in {:.0} ms",
        outcomes.len(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    for f in &study.failed {
        eprintln!(
            "experiment '{}' could not run: {}",
            f.experiment.name, f.reason
        );
    }
    if a.strict && !study.failed.is_empty() {
        eprintln!(
            "error: {} of {} experiments could not run (--strict)",
            study.failed.len(),
            study.failed.len() + outcomes.len()
        );
        std::process::exit(3);
    }
    Ok(())
}

/// Marks for the chart, one per experiment (X is the best point).
const MARKS: [char; 12] = ['*', 'o', '+', '#', '@', '%', '=', '~', '$', '&', '^', 'v'];

fn header(o: &mut String, i: usize, n: usize, e: &Experiment) {
    let sys = match &e.decode_system_name {
        Some(d) if *d != e.system_name => format!("{} prefill / {d} decode", e.system_name),
        _ => e.system_name.clone(),
    };
    let _ = writeln!(
        o,
        "==== Experiment {}/{n}: {} ({}, {}, {} x {}, {}{}) ====",
        i + 1,
        e.name,
        mode_name(e.serve_mode()),
        e.model_name,
        e.total_gpus,
        sys,
        e.backend_name,
        if e.profiles.is_empty() {
            String::new()
        } else {
            format!(", profiles {}", e.profiles.join("+"))
        }
    );
}

pub fn render(study: &Study) -> String {
    let mut o = String::new();
    let outcomes = &study.outcomes;
    let n = outcomes.len() + study.failed.len();
    for (i, oc) in outcomes.iter().enumerate() {
        header(&mut o, i, n, &oc.experiment);
        o.push_str(&render_without_chart(&oc.result));
        let _ = writeln!(o);
    }
    for (i, f) in study.failed.iter().enumerate() {
        header(&mut o, outcomes.len() + i, n, &f.experiment);
        let _ = writeln!(o, "  Infeasible: {}", f.reason);
        let _ = writeln!(o);
    }
    comparison(&mut o, study);
    o
}

fn comparison(o: &mut String, study: &Study) {
    let outcomes = &study.outcomes;
    let stars = "*".repeat(80);
    let _ = writeln!(o, "{stars}");
    let _ = writeln!(o, "*{:^78}*", "Comparison across experiments");
    let _ = writeln!(o, "{stars}");
    let b = bests(outcomes);
    let top = b.iter().flatten().copied().fold(0.0, f64::max);
    let mut t = comfy_table::Table::new();
    t.load_preset("||--+-++|    ++++++");
    let mut head = vec![
        "experiment",
        "mode",
        "system",
        "best tokens/s/gpu",
        "tokens/s/user",
        "TTFT",
        "TPOT",
        "ratio to best",
    ];
    let priced = outcomes
        .iter()
        .any(|oc| oc.result.best.as_ref().is_some_and(|c| c.cost.is_some()));
    if priced {
        head.push("$/M output tokens");
    }
    t.set_header(head);
    for (oc, best) in outcomes.iter().zip(&b) {
        let e = &oc.experiment;
        let sys = match &e.decode_system_name {
            Some(d) if *d != e.system_name => format!("{}/{d}", e.system_name),
            _ => e.system_name.clone(),
        };
        let row = match (&oc.result.best, best) {
            (Some(c), Some(v)) => vec![
                format!("{v:.2}"),
                format!("{:.2}", c.tokens_per_s_per_user),
                format!("{:.2}", c.ttft_ms),
                format!("{:.2}", c.tpot_ms),
                if top > 0.0 {
                    format!("{:.2}x", v / top)
                } else {
                    "-".into()
                },
            ],
            _ => vec![
                "no SLA fit".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ],
        };
        let mut cells = vec![e.name.clone(), mode_name(e.serve_mode()).to_string(), sys];
        cells.extend(row);
        if priced {
            cells.push(
                oc.result
                    .best
                    .as_ref()
                    .and_then(|c| c.cost)
                    .map_or("-".into(), |c| format!("{:.3}", c.usd_per_m_output_tokens)),
            );
        }
        t.add_row(cells);
    }
    for f in &study.failed {
        let e = &f.experiment;
        let mut cells = vec![
            e.name.clone(),
            mode_name(e.serve_mode()).to_string(),
            e.system_name.clone(),
            "infeasible".to_string(),
        ];
        cells.extend(["-"; 4].map(String::from));
        if priced {
            cells.push("-".into());
        }
        t.add_row(cells);
    }
    for col in t.column_iter_mut() {
        col.set_cell_alignment(comfy_table::CellAlignment::Center);
    }
    let _ = writeln!(o, "{t}");
    for f in &study.failed {
        let _ = writeln!(o, "  {} is infeasible: {}", f.experiment.name, f.reason);
    }
    let winner = outcomes
        .iter()
        .zip(&b)
        .filter_map(|(oc, v)| v.map(|v| (oc, v)))
        .fold(None::<(&Outcome, f64)>, |acc, (oc, v)| match acc {
            Some((_, bv)) if bv >= v => acc,
            _ => Some((oc, v)),
        });
    match winner {
        Some((w, v)) => {
            let _ = writeln!(
                o,
                "  Best experiment: {} at {v:.2} tokens/s/gpu",
                w.experiment.name
            );
        }
        None => {
            let _ = writeln!(o, "  No experiment meets its SLA.");
        }
    }
    let _ = writeln!(o, "  Pareto Frontier (every experiment):");
    let series: Vec<Series> = outcomes
        .iter()
        .enumerate()
        .map(|(i, oc)| Series {
            label: oc.experiment.name.clone(),
            mark: MARKS[i % MARKS.len()],
            points: oc
                .result
                .modes
                .iter()
                .flat_map(|m| m.pareto.iter())
                .map(|c| (c.tokens_per_s_per_user, c.tokens_per_s_per_gpu))
                .collect(),
        })
        .collect();
    if series.iter().all(|s| s.points.is_empty()) {
        let _ = writeln!(o, "    (no point meets the TTFT targets; nothing to draw)");
    } else {
        let best = winner.and_then(|(w, _)| {
            w.result
                .best
                .as_ref()
                .map(|c| (c.tokens_per_s_per_user, c.tokens_per_s_per_gpu))
        });
        let text = chart::render(
            "Pareto Frontier: tokens/s/gpu vs tokens/s/user",
            &series,
            best,
        );
        for line in text.lines() {
            let _ = writeln!(o, "    {line}");
        }
    }
    let _ = writeln!(o, "{stars}");
}
