//! `cmksim bench …`: benchmarks that report ratios against references measured in the same run
//! (SoftHSM2 and `openssl speed` for the HSM). Speed is measured here, never in timed tests.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    target: Target,
}

#[derive(Subcommand)]
enum Target {
    /// The emulated HSM beside SoftHSM2 (Debian package softhsm2) and `openssl speed`.
    Hsm {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Seconds spent measuring each row on each implementation.
        #[arg(long, default_value_t = 1.0)]
        row_seconds: f64,
    },
    /// Storage append and query throughput beside raw sled, and peak memory while a large outage
    /// buffer is held.
    Storage {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Directory for the benchmark's data (default: the system's temporary directory).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.target {
        Target::Hsm { json, row_seconds } => {
            anyhow::ensure!(
                row_seconds.is_finite() && (0.05..=60.0).contains(&row_seconds),
                "--row-seconds must be between 0.05 and 60"
            );
            let options = cmksim_hsm::bench::BenchOptions {
                row_duration: Duration::from_secs_f64(row_seconds),
                ..Default::default()
            };
            let report = cmksim_hsm::bench::run(&options);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.to_table());
            }
        }
        Target::Storage { json, dir } => {
            let dir = dir.unwrap_or_else(std::env::temp_dir);
            let config = cmksim_storage::data::bench::BenchConfig::cli_default(&dir);
            let report = cmksim_storage::data::bench::run(&config)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
