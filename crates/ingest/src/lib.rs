//! The ingestion front end of the simulated Azure Monitor Logs: ingest, query and agents.
//!
//! SPEC §6: batches are routed at ingest time from the workspace's link state, and each record's
//! fate (stored under which key, buffered, dropped and why) is told in the response, the metrics
//! and the event log, where the real service answers success and drops silently. Queries fan out
//! over every storage that holds the workspace's data and merge by time. Simulated agents (seed
//! 003) are the traffic of scenarios.
//!
//! Pure domain logic (no I/O, time passed in):
//! - [`record`], [`schema`], [`validate`]: records, table schemas and all-or-nothing validation.
//! - [`routing`]: the names of the storages storage routes a batch to (storage decides).
//! - [`outcome`]: per-record outcomes. [`query`]: query checks, filters and the merge.
//! - [`metrics`]: counters and their Prometheus rendering. [`agent`]: sources and the retry/queue
//!   state machine (plus its async driver).
//!
//! Around it:
//! - [`backend`]: the narrow interface the front end needs from storage, with the gRPC client
//!   implementation and an in-memory implementation for tests.
//! - [`frontend`]: the application layer (validate → route → append → account), async.
//! - [`grpc`]: the tonic adapter (conversions, status mapping, the two services).
//! - [`server`]: [`IngestServer`] hosting Ingestion, Query, health and reflection;
//!   [`http_metrics`]: the live `/metrics` endpoint.

#![forbid(unsafe_code)]

use std::future::Future;
use std::pin::Pin;

pub mod agent;
pub mod backend;
pub mod error;
pub mod events;
pub mod frontend;
pub mod grpc;
pub mod http_metrics;
pub mod metrics;
pub mod outcome;
pub mod query;
pub mod record;
pub mod routing;
pub mod schema;
pub mod server;
pub mod validate;

pub use error::{IngestError, QueryError};
pub use frontend::Frontend;
pub use server::IngestServer;

/// A boxed, sendable future: the return type of the object-safe async traits of this crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
