//! `aicfg`: plan LLM serving deployments.
/// `println!` that survives a closed pipe.
#[macro_export]
macro_rules! emitln {
    ($($t:tt)*) => { $crate::emit(&format!("{}\n", format!($($t)*))) };
}
/// `print!` that survives a closed pipe.
#[macro_export]
macro_rules! emitf {
    ($($t:tt)*) => { $crate::emit(&format!($($t)*)) };
}

mod bench;
mod data_cmd;
mod estimate_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "aicfg",
    version,
    about = "Plan LLM serving deployments: predict TTFT, TPOT, throughput and memory from an op-level performance model",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand)]
enum Top {
    /// Planning commands (estimate one deployment, ...).
    Cli {
        #[command(subcommand)]
        command: CliCmd,
    },
    /// Accuracy and calibration harnesses against measured serving runs.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCmd,
    },
    /// The optional measured op database (install, list).
    Data {
        #[command(subcommand)]
        command: data_cmd::DataCmd,
    },
}

#[derive(Subcommand)]
enum CliCmd {
    /// Predict one deployment (agg, disagg or static) with memory and a per-op time breakdown.
    Estimate(Box<estimate_cmd::EstimateArgs>),
}

/// Write to stdout; a closed pipe (`| head`) ends output quietly instead of panicking.
pub fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.command {
        Top::Cli {
            command: CliCmd::Estimate(a),
        } => estimate_cmd::run(&a),
        Top::Bench { command } => bench::run(command),
        Top::Data { command } => data_cmd::run(command),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
