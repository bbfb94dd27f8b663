//! The short command forms of the original tool's README, mapped onto aicfg's subcommands before
//! clap parses: `aicfg cli --model ...` is `aicfg cli default --model ...`, and
//! `aicfg cli --yaml_path F` is `aicfg cli exp --yaml_path F`.
use std::ffi::OsString;

/// Flags `cli exp` takes besides `--yaml_path` (with their value-less ones marked).
const EXP_FLAGS: &[(&str, bool)] = &[
    ("top-n", true),
    ("systems-path", true),
    ("json", false),
    ("strict", false),
    ("save-dir", true),
    ("save-top", true),
    ("generator-set", true),
    ("generated-config-version", true),
    ("force", false),
];

/// `--flag_name=v` → `flag-name`.
fn flag_name(arg: &str) -> Option<String> {
    let rest = arg.strip_prefix("--")?;
    let name = rest.split('=').next().unwrap_or(rest);
    Some(name.replace('_', "-"))
}

fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Rewrite the seed forms; `Err` carries the message that tells the user what to type instead.
pub fn rewrite(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let text: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if text.get(1).map(String::as_str) != Some("cli") {
        return Ok(args);
    }
    let sub = text.get(2).map(String::as_str).unwrap_or("");
    let bare = sub.starts_with("--") && !matches!(sub, "--help" | "--version");
    if !(bare || sub == "default") {
        return Ok(args);
    }
    let rest = &text[if bare { 2 } else { 3 }..];
    let yaml_at = rest
        .iter()
        .position(|a| flag_name(a).as_deref() == Some("yaml-path"));
    let Some(yaml_at) = yaml_at else {
        if !bare {
            return Ok(args);
        }
        let mut out = args;
        out.insert(2, OsString::from("default"));
        return Ok(out);
    };
    // `--yaml_path F`: the experiment file names its own model, system and targets, so it runs
    // as `cli exp` when nothing else on the line belongs to the search flags.
    let mut foreign = Vec::new();
    let mut i = 0;
    while i < rest.len() {
        let a = &rest[i];
        let inline = a.contains('=');
        match flag_name(a) {
            Some(n) if n == "yaml-path" => i += usize::from(!inline),
            Some(n) => match EXP_FLAGS.iter().find(|(f, _)| *f == n) {
                Some((_, takes)) => i += usize::from(*takes && !inline),
                None => {
                    foreign.push(a.split('=').next().unwrap_or(a).to_string());
                    if !inline && rest.get(i + 1).is_some_and(|v| !v.starts_with("--")) {
                        i += 1;
                    }
                }
            },
            None => {}
        }
        i += 1;
    }
    let yaml = rest[yaml_at]
        .split_once('=')
        .map(|(_, v)| v.to_string())
        .or_else(|| rest.get(yaml_at + 1).cloned())
        .unwrap_or_default();
    if foreign.is_empty() {
        let mut out: Vec<OsString> = args[..2].to_vec();
        out.push("exp".into());
        out.extend(args[if bare { 2 } else { 3 }..].iter().cloned());
        return Ok(out);
    }
    let mut search: Vec<String> = Vec::new();
    let mut j = 0;
    while j < rest.len() {
        if j == yaml_at {
            j += if rest[j].contains('=') { 1 } else { 2 };
            continue;
        }
        search.push(shell_word(&rest[j]));
        j += 1;
    }
    Err(format!(
        "--yaml_path runs an experiment file, and each experiment in it sets its own model_name, \
         system_name, total_gpus, isl/osl and ttft/tpot, so {} cannot apply to it.\n\
         To run the file, type:\n    aicfg cli exp --yaml_path {}\n\
         (put the values of {} into the file's experiments; see examples/ for the keys)\n\
         To search with the flags instead, type:\n    aicfg cli default {}",
        foreign.join(", "),
        shell_word(&yaml),
        foreign.join(", "),
        search.join(" ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str) -> Result<String, String> {
        let args = line.split(' ').map(OsString::from).collect();
        rewrite(args).map(|v| {
            v.iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
    }

    #[test]
    fn bare_cli_is_default() {
        assert_eq!(
            run("aicfg cli --model QWEN3_32B --total_gpus 32 --system h200_sxm").unwrap(),
            "aicfg cli default --model QWEN3_32B --total_gpus 32 --system h200_sxm"
        );
        assert_eq!(run("aicfg cli --help").unwrap(), "aicfg cli --help");
        assert_eq!(
            run("aicfg cli estimate --tp 2").unwrap(),
            "aicfg cli estimate --tp 2"
        );
        assert_eq!(
            run("aicfg webapp --port 1").unwrap(),
            "aicfg webapp --port 1"
        );
    }

    #[test]
    fn yaml_path_alone_runs_the_study() {
        assert_eq!(
            run("aicfg cli --yaml_path x.yaml --json --top_n 3").unwrap(),
            "aicfg cli exp --yaml_path x.yaml --json --top_n 3"
        );
        assert_eq!(
            run("aicfg cli default --yaml-path=x.yaml").unwrap(),
            "aicfg cli exp --yaml-path=x.yaml"
        );
    }

    #[test]
    fn yaml_path_with_search_flags_says_what_to_type() {
        let e = run("aicfg cli --model QWEN3_32B --total_gpus 32 --system h200_sxm --ttft 200 --yaml_path c.yaml")
            .unwrap_err();
        assert!(e.contains("aicfg cli exp --yaml_path c.yaml\n"), "{e}");
        assert!(
            e.contains(
                "aicfg cli default --model QWEN3_32B --total_gpus 32 --system h200_sxm --ttft 200"
            ),
            "{e}"
        );
        assert!(e.contains("--model, --total_gpus, --system, --ttft"), "{e}");
    }
}
