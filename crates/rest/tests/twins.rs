//! The REST twin of every error path of the gRPC Key Vault tests (issue 10): for each refusal
//! the gRPC tests in `crates/keyvault/src/tests/` exercise, the same call is made twice on one
//! Key Vault server — over gRPC straight to Key Vault, and over HTTPS through the door — and the
//! REST answer must carry the gRPC status's `AzureError`: the same HTTP status, `error.code`,
//! `error.message` and `error.innererror.code` (see [`common::assert_twin`]). A data-plane 401
//! must also carry the `WWW-Authenticate` challenge an SDK retries with.
//!
//! Each test below mirrors one gRPC test and builds the same state (through the door where a
//! route exists, as an SDK would). Data-plane calls go through the door's CONNECT proxy to
//! `{vault}.vault.azure.net` with `api-version=7.6`; vault (management-plane) calls go through
//! the ARM routes `/subscriptions/{s}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/
//! {name}?api-version=2026-05-15`.
//!
//! | gRPC test → refusal | REST twin |
//! |---|---|
//! | `errors::key_not_found_disabled_and_forbidden_operation` | `not_found_disabled_and_forbidden_operation` |
//! | · GetKey of an unknown key: 404 KeyNotFound | `GET /keys/nope/` |
//! | · UnwrapKey of an unknown key version: 404 KeyNotFound | `POST /keys/nope/{v}/unwrapkey` |
//! | · UnwrapKey on a disabled key: 403 Forbidden / KeyDisabled | `POST /keys/cmk//unwrapkey` |
//! | · WrapKey outside key_ops: 403 Forbidden / KeyOperationForbidden | `POST /keys/signer//wrapkey` |
//! | `errors::missing_permission_names_principal_and_permission` | `missing_permission_names_principal_and_permission` |
//! | · UnwrapKey without unwrapKey: 403 Forbidden / AccessDenied | `POST /keys/cmk//unwrapkey` |
//! | · GetKey after the policy is removed: 403 (keys get) | `GET /keys/cmk/` (policy added and removed through ARM `accessPolicies/{add,remove}`) |
//! | `errors::token_refusals` | `token_refusals` |
//! | · no token: 401 AKV10000 | `GET /keys/cmk/` without `Authorization` |
//! | · another token's signature: 401 | `GET /keys/cmk/` |
//! | · management audience: 401 AKV10022 | `GET /keys/cmk/` |
//! | · another tenant's principal: 401 AKV10032 | `GET /keys/cmk/` |
//! | · expired token: 401 TokenExpired | `GET /keys/cmk/` |
//! | · management plane without token: 401 AuthenticationFailed | ARM `GET .../vaults/{name}` without `Authorization` |
//! | · claims for another issuer signed by the real key: 401 | `GET /keys/cmk/` |
//! | · (no gRPC test) a token whose nbf is an hour ahead: 401 | `GET /keys/cmk/`, added because the door's harness can forge it as the gRPC tests forge the others |
//! | · `issue_token` with a wrong secret fails | no REST route: an in-process call on the identity authority, no Key Vault rpc (its HTTP counterpart, the token endpoint's AADSTS7000215, is Entra's shape and is tested in `door.rs`) |
//! | `errors::check_order_token_policy_exists_enabled_ops_algorithm` | `check_order_token_policy_exists_enabled_ops_algorithm` |
//! | · 1. a bad token beats everything: 401 | `POST /keys/missing//wrapkey` |
//! | · 2. no permission beats a missing key: 403 AccessDenied | `POST /keys/missing//wrapkey` |
//! | · 3. a missing key beats the rest: 404 | `POST /keys/missing//wrapkey` |
//! | · 4. disabled beats key_ops and algorithm: 403 KeyDisabled | `POST /keys/k//wrapkey` |
//! | · 5. key_ops beats the algorithm: 403 KeyOperationForbidden | `POST /keys/k//wrapkey` (enabled by `PATCH`) |
//! | · 6. the algorithm: 400 BadParameter | `POST /keys/k//wrapkey` (key_ops by `PATCH`) |
//! | `errors::nbf_exp_allow_only_decrypt_unwrap_verify` | `nbf_exp_refuse_wrap_sign_encrypt` |
//! | · WrapKey after exp: 403 KeyNotYetValidOrExpired | `POST /keys/k//wrapkey` (exp set by `PATCH`) |
//! | · Sign after exp: 403 | `POST /keys/k//sign` |
//! | · Encrypt after exp: 403 | `POST /keys/k//encrypt` |
//! | · WrapKey before nbf: 403 | `POST /keys/later//wrapkey` (a key created with a future nbf: the door's `PATCH` cannot clear exp, which the gRPC test does with `clear_exp`) |
//! | `errors::vault_rules_and_hsm_needs_premium` | `vault_rules_and_hsm_needs_premium` |
//! | · CreateVault with 6 invalid names: 400 VaultNameNotValid | ARM `PUT .../vaults/{bad}` (6 twins) |
//! | · CreateVault with retention 6 and 91 days: 400 BadRequest | ARM `PUT .../vaults/kv-ret` (2 twins) |
//! | · UpdateVault enableSoftDelete=false: 400 BadRequest | ARM `PATCH .../vaults/{name}` |
//! | · UpdateVault enablePurgeProtection=false: 400 BadRequest | ARM `PATCH .../vaults/{name}` |
//! | · CreateKey RSA-HSM in a standard vault: 400 BadParameter | `POST /keys/h/create` |
//! | · CreateKey RSA 1024: 400 | `POST /keys/k/create` |
//! | · CreateKey EC P-384: 400 BadParameter | `POST /keys/k/create` |
//! | · CreateKey with an invalid name: 400 | `POST /keys/bad_name/create` |
//! | · CreateVault over a soft-deleted vault: 409 ConflictError | ARM `PUT .../vaults/{name}` (deleted by ARM `DELETE`) |
//! | · PurgeDeletedVault under purge protection: 403 | ARM `POST .../locations/eastus/deletedVaults/{name}/purge` |
//! | `errors::deleted_key_name_conflict_and_purge_protection` | `deleted_key_name_conflict_and_purge_protection` |
//! | · CreateKey over a deleted key: 409 Conflict / ObjectIsDeletedButRecoverable | `POST /keys/cmk/create` (deleted by `DELETE /keys/cmk`) |
//! | · GetKey of a deleted key: 404 | `GET /keys/cmk/` |
//! | · PurgeDeletedKey under purge protection: 403 | `DELETE /deletedkeys/cmk` |
//! | · GetDeletedKey of an unknown name: 404 KeyNotFound | `GET /deletedkeys/other` |
//! | `errors::chaos_modes` | `chaos_modes` |
//! | · down: Unavailable without an Azure error | `GET /keys`: no Azure error to compare, so the twin is the door's documented mapping (503 ServiceUnavailable, "The service could not be reached (Unavailable): {gRPC message}") |
//! | · throttle: 429 Throttled, `retry-after` | `GET /keys`, and `Retry-After` carries the same seconds |
//! | · error_rate 1.0: 503 | `GET /keys` |
//! | · blackhole: DeadlineExceeded at the caller's 200 ms deadline | no twin: no Azure error, and an HTTP client sends no deadline, so the door waits for its own 30 s upstream timeout; a twin would only time that timeout |
//! | `happy::rotation_keeps_old_version_usable_and_audit_answers_by_version` | `rotation_newest_version_cannot_unwrap_the_old_ciphertext` |
//! | · UnwrapKey of v1's ciphertext with the newest version: 400 | `POST /keys/cmk//unwrapkey` (rotated by `POST /keys/cmk/rotate`) |
//! | `lifecycle::delete_then_recover` | `lifecycle_purged_key_is_gone` |
//! | · GetDeletedKey after a purge: 404 | `GET /deletedkeys/cmk` (deleted and purged through the door) |
//! | `lifecycle::purged_automatically_at_scheduled_purge_date` → GetDeletedKey: 404 | the same refusal as the row above, reached by the scheduled purge (its timing on the simulated clock is that test's subject, not the refusal) |
//! | `hsm_faults::device_error_is_a_retryable_500_on_hsm_keys_only` | `hsm_device_error` |
//! | · UnwrapKey on an HSM key: 500 InternalError / HSMDeviceError | `POST /keys/hsm/{v}/unwrapkey` |
//! | · WrapKey on an HSM key: 500 | `POST /keys/hsm/{v}/wrapkey` |
//! | `hsm_faults::tamper_destroys_hsm_keys_forever_even_after_restart` | `hsm_tamper_destroys_keys` |
//! | · UnwrapKey, WrapKey (RSA-HSM), Sign (EC-HSM): 500 InternalError / HSMKeyMaterialDestroyed | `POST /keys/rsa/{v}/unwrapkey`, `/wrapkey`, `POST /keys/ec//sign` (3 twins; after the restart the same refusals, not repeated: the door harness does not restart Key Vault) |
//! | `hsm_faults::bad_hsm_fault_requests_are_refused` | `bad_hsm_fault_requests` |
//! | · SetHsmFault melt, latency 0, tamper with latency: InvalidArgument without an Azure error | `PUT /_cmksim/chaos` `{"hsm": …}` (3 twins, the door's mapping: 400 BadRequest with the gRPC message) |
//! | `hsm_faults::latency_is_slept_on_the_simulation_clock`, `happy::every_algorithm_…`, `lifecycle::restart_…`, `lifecycle::same_seed_…` | no error path |
//!
//! 57 twins: 53 against an `AzureError` (one of them, the not-yet-valid token, beyond the gRPC
//! tests) and 4 against the door's mapping of a gRPC status that has none (chaos down, the three
//! bad HSM fault requests).

