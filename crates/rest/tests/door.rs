//! The HTTPS front door against a real Key Vault server, both on loopback: the token endpoint,
//! the Key Vault data plane through the CONNECT proxy and directly, and the REST twin of the
//! gRPC errors: for each refusal the same call is made over gRPC and over HTTPS and both must
//! answer the same HTTP status, Azure code and message.

mod common;

use cmksim_proto::keyvault::v1 as kvp;
use cmksim_rest::client::HttpsClient;
use common::*;
use http::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_issues_by_scope_and_refuses_in_entra_terms() {
    let door = start().await;
    let c = door.credentials.clone();
    let ok = door
        .token(
            &c.client_id,
            &c.client_secret,
            "https://vault.azure.net/.default",
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let body = ok.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600, "one wall-clock hour at 1x");

    let bad_secret = door
        .token(&c.client_id, "wrong", "https://vault.azure.net/.default")
        .await;
    assert_eq!(bad_secret.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bad_secret.json()["error"], "invalid_client");
    assert!(bad_secret.json()["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS7000215: Invalid client secret provided."));

    let bad_scope = door
        .token(
            &c.client_id,
            &c.client_secret,
            "https://graph.microsoft.com/.default",
        )
        .await;
    assert_eq!(bad_scope.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_scope.json()["error"], "invalid_scope");

    let unknown = door
        .token(
            "00000000-0000-0000-0000-000000000000",
            "x",
            "https://vault.azure.net/.default",
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.json()["error_codes"], json!([700016]));

    let mut client = door.client("localhost").await;
    let discovery = client
        .json(
            Method::GET,
            &format!("/{}/v2.0/.well-known/openid-configuration", c.tenant_id),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(discovery.status, StatusCode::OK);
    assert_eq!(
        discovery.json()["token_endpoint"],
        json!(format!(
            "https://localhost/{}/oauth2/v2.0/token",
            c.tenant_id
        ))
    );
    door.stop.send_replace(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_vault_over_https_answers_as_the_grpc_service_does() {
    let door = start().await;
    let c = door.credentials.clone();
    let mgmt = door
        .admin_token("https://management.azure.com/.default")
        .await;
    let vault_token = door.admin_token("https://vault.azure.net/.default").await;

    // A second principal (through the admin API) that may only get and wrap.
    let mut admin = door.client("localhost").await;
    let created = admin
        .json(
            Method::POST,
            "/_cmksim/principals",
            Some(&mgmt),
            Some(&json!({"displayName": "reader"})),
        )
        .await
        .unwrap();
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.json());
    let reader = created.json();
    let reader_token = {
        let answer = door
            .token(
                reader["clientId"].as_str().unwrap(),
                reader["clientSecret"].as_str().unwrap(),
                "https://vault.azure.net/.default",
            )
            .await;
        answer.json()["access_token"].as_str().unwrap().to_string()
    };
    let mut kv = kvp::key_vault_client::KeyVaultClient::new(door.kv.clone());
    let policy = |oid: &str, permissions: &[&str]| kvp::AccessPolicy {
        tenant_id: c.tenant_id.clone(),
        object_id: oid.to_string(),
        key_permissions: permissions.iter().map(|p| p.to_string()).collect(),
    };
    kv.create_vault(grpc(
        &mgmt,
        kvp::CreateVaultRequest {
            name: VAULT.into(),
            location: "westus2".into(),
            tenant_id: c.tenant_id.clone(),
            sku: kvp::Sku::Premium as i32,
            enable_soft_delete: Some(true),
            soft_delete_retention_in_days: Some(7),
            enable_purge_protection: true,
            access_policies: vec![
                policy(
                    &c.object_id,
                    &[
                        "get",
                        "list",
                        "create",
                        "update",
                        "delete",
                        "recover",
                        "purge",
                        "wrapKey",
                        "unwrapKey",
                        "sign",
                        "verify",
                        "rotate",
                    ],
                ),
                policy(reader["objectId"].as_str().unwrap(), &["get", "wrapKey"]),
            ],
            subscription_id: c.subscription_id.clone(),
            resource_group: "rg".into(),
        },
    ))
    .await
    .expect("create vault");

    // Through the CONNECT proxy, as a client given HTTPS_PROXY does.
    let mut rest = HttpsClient::connect_through_proxy(door.addr, VAULT_HOST, &door.ca_pem)
        .await
        .expect("tunnel");

    // The SDK's first request: no token, no body -> 401 with the challenge, nothing else checked.
    let challenge = rest
        .send(Method::POST, &format!("/keys/k1/create?{API}"), &[], None)
        .await
        .unwrap();
    assert_eq!(challenge.status, StatusCode::UNAUTHORIZED);
    let header = challenge.headers["www-authenticate"].to_str().unwrap();
    assert!(header.contains(&format!("/{}\"", c.tenant_id)), "{header}");
    assert!(
        header.contains("resource=\"https://vault.azure.net\""),
        "{header}"
    );

    let created = rest
        .json(
            Method::POST,
            &format!("/keys/k1/create?{API}"),
            Some(&vault_token),
            Some(&json!({"kty": "RSA-HSM", "key_size": 2048})),
        )
        .await
        .unwrap();
    assert_eq!(created.status, StatusCode::OK, "{}", created.json());
    let kid = created.json()["key"]["kid"].as_str().unwrap().to_string();
    assert!(
        kid.starts_with("https://contoso-kv.vault.azure.net/keys/k1/"),
        "{kid}"
    );
    let version = kid.rsplit('/').next().unwrap().to_string();

    // The SDK's spellings: trailing slash for the newest version, double slash for a
    // versionless operation, camelCase operation names from .NET.
    let newest = rest
        .json(
            Method::GET,
            &format!("/keys/k1/?{API}"),
            Some(&vault_token),
            None,
        )
        .await
        .unwrap();
    assert_eq!(newest.json()["key"]["kid"], json!(kid));
    let plain = "c2VjcmV0LWRhdGEtMzItYnl0ZXMtbG9uZy4uLi4uLi4";
    let wrapped = rest
        .json(
            Method::POST,
            &format!("/keys/k1/{version}/wrapKey?{API}"),
            Some(&vault_token),
            Some(&json!({"alg": "RSA-OAEP-256", "value": plain})),
        )
        .await
        .unwrap();
    assert_eq!(wrapped.status, StatusCode::OK, "{}", wrapped.json());
    let wrapped_value = wrapped.json()["value"].as_str().unwrap().to_string();
    let unwrapped = rest
        .json(
            Method::POST,
            &format!("/keys/k1//unwrapkey?{API}"),
            Some(&vault_token),
            Some(&json!({"alg": "RSA-OAEP-256", "value": wrapped_value})),
        )
        .await
        .unwrap();
    assert_eq!(unwrapped.status, StatusCode::OK, "{}", unwrapped.json());
    assert_eq!(unwrapped.json()["value"], json!(plain));
    assert_eq!(unwrapped.json()["kid"], json!(kid));

    let key_ref = |name: &str| kvp::KeyRef {
        vault_name: VAULT.into(),
        key_name: name.into(),
        version: String::new(),
    };
    let unwrap_request = |token: &str| {
        grpc(
            token,
            kvp::KeyOperationRequest {
                key: Some(key_ref("k1")),
                algorithm: "RSA-OAEP-256".into(),
                value: vec![0u8; 256],
            },
        )
    };
    let rest_unwrap = |token: String| {
        let body = json!({"alg": "RSA-OAEP-256", "value": "AAAA"});
        (token, body)
    };

    // A principal without unwrapKey: 403 Forbidden naming it.
    let (t, b) = rest_unwrap(reader_token.clone());
    let refused = rest
        .json(
            Method::POST,
            &format!("/keys/k1//unwrapkey?{API}"),
            Some(&t),
            Some(&b),
        )
        .await
        .unwrap();
    assert_twin(
        &refused,
        kv.unwrap_key(unwrap_request(&reader_token)).await,
        "no permission",
    );

    // An unknown key: 404 KeyNotFound.
    let missing = rest
        .json(
            Method::GET,
            &format!("/keys/nope/?{API}"),
            Some(&vault_token),
            None,
        )
        .await
        .unwrap();
    assert_twin(
        &missing,
        kv.get_key(grpc(&vault_token, key_ref("nope"))).await,
        "unknown key",
    );

    // A forged token: 401, and the challenge comes with it.
    let mut forged = vault_token.clone();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    let (t, b) = rest_unwrap(forged.clone());
    let refused = rest
        .json(
            Method::POST,
            &format!("/keys/k1//unwrapkey?{API}"),
            Some(&t),
            Some(&b),
        )
        .await
        .unwrap();
    assert!(refused.headers.contains_key("www-authenticate"));
    assert_twin(
        &refused,
        kv.unwrap_key(unwrap_request(&forged)).await,
        "forged token",
    );

    // Disabled: unwrap refused with 403 (inner KeyDisabled), the key still readable.
    let disabled = rest
        .json(
            Method::PATCH,
            &format!("/keys/k1/{version}?{API}"),
            Some(&vault_token),
            Some(&json!({"attributes": {"enabled": false}})),
        )
        .await
        .unwrap();
    assert_eq!(disabled.status, StatusCode::OK);
    assert_eq!(disabled.json()["attributes"]["enabled"], json!(false));
    let (t, b) = rest_unwrap(vault_token.clone());
    let refused = rest
        .json(
            Method::POST,
            &format!("/keys/k1//unwrapkey?{API}"),
            Some(&t),
            Some(&b),
        )
        .await
        .unwrap();
    assert_twin(
        &refused,
        kv.unwrap_key(unwrap_request(&vault_token)).await,
        "disabled key",
    );

    // An operation outside key_ops: 403 KeyOperationForbidden.
    let signing = rest
        .json(
            Method::POST,
            &format!("/keys/k2/create?{API}"),
            Some(&vault_token),
            Some(&json!({"kty": "RSA", "key_size": 2048, "key_ops": ["sign", "verify"]})),
        )
        .await
        .unwrap();
    assert_eq!(signing.status, StatusCode::OK, "{}", signing.json());
    let refused = rest
        .json(
            Method::POST,
            &format!("/keys/k2//wrapkey?{API}"),
            Some(&vault_token),
            Some(&json!({"alg": "RSA-OAEP", "value": "AAAA"})),
        )
        .await
        .unwrap();
    let grpc_wrap = kv
        .wrap_key(grpc(
            &vault_token,
            kvp::KeyOperationRequest {
                key: Some(key_ref("k2")),
                algorithm: "RSA-OAEP".into(),
                value: vec![0, 0, 0],
            },
        ))
        .await;
    assert_twin(&refused, grpc_wrap, "operation outside key_ops");

    // Soft delete, read the deleted key, recover; delete again and purge under purge protection.
    let deleted = rest
        .json(
            Method::DELETE,
            &format!("/keys/k2?{API}"),
            Some(&vault_token),
            None,
        )
        .await
        .unwrap();
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.json());
    assert_eq!(
        deleted.json()["recoveryId"],
        json!("https://contoso-kv.vault.azure.net/deletedkeys/k2")
    );
    let purge = rest
        .json(
            Method::DELETE,
            &format!("/deletedkeys/k2?{API}"),
            Some(&vault_token),
            None,
        )
        .await
        .unwrap();
    assert_twin(
        &purge,
        kv.purge_deleted_key(grpc(&vault_token, key_ref("k2")))
            .await,
        "purge under purge protection",
    );
    let recovered = rest
        .json(
            Method::POST,
            &format!("/deletedkeys/k2/recover?{API}"),
            Some(&vault_token),
            None,
        )
        .await
        .unwrap();
    assert_eq!(recovered.status, StatusCode::OK, "{}", recovered.json());

    // An unknown api-version is refused before anything else.
    let old = rest
        .json(
            Method::GET,
            "/keys/k1/?api-version=7.99",
            Some(&vault_token),
            None,
        )
        .await
        .unwrap();
    assert_eq!(old.status, StatusCode::BAD_REQUEST);
    assert_eq!(old.json()["error"]["code"], "BadParameter");

    // Lists: keys without versions, versions with them.
    let keys = rest
        .json(
            Method::GET,
            &format!("/keys?{API}"),
            Some(&vault_token),
            None,
        )
        .await
        .unwrap();
    let kids: Vec<Value> = keys.json()["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert!(
        kids.contains(&json!("https://contoso-kv.vault.azure.net/keys/k1")),
        "{kids:?}"
    );
    door.stop.send_replace(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_wants_the_administrator_and_plain_http_only_connects() {
    let door = start().await;
    let mgmt = door
        .admin_token("https://management.azure.com/.default")
        .await;
    let mut client = door.client("localhost").await;
    let anonymous = client
        .json(Method::GET, "/_cmksim/clock", None, None)
        .await
        .unwrap();
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let clock = client
        .json(Method::GET, "/_cmksim/clock", Some(&mgmt), None)
        .await
        .unwrap();
    assert_eq!(clock.status, StatusCode::OK);
    assert_eq!(clock.json()["timeScale"], json!(1.0));

    let down = client
        .json(
            Method::PUT,
            "/_cmksim/chaos",
            Some(&mgmt),
            Some(&json!({"keyvault": {"mode": "error_rate", "errorRate": 0.5}})),
        )
        .await
        .unwrap();
    assert_eq!(down.status, StatusCode::OK, "{}", down.json());
    assert_eq!(down.json()["keyvault"]["mode"], "error_rate");
    let bad = client
        .json(
            Method::PUT,
            "/_cmksim/chaos",
            Some(&mgmt),
            Some(&json!({"keyvault": {"mode": "sideways"}})),
        )
        .await
        .unwrap();
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // Plain HTTP on the door's port: only CONNECT.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(door.addr).await.unwrap();
    tcp.write_all(b"GET /_cmksim/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("HttpsRequired"), "{answer}");
    door.stop.send_replace(true);
}
