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

use aicfg_gen::validate::words;

/// Check the options after `python3 -m dynamo.<backend>` (the checker `aicfg validate` uses);
/// returns how many options there were.
fn check_command(args: &[String], allowed: &BTreeMap<String, Json>, ctx: &str) -> usize {
    let bad = aicfg_gen::validate::check_command(args, allowed);
    assert!(bad.is_empty(), "{ctx}: {bad:?} in {args:?}");
    args.iter().filter(|a| a.starts_with("--")).count()
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
    for (name, svc) in services(&d).as_mapping().unwrap() {
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

/// Frontend commands: the pod args (one word per list item) and the node scripts' lines.
fn frontend_commands(f: &BTreeMap<String, String>) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let d = dgd(f);
    let s = services(&d);
    let c = &s["Frontend"]["extraPodSpec"]["mainContainer"];
    let args: Vec<String> = c["args"]
        .as_sequence()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    out.push(("pod".to_string(), args));
    for (p, body) in f.iter().filter(|(p, _)| p.contains("node_")) {
        for l in body.lines().filter(|l| l.contains("dynamo.frontend")) {
            let w = words(l);
            let at = w.iter().position(|x| x == "dynamo.frontend").unwrap();
            out.push((p.clone(), w[at + 1..].to_vec()));
        }
    }
    out
}

fn check_trtllm_yaml(text: &str, version: &str, ctx: &str) -> usize {
    let bad = aicfg_gen::validate::check_trtllm_yaml(text, version);
    assert!(bad.is_empty(), "{ctx}: {bad:?}");
    text.lines()
        .filter(|l| l.contains(':') && !l.trim_start().starts_with('#'))
        .count()
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
    let b = g.backend;
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
                // llm-d runs the same vLLM options with plain `vllm serve`.
                if b == Backend::Vllm {
                    if let (Some(v), Some(vf)) = (
                        f.iter().find(|(p, _)| p.ends_with("llm-d-values.yaml")),
                        flags(&[format!("vllm-{}", r.vllm)]),
                    ) {
                        let doc: serde_norway::Value = serde_norway::from_str(v.1).unwrap();
                        for section in ["decode", "prefill"] {
                            if let Some(a) = doc[section]["containers"][0]["args"].as_sequence() {
                                let args: Vec<String> =
                                    a.iter().map(|x| x.as_str().unwrap().to_string()).collect();
                                checked +=
                                    check_command(&args, &vf, &format!("{ctx} llm-d {section}"));
                            }
                        }
                    }
                }
                // The frontend's options, against dynamo.frontend of the same release.
                let front = frontend_commands(&f);
                assert!(!front.is_empty(), "{ctx}: no frontend command found");
                let fa = flags(&[format!("dynamo-frontend-{}", r.dynamo)])
                    .unwrap_or_else(|| panic!("no dynamo-frontend-{} snapshot", r.dynamo));
                for (where_, args) in &front {
                    checked += check_command(args, &fa, &format!("{ctx} frontend {where_}"));
                }
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
    let check = |s: &str| aicfg_gen::validate::check_command(&words(s), &allowed);
    assert_eq!(check("--cuda-graph-bs 1 2 4").len(), 1);
    let e = check("--kv-cache-dtype fp8");
    assert!(e.len() == 1 && e[0].contains("fp8_e4m3"), "{e:?}");
    assert_eq!(
        check("--tensor-parallel-size two"),
        ["--tensor-parallel-size two: not a valid \"int\""]
    );
    assert!(check("--kv-cache-dtype fp8_e4m3 --cuda-graph-bs-decode 1 2 4").is_empty());
    let yaml = "moe_config:\n  backend: WIDEEP\n";
    let e = aicfg_gen::validate::check_trtllm_yaml(yaml, "1.3.0rc29");
    assert!(e.len() == 1 && e[0].contains("1.3.0rc27"), "{e:?}");
    assert!(aicfg_gen::validate::check_trtllm_yaml(yaml, "1.3.0rc25").is_empty());
    assert_eq!(
        aicfg_gen::validate::check_trtllm_yaml("nope: 1\n", "1.3.0rc25").len(),
        1
    );
    // The shell word splitter undoes the generator's quoting.
    assert_eq!(
        words(r#"a 'b c' "{\"k\":1}" d\ e"#),
        ["a", "b c", "{\"k\":1}", "d e"]
    );
}

/// `aicfg validate DIR` on a written tree: clean as generated; an edit a framework would
/// reject is reported against its file.
#[test]
fn validate_tree_reports_what_a_framework_rejects() {
    let dir = std::env::temp_dir().join(format!("aicfg-validate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (i, b) in ["vllm", "sglang", "trtllm"].iter().enumerate() {
        let (_, g) = variants(b).remove(1);
        for (p, body) in files(&g) {
            let path = dir.join(format!("top{i}")).join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
    }
    let r = aicfg_gen::validate::validate_tree(&dir).unwrap();
    assert_eq!(
        (r.checked.len(), r.findings.len()),
        (3, 0),
        "{:?}",
        r.findings
    );
    let k8s = dir.join("top1/disagg/k8s_deploy.yaml");
    let text = std::fs::read_to_string(&k8s).unwrap();
    std::fs::write(
        &k8s,
        text.replace("--cuda-graph-bs-decode", "--cuda-graph-bs"),
    )
    .unwrap();
    let engine = dir.join("top2/disagg/decode_config.yaml");
    let text = std::fs::read_to_string(&engine).unwrap();
    std::fs::write(
        &engine,
        text.replace("max_batch_size: 64", "max_batch_size: many"),
    )
    .unwrap();
    // A frontend option its release does not have (aicfg writes --http-port).
    let node = dir.join("top0/disagg/node_0_run.sh");
    let text = std::fs::read_to_string(&node).unwrap();
    assert!(text.contains("dynamo.frontend --http-port"));
    std::fs::write(&node, text.replace("--http-port", "--http-portt")).unwrap();
    let r = aicfg_gen::validate::validate_tree(&dir).unwrap();
    let files: Vec<_> = r.findings.iter().map(|f| f.file.clone()).collect();
    assert_eq!(files, [node, k8s, engine], "{:?}", r.findings);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The deprecation audit: every TRT-LLM key aicfg writes, over the matrix, against the newest
/// extracted source (`trtllm-main.json`, TorchLlmArgs read with `ast` from llm_args.py). The
/// one key it still writes that main only accepts through a deprecation remap is named here,
/// so a new deprecation (or a fix) shows up as a failing test.
#[test]
fn trtllm_keys_written_are_current_in_trtllm_main() {
    let mut noted = std::collections::BTreeSet::new();
    let mut keys = 0;
    let mut wide_ep_rc25 = false;
    for r in &matrix().releases {
        if snapshot(&format!("dynamo-trtllm-{}", r.dynamo)).is_none() {
            continue;
        }
        for (what, mut g) in variants("trtllm") {
            at_release(&mut g, r);
            for (p, body) in files(&g).iter().filter(|(p, _)| {
                p.ends_with("_config.yaml") && !p.ends_with("generator_config.yaml")
            }) {
                keys += body
                    .lines()
                    .filter(|l| l.contains(':') && !l.starts_with('#'))
                    .count();
                for n in aicfg_gen::validate::trtllm_main_notes(body) {
                    eprintln!("{} {what} {p}: {n}", r.trtllm);
                    // WIDEEP is right for the releases before 1.3.0rc27 (defect 12).
                    if n.starts_with("moe_config.backend: WIDEEP") {
                        let v = aicfg_gen::versions::Version::parse(&r.trtllm);
                        assert!(!v.at_least("1.3.0rc27"), "{}", r.trtllm);
                        wide_ep_rc25 = true;
                        continue;
                    }
                    noted.insert(n);
                }
            }
        }
    }
    assert!(keys > 100, "{keys}");
    assert!(
        wide_ep_rc25,
        "the 1.3.0rc25 wide-EP deployment writes WIDEEP"
    );
    // MTP depth: main reads `max_draft_len` and remaps `num_nextn_predict_layers` with a
    // deprecation warning; the pinned releases (1.3.0rc25/rc29) take the old key, and the
    // release that switched is not in the extracted history, so aicfg keeps writing it.
    let want: std::collections::BTreeSet<String> =
        ["speculative_config.num_nextn_predict_layers: deprecated in TRT-LLM main".to_string()]
            .into();
    assert_eq!(noted, want);
}

/// The hand excerpt that checks the pinned releases (`trtllm-llmapi.json`) against the source
/// extracted from TRT-LLM main: every field it allows exists there with the same type.
#[test]
fn the_trtllm_excerpt_agrees_with_the_extracted_source() {
    let hand = snapshot("trtllm-llmapi").unwrap();
    let main = snapshot("trtllm-main").unwrap();
    let (hand, main) = (&hand["fields"], &main["fields"]);
    let mut n = 0;
    let mut gone = Vec::new();
    for (k, h) in hand.as_object().unwrap() {
        let m = main
            .get(k)
            .unwrap_or_else(|| panic!("{k}: in the excerpt, not in TRT-LLM main"));
        let types: Vec<&str> = match &m["type"] {
            Json::Array(a) => a.iter().filter_map(|t| t.as_str()).collect(),
            t => vec![t.as_str().unwrap()],
        };
        assert!(
            types.contains(&h["type"].as_str().unwrap()),
            "{k}: excerpt {} vs main {types:?}",
            h["type"]
        );
        // Enum values: one marked removed is indeed gone from main; the others main lacks are
        // listed below (older releases' values, kept for the pinned versions).
        if let (Some(hc), Some(mc)) = (h["choices"].as_array(), m["choices"].as_array()) {
            for c in hc {
                let c = c.as_str().unwrap();
                let in_main = mc.iter().any(|x| x == c);
                if !h["removed"][c].is_null() {
                    assert!(!in_main, "{k}: {c} is marked removed but main has it");
                } else if !in_main {
                    gone.push(format!("{k}={c}"));
                }
            }
        }
        n += 1;
    }
    assert!(n >= 25, "{n}");
    // `_autodeploy` is another args class in main; Lookahead and Medusa were TensorRT-engine
    // speculative modes, gone from main's union.
    assert_eq!(
        gone,
        [
            "backend=_autodeploy",
            "speculative_config.decoding_type=Lookahead",
            "speculative_config.decoding_type=Medusa"
        ]
    );
    // The extraction itself: types, enums and marks straight from the declarations.
    assert_eq!(main["max_batch_size"]["type"], "int");
    assert_eq!(main["backend"]["status"], "deprecated");
    assert_eq!(main["kv_cache_config"]["type"], "object");
    assert_eq!(
        main["speculative_config.num_nextn_predict_layers"]["init"],
        false
    );
    let ch = main["cache_transceiver_config.backend"]["choices"]
        .as_array()
        .unwrap();
    assert!(ch.iter().any(|c| c == "NIXL") && ch.iter().any(|c| c == "DEFAULT"));
}