mod common;

use std::fmt::Debug;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use cmksim_identity::{audience, Claims, PrincipalKind};
use cmksim_proto::keyvault::v1 as kvp;
use cmksim_rest::client::{Answer, HttpsClient};
use cmksim_sim::SimTime;
use common::*;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use tonic::transport::Channel;

/// The api-version the ARM calls name (the door accepts any well-formed one).
const ARM_API: &str = "api-version=2026-05-15";
/// The resource group the test vaults live in.
const RESOURCE_GROUP: &str = "rg";
/// The plaintext of the gRPC tests' `wrap_req`.
const PLAIN: [u8; 32] = [1; 32];

/// A data-plane twin: [`assert_twin`], and on a 401 the challenge an SDK retries with.
fn twin(rest: &Answer, grpc: Result<impl Debug, tonic::Status>, what: &str) {
    assert_twin(rest, grpc, what);
    if rest.status == StatusCode::UNAUTHORIZED {
        let challenge = rest
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{what}: a 401 without WWW-Authenticate"));
        assert!(
            challenge.contains("resource=\"https://vault.azure.net\""),
            "{what}: {challenge}"
        );
    }
}

/// The twin of a gRPC refusal that carries no `AzureError` (a fault of the transport or of the
/// chaos control): the door answers its documented mapping of the gRPC code, with the gRPC
/// message (`RestError: From<tonic::Status>`).
fn plain_twin(rest: &Answer, grpc: Result<impl Debug, tonic::Status>, what: &str) {
    let status = grpc.expect_err(what);
    assert!(
        cmksim_keyvault::azure_error(&status).is_none(),
        "{what}: {status:?}"
    );
    let (http_status, code, message) = match status.code() {
        tonic::Code::Unavailable => (
            503,
            "ServiceUnavailable",
            format!(
                "The service could not be reached (Unavailable): {}",
                status.message()
            ),
        ),
        tonic::Code::InvalidArgument => (400, "BadRequest", status.message().to_string()),
        other => panic!("{what}: no mapping asserted for {other:?}"),
    };
    let body = rest.json();
    assert_eq!(rest.status.as_u16(), http_status, "{what}: {body}");
    assert_eq!(body["error"]["code"], json!(code), "{what}");
    assert_eq!(body["error"]["message"], json!(message), "{what}");
}

