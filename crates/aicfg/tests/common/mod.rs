//! Helpers shared by the end-to-end tests of the `aicfg` binary (`tests/cli`) and the unit tests
//! and examples that include one of its files.
#![allow(dead_code)] // not every includer uses every helper

pub mod sse_server;
pub mod tokenizer;
pub mod webapp;

use serde_json::Value;
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockWriteGuard};

/// The tests share one process. A timing test holds this exclusively ([`alone`]) and every run
/// of the binary through [`aicfg`] holds it shared, so no other test's CLI run competes for the
/// CPUs while a latency is measured.
static CPUS: RwLock<()> = RwLock::new(());

thread_local! {
    /// This thread holds [`CPUS`] exclusively (its own runs must not wait for themselves).
    static ALONE: Cell<bool> = const { Cell::new(false) };
}

/// Held while a timing test runs; see [`alone`].
pub struct Alone(#[allow(dead_code)] RwLockWriteGuard<'static, ()>);

impl Drop for Alone {
    fn drop(&mut self) {
        ALONE.with(|a| a.set(false));
    }
}

/// Waits until no other test runs the binary through [`aicfg`], and keeps them waiting until
/// the guard drops. Timing tests run one at a time.
pub fn alone() -> Alone {
    let g = CPUS.write().unwrap_or_else(|e| e.into_inner());
    ALONE.with(|a| a.set(true));
    Alone(g)
}

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
    let _shared = (!ALONE.with(Cell::get)).then(|| CPUS.read().unwrap_or_else(|e| e.into_inner()));
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

/// A fresh, empty directory under the system temp dir, unique to this process and call (the
/// tests share one process, so a pid alone does not separate them). Left behind for inspection.
pub fn temp_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!("aicfg-test-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

/// Sorted names in `dir`.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A file of the repository's `examples/`.
pub fn example(name: &str) -> String {
    repo_file("examples").join(name).display().to_string()
}

/// A path relative to the repository root.
pub fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// A small search (Qwen3-32B, 8 × H200, 256/16 tokens, TTFT 1 s): quick, and it finds agg and
/// disagg deployments.
pub const SMALL_SEARCH: [&str; 14] = [
    "cli",
    "default",
    "--model",
    "QWEN3_32B",
    "--system",
    "h200_sxm",
    "--total_gpus",
    "8",
    "--isl",
    "256",
    "--osl",
    "16",
    "--ttft",
    "1000",
];
