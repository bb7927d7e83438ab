//! The simulated world: a scenario executed against the real services, in virtual time.
//!
//! One process, one thread: the Key Vault (with the identity authority and the emulated HSM),
//! the cluster storage and the ingestion front end run as hosts of a turmoil simulation and talk
//! real gRPC over turmoil's simulated TCP; a driver client builds the scenario's world and walks
//! its timeline, applying actions through the services' public gRPC APIs and faults through the
//! chaos controls and turmoil (partition, hold, crash, restart). Every random choice comes from
//! the scenario's seed; every service records into one shared event log, which is what the
//! oracle, the narration and the report read afterwards.
//!
//! - [`harness`]: the turmoil simulation, its hosts and the crash/restart control loop.
//! - [`engine`]: the event-driven engine (one paused tokio runtime, in-memory network), chosen
//!   by [`RunOptions::engine`].
//! - [`driver`]: the driver client (world setup, timeline, faults).
//! - [`auth`]: tokens in the simulated world (the services' guards, every client's principal).
//! - [`control`]: the live dashboard's hold on a simulated run (pace, levers as steps).
//! - [`live`]: the same driver against live services (separate processes, scaled wall time).
//! - [`names`]: scenario names ↔ the ids the services gave them (tenants, principals, clusters).
//!
//! This lives outside `cmksim-scenario` so that the scenario format, validation, the oracle and
//! the report build without the services (fast `validate`, reports from a saved event log).

#![forbid(unsafe_code)]

pub mod auth;
pub mod bench;
pub mod control;
pub mod driver;
pub mod engine;
pub mod harness;
pub mod live;
pub mod names;
pub mod pacer;

pub use harness::{run_simulated, Engine, RunOptions, RunResult, WorldError};
