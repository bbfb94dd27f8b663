//! Hostile-input properties (the hardening issue's fuzz suite, on stable Rust and in CI):
//! experiment YAML assembled from hostile values is driven through parsing *and the search*, and
//! Hugging Face configs are mutated field by field. Each case must end in a typed error or a
//! valid, finite result, within a time bound.
use aicfg_core::limits::SearchLimits;
use aicfg_core::model::graph::{Parallel, WorkerGraph};
use aicfg_core::search::search;
use aicfg_core::task::parse_experiments_with;
use aicfg_core::{ModelRegistry, ModelSpec, SystemRegistry};
use proptest::prelude::*;
use std::time::{Duration, Instant};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12)
}

/// Values a hostile file puts in a scalar field: sane, zero, negative, huge, fractional, NaN,
/// infinite, text, a list, a nested map.
const SCALARS: &[&str] = &[
    "1",
    "4",
    "8",
    "0",
    "-1",
    "4294967295",
    "18446744073709551616",
    "1.5",
    "1e300",
    ".nan",
    ".inf",
    "-.inf",
    "\"8\"",
    "[1, 2]",
    "{a: {b: [1]}}",
    "null",
];

fn scalar() -> impl Strategy<Value = &'static str> {
    prop::sample::select(SCALARS)
}

fn list() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![4 => 1u64..=8, 1 => Just(0u64), 1 => Just(1u64 << 33)],
        0..12,
    )
    .prop_map(|v| {
        format!(
            "[{}]",
            v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        )
    })
}

/// One experiment's fields, as YAML text.
#[derive(Debug, Clone)]
struct Exp {
    moe: bool,
    disagg: bool,
    /// total_gpus, isl, osl, ttft, tpot, batch cap, nextn.
    scalars: [&'static str; 7],
    tp: String,
    dp: String,
}

impl Exp {
    fn text(&self) -> String {
        let [gpus, isl, osl, ttft, tpot, batch, nextn] = self.scalars;
        let (tp, dp) = (&self.tp, &self.dp);
        let model = if self.moe {
            "QWEN3_30B_A3B"
        } else {
            "QWEN3_32B"
        };
        let (mode, workers, batch_key) = if self.disagg {
            (
                "disagg",
                format!("    prefill_worker_config:\n      tp_list: {tp}\n    decode_worker_config:\n      tp_list: {tp}\n      dp_list: {dp}\n"),
                "prefill_max_batch_size",
            )
        } else {
            (
                "agg",
                format!("    worker_config:\n      tp_list: {tp}\n      dp_list: {dp}\n"),
                "decode_max_batch_size",
            )
        };
        format!(
            "exps: [e]\ne:\n  mode: patch\n  serving_mode: {mode}\n  model_name: {model}\n  total_gpus: {gpus}\n  system_name: h200_sxm\n  isl: {isl}\n  osl: {osl}\n  ttft: {ttft}\n  tpot: {tpot}\n  config:\n    nextn: {nextn}\n{workers}    advanced_tuning_config:\n      {batch_key}: {batch}\n"
        )
    }
}

const SANE: [&str; 7] = ["8", "512", "64", "5000", "100", "64", "0"];

prop_compose! {
    fn experiment()(
        moe in any::<bool>(),
        disagg in any::<bool>(),
        hostile in prop::collection::vec(prop_oneof![3 => Just(None), 1 => scalar().prop_map(Some)], 7),
        tp in list(),
        dp in list(),
    ) -> Exp {
        let mut scalars = SANE;
        for (s, h) in scalars.iter_mut().zip(hostile) {
            if let Some(h) = h {
                *s = h;
            }
        }
        Exp { moe, disagg, scalars, tp, dp }
    }
}

/// Runs one experiment file through parsing and the search: Ok(None) when refused with a
/// typed error, Ok(Some(best tokens/s/gpu)) when searched; Err when a result is not finite.
fn drive(text: &str) -> Result<Option<f64>, String> {
    let models = ModelRegistry::builtin();
    let systems = SystemRegistry::builtin();
    // Small work caps: a case either fits them or is refused with the limit error.
    let limits = SearchLimits {
        evaluations: 2_000_000,
        ..SearchLimits::default()
    };
    let Ok(exps) = parse_experiments_with(text, &models, &systems, &limits) else {
        return Ok(None);
    };
    let mut best = None;
    for e in exps {
        let Ok(mut req) = e.search_request(&models, &systems) else {
            continue;
        };
        req.limits.evaluations = req.limits.evaluations.min(limits.evaluations);
        let Ok(r) = search(&req, None) else { continue };
        for c in r
            .best
            .iter()
            .chain(r.modes.iter().flat_map(|m| m.pareto.iter().chain(&m.top)))
        {
            let ok = finite_nonneg(c.ttft_ms)
                && finite_nonneg(c.tpot_ms)
                && finite_nonneg(c.tokens_per_s_per_gpu)
                && (1..=aicfg_core::limits::MAX_TOTAL_GPUS).contains(&c.total_gpus);
            if !ok {
                return Err(format!("{c:?}"));
            }
        }
        best = r.best.map(|b| b.tokens_per_s_per_gpu);
    }
    Ok(best)
}

#[test]
fn the_sane_experiment_is_searched() {
    // The property below would pass vacuously if every case were refused: the all-sane file
    // must reach the search and find deployments, in both modes.
    for disagg in [false, true] {
        let e = Exp {
            moe: false,
            disagg,
            scalars: SANE,
            tp: "[1, 2, 4]".into(),
            dp: "[1]".into(),
        };
        let best = drive(&e.text()).unwrap();
        assert!(best.is_some_and(|b| b > 0.0), "{}", e.text());
    }
}

fn finite_nonneg(x: f64) -> bool {
    x.is_finite() && x >= 0.0
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases() * 4))]

    #[test]
    fn hostile_experiments_through_the_search(e in experiment()) {
        let text = e.text();
        let t0 = Instant::now();
        let r = drive(&text);
        prop_assert!(r.is_ok(), "{}\n{text}", r.unwrap_err());
        prop_assert!(t0.elapsed() < Duration::from_secs(120), "took {:?}:\n{text}", t0.elapsed());
    }
}

