//! Happy paths: round trips with every algorithm, software and HSM; rotation with the old
//! version still usable; audit by version; no private material in any response.

use prost::Message;

use cmksim_proto::keyvault::v1 as pb;

use super::*;
use crate::model::PrivateMaterial;

async fn round_trips(h: &mut Harness, w: &World, kty: &str, responses: &mut Vec<u8>) {
    let t = h.vault_token(&w.admin);
    let name = kty.to_ascii_lowercase();
    let k =
        h.kv.create_key(req(
            &t,
            pb::CreateKeyRequest {
                vault_name: w.vault.clone(),
                key_name: name.clone(),
                kty: kty.into(),
                key_size: 2048,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(k.hsm, kty.ends_with("-HSM"));
    assert_eq!(k.key.as_ref().unwrap().n.len(), 256);
    responses.extend(k.encode_to_vec());
    let dek = [0x5au8; 32];
    for alg in ["RSA-OAEP", "RSA-OAEP-256", "RSA1_5"] {
        let wrapped =
            h.kv.wrap_key(req(
                &t,
                pb::KeyOperationRequest {
                    key: Some(key_ref(&w.vault, &name, "")),
                    algorithm: alg.into(),
                    value: dek.to_vec(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(wrapped.kid, k.key.as_ref().unwrap().kid);
        let unwrapped =
            h.kv.unwrap_key(req(
                &t,
                pb::KeyOperationRequest {
                    key: Some(key_ref(&w.vault, &name, "")),
                    algorithm: alg.into(),
                    value: wrapped.value.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(unwrapped.value, dek, "{kty} {alg}");
        let enc =
            h.kv.encrypt(req(
                &t,
                pb::KeyOperationRequest {
                    key: Some(key_ref(&w.vault, &name, "")),
                    algorithm: alg.into(),
                    value: b"hello".to_vec(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let dec =
            h.kv.decrypt(req(
                &t,
                pb::KeyOperationRequest {
                    key: Some(key_ref(&w.vault, &name, "")),
                    algorithm: alg.into(),
                    value: enc.value.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(dec.value, b"hello");
        responses.extend(wrapped.encode_to_vec());
        responses.extend(enc.encode_to_vec());
    }
    for alg in ["RS256", "PS256"] {
        sign_verify(h, w, &name, alg, responses).await;
    }
}

async fn sign_verify(h: &mut Harness, w: &World, name: &str, alg: &str, responses: &mut Vec<u8>) {
    let t = h.vault_token(&w.admin);
    let digest = crate::crypto::sha256(b"payload");
    let s =
        h.kv.sign(req(
            &t,
            pb::SignRequest {
                key: Some(key_ref(&w.vault, name, "")),
                algorithm: alg.into(),
                digest: digest.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let ok =
        h.kv.verify(req(
            &t,
            pb::VerifyRequest {
                key: Some(key_ref(&w.vault, name, "")),
                algorithm: alg.into(),
                digest: digest.clone(),
                signature: s.signature.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(ok.valid, "{name} {alg}");
    let bad =
        h.kv.verify(req(
            &t,
            pb::VerifyRequest {
                key: Some(key_ref(&w.vault, name, "")),
                algorithm: alg.into(),
                digest: crate::crypto::sha256(b"other"),
                signature: s.signature.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!bad.valid, "{name} {alg}");
    responses.extend(s.encode_to_vec());
}

#[tokio::test]
async fn every_algorithm_software_and_hsm_and_no_secret_in_responses() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(dir.path(), 11, clock()).await;
    let w = world(&mut h, "kv-premium", pb::Sku::Premium, false).await;
    let mut responses = Vec::new();
    round_trips(&mut h, &w, "RSA", &mut responses).await;
    round_trips(&mut h, &w, "RSA-HSM", &mut responses).await;
    for kty in ["EC", "EC-HSM"] {
        let k = create_key(&mut h, &w, &kty.to_ascii_lowercase(), kty).await;
        assert_eq!(k.key.as_ref().unwrap().crv, "P-256");
        assert_eq!(k.key.as_ref().unwrap().key_ops, vec!["sign", "verify"]);
        responses.extend(k.encode_to_vec());
        sign_verify(
            &mut h,
            &w,
            &kty.to_ascii_lowercase(),
            "ES256",
            &mut responses,
        )
        .await;
    }
    let t = h.vault_token(&w.admin);
    let list =
        h.kv.list_keys(req(
            &t,
            pb::VaultRef {
                vault_name: w.vault.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.keys.len(), 4);
    responses.extend(list.encode_to_vec());

    // The software keys' private material: never in any response.
    let secrets: Vec<Vec<u8>> = {
        let inner = h.core.lock();
        let entry = inner.state.entry(&w.vault).unwrap();
        let mut out = Vec::new();
        for key in entry.keys.values() {
            for v in &key.versions {
                if let PrivateMaterial::Sealed(sealed) = &v.private {
                    let id = crate::keys::key_id(&w.vault, &key.name, &v.version);
                    out.push(inner.crypto.open_sealed(&id, sealed).unwrap().to_vec());
                    out.push(sealed.clone());
                }
            }
        }
        out
    };
    assert_eq!(
        secrets.len(),
        4,
        "RSA and EC software keys, opened and sealed"
    );
    // PKCS#8 also holds the public modulus and exponent, which responses rightly carry: only
    // windows that are not part of the public key count.
    let public: Vec<u8> = list
        .keys
        .iter()
        .flat_map(|k| {
            let jwk = k.key.as_ref().unwrap();
            [jwk.n.clone(), jwk.e.clone(), jwk.x.clone(), jwk.y.clone()].concat()
        })
        .collect();
    let mut checked = 0;
    for secret in &secrets {
        // Any 24-byte window of the private parts (d, p, q, dp, dq, qi; the EC scalar) would
        // betray the key.
        for window in secret.windows(24).step_by(8) {
            if public.windows(24).any(|p| p == window) {
                continue;
            }
            checked += 1;
            assert!(
                !responses.windows(24).any(|w| w == window),
                "secret material found in a response"
            );
        }
    }
    assert!(checked > 100, "{checked} windows checked");
    // HSM keys: the HSM refuses to reveal them.
    h.stop().await;
}

#[tokio::test]
async fn rotation_keeps_old_version_usable_and_audit_answers_by_version() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(dir.path(), 12, clock()).await;
    let w = world(&mut h, "kv-rotate", pb::Sku::Standard, false).await;
    let t = h.vault_token(&w.admin);
    let v1 = version_of(&create_key(&mut h, &w, "cmk", "RSA").await);
    let wrapped =
        h.kv.wrap_key(req(
            &t,
            pb::KeyOperationRequest {
                key: Some(key_ref(&w.vault, "cmk", "")),
                algorithm: "RSA-OAEP-256".into(),
                value: vec![9; 32],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let rotated =
        h.kv.rotate_key(req(&t, key_ref(&w.vault, "cmk", "")))
            .await
            .unwrap()
            .into_inner();
    let v2 = version_of(&rotated);
    assert_ne!(v1, v2);
    assert!(cmksim_sim::ids::is_key_version(&v2));
    let newest =
        h.kv.get_key(req(&t, key_ref(&w.vault, "cmk", "")))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(version_of(&newest), v2);
    let versions =
        h.kv.list_key_versions(req(&t, key_ref(&w.vault, "cmk", "")))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(versions.keys.len(), 2);
    // Unwrap with the old version still works.
    let out =
        h.kv.unwrap_key(req(
            &t,
            pb::KeyOperationRequest {
                key: Some(key_ref(&w.vault, "cmk", &v1)),
                algorithm: "RSA-OAEP-256".into(),
                value: wrapped.value.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.value, vec![9; 32]);
    // The newest version cannot unwrap what v1 wrapped.
    let e =
        h.kv.unwrap_key(req(
            &t,
            pb::KeyOperationRequest {
                key: Some(key_ref(&w.vault, "cmk", "")),
                algorithm: "RSA-OAEP-256".into(),
                value: wrapped.value,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);

    let mt = h.mgmt_token(&w.admin);
    let audit =
        h.kv.query_audit(req(
            &mt,
            pb::AuditQuery {
                vault_name: w.vault.clone(),
                key_name: "cmk".into(),
                key_version: v1.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let ops: Vec<&str> = audit.records.iter().map(|r| r.operation.as_str()).collect();
    assert_eq!(
        ops,
        vec!["KeyUnwrap", "KeyWrap", "KeyCreate"],
        "newest first"
    );
    assert!(audit
        .records
        .iter()
        .all(|r| r.result == "Success" && r.principal_object_id == w.admin.oid));
    let failures =
        h.kv.query_audit(req(
            &mt,
            pb::AuditQuery {
                vault_name: w.vault.clone(),
                key_name: "cmk".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(failures
        .records
        .iter()
        .any(|r| r.operation == "KeyUnwrap" && r.result == "BadParameter" && r.http_status == 400));
    let limited =
        h.kv.query_audit(req(
            &mt,
            pb::AuditQuery {
                vault_name: w.vault.clone(),
                limit: 2,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(limited.records.len(), 2);
    assert!(limited.total_matched > 2);
    h.stop().await;
}
