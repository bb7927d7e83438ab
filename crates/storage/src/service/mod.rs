//! The storage service's gRPC edge (in progress): what turns domain answers into wire answers.
//!
//! This module grows into the `storage.v1` server (`Clusters`, `Workspaces`, `DataPlane`, plus
//! health and reflection). What exists now are the pieces every RPC needs and that depend only
//! on finished domain APIs:
//! - [`status`]: domain errors (the control plane's [`crate::control::ControlError`], the key
//!   loop's [`crate::keyloop::Refusal`]) as gRPC statuses carrying a `common.v1.AzureError`.
//! - [`state_view`]: a cluster's key-loop state as the `storage.v1.StorageState` message.

pub mod state_view;
pub mod status;
