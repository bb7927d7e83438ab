//! Cluster storage: the service that depends on the customer's key.
//!
//! - [`control`]: the dedicated-cluster control plane (clusters, workspaces, links, asynchronous
//!   operations, limits and the seeds' error catalogue), as pure domain logic.
//! - [`data`]: the encrypted data plane (KEK → AEK → DEK hierarchy, sealed blocks, hot and cold
//!   tiers, the outage buffer, retention), persisted in sled.
//! - [`keyloop`]: the Key Vault access loop as a pure state machine, and the task that drives it.
//! - [`service`]: the gRPC edge's pieces: error statuses and state views for `storage.v1`.
//! - [`server`]: [`server::StorageServer`], the storage process that joins them: it serves
//!   `storage.v1.Clusters`, `storage.v1.Workspaces` and `storage.v1.DataPlane` (plus health and
//!   reflection), persists the control state in sled, runs one key loop per cluster against the
//!   real Key Vault over gRPC as the cluster's managed identity, and ticks the control plane on
//!   the simulation clock.

#![forbid(unsafe_code)]

pub mod control;
pub mod data;
pub mod keyloop;
pub mod server;
pub mod service;

pub use server::{ServerError, StorageConfig, StorageServer};
