//! End-to-end tests of the `aicfg` binary, one test binary with a module per command or concern
//! (one link step instead of one per file). Shared helpers: `tests/common`.
#[path = "../common/mod.rs"]
mod common;

mod calibrate_own;
mod collector_db;
mod data;
mod default;
mod estimate;
mod estimate_sim;
mod eval;
mod exp;
mod hostile;
mod percentiles;
mod save;
mod save_exp;
mod serve_bench;
mod validate;
mod webapp_browser;
mod webapp_tcp;