/// Hugging Face configs whose numeric fields are mutated.
const CONFIGS: &[&str] = &[
    include_str!("../../../data/models/Qwen--Qwen3-32B_config.json"),
    include_str!("../../../data/models/deepseek-ai--DeepSeek-V3_config.json"),
    include_str!("../../../data/models/Qwen--Qwen3.5-397B-A17B_config.json"),
    include_str!("../../../data/models/openai--gpt-oss-120b_config.json"),
    include_str!("../../../data/models/mistralai--Mixtral-8x7B-v0.1_config.json"),
];

const HOSTILE_JSON: &[&str] = &[
    "0",
    "-1",
    "1",
    "3",
    "4294967296",
    "4294967297",
    "18446744073709551615",
    "1.5",
    "1e300",
    "-1e300",
    "\"64\"",
    "null",
    "[]",
    "{}",
    "true",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases() * 16))]

    #[test]
    fn mutated_configs_give_a_typed_error_or_a_finite_model(
        which in 0..CONFIGS.len(),
        picks in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(HOSTILE_JSON)), 1..4),
    ) {
        let mut v: serde_json::Value = serde_json::from_str(CONFIGS[which]).unwrap();
        // The object holding the sizes (multimodal wrappers keep it under text_config).
        let obj = if v.get("text_config").is_some() { &mut v["text_config"] } else { &mut v };
        let keys: Vec<String> = obj
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, x)| x.is_number() || x.is_array())
            .map(|(k, _)| k.clone())
            .collect();
        for (i, val) in &picks {
            let k = &keys[i.index(keys.len())];
            obj[k.as_str()] = serde_json::from_str(val).unwrap();
        }
        let text = v.to_string();
        match ModelSpec::from_hf_json(&text, "x", "config.json") {
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.contains("config.json"), "{msg}");
            }
            Ok(m) => {
                prop_assert!(m.full_attention_layers() <= m.num_layers);
                let kv = m.kv_elems_per_token(1, 1000.0);
                prop_assert!(finite_nonneg(kv), "kv {kv} for {text}");
                prop_assert!(finite_nonneg(m.linear_state_bytes(1)));
                if let Ok(g) = WorkerGraph::build(&m, &Parallel::single(), &Default::default()) {
                    let w = g.weight_elems_total();
                    prop_assert!(w.is_finite() && w > 0.0, "weights {w} for {text}");
                }
            }
        }
    }
}
