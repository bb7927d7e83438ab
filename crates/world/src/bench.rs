//! `cmksim bench sim`: how fast the simulated world runs.
//!
//! A soak scenario is generated (one cluster with a customer-managed key, three linked
//! workspaces, one agent each sending a batch a minute, the storage polling Key Vault every
//! 6–60 s) and run for the given number of simulated days. The report gives simulated seconds
//! per wall second and the overhead ratio: wall time ÷ (unwraps × the time of one RSA-2048
//! OAEP-256 unwrap measured in the same run) — how much the simulation costs beyond the
//! cryptography it cannot avoid. The 4-hour revocation scenario of the library is timed too.

use std::path::Path;
use std::time::{Duration, Instant};

use cmksim_sim::EventLog;
use serde::Serialize;

use crate::{run_simulated, RunOptions};

/// What to measure.
#[derive(Clone, Debug)]
pub struct SimBenchOptions {
    /// Simulated days of the soak.
    pub days: u32,
    /// Simulation resolution for the soak.
    pub tick: Duration,
    /// The library scenario to time as well (none: skip).
    pub revocation_file: Option<std::path::PathBuf>,
    /// The engine that runs both.
    pub engine: crate::Engine,
}

/// One timed run.
#[derive(Clone, Debug, Serialize)]
pub struct TimedRun {
    pub name: String,
    pub simulated_seconds: f64,
    pub wall_seconds: f64,
    pub simulated_per_wall_second: f64,
    pub events: u64,
    pub unwraps: u64,
    pub steps: u64,
}

/// The benchmark's findings.
#[derive(Clone, Debug, Serialize)]
pub struct SimBenchReport {
    pub soak: TimedRun,
    /// One RSA-2048 OAEP-256 private-key unwrap, measured in this run (microseconds).
    pub unwrap_micros: f64,
    /// wall ÷ (unwraps × unwrap time): the goal is ≤ 1.5.
    pub overhead_ratio: f64,
    pub revocation: Option<TimedRun>,
}

