//! Every flag and key the generator writes exists in the release it targets, with a value of
//! the right type and an allowed choice: checked against the vendored snapshots of the
//! frameworks' own parsers (`schemas/`, see its README) over a matrix of deployments (each
//! backend × each matrix release with snapshots × dense/MoE, agg/disagg, multi-node, MTP,
//! prefix, heterogeneous).
mod common;
use aicfg_core::Backend;
use aicfg_gen::genconfig::*;
use aicfg_gen::versions::{matrix, Release};
use common::*;
use serde_json::Value as Json;
use std::collections::BTreeMap;

fn snapshot(name: &str) -> Option<Json> {
    let p = format!("{}/schemas/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(p).ok()?;
    Some(serde_json::from_str(&text).unwrap())
}

/// Option name → its description, merged from several snapshots.
fn flags(names: &[String]) -> Option<BTreeMap<String, Json>> {
    let mut out = BTreeMap::new();
    for n in names {
        let s = snapshot(n)?;
        for (k, v) in s["flags"].as_object().unwrap() {
            out.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Some(out)
}

/// Split a generated shell line into words (single/double quotes and backslashes, as bash).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut any = false;
    let mut it = line.chars().peekable();
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
                        '\\' => {
                            if let Some(e) = it.next() {
                                cur.push(e)
                            }
                        }
                        _ => cur.push(d),
                    }
                }
            }
            '\\' => {
                if let Some(e) = it.next() {
                    cur.push(e)
                }
            }
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

/// Check the options after `python3 -m dynamo.<backend>` against the allowed set.
fn check_command(args: &[String], allowed: &BTreeMap<String, Json>, ctx: &str) -> usize {
    let mut i = 0;
    let mut n = 0;
    while i < args.len() {
        let a = &args[i];
        // Shell plumbing after the command.
        if a == "2>&1" || a == "|" {
            break;
        }
        assert!(a.starts_with("--"), "{ctx}: stray word {a:?} in {args:?}");
        let spec = allowed
            .get(a.as_str())
            .unwrap_or_else(|| panic!("{ctx}: {a} is not an option of the targeted release"));
        n += 1;
        i += 1;
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
        assert!(!vals.is_empty(), "{ctx}: {a} needs a value");
        for v in &vals {
            if v.starts_with('$') {
                continue; // filled in from the environment at launch
            }
            match spec["type"].as_str() {
                Some("int") => assert!(v.parse::<i64>().is_ok(), "{ctx}: {a} {v} is not an int"),
                Some("float") => {
                    assert!(v.parse::<f64>().is_ok(), "{ctx}: {a} {v} is not a number")
                }
                Some("json") => assert!(
                    serde_json::from_str::<Json>(v).is_ok(),
                    "{ctx}: {a} {v} is not JSON"
                ),
                _ => {}
            }
            if let Some(ch) = spec["choices"].as_array() {
                assert!(
                    ch.iter().any(|c| c.as_str() == Some(v)),
                    "{ctx}: {a} {v} is not one of {ch:?}"
                );
            }
        }
    }
    n
}

/// Worker commands of a rendered deployment: from the pod scripts and the node scripts.
fn worker_commands(f: &BTreeMap<String, String>, backend: &str) -> Vec<(String, Vec<String>)> {
    let module = format!("dynamo.{backend}");
    let mut out = Vec::new();
    let mut push = |ctx: String, line: &str| {
        let w = words(line);
        if let Some(p) = w.iter().position(|x| *x == module) {
            out.push((ctx, w[p + 1..].to_vec()));
        }
    };
    let d = dgd(f);
    for (name, svc) in d["spec"]["services"].as_mapping().unwrap() {
        if let Some(s) = svc["extraPodSpec"]["mainContainer"]["args"][0].as_str() {
            push(format!("pod {}", name.as_str().unwrap()), s);
        }
    }
    for (p, body) in f.iter().filter(|(p, _)| p.contains("node_")) {
        for l in body.lines().filter(|l| l.contains(&module)) {
            push(p.clone(), l);
        }
    }
    out
}

