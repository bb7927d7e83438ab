//! Live mode as separate OS processes on loopback: the crash-safety promise.
//!
//! Key Vault, storage and ingest run as three `cmksim serve …` processes (the binary cargo
//! built), at time scale 600, on one shared `--epoch`. The test builds a small world over gRPC
//! (tenant, principal and tokens from the identity authority in the Key Vault process; a vault
//! with soft delete and purge protection; an RSA key; a cluster provisioned in 2 simulated
//! minutes via `--profile-override`; the cluster identity's access policy; the key update; a
//! workspace linked to the cluster), then ingests batches through the ingest process while it
//! kills the storage process: every record the ingest answer called *stored* before the kill
//! must be returned by a query after the restart on the same data directory.
//!
//! Kill points (how many stored batches after each restart) come from a seed: set
//! `CMKSIM_CRASH_SEED` to replay a failure; the seed in use is printed. Every wait is a bounded
//! poll; nothing asserts on how long anything took.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cmksim_proto::common::v1 as cp;
use cmksim_proto::identity::v1 as idp;
use cmksim_proto::ingest::v1 as ip;
use cmksim_proto::keyvault::v1 as kvp;
use cmksim_proto::storage::v1 as sp;
use tonic::transport::Channel;

mod common;
use common::{now_unix_ms, seed, seeded_points, Cluster3, POLLS_MAX, POLL_INTERVAL, TIME_SCALE};

/// `SimTime::DEFAULT_EPOCH`: the simulated time at `--epoch`.
const SIM_EPOCH_MS: i64 = 1_593_907_200_000;
const SUB: &str = "00000000-0000-0000-0000-0000000000c1";
const RG: &str = "live";
const REGION: &str = "westeurope";
const VAULT: &str = "livevault";
const KEY: &str = "cmk";
const CLUSTER: &str = "livecluster";
const WORKSPACE: &str = "liveworkspace";
/// Fast control-plane operations, so that setup takes well under a second of real time.
const PROFILE_OVERRIDES: [&str; 4] = [
    "cluster.provisioning_duration=2m",
    "cluster.key_update_duration=1m",
    "cluster.link_duration=2m",
    "cluster.unlink_duration=2m",
];
const RECORDS_PER_BATCH: usize = 20;

fn profile_args() -> Vec<String> {
    PROFILE_OVERRIDES
        .iter()
        .flat_map(|o| ["--profile-override".to_string(), o.to_string()])
        .collect()
}

// ---- the world over gRPC ----------------------------------------------------------------

fn channel(url: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .connect_lazy()
}

fn authorized<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

fn cluster_ref() -> sp::ClusterRef {
    sp::ClusterRef {
        subscription_id: SUB.into(),
        resource_group: RG.into(),
        cluster_name: CLUSTER.into(),
    }
}

fn workspace_ref() -> sp::WorkspaceRef {
    sp::WorkspaceRef {
        subscription_id: SUB.into(),
        resource_group: RG.into(),
        workspace_name: WORKSPACE.into(),
    }
}

fn workspace_id() -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.OperationalInsights/workspaces/{WORKSPACE}")
}

/// Polls `check` until it yields a value (bounded).
async fn poll<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..POLLS_MAX {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    panic!("gave up waiting for {what}");
}

async fn storage_state(storage: &str) -> Option<sp::StorageState> {
    sp::data_plane_client::DataPlaneClient::new(channel(storage))
        .get_storage_state(cluster_ref())
        .await
        .ok()
        .map(|r| r.into_inner())
}

