//! Generated protobuf messages and gRPC stubs for every cmksim service.
//!
//! The `.proto` files in the workspace's `proto/` directory are the contract between the services;
//! this crate only includes what `build.rs` generates from them, one module per protobuf package,
//! plus the encoded descriptor set that the servers publish through gRPC reflection, and the
//! few rules that belong to the contract itself so that every service reads it one way:
//! - [`codec`]: the gRPC codec of every generated client and server (prost, decoded from one
//!   slice);
//! - [`azure`]: Azure errors on gRPC statuses (the richer error model: `google.rpc.Status` with
//!   an `ErrorInfo` and the `common.v1.AzureError`), built and read in one place;
//! - [`dynamic`]: `dynamic` values as nested `common.v1.Dynamic` and their depth bound;
//! - [`names`]: the text labels of drop reasons and storage states;
//! - [`kid`]: Key Vault key identifiers;
//! - [`runs`]: a batch's outcomes, answered as runs, read record by record and by drop reason.

#![forbid(unsafe_code)]
#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod azure;
pub mod codec;
pub mod dynamic;
pub mod kid;
pub mod names;
pub mod runs;

/// Types shared by every service (the Azure error body carried in gRPC status details).
pub mod common {
    pub mod v1 {
        tonic::include_proto!("common.v1");
    }
}

/// The identity authority: principals, managed identities and ES256 access tokens.
pub mod identity {
    pub mod v1 {
        tonic::include_proto!("identity.v1");
    }
}

/// Key Vault and its chaos control.
pub mod keyvault {
    pub mod v1 {
        tonic::include_proto!("keyvault.v1");
    }
}

/// The ingestion front end: ingest, custom tables, metrics and query.
pub mod ingest {
    pub mod v1 {
        tonic::include_proto!("ingest.v1");
    }
}

/// Cluster storage: clusters, workspaces and the encrypted data plane.
pub mod storage {
    pub mod v1 {
        tonic::include_proto!("storage.v1");
    }
}

/// Microsoft Sentinel on a CMK workspace (seed 002): onboarding, incidents, rules, watchlists.
pub mod sentinel {
    pub mod v1 {
        tonic::include_proto!("sentinel.v1");
    }
}

/// A running service's event log and clock, read by live-mode scenario runs.
pub mod events {
    pub mod v1 {
        tonic::include_proto!("events.v1");
    }
}

/// The encoded `FileDescriptorSet` of every service, for tonic-reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/cmksim_descriptor.bin"));
