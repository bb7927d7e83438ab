//! `cmksim`: the command line of the simulator.
//!
//! Each subcommand is a thin layer over a library crate, so everything the binary does is also
//! testable without it: `run` plays a scenario in simulated time, `validate` checks scenario
//! files, `demo` walks the library, `serve` starts the real gRPC services, `health` probes one,
//! `bench` runs the benchmarks that compare with references measured in the same run,
//! `profile` shows the behaviour profiles, and `chaos` sweeps random fault schedules.

#![forbid(unsafe_code)]

// First, so that its `outln!` and `out!` are in scope in every module below.
#[macro_use]
mod stdout;
mod bench;
mod bench_ingest;
mod bench_query;
mod chaos;
mod cleanup;
mod health;
mod log_writer;
mod profile;
mod query;
mod run;
mod serve;
mod web;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cmksim",
    version,
    about = "A local simulator of customer-managed keys for Azure Monitor Logs dedicated clusters",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario in simulated time (or live, with --live): narrate it, judge it, report it.
    Run(run::RunArgs),
    /// Check scenario files without running them (errors as FILE:LINE:COLUMN).
    Validate(run::ValidateArgs),
    /// List the scenario library, or play one at a live pace.
    Demo(run::DemoArgs),
    /// Start services for real (live mode): real TCP, real or scaled time.
    Serve(serve::ServeArgs),
    /// Check a live service's gRPC health (exit 0 when SERVING): for container health checks.
    Health(health::HealthArgs),
    /// Run a benchmark; ratios are against references measured in the same run.
    Bench(bench::BenchArgs),
    /// Show a behaviour profile (every timing and limit, with its value).
    Profile(profile::ProfileArgs),
    /// Run a KQL query against live services (as the Logs Query API does).
    Query(query::QueryArgs),
    /// Sweep seeded random fault schedules over a scenario, judge each by the invariants,
    /// shard, replay one seed, shrink a failing one to a regression scenario.
    Chaos(chaos::ChaosArgs),
}

/// mimalloc instead of glibc's malloc: about 40% of the ingest path's CPU was `malloc`/`free`
/// (perf), and the same binary with a faster allocator ingested 1.6-1.8x more (README,
/// "Crates beyond the brief"). Built with `no_thp` (crates/cli/Cargo.toml): with transparent huge
/// pages every fresh 150 KB gRPC message buffer made the kernel zero a 2 MB page. Allocation order
/// never reaches an output, so determinism holds.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Validate(args) => run::validate(args),
        Command::Demo(args) => run::demo(args),
        Command::Serve(args) => serve::run(args),
        Command::Health(args) => health::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Profile(args) => profile::run(args),
        Command::Query(args) => query::run(args),
        Command::Chaos(args) => chaos::run(args),
    };
    let output_failed = stdout::report_failure();
    match result {
        // The command's output is incomplete: an error, whatever else it did.
        Ok(_) if output_failed => ExitCode::from(2),
        Ok(code) => code,
        Err(error) => {
            eprintln!("cmksim: {error:#}");
            ExitCode::from(2)
        }
    }
}
