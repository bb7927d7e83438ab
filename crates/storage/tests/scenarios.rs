//! Drills over real gRPC: vault outages short and long, rotation (pinned, versionless, old
//! version disabled first), cluster delete/recover, the canary scan of both data directories,
//! and a storage restart.

mod common;

use std::time::Duration;

use cmksim_proto::keyvault::v1 as kvpb;
use cmksim_proto::storage::v1 as pb;
use common::*;

/// A provisioned cluster `clu1` under CMK `kv1/k1`, workspace `wsp1` linked to it.
async fn cmk_world(profile_name: &str, extra: &str) -> (World, String) {
    let mut w = World::start(profile(profile_name, extra)).await;
    w.vault("kv1", true).await;
    let v1 = w.key("kv1", "k1").await;
    w.provisioned_cluster("clu1", "kv1").await;
    w.workspace("wsp1").await;
    w.link("wsp1", "clu1").await;
    (w, v1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_vault_outage_causes_no_interruption() {
    let (mut w, v1) = cmk_world("azure-2020", "").await;
    w.update_key_and_wait("clu1", "kv1", "k1", &v1, &v1).await;
    w.chaos(kvpb::ChaosMode::Down).await;
    w.wait_state("clu1", &["degraded"]).await;
    let r = w.append("wsp1", &bodies("during", 5)).await;
    assert_eq!(stored_count(&r), 5);
    assert_eq!(w.query("wsp1").await.unwrap().records.len(), 5);
    w.sleep_sim(Duration::from_secs(10 * 60)).await;
    let s = w.state("clu1").await;
    assert_eq!(
        s.state().label(),
        "degraded",
        "10 minutes is inside the 30-minute grace"
    );
    w.chaos(kvpb::ChaosMode::Up).await;
    w.wait_state("clu1", &["healthy_cmk"]).await;
    assert!(w.events_of("storage.state.unavailable").is_empty());
    let transient = w.wait_event("storage.poll.transient").await;
    assert!(!transient.is_empty());
    assert!(transient[0].data["reason"].is_string());
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_vault_outage_buffers_and_recovers_exact_counts() {
    let (mut w, v1) = cmk_world("azure-2020", "").await;
    w.update_key_and_wait("clu1", "kv1", "k1", &v1, &v1).await;
    let r = w.append("wsp1", &bodies("before", 2)).await;
    assert_eq!(stored_count(&r), 2);
    w.chaos(kvpb::ChaosMode::Down).await;
    w.wait_state("clu1", &["unavailable"]).await;
    let err = w.query("wsp1").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    let b1 = w.append("wsp1", &bodies("buf-a", 7)).await;
    assert_eq!(buffered_count(&b1), 7);
    w.sleep_sim(Duration::from_secs(15 * 60)).await;
    let b2 = w.append("wsp1", &bodies("buf-b", 4)).await;
    assert_eq!(buffered_count(&b2), 4);
    w.chaos(kvpb::ChaosMode::Up).await;
    w.wait_state("clu1", &["healthy_cmk"]).await;
    // The drain runs right after the transition; wait for its event (bounded).
    let mut flushed = 0;
    for _ in 0..500 {
        flushed = w
            .events_of("storage.buffer.flushed")
            .iter()
            .map(|e| e.data["records"].as_u64().unwrap())
            .sum::<u64>();
        if flushed == 11 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(flushed, 11);
    let ev = w.events_of("storage.buffer.flushed");
    assert_eq!(ev[0].data["cluster"], "clu1");
    assert_eq!(ev[0].data["workspace"], "wsp1");
    assert_eq!(ev[0].data["workspace_id"], World::ws_id("wsp1"));
    assert!(w.events_of("storage.buffer.expired").is_empty());
    let q = w.query("wsp1").await.unwrap();
    assert_eq!(q.records.len(), 13);
    let stats = w
        .data
        .get_stats(pb::StatsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.accepted, 13);
    assert_eq!(stats.stored, 13);
    assert_eq!(stats.drained, 11);
    assert_eq!(stats.buffered, 0);
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_version_ignores_rotation_until_updated() {
    let (mut w, v1) = cmk_world("azure-2020", "").await;
    w.update_key_and_wait("clu1", "kv1", "k1", &v1, &v1).await;
    let v2 = w.rotate("kv1", "k1").await;
    w.sleep_sim(Duration::from_secs(2 * 3600)).await;
    let s = w.state("clu1").await;
    assert_eq!(s.state().label(), "healthy_cmk");
    assert!(
        s.key_kid.ends_with(&v1),
        "pinned: still {v1}, got {}",
        s.key_kid
    );
    // Explicit update to the new version rewraps.
    w.update_key_and_wait("clu1", "kv1", "k1", &v2, &v2).await;
    // The old version can now be disabled without harm.
    w.set_key_enabled("kv1", "k1", &v1, false).await;
    w.sleep_sim(Duration::from_secs(5 * 60)).await;
    assert_eq!(w.state("clu1").await.state().label(), "healthy_cmk");
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versionless_key_follows_the_newest_version() {
    let (mut w, v1) = cmk_world("azure-current", "").await;
    w.update_key_and_wait("clu1", "kv1", "k1", "", &v1).await;
    let c = w.wait_provisioning("clu1", "Succeeded").await;
    assert_eq!(c.key_vault_properties.unwrap().key_version, "");
    let v2 = w.rotate("kv1", "k1").await;
    let mut followed = false;
    for _ in 0..3000 {
        if w.state("clu1").await.key_kid.ends_with(&v2) {
            followed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(followed, "the storage follows the newest version");
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_the_old_version_before_the_update_revokes() {
    let (mut w, v1) = cmk_world("azure-2020", "").await;
    w.update_key_and_wait("clu1", "kv1", "k1", &v1, &v1).await;
    let _v2 = w.rotate("kv1", "k1").await;
    w.set_key_enabled("kv1", "k1", &v1, false).await;
    w.wait_state("clu1", &["revoked"]).await;
    // A key update is refused while revoked: the AEK cannot be unwrapped to rewrap it.
    let err = w.update_key("clu1", "kv1", "k1", &_v2).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("revoked"), "{}", err.message());
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_update_without_permissions_fails_with_the_seed_message() {
    let mut w = World::start(profile("azure-2020", "")).await;
    w.vault("kv1", true).await;
    let v1 = w.key("kv1", "k1").await;
    w.create_cluster("clu1").await.unwrap();
    w.wait_provisioning("clu1", "Succeeded").await;
    // No access policy for the cluster identity.
    let err = w.update_key("clu1", "kv1", "k1", &v1).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(
        err.message().contains("Failed to validate key"),
        "{}",
        err.message()
    );
    // A vault without purge protection is not recoverable.
    w.vault("kv2", false).await;
    let v = w.key("kv2", "k2").await;
    let oid = w
        .clusters
        .get_cluster(World::cluster_ref("clu1"))
        .await
        .unwrap()
        .into_inner()
        .identity
        .unwrap()
        .principal_id;
    w.grant("kv2", &oid, &["get", "wrapKey", "unwrapKey"]).await;
    let err = w.update_key("clu1", "kv2", "k2", &v).await.unwrap_err();
    assert!(err.message().contains("recoverable"), "{}", err.message());
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_reserves_the_name_then_recover() {
    let (mut w, v1) = cmk_world("azure-2020", "").await;
    w.update_key_and_wait("clu1", "kv1", "k1", &v1, &v1).await;
    let r = w.append("wsp1", &bodies("kept", 3)).await;
    assert_eq!(stored_count(&r), 3);
    w.clusters
        .delete_cluster(World::cluster_ref("clu1"))
        .await
        .unwrap();
    // The linked workspace is unlinked first; then the cluster is soft-deleted.
    w.wait_state("clu1", &["deleted"]).await;
    let err = w.create_cluster("clu1").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists);
    assert!(err.message().contains("reserved"), "{}", err.message());
    w.clusters
        .recover_cluster(World::cluster_ref("clu1"))
        .await
        .unwrap();
    w.wait_state("clu1", &["healthy_cmk"]).await;
    // The old data is still queryable (the workspace is unlinked, but its history is kept).
    let q = w.query("wsp1").await.unwrap();
    assert_eq!(q.records.len(), 3);
    w.shutdown().await;
}

fn scan_dir(dir: &std::path::Path, needles: &[Vec<u8>], hits: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            scan_dir(&path, needles, hits);
        } else if let Ok(bytes) = std::fs::read(&path) {
            for n in needles {
                if bytes.windows(n.len()).any(|w| w == n.as_slice()) {
                    hits.push(path.display().to_string());
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_marker_and_aek_never_reach_disk() {
    let (mut w, v1) = cmk_world("azure-2020", "").await;
    let marker = "CANARY-7f3a9c1e-plaintext-marker";
    let body = vec![format!("{{\"Secret\":\"{marker}\"}}")];
    w.append("wsp1", &body).await;
    w.update_key_and_wait("clu1", "kv1", "k1", &v1, &v1).await;
    w.append("wsp1", &body).await;
    // Also through the outage buffer.
    w.chaos(kvpb::ChaosMode::Down).await;
    w.wait_state("clu1", &["unavailable"]).await;
    let b = w.append("wsp1", &body).await;
    assert_eq!(buffered_count(&b), 1);
    w.chaos(kvpb::ChaosMode::Up).await;
    w.wait_state("clu1", &["healthy_cmk"]).await;
    let q = w.query("wsp1").await.unwrap();
    assert!(q.records.len() >= 2);
    assert!(q.records[0]
        .record
        .as_ref()
        .map(computer)
        .unwrap_or("")
        .contains(marker));
    // The AEK: what the vault unwraps from the wrapping storage stored (the admin may unwrap).
    let aek = unwrap_stored_aek(&mut w)
        .await
        .expect("the stored KEK wrapping is found");
    assert_eq!(aek.len(), 32);
    let needles = vec![
        marker.as_bytes().to_vec(),
        aek.clone(),
        hex_lower(&aek).into_bytes(),
    ];
    w.stop_servers().await;
    let mut hits = Vec::new();
    scan_dir(w.dir.path(), &needles, &mut hits);
    assert!(hits.is_empty(), "found secrets on disk: {hits:?}");
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Finds the wrapped AEK in the storage's sled files (hex in the account record) and asks the
/// vault, as the admin (granted unwrapKey), to unwrap it.
async fn unwrap_stored_aek(w: &mut World) -> Option<Vec<u8>> {
    let mut files = Vec::new();
    collect(&w.storage_dir(), &mut files);
    let needle = b"\"wrapped_hex\":\"";
    for f in files {
        let bytes = std::fs::read(&f).ok()?;
        let mut i = 0;
        while let Some(pos) = find(&bytes[i..], needle) {
            let start = i + pos + needle.len();
            let end = start + bytes[start..].iter().position(|b| *b == b'"')?;
            let hex = std::str::from_utf8(&bytes[start..end]).ok()?;
            // A KEK wrapping is 256 bytes (RSA-2048): 512 hex characters.
            if hex.len() == 512 {
                let wrapped: Vec<u8> = (0..hex.len())
                    .step_by(2)
                    .map(|j| u8::from_str_radix(&hex[j..j + 2], 16).unwrap())
                    .collect();
                let t = w.vault_token().await;
                let r =
                    w.kv.unwrap_key(req(
                        &t,
                        kvpb::KeyOperationRequest {
                            key: Some(key_ref("kv1", "k1", "")),
                            algorithm: "RSA-OAEP-256".into(),
                            value: wrapped,
                        },
                    ))
                    .await
                    .ok()?
                    .into_inner();
                return Some(r.value);
            }
            i = end;
        }
    }
    None
}

fn collect(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_data_queryable() {
    let (mut w, v1) = cmk_world("azure-2020", "").await;
    w.append("wsp1", &bodies("mmk", 2)).await;
    w.update_key_and_wait("clu1", "kv1", "k1", &v1, &v1).await;
    w.append("wsp1", &bodies("cmk", 3)).await;
    w.restart_storage().await;
    w.wait_state("clu1", &["healthy_cmk"]).await;
    let q = w.query("wsp1").await.unwrap();
    assert_eq!(q.records.len(), 5);
    let c = w.wait_provisioning("clu1", "Succeeded").await;
    assert_eq!(c.key_vault_properties.unwrap().key_version, v1);
    let r = w.append("wsp1", &bodies("after", 1)).await;
    assert_eq!(stored_count(&r), 1);
    // Revocation still works after the restart.
    w.set_key_enabled("kv1", "k1", &v1, false).await;
    w.wait_state("clu1", &["revoked"]).await;
    w.shutdown().await;
}

/// An RSA-HSM key: a device error is ridden on the cached AEK; a tamper zeroises the key and the
/// storage is shredded for good (also after a storage restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsm_device_error_is_transient_and_tamper_shreds_for_good() {
    let mut w = World::start(profile("azure-2020", "")).await;
    w.vault_of_sku("kv1", true, kvpb::Sku::Premium).await;
    let v1 = w.key_of_type("kv1", "k1", "RSA-HSM").await;
    w.provisioned_cluster("clu1", "kv1").await;
    w.workspace("wsp1").await;
    w.link("wsp1", "clu1").await;
    w.update_key_and_wait("clu1", "kv1", "k1", &v1, &v1).await;
    assert_eq!(
        stored_count(&w.append("wsp1", &bodies("before", 3)).await),
        3
    );

    w.hsm_fault("device-error").await;
    w.wait_state("clu1", &["degraded"]).await;
    assert_eq!(stored_count(&w.append("wsp1", &bodies("err", 2)).await), 2);
    assert_eq!(w.query("wsp1").await.unwrap().records.len(), 5);
    let transient = w.wait_event("storage.poll.transient").await;
    assert_eq!(transient[0].data["kind"], "server_error5xx");
    w.hsm_fault("ok").await;
    w.wait_state("clu1", &["healthy_cmk"]).await;

    let status = w.hsm_fault("tamper").await;
    assert_eq!(status.keys_zeroised, 1);
    let s = w.wait_state("clu1", &["shredded"]).await;
    assert!(s.reason.contains("permanently unreadable"), "{}", s.reason);
    let shredded = w.wait_event("storage.state.shredded").await;
    assert_eq!(shredded.len(), 1);
    assert_eq!(shredded[0].data["cluster"], "clu1");
    assert_eq!(shredded[0].data["from"], "healthy_cmk");
    assert!(
        shredded[0].message.contains("permanently unreadable"),
        "{}",
        shredded[0].message
    );
    let denied = w.wait_event("storage.poll.denied").await;
    assert_eq!(denied.last().unwrap().data["code"], "InternalError");
    let r = w.append("wsp1", &bodies("after", 4)).await;
    assert_eq!(dropped_with(&r, DropReason::Shredded), 4);
    assert!(
        outcome_at(&r, 0).detail.starts_with("shredded:"),
        "{}",
        outcome_at(&r, 0).detail
    );
    let e = w.query("wsp1").await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(
        e.message().contains("permanently unreadable"),
        "{}",
        e.message()
    );
    // "ok" cannot bring the key back; nor can a restart.
    w.hsm_fault("ok").await;
    w.restart_storage().await;
    w.wait_state("clu1", &["shredded"]).await;
    assert!(w.query("wsp1").await.is_err());
    w.shutdown().await;
}
