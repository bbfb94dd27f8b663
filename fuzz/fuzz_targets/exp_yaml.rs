//! Fuzz the `cli exp` entry point: parse + resolve any bytes; errors are fine, panics are not.
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
            let _ = e.search_request(models, systems);
        }
    }
});
