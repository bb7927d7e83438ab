//! The ready-key cache ([`crate::keycache`]) never serves a key the vault no longer serves: a
//! disabled version, a deleted or purged key, a version rotated away (for a versionless
//! request), an HSM key after a tamper. Each test checks the answer over gRPC *and* that the
//! stale entry left the cache, so that removing an invalidation fails it even where the checks
//! in front of the cache would still refuse the call.

use tonic::Code;

use cmksim_proto::keyvault::v1 as pb;

use super::*;
use crate::keys::key_id;

fn op(
    token: &str,
    vault: &str,
    key: &str,
    version: &str,
    value: Vec<u8>,
) -> Request<pb::KeyOperationRequest> {
    req(
        token,
        pb::KeyOperationRequest {
            key: Some(key_ref(vault, key, version)),
            algorithm: "RSA-OAEP-256".into(),
            value,
        },
    )
}

fn ready(h: &Harness, vault: &str, key: &str, version: &str) -> bool {
    h.core.lock().crypto.is_ready(&key_id(vault, key, version))
}

async fn wrap(
    h: &mut Harness,
    t: &str,
    vault: &str,
    key: &str,
    value: u8,
) -> pb::KeyOperationResult {
    h.kv.wrap_key(op(t, vault, key, "", vec![value; 32]))
        .await
        .unwrap()
        .into_inner()
}

async fn set_enabled(
    h: &mut Harness,
    t: &str,
    vault: &str,
    key: &str,
    version: &str,
    enabled: bool,
) {
    h.kv.update_key(req(
        t,
        pb::UpdateKeyRequest {
            key: Some(key_ref(vault, key, version)),
            enabled: Some(enabled),
            ..Default::default()
        },
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn a_disabled_version_is_dropped_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(dir.path(), 41, clock()).await;
    let w = world(&mut h, "kv-cache-disable", pb::Sku::Premium, false).await;
    let t = h.vault_token(&w.admin);
    for (name, kty) in [("soft", "RSA"), ("hsm", "RSA-HSM")] {
        let v = version_of(&create_key(&mut h, &w, name, kty).await);
        let wrapped = wrap(&mut h, &t, &w.vault, name, 3).await.value;
        let back =
            h.kv.unwrap_key(op(&t, &w.vault, name, &v, wrapped.clone()))
                .await
                .unwrap()
                .into_inner();
        assert_eq!(back.value, vec![3; 32]);
        assert!(ready(&h, &w.vault, name, &v), "{kty}: cached after use");

        set_enabled(&mut h, &t, &w.vault, name, &v, false).await;
        assert!(
            !ready(&h, &w.vault, name, &v),
            "{kty}: dropped when disabled"
        );
        for version in [v.as_str(), ""] {
            let e =
                h.kv.unwrap_key(op(&t, &w.vault, name, version, wrapped.clone()))
                    .await
                    .unwrap_err();
            assert_eq!(e.code(), Code::PermissionDenied, "{kty}: {e:?}");
            assert_eq!(inner_code(&e), "KeyDisabled");
        }
        assert!(
            !ready(&h, &w.vault, name, &v),
            "{kty}: a refusal caches nothing"
        );

        set_enabled(&mut h, &t, &w.vault, name, &v, true).await;
        let back =
            h.kv.unwrap_key(op(&t, &w.vault, name, "", wrapped))
                .await
                .unwrap()
                .into_inner();
        assert_eq!(back.value, vec![3; 32]);
        assert!(
            ready(&h, &w.vault, name, &v),
            "{kty}: ready again once enabled"
        );
    }
    h.stop().await;
}

#[tokio::test]
async fn a_rotated_away_version_is_dropped_and_versionless_requests_use_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(dir.path(), 42, clock()).await;
    let w = world(&mut h, "kv-cache-rotate", pb::Sku::Premium, false).await;
    let t = h.vault_token(&w.admin);
    for (name, kty) in [("soft", "RSA"), ("hsm", "RSA-HSM")] {
        let v1 = version_of(&create_key(&mut h, &w, name, kty).await);
        let old = wrap(&mut h, &t, &w.vault, name, 4).await.value;
        h.kv.unwrap_key(op(&t, &w.vault, name, "", old.clone()))
            .await
            .unwrap();
        assert!(ready(&h, &w.vault, name, &v1));

        let rotated =
            h.kv.rotate_key(req(&t, key_ref(&w.vault, name, "")))
                .await
                .unwrap()
                .into_inner();
        let v2 = version_of(&rotated);
        assert_ne!(v1, v2);
        assert!(
            !ready(&h, &w.vault, name, &v1),
            "{kty}: dropped on rotation"
        );

        // Versionless now means v2: a value wrapped by v1 does not open with it...
        let e =
            h.kv.unwrap_key(op(&t, &w.vault, name, "", old.clone()))
                .await
                .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{kty}: {e:?}");
        assert!(ready(&h, &w.vault, name, &v2) && !ready(&h, &w.vault, name, &v1));
        // ...one wrapped by v2 does, and names v2; v1 still opens its own values by version.
        let new = wrap(&mut h, &t, &w.vault, name, 5).await;
        assert!(new.kid.ends_with(&v2));
        let back =
            h.kv.unwrap_key(op(&t, &w.vault, name, "", new.value))
                .await
                .unwrap()
                .into_inner();
        assert_eq!((back.value, back.kid.ends_with(&v2)), (vec![5; 32], true));
        let back =
            h.kv.unwrap_key(op(&t, &w.vault, name, &v1, old))
                .await
                .unwrap()
                .into_inner();
        assert_eq!(back.value, vec![4; 32]);
    }
    h.stop().await;
}

#[tokio::test]
async fn a_deleted_or_purged_key_or_vault_is_dropped_and_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(dir.path(), 43, clock()).await;
    let w = world(&mut h, "kv-cache-delete", pb::Sku::Premium, false).await;
    let t = h.vault_token(&w.admin);
    let v = version_of(&create_key(&mut h, &w, "soft", "RSA").await);
    let keep = version_of(&create_key(&mut h, &w, "keep", "RSA").await);
    let wrapped = wrap(&mut h, &t, &w.vault, "soft", 6).await.value;
    let kept = wrap(&mut h, &t, &w.vault, "keep", 7).await.value;
    for (name, value) in [("soft", &wrapped), ("keep", &kept)] {
        h.kv.unwrap_key(op(&t, &w.vault, name, "", value.clone()))
            .await
            .unwrap();
    }
    assert!(ready(&h, &w.vault, "soft", &v) && ready(&h, &w.vault, "keep", &keep));

    h.kv.delete_key(req(&t, key_ref(&w.vault, "soft", "")))
        .await
        .unwrap();
    assert!(!ready(&h, &w.vault, "soft", &v), "dropped on delete");
    assert!(ready(&h, &w.vault, "keep", &keep), "other keys stay");
    for version in [v.as_str(), ""] {
        let e =
            h.kv.unwrap_key(op(&t, &w.vault, "soft", version, wrapped.clone()))
                .await
                .unwrap_err();
        assert_eq!(e.code(), Code::NotFound, "{e:?}");
    }
    // Recovered, it serves again (its material parsed anew); purged, it is gone for good.
    h.kv.recover_deleted_key(req(&t, key_ref(&w.vault, "soft", "")))
        .await
        .unwrap();
    h.kv.unwrap_key(op(&t, &w.vault, "soft", &v, wrapped.clone()))
        .await
        .unwrap();
    assert!(ready(&h, &w.vault, "soft", &v));
    h.kv.delete_key(req(&t, key_ref(&w.vault, "soft", "")))
        .await
        .unwrap();
    h.kv.purge_deleted_key(req(&t, key_ref(&w.vault, "soft", "")))
        .await
        .unwrap();
    assert!(!ready(&h, &w.vault, "soft", &v));

    // Deleting the vault drops every key of it.
    h.kv.delete_vault(req(
        &h.mgmt_token(&w.admin),
        pb::VaultRef {
            vault_name: w.vault.clone(),
        },
    ))
    .await
    .unwrap();
    assert!(
        !ready(&h, &w.vault, "keep", &keep),
        "dropped with its vault"
    );
    let e =
        h.kv.unwrap_key(op(&t, &w.vault, "keep", &keep, kept))
            .await
            .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    h.stop().await;
}

