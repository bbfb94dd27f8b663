//! Helpers shared by the end-to-end tests of the `aicfg` binary.
#![allow(dead_code)] // each test crate uses a different subset

use serde_json::Value;
use std::process::{Command, Output};

/// The binary as a command. Hermetic: never picks up a measured op database installed on this
/// machine.
pub fn command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aicfg"));
    c.env(
        "AICFG_DATA_DIR",
        std::env::temp_dir().join("aicfg-tests-no-database"),
    );
    c
}

/// Run the binary (hermetic, see [`command`]).
pub fn aicfg(args: &[&str]) -> Output {
    command()
        .args(args)
        .output()
        .expect("the aicfg binary runs")
}

/// Run and require success; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let o = aicfg(args);
    assert!(
        o.status.success(),
        "aicfg {args:?} failed ({:?}):\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("stdout is UTF-8")
}

/// Run as given (the args carry `--json`) and parse stdout.
pub fn ok_json(args: &[&str]) -> Value {
    let out = ok(args);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("--json output does not parse: {e}\n{out}"))
}

/// Run with `--json` appended and parse stdout.
pub fn json(args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    ok_json(&a)
}