/// Builds the world through the three processes' gRPC APIs, as an operator would.
async fn build_world(kv_url: &str, storage_url: &str) {
    let kv = channel(kv_url);
    let mut identity = idp::identity_client::IdentityClient::new(kv.clone());
    let mut keyvault = kvp::key_vault_client::KeyVaultClient::new(kv);
    let st = channel(storage_url);
    let mut clusters = sp::clusters_client::ClustersClient::new(st.clone());
    let mut workspaces = sp::workspaces_client::WorkspacesClient::new(st);

    let tenant = identity
        .create_tenant(idp::CreateTenantRequest {
            name: "contoso".into(),
            tenant_id: String::new(),
        })
        .await
        .expect("create tenant")
        .into_inner()
        .tenant_id;
    let admin = identity
        .create_principal(idp::CreatePrincipalRequest {
            tenant_id: tenant.clone(),
            display_name: "operator".into(),
            kind: idp::PrincipalKind::ServicePrincipal as i32,
        })
        .await
        .expect("create principal")
        .into_inner();
    let admin_oid = admin.principal.unwrap().object_id;
    let token = |audience: &'static str| {
        let mut identity = identity.clone();
        let (oid, secret) = (admin_oid.clone(), admin.secret.clone());
        async move {
            identity
                .issue_token(idp::IssueTokenRequest {
                    object_id: oid,
                    secret,
                    audience: audience.into(),
                    lifetime_seconds: 0,
                })
                .await
                .expect("issue token")
                .into_inner()
                .token
        }
    };
    let mgmt = token("https://management.azure.com").await;
    let vault_token = token("https://vault.azure.net").await;

    keyvault
        .create_vault(authorized(
            &mgmt,
            kvp::CreateVaultRequest {
                name: VAULT.into(),
                location: REGION.into(),
                tenant_id: tenant.clone(),
                sku: kvp::Sku::Standard as i32,
                enable_soft_delete: Some(true),
                soft_delete_retention_in_days: Some(90),
                enable_purge_protection: true,
                access_policies: vec![kvp::AccessPolicy {
                    tenant_id: tenant.clone(),
                    object_id: admin_oid.clone(),
                    key_permissions: ["get", "list", "create", "update", "wrapKey", "unwrapKey"]
                        .iter()
                        .map(|p| p.to_string())
                        .collect(),
                }],
                subscription_id: SUB.into(),
                resource_group: RG.into(),
            },
        ))
        .await
        .expect("create vault");
    let key = keyvault
        .create_key(authorized(
            &vault_token,
            kvp::CreateKeyRequest {
                vault_name: VAULT.into(),
                key_name: KEY.into(),
                kty: "RSA".into(),
                key_size: 2048,
                ..Default::default()
            },
        ))
        .await
        .expect("create key")
        .into_inner();
    let version = key.key.unwrap().kid.rsplit('/').next().unwrap().to_string();

    let created = clusters
        .create_cluster(sp::CreateClusterRequest {
            cluster: Some(cluster_ref()),
            location: REGION.into(),
            tenant_id: tenant.clone(),
            sku: Some(sp::Sku {
                name: "capacityReservation".into(),
                capacity_gb_per_day: 1000,
            }),
            billing_type: "Cluster".into(),
            identity_type: "SystemAssigned".into(),
            ..Default::default()
        })
        .await
        .expect("create cluster")
        .into_inner();
    let cluster_oid = created.cluster.unwrap().identity.unwrap().principal_id;
    poll("provisioning", || {
        let mut clusters = clusters.clone();
        async move {
            let c = clusters.get_cluster(cluster_ref()).await.ok()?.into_inner();
            (c.provisioning_state == "Succeeded").then_some(())
        }
    })
    .await;
    keyvault
        .set_access_policy(authorized(
            &mgmt,
            kvp::SetAccessPolicyRequest {
                vault_name: VAULT.into(),
                policy: Some(kvp::AccessPolicy {
                    tenant_id: tenant.clone(),
                    object_id: cluster_oid,
                    key_permissions: ["get", "wrapKey", "unwrapKey"]
                        .iter()
                        .map(|p| p.to_string())
                        .collect(),
                }),
            },
        ))
        .await
        .expect("grant the cluster identity");
    clusters
        .update_cluster(sp::UpdateClusterRequest {
            cluster: Some(cluster_ref()),
            key_vault_properties: Some(sp::KeyVaultProperties {
                key_vault_uri: format!("https://{VAULT}.vault.azure.net"),
                key_name: KEY.into(),
                key_version: version.clone(),
            }),
            ..Default::default()
        })
        .await
        .expect("key update");
    poll("healthy_cmk", || async {
        let s = storage_state(storage_url).await?;
        (s.state == "healthy_cmk" && s.key_kid.ends_with(&version)).then_some(())
    })
    .await;
    workspaces
        .create_workspace(sp::CreateWorkspaceRequest {
            workspace: Some(workspace_ref()),
            location: REGION.into(),
            retention_in_days: 0,
        })
        .await
        .expect("create workspace");
    workspaces
        .link_workspace(sp::LinkWorkspaceRequest {
            workspace: Some(workspace_ref()),
            cluster: Some(cluster_ref()),
        })
        .await
        .expect("link");
    poll("link", || {
        let mut workspaces = workspaces.clone();
        async move {
            let w = workspaces
                .get_workspace(workspace_ref())
                .await
                .ok()?
                .into_inner();
            (w.link_state == "Linked").then_some(())
        }
    })
    .await;
}

