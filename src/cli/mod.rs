//! The native command-line tool (`--features cli`). Each subcommand lives in its own module.
use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod bench;
mod bench_cpu;
mod bench_kernels;
mod bundle;
pub mod chart;
mod data;
mod embed;
mod eval;
mod train;
mod train_meta;

#[derive(Parser)]
#[command(
    name = "metarec",
    version,
    about = "On-device meta-RL recommender: data, training, evaluation, benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Summarise a ratings dataset (users, items, ratings, like-rate, warnings).
    Data(data::Args),
    /// Train: the supervised rating network (finetune) and the meta-RL policy (meta).
    Train(Box<train::Args>),
    /// Benchmarks that print figures (never timed tests).
    Bench(bench::Args),
    /// Evaluate methods under the cold-start interactive protocol (see EVALUATION.md).
    Eval(Box<eval::Args>),
    /// Item text embeddings (all-MiniLM-L6-v2; needs the `encoder` feature) projected by PCA.
    Embed(embed::Args),
    /// A bundle of your own items (CSV or JSON) with a policy meta-trained over them.
    Bundle(bundle::BundleArgs),
    /// What a bundle holds: version, items, item vector width, policy, algorithm, training.
    Inspect(bundle::InspectArgs),
}

/// Entry point of the `metarec` binary: parse arguments, run, map errors to a non-zero exit.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Data(args) => data::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Train(args) => train::run(*args),
        Command::Eval(args) => eval::run(*args),
        Command::Embed(args) => embed::run(args),
        Command::Bundle(args) => bundle::run_bundle(args),
        Command::Inspect(args) => bundle::run_inspect(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints `out` as pretty JSON with `--json`, else `text()` (its text form, ending in a newline).
fn print_output(
    json: bool,
    out: &impl serde::Serialize,
    text: impl FnOnce() -> String,
) -> Result<(), serde_json::Error> {
    if json {
        println!("{}", serde_json::to_string_pretty(out)?);
    } else {
        print!("{}", text());
    }
    Ok(())
}