fn trtllm_keys(
    v: &serde_norway::Value,
    prefix: &str,
    out: &mut Vec<(String, serde_norway::Value)>,
) {
    if let Some(m) = v.as_mapping() {
        for (k, val) in m {
            let key = format!("{prefix}{}", k.as_str().unwrap());
            out.push((key.clone(), val.clone()));
            if val.is_mapping() {
                trtllm_keys(val, &format!("{key}."), out);
            }
        }
    }
}

fn check_trtllm_yaml(text: &str, version: &str, ctx: &str) -> usize {
    let fields = snapshot("trtllm-llmapi").unwrap();
    let fields = fields["fields"].as_object().unwrap();
    let v: serde_norway::Value = serde_norway::from_str(text).unwrap();
    let mut keys = Vec::new();
    trtllm_keys(&v, "", &mut keys);
    for (k, val) in &keys {
        let spec = fields
            .get(k)
            .unwrap_or_else(|| panic!("{ctx}: engine key {k} is not a TorchLlmArgs field"));
        let ok = match spec["type"].as_str().unwrap() {
            "int" => val.as_u64().is_some(),
            "float" => val.as_f64().is_some(),
            "bool" => val.as_bool().is_some(),
            "str" => val.as_str().is_some(),
            "list" => val.is_sequence(),
            _ => val.is_mapping(),
        };
        assert!(ok, "{ctx}: {k}: {val:?} is not a {}", spec["type"]);
        if let (Some(ch), Some(s)) = (spec["choices"].as_array(), val.as_str()) {
            assert!(
                ch.iter().any(|c| c.as_str() == Some(s)),
                "{ctx}: {k} {s} not in {ch:?}"
            );
            if let Some(since) = spec["removed"][s].as_str() {
                assert!(
                    !aicfg_gen::versions::Version::parse(version).at_least(since),
                    "{ctx}: {k} {s} is refused from TRT-LLM {since} (target {version})"
                );
            }
        }
    }
    keys.len()
}

/// The deployments of the matrix for one backend.
fn variants(backend: &str) -> Vec<(String, GeneratorConfig)> {
    let mut v = Vec::new();
    let agg = config(backend, false, &[("agg", 2, params(4, 1, 1, 64, 4096))]);
    v.push(("dense agg".to_string(), agg.clone()));
    let disagg = config(
        backend,
        false,
        &[
            ("prefill", 2, params(2, 1, 1, 1, 8192)),
            ("decode", 1, params(4, 1, 1, 64, 64)),
        ],
    );
    v.push(("dense disagg".into(), disagg.clone()));
    let moe = config(
        backend,
        true,
        &[
            ("prefill", 1, params(1, 8, 8, 1, 8192)),
            ("decode", 1, params(1, 32, 32, 64, 64)),
        ],
    );
    v.push(("moe wide-ep disagg".into(), moe.clone()));
    let mut mtp = moe.clone();
    mtp.model.nextn = 2;
    v.push(("moe mtp".into(), mtp));
    let mut multi = disagg.clone();
    multi.node.num_gpus_per_node = 2;
    multi.node.decode_num_gpus_per_node = 2;
    v.push(("multi-node".into(), multi));
    let mut prefix = agg.clone();
    prefix.model.prefix = 1000;
    prefix.dynamo.enable_router = true;
    prefix.dynamo.publish_kv_events = true;
    v.push(("prefix".into(), prefix));
    let mut het = disagg.clone();
    het.k8s.decode_gpu_product = "NVIDIA-B200".into();
    het.node.decode_num_gpus_per_node = 4;
    v.push(("hetero".into(), het));
    let mut bench = moe;
    bench.rule = Rule::Benchmark;
    v.push(("benchmark rule".into(), bench));
    v
}

fn at_release(g: &mut GeneratorConfig, r: &Release) {
    let b = Backend::parse(&g.backend).unwrap();
    g.generated_config_version = r.framework(b).to_string();
    g.dynamo.dynamo_version = r.dynamo.clone();
    g.k8s.k8s_image = matrix().image(b, &r.dynamo);
    g.k8s.decode_k8s_image = g.k8s.k8s_image.clone();
}

