//! `aicfg data install|list`: the optional measured op database (SILICON / HYBRID modes).
use aicfg_core::perfdb::{self, install};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum DataCmd {
    /// Install the reference tool's measured op database (default: `python3 -m pip download
    /// aiconfigurator-core==VERSION`; or a wheel / extracted `systems` directory with --from).
    #[command(disable_version_flag = true)]
    Install(InstallArgs),
    /// Show the installed measured op database: systems, backends, versions.
    List,
}

#[derive(Args)]
pub struct InstallArgs {
    /// aiconfigurator-core version to download (or the label of a --from directory).
    #[arg(long)]
    pub version: Option<String>,
    /// A local wheel (.whl) or a directory holding the `systems` tree (or the unpacked wheel).
    #[arg(long = "from")]
    pub from: Option<PathBuf>,
}

const DEFAULT_VERSION: &str = "0.12.0";

fn data_dir() -> Result<PathBuf> {
    perfdb::data_dir()
        .context("cannot tell where to store data: set AICFG_DATA_DIR (or HOME / XDG_DATA_HOME)")
}

pub fn run(cmd: DataCmd) -> Result<()> {
    match cmd {
        DataCmd::Install(a) => run_install(&a),
        DataCmd::List => list(),
    }
}

fn human(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn inventory_table(
    systems: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<String>>>,
) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "system",
        "backend",
        "versions (newest last)",
    ]);
    for (s, backends) in systems {
        for (b, vs) in backends {
            t.add_row(vec![s.clone(), b.clone(), vs.join(", ")]);
        }
    }
    t
}

fn run_install(a: &InstallArgs) -> Result<()> {
    let dir = data_dir()?;
    let src = match &a.from {
        Some(p) => install::Source::Path(p.clone()),
        None => install::Source::Pip {
            version: a.version.clone().unwrap_or_else(|| DEFAULT_VERSION.into()),
        },
    };
    let s = install::install(&dir, &src, a.version.as_deref())?;
    let m = &s.manifest;
    if s.unchanged {
        crate::emitln!(
            "already installed: the same database (digest {}) is active in {}",
            m.digest,
            s.dir.display()
        );
    } else {
        crate::emitln!("installed into {}", s.dir.display());
    }
    crate::emitln!(
        "source {} (version {}): {} tables, {} rows, {}; {} system YAMLs",
        m.source,
        m.version,
        m.files,
        m.rows,
        human(m.bytes),
        m.system_yamls.len()
    );
    crate::emitln!("{}", inventory_table(&m.systems));
    Ok(())
}

fn list() -> Result<()> {
    let dir = data_dir()?;
    match install::current_manifest(&dir) {
        Some((d, m)) => {
            crate::emitln!("measured op database in {}", d.display());
            crate::emitln!(
                "source {} (version {}): {} tables, {} rows, {}",
                m.source,
                m.version,
                m.files,
                m.rows,
                human(m.bytes)
            );
            crate::emitln!("{}", inventory_table(&m.systems));
        }
        None => match perfdb::active_root(&dir) {
            // A hand-made tree (no manifest): list what is there.
            Some(root) => {
                crate::emitln!("measured op database in {}", root.display());
                crate::emitln!("{}", inventory_table(&perfdb::inventory(&root)));
            }
            None => crate::emitln!(
                "no measured op database installed in {}; `aicfg data install` fetches one \
                 (estimates use the empirical model meanwhile)",
                dir.display()
            ),
        },
    }
    Ok(())
}
