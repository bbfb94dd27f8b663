//! `--save_dir DIR`: write the generated deployment tree under DIR, and nowhere else.
use aicfg_core::search::{SearchRequest, SearchResult};
use aicfg_gen::{OutFile, SaveRequest};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Component, Path, PathBuf};

#[derive(Args, Debug, Clone, Default)]
pub struct SaveArgs {
    /// Write deployment files (engine configs, Dynamo k8s manifests, run and bench scripts,
    /// CSV tables, Pareto chart) for the best configurations under this directory.
    #[arg(long = "save-dir", alias = "save_dir")]
    pub save_dir: Option<PathBuf>,
    /// Top configurations per serving mode that get deployment files.
    #[arg(long = "save-top", alias = "save_top", default_value_t = 3)]
    pub save_top: usize,
    /// Generator override KEY=VALUE (repeatable), e.g. K8sConfig.k8s_namespace=dynamo or rule=benchmark.
    #[arg(long = "generator-set", alias = "generator_set")]
    pub generator_set: Vec<String>,
    /// Framework version to write the files for (one of the version matrix, see
    /// --generator-help); default: the newest Dynamo release's.
    #[arg(long = "generated-config-version", alias = "generated_config_version")]
    pub generated_config_version: Option<String>,
    /// Dynamo release to write the files for (its image and framework versions; see
    /// --generator-help); default: the newest in the version matrix.
    #[arg(long = "dynamo-version", alias = "dynamo_version")]
    pub dynamo_version: Option<String>,
    /// List the --generator-set keys (type, default, effect) and the version matrix, then exit.
    #[arg(long = "generator-help", alias = "generator_help")]
    pub generator_help: bool,
    /// Replace an existing result folder instead of writing a new numbered one beside it.
    #[arg(long)]
    pub force: bool,
}

/// `--generator-help` on a `cli default` / `cli exp` line.
pub fn wants_generator_help(args: impl Iterator<Item = String>) -> bool {
    let args: Vec<String> = args.collect();
    let saving = args.iter().any(|a| a == "default" || a == "exp");
    saving
        && args
            .iter()
            .any(|a| a == "--generator-help" || a == "--generator_help")
}

impl SaveArgs {
    /// Check the options before the search runs, so a typo fails fast.
    pub fn validate(&self) -> Result<Vec<(String, String)>> {
        if self.save_dir.is_none() {
            if !self.generator_set.is_empty()
                || self.generated_config_version.is_some()
                || self.dynamo_version.is_some()
            {
                bail!("--generator-set, --generated_config_version and --dynamo-version need --save_dir");
            }
            return Ok(Vec::new());
        }
        if self.save_top == 0 {
            bail!("--save-top must be at least 1");
        }
        Ok(aicfg_gen::parse_sets(&self.generator_set)?)
    }
}

/// A relative path made of plain components only: it cannot leave the folder it is joined to.
fn safe_relative(p: &str) -> bool {
    !p.is_empty()
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// Pick the result folder: `DIR/<name>`, or `DIR/<name>_<n>` when that exists (unless forced).
fn target_folder(dir: &Path, name: &str, force: bool) -> PathBuf {
    let first = dir.join(name);
    if force || !first.exists() {
        return first;
    }
    (1u32..)
        .map(|n| dir.join(format!("{name}_{n}")))
        .find(|p| !p.exists())
        .expect("some suffix is free")
}

/// Write `files` into a fresh folder `name` under `dir`; returns the folder.
pub fn write_tree(dir: &Path, name: &str, files: &[OutFile], force: bool) -> Result<PathBuf> {
    if !safe_relative(name) {
        bail!("result folder name '{name}' is not a plain folder name");
    }
    if let Some(bad) = files.iter().find(|f| !safe_relative(&f.path)) {
        bail!("refusing to write '{}' outside the result folder", bad.path);
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create --save_dir {}", dir.display()))?;
    let target = target_folder(dir, name, force);
    if force && target.exists() {
        if !target.is_dir() {
            bail!("{} exists and is not a folder", target.display());
        }
        std::fs::remove_dir_all(&target)
            .with_context(|| format!("cannot replace {}", target.display()))?;
    }
    std::fs::create_dir(&target)
        .with_context(|| format!("cannot write into --save_dir {}", dir.display()))?;
    for f in files {
        let path = target.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, &f.bytes)
            .with_context(|| format!("cannot write {}", path.display()))?;
        #[cfg(unix)]
        if f.path.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("cannot make {} executable", path.display()))?;
        }
    }
    Ok(target)
}

/// Generate and write the tree for a finished search.
pub fn save(
    a: &SaveArgs,
    sets: Vec<(String, String)>,
    req: &SearchRequest,
    result: &SearchResult,
) -> Result<Option<PathBuf>> {
    let Some(dir) = &a.save_dir else {
        return Ok(None);
    };
    let s = SaveRequest {
        request: req,
        result,
        top_k: a.save_top,
        sets,
        generated_version: a.generated_config_version.clone(),
        dynamo_version: a.dynamo_version.clone(),
    };
    let files = aicfg_gen::build(&s)?;
    let name = aicfg_gen::folder_name(req);
    write_tree(dir, &name, &files, a.force).map(Some)
}

/// `cli exp`: one result folder per experiment, named after it. Names that clash once made
/// safe get `_1`, `_2`, ... here, so `--force` never replaces a folder this run just wrote.
pub fn save_experiments<'a>(
    a: &SaveArgs,
    sets: &[(String, String)],
    runs: impl IntoIterator<Item = (&'a str, &'a SearchRequest, &'a SearchResult)>,
) -> Result<Vec<(String, PathBuf)>> {
    let Some(dir) = &a.save_dir else {
        return Ok(Vec::new());
    };
    let mut used: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (exp, req, result) in runs {
        let s = SaveRequest {
            request: req,
            result,
            top_k: a.save_top,
            sets: sets.to_vec(),
            generated_version: a.generated_config_version.clone(),
            dynamo_version: a.dynamo_version.clone(),
        };
        let files = aicfg_gen::build(&s).with_context(|| format!("experiment '{exp}'"))?;
        let base = aicfg_gen::safe_component(exp);
        let name = std::iter::once(base.clone())
            .chain((1u32..).map(|n| format!("{base}_{n}")))
            .find(|n| !used.contains(n))
            .expect("some suffix is free");
        let target = write_tree(dir, &name, &files, a.force)?;
        used.push(name);
        out.push((exp.to_string(), target));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_written() {
        assert!(safe_relative("agg/top1/agg/k8s_deploy.yaml"));
        assert!(!safe_relative("../x"));
        assert!(!safe_relative("/etc/passwd"));
        assert!(!safe_relative("agg/../../x"));
        assert!(!safe_relative(""));
    }
}
