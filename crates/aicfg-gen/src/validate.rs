//! `aicfg validate DIR`: re-check a generated (or hand-edited) tree against the schema
//! snapshots of the release each deployment targets, and say what a framework would reject.
use crate::genconfig::GeneratorConfig;
use aicfg_core::Backend;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

macro_rules! snapshots {
    ($($n:literal),* $(,)?) => {
        &[$(($n, include_str!(concat!("../schemas/", $n, ".json")))),*]
    };
}

/// The vendored snapshots (see schemas/README.md), embedded so the binary needs no files.
const SNAPSHOTS: &[(&str, &str)] = snapshots!(
    "dynamo-vllm-1.6.1",
    "dynamo-vllm-1.5.1",
    "dynamo-sglang-1.6.1",
    "dynamo-sglang-1.5.1",
    "dynamo-trtllm-1.6.1",
    "dynamo-trtllm-1.5.1",
    "dynamo-frontend-1.6.1",
    "dynamo-frontend-1.5.1",
    "vllm-0.31.0",
    "vllm-0.28.0",
    "sglang-0.5.21",
    "sglang-0.5.18",
    "aiperf-0.13.0",
    "trtllm-llmapi",
    "trtllm-main",
);

fn snapshot(name: &str) -> Option<Json> {
    SNAPSHOTS
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, t)| serde_json::from_str(t).ok())
}

