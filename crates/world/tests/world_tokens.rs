//! Tokens in the simulated world (issue 17, defect 7): storage, hosted as the harness hosts it
//! with the guard of [`cmksim_world::auth::WorldAuth`], refuses a call without a token (ARM's
//! 401 `AuthenticationFailed`) and one whose principal has no role (403), and serves the same
//! call with the token of a principal provisioned like the driver's (`cmksim-driver`, Owner at
//! `/`). Everything runs on turmoil's simulated network and clock.

use std::sync::{Arc, Mutex};

use cmksim_identity::{AuthChannel, CredentialSlot, Role, TokenSource};
use cmksim_proto::storage::v1 as spb;
use cmksim_sim::net::{turmoil_incoming, ClientTimeouts, Network};
use cmksim_sim::{Clock, EventLog, Profile, SeedTree, SimTime};
use cmksim_world::auth::{self, WorldAuth};

const KEYVAULT: &str = "http://keyvault:50051";
const STORAGE: &str = "http://storage:50052";

type Outcome = Vec<(String, Result<usize, (tonic::Code, String)>)>;

fn arm_code(status: &tonic::Status) -> String {
    use prost::Message;
    cmksim_proto::common::v1::AzureError::decode(status.details())
        .map(|e| e.code)
        .unwrap_or_default()
}

#[test]
fn storage_in_the_simulated_world_wants_a_token_and_a_role() {
    let dir = tempfile::tempdir().unwrap();
    let epoch = SimTime::DEFAULT_EPOCH;
    let seeds = SeedTree::new(5);
    let events = EventLog::default();
    let mut sim = turmoil::Builder::new()
        .simulation_duration(std::time::Duration::from_secs(600))
        .build();
    let kv_dir = dir.path().join("keyvault");
    let world_auth = WorldAuth::new();
    {
        let events = events.clone();
        let world_auth = world_auth.clone();
        sim.host("keyvault", move || {
            let (dir, events) = (kv_dir.clone(), events.clone());
            let world_auth = world_auth.clone();
            async move {
                std::fs::create_dir_all(&dir)?;
                let config = cmksim_keyvault::KeyVaultConfig {
                    os_key_material: false,
                    without_hsm: false,
                    key_material_seed: None,
                };
                let server = cmksim_keyvault::KeyVaultServer::open(
                    &dir,
                    Clock::turmoil(epoch),
                    seeds,
                    events,
                    config,
                )?;
                world_auth.set_admin(&server);
                server
                    .serve_with_incoming(turmoil_incoming(50051), std::future::pending::<()>())
                    .await?;
                Ok(())
            }
        });
    }
    let storage_dir = dir.path().join("storage");
    {
        let events = events.clone();
        let world_auth = world_auth.clone();
        sim.host("storage", move || {
            let config = cmksim_storage::server::StorageConfig {
                data_dir: storage_dir.clone(),
                clock: Clock::turmoil(epoch),
                seeds,
                events: events.clone(),
                profile: Profile::azure_current(),
                network: Network::Turmoil,
                keyvault_uri: KEYVAULT.to_string(),
                identity_uri: KEYVAULT.to_string(),
                os_key_material: false,
                client_timeouts: ClientTimeouts::default(),
                principal: world_auth.storage.clone(),
            };
            let guard = world_auth.guard(&Network::Turmoil, KEYVAULT, Clock::turmoil(epoch));
            async move {
                std::fs::create_dir_all(&config.data_dir)?;
                let server =
                    cmksim_storage::server::StorageServer::open(config)?.with_guard(guard?);
                server
                    .serve_with_incoming(turmoil_incoming(50052), std::future::pending::<()>())
                    .await?;
                Ok(())
            }
        });
    }
    let outcome: Arc<Mutex<Outcome>> = Arc::default();
    let seen = outcome.clone();
    let admin = world_auth.admin.clone();
    sim.client("client", async move {
        let clock = Clock::turmoil(epoch);
        let identity = Network::Turmoil.channel(KEYVAULT, ClientTimeouts::default())?;
        let storage = Network::Turmoil.channel(STORAGE, ClientTimeouts::default())?;
        let list = spb::ListClustersBySubscriptionRequest {
            subscription_id: "00000000-0000-0000-0000-000000000001".into(),
        };
        let record = |label: &str, answer: Result<usize, tonic::Status>| {
            let answer = answer.map_err(|s| (s.code(), arm_code(&s)));
            seen.lock().unwrap().push((label.to_string(), answer));
        };
        // No token.
        let answer = spb::clusters_client::ClustersClient::new(storage.clone())
            .list_clusters_by_subscription(list.clone())
            .await;
        record("anonymous", answer.map(|r| r.into_inner().clusters.len()));
        // Making a principal needs the identity administrator's token: refused without one.
        let refused = auth::provision(
            AuthChannel::plain(identity.clone()),
            "intruder",
            &[Role::Owner],
            &CredentialSlot::new(),
        )
        .await;
        record("admin call without a token", refused.map(|()| 0));
        let admin = auth::admin_channel(identity.clone(), &admin, clock.clone());
        // A principal without a role.
        let nobody = CredentialSlot::new();
        auth::provision(admin.clone(), "nobody", &[], &nobody).await?;
        let channel = AuthChannel::new(
            storage.clone(),
            Some(TokenSource::provisioned(
                identity.clone(),
                nobody,
                clock.clone(),
            )),
        );
        let answer = spb::clusters_client::ClustersClient::new(channel)
            .list_clusters_by_subscription(list.clone())
            .await;
        record("no role", answer.map(|r| r.into_inner().clusters.len()));
        // The driver's principal.
        let driver = CredentialSlot::new();
        auth::provision(admin, "cmksim-driver", &[Role::Owner], &driver).await?;
        let channel = AuthChannel::new(
            storage,
            Some(TokenSource::provisioned(identity, driver, clock)),
        );
        let answer = spb::clusters_client::ClustersClient::new(channel)
            .list_clusters_by_subscription(list)
            .await;
        record("driver", answer.map(|r| r.into_inner().clusters.len()));
        Ok(())
    });
    sim.run().unwrap();
    let outcome = outcome.lock().unwrap().clone();
    assert_eq!(
        outcome,
        vec![
            (
                "anonymous".to_string(),
                Err((tonic::Code::Unauthenticated, "AuthenticationFailed".into()))
            ),
            (
                "admin call without a token".to_string(),
                Err((tonic::Code::Unauthenticated, "AuthenticationFailed".into()))
            ),
            (
                "no role".to_string(),
                Err((tonic::Code::PermissionDenied, "AuthorizationFailed".into()))
            ),
            ("driver".to_string(), Ok(0)),
        ]
    );
}
