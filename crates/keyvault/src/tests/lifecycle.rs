//! Lifecycle: delete → recover, scheduled purge on the simulation clock, restart, determinism.

use std::time::Duration;

use cmksim_proto::keyvault::v1 as pb;
use cmksim_sim::{EventLog, SimTime};

use super::*;

#[tokio::test]
async fn delete_then_recover() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(dir.path(), 21, clock()).await;
    let w = world(&mut h, "kv-recover", pb::Sku::Standard, false).await;
    let t = h.vault_token(&w.admin);
    let k = create_key(&mut h, &w, "cmk", "RSA").await;
    assert_eq!(
        k.attributes.unwrap().recovery_level,
        "Recoverable+Purgeable"
    );
    h.kv.delete_key(req(&t, key_ref(&w.vault, "cmk", "")))
        .await
        .unwrap();
    let d =
        h.kv.get_deleted_key(req(&t, key_ref(&w.vault, "cmk", "")))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(d.key.unwrap().key.unwrap().kid, k.key.as_ref().unwrap().kid);
    let r =
        h.kv.recover_deleted_key(req(&t, key_ref(&w.vault, "cmk", "")))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(r.key.unwrap().kid, k.key.unwrap().kid);
    h.kv.get_key(req(&t, key_ref(&w.vault, "cmk", "")))
        .await
        .unwrap();
    // Without purge protection, a manual purge works at once.
    h.kv.delete_key(req(&t, key_ref(&w.vault, "cmk", "")))
        .await
        .unwrap();
    h.kv.purge_deleted_key(req(&t, key_ref(&w.vault, "cmk", "")))
        .await
        .unwrap();
    assert!(h
        .kv
        .get_deleted_key(req(&t, key_ref(&w.vault, "cmk", "")))
        .await
        .is_err());
    create_key(&mut h, &w, "cmk", "RSA").await;
    let kinds: Vec<String> = h
        .events
        .of_kind("keyvault.key")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![
            "keyvault.key.created",
            "keyvault.key.deleted",
            "keyvault.key.recovered",
            "keyvault.key.deleted",
            "keyvault.key.purged",
            "keyvault.key.created"
        ]
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn purged_automatically_at_scheduled_purge_date() {
    let dir = tempfile::tempdir().unwrap();
    // One simulated hour per tokio second: 7 days are 168 paused seconds.
    let clock = cmksim_sim::Clock::tokio(SimTime::DEFAULT_EPOCH, 3600.0);
    let mut h = Harness::start(dir.path(), 22, clock.clone()).await;
    let w = world(&mut h, "kv-autopurge", pb::Sku::Standard, true).await;
    let t = h.vault_token(&w.admin);
    create_key(&mut h, &w, "cmk", "RSA").await;
    let d =
        h.kv.delete_key(req(&t, key_ref(&w.vault, "cmk", "")))
            .await
            .unwrap()
            .into_inner();
    let scheduled = SimTime(d.scheduled_purge_date_unix_ms);
    // After the date: purged by the background task, on the simulation clock, not before.
    clock
        .sleep_until(scheduled.add(Duration::from_secs(60)))
        .await;
    let purged = h.events.of_kind("keyvault.key.purged");
    assert_eq!(purged.len(), 1);
    assert!(
        purged[0].at() >= scheduled,
        "{} < {scheduled}",
        purged[0].at()
    );
    assert!(purged[0].at() < scheduled.add(Duration::from_secs(60)));
    assert_eq!(purged[0].data["automatic"], true);
    let t = h.vault_token(&w.admin);
    let e =
        h.kv.get_deleted_key(req(&t, key_ref(&w.vault, "cmk", "")))
            .await
            .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    h.stop().await;
}

