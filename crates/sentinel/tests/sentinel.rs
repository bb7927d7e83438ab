//! Sentinel against the real Key Vault and the real cluster storage, over gRPC on 127.0.0.1:0,
//! on one scaled clock (simulated hours in real seconds). The world is storage's test world
//! (reused, not copied) plus a Sentinel server. Each test is one of seed 002's behaviours;
//! waits are bounded polling loops, nothing asserts on wall-clock durations.

#[path = "../../storage/tests/common/mod.rs"]
mod common;

use std::time::Duration;

use cmksim_proto::common::v1::AzureError;
use cmksim_proto::keyvault::v1 as kvpb;
use cmksim_proto::sentinel::v1 as spb;
use cmksim_proto::sentinel::v1::sentinel_client::SentinelClient;
use cmksim_sentinel::{SentinelConfig, SentinelServer};
use cmksim_sim::net::Network;
use cmksim_sim::SeedTree;
use common::{req, World, SUB};
use tokio::sync::oneshot;
use tonic::transport::Channel;

const HOUR: Duration = Duration::from_secs(3600);
const WAIT_ROUNDS: u32 = 3000;
const WAIT_STEP: Duration = Duration::from_millis(10);

struct Drill {
    w: World,
    sentinel: SentinelClient<Channel>,
    cosmos_oid: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// A Sentinel server on 127.0.0.1:0 over the world's Key Vault and storage, on `sentinel/`.
async fn serve_sentinel(
    w: &World,
) -> (
    SentinelClient<Channel>,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = SentinelConfig::new(
        w.dir.path().join("sentinel"),
        w.clock.clone(),
        SeedTree::new(13),
        w.events.clone(),
        w.profile.clone(),
        Network::Tcp,
        &w.kv_uri,
        "",
    );
    config.storage_channel = Some(w.storage_channel.clone());
    config.storage_tokens =
        Some(w.first_party_tokens(cmksim_identity::directory::SENTINEL_PROVIDER_NAME));
    // sled's lock may outlive a stopped server for a moment: a bounded retry.
    let mut server = None;
    for _ in 0..WAIT_ROUNDS {
        match SentinelServer::open(config.clone()) {
            Ok(s) => {
                server = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(WAIT_STEP).await,
        }
    }
    let server = server.expect("the Sentinel store opens");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .serve_with_incoming(cmksim_sim::net::tcp_incoming(listener), async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    (SentinelClient::new(channel), stop, task)
}

impl Drill {
    async fn start() -> Drill {
        let w = World::start(common::profile("azure-2020", "")).await;
        let (mut sentinel, stop, task) = serve_sentinel(&w).await;
        let cosmos = sentinel
            .get_cosmos_db_principal(spb::CosmosDbPrincipalRequest {
                tenant_id: w.tenant.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        // The identity directory gives it the Cosmos DB application's well-known id.
        assert_eq!(cosmos.app_id, cmksim_identity::directory::COSMOS_DB_APP_ID);
        assert_eq!(cosmos.display_name, "Azure Cosmos DB");
        let cosmos_oid = cosmos.object_id;
        Drill {
            w,
            sentinel,
            cosmos_oid,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the Sentinel server and opens a new one on the same directory.
    async fn restart_sentinel(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        let (sentinel, stop, task) = serve_sentinel(&self.w).await;
        self.sentinel = sentinel;
        self.stop = Some(stop);
        self.task = Some(task);
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        self.w.shutdown().await;
    }

    /// Seed 002 steps 1–2: vault kv1 with key k1 (returns v1), cluster c1 under kv1/k1/v1, and
    /// workspace `ws` linked to it.
    async fn cmk_workspace(&mut self, ws: &str) -> String {
        self.w.vault("kv1", true).await;
        let v1 = self.w.key("kv1", "k1").await;
        self.w.provisioned_cluster("cla", "kv1").await;
        self.w
            .update_key_and_wait("cla", "kv1", "k1", &v1, &v1)
            .await;
        self.w.workspace(ws).await;
        self.w.link(ws, "cla").await;
        v1
    }

    /// Steps 3–4: the Cosmos DB provider registered and its principal allowed on kv1.
    async fn cosmos_ready(&mut self, vault: &str) {
        self.sentinel
            .register_resource_provider(spb::RegisterResourceProviderRequest {
                subscription_id: SUB.into(),
                namespace: "Microsoft.DocumentDB".into(),
            })
            .await
            .unwrap();
        let oid = self.cosmos_oid.clone();
        self.w
            .grant(vault, &oid, &["get", "wrapKey", "unwrapKey"])
            .await;
    }

    async fn onboard(
        &mut self,
        ws: &str,
        cmk: bool,
    ) -> Result<spb::OnboardingState, tonic::Status> {
        self.sentinel
            .onboard(spb::OnboardRequest {
                workspace: Some(World::ws_ref(ws)),
                customer_managed_key: cmk,
            })
            .await
            .map(|r| r.into_inner())
    }

    /// Steps 1–5 done right.
    async fn onboarded(&mut self, ws: &str) -> String {
        let v1 = self.cmk_workspace(ws).await;
        self.cosmos_ready("kv1").await;
        let state = self.onboard(ws, true).await.unwrap();
        assert_eq!(state.state, "active");
        assert_eq!(state.key, format!("kv1/k1/{v1}"));
        v1
    }

    async fn incident(&mut self, ws: &str, id: &str) -> Result<spb::Item, tonic::Status> {
        self.sentinel
            .create_incident(spb::SaveItemRequest {
                workspace: Some(World::ws_ref(ws)),
                id: id.into(),
                body_json: format!("{{\"title\":\"{id}\"}}"),
            })
            .await
            .map(|r| r.into_inner())
    }

    async fn items(&mut self, ws: &str) -> Result<Vec<spb::Item>, tonic::Status> {
        self.sentinel
            .list_items(spb::ListItemsRequest {
                workspace: Some(World::ws_ref(ws)),
                kind: String::new(),
            })
            .await
            .map(|r| r.into_inner().items)
    }

    async fn sentinel_state(&mut self, ws: &str) -> spb::OnboardingState {
        self.sentinel
            .get_onboarding_state(World::ws_ref(ws))
            .await
            .unwrap()
            .into_inner()
    }

    async fn wait_sentinel(&mut self, ws: &str, want: &str) -> spb::OnboardingState {
        let mut last = String::new();
        for _ in 0..WAIT_ROUNDS {
            let s = self.sentinel_state(ws).await;
            if s.state == want {
                return s;
            }
            last = s.state;
            tokio::time::sleep(WAIT_STEP).await;
        }
        panic!("sentinel {ws} never reached {want} (last {last})");
    }

    async fn remove_policy(&mut self, vault: &str, oid: &str) {
        let t = self.w.mgmt().await;
        self.w
            .kv
            .remove_access_policy(req(
                &t,
                kvpb::RemoveAccessPolicyRequest {
                    vault_name: vault.into(),
                    object_id: oid.into(),
                },
            ))
            .await
            .unwrap();
    }
}

fn azure(status: &tonic::Status) -> AzureError {
    cmksim_proto::azure::azure_error(status).expect("an AzureError in the details")
}

/// The first event of `kind` at or after `from`.
fn first_at_or_after(
    w: &World,
    kind: &str,
    from: cmksim_sim::SimTime,
) -> Option<cmksim_sim::Event> {
    w.events_of(kind).into_iter().find(|e| e.at() >= from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onboarding_refuses_each_missing_step_in_the_seeds_terms() {
    let mut d = Drill::start().await;
    d.w.vault("kv1", true).await;
    let v1 = d.w.key("kv1", "k1").await;
    d.w.provisioned_cluster("cla", "kv1").await;
    d.w.workspace("wsp1").await;

    // Not linked yet.
    let e = d.onboard("wsp1", true).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert_eq!(azure(&e).code, "WorkspaceNotLinkedToCmkCluster");
    // Linked to a cluster without a key.
    d.w.link("wsp1", "cla").await;
    let e = d.onboard("wsp1", true).await.unwrap_err();
    assert_eq!(azure(&e).code, "ClusterWithoutCustomerManagedKey");
    // Key on the cluster, provider not registered.
    d.w.update_key_and_wait("cla", "kv1", "k1", &v1, &v1).await;
    let e = d.onboard("wsp1", true).await.unwrap_err();
    assert_eq!(azure(&e).code, "MissingSubscriptionRegistration");
    assert!(
        e.message().contains("Microsoft.DocumentDB"),
        "{}",
        e.message()
    );
    // Registered, but no access policy for the Cosmos DB principal.
    d.sentinel
        .register_resource_provider(spb::RegisterResourceProviderRequest {
            subscription_id: SUB.into(),
            namespace: "Microsoft.DocumentDB".into(),
        })
        .await
        .unwrap();
    let e = d.onboard("wsp1", true).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert_eq!(azure(&e).code, "CosmosDbKeyVaultAccessDenied");
    assert_eq!(azure(&e).http_status, 403);
    // A policy without unwrapKey is not enough.
    let oid = d.cosmos_oid.clone();
    d.w.grant("kv1", &oid, &["get", "wrapKey"]).await;
    let e = d.onboard("wsp1", true).await.unwrap_err();
    assert_eq!(azure(&e).code, "CosmosDbKeyVaultAccessDenied");
    // All five steps.
    d.w.grant("kv1", &oid, &["get", "wrapKey", "unwrapKey"])
        .await;
    let s = d.onboard("wsp1", true).await.unwrap();
    assert!(s.customer_managed_key);
    assert_eq!(s.key, format!("kv1/k1/{v1}"));
    // Only new workspaces.
    let e = d.onboard("wsp1", true).await.unwrap_err();
    assert_eq!(azure(&e).code, "CustomerManagedKeyOnlyForNewWorkspaces");
    assert_eq!(d.w.events_of("sentinel.onboarding_refused").len(), 6);
    assert_eq!(d.w.events_of("sentinel.onboarded").len(), 1);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_only_cosmos_db_stops_sentinel_while_log_analytics_is_fine() {
    let mut d = Drill::start().await;
    d.onboarded("wsp1").await;
    d.incident("wsp1", "i1").await.unwrap();
    let revoked_at = d.w.now();
    let oid = d.cosmos_oid.clone();
    d.remove_policy("kv1", &oid).await;
    d.wait_sentinel("wsp1", "revoked").await;
    let event = first_at_or_after(&d.w, "sentinel.state.revoked", revoked_at).unwrap();
    assert!(
        event.at().since(revoked_at) <= HOUR,
        "honoured within one hour"
    );
    // Sentinel: incident creation, configuration changes and reads refused; delete allowed.
    let e = d.incident("wsp1", "i2").await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(
        e.message().contains("only operation possible is deleting"),
        "{}",
        e.message()
    );
    assert!(
        d.items("wsp1").await.is_err(),
        "stored data stays unreadable"
    );
    assert!(!d.w.events_of("sentinel.operation.refused").is_empty());
    // Log Analytics: still healthy under the CMK, ingest stored.
    assert_eq!(d.w.state("cla").await.state().label(), "healthy_cmk");
    let stored = d.w.append("wsp1", &common::bodies("la", 3)).await;
    assert_eq!(common::stored_count(&stored), 3);
    // Access back: restored within an hour, the incident is readable again.
    d.w.grant("kv1", &oid, &["get", "wrapKey", "unwrapKey"])
        .await;
    let back_at = d.w.now();
    d.wait_sentinel("wsp1", "active").await;
    let active = first_at_or_after(&d.w, "sentinel.state.active", back_at).unwrap();
    assert!(
        active.at().since(back_at) <= HOUR,
        "restored within one hour"
    );
    let items = d.items("wsp1").await.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].id, "i1");
    d.incident("wsp1", "i2").await.unwrap();
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_only_the_cluster_stops_log_analytics_while_sentinel_is_fine() {
    let mut d = Drill::start().await;
    d.onboarded("wsp1").await;
    let cluster_oid =
        d.w.clusters
            .get_cluster(World::cluster_ref("cla"))
            .await
            .unwrap()
            .into_inner()
            .identity
            .unwrap()
            .principal_id;
    d.remove_policy("kv1", &cluster_oid).await;
    d.w.wait_state("cla", &["revoked"]).await;
    // Well past Sentinel's one-hour bound, Sentinel still works.
    d.w.sleep_sim(HOUR + Duration::from_secs(600)).await;
    assert_eq!(d.sentinel_state("wsp1").await.state, "active");
    d.incident("wsp1", "i1").await.unwrap();
    assert_eq!(d.items("wsp1").await.unwrap().len(), 1);
    assert!(d.w.events_of("sentinel.state.revoked").is_empty());
    assert!(
        d.w.query("wsp1").await.is_err(),
        "Log Analytics queries fail"
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_the_old_version_right_after_a_rotation_revokes_sentinel_only() {
    let mut d = Drill::start().await;
    let v1 = d.onboarded("wsp1").await;
    let v2 = d.w.rotate("kv1", "k1").await;
    d.w.update_key_and_wait("cla", "kv1", "k1", &v2, &v2).await;
    // Too early: Sentinel still unwraps with v1.
    let disabled_at = d.w.now();
    d.w.set_key_enabled("kv1", "k1", &v1, false).await;
    let s = d.wait_sentinel("wsp1", "revoked").await;
    assert_eq!(s.key, format!("kv1/k1/{v1}"));
    assert_eq!(s.following, format!("kv1/k1/{v2}"));
    let revoked = first_at_or_after(&d.w, "sentinel.state.revoked", disabled_at).unwrap();
    assert!(revoked.at().since(disabled_at) <= HOUR);
    assert_eq!(
        d.w.state("cla").await.state().label(),
        "healthy_cmk",
        "Log Analytics is on v2"
    );
    // Re-enable v1: Sentinel restores, then moves to v2 within the hour.
    d.w.set_key_enabled("kv1", "k1", &v1, true).await;
    d.wait_sentinel("wsp1", "active").await;
    let moved = d.w.wait_event("sentinel.key.rewrapped").await;
    let moved_at = moved[0].at();
    assert_eq!(moved[0].data["version"], v2.as_str(), "{:?}", moved[0].data);
    assert_eq!(d.sentinel_state("wsp1").await.key, format!("kv1/k1/{v2}"));
    // The audit log shows when v1 stopped being used: nothing after the move.
    d.w.sleep_sim(HOUR).await;
    let t = d.w.mgmt().await;
    let audit = |from: i64, to: Option<i64>| kvpb::AuditQuery {
        vault_name: "kv1".into(),
        key_name: "k1".into(),
        key_version: v1.clone(),
        from_unix_ms: Some(from),
        to_unix_ms: to,
        limit: 1000,
    };
    let before =
        d.w.kv
            .query_audit(req(
                &t,
                audit(disabled_at.unix_ms(), Some(moved_at.unix_ms())),
            ))
            .await
            .unwrap()
            .into_inner();
    assert!(
        before
            .records
            .iter()
            .any(|r| r.principal_object_id == d.cosmos_oid && r.operation == "KeyUnwrap"),
        "Sentinel used v1 until it moved"
    );
    let after =
        d.w.kv
            .query_audit(req(&t, audit(moved_at.unix_ms() + 1, None)))
            .await
            .unwrap()
            .into_inner();
    let unwraps_after: Vec<_> = after
        .records
        .iter()
        .filter(|r| r.operation == "KeyUnwrap" || r.operation == "KeyWrap")
        .collect();
    assert!(
        unwraps_after.is_empty(),
        "no use of {v1} after the move: {unwraps_after:?}"
    );
    // Now disabling v1 is safe for both consumers.
    d.w.set_key_enabled("kv1", "k1", &v1, false).await;
    d.w.sleep_sim(HOUR).await;
    assert_eq!(d.sentinel_state("wsp1").await.state, "active");
    assert_eq!(d.w.state("cla").await.state().label(), "healthy_cmk");
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_the_key_with_another_vault_is_detected_within_an_hour() {
    let mut d = Drill::start().await;
    d.onboarded("wsp1").await;
    d.w.vault("kv2", true).await;
    let k2v = d.w.key("kv2", "k2").await;
    let cluster_oid =
        d.w.clusters
            .get_cluster(World::cluster_ref("cla"))
            .await
            .unwrap()
            .into_inner()
            .identity
            .unwrap()
            .principal_id;
    d.w.grant("kv2", &cluster_oid, &["get", "wrapKey", "unwrapKey"])
        .await;
    let oid = d.cosmos_oid.clone();
    d.w.grant("kv2", &oid, &["get", "wrapKey", "unwrapKey"])
        .await;
    let updated_at = d.w.now();
    d.w.update_key_and_wait("cla", "kv2", "k2", &k2v, &k2v)
        .await;
    let moved = d.w.wait_event("sentinel.key.rewrapped").await;
    assert!(
        moved[0].at().since(updated_at) <= HOUR,
        "replacement followed within one hour"
    );
    let detected = d.w.events_of("sentinel.key.change_detected");
    assert_eq!(detected[0].data["change"], "replacement");
    assert_eq!(d.sentinel_state("wsp1").await.key, format!("kv2/k2/{k2v}"));
    // The data written under the old key is readable under the new one.
    d.incident("wsp1", "after").await.unwrap();
    assert_eq!(d.items("wsp1").await.unwrap().len(), 1);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlinking_after_cmk_onboarding_is_accepted_and_flagged_unsupported() {
    let mut d = Drill::start().await;
    d.onboarded("wsp1").await;
    d.w.workspaces
        .unlink_workspace(World::ws_ref("wsp1"))
        .await
        .unwrap();
    let unsupported = d.w.wait_event("sentinel.unsupported").await;
    assert_eq!(unsupported.len(), 1);
    let data = &unsupported[0].data;
    assert_eq!(data["change"], "unlinked");
    assert!(data["reason"]
        .as_str()
        .unwrap()
        .contains("is not supported and might lead to undefined and undesired behavior"));
    // Accepted as the service would: Sentinel keeps working with the key it has.
    assert_eq!(d.sentinel_state("wsp1").await.state, "active");
    d.incident("wsp1", "i1").await.unwrap();
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_cmk_workspace_linked_later_keeps_its_sentinel_data_under_the_microsoft_key() {
    let mut d = Drill::start().await;
    d.cmk_workspace("wsp1").await;
    d.w.workspace("wsp2").await;
    let s = d.onboard("wsp2", false).await.unwrap();
    assert!(!s.customer_managed_key);
    d.incident("wsp2", "i1").await.unwrap();
    d.w.link("wsp2", "cla").await;
    let kept = d.w.wait_event("sentinel.microsoft_key_kept").await;
    assert!(
        kept[0]
            .message
            .contains("stays under the Microsoft-managed key"),
        "{}",
        kept[0].message
    );
    let s = d.sentinel_state("wsp2").await;
    assert!(!s.customer_managed_key);
    assert_eq!(s.key, "");
    // A CMK re-onboarding is refused: not a new workspace.
    d.cosmos_ready("kv1").await;
    let e = d.onboard("wsp2", true).await.unwrap_err();
    assert_eq!(azure(&e).code, "CustomerManagedKeyOnlyForNewWorkspaces");
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_remembers_a_revocation_and_the_data_comes_back_with_access() {
    let mut d = Drill::start().await;
    d.onboarded("wsp1").await;
    d.incident("wsp1", "i1").await.unwrap();
    let oid = d.cosmos_oid.clone();
    d.remove_policy("kv1", &oid).await;
    d.wait_sentinel("wsp1", "revoked").await;
    d.restart_sentinel().await;
    // Still revoked after the restart: nothing but deleting is possible.
    assert_eq!(d.sentinel_state("wsp1").await.state, "revoked");
    assert!(d.incident("wsp1", "i2").await.is_err());
    d.w.grant("kv1", &oid, &["get", "wrapKey", "unwrapKey"])
        .await;
    d.wait_sentinel("wsp1", "active").await;
    let items = d.items("wsp1").await.unwrap();
    assert_eq!(
        items.len(),
        1,
        "the incident stored before the revocation and the restart"
    );
    // Deleting the workspace is allowed and removes its items.
    d.remove_policy("kv1", &oid).await;
    d.wait_sentinel("wsp1", "revoked").await;
    let s = d
        .sentinel
        .delete_workspace(World::ws_ref("wsp1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.state, "deleted");
    assert_eq!(d.w.events_of("sentinel.workspace.deleted").len(), 1);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_stored_wrapping_stays_cmk_and_fails_its_polls_visibly() {
    let mut d = Drill::start().await;
    d.onboarded("wsp1").await;
    // Stopped, its record's wrapped account key damaged on disk, started again.
    if let Some(stop) = d.stop.take() {
        let _ = stop.send(());
    }
    if let Some(task) = d.task.take() {
        task.await.unwrap();
    }
    let dir = d.w.dir.path().join("sentinel");
    let mut opened = None;
    for _ in 0..WAIT_ROUNDS {
        match cmksim_sentinel::store::Store::open(&dir) {
            Ok(store) => {
                opened = Some(store);
                break;
            }
            Err(_) => tokio::time::sleep(WAIT_STEP).await,
        }
    }
    let store = opened.expect("the Sentinel store opens");
    let mut record = store.workspaces().unwrap().pop().expect("wsp1's record");
    let cmksim_sentinel::store::StoredAccountKey::Cmk { wrapped_hex, .. } = &mut record.account_key
    else {
        panic!("wsp1 is a CMK workspace: {:?}", record.account_key);
    };
    *wrapped_hex = "not hex".to_string();
    store.put_workspace(&record).unwrap();
    drop(store);
    let (sentinel, stop, task) = serve_sentinel(&d.w).await;
    (d.sentinel, d.stop, d.task) = (sentinel, Some(stop), Some(task));
    // Not silently taken for a Microsoft-managed workspace, and its polls say why they fail.
    let s = d.sentinel_state("wsp1").await;
    assert!(s.customer_managed_key, "{s:?}");
    let mut failed = Vec::new();
    for _ in 0..WAIT_ROUNDS {
        failed = d.w.events_of("sentinel.poll.transient");
        if !failed.is_empty() {
            break;
        }
        tokio::time::sleep(WAIT_STEP).await;
    }
    let message = &failed.first().expect("a failed poll is recorded").message;
    assert!(
        message.contains("the stored wrapped account key is unreadable")
            && message.contains("is not hex"),
        "{message}"
    );
    assert_eq!(failed[0].data["kind"], "stored_key_unreadable");
    d.shutdown().await;
}