/// Options allowed on `python3 -m dynamo.<backend>` of a release; None without snapshots.
pub fn allowed_flags(
    backend: Backend,
    framework: &str,
    dynamo: &str,
) -> Option<BTreeMap<String, Json>> {
    let mut names = vec![format!("dynamo-{backend}-{dynamo}")];
    if backend != Backend::Trtllm {
        names.push(format!("{backend}-{framework}"));
    }
    let mut out = BTreeMap::new();
    for n in names {
        let s = snapshot(&n)?;
        for (k, v) in s["flags"].as_object()? {
            out.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Some(out)
}

/// Split a generated shell line into words (single/double quotes and backslashes).
pub fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut any = false;
    let mut it = line.chars();
    while let Some(c) = it.next() {
        match c {
            '\'' => {
                any = true;
                for d in it.by_ref() {
                    if d == '\'' {
                        break;
                    }
                    cur.push(d);
                }
            }
            '"' => {
                any = true;
                while let Some(d) = it.next() {
                    match d {
                        '"' => break,
                        '\\' => cur.extend(it.next()),
                        _ => cur.push(d),
                    }
                }
            }
            '\\' => cur.extend(it.next()),
            c if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Problems of the options after `python3 -m dynamo.<backend>` (empty = accepted).
pub fn check_command(args: &[String], allowed: &BTreeMap<String, Json>) -> Vec<String> {
    let mut bad = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "2>&1" || a == "|" {
            break;
        }
        i += 1;
        if !a.starts_with("--") {
            bad.push(format!("stray word {a:?}"));
            continue;
        }
        let Some(spec) = allowed.get(a.as_str()) else {
            bad.push(format!("{a} is not an option of this release"));
            while i < args.len() && !args[i].starts_with("--") && args[i] != "2>&1" {
                i += 1;
            }
            continue;
        };
        if spec["takes_value"] == Json::Bool(false) {
            continue;
        }
        let many = spec["nargs"].as_str().is_some_and(|s| s == "+" || s == "*");
        let mut vals = Vec::new();
        while i < args.len() && !args[i].starts_with("--") && args[i] != "2>&1" {
            vals.push(args[i].clone());
            i += 1;
            if !many {
                break;
            }
        }
        if vals.is_empty() {
            bad.push(format!("{a} needs a value"));
        }
        for v in vals.iter().filter(|v| !v.starts_with('$')) {
            let ok = match spec["type"].as_str() {
                Some("int") => v.parse::<i64>().is_ok(),
                Some("float") => v.parse::<f64>().is_ok(),
                Some("json") => serde_json::from_str::<Json>(v).is_ok(),
                _ => true,
            };
            if !ok {
                bad.push(format!("{a} {v}: not a valid {}", spec["type"]));
            }
            if let Some(ch) = spec["choices"].as_array() {
                if !ch.iter().any(|c| c.as_str() == Some(v)) {
                    let list: Vec<&str> = ch.iter().filter_map(|c| c.as_str()).collect();
                    bad.push(format!("{a} {v}: not one of {}", list.join(", ")));
                }
            }
        }
    }
    bad
}

fn yaml_keys(v: &serde_norway::Value, prefix: &str, out: &mut Vec<(String, serde_norway::Value)>) {
    if let Some(m) = v.as_mapping() {
        for (k, val) in m {
            let key = format!("{prefix}{}", k.as_str().unwrap_or("?"));
            out.push((key.clone(), val.clone()));
            if val.is_mapping() {
                yaml_keys(val, &format!("{key}."), out);
            }
        }
    }
}

/// Problems of a TRT-LLM engine YAML for a TRT-LLM version.
pub fn check_trtllm_yaml(text: &str, version: &str) -> Vec<String> {
    let Some(fields) = snapshot("trtllm-llmapi") else {
        return vec![];
    };
    let fields = &fields["fields"];
    let v: serde_norway::Value = match serde_norway::from_str(text) {
        Ok(v) => v,
        Err(e) => return vec![format!("not YAML: {e}")],
    };
    let mut keys = Vec::new();
    yaml_keys(&v, "", &mut keys);
    let mut bad = Vec::new();
    for (k, val) in &keys {
        let Some(spec) = fields.get(k) else {
            bad.push(format!("{k} is not a TorchLlmArgs field aicfg knows"));
            continue;
        };
        let ok = match spec["type"].as_str().unwrap_or("") {
            "int" => val.as_u64().is_some(),
            "float" => val.as_f64().is_some(),
            "bool" => val.as_bool().is_some(),
            "str" => val.as_str().is_some(),
            "list" => val.is_sequence(),
            _ => val.is_mapping(),
        };
        if !ok {
            bad.push(format!("{k}: {val:?} is not a {}", spec["type"]));
        }
        if let (Some(ch), Some(s)) = (spec["choices"].as_array(), val.as_str()) {
            if !ch.iter().any(|c| c.as_str() == Some(s)) {
                bad.push(format!("{k}: {s} is not an allowed value"));
            }
            if let Some(since) = spec["removed"][s].as_str() {
                if crate::versions::Version::parse(version).at_least(since) {
                    bad.push(format!("{k}: {s} is refused from TRT-LLM {since}"));
                }
            }
        }
    }
    bad
}

/// Does a YAML value have one of a snapshot field's types?
fn value_fits(spec: &Json, val: &serde_norway::Value) -> bool {
    let types: Vec<&str> = match &spec["type"] {
        Json::Array(a) => a.iter().filter_map(|t| t.as_str()).collect(),
        t => t.as_str().into_iter().collect(),
    };
    types.iter().any(|t| match *t {
        "int" => val.as_i64().is_some() || val.as_u64().is_some(),
        "float" => val.as_f64().is_some(),
        "bool" => val.as_bool().is_some(),
        "str" => val.as_str().is_some(),
        "list" => val.is_sequence(),
        _ => val.is_mapping() || val.is_null(),
    })
}

/// The deprecation audit of a TRT-LLM engine YAML against the newest extracted source
/// (`schemas/trtllm-main.json`): keys TRT-LLM main no longer has, marks deprecated (or accepts
/// only through a deprecation remap), or whose value it would refuse. These are notes, not
/// errors: the targeted release is checked by [`check_trtllm_yaml`].
pub fn trtllm_main_notes(text: &str) -> Vec<String> {
    let Some(snap) = snapshot("trtllm-main") else {
        return vec![];
    };
    let fields = &snap["fields"];
    let Ok(v) = serde_norway::from_str::<serde_norway::Value>(text) else {
        return vec![];
    };
    let mut keys = Vec::new();
    yaml_keys(&v, "", &mut keys);
    let mut notes = Vec::new();
    for (k, val) in &keys {
        let Some(spec) = fields.get(k) else {
            notes.push(format!("{k}: not a field of TRT-LLM main"));
            continue;
        };
        if spec["status"] == "deprecated" || spec["deprecated"] == true || spec["init"] == false {
            notes.push(format!("{k}: deprecated in TRT-LLM main"));
        }
        if !value_fits(spec, val) {
            notes.push(format!(
                "{k}: {val:?} is not a {} in TRT-LLM main",
                spec["type"]
            ));
        } else if let (Some(ch), Some(s)) = (spec["choices"].as_array(), val.as_str()) {
            if !ch.iter().any(|c| c.as_str() == Some(s)) {
                notes.push(format!("{k}: {s} is not an allowed value in TRT-LLM main"));
            }
        }
    }
    notes
}

/// One finding: file, what a framework would reject.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub file: PathBuf,
    pub problem: String,
}

/// Report of a tree: findings, and deployments checked / skipped (no snapshots).
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// Not rejected by the targeted release, but deprecated or gone in TRT-LLM main.
    pub notes: Vec<Finding>,
    pub checked: Vec<String>,
    pub skipped: Vec<String>,
}

fn dynamo_lines<'a>(text: &'a str, module: &'a str) -> impl Iterator<Item = Vec<String>> + 'a {
    text.lines()
        .filter(move |l| l.contains(module))
        .filter_map(move |l| {
            let w = words(l);
            w.iter()
                .position(|x| x == module)
                .map(|p| w[p + 1..].to_vec())
        })
}

/// Validate every deployment folder (one holding `generator_config.yaml`) under `dir`.
pub fn validate_tree(dir: &Path) -> std::io::Result<Report> {
    let mut report = Report::default();
    let mut stack = vec![dir.to_path_buf()];
    let mut steps = 0usize;
    while let Some(d) = stack.pop() {
        steps += 1;
        if steps > 100_000 {
            break; // a tree far larger than any generated one
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&d)?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir() && !t.is_symlink()))
            .map(|e| e.path())
            .collect();
        entries.sort();
        stack.extend(entries.into_iter().rev());
        let gen = d.join("generator_config.yaml");
        if gen.is_file() {
            validate_deployment(&d, &gen, &mut report)?;
        }
    }
    Ok(report)
}

