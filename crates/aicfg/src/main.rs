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
mod bench_ops;
mod bench_search;
mod bench_serving;
mod bench_sim;
mod chart;
mod data_cmd;
mod default_cmd;
mod estimate_cmd;
mod estimate_sim;
mod eval;
mod exp_cmd;
mod limits_args;
mod progress;
mod save;
mod seed_forms;
mod serve_bench;
mod support_cmd;
mod validate_cmd;
mod view;
mod webapp;

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
    /// Planning commands: default (the search), estimate (one deployment), exp (a YAML study).
    /// `aicfg cli --model ...` is short for `aicfg cli default --model ...`, and
    /// `aicfg cli --yaml_path F` for `aicfg cli exp --yaml_path F`.
    Cli {
        #[command(subcommand)]
        command: CliCmd,
    },
    /// Serve the search as a local web page (http://127.0.0.1:7860 by default).
    Webapp(webapp::WebappArgs),
    /// Accuracy and calibration harnesses against measured serving runs.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCmd,
    },
    /// Re-check a --save_dir tree against the frameworks' schema snapshots.
    Validate(validate_cmd::ValidateArgs),
    /// Benchmark a deployment from a --save_dir result and compare with its prediction
    /// (or, with --config, search, deploy, benchmark and tear down).
    Eval(Box<eval::EvalArgs>),
    /// The optional measured op database (install, list).
    Data {
        #[command(subcommand)]
        command: data_cmd::DataCmd,
    },
}

#[derive(Subcommand)]
enum CliCmd {
    /// Search agg and disagg deployments for a model on a GPU budget; report the best, the
    /// Pareto frontier and the top configurations (or, with a target load and no GPU count,
    /// the fewest GPUs that carry it).
    Default(Box<default_cmd::DefaultArgs>),
    /// Predict one deployment (agg, disagg or static) with memory and a per-op time breakdown.
    Estimate(Box<estimate_cmd::EstimateArgs>),
    /// Run the experiments of a YAML study (agg/disagg, quantization, parallel lists, systems)
    /// and compare them: each one's best and top configurations, then one Pareto chart.
    Exp(Box<exp_cmd::ExpArgs>),
    /// Which model × system × backend combinations run, with which formats and database.
    Support(Box<support_cmd::SupportArgs>),
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
    // Answered before parsing, so it needs none of the command's required options.
    if save::wants_generator_help(std::env::args()) {
        emit(&aicfg_gen::generator_help());
        return ExitCode::SUCCESS;
    }
    let args = match seed_forms::rewrite(std::env::args_os().collect()) {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("error: {msg}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    let res = match cli.command {
        Top::Cli {
            command: CliCmd::Estimate(a),
        } => estimate_cmd::run(&a),
        Top::Cli {
            command: CliCmd::Default(a),
        } => default_cmd::run(&a),
        Top::Cli {
            command: CliCmd::Exp(a),
        } => exp_cmd::run(&a),
        Top::Cli {
            command: CliCmd::Support(a),
        } => support_cmd::run(&a),
        Top::Bench { command } => bench::run(command),
        Top::Webapp(a) => webapp::run(&a),
        Top::Validate(a) => validate_cmd::run(&a),
        Top::Data { command } => data_cmd::run(command),
        Top::Eval(a) => eval::run(&a),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every flag of every command carries a one-line description.
    #[test]
    fn every_flag_has_help() {
        fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in c.get_arguments() {
                let id = a.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if a.get_help()
                    .map(|h| h.to_string())
                    .unwrap_or_default()
                    .trim()
                    .is_empty()
                {
                    missing.push(format!("{path} --{}", a.get_long().unwrap_or(id)));
                }
            }
            for s in c.get_subcommands() {
                walk(s, &format!("{path} {}", s.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "aicfg", &mut missing);
        assert!(
            missing.is_empty(),
            "flags without help:\n{}",
            missing.join("\n")
        );
    }
}
