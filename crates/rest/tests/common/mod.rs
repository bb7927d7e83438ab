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
use cmksim_sim::{Clock, EventLog, Profile, SeedTree, SimTime};
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

/// A self-signed certificate for the door's names, written to `dir/cert.pem`: (cert, key) PEM.
pub fn self_signed(dir: &Path) -> (Vec<u8>, Vec<u8>) {
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

/// Completes when the servers are told to stop.
pub async fn until(mut rx: watch::Receiver<bool>) {
    cmksim_rest::listener::stopped(&mut rx).await;
}

/// Key Vault (hosting the identity authority) in `dir/kv` on 127.0.0.1 port 0 until `stop`:
/// its URL and its authority.
async fn serve_keyvault(
    dir: &Path,
    clock: &Clock,
    seed: u64,
    events: &EventLog,
    stop: &watch::Receiver<bool>,
) -> (String, Arc<Mutex<IdentityAuthority>>) {
    let kv_server = KeyVaultServer::open(
        &dir.join("kv"),
        clock.clone(),
        SeedTree::new(seed),
        events.clone(),
        KeyVaultConfig {
            os_key_material: true,
            without_hsm: false,
            key_material_seed: None,
        },
    )
    .expect("open Key Vault");
    let identity = kv_server.identity();
    let kv_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let kv_url = format!("http://{}", kv_listener.local_addr().expect("addr"));
    let kv_stop = until(stop.clone());
    tokio::spawn(async move {
        kv_server
            .serve_with_incoming(cmksim_sim::net::tcp_incoming(kv_listener), kv_stop)
            .await
            .expect("Key Vault serves");
    });
    (kv_url, identity)
}

/// What the door talks to: Key Vault's, storage's and ingest's URLs.
struct Upstreams {
    keyvault: String,
    storage: String,
    ingest: String,
}

/// The door as it serves: its address, its certificate (PEM), its credentials, and whether it
/// found its data directory empty.
struct Serving {
    addr: SocketAddr,
    ca_pem: Vec<u8>,
    credentials: cmksim_rest::Credentials,
    first_start: bool,
}

/// The door with its data in `dir`, on 127.0.0.1 port 0 until `stop`.
async fn serve_door(
    dir: &Path,
    clock: &Clock,
    seed: u64,
    upstreams: Upstreams,
    stop: &watch::Receiver<bool>,
) -> Serving {
    let (cert_pem, key_pem) = self_signed(dir);
    let tls = cmksim_sim::net::tls_server_config(&cert_pem, &key_pem).expect("tls");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = RestConfig {
        keyvault_url: upstreams.keyvault,
        storage_url: upstreams.storage,
        ingest_url: upstreams.ingest,
        network: Network::Tcp,
        clock: clock.clone(),
        data_dir: dir.to_path_buf(),
        ca_file: dir.join("cert.pem"),
        seed,
        admin_credentials: cmksim_identity::authority::admin_credentials_path(
            &dir.join("kv").join("identity"),
        ),
    };
    let server = RestServer::open(config, format!("https://{addr}"))
        .await
        .expect("open the door");
    let (first_start, credentials) = (server.first_start(), server.credentials().clone());
    tokio::spawn(server.serve(listener, tls, until(stop.clone())));
    Serving {
        addr,
        ca_pem: cert_pem,
        credentials,
        first_start,
    }
}

/// A lazy channel to `url`.
fn channel(url: &str) -> Channel {
    Network::Tcp
        .channel(url, cmksim_sim::net::ClientTimeouts::default())
        .expect("channel")
}

/// Key Vault (with the identity authority) and the door, each on 127.0.0.1 port 0.
pub async fn start() -> Door {
    cmksim_sim::net::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Clock::tokio(SimTime::DEFAULT_EPOCH, 1.0);
    let (stop, stop_rx) = watch::channel(false);
    let (kv_url, identity) =
        serve_keyvault(dir.path(), &clock, 3, &EventLog::default(), &stop_rx).await;
    // Storage and ingest are not started: their channels are lazy, and no test here uses them.
    let nowhere = "http://127.0.0.1:9".to_string();
    let upstreams = Upstreams {
        keyvault: kv_url.clone(),
        storage: nowhere.clone(),
        ingest: nowhere,
    };
    let door = serve_door(dir.path(), &clock, 3, upstreams, &stop_rx).await;
    assert!(door.first_start, "an empty data directory is a first start");
    Door {
        _dir: dir,
        addr: door.addr,
        ca_pem: door.ca_pem,
        credentials: door.credentials,
        kv: channel(&kv_url),
        identity,
        clock,
        stop,
    }
}

/// Key Vault, storage under a profile, an ingest front end when asked, and the door in front of
/// them, each on 127.0.0.1 port 0, on one clock and one event log (`arm.rs`,
/// `lockbox_query.rs`). Without ingest the door's ingest channel points nowhere (it is lazy).
pub struct Services {
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub ca_pem: Vec<u8>,
    pub credentials: cmksim_rest::Credentials,
    pub kv: Channel,
    pub storage: Channel,
    pub clock: Clock,
    pub events: EventLog,
    pub stop: watch::Sender<bool>,
}

/// Starts [`Services`]: storage under `profile`, the clock at `time_scale` simulated seconds
/// per real second from [`SimTime::DEFAULT_EPOCH`].
pub async fn start_services(profile: Profile, time_scale: f64, with_ingest: bool) -> Services {
    cmksim_sim::net::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Clock::tokio(SimTime::DEFAULT_EPOCH, time_scale);
    let events = EventLog::default();
    let (stop, stop_rx) = watch::channel(false);
    let (kv_url, authority) = serve_keyvault(dir.path(), &clock, 5, &events, &stop_rx).await;

    let storage_config = cmksim_storage::StorageConfig::new(
        dir.path().join("storage"),
        clock.clone(),
        SeedTree::new(6),
        events.clone(),
        profile.clone(),
        Network::Tcp,
        &kv_url,
    )
    .with_principal_of(&authority)
    .expect("cluster storage's principal");
    let storage_server = cmksim_storage::StorageServer::open(storage_config).expect("open storage");
    let storage_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let storage_url = format!("http://{}", storage_listener.local_addr().expect("addr"));
    let storage_stop = until(stop_rx.clone());
    tokio::spawn(async move {
        storage_server
            .serve_with_incoming(
                cmksim_sim::net::tcp_incoming(storage_listener),
                storage_stop,
            )
            .await
            .expect("storage serves");
    });

    let ingest_url = if with_ingest {
        let ingest =
            cmksim_ingest::IngestServer::new(clock.clone(), events.clone(), profile, &storage_url)
                .expect("ingest");
        let ingest_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let ingest_url = format!("http://{}", ingest_listener.local_addr().expect("addr"));
        let ingest_stop = until(stop_rx.clone());
        tokio::spawn(async move {
            ingest
                .serve_with_incoming(cmksim_sim::net::tcp_incoming(ingest_listener), ingest_stop)
                .await
                .expect("ingest serves");
        });
        ingest_url
    } else {
        // Not started: the door's channel is lazy.
        "http://127.0.0.1:9".to_string()
    };

    let upstreams = Upstreams {
        keyvault: kv_url.clone(),
        storage: storage_url.clone(),
        ingest: ingest_url,
    };
    let door = serve_door(dir.path(), &clock, 5, upstreams, &stop_rx).await;
    Services {
        kv: channel(&kv_url),
        storage: channel(&storage_url),
        dir,
        addr: door.addr,
        ca_pem: door.ca_pem,
        credentials: door.credentials,
        clock,
        events,
        stop,
    }
}

impl Services {
    /// The identity authority's bootstrap administrator's credentials file.
    pub fn admin_file(&self) -> std::path::PathBuf {
        cmksim_identity::authority::admin_credentials_path(
            &self.dir.path().join("kv").join("identity"),
        )
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