impl SimBenchReport {
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let row = |r: &TimedRun| {
            format!(
                "{:<28} {:>10.0} s simulated in {:>8.2} s wall = {:>9.0}x  ({} events, {} unwraps, {} steps)\n",
                r.name, r.simulated_seconds, r.wall_seconds, r.simulated_per_wall_second, r.events, r.unwraps, r.steps
            )
        };
        out.push_str(&row(&self.soak));
        if let Some(r) = &self.revocation {
            out.push_str(&row(r));
        }
        out.push_str(&format!(
            "unwrap (RSA-2048 OAEP-256, aws-lc, this run): {:.0} us\noverhead ratio = wall / (unwraps x unwrap time) = {:.2} (goal <= 1.5)\n",
            self.unwrap_micros, self.overhead_ratio
        ));
        out
    }
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimBenchError {
    #[error("soak scenario: {0}")]
    Scenario(String),
    #[error("run: {0}")]
    World(#[from] crate::WorldError),
    #[error("crypto: {0}")]
    Crypto(String),
}

/// The soak scenario, as TOML.
pub fn soak_scenario(days: u32) -> String {
    let mut s = format!(
        r#"[scenario]
name = "soak"
title = "Soak: {days} days of steady traffic"
story = "One cluster under a customer-managed key, three workspaces, an agent each."
seed = 1
duration = "{days}d"

[[tenants]]
name = "contoso"

[[vaults]]
name = "soak-kv"
location = "westeurope"
tenant = "contoso"
sku = "standard"
soft_delete = true
retention_days = 90
purge_protection = true

[[keys]]
vault = "soak-kv"
name = "soak-cmk"
kty = "RSA"
size = 2048

[[access_policies]]
vault = "soak-kv"
principal = "cluster:soakcluster"
permissions = ["get", "wrapKey", "unwrapKey"]

[[clusters]]
name = "soakcluster"
location = "westeurope"
tenant = "contoso"
capacity = 1000
key = {{ vault = "soak-kv", name = "soak-cmk", version = "latest" }}
"#
    );
    for i in 1..=3 {
        s.push_str(&format!(
            "\n[[workspaces]]\nname = \"ws-soak-{i}\"\nlocation = \"westeurope\"\nlink = \"soakcluster\"\n\n[[agents]]\nname = \"agent-{i}\"\nworkspace = \"ws-soak-{i}\"\ntables = [{{ table = \"Heartbeat\", every = \"1m\" }}]\n"
        ));
    }
    s
}

fn timed(
    name: &str,
    scenario: &cmksim_scenario::Scenario,
    tick: Duration,
    engine: crate::Engine,
) -> Result<TimedRun, SimBenchError> {
    let events = EventLog::default();
    let options = RunOptions {
        tick,
        engine,
        ..RunOptions::default()
    };
    let started = Instant::now();
    let result = run_simulated(scenario, &options, &events)?;
    let wall = started.elapsed().as_secs_f64();
    let simulated = scenario.meta.duration.as_secs_f64();
    let snapshot = events.snapshot();
    let unwraps = snapshot
        .iter()
        .filter(|e| e.kind.starts_with("storage.poll."))
        .count() as u64;
    Ok(TimedRun {
        name: name.to_string(),
        simulated_seconds: simulated,
        wall_seconds: wall,
        simulated_per_wall_second: simulated / wall.max(1e-9),
        events: events.recorded_events(),
        unwraps,
        steps: result.steps,
    })
}

/// The cost of one RSA-2048 OAEP-256 unwrap of a 32-byte key, measured now (bounded: ~0.5 s).
fn unwrap_micros() -> Result<f64, SimBenchError> {
    use aws_lc_rs::rsa::{
        KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
        OAEP_SHA256_MGF1SHA256,
    };
    let crypto = |e: aws_lc_rs::error::Unspecified| SimBenchError::Crypto(e.to_string());
    let private = PrivateDecryptingKey::generate(KeySize::Rsa2048).map_err(crypto)?;
    let public = OaepPublicEncryptingKey::new(private.public_key()).map_err(crypto)?;
    let private = OaepPrivateDecryptingKey::new(private).map_err(crypto)?;
    let mut ciphertext = vec![0u8; public.ciphertext_size()];
    let ciphertext = public
        .encrypt(&OAEP_SHA256_MGF1SHA256, &[7u8; 32], &mut ciphertext, None)
        .map_err(crypto)?
        .to_vec();
    let mut out = vec![0u8; private.min_output_size()];
    let started = Instant::now();
    let mut ops: u32 = 0;
    while started.elapsed() < Duration::from_millis(500) && ops < 100_000 {
        private
            .decrypt(&OAEP_SHA256_MGF1SHA256, &ciphertext, &mut out, None)
            .map_err(crypto)?;
        ops += 1;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / f64::from(ops.max(1)))
}

/// Runs the benchmark.
pub fn run(options: &SimBenchOptions) -> Result<SimBenchReport, SimBenchError> {
    let soak =
        cmksim_scenario::validate_str(Path::new("soak.toml"), &soak_scenario(options.days.max(1)))
            .map_err(|d| {
                SimBenchError::Scenario(
                    d.iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })?;
    let soak_run = timed("soak", &soak, options.tick, options.engine)?;
    let revocation = match &options.revocation_file {
        Some(path) => {
            let scenario = cmksim_scenario::validate_file(path).map_err(|d| {
                SimBenchError::Scenario(
                    d.iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })?;
            Some(timed(
                "revocation (library)",
                &scenario,
                RunOptions::default().tick,
                options.engine,
            )?)
        }
        None => None,
    };
    let unwrap_micros = unwrap_micros()?;
    let overhead_ratio =
        soak_run.wall_seconds / ((soak_run.unwraps.max(1) as f64) * unwrap_micros / 1e6);
    Ok(SimBenchReport {
        soak: soak_run,
        unwrap_micros,
        overhead_ratio,
        revocation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soak_scenario_is_valid() {
        let scenario =
            cmksim_scenario::validate_str(Path::new("soak.toml"), &soak_scenario(30)).unwrap();
        assert_eq!(scenario.meta.duration, Duration::from_secs(30 * 86_400));
        assert_eq!(scenario.agents.len(), 3);
        assert_eq!(scenario.world.workspaces.len(), 3);
    }
}
