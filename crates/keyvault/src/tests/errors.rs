//! Every error path of SPEC §2, each asserting gRPC code, Azure code, HTTP status and message.

use tonic::Code;

use cmksim_identity::{audience, Claims};
use cmksim_proto::keyvault::v1 as pb;

use super::*;

const NOT_FOUND_TAIL: &str = " was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182";

fn wrap_req(
    token: &str,
    vault: &str,
    key: &str,
    version: &str,
    alg: &str,
) -> tonic::Request<pb::KeyOperationRequest> {
    req(
        token,
        pb::KeyOperationRequest {
            key: Some(key_ref(vault, key, version)),
            algorithm: alg.into(),
            value: vec![1; 32],
        },
    )
}

#[tokio::test]
async fn key_not_found_disabled_and_forbidden_operation() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(dir.path(), 1, clock()).await;
    let w = world(&mut h, "kv-errors", pb::Sku::Standard, false).await;
    let t = h.vault_token(&w.admin);

    let e =
        h.kv.get_key(req(&t, key_ref(&w.vault, "nope", "")))
            .await
            .unwrap_err();
    assert_azure(
        &e,
        Code::NotFound,
        "KeyNotFound",
        404,
        &format!("A key with (name/id) nope{NOT_FOUND_TAIL}"),
    );
    let e =
        h.kv.unwrap_key(wrap_req(
            &t,
            &w.vault,
            "nope",
            "0123456789abcdef0123456789abcdef",
            "RSA-OAEP",
        ))
        .await
        .unwrap_err();
    assert_azure(
        &e,
        Code::NotFound,
        "KeyNotFound",
        404,
        &format!("A key with (name/id) nope/0123456789abcdef0123456789abcdef{NOT_FOUND_TAIL}"),
    );

    // Disabled: still readable, unusable.
    let k = create_key(&mut h, &w, "cmk", "RSA").await;
    let version = version_of(&k);
    h.kv.update_key(req(
        &t,
        pb::UpdateKeyRequest {
            key: Some(key_ref(&w.vault, "cmk", &version)),
            enabled: Some(false),
            ..Default::default()
        },
    ))
    .await
    .unwrap();
    let got =
        h.kv.get_key(req(&t, key_ref(&w.vault, "cmk", "")))
            .await
            .unwrap()
            .into_inner();
    assert!(!got.attributes.unwrap().enabled);
    let e =
        h.kv.unwrap_key(wrap_req(&t, &w.vault, "cmk", "", "RSA-OAEP"))
            .await
            .unwrap_err();
    assert_azure(
        &e,
        Code::PermissionDenied,
        "Forbidden",
        403,
        "Operation unwrapKey is not allowed on a disabled key.",
    );
    assert_eq!(inner_code(&e), "KeyDisabled");

    // Outside key_ops.
    let ec =
        h.kv.create_key(req(
            &t,
            pb::CreateKeyRequest {
                vault_name: w.vault.clone(),
                key_name: "signer".into(),
                kty: "RSA".into(),
                key_ops: vec!["sign".into(), "verify".into()],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ec.key.unwrap().key_ops, vec!["sign", "verify"]);
    let e =
        h.kv.wrap_key(wrap_req(&t, &w.vault, "signer", "", "RSA-OAEP"))
            .await
            .unwrap_err();
    assert_azure(
        &e,
        Code::PermissionDenied,
        "Forbidden",
        403,
        "Operation wrapKey is not permitted on this key.",
    );
    assert_eq!(inner_code(&e), "KeyOperationForbidden");
    h.stop().await;
}

#[tokio::test]
async fn missing_permission_names_principal_and_permission() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(dir.path(), 2, clock()).await;
    let w = world(&mut h, "kv-perm", pb::Sku::Standard, false).await;
    create_key(&mut h, &w, "cmk", "RSA").await;
    let app = h.principal(&w.tenant, "cluster-identity");
    // Get only.
    let mt = h.mgmt_token(&w.admin);
    h.kv.set_access_policy(req(
        &mt,
        pb::SetAccessPolicyRequest {
            vault_name: w.vault.clone(),
            policy: Some(pb::AccessPolicy {
                tenant_id: w.tenant.clone(),
                object_id: app.oid.clone(),
                key_permissions: vec!["get".into(), "wrapKey".into()],
            }),
        },
    ))
    .await
    .unwrap();
    let t = h.vault_token(&app);
    let e =
        h.kv.unwrap_key(wrap_req(&t, &w.vault, "cmk", "", "RSA-OAEP"))
            .await
            .unwrap_err();
    let app_id = h.identity.lock().unwrap().directory().principals[&app.oid]
        .app_id
        .clone();
    let expected = format!(
        "The user, group or application 'appid={app_id};oid={};iss=https://sts.windows.net/{}/' does not have keys unwrapKey permission on key vault 'kv-perm;location=eastus'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
        app.oid, w.tenant
    );
    assert_azure(&e, Code::PermissionDenied, "Forbidden", 403, &expected);
    assert_eq!(inner_code(&e), "AccessDenied");
    // Removing the policy takes even "get" away.
    h.kv.remove_access_policy(req(
        &mt,
        pb::RemoveAccessPolicyRequest {
            vault_name: w.vault.clone(),
            object_id: app.oid.clone(),
        },
    ))
    .await
    .unwrap();
    let e =
        h.kv.get_key(req(&t, key_ref(&w.vault, "cmk", "")))
            .await
            .unwrap_err();
    assert!(
        e.message().contains("does not have keys get permission"),
        "{e:?}"
    );
    h.stop().await;
}