fn read_small(p: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(p)?;
    if meta.len() > 16 << 20 {
        return Err(std::io::Error::other(format!(
            "{} is larger than 16 MiB",
            p.display()
        )));
    }
    std::fs::read_to_string(p)
}

fn validate_deployment(dir: &Path, gen: &Path, report: &mut Report) -> std::io::Result<()> {
    let text = read_small(gen)?;
    let g: GeneratorConfig = match serde_norway::from_str(&text) {
        Ok(g) => g,
        Err(e) => {
            report.findings.push(Finding {
                file: gen.to_path_buf(),
                problem: format!("not a generator config: {e}"),
            });
            return Ok(());
        }
    };
    let label = format!(
        "{} ({} {}, Dynamo {})",
        dir.display(),
        g.backend,
        g.generated_config_version,
        g.dynamo.dynamo_version
    );
    let Some(allowed) = allowed_flags(
        g.backend,
        &g.generated_config_version,
        &g.dynamo.dynamo_version,
    ) else {
        report.skipped.push(label);
        return Ok(());
    };
    let module = format!("dynamo.{}", g.backend);
    let frontend = snapshot(&format!("dynamo-frontend-{}", g.dynamo.dynamo_version))
        .and_then(|s| s["flags"].as_object().cloned())
        .map(|m| m.into_iter().collect::<BTreeMap<String, Json>>());
    let mut files: Vec<PathBuf> = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)?.filter_map(|e| e.ok()) {
            let t = e.file_type()?;
            if t.is_dir() && !t.is_symlink() && d == dir {
                stack.push(e.path());
            } else if t.is_file() {
                files.push(e.path());
            }
        }
    }
    files.sort();
    for f in files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let mut push = |problems: Vec<String>| {
            report
                .findings
                .extend(problems.into_iter().map(|problem| Finding {
                    file: f.clone(),
                    problem,
                }))
        };
        if name.ends_with(".sh") || name == "k8s_deploy.yaml" {
            let text = read_small(&f)?;
            // Pod commands are YAML block scalars; each command is one line either way.
            for args in dynamo_lines(&text, &module) {
                push(check_command(&args, &allowed));
            }
            if let Some(fa) = &frontend {
                for args in dynamo_lines(&text, "dynamo.frontend") {
                    push(check_command(&args, fa));
                }
            }
        } else if g.backend == Backend::Trtllm
            && name.ends_with("_config.yaml")
            && name != "generator_config.yaml"
        {
            let text = read_small(&f)?;
            push(check_trtllm_yaml(&text, &g.generated_config_version));
            report
                .notes
                .extend(trtllm_main_notes(&text).into_iter().map(|problem| Finding {
                    file: f.clone(),
                    problem,
                }));
        }
    }
    report.checked.push(label);
    Ok(())
}
