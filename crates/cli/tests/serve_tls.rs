//! `cmksim serve --tls` as a user meets it: `serve all --tls` with its self-signed certificate
//! (health checks that trust it, a plain-text client and untrusting clients refused without
//! stopping the server, gRPC through a `Network::Tls` channel, the same certificate after a
//! restart), the three services as separate TLS processes wired with `--tls-ca` and a record
//! ingested through the whole chain, and bad TLS input refused with exit status 2 before
//! anything listens. Real processes; every wait is bounded; nothing asserts on timing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cmksim_proto::common::v1 as cp;
use cmksim_proto::identity::v1 as idp;
use cmksim_proto::ingest::v1 as ip;
use cmksim_proto::storage::v1 as sp;
use cmksim_sim::net::{ClientTimeouts, Network, TlsClient};
use tonic::transport::Channel;

mod common;
use common::world::{build_world, poll, sim_now_ms, WorldNames};
use common::{now_unix_ms, Serving, BIN, TIME_SCALE};

const NAMES: WorldNames = WorldNames {
    sub: "00000000-0000-0000-0000-0000000000c2",
    rg: "tls",
    region: "westeurope",
    vault: "tlsvault",
    key: "cmk",
    cluster: "tlscluster",
    workspace: "tlsworkspace",
};
/// Fast control-plane operations, so that setup takes well under a second of real time.
const PROFILE_OVERRIDES: [&str; 3] = [
    "cluster.provisioning_duration=2m",
    "cluster.key_update_duration=1m",
    "cluster.link_duration=2m",
];

// ---- processes ---------------------------------------------------------------------------

/// `cmksim ARGS…` to completion, without the developer's `CMKSIM_*` settings.
fn cmksim(args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("CMKSIM_") {
            command.env_remove(key);
        }
    }
    command.env("RUST_LOG", "warn");
    command.output().expect("run cmksim")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// A channel over TLS trusting the PEM file `ca`.
fn tls_channel(url: &str, ca: &Path) -> Channel {
    let trust = TlsClient::trusting_file(ca).expect("the CA file");
    Network::Tls(Arc::new(trust))
        .channel(
            url,
            ClientTimeouts {
                connect_timeout: Duration::from_secs(5),
                request_timeout: Duration::from_secs(10),
                keepalive_interval: Duration::from_secs(10),
            },
        )
        .expect("an https endpoint")
}

/// Another self-signed certificate (one the servers were not given), as a PEM file.
fn stranger_cert(dir: &Path) -> PathBuf {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let path = dir.join("stranger.pem");
    std::fs::write(&path, made.cert.pem()).unwrap();
    path
}