// ---- traffic ------------------------------------------------------------------------------

/// What the ingest loop saw acknowledged.
#[derive(Default)]
struct Acked {
    stored: BTreeSet<u64>,
    buffered: BTreeSet<u64>,
    other_outcomes: u64,
    failed_calls: u64,
}

/// The simulated now, as every process computes it from the shared epoch.
fn sim_now_ms(epoch_ms: i64) -> i64 {
    SIM_EPOCH_MS + ((now_unix_ms() - epoch_ms) as f64 * TIME_SCALE) as i64
}

fn string_value(s: String) -> Option<ip::Value> {
    Some(ip::Value {
        kind: Some(ip::value::Kind::StringValue(s)),
    })
}

fn batch(first: u64, epoch_ms: i64) -> ip::IngestRequest {
    // A little in the past, so that clock rounding never puts a record in the future.
    let at = sim_now_ms(epoch_ms) - 60_000;
    ip::IngestRequest {
        workspace_id: workspace_id(),
        table: "Heartbeat".into(),
        records: (first..first + RECORDS_PER_BATCH as u64)
            .map(|seq| ip::Record {
                time_generated: Some(cp::SimTime { unix_ms: at }),
                columns: vec![
                    ip::Column {
                        name: "Computer".into(),
                        value: string_value(format!("rec-{seq}")),
                    },
                    ip::Column {
                        name: "Category".into(),
                        value: string_value("Direct Agent".into()),
                    },
                ],
            })
            .collect(),
        declare_columns: Vec::new(),
    }
}

