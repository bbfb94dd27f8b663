//! Fuzz the `cli exp` entry point: parse, resolve and search any bytes (within small work caps);
//! errors are fine, panics and non-finite results are not. The stable-Rust CI counterpart is
//! crates/aicfg-core/tests/hostile_properties.rs.
#![no_main]
use aicfg_core::task::parse_experiments;
use aicfg_core::{ModelRegistry, SystemRegistry};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static REGS: OnceLock<(ModelRegistry, SystemRegistry)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (models, systems) =
        REGS.get_or_init(|| (ModelRegistry::builtin(), SystemRegistry::builtin()));
    if let Ok(exps) = parse_experiments(text, models, systems) {
        for e in exps {
            // The resolved file must resolve again.
            let again = parse_experiments(&e.resolved_yaml(), models, systems);
            assert!(again.is_ok(), "resolved yaml does not re-parse: {again:?}");
            if let Ok(mut req) = e.search_request(models, systems) {
                req.limits.evaluations = req.limits.evaluations.min(200_000);
                if let Ok(r) = aicfg_core::search::search(&req, None) {
                    if let Some(b) = r.best {
                        assert!(b.tokens_per_s_per_gpu.is_finite() && b.ttft_ms.is_finite());
                    }
                }
            }
        }
    }
});
