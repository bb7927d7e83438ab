//! The harness the door's integration tests share (`door.rs`, `twins.rs`): a real Key Vault
//! server and the HTTPS front door in front of it, both on loopback port 0, and the twin
//! assertion (the REST answer must be the gRPC refusal).
//!
//! Each test file is its own crate and uses a part of this module, hence the `dead_code` allow.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use cmksim_identity::IdentityAuthority;
use cmksim_keyvault::{KeyVaultConfig, KeyVaultServer};
use cmksim_rest::client::{Answer, HttpsClient};
use cmksim_rest::{RestConfig, RestServer};
use cmksim_sim::net::Network;
use cmksim_sim::{Clock, EventLog, SeedTree, SimTime};
use http::{Method, StatusCode};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::Channel;

/// The vault `door.rs` creates, and its data-plane host.
pub const VAULT: &str = "contoso-kv";
pub const VAULT_HOST: &str = "contoso-kv.vault.azure.net";
/// The data-plane api-version the tests send.
pub const API: &str = "api-version=7.6";

/// A running Key Vault and the door in front of it; `stop` ends both.
pub struct Door {
    pub _dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub ca_pem: Vec<u8>,
    pub credentials: cmksim_rest::Credentials,
    pub kv: Channel,
    /// The identity authority Key Vault hosts, kept so that a test can sign tokens an honest
    /// issuer would not (expired, another tenant's issuer) as the gRPC tests do.
    pub identity: Arc<Mutex<IdentityAuthority>>,
    /// The simulated clock both servers run on (key validity and token times are on it).
    pub clock: Clock,
    pub stop: watch::Sender<bool>,
}

fn self_signed(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "*.vault.azure.net".to_string(),
    ];
    let params = rcgen::CertificateParams::new(names).expect("names");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("certificate");
    let cert_pem = cert.pem().into_bytes();
    std::fs::write(dir.join("cert.pem"), &cert_pem).expect("write cert");
    (cert_pem, key.serialize_pem().into_bytes())
}

async fn until(mut rx: watch::Receiver<bool>) {
    cmksim_rest::listener::stopped(&mut rx).await;
}

/// Key Vault (with the identity authority) and the door, each on 127.0.0.1 port 0.
pub async fn start() -> Door {
    cmksim_sim::net::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Clock::tokio(SimTime::DEFAULT_EPOCH, 1.0);
    let (stop, stop_rx) = watch::channel(false);
    let kv_server = KeyVaultServer::open(
        &dir.path().join("kv"),
        clock.clone(),
        SeedTree::new(3),
        EventLog::default(),
        KeyVaultConfig {
            os_key_material: true,
            without_hsm: false,
        },
    )
    .expect("open Key Vault");
    let identity = kv_server.identity();
    let kv_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let kv_addr = kv_listener.local_addr().expect("addr");
    let kv_stop = until(stop_rx.clone());
    tokio::spawn(async move {
        kv_server
            .serve_with_incoming(cmksim_sim::net::tcp_incoming(kv_listener), kv_stop)
            .await
            .expect("Key Vault serves");
    });
    let (cert_pem, key_pem) = self_signed(dir.path());
    let tls = cmksim_sim::net::tls_server_config(&cert_pem, &key_pem).expect("tls");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let kv_url = format!("http://{kv_addr}");
    // Storage and ingest are not started: their channels are lazy, and no test here uses them.
    let config = RestConfig {
        keyvault_url: kv_url.clone(),
        storage_url: "http://127.0.0.1:9".into(),
        ingest_url: "http://127.0.0.1:9".into(),
        network: Network::Tcp,
        clock: clock.clone(),
        data_dir: dir.path().to_path_buf(),
        ca_file: dir.path().join("cert.pem"),
        seed: 3,
        admin_credentials: cmksim_identity::authority::admin_credentials_path(
            &dir.path().join("kv").join("identity"),
        ),
    };
    let server = RestServer::open(config, format!("https://{addr}"))
        .await
        .expect("open the door");
    assert!(
        server.first_start(),
        "an empty data directory is a first start"
    );
    let credentials = server.credentials().clone();
    tokio::spawn(server.serve(listener, tls, until(stop_rx)));
    let kv = Network::Tcp
        .channel(&kv_url, cmksim_sim::net::ClientTimeouts::default())
        .expect("channel");
    Door {
        _dir: dir,
        addr,
        ca_pem: cert_pem,
        credentials,
        kv,
        identity,
        clock,
        stop,
    }
}

impl Door {
    pub async fn client(&self, host: &str) -> HttpsClient {
        HttpsClient::connect(self.addr, host, &self.ca_pem)
            .await
            .expect("connect")
    }

    /// A token from the door's token endpoint, as MSAL asks for one.
    pub async fn token(&self, client_id: &str, secret: &str, scope: &str) -> Answer {
        let mut client = self.client("localhost").await;
        let form = format!(
            "grant_type=client_credentials&client_id={client_id}&client_secret={secret}&scope={}&client_info=1",
            scope.replace(':', "%3A").replace('/', "%2F")
        );
        client
            .send(
                Method::POST,
                &format!("/{}/oauth2/v2.0/token", self.credentials.tenant_id),
                &[("content-type", "application/x-www-form-urlencoded")],
                Some(Bytes::from(form)),
            )
            .await
            .expect("token request")
    }

    pub async fn admin_token(&self, scope: &str) -> String {
        let c = &self.credentials;
        let answer = self.token(&c.client_id, &c.client_secret, scope).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json());
        answer.json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }
}

pub fn grpc<T>(token: &str, message: T) -> tonic::Request<T> {
    cmksim_rest::auth::forward(Some(token), message)
}

/// The REST answer must be the gRPC refusal: same HTTP status, code, message and inner code
/// (none on both sides when the service gives none), and the code in `x-ms-error-code`.
pub fn assert_twin(rest: &Answer, grpc: Result<impl std::fmt::Debug, tonic::Status>, what: &str) {
    let status = grpc.expect_err(what);
    let azure = cmksim_keyvault::azure_error(&status).expect("an Azure error in the status");
    let body = rest.json();
    assert_eq!(
        u32::from(rest.status.as_u16()),
        azure.http_status,
        "{what}: {body}"
    );
    assert_eq!(body["error"]["code"], json!(azure.code), "{what}");
    assert_eq!(body["error"]["message"], json!(azure.message), "{what}");
    let inner = if azure.inner_code.is_empty() {
        serde_json::Value::Null
    } else {
        json!(azure.inner_code)
    };
    assert_eq!(body["error"]["innererror"]["code"], inner, "{what}");
    assert_eq!(
        rest.headers
            .get("x-ms-error-code")
            .and_then(|v| v.to_str().ok()),
        Some(azure.code.as_str()),
        "{what}"
    );
}
