//! cmksim-identity: the identity authority of the simulated Azure world.
//!
//! SPEC §1 says a caller can act as a principal only if it can obtain that principal's token, and
//! Key Vault verifies signature, audience, tenant and expiry. This crate is that authority, in
//! four layers that each fit in one head:
//!
//! - [`directory`]: tenants, principals (users, service principals) and system-assigned managed
//!   identities, with their secrets stored only as salted hashes. Pure domain logic: plain
//!   structs and functions that take the time and the inputs, no I/O.
//! - [`token`]: ES256 JWT access tokens: the [`Authority`] that signs them and the
//!   [`TokenVerifier`] that checks them (buildable from the authority or from its JWKs, so that a
//!   service in another process can verify without the private key).
//! - [`store`]: sled persistence of the directory and the signing key, flushed before every
//!   acknowledgement, so a restart keeps tenants, principals and keys.
//! - [`service`]: the `identity.v1.Identity` gRPC adapter over the other three.
//!
//! - [`roles`]: Azure role assignments reduced to the roles that matter here, and the access
//!   decision (tenant of the subscription first, then a role at or above the scope).
//! - [`grpc_auth`], [`access_rules`], [`guard`], [`client`]: tokens at a gRPC edge — the bearer
//!   token and its refusals, what each guarded rpc needs, the tower layer in front of the
//!   storage and ingest servers, and the client channel that obtains and attaches tokens.
//! - [`lockbox_gate`]: the query path's Customer Lockbox gate (a principal without a read role
//!   queries only under an approved, unexpired request; storage decides).
//!
//! [`IdentityAuthority`] ties directory, signing key and store together for the service and for
//! in-process callers (the Key Vault server hosts the authority for now).

#![forbid(unsafe_code)]

pub mod access_rules;
pub mod authority;
pub mod client;
pub mod directory;
pub mod grpc_auth;
pub mod guard;
pub mod lockbox_gate;
pub mod roles;
pub mod service;
pub mod store;
pub mod token;

pub use authority::{IdentityAuthority, IdentityError};
pub use client::{
    provision_service_principal, AdminCredentials, AuthChannel, CredentialSlot, TokenSource,
};
pub use directory::{Directory, DirectoryError, Principal, PrincipalKind, Tenant};
pub use grpc_auth::{AuthError, Caller};
pub use guard::{Guard, GuardLayer};
pub use lockbox_gate::LockboxGate;
pub use roles::{Access, Action, Role, RoleAssignment};
pub use service::IdentityService;
pub use token::{
    audience, Authority, Claims, Jwk, TokenVerifier, VerifiedToken, VerifyError,
    DEFAULT_TOKEN_LIFETIME_SECONDS, MAX_CLOCK_SKEW_SECONDS, MAX_TOKEN_LIFETIME_SECONDS,
};
