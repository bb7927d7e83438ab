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
    /// The simulated world: a multi-day soak and the revocation scenario, in simulated seconds per
    /// wall second, and the overhead beyond the unwraps it must compute.
    Sim {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Simulated days of the soak.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Simulation resolution of the soak, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        tick_ms: u64,
        /// Seeds of the chaos sweep over the revocation scenario (0: skip it).
        #[arg(long, default_value_t = 200)]
        chaos_seeds: u64,
        /// Threads of the chaos sweep (default: the machine's cores).
        #[arg(long)]
        chaos_jobs: Option<usize>,
        /// The simulation engine measured: events (default; time jumps to the next timer) or
        /// turmoil.
        #[arg(long, value_parser = cmksim_world::Engine::parse)]
        engine: Option<cmksim_world::Engine>,
    },
    /// Key Vault unwrapKey over gRPC on loopback beside the same operation in process.
    Keyvault {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Concurrent clients (one request in flight each).
        #[arg(long, default_value_t = 4)]
        clients: usize,
    },
    /// Key Vault unwrapKey through the HTTPS front door (TLS, keep-alive) beside the same call
    /// over gRPC and the door's router in process.
    Rest {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Concurrent clients (one request in flight each).
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Seconds measured per side, split over the rounds.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
    /// Storage append throughput beside raw sled, the query scan beside the AES-256-GCM +
    /// ChaCha20-Poly1305 decryption of the same blocks, and peak memory while a large outage
    /// buffer is held.
    Storage {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Directory for the benchmark's data (default: the system's temporary directory).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
    /// End-to-end gRPC ingest → storage → durable acknowledgement (the three services in
    /// process, CMK configured), beside the storage data plane's append rate in the same run.
    Ingest {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Concurrent clients (one batch in flight each); as many append threads on the
        /// reference side.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Heartbeat records per batch.
        #[arg(long, default_value_t = 500)]
        batch_records: usize,
        /// Seconds measured per side and round.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Rounds, alternating end to end and direct append.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// A KQL query (filter + summarize) scanning a double-encrypted workspace, beside the
    /// AES-256-GCM + ChaCha20-Poly1305 decryption of the same bytes in the same run.
    Query {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Stored size of the workspace, in MiB (1 to 4096).
        #[arg(long, default_value_t = 256)]
        mib: u64,
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
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                out!("{}", report.to_table());
            }
        }
        Target::Sim {
            json,
            days,
            tick_ms,
            chaos_seeds,
            chaos_jobs,
            engine,
        } => {
            let engine = engine.unwrap_or(cmksim_world::Engine::Events);
            anyhow::ensure!(
                chaos_seeds <= 100_000,
                "--chaos-seeds must be at most 100000"
            );
            anyhow::ensure!(
                (1..=365).contains(&days),
                "--days must be between 1 and 365"
            );
            anyhow::ensure!(
                (1..=60_000).contains(&tick_ms),
                "--tick-ms must be between 1 and 60000"
            );
            let library = std::path::PathBuf::from("scenarios/revocation.toml");
            let options = cmksim_world::bench::SimBenchOptions {
                days,
                tick: Duration::from_millis(tick_ms),
                revocation_file: library.exists().then_some(library),
                engine,
            };
            let report = cmksim_world::bench::run(&options)?;
            let sweep = match (&options.revocation_file, chaos_seeds) {
                (Some(file), 1..) => {
                    Some(chaos_sweep_bench(file, chaos_seeds, chaos_jobs, engine)?)
                }
                _ => None,
            };
            if json {
                let mut value = serde_json::to_value(&report)?;
                value["chaos_sweep"] = sweep.unwrap_or_default();
                outln!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                out!("{}", report.to_table());
                if report.revocation.is_none() {
                    outln!(
                        "revocation: scenarios/revocation.toml not found (run from the repository)"
                    );
                }
                match &sweep {
                    Some(s) => outln!(
                        "chaos sweep of the revocation scenario: {} seeds in {:.1} s wall on {} jobs = {:.3} seeds/s per core ({} failing)",
                        s["seeds"],
                        s["wall_seconds"].as_f64().unwrap_or_default(),
                        s["jobs"],
                        s["seeds_per_second_per_core"].as_f64().unwrap_or_default(),
                        s["failing"]
                    ),
                    None => outln!("chaos sweep: skipped"),
                }
            }
        }
        Target::Keyvault { json, clients } => {
            anyhow::ensure!(
                (1..=64).contains(&clients),
                "--clients must be between 1 and 64"
            );
            let options = cmksim_keyvault::bench::KeyVaultBenchOptions {
                clients,
                ..Default::default()
            };
            let report = cmksim_keyvault::bench::run(&options);
            if json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                out!("{}", report.to_table());
            }
        }
        Target::Rest {
            json,
            clients,
            seconds,
        } => {
            anyhow::ensure!(
                (1..=cmksim_rest::bench::CLIENTS_MAX).contains(&clients),
                "--clients must be between 1 and {}",
                cmksim_rest::bench::CLIENTS_MAX
            );
            anyhow::ensure!(
                seconds.is_finite() && (0.1..=600.0).contains(&seconds),
                "--seconds must be between 0.1 and 600"
            );
            let options = cmksim_rest::bench::RestBenchOptions {
                clients,
                duration: Duration::from_secs_f64(seconds),
                ..Default::default()
            };
            let report = cmksim_rest::bench::run(&options);
            if json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                out!("{}", report.to_table());
            }
        }
        Target::Storage { json, dir } => {
            let dir = dir.unwrap_or_else(std::env::temp_dir);
            let config = cmksim_storage::data::bench::BenchConfig::cli_default(&dir);
            let report = cmksim_storage::data::bench::run(&config)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                out!("{}", report.table());
            }
        }
        Target::Ingest {
            json,
            clients,
            batch_records,
            seconds,
            rounds,
        } => {
            anyhow::ensure!(
                (1..=32).contains(&clients),
                "--clients must be between 1 and 32"
            );
            anyhow::ensure!(
                (1..=5000).contains(&batch_records),
                "--batch-records must be between 1 and 5000"
            );
            anyhow::ensure!(
                seconds.is_finite() && (0.2..=300.0).contains(&seconds),
                "--seconds must be between 0.2 and 300"
            );
            anyhow::ensure!(
                (1..=20).contains(&rounds),
                "--rounds must be between 1 and 20"
            );
            let options = crate::bench_ingest::IngestBenchOptions {
                clients,
                batch_records,
                round_duration: Duration::from_secs_f64(seconds),
                rounds,
            };
            let report = crate::bench_ingest::run(&options)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                out!("{}", report.to_table());
            }
        }
        Target::Query { json, mib } => {
            anyhow::ensure!(
                (crate::bench_query::WORKSPACE_MIB_MIN..=crate::bench_query::WORKSPACE_MIB_MAX)
                    .contains(&mib),
                "--mib must be between {} and {}",
                crate::bench_query::WORKSPACE_MIB_MIN,
                crate::bench_query::WORKSPACE_MIB_MAX
            );
            let options = crate::bench_query::QueryBenchOptions {
                workspace_mib: mib,
                rounds: 3,
            };
            let report = crate::bench_query::run(&options)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                out!("{}", report.to_table());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A chaos sweep of `seeds` seeds over `file` (its `[chaos]` table or the defaults) on `jobs`
/// threads, timed on the wall clock: seeds per second per core (a core per job).
fn chaos_sweep_bench(
    file: &std::path::Path,
    seeds: u64,
    jobs: Option<usize>,
    engine: cmksim_world::Engine,
) -> anyhow::Result<serde_json::Value> {
    let scenario = cmksim_scenario::validate_file(file).map_err(|d| {
        anyhow::anyhow!(
            "{}",
            d.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    let space = cmksim_scenario::chaos::FaultSpace::of(&scenario);
    let jobs = jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, crate::chaos::JOBS_MAX);
    let list: Vec<u64> = (0..seeds).collect();
    let started = std::time::Instant::now();
    let runs = crate::chaos::sweep(
        &scenario,
        &space,
        &list,
        jobs,
        crate::chaos::Sim {
            tick: Duration::from_millis(100),
            engine,
        },
        &|_, _| Ok(()),
    )?;
    let wall = started.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "scenario": file.display().to_string(),
        "seeds": runs.len(),
        "jobs": jobs,
        "wall_seconds": wall,
        "seeds_per_second_per_core": runs.len() as f64 / wall.max(1e-9) / jobs as f64,
        "failing": runs.iter().filter(|r| r.failed()).count(),
    }))
}
