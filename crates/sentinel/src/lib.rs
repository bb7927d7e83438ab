//! Microsoft Sentinel on a workspace with a customer-managed key (seed 002, SPEC §10): a fourth
//! consumer of the cluster's key, beside the cluster storage, the ingest front end and the
//! queries.
//!
//! Sentinel keeps incidents, analytics rules and watchlists in a second store (Cosmos DB in
//! Azure) whose account key is wrapped by the cluster's key *through the Azure Cosmos DB
//! principal*, with its own access policy and its own timing. That is where CMK drills most
//! often go wrong: revoking only the cluster's access leaves Sentinel working, and disabling an
//! old key version right after a rotation revokes Sentinel while Log Analytics is fine.
//!
//! The components:
//! - [`onboarding`]: the seed's onboarding rules as one pure decision over gathered facts.
//! - [`machine`]: [`SentinelMachine`], the pure state machine of one onboarded workspace
//!   (revocation, restore, following the cluster's key, the unsupported configurations).
//! - [`events`]: the typed `sentinel.*` events.
//! - [`store`]: the sled store ("Cosmos DB"): workspace records with the wrapped account key,
//!   items sealed under the account key.
//! - [`server`]: [`SentinelServer`], the gRPC service and the poll task of the Cosmos DB
//!   principal.

#![forbid(unsafe_code)]

pub mod events;
pub mod machine;
pub mod onboarding;

#[cfg(test)]
mod machine_tests;

pub use events::SentinelEvent;
pub use machine::{
    ClusterObservation, Effect, Encryption, Operation, Refusal, SentinelMachine, State, StateName,
};
pub use onboarding::{
    decide, AccessProbe, ClusterFacts, OnboardingFacts, OnboardingPlan, OnboardingRefusal,
};
pub mod server;
pub mod store;

pub use server::{SentinelConfig, SentinelServer, ServerError};
