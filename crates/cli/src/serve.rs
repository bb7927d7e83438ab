//! `cmksim serve …`: the services as real gRPC servers on real TCP (live mode).
//!
//! Time in live mode is the wall clock, scaled: `--time-scale 60` plays a simulated minute per
//! real second. Processes given the same `--epoch` (the wall-clock instant, in Unix milliseconds,
//! that counts as the simulated epoch) agree on the simulated time. Everything acknowledged is
//! durable under `--data-dir`, so a restart on the same directory continues where it stopped.
//! SIGINT and SIGTERM stop the server gracefully: in-flight calls finish, then it exits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use cmksim_sim::{Clock, EventLog, SeedTree, SimTime};

#[derive(Args)]
pub struct ServeArgs {
    #[command(subcommand)]
    service: Service,
}

#[derive(Subcommand)]
enum Service {
    /// Key Vault, with the identity authority and the emulated HSM in the same process.
    Keyvault(LiveArgs),
}

/// Options every live service takes.
#[derive(Args, Clone)]
pub struct LiveArgs {
    /// Address to listen on.
    #[arg(long, env = "CMKSIM_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Directory for durable state (created if missing).
    #[arg(long, env = "CMKSIM_DATA_DIR")]
    data_dir: PathBuf,
    /// Simulated seconds per real second.
    #[arg(long, env = "CMKSIM_TIME_SCALE", default_value_t = 1.0)]
    time_scale: f64,
    /// Wall-clock instant (Unix ms) that counts as the simulated epoch; default: now.
    #[arg(long, env = "CMKSIM_EPOCH")]
    epoch: Option<i64>,
    /// Root seed for ids and other non-key randomness (key material comes from the OS live).
    #[arg(long, env = "CMKSIM_SEED", default_value_t = 0)]
    seed: u64,
}

impl LiveArgs {
    fn clock(&self) -> anyhow::Result<Clock> {
        anyhow::ensure!(
            self.time_scale.is_finite() && self.time_scale > 0.0,
            "--time-scale must be a positive number, got {}",
            self.time_scale
        );
        let origin = self.epoch.unwrap_or_else(Clock::wall_now_unix_ms);
        Ok(Clock::wall(SimTime::DEFAULT_EPOCH, origin, self.time_scale))
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        match args.service {
            Service::Keyvault(live) => serve_keyvault(live).await,
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn serve_keyvault(live: LiveArgs) -> anyhow::Result<()> {
    let clock = live.clock()?;
    std::fs::create_dir_all(&live.data_dir)
        .with_context(|| format!("creating {}", live.data_dir.display()))?;
    let events = EventLog::default();
    events.add_sink(Box::new(|event| {
        tracing::info!(target: "cmksim::event", source = %event.source, kind = %event.kind, "{}", event.message)
    }));
    let config = cmksim_keyvault::KeyVaultConfig {
        os_key_material: true,
        without_hsm: false,
    };
    let server = cmksim_keyvault::KeyVaultServer::open(
        &live.data_dir,
        clock,
        SeedTree::new(live.seed),
        events,
        config,
    )?;
    tracing::info!(listen = %live.listen, data_dir = %live.data_dir.display(), "Key Vault serving");
    server.serve(live.listen, shutdown_signal()).await?;
    tracing::info!("Key Vault stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