/// `message` carrying the management token of the identity administrator of the `serve all`
/// whose data directory is `data` (the identity service's administrative calls need it).
async fn as_admin<T>(kv: Channel, data: &Path, message: T) -> tonic::Request<T> {
    let admin =
        cmksim_identity::AdminCredentials::load(&common::admin_file(&data.join("keyvault")))
            .expect("the administrator's credentials file");
    let token = idp::identity_client::IdentityClient::new(kv)
        .issue_token(idp::IssueTokenRequest {
            object_id: admin.object_id,
            secret: admin.client_secret,
            audience: "https://management.azure.com".into(),
            lifetime_seconds: 0,
        })
        .await
        .expect("the administrator's token")
        .into_inner()
        .token;
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

// ---- serve all --tls ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_all_tls_trusts_its_own_certificate_and_keeps_it_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // TLS is what this test is about: it calls storage without tokens.
    let args = [
        "all",
        "--tls",
        "--allow-anonymous",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &path_str(&data),
        "--time-scale",
        "60",
    ];
    let services = ["keyvault", "storage", "ingest"];
    let serving = tokio::task::block_in_place(|| {
        let announced = ["keyvault", "storage", "ingest", "sentinel"];
        Serving::start(&args, &announced, dir.path().join("all.log"))
    });
    let cert = data.join("tls/cert.pem");
    let ca = path_str(&cert);
    let cert_bytes = std::fs::read(&cert).expect("serve all --tls wrote its certificate");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("tls/key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "key.pem mode {mode:o}");
    }

    tokio::task::block_in_place(|| {
        for service in services {
            let url = serving.url(service);
            assert!(url.starts_with("https://127.0.0.1:"), "{url}");
            // (a) trusting the certificate: SERVING.
            let out = cmksim(&["health", url, "--tls-ca", &ca]);
            assert!(out.status.success(), "{service}: {}", text(&out.stdout));
        }
        let kv = serving.url("keyvault");
        // (b) plain text to the TLS port fails.
        let plain = kv.replacen("https://", "http://", 1);
        let out = cmksim(&["health", &plain, "--timeout-ms", "5000"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
        // (c) without the CA, or with another certificate, the server is not trusted.
        let out = cmksim(&["health", kv, "--timeout-ms", "5000"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
        assert!(
            text(&out.stdout).contains("certificate"),
            "{}",
            text(&out.stdout)
        );
        let stranger = path_str(&stranger_cert(dir.path()));
        let out = cmksim(&["health", kv, "--tls-ca", &stranger, "--timeout-ms", "5000"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    });

    // The refused handshakes did not stop the server: gRPC over TLS still works.
    let kv = tls_channel(serving.url("keyvault"), &cert);
    let mut identity = idp::identity_client::IdentityClient::new(kv.clone());
    let request = idp::CreateTenantRequest {
        name: "fabrikam".into(),
        tenant_id: String::new(),
    };
    let tenant = identity
        .create_tenant(as_admin(kv, &data, request).await)
        .await
        .expect("create a tenant over TLS")
        .into_inner()
        .tenant_id;
    assert!(!tenant.is_empty());
    // The services reach each other over TLS, trusting the same certificate: storage →
    // identity authority (a cluster's managed identity is made there), ingest → storage (an
    // unknown workspace is NotFound, as storage says, not Unavailable).
    let created =
        sp::clusters_client::ClustersClient::new(tls_channel(serving.url("storage"), &cert))
            .create_cluster(cmksim_setup::cluster_request(
                NAMES.cluster_ref(),
                NAMES.region,
                &tenant,
            ))
            .await
            .expect("create a cluster: storage → identity over TLS")
            .into_inner();
    assert!(!created
        .cluster
        .unwrap()
        .identity
        .unwrap()
        .principal_id
        .is_empty());
    let unknown =
        ip::ingestion_client::IngestionClient::new(tls_channel(serving.url("ingest"), &cert))
            .ingest(one_record(now_unix_ms()))
            .await
            .expect_err("no such workspace");
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown:?}");
    // Sentinel registers the tenant's Cosmos DB principal in its own name, which the identity
    // service requires even with --allow-anonymous (serve all made Sentinel's principal).
    let cosmos = cmksim_proto::sentinel::v1::sentinel_client::SentinelClient::new(tls_channel(
        serving.url("sentinel"),
        &cert,
    ))
    .get_cosmos_db_principal(cmksim_proto::sentinel::v1::CosmosDbPrincipalRequest {
        tenant_id: tenant.clone(),
    })
    .await
    .expect("Sentinel registers the tenant's Cosmos DB principal")
    .into_inner();
    assert_eq!(cosmos.app_id, cmksim_identity::directory::COSMOS_DB_APP_ID);

    // (d) A restart on the same directory keeps the certificate: old clients still trust it.
    tokio::task::block_in_place(|| serving.terminate());
    let again = tokio::task::block_in_place(|| {
        Serving::start(&args, &services, dir.path().join("all.log"))
    });
    assert_eq!(
        std::fs::read(&cert).unwrap(),
        cert_bytes,
        "same certificate"
    );
    tokio::task::block_in_place(|| {
        let out = cmksim(&["health", again.url("storage"), "--tls-ca", &ca]);
        assert!(out.status.success(), "{}", text(&out.stdout));
    });
    let kv = tls_channel(again.url("keyvault"), &cert);
    let mut identity = idp::identity_client::IdentityClient::new(kv.clone());
    let request = idp::CreateTenantRequest {
        name: "northwind".into(),
        tenant_id: String::new(),
    };
    identity
        .create_tenant(as_admin(kv, &data, request).await)
        .await
        .expect("create a tenant over TLS after the restart");
    tokio::task::block_in_place(|| again.terminate());
}

// ---- three processes, wired with --tls-ca --------------------------------------------------

fn one_record(epoch_ms: i64) -> ip::IngestRequest {
    let sim_now = sim_now_ms(epoch_ms);
    ip::IngestRequest {
        workspace_id: NAMES.workspace_id(),
        table: "Heartbeat".into(),
        records: vec![ip::Record {
            // A little in the past, so that clock rounding never puts it in the future.
            time_generated: Some(cp::SimTime {
                unix_ms: sim_now - 60_000,
            }),
            columns: vec![ip::Column {
                name: "Computer".into(),
                value: Some(ip::Value {
                    kind: Some(ip::value::Kind::StringValue("tls-1".into())),
                }),
            }],
        }],
        declare_columns: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tls_processes_wired_with_tls_ca_carry_a_record_through_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let epoch_ms = now_unix_ms();
    let epoch = epoch_ms.to_string();
    let scale = TIME_SCALE.to_string();
    let profile: Vec<&str> = PROFILE_OVERRIDES
        .iter()
        .flat_map(|o| ["--profile-override", *o])
        .collect();
    let (kv_data, st_data, in_tls) = (
        dir.path().join("kv"),
        dir.path().join("storage"),
        dir.path().join("ingest-tls"),
    );
    let (kv_ca, st_ca, in_ca) = (
        kv_data.join("tls/cert.pem"),
        st_data.join("tls/cert.pem"),
        in_tls.join("cert.pem"),
    );
    let common = ["--time-scale", &scale, "--epoch", &epoch];
    let (keyvault, storage, ingest) = tokio::task::block_in_place(|| {
        let kv_dir = path_str(&kv_data);
        let mut args = vec!["keyvault", "--tls", "--listen", "127.0.0.1:0"];
        args.extend(["--data-dir", &kv_dir]);
        args.extend(common);
        let keyvault = Serving::start(&args, &["keyvault"], dir.path().join("kv.log"));

        let (st_dir, kv_ca) = (path_str(&st_data), path_str(&kv_ca));
        let mut args = vec!["storage", "--tls", "--listen", "127.0.0.1:0"];
        args.extend(["--data-dir", &st_dir, "--tls-san", "storage.test"]);
        args.extend(["--keyvault", keyvault.url("keyvault"), "--tls-ca", &kv_ca]);
        // Tokens are not what this test is about (serve all's part runs --allow-anonymous too);
        // ingest's one --tls-ca could not reach Key Vault's identity service anyway. Storage
        // still makes its own principal (it creates the clusters' managed identities).
        args.push("--allow-anonymous");
        let admin = path_str(&common::admin_file(&kv_data));
        args.extend(["--admin-credentials", &admin]);
        args.extend(common);
        args.extend(&profile);
        let storage = Serving::start(&args, &["storage"], dir.path().join("storage.log"));

        let (in_dir, st_ca) = (path_str(&in_tls), path_str(&st_ca));
        let mut args = vec!["ingest", "--tls", "--listen", "127.0.0.1:0"];
        args.extend(["--tls-dir", &in_dir]);
        args.extend(["--storage", storage.url("storage"), "--tls-ca", &st_ca]);
        args.push("--allow-anonymous");
        args.extend(common);
        args.extend(&profile);
        let ingest = Serving::start(&args, &["ingest"], dir.path().join("ingest.log"));
        (keyvault, storage, ingest)
    });
    for (serving, name) in [
        (&keyvault, "keyvault"),
        (&storage, "storage"),
        (&ingest, "ingest"),
    ] {
        assert!(serving.url(name).starts_with("https://"), "{name}");
    }
    assert_ne!(
        std::fs::read(&kv_ca).unwrap(),
        std::fs::read(&st_ca).unwrap(),
        "each process has its own certificate"
    );

    build_world(
        &NAMES,
        tls_channel(keyvault.url("keyvault"), &kv_ca),
        tls_channel(storage.url("storage"), &st_ca),
        &common::admin_file(&kv_data),
    )
    .await;
    // Ingest → storage over TLS: the record is stored (encrypted under the key from the vault).
    let ingestion =
        ip::ingestion_client::IngestionClient::new(tls_channel(ingest.url("ingest"), &in_ca));
    poll("a record stored through ingest", || {
        let mut ingestion = ingestion.clone();
        async move {
            let response = ingestion.ingest(one_record(epoch_ms)).await.ok()?;
            let response = response.into_inner();
            let outcome = response.record_outcomes().last()??.outcome.clone()?;
            matches!(outcome, ip::record_outcome::Outcome::Stored(_)).then_some(())
        }
    })
    .await;
    let mut untrusting =
        ip::ingestion_client::IngestionClient::new(tls_channel(ingest.url("ingest"), &st_ca));
    assert!(
        untrusting.ingest(one_record(epoch_ms)).await.is_err(),
        "ingest's certificate is its own, not storage's"
    );
    tokio::task::block_in_place(|| {
        ingest.terminate();
        storage.terminate();
        keyvault.terminate();
    });
}

// ---- bad input -----------------------------------------------------------------------------

#[test]
fn bad_tls_input_exits_2_with_a_clear_error_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = path_str(&dir.path().join("data"));
    let missing = path_str(&dir.path().join("no-such-cert.pem"));
    let missing_key = path_str(&dir.path().join("no-such-key.pem"));
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let junk = path_str(&junk);
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["keyvault", "--data-dir", &data, "--tls-cert", &junk],
            vec!["--tls-cert needs --tls-key"],
        ),
        (
            vec!["storage", "--data-dir", &data, "--tls-key", &junk],
            vec!["--tls-key needs --tls-cert"],
        ),
        (
            vec![
                "keyvault",
                "--data-dir",
                &data,
                "--tls-cert",
                &missing,
                "--tls-key",
                &missing_key,
            ],
            vec!["TLS certificate", &missing],
        ),
        (
            vec![
                "keyvault",
                "--data-dir",
                &data,
                "--tls-cert",
                &junk,
                "--tls-key",
                &junk,
            ],
            vec!["TLS certificate", &junk],
        ),
        (
            vec!["ingest", "--tls"],
            vec!["serve ingest --tls needs --tls-dir"],
        ),
        (
            vec![
                "storage",
                "--data-dir",
                &data,
                "--keyvault",
                "https://127.0.0.1:50051",
            ],
            vec!["--tls-ca"],
        ),
        (
            vec![
                "ingest",
                "--storage",
                "https://127.0.0.1:50052",
                "--tls-ca",
                &missing,
            ],
            vec!["--tls-ca", &missing],
        ),
        (
            vec!["keyvault", "--data-dir", &data, "--tls", "--tls-san", "a b"],
            vec!["--tls-san"],
        ),
    ];
    for (args, expected) in cases {
        let mut full = vec!["serve"];
        full.extend(&args);
        // Port 1 would need privileges: had anything started, the error would say so instead.
        full.extend(["--listen", "127.0.0.1:1"]);
        let out = cmksim(&full);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line, got {err:?}");
        for word in expected {
            assert!(lines[0].contains(word), "{args:?}: {word:?} not in {err:?}");
        }
        assert!(
            !text(&out.stdout).contains("listening"),
            "{args:?} started something"
        );
    }
    // The health probe refuses a CA file it cannot use.
    let out = cmksim(&["health", "https://127.0.0.1:1", "--tls-ca", &junk]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains(&junk), "{}", text(&out.stderr));
}