/// Sends batches through the ingest process until `stop`, recording every outcome; counts the
/// batches with at least one stored record in `stored_batches`. Returns how many records were
/// sent (numbered 0..n).
async fn ingest_loop(
    ingest_url: String,
    epoch_ms: i64,
    acked: Arc<Mutex<Acked>>,
    stored_batches: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> u64 {
    let mut client = ip::ingestion_client::IngestionClient::new(channel(&ingest_url));
    let mut next = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let first = next;
        next += RECORDS_PER_BATCH as u64;
        match client.ingest(batch(first, epoch_ms)).await {
            Ok(response) => {
                let response = response.into_inner();
                assert_eq!(response.outcomes.len(), RECORDS_PER_BATCH);
                let mut a = acked.lock().unwrap();
                let mut any_stored = false;
                for (i, outcome) in response.outcomes.iter().enumerate() {
                    let seq = first + i as u64;
                    match outcome.outcome {
                        Some(ip::record_outcome::Outcome::Stored(_)) => {
                            a.stored.insert(seq);
                            any_stored = true;
                        }
                        Some(ip::record_outcome::Outcome::Buffered(_)) => {
                            a.buffered.insert(seq);
                        }
                        _ => a.other_outcomes += 1,
                    }
                }
                drop(a);
                if any_stored {
                    stored_batches.fetch_add(1, Ordering::SeqCst);
                }
            }
            Err(_) => {
                acked.lock().unwrap().failed_calls += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    next
}

/// Every `rec-N` the ingest process returns for the workspace (one query, or None if refused).
async fn query_all(ingest_url: &str, epoch_ms: i64) -> Option<BTreeSet<u64>> {
    let mut query = ip::query_client::QueryClient::new(channel(ingest_url));
    let response = query
        .query(ip::QueryRequest {
            workspace_id: workspace_id(),
            table: "Heartbeat".into(),
            from: Some(cp::SimTime {
                unix_ms: SIM_EPOCH_MS - 86_400_000,
            }),
            to: Some(cp::SimTime {
                unix_ms: sim_now_ms(epoch_ms) + 86_400_000,
            }),
            filters: Vec::new(),
            count_only: false,
            limit: 10_000,
            order: 0,
        })
        .await
        .ok()?
        .into_inner();
    assert!(!response.truncated, "the test keeps under the query limit");
    Some(
        response
            .rows
            .iter()
            .filter_map(|row| {
                let record = row.record.as_ref()?;
                record.columns.iter().find_map(|c| match &c.value {
                    Some(ip::Value {
                        kind: Some(ip::value::Kind::StringValue(s)),
                    }) if c.name == "Computer" => s.strip_prefix("rec-")?.parse().ok(),
                    _ => None,
                })
            })
            .collect(),
    )
}

/// Waits (bounded) until `n` more batches were stored.
async fn wait_stored_batches(counter: &AtomicU64, n: u64, what: &str) {
    let target = counter.load(Ordering::SeqCst) + n;
    poll(what, || async {
        (counter.load(Ordering::SeqCst) >= target).then_some(())
    })
    .await;
}

enum Stop {
    Kill9,
    Term,
}

/// Starts the three processes, builds the world, and crashes or stops storage at the given
/// points while ingest runs; returns what was acknowledged and what a query returns at the end.
async fn run_with_storage_stops(stops: &[(u64, Stop)]) {
    let mut services = tokio::task::block_in_place(|| Cluster3::start(profile_args()));
    let epoch_ms: i64 = services.common[3].parse().unwrap();
    build_world(&services.url("keyvault"), &services.url("storage")).await;

    let acked = Arc::new(Mutex::new(Acked::default()));
    let stored_batches = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = tokio::spawn(ingest_loop(
        services.url("ingest"),
        epoch_ms,
        acked.clone(),
        stored_batches.clone(),
        stop.clone(),
    ));
    for (round, (after, how)) in stops.iter().enumerate() {
        wait_stored_batches(&stored_batches, *after, "stored batches before the stop").await;
        let storage = services.storage.take().unwrap();
        let port = storage.port();
        // Blocking process calls run off the async workers, so the ingest loop keeps going.
        tokio::task::block_in_place(|| match how {
            Stop::Kill9 => storage.kill9(),
            Stop::Term => {
                let status = storage.terminate();
                assert!(
                    status.success(),
                    "storage exited with {status} after SIGTERM"
                );
            }
        });
        let (acked_before, failed_before) = {
            let a = acked.lock().unwrap();
            (a.stored.clone(), a.failed_calls)
        };
        // Ingest goes on against the stopped storage (and fails) before it comes back.
        poll("an ingest call during the outage", || async {
            (acked.lock().unwrap().failed_calls > failed_before).then_some(())
        })
        .await;
        tokio::task::block_in_place(|| services.restart_storage(port));
        // Traffic is stored again once the restarted storage has its key back.
        wait_stored_batches(&stored_batches, 1, "stored batches after the restart").await;
        // Nothing acknowledged before the stop is missing now.
        let ingest_url = services.url("ingest");
        let missing = poll("query after the restart", || async {
            let found = query_all(&ingest_url, epoch_ms).await?;
            let missing: Vec<u64> = acked_before.difference(&found).copied().collect();
            Some(missing)
        })
        .await;
        assert!(
            missing.is_empty(),
            "round {round}: {} records acknowledged as stored before the stop are gone after the restart (first: {:?})",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
    }
    stop.store(true, Ordering::SeqCst);
    let sent = traffic.await.expect("ingest loop");

    let (stored, buffered, other_outcomes, failed_calls) = {
        let a = acked.lock().unwrap();
        (
            a.stored.clone(),
            a.buffered.len(),
            a.other_outcomes,
            a.failed_calls,
        )
    };
    let ingest_url = services.url("ingest");
    let found = poll("final query", || async {
        let found = query_all(&ingest_url, epoch_ms).await?;
        stored.is_subset(&found).then_some(found)
    })
    .await;
    assert!(stored.len() >= stops.len() * RECORDS_PER_BATCH);
    // Nothing appears that was never sent (records of a call that failed may or may not be).
    assert!(
        found.iter().all(|seq| *seq < sent),
        "a record that was never sent"
    );
    eprintln!(
        "sent {sent}, acknowledged stored {}, buffered {buffered}, other outcomes {other_outcomes}, \
         failed calls {failed_calls}; query returned {}",
        stored.len(),
        found.len()
    );

    // At the end, all three stop cleanly on SIGTERM.
    for service in [
        services.ingest.take(),
        services.storage.take(),
        services.keyvault.take(),
    ]
    .into_iter()
    .flatten()
    {
        let name = service.name;
        let status = service.terminate();
        assert!(
            status.success(),
            "{name} exited with {status} after SIGTERM"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_storage_mid_ingest_loses_no_acknowledged_record() {
    let seed = seed();
    // Stored batches to wait for after each (re)start.
    let points = seeded_points(seed, 3, 2, 17);
    eprintln!("CMKSIM_CRASH_SEED={seed}: kill -9 after {points:?} stored batches");
    let stops: Vec<(u64, Stop)> = points.into_iter().map(|n| (n, Stop::Kill9)).collect();
    run_with_storage_stops(&stops).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_of_storage_during_ingest_loses_nothing() {
    run_with_storage_stops(&[(5, Stop::Term)]).await;
}
