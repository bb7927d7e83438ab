//! The Key Vault access loop of one cluster's storage (SPEC §5 "Key access loop", "Rotation").
//!
//! Two halves, so that the rules can be tested in simulated microseconds and the I/O stays thin:
//! - [`machine`]: [`KeyAccessMachine`], a pure state machine (no I/O, no clock) that takes poll
//!   results, ticks and key changes with their `SimTime` and answers with the new [`State`] and
//!   a list of [`Effect`]s; it also answers ingest ([`IngestDecision`]) and query
//!   ([`Refusal`]) questions.
//! - [`outcome`]: what a poll told us ([`PollOutcome`]), and the classifier from a gRPC status
//!   (+ its `AzureError`) to transient or denial.
//! - [`driver`]: [`KeyLoopDriver`], the async task that polls the vault on the simulation
//!   clock and carries out effects through the [`VaultAccess`] and [`KeyLoopHost`] traits, and
//!   the [`KeyLoopHandle`] the rest of the storage uses to ask and tell the machine.
//! - [`grpc`]: [`GrpcVaultAccess`], the [`VaultAccess`] over the generated Key Vault and
//!   identity clients (bearer tokens of the cluster's managed identity, refreshed before expiry).
//! - [`state`] and [`events`]: the vocabulary both halves share, and the typed events written
//!   to the run's log.

pub mod driver;
pub mod events;
pub mod grpc;
pub mod machine;
pub mod outcome;
pub mod state;

#[cfg(test)]
mod driver_tests;
#[cfg(test)]
mod machine_tests;

pub use driver::{
    DriverConfig, HostError, KeyLoopDriver, KeyLoopError, KeyLoopHandle, KeyLoopHost, UnwrappedAek,
    VaultAccess, WrappedAek,
};
pub use events::KeyLoopEvent;
pub use grpc::{GrpcVaultAccess, ManagedIdentityCredentials};
pub use machine::KeyAccessMachine;
pub use outcome::{
    classify_identity_status, classify_key_vault_status, deleted_key_lookup, refine_not_found,
    AccessFailure, DeletedKeyLookup, DenialFailure, DenialKind, PollOutcome, TransientFailure,
    TransientKind,
};
pub use state::{
    DropReason, Effect, IngestDecision, KeyRef, KeyTarget, KeyVersionSpec, Refusal, ResumeFrom,
    State, StateName, StoreKey,
};
