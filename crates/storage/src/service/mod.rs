//! The storage service's gRPC edge: what turns domain answers into wire answers.
//!
//! The `storage.v1` server itself (`Clusters`, `Workspaces`, `DataPlane`, plus health and
//! reflection) is [`crate::server`]; these are the pieces every RPC needs:
//! - [`status`]: domain errors (the control plane's [`crate::control::ControlError`], the key
//!   loop's [`crate::keyloop::Refusal`]) as gRPC statuses carrying a `common.v1.AzureError`.
//! - [`state_view`]: a cluster's key-loop state as the `storage.v1.StorageState` message.

pub mod state_view;
pub mod status;
