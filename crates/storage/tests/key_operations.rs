//! A key whose own allowed operations (`key_ops`) exclude wrapKey/unwrapKey is refused by the
//! cluster key update (issue 17, defect 2): before, it was accepted, the cluster announced it
//! "now uses" the key, and the rewrap then failed with 403, leaving the data under the
//! Microsoft-managed key. The refusal is the seeds' "Failed to validate key" (a key the cluster
//! cannot use), nothing starts, and no event says the cluster uses the key.

mod common;

use cmksim_proto::keyvault::v1 as kvpb;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_cannot_wrap_is_refused_and_nothing_claims_it() {
    let mut world = World::start(profile("azure-2020", "")).await;
    world.vault("kv-ops", true).await;
    let token = world.vault_token().await;
    let created = world
        .kv
        .create_key(req(
            &token,
            kvpb::CreateKeyRequest {
                vault_name: "kv-ops".into(),
                key_name: "sign-only".into(),
                kty: "RSA".into(),
                key_size: 2048,
                key_ops: vec!["sign".into(), "verify".into()],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let version = version_of(&created.key.unwrap().kid);
    world.provisioned_cluster("cluops", "kv-ops").await;

    let status = world
        .update_key("cluops", "kv-ops", "sign-only", &version)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    let azure = cmksim_proto::azure::azure_error(&status).expect("AzureError details");
    assert_eq!(
        (azure.code.as_str(), azure.http_status),
        ("BadRequest", 400)
    );
    assert!(
        status
            .message()
            .starts_with("Failed to validate key in Key Vault."),
        "{}",
        status.message()
    );

    let cluster = world.wait_provisioning("cluops", "Succeeded").await;
    assert!(
        cluster
            .key_vault_properties
            .is_none_or(|k| k.key_name.is_empty()),
        "the refused key was stored"
    );
    assert!(world.events_of("storage.cluster.key_updated").is_empty());
    assert!(world.events_of("storage.key.rewrap_requested").is_empty());
    assert_eq!(world.state("cluops").await.state().label(), "healthy_mmk");
    world.shutdown().await;
}