#[tokio::test]
async fn a_tamper_drops_every_hsm_key_and_only_those() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(dir.path(), 44, clock()).await;
    let w = world(&mut h, "kv-cache-tamper", pb::Sku::Premium, false).await;
    let t = h.vault_token(&w.admin);
    let hsm = version_of(&create_key(&mut h, &w, "hsm", "RSA-HSM").await);
    let soft = version_of(&create_key(&mut h, &w, "soft", "RSA").await);
    let hsm_wrapped = wrap(&mut h, &t, &w.vault, "hsm", 8).await.value;
    let soft_wrapped = wrap(&mut h, &t, &w.vault, "soft", 9).await.value;
    for (name, value) in [("hsm", &hsm_wrapped), ("soft", &soft_wrapped)] {
        h.kv.unwrap_key(op(&t, &w.vault, name, "", value.clone()))
            .await
            .unwrap();
    }
    assert!(ready(&h, &w.vault, "hsm", &hsm) && ready(&h, &w.vault, "soft", &soft));

    h.chaos
        .set_hsm_fault(pb::HsmFaultRequest {
            mode: "tamper".into(),
            latency_ms: 0,
        })
        .await
        .unwrap();
    assert!(
        !ready(&h, &w.vault, "hsm", &hsm),
        "HSM key dropped on tamper"
    );
    assert!(
        ready(&h, &w.vault, "soft", &soft),
        "software keys are not in the HSM"
    );
    for _ in 0..2 {
        let e =
            h.kv.unwrap_key(op(&t, &w.vault, "hsm", &hsm, hsm_wrapped.clone()))
                .await
                .unwrap_err();
        assert_eq!(inner_code(&e), "HSMKeyMaterialDestroyed", "{e:?}");
        assert!(
            !ready(&h, &w.vault, "hsm", &hsm),
            "a destroyed key is never cached"
        );
    }
    let back =
        h.kv.unwrap_key(op(&t, &w.vault, "soft", "", soft_wrapped))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(back.value, vec![9; 32]);
    h.stop().await;
}
