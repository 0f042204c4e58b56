//! `qrlogin-bench`: measures the release qrlogin server against a plain axum
//! "hello JSON" server started in the same run, and the release login
//! bundle. Run it through `scripts/bench.sh`, which builds what it needs.

mod baseline;
mod bundle;
mod client;
mod cluster;
mod first_qr;
mod json_splice;
mod redis_stats;
mod report;
mod scenarios;
mod servers;
mod soak;
mod stats;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "qrlogin's benchmark and bundle budget")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs every measurement and writes the report.
    Run(Box<scenarios::RunArgs>),
    /// The plain axum baseline server (started by `run` as a child process).
    Baseline {
        #[arg(long)]
        addr: std::net::SocketAddr,
    },
    /// Two instances behind nginx on PostgreSQL + Redis under mixed traffic
    /// while instances, Redis and PostgreSQL are killed and restarted; checks
    /// the invariants, writes `soak` into results.json and BENCHMARKS.md,
    /// and fails when any is violated.
    Soak(Box<soak::SoakArgs>),
    /// Fails when the release login bundle's WASM + JS exceed the budget.
    Budget {
        /// The site built by `cargo leptos build --release`.
        #[arg(long, default_value = "target/site")]
        site_root: PathBuf,
        /// Budget for WASM + JS, brotli-compressed, in kB (1 kB = 1000 bytes):
        /// a regression bound a little above today's 137.6 kB.
        #[arg(long, default_value_t = 145.0)]
        max_brotli_kb: f64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => tokio_runtime().and_then(|rt| rt.block_on(scenarios::run(*args))),
        Command::Soak(args) => tokio_runtime().and_then(|rt| rt.block_on(soak::run(*args))),
        Command::Baseline { addr } => {
            tokio_runtime().and_then(|rt| rt.block_on(baseline::serve(addr)))
        }
        Command::Budget {
            site_root,
            max_brotli_kb,
        } => bundle::check_budget(&site_root, max_brotli_kb),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("qrlogin-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
