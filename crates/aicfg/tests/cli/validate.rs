//! `aicfg validate DIR` end to end: a real `--save_dir` tree is accepted, an edit a framework
//! would reject is reported against its file with a non-zero exit.
use crate::common::{aicfg, ok, SMALL_SEARCH};

#[test]
fn validate_accepts_the_generated_tree_and_names_what_a_framework_rejects() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_str().unwrap();
    let mut a = SMALL_SEARCH.to_vec();
    a.extend(["--backend", "vllm", "--save_dir", dir]);
    ok(&a);
    let out = ok(&["validate", dir]);
    assert!(out.contains(" 0 problem(s)"), "{out}");
    let last = out.lines().last().unwrap();
    let checked: u32 = last.split_whitespace().next().unwrap().parse().unwrap();
    assert!(checked > 0, "{out}");
    // Break one worker flag in one node script.
    let script = walk(d.path())
        .into_iter()
        .find(|p| {
            p.ends_with("node_0_run.sh")
                && std::fs::read_to_string(p)
                    .unwrap()
                    .contains("--max-num-seqs")
        })
        .expect("a vLLM node script");
    let text = std::fs::read_to_string(&script).unwrap();
    std::fs::write(&script, text.replacen("--max-num-seqs", "--max-num-seq", 1)).unwrap();
    let o = aicfg(&["validate", dir]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "{stdout}");
    assert!(
        stdout.contains(script.to_str().unwrap())
            && stdout.contains("--max-num-seq is not an option"),
        "{stdout}"
    );
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
