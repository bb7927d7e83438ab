//! HSM faults through `ChaosControl.SetHsmFault`: device error, latency (simulated time) and
//! tamper (every HSM key zeroised, for good, also across a restart).

use std::time::{Duration, Instant};

use tonic::Code;

use cmksim_proto::keyvault::v1 as pb;
use cmksim_sim::{Clock, SimTime};

use super::*;

const DESTROYED: &str = "HSMKeyMaterialDestroyed";

fn fault(mode: &str, latency_ms: u64) -> pb::HsmFaultRequest {
    pb::HsmFaultRequest {
        mode: mode.into(),
        latency_ms,
    }
}

fn op(
    token: &str,
    vault: &str,
    name: &str,
    version: &str,
    value: Vec<u8>,
) -> Request<pb::KeyOperationRequest> {
    req(
        token,
        pb::KeyOperationRequest {
            key: Some(key_ref(vault, name, version)),
            algorithm: "RSA-OAEP-256".into(),
            value,
        },
    )
}

fn kid_of(bundle: &pb::KeyBundle) -> String {
    bundle.key.as_ref().unwrap().kid.clone()
}

fn assert_destroyed(e: &Status, kid: &str) {
    assert_azure(
        e,
        Code::DataLoss,
        "InternalError",
        500,
        &format!("The key material of {kid} was destroyed: the HSM that held it was zeroised after detecting tampering. HSM-protected keys never leave the HSM, so there is no copy; this key can never be used for a cryptographic operation again."),
    );
    assert_eq!(inner_code(e), DESTROYED);
}

