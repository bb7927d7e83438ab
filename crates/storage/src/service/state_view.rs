//! A cluster's key-loop state as the `storage.v1.StorageState` message (`GetStorageState`).
//!
//! Kept apart from the server so that the scenario runner and tests can render the same view
//! without a network round trip.

use cmksim_proto::storage::v1::StorageState;

use crate::keyloop::{KeyLoopHandle, State};

/// The state of one cluster's storage now.
pub fn storage_state(cluster_resource_id: &str, handle: &KeyLoopHandle) -> StorageState {
    let state = handle.state();
    let key_kid = handle
        .key()
        .map(|k| {
            cmksim_proto::kid::KeyId {
                vault: k.key.vault_name.clone(),
                name: k.key.key_name.clone(),
                version: k.wrapped_version.clone(),
            }
            .kid()
        })
        .unwrap_or_default();
    let resume_unix_ms = match &state {
        State::Resuming { resume_at, .. } => Some(resume_at.unix_ms()),
        _ => None,
    };
    let reason = handle
        .query_allowed()
        .err()
        .map(|r| r.reason)
        .unwrap_or_default();
    StorageState {
        cluster_resource_id: cluster_resource_id.to_string(),
        state: state.name().to_pb() as i32,
        since_unix_ms: state.since().unix_ms(),
        key_kid,
        resume_unix_ms,
        reason,
    }
}