#[tokio::test]
async fn token_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(dir.path(), 3, clock()).await;
    let w = world(&mut h, "kv-tokens", pb::Sku::Standard, false).await;
    create_key(&mut h, &w, "cmk", "RSA").await;
    let get = |t: &str| req(t, key_ref("kv-tokens", "cmk", ""));

    let e = h.kv.get_key(get("")).await.unwrap_err();
    assert_azure(
        &e,
        Code::Unauthenticated,
        "Unauthorized",
        401,
        "AKV10000: Request is missing a Bearer or PoP token.",
    );

    let good = h.vault_token(&w.admin);
    // Claims and header of a real token, the signature of another (valid base64url, wrong).
    let mut parts: Vec<String> = good.split('.').map(String::from).collect();
    parts[2] = h
        .mgmt_token(&w.admin)
        .rsplit('.')
        .next()
        .unwrap()
        .to_string();
    let e = h.kv.get_key(get(&parts.join("."))).await.unwrap_err();
    assert_azure(
        &e,
        Code::Unauthenticated,
        "Unauthorized",
        401,
        "AKV10000: Token validation failed: the token signature is invalid.",
    );

    let e =
        h.kv.get_key(get(&h.mgmt_token(&w.admin)))
            .await
            .unwrap_err();
    assert_azure(&e, Code::Unauthenticated, "Unauthorized", 401, "AKV10022: Invalid audience. Expected https://vault.azure.net, found: https://management.azure.com.");

    let other = h.other_tenant();
    let stranger = h.principal(&other, "stranger");
    let e =
        h.kv.get_key(get(&h.vault_token(&stranger)))
            .await
            .unwrap_err();
    assert_azure(&e, Code::Unauthenticated, "Unauthorized", 401, &format!(
        "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{}/, found https://sts.windows.net/{other}/.", w.tenant
    ));

    let expired = {
        let id = h.identity.lock().unwrap();
        let p = &id.directory().principals[&w.admin.oid];
        let past = h.now().sub(std::time::Duration::from_secs(7200));
        id.signer().issue(p, audience::VAULT, past, 600).0
    };
    let e = h.kv.get_key(get(&expired)).await.unwrap_err();
    assert_azure(
        &e,
        Code::Unauthenticated,
        "Unauthorized",
        401,
        "[TokenExpired] Error validating token: 'S2S12086'.",
    );

    // Management plane: ARM wording.
    let e =
        h.kv.get_vault(req(
            "",
            pb::VaultRef {
                vault_name: w.vault.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_azure(
        &e,
        Code::Unauthenticated,
        "AuthenticationFailed",
        401,
        "Authentication failed. The 'Authorization' header is missing.",
    );

    // A token for another principal cannot be minted without its secret.
    assert!(h
        .identity
        .lock()
        .unwrap()
        .issue_token(&w.admin.oid, "guess", audience::VAULT, 0, h.now())
        .is_err());
    // A hand-built token with claims for another tenant, signed by the real key, is refused too.
    let forged_claims = {
        let id = h.identity.lock().unwrap();
        let now_s = h.now().0 / 1000;
        id.signer().sign(&Claims {
            iss: format!("https://sts.windows.net/{other}/"),
            aud: audience::VAULT.into(),
            tid: w.tenant.clone(),
            oid: w.admin.oid.clone(),
            sub: w.admin.oid.clone(),
            appid: "x".into(),
            iat: now_s,
            nbf: now_s,
            exp: now_s + 600,
        })
    };
    let e = h.kv.get_key(get(&forged_claims)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    h.stop().await;
}

#[tokio::test]
async fn check_order_token_policy_exists_enabled_ops_algorithm() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(dir.path(), 4, clock()).await;
    let w = world(&mut h, "kv-order", pb::Sku::Standard, false).await;
    let t = h.vault_token(&w.admin);
    // A disabled key that only allows sign, asked to wrap with a bogus algorithm.
    h.kv.create_key(req(
        &t,
        pb::CreateKeyRequest {
            vault_name: w.vault.clone(),
            key_name: "k".into(),
            kty: "RSA".into(),
            key_ops: vec!["sign".into()],
            enabled: Some(false),
            ..Default::default()
        },
    ))
    .await
    .unwrap();
    let nobody = h.principal(&w.tenant, "nobody");
    // 1. bad token beats everything.
    let e =
        h.kv.wrap_key(wrap_req("garbage", &w.vault, "missing", "", "BOGUS"))
            .await
            .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    // 2. no permission beats a missing key.
    let e =
        h.kv.wrap_key(wrap_req(
            &h.vault_token(&nobody),
            &w.vault,
            "missing",
            "",
            "BOGUS",
        ))
        .await
        .unwrap_err();
    assert_eq!(inner_code(&e), "AccessDenied");
    // 3. a missing key beats the rest.
    let e =
        h.kv.wrap_key(wrap_req(&t, &w.vault, "missing", "", "BOGUS"))
            .await
            .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    // 4. disabled beats key_ops and algorithm.
    let e =
        h.kv.wrap_key(wrap_req(&t, &w.vault, "k", "", "BOGUS"))
            .await
            .unwrap_err();
    assert_eq!(inner_code(&e), "KeyDisabled");
    h.kv.update_key(req(
        &t,
        pb::UpdateKeyRequest {
            key: Some(key_ref(&w.vault, "k", "")),
            enabled: Some(true),
            ..Default::default()
        },
    ))
    .await
    .unwrap();
    // 5. key_ops beats the algorithm.
    let e =
        h.kv.wrap_key(wrap_req(&t, &w.vault, "k", "", "BOGUS"))
            .await
            .unwrap_err();
    assert_eq!(inner_code(&e), "KeyOperationForbidden");
    // 6. finally the algorithm.
    h.kv.update_key(req(
        &t,
        pb::UpdateKeyRequest {
            key: Some(key_ref(&w.vault, "k", "")),
            key_ops: vec!["wrapKey".into()],
            ..Default::default()
        },
    ))
    .await
    .unwrap();
    let e =
        h.kv.wrap_key(wrap_req(&t, &w.vault, "k", "", "BOGUS"))
            .await
            .unwrap_err();
    assert_azure(
        &e,
        Code::InvalidArgument,
        "BadParameter",
        400,
        "Algorithm 'BOGUS' is not supported for operation wrapKey with key type RSA.",
    );
    h.stop().await;
}

#[tokio::test]
async fn nbf_exp_allow_only_decrypt_unwrap_verify() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(dir.path(), 5, clock()).await;
    let w = world(&mut h, "kv-validity", pb::Sku::Standard, false).await;
    let t = h.vault_token(&w.admin);
    create_key(&mut h, &w, "k", "RSA").await;
    let wrapped =
        h.kv.wrap_key(wrap_req(&t, &w.vault, "k", "", "RSA-OAEP-256"))
            .await
            .unwrap()
            .into_inner()
            .value;
    let digest = crate::crypto::sha256(b"m");
    let sig =
        h.kv.sign(req(
            &t,
            pb::SignRequest {
                key: Some(key_ref(&w.vault, "k", "")),
                algorithm: "RS256".into(),
                digest: digest.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .signature;
    // Expire it.
    let past = h.now().0 - 1000;
    h.kv.update_key(req(
        &t,
        pb::UpdateKeyRequest {
            key: Some(key_ref(&w.vault, "k", "")),
            exp_unix_ms: Some(past),
            ..Default::default()
        },
    ))
    .await
    .unwrap();
    let e =
        h.kv.wrap_key(wrap_req(&t, &w.vault, "k", "", "RSA-OAEP-256"))
            .await
            .unwrap_err();
    assert_azure(
        &e,
        Code::PermissionDenied,
        "Forbidden",
        403,
        "Operation wrapKey is not allowed outside the key's validity period.",
    );
    let e =
        h.kv.sign(req(
            &t,
            pb::SignRequest {
                key: Some(key_ref(&w.vault, "k", "")),
                algorithm: "RS256".into(),
                digest: digest.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(inner_code(&e), "KeyNotYetValidOrExpired");
    let e =
        h.kv.encrypt(wrap_req(&t, &w.vault, "k", "", "RSA-OAEP"))
            .await
            .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let unwrapped =
        h.kv.unwrap_key(req(
            &t,
            pb::KeyOperationRequest {
                key: Some(key_ref(&w.vault, "k", "")),
                algorithm: "RSA-OAEP-256".into(),
                value: wrapped.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unwrapped.value, vec![1; 32]);
    h.kv.decrypt(req(
        &t,
        pb::KeyOperationRequest {
            key: Some(key_ref(&w.vault, "k", "")),
            algorithm: "RSA-OAEP-256".into(),
            value: wrapped,
        },
    ))
    .await
    .unwrap();
    let v =
        h.kv.verify(req(
            &t,
            pb::VerifyRequest {
                key: Some(key_ref(&w.vault, "k", "")),
                algorithm: "RS256".into(),
                digest,
                signature: sig,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(v.valid);
    // Not yet valid behaves the same.
    let future = h.now().0 + 86_400_000;
    h.kv.update_key(req(
        &t,
        pb::UpdateKeyRequest {
            key: Some(key_ref(&w.vault, "k", "")),
            clear_exp: true,
            nbf_unix_ms: Some(future),
            ..Default::default()
        },
    ))
    .await
    .unwrap();
    let e =
        h.kv.wrap_key(wrap_req(&t, &w.vault, "k", "", "RSA-OAEP-256"))
            .await
            .unwrap_err();
    assert_eq!(inner_code(&e), "KeyNotYetValidOrExpired");
    h.stop().await;
}

#[tokio::test]
async fn vault_rules_and_hsm_needs_premium() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(dir.path(), 6, clock()).await;
    let w = world(&mut h, "kv-rules", pb::Sku::Standard, true).await;
    let mt = h.mgmt_token(&w.admin);
    let t = h.vault_token(&w.admin);
    for bad in [
        "ab",
        "1vault",
        "vault-",
        "va--ult",
        "vault_x",
        "a234567890123456789012345",
    ] {
        let e =
            h.kv.create_vault(req(
                &mt,
                pb::CreateVaultRequest {
                    name: bad.into(),
                    location: "eastus".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
        assert_azure(&e, Code::InvalidArgument, "VaultNameNotValid", 400, &format!(
            "The vault name '{bad}' is invalid. A vault's name must be between 3-24 alphanumeric characters. The name must begin with a letter, end with a letter or digit, and not contain consecutive hyphens."
        ));
    }
    let e =
        h.kv.create_vault(req(
            &mt,
            pb::CreateVaultRequest {
                name: "kv-on-mars".into(),
                location: "mars".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_azure(
        &e,
        Code::InvalidArgument,
        "LocationNotAvailableForResourceType",
        400,
        &format!(
            "The provided location 'mars' is not available for resource type \
             'Microsoft.KeyVault/vaults'. List of available regions for the resource type is \
             '{}'.",
            cmksim_sim::rules::AZURE_REGIONS.join(",")
        ),
    );
    for days in [6, 91] {
        let e =
            h.kv.create_vault(req(
                &mt,
                pb::CreateVaultRequest {
                    name: "kv-ret".into(),
                    location: "eastus".into(),
                    soft_delete_retention_in_days: Some(days),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
        assert_azure(&e, Code::InvalidArgument, "BadRequest", 400, &format!("The property \"softDeleteRetentionInDays\" has an invalid value {days}. It must be between 7 and 90 days."));
    }
    let e =
        h.kv.update_vault(req(
            &mt,
            pb::UpdateVaultRequest {
                vault_name: w.vault.clone(),
                enable_soft_delete: Some(false),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_azure(&e, Code::InvalidArgument, "BadRequest", 400, "The property \"enableSoftDelete\" can be set to false only for creating new vault. Enabling the 'soft delete' functionality is an irreversible action.");
    let e =
        h.kv.update_vault(req(
            &mt,
            pb::UpdateVaultRequest {
                vault_name: w.vault.clone(),
                enable_purge_protection: Some(false),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_azure(&e, Code::InvalidArgument, "BadRequest", 400, "The property \"enablePurgeProtection\" cannot be set to false. Enabling the purge protection for a vault is an irreversible action.");
    let e =
        h.kv.create_key(req(
            &t,
            pb::CreateKeyRequest {
                vault_name: w.vault.clone(),
                key_name: "h".into(),
                kty: "RSA-HSM".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_azure(&e, Code::InvalidArgument, "BadParameter", 400, "Key type RSA-HSM is not supported by the standard SKU of vault 'kv-rules'. HSM-protected keys require the premium SKU.");
    let e =
        h.kv.create_key(req(
            &t,
            pb::CreateKeyRequest {
                vault_name: w.vault.clone(),
                key_name: "k".into(),
                kty: "RSA".into(),
                key_size: 1024,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e =
        h.kv.create_key(req(
            &t,
            pb::CreateKeyRequest {
                vault_name: w.vault.clone(),
                key_name: "k".into(),
                kty: "EC".into(),
                curve: "P-384".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_azure(
        &e,
        Code::InvalidArgument,
        "BadParameter",
        400,
        "Invalid curve 'P-384'. Supported curves: P-256.",
    );
    let e =
        h.kv.create_key(req(
            &t,
            pb::CreateKeyRequest {
                vault_name: w.vault.clone(),
                key_name: "bad_name".into(),
                kty: "RSA".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // Vault deleted → name reserved.
    h.kv.delete_vault(req(
        &mt,
        pb::VaultRef {
            vault_name: w.vault.clone(),
        },
    ))
    .await
    .unwrap();
    let e =
        h.kv.create_vault(req(
            &mt,
            pb::CreateVaultRequest {
                name: w.vault.clone(),
                location: "eastus".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_azure(
        &e,
        Code::AlreadyExists,
        "ConflictError",
        409,
        "Exist soft deleted vault with the same name.",
    );
    let e =
        h.kv.purge_deleted_vault(req(
            &mt,
            pb::VaultRef {
                vault_name: w.vault.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_azure(&e, Code::PermissionDenied, "Forbidden", 403, "Operation \"purge\" is not allowed because purge protection is enabled for this vault. Key Vault service will automatically purge it after the retention period has passed. Vault: kv-rules;location=eastus");
    h.kv.recover_deleted_vault(req(
        &mt,
        pb::VaultRef {
            vault_name: w.vault.clone(),
        },
    ))
    .await
    .unwrap();
    h.kv.get_vault(req(
        &mt,
        pb::VaultRef {
            vault_name: w.vault.clone(),
        },
    ))
    .await
    .unwrap();
    h.stop().await;
}

#[tokio::test]
async fn deleted_key_name_conflict_and_purge_protection() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(dir.path(), 7, clock()).await;
    let w = world(&mut h, "kv-del", pb::Sku::Standard, true).await;
    let t = h.vault_token(&w.admin);
    let k = create_key(&mut h, &w, "cmk", "RSA").await;
    assert_eq!(k.attributes.as_ref().unwrap().recovery_level, "Recoverable");
    assert_eq!(k.attributes.as_ref().unwrap().recoverable_days, 7);
    let d =
        h.kv.delete_key(req(&t, key_ref(&w.vault, "cmk", "")))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(
        d.recovery_id,
        "https://kv-del.vault.azure.net/deletedkeys/cmk"
    );
    assert_eq!(
        d.scheduled_purge_date_unix_ms - d.deleted_date_unix_ms,
        7 * 86_400_000
    );
    let e =
        h.kv.create_key(req(
            &t,
            pb::CreateKeyRequest {
                vault_name: w.vault.clone(),
                key_name: "cmk".into(),
                kty: "RSA".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_azure(&e, Code::AlreadyExists, "Conflict", 409, "Key cmk is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can only be recovered or purged.");
    assert_eq!(inner_code(&e), "ObjectIsDeletedButRecoverable");
    let e =
        h.kv.get_key(req(&t, key_ref(&w.vault, "cmk", "")))
            .await
            .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e =
        h.kv.purge_deleted_key(req(&t, key_ref(&w.vault, "cmk", "")))
            .await
            .unwrap_err();
    assert_azure(&e, Code::PermissionDenied, "Forbidden", 403, "Operation \"purge\" is not allowed because purge protection is enabled for this vault. Key Vault service will automatically purge it after the retention period has passed. Vault: kv-del;location=eastus");
    let e =
        h.kv.get_deleted_key(req(&t, key_ref(&w.vault, "other", "")))
            .await
            .unwrap_err();
    assert_azure(
        &e,
        Code::NotFound,
        "KeyNotFound",
        404,
        "Deleted Key not found: other",
    );
    h.stop().await;
}

#[tokio::test]
async fn chaos_modes() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(dir.path(), 8, clock()).await;
    let w = world(&mut h, "kv-chaos", pb::Sku::Standard, false).await;
    let t = h.vault_token(&w.admin);
    let set = |mode: pb::ChaosMode, rate: f64| pb::ChaosSettings {
        mode: mode as i32,
        error_rate: rate,
        retry_after_seconds: 30,
        added_latency_ms: 0,
    };
    h.chaos
        .set_chaos(set(pb::ChaosMode::Down, 0.0))
        .await
        .unwrap();
    let e =
        h.kv.list_keys(req(
            &t,
            pb::VaultRef {
                vault_name: w.vault.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert!(crate::status::azure_error(&e).is_none());
    h.chaos
        .set_chaos(set(pb::ChaosMode::Throttle, 0.0))
        .await
        .unwrap();
    let e =
        h.kv.list_keys(req(
            &t,
            pb::VaultRef {
                vault_name: w.vault.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_azure(&e, Code::ResourceExhausted, "Throttled", 429, "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached");
    assert_eq!(
        e.metadata().get("retry-after").unwrap().to_str().unwrap(),
        "30"
    );
    h.chaos
        .set_chaos(set(pb::ChaosMode::ErrorRate, 1.0))
        .await
        .unwrap();
    let e =
        h.kv.list_keys(req(
            &t,
            pb::VaultRef {
                vault_name: w.vault.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(crate::status::azure_error(&e).unwrap().http_status, 503);
    assert_eq!(e.code(), Code::Unavailable);
    // Blackhole holds until the caller's deadline.
    h.chaos
        .set_chaos(set(pb::ChaosMode::Blackhole, 0.0))
        .await
        .unwrap();
    let mut r = req(
        &t,
        pb::VaultRef {
            vault_name: w.vault.clone(),
        },
    );
    r.set_timeout(std::time::Duration::from_millis(200));
    let e = h.kv.list_keys(r).await.unwrap_err();
    assert!(
        matches!(e.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{e:?}"
    );
    h.chaos
        .set_chaos(set(pb::ChaosMode::Up, 0.0))
        .await
        .unwrap();
    h.kv.list_keys(req(
        &t,
        pb::VaultRef {
            vault_name: w.vault.clone(),
        },
    ))
    .await
    .unwrap();
    assert_eq!(h.events.of_kind("keyvault.chaos.changed").len(), 5);
    h.stop().await;
}