#[tokio::test]
async fn device_error_is_a_retryable_500_on_hsm_keys_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(dir.path(), 31, clock()).await;
    let w = world(&mut h, "kv-hsm-err", pb::Sku::Premium, true).await;
    let t = h.vault_token(&w.admin);
    let hsm = create_key(&mut h, &w, "hsm", "RSA-HSM").await;
    create_key(&mut h, &w, "soft", "RSA").await;
    let v = version_of(&hsm);
    let wrapped =
        h.kv.wrap_key(op(&t, &w.vault, "hsm", &v, vec![7; 32]))
            .await
            .unwrap()
            .into_inner();

    let status = h
        .chaos
        .set_hsm_fault(fault("device-error", 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.mode, "device-error");
    let e =
        h.kv.unwrap_key(op(&t, &w.vault, "hsm", &v, wrapped.value.clone()))
            .await
            .unwrap_err();
    assert_azure(
        &e,
        Code::Internal,
        "InternalError",
        500,
        &format!("The HSM holding key {} reported a device error during C_FindObjects; the operation was not performed. Retry later.", kid_of(&hsm)),
    );
    assert_eq!(inner_code(&e), "HSMDeviceError");
    // wrapKey goes through the HSM too; a software key does not.
    let e =
        h.kv.wrap_key(op(&t, &w.vault, "hsm", &v, vec![1; 32]))
            .await
            .unwrap_err();
    assert_eq!(e.code(), Code::Internal);
    h.kv.wrap_key(op(&t, &w.vault, "soft", "", vec![1; 32]))
        .await
        .unwrap();
    // The key is still there to read.
    h.kv.get_key(req(&t, key_ref(&w.vault, "hsm", "")))
        .await
        .unwrap();

    let status = h
        .chaos
        .set_hsm_fault(fault("ok", 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.mode, "ok");
    let back =
        h.kv.unwrap_key(op(&t, &w.vault, "hsm", &v, wrapped.value))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(back.value, vec![7; 32]);

    let errors = h.events.of_kind("hsm.device.error");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].source, "hsm");
    assert_eq!(h.events.of_kind("hsm.device.ok").len(), 1);
    // The audit log records the failure with its Azure code and status.
    let audit =
        h.kv.query_audit(req(
            &h.mgmt_token(&w.admin),
            pb::AuditQuery {
                vault_name: w.vault.clone(),
                key_name: "hsm".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(audit
        .records
        .iter()
        .any(|r| r.operation == "KeyUnwrap" && r.http_status == 500));
    h.stop().await;
}

#[tokio::test]
async fn latency_is_slept_on_the_simulation_clock() {
    let dir = tempfile::tempdir().unwrap();
    // 600 simulated seconds per real second: a 5-minute HSM latency takes 0.5 s of wall time.
    let clock = Clock::tokio(SimTime::DEFAULT_EPOCH, 600.0);
    let mut h = Harness::start(dir.path(), 32, clock).await;
    let w = world(&mut h, "kv-hsm-slow", pb::Sku::Premium, true).await;
    let t = h.vault_token(&w.admin);
    let hsm = create_key(&mut h, &w, "hsm", "RSA-HSM").await;
    create_key(&mut h, &w, "soft", "RSA").await;
    let v = version_of(&hsm);
    let wrapped =
        h.kv.wrap_key(op(&t, &w.vault, "hsm", &v, vec![9; 32]))
            .await
            .unwrap()
            .into_inner();
    let latency = Duration::from_secs(300);
    let status = h
        .chaos
        .set_hsm_fault(fault("latency", latency.as_millis() as u64))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (status.mode.as_str(), status.latency_ms),
        ("latency", 300_000)
    );

    let (sim0, wall0) = (h.now(), Instant::now());
    let back =
        h.kv.unwrap_key(op(&t, &w.vault, "hsm", &v, wrapped.value))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(back.value, vec![9; 32]);
    let (sim, wall) = (h.now().since(sim0), wall0.elapsed());
    assert!(sim >= latency, "answered after {sim:?} simulated");
    assert!(
        wall < Duration::from_secs(30),
        "slept {wall:?} of wall time"
    );

    // A software key is not slowed down by the HSM.
    let sim0 = h.now();
    h.kv.wrap_key(op(&t, &w.vault, "soft", "", vec![1; 32]))
        .await
        .unwrap();
    assert!(h.now().since(sim0) < latency);

    h.chaos.set_hsm_fault(fault("ok", 0)).await.unwrap();
    let sim0 = h.now();
    h.kv.wrap_key(op(&t, &w.vault, "hsm", &v, vec![1; 32]))
        .await
        .unwrap();
    assert!(h.now().since(sim0) < latency);
    let slow = h.events.of_kind("hsm.device.latency");
    assert_eq!(slow.len(), 1);
    assert_eq!(slow[0].data["latency_ms"], 300_000);
    h.stop().await;
}

#[tokio::test]
async fn tamper_destroys_hsm_keys_forever_even_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(dir.path(), 33, clock()).await;
    let w = world(&mut h, "kv-hsm-tamper", pb::Sku::Premium, true).await;
    let t = h.vault_token(&w.admin);
    let rsa = create_key(&mut h, &w, "rsa", "RSA-HSM").await;
    let ec = create_key(&mut h, &w, "ec", "EC-HSM").await;
    create_key(&mut h, &w, "soft", "RSA").await;
    let v = version_of(&rsa);
    let wrapped =
        h.kv.wrap_key(op(&t, &w.vault, "rsa", &v, vec![5; 32]))
            .await
            .unwrap()
            .into_inner();
    let soft_wrapped =
        h.kv.wrap_key(op(&t, &w.vault, "soft", "", vec![6; 32]))
            .await
            .unwrap()
            .into_inner();

    let status = h
        .chaos
        .set_hsm_fault(fault("tamper", 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.keys_zeroised, 2);
    let tampered = h.events.of_kind("hsm.tampered");
    assert_eq!(tampered.len(), 1);
    assert_eq!(tampered[0].source, "hsm");
    assert_eq!(tampered[0].data["keys_zeroised"], 2);

    let check = |h: &mut Harness, t: String| {
        let (kv, vault) = (h.kv.clone(), w.vault.clone());
        let (rsa_kid, ec_kid, v, value) =
            (kid_of(&rsa), kid_of(&ec), v.clone(), wrapped.value.clone());
        async move {
            let mut kv = kv;
            // Still listed and readable: the vault keeps the record and the public half.
            kv.get_key(req(&t, key_ref(&vault, "rsa", "")))
                .await
                .unwrap();
            let e = kv
                .unwrap_key(op(&t, &vault, "rsa", &v, value))
                .await
                .unwrap_err();
            assert_destroyed(&e, &rsa_kid);
            let e = kv
                .wrap_key(op(&t, &vault, "rsa", &v, vec![1; 32]))
                .await
                .unwrap_err();
            assert_destroyed(&e, &rsa_kid);
            let e = kv
                .sign(req(
                    &t,
                    pb::SignRequest {
                        key: Some(key_ref(&vault, "ec", "")),
                        algorithm: "ES256".into(),
                        digest: vec![0; 32],
                    },
                ))
                .await
                .unwrap_err();
            assert_destroyed(&e, &ec_kid);
        }
    };
    check(&mut h, t.clone()).await;
    // "ok" clears device faults; it cannot bring zeroised keys back.
    h.chaos.set_hsm_fault(fault("ok", 0)).await.unwrap();
    check(&mut h, t.clone()).await;
    // Software keys are untouched; new HSM keys can be created on the re-initialised token.
    let back =
        h.kv.unwrap_key(op(&t, &w.vault, "soft", "", soft_wrapped.value.clone()))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(back.value, vec![6; 32]);
    let fresh = create_key(&mut h, &w, "fresh", "RSA-HSM").await;
    let fresh_wrapped =
        h.kv.wrap_key(op(&t, &w.vault, "fresh", "", vec![8; 32]))
            .await
            .unwrap()
            .into_inner();
    h.stop().await;

    // After a restart: still destroyed; the key created after the tamper works.
    let mut h = Harness::start(dir.path(), 33, clock()).await;
    let t = h.vault_token(&w.admin);
    check(&mut h, t.clone()).await;
    let back =
        h.kv.unwrap_key(op(
            &t,
            &w.vault,
            "fresh",
            &version_of(&fresh),
            fresh_wrapped.value,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.value, vec![8; 32]);
    h.stop().await;
}

#[tokio::test]
async fn bad_hsm_fault_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(dir.path(), 34, clock()).await;
    for (mode, latency) in [("melt", 0), ("latency", 0), ("tamper", 10)] {
        let e = h
            .chaos
            .set_hsm_fault(fault(mode, latency))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{mode}: {e:?}");
    }
    assert!(h.events.of_kind("hsm.").is_empty());
    h.stop().await;
}
