//! `aicfg cli support`: which model × system × backend combinations run, with which formats and
//! which performance data (a measured op database or the embedded empirical model).
use aicfg_core::input::{load_systems, resolve_model};
use aicfg_core::support::{support_row, SupportRow};
use aicfg_core::Backend;
use anyhow::Result;
use clap::Args;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct SupportArgs {
    /// Check one model (built-in name, Hugging Face id or config.json path); default: systems only.
    #[arg(long)]
    pub model: Option<String>,
    /// Only this system (default: every built-in system and those of --systems-path).
    #[arg(long)]
    pub system: Option<String>,
    /// Only this backend: trtllm, vllm or sglang (default: all three).
    #[arg(long)]
    pub backend: Option<String>,
    /// Directory of extra system YAML files.
    #[arg(long = "systems-path", alias = "systems_path")]
    pub systems_path: Option<PathBuf>,
    /// Print a JSON array of rows instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn rows(a: &SupportArgs) -> Result<Vec<SupportRow>> {
    let systems = load_systems(&a.systems_path)?;
    let model = a
        .model
        .as_deref()
        .map(|m| resolve_model(m, None, true))
        .transpose()?;
    let names = match &a.system {
        Some(s) => vec![systems.get(s)?.name.clone()],
        None => systems.names(),
    };
    let backends = match &a.backend {
        Some(b) => vec![Backend::parse(b)?],
        None => Backend::ALL.to_vec(),
    };
    let mut out = Vec::new();
    for n in &names {
        let sys = systems.get(n)?;
        for &b in &backends {
            out.push(support_row(model.as_ref(), sys, b));
        }
    }
    Ok(out)
}

pub fn render(rows: &[SupportRow]) -> String {
    let with_model = rows.iter().any(|r| r.model.is_some());
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let mut head = vec!["system", "backend", "status", "database"];
    if with_model {
        head.extend(["model formats here", "weights GiB", "min GPUs"]);
    } else {
        head.push("GEMM formats");
    }
    t.set_header(head);
    for r in rows {
        let db = match &r.database_version {
            Some(v) => format!("measured ({v})"),
            None => "empirical (embedded)".into(),
        };
        let mut cells = vec![
            r.system.clone(),
            r.backend.name().to_string(),
            r.status.to_string(),
            db,
        ];
        if with_model {
            cells.push(
                r.model_quant
                    .clone()
                    .or_else(|| r.reason.clone())
                    .unwrap_or_default(),
            );
            cells.push(r.weights_gib.map_or("-".into(), |w| format!("{w:.1}")));
            cells.push(r.min_gpus.map_or("-".into(), |g| g.to_string()));
        } else {
            cells.push(match &r.reason {
                Some(why) => why.clone(),
                None => r.gemm_formats.join(" "),
            });
        }
        t.add_row(cells);
    }
    let mut s = String::new();
    if let Some(m) = rows.iter().find_map(|r| r.model.as_deref()) {
        s.push_str(&format!("Support of {m}:\n"));
    }
    s.push_str(&format!("{t}\n"));
    s.push_str(
        "database: measured = an op database for that system and backend is installed (`aicfg data install`), \
         used by --database-mode auto/hybrid/silicon; empirical = the embedded calibrated model.\n",
    );
    s
}

pub fn run(a: &SupportArgs) -> Result<()> {
    let rows = rows(a)?;
    if a.json {
        crate::emitln!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        crate::emitf!("{}", render(&rows));
    }
    Ok(())
}
