//! The core's imports point one way. Reads the crate's own sources, builds the graph of
//! `crate::…` / `super::…` / child-module references between top-level modules (`perf`,
//! `perfdb`, `serve`, …), and fails on any cycle. Test modules and comments are ignored; the
//! crate root (`lib.rs`, re-exports only) is not a node.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path of every source file, e.g. `perf/silicon.rs` → ["perf", "silicon"].
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<Vec<String>, PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let name = p.file_stem().unwrap().to_string_lossy().to_string();
            if p.is_dir() {
                let mut pre = prefix.to_vec();
                pre.push(name);
                walk(&p, &pre, out);
            } else if p.extension().is_some_and(|e| e == "rs") && name != "tests" {
                // `tests.rs` is a `#[cfg(test)] mod tests;` file: a test module, not a layer.
                let mut m = prefix.to_vec();
                if name != "mod" && name != "lib" {
                    m.push(name);
                }
                out.insert(m, p);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, &[], &mut out);
    out
}

/// Source without comments and without the trailing `#[cfg(test)]` module.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod ") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &[u8], mut i: usize) -> (String, usize) {
    let start = i;
    while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == b'_') {
        i += 1;
    }
    (String::from_utf8_lossy(&s[start..i]).into_owned(), i)
}

/// Every path that starts at `i` (just past `crate::`/`super::`), braces expanded.
fn paths_at(s: &[u8], i: usize, base: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let mut i = i;
    let mut cur = base;
    loop {
        while i < s.len() && s[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < s.len() && s[i] == b'{' {
            i += 1;
            loop {
                i = paths_at(s, i, cur.clone(), out);
                while i < s.len() && (s[i].is_ascii_whitespace() || s[i] == b',') {
                    i += 1;
                }
                if i >= s.len() || s[i] == b'}' {
                    return i + 1;
                }
            }
        }
        let (id, j) = ident_at(s, i);
        if id.is_empty() {
            out.push(cur);
            return j;
        }
        cur.push(id);
        i = j;
        if s[i..].starts_with(b"::") {
            i += 2;
        } else {
            out.push(cur);
            return i;
        }
    }
}

/// Top-level module → the top-level modules it references.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules(src);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, file) in &mods {
        let Some(top) = m.first() else { continue };
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        let s = code.as_bytes();
        let mut refs = Vec::new();
        let mut i = 0;
        while i < s.len() {
            let word_start = i == 0 || !(s[i - 1].is_ascii_alphanumeric() || s[i - 1] == b'_');
            if word_start && s[i..].starts_with(b"crate::") {
                i = paths_at(s, i + 7, Vec::new(), &mut refs);
            } else if word_start && s[i..].starts_with(b"super::") {
                // `super` of a file module is its parent; of `x/mod.rs`, the parent of `x`.
                let parent = m[..m.len() - 1].to_vec();
                i = paths_at(s, i + 7, parent, &mut refs);
            } else {
                i += 1;
            }
        }
        let entry = g.entry(top.clone()).or_default();
        for r in refs {
            if let Some(t) = r.first() {
                if t != top && mods.keys().any(|k| k.first() == Some(t)) {
                    entry.insert(t.clone());
                }
            }
        }
    }
    g
}

/// One cycle in `g`, if any (depth-first search).
fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn dfs(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for t in g.get(n).into_iter().flatten() {
            match state.get(t.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|x| x == t).unwrap();
                    let mut c = stack[at..].to_vec();
                    c.push(t.clone());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = dfs(t, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = dfs(n, g, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn core_modules_import_one_way() {
    let g = graph(&src());
    assert!(g.len() > 8, "too few modules found: {g:?}");
    if let Some(c) = find_cycle(&g) {
        panic!("import cycle: {}\ngraph: {g:#?}", c.join(" → "));
    }
}

#[test]
fn errors_are_the_bottom_layer_and_the_store_is_pure() {
    let g = graph(&src());
    assert_eq!(
        g["error"],
        BTreeSet::new(),
        "error imports {:?}",
        g["error"]
    );
    // Bounded reading sits just above the errors, for every module that reads files.
    let bottom: BTreeSet<String> = ["error".to_string()].into();
    assert_eq!(g["bounded"], bottom, "bounded imports {:?}", g["bounded"]);
    // perfdb stores and reads tables; turning an op into a table query belongs to perf.
    let store: BTreeSet<String> = ["error".to_string(), "bounded".to_string()].into();
    assert_eq!(g["perfdb"], store, "perfdb imports {:?}", g["perfdb"]);
    assert!(g["perf"].contains("perfdb"), "perf reads the store");
}

#[test]
fn the_checker_sees_cycles() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&g),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    // Braced and nested paths are all seen.
    let mut refs = Vec::new();
    paths_at(b"{a::{b, c::D}, e}", 0, vec![], &mut refs);
    assert_eq!(
        refs,
        vec![
            vec!["a".to_string(), "b".into()],
            vec!["a".into(), "c".into(), "D".into()],
            vec!["e".into()],
        ]
    );
}
