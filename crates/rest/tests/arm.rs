//! The ARM control plane of the door against a real Key Vault and a real storage server, all on
//! 127.0.0.1 port 0 over real gRPC and HTTPS: the CMK set-up of issue 10 (vault, key, access
//! policy for the cluster's identity, cluster create polled to Succeeded, key update, workspace,
//! link, unlink, delete) as azure-mgmt-keyvault and azure-mgmt-loganalytics send it, the
//! `Azure-AsyncOperation` status code of each profile (200 under azure-2020, 202 under
//! azure-2021 and azure-current), a catalogue refusal answered with storage's own text (its gRPC
//! twin), and azure-2021's double-encryption refusal by region.
//!
//! The clock runs at 1800x so that three simulated hours of provisioning take six real seconds;
//! every wait is a bounded polling loop on the door's answers.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use cmksim_proto::keyvault::v1 as kvp;
use cmksim_proto::storage::v1 as stp;
use cmksim_rest::client::{Answer, HttpsClient};
use cmksim_sim::Profile;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::watch;

const SUB: &str = "00000000-0000-0000-0000-0000000000aa";
const RG: &str = "monitoring";
const REGION: &str = "westeurope";
const VAULT: &str = "contoso-kv";
const KV_API: &str = "api-version=2026-05-15";
const LA_API: &str = "api-version=2025-07-01";
/// Simulated seconds per real second.
const TIME_SCALE: f64 = 1800.0;
/// Bound of every wait: rounds of [`WAIT_STEP`].
const WAIT_ROUNDS: u32 = 600;
const WAIT_STEP: Duration = Duration::from_millis(50);

struct World {
    _dir: tempfile::TempDir,
    addr: SocketAddr,
    ca_pem: Vec<u8>,
    credentials: cmksim_rest::Credentials,
    storage: tonic::transport::Channel,
    kv: tonic::transport::Channel,
    _stop: watch::Sender<bool>,
}

/// Key Vault, storage (under `profile`) and the door.
async fn start(profile: &str) -> World {
    let profile = Profile::builtin(profile).expect("a built-in profile");
    let services = common::start_services(profile, TIME_SCALE, false).await;
    World {
        storage: services.storage,
        kv: services.kv,
        _dir: services.dir,
        addr: services.addr,
        ca_pem: services.ca_pem,
        credentials: services.credentials,
        _stop: services.stop,
    }
}

impl World {
    async fn client(&self) -> HttpsClient {
        HttpsClient::connect(self.addr, "localhost", &self.ca_pem)
            .await
            .expect("connect")
    }

    /// The administrator's token for `scope`, from the door's token endpoint.
    async fn token(&self, scope: &str) -> String {
        let c = &self.credentials;
        let form = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
            c.client_id,
            c.client_secret,
            scope.replace(':', "%3A").replace('/', "%2F")
        );
        let answer = self
            .client()
            .await
            .send(
                Method::POST,
                &format!("/{}/oauth2/v2.0/token", c.tenant_id),
                &[("content-type", "application/x-www-form-urlencoded")],
                Some(form.into()),
            )
            .await
            .expect("token request");
        assert_eq!(answer.status, StatusCode::OK);
        answer.json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }
}

fn group_path(provider_path: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{RG}/providers/{provider_path}")
}

/// One ARM client: a connection and the administrator's management token.
struct Arm {
    http: HttpsClient,
    token: String,
}

impl Arm {
    async fn call(&mut self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.http
            .json(method, path, Some(&self.token), body.as_ref())
            .await
            .expect("ARM request")
    }

