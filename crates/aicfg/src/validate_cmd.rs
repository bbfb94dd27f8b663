//! `aicfg validate DIR`: re-check a generated or edited `--save_dir` tree against the
//! frameworks' schema snapshots and print what a framework would reject.
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct ValidateArgs {
    /// A folder written by --save_dir (or any folder above deployment folders).
    pub dir: PathBuf,
}

pub fn run(a: &ValidateArgs) -> Result<()> {
    if !a.dir.is_dir() {
        bail!("{} is not a folder", a.dir.display());
    }
    let r = aicfg_gen::validate::validate_tree(&a.dir)
        .with_context(|| format!("cannot read {}", a.dir.display()))?;
    let mut out = String::new();
    for f in &r.findings {
        out.push_str(&format!("{}: {}\n", f.file.display(), f.problem));
    }
    for n in &r.notes {
        out.push_str(&format!("note: {}: {}\n", n.file.display(), n.problem));
    }
    for s in &r.skipped {
        out.push_str(&format!(
            "not checked (no schema snapshots for this release): {s}\n"
        ));
    }
    out.push_str(&format!(
        "{} deployment(s) checked, {} problem(s), {} without snapshots\n",
        r.checked.len(),
        r.findings.len(),
        r.skipped.len()
    ));
    crate::emit(&out);
    if r.checked.is_empty() && r.skipped.is_empty() {
        bail!(
            "no deployment folder (with generator_config.yaml) under {}",
            a.dir.display()
        );
    }
    if !r.findings.is_empty() {
        bail!("{} problem(s) a framework would reject", r.findings.len());
    }
    Ok(())
}