/// A gRPC request without `Authorization` (the gRPC tests' `req("", ...)`).
fn anonymous<T>(message: T) -> tonic::Request<T> {
    tonic::Request::new(message)
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// One door in front of one Key Vault, one vault in it whose administrator (the door's
/// bootstrap principal) holds every key permission, and a client of each API.
struct Twins {
    door: Door,
    kv: kvp::key_vault_client::KeyVaultClient<Channel>,
    chaos: kvp::chaos_control_client::ChaosControlClient<Channel>,
    /// The vault's data plane, through the door's CONNECT proxy (an SDK given `HTTPS_PROXY`).
    rest: HttpsClient,
    /// ARM and `/_cmksim/` (the door serves them on any host it has a certificate for).
    arm: HttpsClient,
    vault: String,
    /// The administrator's vault token.
    token: String,
    /// The administrator's management token.
    mgmt: String,
}

impl Twins {
    async fn open(vault: &str, sku: kvp::Sku, purge_protection: bool) -> Twins {
        let door = start().await;
        let token = door.admin_token("https://vault.azure.net/.default").await;
        let mgmt = door
            .admin_token("https://management.azure.com/.default")
            .await;
        let c = door.credentials.clone();
        let mut kv = kvp::key_vault_client::KeyVaultClient::new(door.kv.clone());
        let every_permission = cmksim_keyvault::model::KeyPermission::ALL
            .iter()
            .map(|p| p.as_str().to_string())
            .collect();
        kv.create_vault(grpc(
            &mgmt,
            kvp::CreateVaultRequest {
                name: vault.into(),
                location: "eastus".into(),
                tenant_id: c.tenant_id.clone(),
                sku: sku as i32,
                enable_soft_delete: Some(true),
                soft_delete_retention_in_days: Some(7),
                enable_purge_protection: purge_protection,
                access_policies: vec![kvp::AccessPolicy {
                    tenant_id: c.tenant_id.clone(),
                    object_id: c.object_id.clone(),
                    key_permissions: every_permission,
                }],
                subscription_id: c.subscription_id.clone(),
                resource_group: RESOURCE_GROUP.into(),
            },
        ))
        .await
        .expect("create vault");
        let host = format!("{vault}.vault.azure.net");
        let rest = HttpsClient::connect_through_proxy(door.addr, &host, &door.ca_pem)
            .await
            .expect("tunnel");
        let arm = door.client("localhost").await;
        Twins {
            chaos: kvp::chaos_control_client::ChaosControlClient::new(door.kv.clone()),
            door,
            kv,
            rest,
            arm,
            vault: vault.to_string(),
            token,
            mgmt,
        }
    }

    /// A data-plane request (`path` without its query; the api-version is added).
    async fn rest(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        self.rest
            .json(method, &format!("{path}?{API}"), token, body.as_ref())
            .await
            .expect("data-plane request")
    }

    /// The administrator's data-plane request.
    async fn admin(&mut self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let token = self.token.clone();
        self.rest(method, path, Some(&token), body).await
    }

    /// An ARM request to `/subscriptions/{s}/{path}`.
    async fn arm(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let subscription = &self.door.credentials.subscription_id;
        let url = format!("/subscriptions/{subscription}/{path}?{ARM_API}");
        self.arm
            .json(method, &url, token, body.as_ref())
            .await
            .expect("ARM request")
    }

    /// `resourceGroups/rg/providers/Microsoft.KeyVault/vaults/{name}`.
    fn vault_path(name: &str) -> String {
        format!("resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.KeyVault/vaults/{name}")
    }

    fn key(&self, name: &str, version: &str) -> kvp::KeyRef {
        kvp::KeyRef {
            vault_name: self.vault.clone(),
            key_name: name.into(),
            version: version.into(),
        }
    }

    fn op(
        &self,
        token: &str,
        name: &str,
        version: &str,
        alg: &str,
        value: &[u8],
    ) -> tonic::Request<kvp::KeyOperationRequest> {
        grpc(
            token,
            kvp::KeyOperationRequest {
                key: Some(self.key(name, version)),
                algorithm: alg.into(),
                value: value.to_vec(),
            },
        )
    }

    /// Creates a key through the door; its version.
    async fn create_key(&mut self, name: &str, body: Value) -> String {
        let created = self
            .admin(Method::POST, &format!("/keys/{name}/create"), Some(body))
            .await;
        assert_eq!(created.status, StatusCode::OK, "{}", created.json());
        let kid = created.json()["key"]["kid"]
            .as_str()
            .expect("kid")
            .to_string();
        kid.rsplit('/').next().expect("a version").to_string()
    }

    /// Updates a key through the door.
    async fn update_key(&mut self, path: &str, body: Value) {
        let updated = self.admin(Method::PATCH, path, Some(body)).await;
        assert_eq!(updated.status, StatusCode::OK, "{}", updated.json());
    }

    /// A new service principal of `tenant` (the door's tenant when `None`): its object id and
    /// a vault token.
    fn principal(&self, tenant: Option<&str>, name: &str) -> (String, String) {
        let tenant = tenant.unwrap_or(&self.door.credentials.tenant_id);
        let mut identity = self.door.identity.lock().expect("identity");
        let (p, secret) = identity
            .create_principal(tenant, name, PrincipalKind::ServicePrincipal)
            .expect("principal");
        let (token, _) = identity
            .issue_token(&p.object_id, &secret, audience::VAULT, 0, self.now())
            .expect("token");
        (p.object_id, token)
    }

    fn now(&self) -> SimTime {
        self.door.clock.now()
    }

    async fn set_chaos(&mut self, mode: kvp::ChaosMode, error_rate: f64) {
        self.chaos
            .set_chaos(kvp::ChaosSettings {
                mode: mode as i32,
                error_rate,
                retry_after_seconds: 30,
                added_latency_ms: 0,
            })
            .await
            .expect("set chaos");
    }

    fn stop(self) {
        self.door.stop.send_replace(true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_disabled_and_forbidden_operation() {
    let mut t = Twins::open("kv-errors", kvp::Sku::Standard, false).await;
    let token = t.token.clone();

    let rest = t.admin(Method::GET, "/keys/nope/", None).await;
    twin(
        &rest,
        t.kv.get_key(grpc(&token, t.key("nope", ""))).await,
        "unknown key",
    );
    let version = "0123456789abcdef0123456789abcdef";
    let body = json!({"alg": "RSA-OAEP", "value": b64(&PLAIN)});
    let rest = t
        .admin(
            Method::POST,
            &format!("/keys/nope/{version}/unwrapkey"),
            Some(body.clone()),
        )
        .await;
    let grpc_answer =
        t.kv.unwrap_key(t.op(&token, "nope", version, "RSA-OAEP", &PLAIN))
            .await;
    twin(&rest, grpc_answer, "unknown key version");

    let v = t.create_key("cmk", json!({"kty": "RSA"})).await;
    t.update_key(
        &format!("/keys/cmk/{v}"),
        json!({"attributes": {"enabled": false}}),
    )
    .await;
    let rest = t
        .admin(Method::POST, "/keys/cmk//unwrapkey", Some(body.clone()))
        .await;
    let grpc_answer =
        t.kv.unwrap_key(t.op(&token, "cmk", "", "RSA-OAEP", &PLAIN))
            .await;
    twin(&rest, grpc_answer, "disabled key");

    t.create_key(
        "signer",
        json!({"kty": "RSA", "key_ops": ["sign", "verify"]}),
    )
    .await;
    let rest = t
        .admin(Method::POST, "/keys/signer//wrapkey", Some(body))
        .await;
    let grpc_answer =
        t.kv.wrap_key(t.op(&token, "signer", "", "RSA-OAEP", &PLAIN))
            .await;
    twin(&rest, grpc_answer, "operation outside key_ops");
    t.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_permission_names_principal_and_permission() {
    let mut t = Twins::open("kv-perm", kvp::Sku::Standard, false).await;
    t.create_key("cmk", json!({"kty": "RSA"})).await;
    let (app_oid, app_token) = t.principal(None, "cluster-identity");
    let tenant = t.door.credentials.tenant_id.clone();
    let mgmt = t.mgmt.clone();
    let policies = |keys: &[&str]| {
        json!({"properties": {"accessPolicies": [{
            "tenantId": tenant, "objectId": app_oid, "permissions": {"keys": keys}
        }]}})
    };
    let vault_path = Twins::vault_path("kv-perm");
    let added = t
        .arm(
            Method::PUT,
            &format!("{vault_path}/accessPolicies/add"),
            Some(&mgmt),
            Some(policies(&["get", "wrapKey"])),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.json());

    let body = json!({"alg": "RSA-OAEP", "value": b64(&PLAIN)});
    let rest = t
        .rest(
            Method::POST,
            "/keys/cmk//unwrapkey",
            Some(&app_token),
            Some(body),
        )
        .await;
    let grpc_answer =
        t.kv.unwrap_key(t.op(&app_token, "cmk", "", "RSA-OAEP", &PLAIN))
            .await;
    twin(&rest, grpc_answer, "no unwrapKey permission");

    // Removing the policy takes even "get" away.
    let removed = t
        .arm(
            Method::PUT,
            &format!("{vault_path}/accessPolicies/remove"),
            Some(&mgmt),
            Some(policies(&["get", "wrapKey"])),
        )
        .await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.json());
    let rest = t
        .rest(Method::GET, "/keys/cmk/", Some(&app_token), None)
        .await;
    let grpc_answer = t.kv.get_key(grpc(&app_token, t.key("cmk", ""))).await;
    assert!(
        rest.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("does not have keys get permission")),
        "{}",
        rest.json()
    );
    twin(&rest, grpc_answer, "policy removed");
    t.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_refusals() {
    let mut t = Twins::open("kv-tokens", kvp::Sku::Standard, false).await;
    t.create_key("cmk", json!({"kty": "RSA"})).await;
    let admin_oid = t.door.credentials.object_id.clone();
    let tenant = t.door.credentials.tenant_id.clone();

    let rest = t.rest(Method::GET, "/keys/cmk/", None, None).await;
    twin(
        &rest,
        t.kv.get_key(anonymous(t.key("cmk", ""))).await,
        "no token",
    );

    // The claims and header of a real token, the signature of another (valid base64url, wrong).
    let mgmt = t.mgmt.clone();
    let mut parts: Vec<&str> = t.token.split('.').collect();
    parts[2] = t.mgmt.rsplit('.').next().expect("a signature");
    let resigned = parts.join(".");
    let stranger_tenant = t
        .door
        .identity
        .lock()
        .expect("identity")
        .create_tenant("fabrikam", "")
        .expect("tenant")
        .tenant_id;
    let (_, stranger) = t.principal(Some(&stranger_tenant), "stranger");
    let (expired, forged_claims, not_yet_valid) = {
        let identity = t.door.identity.lock().expect("identity");
        let admin = &identity.directory().principals[&admin_oid];
        let past = t.now().sub(std::time::Duration::from_secs(7200));
        let expired = identity.signer().issue(admin, audience::VAULT, past, 600).0;
        let now_s = t.now().0 / 1000;
        let forged = identity.signer().sign(&Claims {
            iss: format!("https://sts.windows.net/{stranger_tenant}/"),
            aud: audience::VAULT.into(),
            tid: tenant.clone(),
            oid: admin_oid.clone(),
            sub: admin_oid.clone(),
            appid: "x".into(),
            iat: now_s,
            nbf: now_s,
            exp: now_s + 600,
        });
        // Not in the gRPC tests: a token whose nbf is an hour ahead (beyond the 5-minute skew).
        let not_yet_valid = identity.signer().sign(&Claims {
            iss: format!("https://sts.windows.net/{tenant}/"),
            aud: audience::VAULT.into(),
            tid: tenant.clone(),
            oid: admin_oid.clone(),
            sub: admin_oid.clone(),
            appid: admin.app_id.clone(),
            iat: now_s,
            nbf: now_s + 3600,
            exp: now_s + 7200,
        });
        (expired, forged, not_yet_valid)
    };
    for (token, what) in [
        (resigned.as_str(), "another token's signature"),
        (mgmt.as_str(), "management audience"),
        (stranger.as_str(), "another tenant's principal"),
        (expired.as_str(), "expired token"),
        (forged_claims.as_str(), "another issuer's claims, signed"),
        (not_yet_valid.as_str(), "not yet valid token (no gRPC test)"),
    ] {
        let rest = t.rest(Method::GET, "/keys/cmk/", Some(token), None).await;
        twin(
            &rest,
            t.kv.get_key(grpc(token, t.key("cmk", ""))).await,
            what,
        );
    }

    // Management plane: ARM wording.
    let rest = t
        .arm(Method::GET, &Twins::vault_path("kv-tokens"), None, None)
        .await;
    let grpc_answer =
        t.kv.get_vault(anonymous(kvp::VaultRef {
            vault_name: "kv-tokens".into(),
        }))
        .await;
    assert_twin(&rest, grpc_answer, "management plane without token");
    t.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_order_token_policy_exists_enabled_ops_algorithm() {
    let mut t = Twins::open("kv-order", kvp::Sku::Standard, false).await;
    let token = t.token.clone();
    // A disabled key that only allows sign, asked to wrap with a bogus algorithm.
    t.create_key(
        "k",
        json!({"kty": "RSA", "key_ops": ["sign"], "attributes": {"enabled": false}}),
    )
    .await;
    let (_, nobody) = t.principal(None, "nobody");
    let body = json!({"alg": "BOGUS", "value": b64(&PLAIN)});
    for (name, caller, what) in [
        ("missing", "garbage".to_string(), "1. a bad token"),
        ("missing", nobody, "2. no permission"),
        ("missing", token.clone(), "3. a missing key"),
        ("k", token.clone(), "4. disabled"),
    ] {
        let rest = t
            .rest(
                Method::POST,
                &format!("/keys/{name}//wrapkey"),
                Some(&caller),
                Some(body.clone()),
            )
            .await;
        let grpc_answer =
            t.kv.wrap_key(t.op(&caller, name, "", "BOGUS", &PLAIN))
                .await;
        twin(&rest, grpc_answer, what);
    }
    t.update_key("/keys/k/", json!({"attributes": {"enabled": true}}))
        .await;
    let rest = t
        .admin(Method::POST, "/keys/k//wrapkey", Some(body.clone()))
        .await;
    let grpc_answer = t.kv.wrap_key(t.op(&token, "k", "", "BOGUS", &PLAIN)).await;
    twin(&rest, grpc_answer, "5. key_ops");
    t.update_key("/keys/k/", json!({"key_ops": ["wrapKey"]}))
        .await;
    let rest = t.admin(Method::POST, "/keys/k//wrapkey", Some(body)).await;
    let grpc_answer = t.kv.wrap_key(t.op(&token, "k", "", "BOGUS", &PLAIN)).await;
    twin(&rest, grpc_answer, "6. the algorithm");
    t.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nbf_exp_refuse_wrap_sign_encrypt() {
    let mut t = Twins::open("kv-validity", kvp::Sku::Standard, false).await;
    let token = t.token.clone();
    t.create_key("k", json!({"kty": "RSA"})).await;
    // Expire it (Unix seconds, one second in the simulated past).
    let now_s = t.now().0.div_euclid(1000);
    t.update_key("/keys/k/", json!({"attributes": {"exp": now_s - 1}}))
        .await;
    let wrap = json!({"alg": "RSA-OAEP-256", "value": b64(&PLAIN)});
    let rest = t
        .admin(Method::POST, "/keys/k//wrapkey", Some(wrap.clone()))
        .await;
    let grpc_answer =
        t.kv.wrap_key(t.op(&token, "k", "", "RSA-OAEP-256", &PLAIN))
            .await;
    twin(&rest, grpc_answer, "wrap after exp");

    let digest = [7u8; 32];
    let rest = t
        .admin(
            Method::POST,
            "/keys/k//sign",
            Some(json!({"alg": "RS256", "value": b64(&digest)})),
        )
        .await;
    let grpc_answer =
        t.kv.sign(grpc(
            &token,
            kvp::SignRequest {
                key: Some(t.key("k", "")),
                algorithm: "RS256".into(),
                digest: digest.to_vec(),
            },
        ))
        .await;
    twin(&rest, grpc_answer, "sign after exp");

    let rest = t
        .admin(
            Method::POST,
            "/keys/k//encrypt",
            Some(json!({"alg": "RSA-OAEP", "value": b64(&PLAIN)})),
        )
        .await;
    let grpc_answer =
        t.kv.encrypt(t.op(&token, "k", "", "RSA-OAEP", &PLAIN))
            .await;
    twin(&rest, grpc_answer, "encrypt after exp");

    // Not yet valid behaves the same.
    t.create_key(
        "later",
        json!({"kty": "RSA", "attributes": {"nbf": now_s + 86_400}}),
    )
    .await;
    let rest = t
        .admin(Method::POST, "/keys/later//wrapkey", Some(wrap))
        .await;
    let grpc_answer =
        t.kv.wrap_key(t.op(&token, "later", "", "RSA-OAEP-256", &PLAIN))
            .await;
    twin(&rest, grpc_answer, "wrap before nbf");
    t.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_rules_and_hsm_needs_premium() {
    let mut t = Twins::open("kv-rules", kvp::Sku::Standard, true).await;
    let token = t.token.clone();
    let mgmt = t.mgmt.clone();
    let create_vault = |name: &str, retention: Option<u32>| kvp::CreateVaultRequest {
        name: name.into(),
        location: "eastus".into(),
        soft_delete_retention_in_days: retention,
        ..Default::default()
    };
    for bad in [
        "ab",
        "1vault",
        "vault-",
        "va--ult",
        "vault_x",
        "a234567890123456789012345",
    ] {
        let rest = t
            .arm(
                Method::PUT,
                &Twins::vault_path(bad),
                Some(&mgmt),
                Some(json!({"location": "eastus"})),
            )
            .await;
        let grpc_answer =
            t.kv.create_vault(grpc(&mgmt, create_vault(bad, None)))
                .await;
        assert_twin(&rest, grpc_answer, &format!("vault name {bad}"));
    }
    for days in [6, 91] {
        let rest = t
            .arm(
                Method::PUT,
                &Twins::vault_path("kv-ret"),
                Some(&mgmt),
                Some(json!({"location": "eastus",
                            "properties": {"softDeleteRetentionInDays": days}})),
            )
            .await;
        let grpc_answer =
            t.kv.create_vault(grpc(&mgmt, create_vault("kv-ret", Some(days))))
                .await;
        assert_twin(&rest, grpc_answer, &format!("retention {days}"));
    }
    let update = |soft_delete: Option<bool>, purge_protection: Option<bool>| {
        grpc(
            &mgmt,
            kvp::UpdateVaultRequest {
                vault_name: "kv-rules".into(),
                enable_soft_delete: soft_delete,
                enable_purge_protection: purge_protection,
                ..Default::default()
            },
        )
    };
    let rest = t
        .arm(
            Method::PATCH,
            &Twins::vault_path("kv-rules"),
            Some(&mgmt),
            Some(json!({"properties": {"enableSoftDelete": false}})),
        )
        .await;
    let grpc_answer = t.kv.update_vault(update(Some(false), None)).await;
    assert_twin(&rest, grpc_answer, "soft delete off");
    let rest = t
        .arm(
            Method::PATCH,
            &Twins::vault_path("kv-rules"),
            Some(&mgmt),
            Some(json!({"properties": {"enablePurgeProtection": false}})),
        )
        .await;
    let grpc_answer = t.kv.update_vault(update(None, Some(false))).await;
    assert_twin(&rest, grpc_answer, "purge protection off");

    let create_key = |name: &str, kty: &str, key_size: u32, curve: &str| {
        grpc(
            &token,
            kvp::CreateKeyRequest {
                vault_name: "kv-rules".into(),
                key_name: name.into(),
                kty: kty.into(),
                key_size,
                curve: curve.into(),
                ..Default::default()
            },
        )
    };
    for (name, body, request, what) in [
        (
            "h",
            json!({"kty": "RSA-HSM"}),
            create_key("h", "RSA-HSM", 0, ""),
            "HSM key in a standard vault",
        ),
        (
            "k",
            json!({"kty": "RSA", "key_size": 1024}),
            create_key("k", "RSA", 1024, ""),
            "RSA 1024",
        ),
        (
            "k",
            json!({"kty": "EC", "crv": "P-384"}),
            create_key("k", "EC", 0, "P-384"),
            "curve P-384",
        ),
        (
            "bad_name",
            json!({"kty": "RSA"}),
            create_key("bad_name", "RSA", 0, ""),
            "invalid key name",
        ),
    ] {
        let rest = t
            .admin(Method::POST, &format!("/keys/{name}/create"), Some(body))
            .await;
        twin(&rest, t.kv.create_key(request).await, what);
    }

    // Vault deleted → name reserved, purge refused under purge protection.
    let deleted = t
        .arm(
            Method::DELETE,
            &Twins::vault_path("kv-rules"),
            Some(&mgmt),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.json());
    let rest = t
        .arm(
            Method::PUT,
            &Twins::vault_path("kv-rules"),
            Some(&mgmt),
            Some(json!({"location": "eastus"})),
        )
        .await;
    let grpc_answer =
        t.kv.create_vault(grpc(&mgmt, create_vault("kv-rules", None)))
            .await;
    assert_twin(&rest, grpc_answer, "name of a soft-deleted vault");
    let rest = t
        .arm(
            Method::POST,
            "providers/Microsoft.KeyVault/locations/eastus/deletedVaults/kv-rules/purge",
            Some(&mgmt),
            None,
        )
        .await;
    let grpc_answer =
        t.kv.purge_deleted_vault(grpc(
            &mgmt,
            kvp::VaultRef {
                vault_name: "kv-rules".into(),
            },
        ))
        .await;
    assert_twin(&rest, grpc_answer, "vault purge under purge protection");
    t.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_key_name_conflict_and_purge_protection() {
    let mut t = Twins::open("kv-del", kvp::Sku::Standard, true).await;
    let token = t.token.clone();
    t.create_key("cmk", json!({"kty": "RSA"})).await;
    let deleted = t.admin(Method::DELETE, "/keys/cmk", None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.json());

    let rest = t
        .admin(
            Method::POST,
            "/keys/cmk/create",
            Some(json!({"kty": "RSA"})),
        )
        .await;
    let grpc_answer =
        t.kv.create_key(grpc(
            &token,
            kvp::CreateKeyRequest {
                vault_name: "kv-del".into(),
                key_name: "cmk".into(),
                kty: "RSA".into(),
                ..Default::default()
            },
        ))
        .await;
    twin(&rest, grpc_answer, "name of a deleted key");
    let rest = t.admin(Method::GET, "/keys/cmk/", None).await;
    twin(
        &rest,
        t.kv.get_key(grpc(&token, t.key("cmk", ""))).await,
        "a deleted key read as a key",
    );
    let rest = t.admin(Method::DELETE, "/deletedkeys/cmk", None).await;
    twin(
        &rest,
        t.kv.purge_deleted_key(grpc(&token, t.key("cmk", ""))).await,
        "key purge under purge protection",
    );
    let rest = t.admin(Method::GET, "/deletedkeys/other", None).await;
    twin(
        &rest,
        t.kv.get_deleted_key(grpc(&token, t.key("other", ""))).await,
        "unknown deleted key",
    );
    t.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_modes() {
    let mut t = Twins::open("kv-chaos", kvp::Sku::Standard, false).await;
    let token = t.token.clone();
    let list = || {
        grpc(
            &token,
            kvp::VaultRef {
                vault_name: "kv-chaos".into(),
            },
        )
    };

    t.set_chaos(kvp::ChaosMode::Down, 0.0).await;
    let rest = t.admin(Method::GET, "/keys", None).await;
    plain_twin(&rest, t.kv.list_keys(list()).await, "down");

    t.set_chaos(kvp::ChaosMode::Throttle, 0.0).await;
    let rest = t.admin(Method::GET, "/keys", None).await;
    let grpc_answer = t.kv.list_keys(list()).await;
    let retry_after = grpc_answer
        .as_ref()
        .err()
        .and_then(|s| s.metadata().get("retry-after"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    assert_eq!(retry_after.as_deref(), Some("30"));
    assert_eq!(
        rest.headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        retry_after.as_deref(),
        "throttled: Retry-After"
    );
    twin(&rest, grpc_answer, "throttled");

    t.set_chaos(kvp::ChaosMode::ErrorRate, 1.0).await;
    let rest = t.admin(Method::GET, "/keys", None).await;
    twin(&rest, t.kv.list_keys(list()).await, "error rate 1.0");
    t.set_chaos(kvp::ChaosMode::Up, 0.0).await;
    t.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_newest_version_cannot_unwrap_the_old_ciphertext() {
    let mut t = Twins::open("kv-rotate", kvp::Sku::Standard, false).await;
    let token = t.token.clone();
    t.create_key("cmk", json!({"kty": "RSA"})).await;
    let wrapped = t
        .admin(
            Method::POST,
            "/keys/cmk//wrapkey",
            Some(json!({"alg": "RSA-OAEP-256", "value": b64(&[9; 32])})),
        )
        .await;
    assert_eq!(wrapped.status, StatusCode::OK, "{}", wrapped.json());
    let value = wrapped.json()["value"].as_str().expect("value").to_string();
    let rotated = t.admin(Method::POST, "/keys/cmk/rotate", None).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.json());

    let rest = t
        .admin(
            Method::POST,
            "/keys/cmk//unwrapkey",
            Some(json!({"alg": "RSA-OAEP-256", "value": value})),
        )
        .await;
    let ciphertext = B64.decode(&value).expect("base64url");
    let grpc_answer =
        t.kv.unwrap_key(t.op(&token, "cmk", "", "RSA-OAEP-256", &ciphertext))
            .await;
    twin(&rest, grpc_answer, "old ciphertext, newest version");
    t.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_purged_key_is_gone() {
    let mut t = Twins::open("kv-recover", kvp::Sku::Standard, false).await;
    let token = t.token.clone();
    t.create_key("cmk", json!({"kty": "RSA"})).await;
    let deleted = t.admin(Method::DELETE, "/keys/cmk", None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.json());
    let purged = t.admin(Method::DELETE, "/deletedkeys/cmk", None).await;
    assert_eq!(purged.status, StatusCode::NO_CONTENT, "{}", purged.json());
    let rest = t.admin(Method::GET, "/deletedkeys/cmk", None).await;
    twin(
        &rest,
        t.kv.get_deleted_key(grpc(&token, t.key("cmk", ""))).await,
        "purged key",
    );
    t.stop();
}

/// Sets an HSM fault through the chaos control, as the gRPC tests do.
async fn hsm_fault(t: &mut Twins, mode: &str) {
    t.chaos
        .set_hsm_fault(kvp::HsmFaultRequest {
            mode: mode.into(),
            latency_ms: 0,
        })
        .await
        .expect("set HSM fault");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsm_device_error() {
    let mut t = Twins::open("kv-hsm-err", kvp::Sku::Premium, true).await;
    let token = t.token.clone();
    let v = t
        .create_key("hsm", json!({"kty": "RSA-HSM", "key_size": 2048}))
        .await;
    let wrapped = t
        .admin(
            Method::POST,
            &format!("/keys/hsm/{v}/wrapkey"),
            Some(json!({"alg": "RSA-OAEP-256", "value": b64(&[7; 32])})),
        )
        .await;
    assert_eq!(wrapped.status, StatusCode::OK, "{}", wrapped.json());
    let value = wrapped.json()["value"].as_str().expect("value").to_string();
    let ciphertext = B64.decode(&value).expect("base64url");

    hsm_fault(&mut t, "device-error").await;
    let rest = t
        .admin(
            Method::POST,
            &format!("/keys/hsm/{v}/unwrapkey"),
            Some(json!({"alg": "RSA-OAEP-256", "value": value})),
        )
        .await;
    let grpc_answer =
        t.kv.unwrap_key(t.op(&token, "hsm", &v, "RSA-OAEP-256", &ciphertext))
            .await;
    twin(&rest, grpc_answer, "HSM device error on unwrap");
    let rest = t
        .admin(
            Method::POST,
            &format!("/keys/hsm/{v}/wrapkey"),
            Some(json!({"alg": "RSA-OAEP-256", "value": b64(&PLAIN)})),
        )
        .await;
    let grpc_answer =
        t.kv.wrap_key(t.op(&token, "hsm", &v, "RSA-OAEP-256", &PLAIN))
            .await;
    twin(&rest, grpc_answer, "HSM device error on wrap");
    hsm_fault(&mut t, "ok").await;
    t.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsm_tamper_destroys_keys() {
    let mut t = Twins::open("kv-hsm-tamper", kvp::Sku::Premium, true).await;
    let token = t.token.clone();
    let v = t
        .create_key("rsa", json!({"kty": "RSA-HSM", "key_size": 2048}))
        .await;
    t.create_key("ec", json!({"kty": "EC-HSM"})).await;
    let wrapped = t
        .admin(
            Method::POST,
            &format!("/keys/rsa/{v}/wrapkey"),
            Some(json!({"alg": "RSA-OAEP-256", "value": b64(&[5; 32])})),
        )
        .await;
    assert_eq!(wrapped.status, StatusCode::OK, "{}", wrapped.json());
    let value = wrapped.json()["value"].as_str().expect("value").to_string();
    let ciphertext = B64.decode(&value).expect("base64url");

    hsm_fault(&mut t, "tamper").await;
    let rest = t
        .admin(
            Method::POST,
            &format!("/keys/rsa/{v}/unwrapkey"),
            Some(json!({"alg": "RSA-OAEP-256", "value": value})),
        )
        .await;
    let grpc_answer =
        t.kv.unwrap_key(t.op(&token, "rsa", &v, "RSA-OAEP-256", &ciphertext))
            .await;
    twin(&rest, grpc_answer, "destroyed key: unwrap");
    let rest = t
        .admin(
            Method::POST,
            &format!("/keys/rsa/{v}/wrapkey"),
            Some(json!({"alg": "RSA-OAEP-256", "value": b64(&PLAIN)})),
        )
        .await;
    let grpc_answer =
        t.kv.wrap_key(t.op(&token, "rsa", &v, "RSA-OAEP-256", &PLAIN))
            .await;
    twin(&rest, grpc_answer, "destroyed key: wrap");
    let digest = [0u8; 32];
    let rest = t
        .admin(
            Method::POST,
            "/keys/ec//sign",
            Some(json!({"alg": "ES256", "value": b64(&digest)})),
        )
        .await;
    let grpc_answer =
        t.kv.sign(grpc(
            &token,
            kvp::SignRequest {
                key: Some(t.key("ec", "")),
                algorithm: "ES256".into(),
                digest: digest.to_vec(),
            },
        ))
        .await;
    twin(&rest, grpc_answer, "destroyed key: sign");
    t.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_hsm_fault_requests() {
    let mut t = Twins::open("kv-hsm-bad", kvp::Sku::Premium, false).await;
    let mgmt = t.mgmt.clone();
    for (mode, latency_ms) in [("melt", 0), ("latency", 0), ("tamper", 10)] {
        let rest = t
            .arm
            .json(
                Method::PUT,
                "/_cmksim/chaos",
                Some(&mgmt),
                Some(&json!({"hsm": {"mode": mode, "latencyMs": latency_ms}})),
            )
            .await
            .expect("chaos request");
        let grpc_answer = t
            .chaos
            .set_hsm_fault(kvp::HsmFaultRequest {
                mode: mode.into(),
                latency_ms,
            })
            .await;
        plain_twin(&rest, grpc_answer, &format!("HSM fault {mode}"));
    }
    t.stop();
}
