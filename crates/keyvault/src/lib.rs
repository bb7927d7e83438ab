//! cmksim-keyvault: the simulated Azure Key Vault (SPEC §2).
//!
//! Vaults with soft delete, purge protection and access policies; RSA/EC keys, software or in
//! the emulated HSM, with versions, rotation, soft delete, recovery and scheduled purge; wrapKey,
//! unwrapKey, encrypt, decrypt, sign and verify with Azure's check order and Azure's exact
//! errors; an audit log; chaos control. The crate is layered so each part fits in one head:
//!
//! - domain (no I/O): [`model`] (data), [`validate`] (input rules), [`state`] + [`vaults`] +
//!   [`keys`] (the rules, as functions of `now`, caller and input), [`errors`] (the catalogue of
//!   Azure errors and the sources of their strings), [`events`], [`audit`], [`chaos`] (decisions);
//! - cryptography: [`crypto`] (software keys, public-key operations, sealing at rest),
//!   [`hsm`] (HSM keys through `cmksim_hsm::Module`), [`backend`] (the trait the domain uses),
//!   [`keycache`] (key versions ready for private operations, bounded, invalidated on change);
//! - persistence: [`store`] (sled, write-through, flushed before every answer; audit records
//!   flushed by [`audit_commit`], calls arriving together sharing one flush);
//! - edge: [`auth`] (tokens), [`status`] (errors ↔ gRPC status with `AzureError` details),
//!   [`convert`] (domain ↔ proto), [`service`] (the gRPC handlers), [`server`] (open + serve),
//!   [`client`] (typed client for other services).

#![forbid(unsafe_code)]

pub mod audit;
pub mod audit_commit;
pub mod auth;
pub mod backend;
pub mod bench;
pub mod chaos;
pub mod client;
pub mod convert;
pub mod crypto;
pub mod errors;
pub mod events;
pub mod hsm;
pub mod keycache;
pub mod keys;
pub mod model;
pub mod server;
pub mod service;
pub mod state;
pub mod status;
pub mod store;
pub mod validate;
pub mod vaults;

pub use client::{ClientError, KeyVaultClient};
pub use errors::{AzureErrorBody, KvError, Plane};
pub use events::KeyVaultEvent;
pub use server::{prepare_first_rsa_key, KeyVaultConfig, KeyVaultServer, ServerError};
pub use status::azure_error;

#[cfg(test)]
mod tests;