#[tokio::test]
async fn restart_keeps_vaults_keys_policies_deleted_items_and_hsm_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(dir.path(), 23, clock()).await;
    let w = world(&mut h, "kv-restart", pb::Sku::Premium, true).await;
    let t = h.vault_token(&w.admin);
    let app = h.principal(&w.tenant, "app");
    let mt = h.mgmt_token(&w.admin);
    h.kv.set_access_policy(req(
        &mt,
        pb::SetAccessPolicyRequest {
            vault_name: w.vault.clone(),
            policy: Some(pb::AccessPolicy {
                tenant_id: w.tenant.clone(),
                object_id: app.oid.clone(),
                key_permissions: vec!["get".into(), "unwrapKey".into()],
            }),
        },
    ))
    .await
    .unwrap();
    let soft = create_key(&mut h, &w, "soft", "RSA").await;
    let hsm = create_key(&mut h, &w, "hsm", "RSA-HSM").await;
    create_key(&mut h, &w, "gone", "EC").await;
    h.kv.rotate_key(req(&t, key_ref(&w.vault, "soft", "")))
        .await
        .unwrap();
    h.kv.delete_key(req(&t, key_ref(&w.vault, "gone", "")))
        .await
        .unwrap();
    let wrap = |name: &str| {
        req(
            &t,
            pb::KeyOperationRequest {
                key: Some(key_ref("kv-restart", name, "")),
                algorithm: "RSA-OAEP-256".into(),
                value: vec![3; 32],
            },
        )
    };
    let soft_wrapped = h.kv.wrap_key(wrap("soft")).await.unwrap().into_inner();
    let hsm_wrapped = h.kv.wrap_key(wrap("hsm")).await.unwrap().into_inner();
    h.stop().await;

    let mut h = Harness::start(dir.path(), 23, clock()).await;
    // The principal and its secret survived with the identity authority.
    let t = h.vault_token(&app);
    let unwrap = |kid: &str, value: Vec<u8>| {
        let mut parts = kid.rsplit('/');
        let version = parts.next().unwrap().to_string();
        let name = parts.next().unwrap().to_string();
        req(
            &t,
            pb::KeyOperationRequest {
                key: Some(key_ref("kv-restart", &name, &version)),
                algorithm: "RSA-OAEP-256".into(),
                value,
            },
        )
    };
    assert_eq!(
        h.kv.unwrap_key(unwrap(&soft_wrapped.kid, soft_wrapped.value))
            .await
            .unwrap()
            .into_inner()
            .value,
        vec![3; 32]
    );
    assert_eq!(
        h.kv.unwrap_key(unwrap(&hsm_wrapped.kid, hsm_wrapped.value))
            .await
            .unwrap()
            .into_inner()
            .value,
        vec![3; 32]
    );
    let admin_t = h.vault_token(&w.admin);
    let versions =
        h.kv.list_key_versions(req(&admin_t, key_ref("kv-restart", "soft", "")))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(versions.keys.len(), 2);
    assert_eq!(
        versions.keys[0].key.as_ref().unwrap().kid,
        soft.key.unwrap().kid
    );
    let got =
        h.kv.get_key(req(&admin_t, key_ref("kv-restart", "hsm", "")))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(got.key.unwrap().n, hsm.key.unwrap().n);
    h.kv.get_deleted_key(req(&admin_t, key_ref("kv-restart", "gone", "")))
        .await
        .unwrap();
    let vault =
        h.kv.get_vault(req(
            &h.mgmt_token(&w.admin),
            pb::VaultRef {
                vault_name: "kv-restart".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(vault.enable_purge_protection);
    assert_eq!(vault.access_policies.len(), 2);
    // The audit survived too.
    let audit =
        h.kv.query_audit(req(
            &h.mgmt_token(&w.admin),
            pb::AuditQuery {
                vault_name: "kv-restart".into(),
                key_name: "hsm".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(audit.records.iter().any(|r| r.operation == "KeyWrap"));
    h.stop().await;
}

async fn script(seed: u64) -> (String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let events = EventLog::default();
    let mut h = Harness::start_with(dir.path(), seed, clock(), events.clone()).await;
    let w = world(&mut h, "kv-det", pb::Sku::Standard, false).await;
    let t = h.vault_token(&w.admin);
    let mut versions = vec![version_of(&create_key(&mut h, &w, "a", "RSA").await)];
    versions.push(version_of(&create_key(&mut h, &w, "b", "EC").await));
    versions.push(version_of(
        &h.kv
            .rotate_key(req(&t, key_ref("kv-det", "a", "")))
            .await
            .unwrap()
            .into_inner(),
    ));
    h.kv.update_key(req(
        &t,
        pb::UpdateKeyRequest {
            key: Some(key_ref("kv-det", "b", "")),
            enabled: Some(false),
            ..Default::default()
        },
    ))
    .await
    .unwrap();
    let mt = h.mgmt_token(&w.admin);
    h.kv.remove_access_policy(req(
        &mt,
        pb::RemoveAccessPolicyRequest {
            vault_name: "kv-det".into(),
            object_id: w.admin.oid.clone(),
        },
    ))
    .await
    .unwrap();
    h.stop().await;
    (events.to_jsonl(), versions)
}

// Paused time: nothing advances the clock (no deletion is scheduled, so no timer exists), so the
// two runs see the same simulated times and the logs must match byte for byte.
#[tokio::test(start_paused = true)]
async fn same_seed_same_versions_and_event_log() {
    let (log_a, versions_a) = script(99).await;
    let (log_b, versions_b) = script(99).await;
    assert_eq!(versions_a, versions_b);
    assert_eq!(log_a, log_b);
    assert_eq!(log_a.lines().count(), 7, "{log_a}");
    let (log_c, versions_c) = script(100).await;
    assert_ne!(versions_a, versions_c);
    assert_ne!(log_a, log_c);
}