    /// Follows `Azure-AsyncOperation` (path of the absolute URL) until a terminal status.
    async fn poll(&mut self, accepted: &Answer) -> Value {
        let header = |name: &str| {
            accepted
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let url = header("azure-asyncoperation").expect("Azure-AsyncOperation");
        assert_eq!(header("location").as_deref(), Some(url.as_str()));
        assert_eq!(header("retry-after").as_deref(), Some("1"), "at least 1 s");
        assert!(url.starts_with("https://localhost/subscriptions/"), "{url}");
        let path = url.trim_start_matches("https://localhost").to_string();
        for _ in 0..WAIT_ROUNDS {
            let status = self.call(Method::GET, &path, None).await;
            assert_eq!(status.status, StatusCode::OK, "{:?}", status.json());
            let body = status.json();
            if ["Succeeded", "Failed", "Canceled"].contains(&body["status"].as_str().unwrap_or(""))
            {
                return body;
            }
            tokio::time::sleep(WAIT_STEP).await;
        }
        panic!("operation {path} still running after {WAIT_ROUNDS} rounds");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_cmk_set_up_as_the_sdks_send_it_under_azure_2020() {
    let world = start("azure-2020").await;
    let mut arm = Arm {
        http: world.client().await,
        token: world.token("https://management.azure.com/.default").await,
    };
    let tenant = world.credentials.tenant_id.clone();
    let admin = world.credentials.object_id.clone();

    // ARM's own 400 before anything else.
    let vault_path = group_path(&format!("Microsoft.KeyVault/vaults/{VAULT}"));
    let missing = arm.call(Method::GET, &vault_path, None).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        missing.json()["error"]["code"],
        "MissingApiVersionParameter"
    );

    // The vault, as azure-mgmt-keyvault's begin_create_or_update sends it.
    let vault = arm
        .call(
            Method::PUT,
            &format!("{vault_path}?{KV_API}"),
            Some(json!({
                "location": REGION,
                "properties": {
                    "tenantId": tenant,
                    "sku": {"family": "A", "name": "premium"},
                    "enableSoftDelete": true,
                    "softDeleteRetentionInDays": 7,
                    "enablePurgeProtection": true,
                    "accessPolicies": [{"tenantId": tenant, "objectId": admin,
                        "permissions": {"keys": ["get", "create", "list", "update"]}}],
                },
            })),
        )
        .await;
    assert_eq!(vault.status, StatusCode::CREATED, "{:?}", vault.json());
    let v = vault.json();
    assert_eq!(v["properties"]["provisioningState"], "Succeeded");
    assert_eq!(
        v["properties"]["vaultUri"],
        "https://contoso-kv.vault.azure.net/"
    );
    assert_eq!(v["properties"]["sku"]["name"], "premium");
    assert!(
        vault.headers.get("azure-asyncoperation").is_none(),
        "a vault is final at once"
    );

    // The key, over gRPC with a vault token.
    let vault_token = world.token("https://vault.azure.net/.default").await;
    kvp::key_vault_client::KeyVaultClient::new(world.kv.clone())
        .create_key(cmksim_rest::auth::forward(
            Some(&vault_token),
            kvp::CreateKeyRequest {
                vault_name: VAULT.into(),
                key_name: "logs-cmk".into(),
                kty: "RSA".into(),
                key_size: 2048,
                ..Default::default()
            },
        ))
        .await
        .expect("create the key");

    // The cluster, as Cluster(location, identity, sku) serialises: no `properties` at all.
    let cluster_path = group_path("Microsoft.OperationalInsights/clusters/contosologs");
    let created = arm
        .call(
            Method::PUT,
            &format!("{cluster_path}?{LA_API}"),
            Some(json!({
                "location": REGION,
                "identity": {"type": "SystemAssigned"},
                "sku": {"name": "CapacityReservation", "capacity": 1000},
            })),
        )
        .await;
    assert_eq!(
        created.status,
        StatusCode::OK,
        "seed 000: 200 and the header; {:?}",
        created.json()
    );
    let c = created.json();
    assert_eq!(c["properties"]["provisioningState"], "ProvisioningAccount");
    assert_eq!(c["identity"]["tenantId"], json!(tenant));
    let principal = c["identity"]["principalId"]
        .as_str()
        .expect("principalId")
        .to_string();
    assert!(!principal.is_empty());
    assert_eq!(arm.poll(&created).await["status"], "Succeeded");
    let got = arm
        .call(Method::GET, &format!("{cluster_path}?{LA_API}"), None)
        .await;
    assert_eq!(got.json()["properties"]["provisioningState"], "Succeeded");

    // Get, Wrap Key and Unwrap Key for the cluster's identity (update_access_policy "add").
    let policy = arm
        .call(
            Method::PUT,
            &format!("{vault_path}/accessPolicies/add?{KV_API}"),
            Some(
                json!({"properties": {"accessPolicies": [{"tenantId": tenant, "objectId": principal,
                "permissions": {"keys": ["get", "wrapKey", "unwrapKey"]}}]}}),
            ),
        )
        .await;
    assert_eq!(policy.status, StatusCode::OK, "{:?}", policy.json());
    assert_eq!(policy.json()["name"], "add");
    let v = arm
        .call(Method::GET, &format!("{vault_path}?{KV_API}"), None)
        .await
        .json();
    assert_eq!(
        v["properties"]["accessPolicies"].as_array().map(Vec::len),
        Some(2)
    );

    // The key update, naming the vault by the door's own address.
    let patched = arm
        .call(
            Method::PATCH,
            &format!("{cluster_path}?{LA_API}"),
            Some(json!({"properties": {"keyVaultProperties": {
                "keyVaultUri": format!("https://{VAULT}.localhost:{}/", world.addr.port()),
                "keyName": "logs-cmk", "keyVersion": ""}}})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.json());
    let done = arm.poll(&patched).await;
    assert_eq!(done["status"], "Succeeded", "{done}");
    let got = arm
        .call(Method::GET, &format!("{cluster_path}?{LA_API}"), None)
        .await
        .json();
    // The vault the door named by its own address is the vault storage knows (which may
    // answer it with a trailing slash, as Key Vault's own `vaultUri` has).
    assert_eq!(
        got["properties"]["keyVaultProperties"]["keyVaultUri"]
            .as_str()
            .map(|uri| uri.trim_end_matches('/')),
        Some("https://contoso-kv.vault.azure.net")
    );

    // A workspace and its link.
    let ws_path = group_path("Microsoft.OperationalInsights/workspaces/ws-sec");
    let ws = arm
        .call(
            Method::PUT,
            &format!("{ws_path}?{LA_API}"),
            Some(json!({"location": REGION, "properties": {"sku": {"name": "PerGB2018"}, "retentionInDays": 30}})),
        )
        .await;
    assert_eq!(ws.status, StatusCode::CREATED, "{:?}", ws.json());
    let customer_id = ws.json()["properties"]["customerId"]
        .as_str()
        .expect("customerId")
        .to_string();
    assert_eq!(ws.json()["properties"]["retentionInDays"], 30);
    let cluster_id = got["id"].as_str().expect("id").to_string();
    let link_path = format!("{ws_path}/linkedServices/cluster?{LA_API}");
    let linking = arm
        .call(
            Method::PUT,
            &link_path,
            Some(json!({"properties": {"writeAccessResourceId": cluster_id}})),
        )
        .await;
    assert_eq!(linking.status, StatusCode::OK, "{:?}", linking.json());
    assert_eq!(
        linking.json()["properties"]["provisioningState"],
        "Updating"
    );
    assert_eq!(arm.poll(&linking).await["status"], "Succeeded");
    let link = arm.call(Method::GET, &link_path, None).await;
    assert_eq!(link.json()["properties"]["provisioningState"], "Succeeded");
    assert_eq!(
        link.json()["properties"]["writeAccessResourceId"],
        json!(cluster_id)
    );
    let got = arm
        .call(Method::GET, &format!("{cluster_path}?{LA_API}"), None)
        .await
        .json();
    assert_eq!(
        got["properties"]["associatedWorkspaces"][0]["workspaceId"],
        json!(customer_id)
    );
    let ws = arm
        .call(Method::GET, &format!("{ws_path}?{LA_API}"), None)
        .await
        .json();
    assert_eq!(
        ws["properties"]["features"]["clusterResourceId"],
        json!(cluster_id)
    );

    // Unlink, then delete the cluster.
    let unlinking = arm.call(Method::DELETE, &link_path, None).await;
    assert_eq!(unlinking.status, StatusCode::OK, "{:?}", unlinking.json());
    assert_eq!(
        unlinking.json()["properties"]["provisioningState"],
        "Deleting"
    );
    assert_eq!(arm.poll(&unlinking).await["status"], "Succeeded");
    let gone = arm.call(Method::GET, &link_path, None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let deleted = arm
        .call(Method::DELETE, &format!("{cluster_path}?{LA_API}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.json());
    let after = arm
        .call(Method::GET, &format!("{cluster_path}?{LA_API}"), None)
        .await;
    assert_eq!(after.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_current_accepts_with_202_and_refusals_are_storages_own_text() {
    let world = start("azure-current").await;
    let mut arm = Arm {
        http: world.client().await,
        token: world.token("https://management.azure.com/.default").await,
    };
    let path = group_path("Microsoft.OperationalInsights/clusters/cl202");
    let created = arm
        .call(
            Method::PUT,
            &format!("{path}?{LA_API}"),
            Some(
                json!({"location": REGION, "identity": {"type": "SystemAssigned"},
                        "sku": {"name": "CapacityReservation", "capacity": 100}}),
            ),
        )
        .await;
    assert_eq!(
        created.status,
        StatusCode::ACCEPTED,
        "seed 001: 202; {:?}",
        created.json()
    );
    assert!(created.headers.get("azure-asyncoperation").is_some());

    // A refusal of the catalogue: the REST answer is the gRPC answer, status, code and message.
    let bad_sku = json!({"location": REGION, "identity": {"type": "SystemAssigned"},
                         "sku": {"name": "PerGB2018", "capacity": 100}});
    let rest = arm
        .call(
            Method::PUT,
            &format!(
                "{}?{LA_API}",
                group_path("Microsoft.OperationalInsights/clusters/clbad")
            ),
            Some(bad_sku),
        )
        .await;
    let grpc = stp::clusters_client::ClustersClient::new(world.storage.clone())
        .create_cluster(stp::CreateClusterRequest {
            cluster: Some(stp::ClusterRef {
                subscription_id: SUB.into(),
                resource_group: RG.into(),
                cluster_name: "clbad".into(),
            }),
            location: REGION.into(),
            tenant_id: world.credentials.tenant_id.clone(),
            sku: Some(stp::Sku {
                name: "PerGB2018".into(),
                capacity_gb_per_day: 100,
            }),
            identity_type: "SystemAssigned".into(),
            ..Default::default()
        })
        .await
        .expect_err("a SKU that is not capacityReservation");
    let azure = cmksim_keyvault::azure_error(&grpc).expect("an Azure error");
    assert_eq!(u32::from(rest.status.as_u16()), azure.http_status);
    assert_eq!(rest.json()["error"]["code"], json!(azure.code));
    assert_eq!(rest.json()["error"]["message"], json!(azure.message));
    assert_eq!(
        azure.message,
        "Capacity was provided but SKU is not capacityReservation. Set SKU name to \
         capacityReservation."
    );

    // Storage checks no token: the door does.
    let anonymous = world
        .client()
        .await
        .json(Method::GET, &format!("{path}?{LA_API}"), None, None)
        .await
        .expect("request");
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    // A body that is no JSON is ARM's 400.
    let garbled = world
        .client()
        .await
        .send(
            Method::PATCH,
            &format!("{path}?{LA_API}"),
            &[("authorization", &format!("Bearer {}", arm.token))],
            Some("{\"sku\": ".into()),
        )
        .await
        .expect("request");
    assert_eq!(garbled.status, StatusCode::BAD_REQUEST);
    assert_eq!(garbled.json()["error"]["code"], "InvalidRequestContent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_2021_accepts_with_202_and_refuses_double_encryption_where_its_profile_says() {
    let world = start("azure-2021").await;
    let mut arm = Arm {
        http: world.client().await,
        token: world.token("https://management.azure.com/.default").await,
    };
    let body = |location: &str, double: Option<bool>| {
        let mut body = json!({"location": location, "identity": {"type": "SystemAssigned"},
                              "sku": {"name": "CapacityReservation", "capacity": 1000}});
        if let Some(double) = double {
            body["properties"] = json!({ "isDoubleEncryptionEnabled": double });
        }
        body
    };
    let put = |name: &str| {
        format!(
            "{}?{LA_API}",
            group_path(&format!("Microsoft.OperationalInsights/clusters/{name}"))
        )
    };
    // seed 001: "Should be 202 (Accepted) and a header."
    let created = arm
        .call(Method::PUT, &put("cl2021"), Some(body(REGION, None)))
        .await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{:?}", created.json());
    assert!(created.headers.get("azure-asyncoperation").is_some());

    // seed 001: "<region> doesn’t support Double Encryption for clusters.", in a region the
    // profile lists, with double encryption left at its default.
    let refused = arm
        .call(
            Method::PUT,
            &put("cldouble"),
            Some(body("westcentralus", None)),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{:?}",
        refused.json()
    );
    assert_eq!(
        refused.json()["error"]["message"],
        json!("westcentralus doesn’t support Double Encryption for clusters.")
    );
    // The seed's remedy: "isDoubleEncryptionEnabled": false.
    let single = arm
        .call(
            Method::PUT,
            &put("cldouble"),
            Some(body("westcentralus", Some(false))),
        )
        .await;
    assert_eq!(single.status, StatusCode::ACCEPTED, "{:?}", single.json());
    let got = arm.call(Method::GET, &put("cldouble"), None).await;
    assert_eq!(
        got.json()["properties"]["isDoubleEncryptionEnabled"],
        json!(false)
    );
    // seed 001: "Double encryption setting can not be changed after the cluster has been
    // created." A PATCH turning it on is refused by storage, and the cluster keeps it off.
    let patched = arm
        .call(
            Method::PATCH,
            &put("cldouble"),
            Some(json!({ "properties": { "isDoubleEncryptionEnabled": true } })),
        )
        .await;
    assert_eq!(
        patched.status,
        StatusCode::BAD_REQUEST,
        "{:?}",
        patched.json()
    );
    assert_eq!(patched.json()["error"]["code"], json!("InvalidParameter"));
    assert_eq!(
        patched.json()["error"]["message"],
        json!("Double encryption setting can not be changed after the cluster has been created.")
    );
    let got = arm.call(Method::GET, &put("cldouble"), None).await;
    assert_eq!(
        got.json()["properties"]["isDoubleEncryptionEnabled"],
        json!(false)
    );
}