#[test]
fn every_generated_flag_and_key_exists_in_the_targeted_release() {
    let mut checked = 0;
    let mut releases = 0;
    for r in &matrix().releases {
        for b in Backend::ALL {
            let mut names = vec![format!("dynamo-{}-{}", b.name(), r.dynamo)];
            if b != Backend::Trtllm {
                names.push(format!("{}-{}", b.name(), r.framework(b)));
            }
            let Some(allowed) = flags(&names) else {
                continue;
            };
            releases += 1;
            for (what, mut g) in variants(b.name()) {
                at_release(&mut g, r);
                let f = files(&g);
                let ctx = format!(
                    "{} {} (Dynamo {}) {what}",
                    b.name(),
                    r.framework(b),
                    r.dynamo
                );
                let cmds = worker_commands(&f, b.name());
                assert!(!cmds.is_empty(), "{ctx}: no worker command found");
                for (where_, args) in &cmds {
                    checked += check_command(args, &allowed, &format!("{ctx} {where_}"));
                }
                if b == Backend::Trtllm {
                    for (p, body) in f.iter().filter(|(p, _)| {
                        p.ends_with("_config.yaml") && !p.ends_with("generator_config.yaml")
                    }) {
                        checked += check_trtllm_yaml(body, r.framework(b), &format!("{ctx} {p}"));
                    }
                }
            }
        }
    }
    // Dynamo 1.6.1 and 1.5.1 × three backends at least.
    assert!(releases >= 6, "snapshots cover {releases} backend releases");
    eprintln!("checked {checked} flags/keys over {releases} backend × release pairs");
    let unchecked: Vec<&str> = matrix()
        .releases
        .iter()
        .filter(|r| snapshot(&format!("dynamo-vllm-{}", r.dynamo)).is_none())
        .map(|r| r.dynamo.as_str())
        .collect();
    eprintln!(
        "NOTICE: no schema snapshots for Dynamo {}",
        unchecked.join(", ")
    );
}

#[test]
fn bench_script_flags_exist_in_aiperf() {
    let allowed = flags(&["aiperf-0.13.0".to_string()]).unwrap();
    let mut g = config("vllm", false, &[("agg", 1, params(4, 1, 1, 64, 4096))]);
    g.model.prefix = 500;
    let f = files(&g);
    let body = get(&f, "bench_run.sh");
    let mut n = 0;
    for w in words(&body.replace("\\\n", " ")) {
        if w.starts_with("--") && !w.contains('=') {
            assert!(allowed.contains_key(&w), "aiperf has no {w}");
            n += 1;
        }
    }
    assert!(n > 10, "{n}");
}

#[test]
fn the_checks_catch_what_the_frameworks_reject() {
    // The removed SGLang flag (defect 1) and WIDEEP from 1.3.0rc27 (defect 12) are refused.
    let allowed = flags(&["dynamo-sglang-1.6.1".into(), "sglang-0.5.21".into()]).unwrap();
    let bad = words("--cuda-graph-bs 1 2 4");
    assert!(std::panic::catch_unwind(|| check_command(&bad, &allowed, "t")).is_err());
    let bad = words("--kv-cache-dtype fp8");
    assert!(std::panic::catch_unwind(|| check_command(&bad, &allowed, "t")).is_err());
    let ok = words("--kv-cache-dtype fp8_e4m3 --cuda-graph-bs-decode 1 2 4");
    assert_eq!(check_command(&ok, &allowed, "t"), 2);
    let yaml = "moe_config:\n  backend: WIDEEP\n";
    assert!(std::panic::catch_unwind(|| check_trtllm_yaml(yaml, "1.3.0rc29", "t")).is_err());
    assert_eq!(check_trtllm_yaml(yaml, "1.3.0rc25", "t"), 2);
    // The shell word splitter undoes the generator's quoting.
    assert_eq!(
        words(r#"a 'b c' "{\"k\":1}" d\ e"#),
        ["a", "b c", "{\"k\":1}", "d e"]
    );
}
