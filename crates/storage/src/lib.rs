//! Cluster storage: the service that depends on the customer's key.
//!
//! - [`control`]: the dedicated-cluster control plane (clusters, workspaces, links, asynchronous
//!   operations, limits and the seeds' error catalogue), as pure domain logic.
//! - [`data`]: the encrypted data plane (KEK → AEK → DEK hierarchy, sealed blocks, hot and cold
//!   tiers, the outage buffer, retention), persisted in sled.
//! - [`keyloop`]: the Key Vault access loop as a pure state machine, and the task that drives it.
//! - [`service`]: the gRPC edge (in progress): error statuses and state views for `storage.v1`.

pub mod control;
pub mod data;
pub mod keyloop;
pub mod service;
