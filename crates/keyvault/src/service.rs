//! The `keyvault.v1.KeyVault` and `keyvault.v1.ChaosControl` gRPC adapters.
//!
//! Every KeyVault call goes through [`Core::handle`]: chaos gate → simulated `now` from the
//! clock → token ([`crate::auth`]) → the domain function under the state lock → write-through of
//! its effects (store flush, then events) → one audit record → the response or the Azure error
//! as a status. Handlers below only decode requests and encode answers.
//!
//! Private-key operations (decrypt, unwrapKey, sign) go through [`Core::handle_staged`]: the
//! checks and the key's resolution run under the lock and hand back a [`Ready`] key; the
//! cryptography itself runs after the lock is released, so concurrent calls use every core
//! instead of queueing behind one RSA operation. The audit record is written under the lock
//! again afterwards, and flushed to disk after the lock is released (concurrent calls share a
//! flush, [`crate::audit_commit`]), before the answer. Between the steps nothing suspends on a
//! one-thread runtime (the flush runs in place there), so in a simulation the order of
//! everything is what it was with one lock.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tonic::{Request, Response, Status};

use cmksim_hsm::Fault as HsmFault;
use cmksim_identity::TokenVerifier;
use cmksim_proto::keyvault::v1 as pb;
use cmksim_sim::{Clock, EventLog, RandomSource, SimTime};

use crate::audit::{AuditQuery, AuditRecord};
use crate::auth;
use crate::backend::{Crypto, KeyBackend, Ready};
use crate::chaos::{self, Chaos, ChaosMode, ChaosSettings, GateError, HsmFaultMode};
use crate::convert;
use crate::errors::{KvError, Plane};
use crate::events::{HsmEvent, KeyVaultEvent, HSM_EVENT_SOURCE};
use crate::keys::{key_id, Algorithm, KeyAddr, KeyPatch, NewKey};
use crate::model::{EncryptionAlgorithm, KeyOp, SignatureAlgorithm};
use crate::state::{Caller, KeyVaultState};
use crate::status::to_status;
use crate::store::KeyVaultStore;
use crate::vaults::{NewVault, VaultPatch};

/// The source name of Key Vault events.
pub const EVENT_SOURCE: &str = "keyvault";

/// Mutable service state behind one lock.
pub struct Inner {
    pub state: KeyVaultState,
    pub crypto: Crypto,
    pub store: KeyVaultStore,
    pub version_rng: RandomSource,
}

/// What every handler shares.
pub struct Core {
    pub(crate) inner: Mutex<Inner>,
    pub(crate) clock: Clock,
    pub(crate) events: EventLog,
    pub(crate) verifier: TokenVerifier,
    pub(crate) chaos: Chaos,
    /// Woken whenever records change, so the purge task re-reads the next scheduled purge.
    pub(crate) schedule_changed: tokio::sync::Notify,
}

/// The result of a domain call: the answer and the key version it resolved to (for the audit).
type Outcome<T> = Result<(T, String), KvError>;

impl Core {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the effects of the last mutation through to the store and the event log.
    pub(crate) fn commit(&self, inner: &mut Inner, now: SimTime) -> Result<(), KvError> {
        let effects = inner.state.take_effects();
        for change in &effects.changes {
            inner.crypto.forget(change);
        }
        if !effects.changes.is_empty() {
            inner.store.apply(&inner.state, &effects.changes)?;
            self.schedule_changed.notify_one();
        }
        for event in &effects.events {
            self.events.record(now, EVENT_SOURCE, event);
        }
        Ok(())
    }

    /// Runs the background purge once: everything whose scheduled purge date has come.
    pub fn purge_due(&self) -> Result<usize, KvError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let Inner { state, crypto, .. } = &mut *inner;
        let purged = state.purge_due(now, crypto);
        self.commit(&mut inner, now)?;
        Ok(purged)
    }

    /// The earliest scheduled purge.
    pub fn next_purge(&self) -> Option<SimTime> {
        self.lock().state.next_purge_ms().map(SimTime)
    }

    #[allow(clippy::too_many_arguments)]
    async fn handle<Req, T>(
        &self,
        request: &Request<Req>,
        plane: Plane,
        operation: &'static str,
        vault: &str,
        key: &str,
        version: &str,
        f: impl FnOnce(&mut Inner, &Caller, SimTime) -> Outcome<T>,
    ) -> Result<Response<T>, Status> {
        self.handle_staged(request, plane, operation, vault, key, version, f, |done| {
            (Ok(done), Duration::ZERO)
        })
        .await
    }

    /// As [`Core::handle`], in two steps: `locked` runs under the state lock (checks, effects)
    /// and hands its work `W` to `unlocked`, which runs after the lock is released and returns
    /// the answer with the HSM latency it incurred.
    #[allow(clippy::too_many_arguments)]
    async fn handle_staged<Req, T, W>(
        &self,
        request: &Request<Req>,
        plane: Plane,
        operation: &'static str,
        vault: &str,
        key: &str,
        version: &str,
        locked: impl FnOnce(&mut Inner, &Caller, SimTime) -> Result<W, KvError>,
        unlocked: impl FnOnce(W) -> (Outcome<T>, Duration),
    ) -> Result<Response<T>, Status> {
        let deadline = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(chaos::parse_grpc_timeout);
        match self.chaos.gate(deadline).await {
            Ok(()) => {}
            Err(GateError::Refused) => {
                return Err(Status::unavailable(
                    "tcp connect error: Connection refused (os error 111)",
                ))
            }
            Err(GateError::DeadlineExceeded) => {
                return Err(Status::deadline_exceeded(
                    "Key Vault did not answer (blackhole)",
                ))
            }
            Err(GateError::Azure(e)) => return Err(to_status(&e)),
        }
        let now = self.clock.now();
        let caller = auth::authenticate(&self.verifier, request.metadata(), plane, now);
        let (staged, oid, locked_latency) = {
            let mut inner = self.lock();
            // Forget HSM use by anything else (the purge task) before this call.
            inner.crypto.take_hsm_latency();
            match caller {
                Ok(caller) => {
                    let staged = locked(&mut inner, &caller, now);
                    let committed = self.commit(&mut inner, now);
                    let staged = match (staged, committed) {
                        (Ok(w), Ok(())) => Ok(w),
                        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
                    };
                    (staged, caller.object_id, inner.crypto.take_hsm_latency())
                }
                Err(e) => (Err(e), String::new(), Duration::ZERO),
            }
        };
        // The state lock is released: the private-key work runs beside other calls.
        let (result, unlocked_latency) = match staged {
            Ok(work) => unlocked(work),
            Err(e) => (Err(e), Duration::ZERO),
        };
        let (status, resolved_version) = match &result {
            Ok((_, v)) => (("Success", 200u16), v.clone()),
            Err(e) => {
                let body = e.azure();
                ((body.code, body.http_status), version.to_string())
            }
        };
        let record = AuditRecord {
            time_ms: now.0,
            principal_object_id: oid,
            operation: operation.to_string(),
            vault: vault.to_string(),
            key: key.to_string(),
            version: resolved_version,
            result: status.0.to_string(),
            http_status: status.1,
        };
        let pending = self
            .lock()
            .store
            .append_audit(&record)
            .map_err(|e| to_status(&e))?;
        // Durable before the answer goes out; waited for without the state lock, sharing one
        // flush with the calls that wait at the same time (`audit_commit`).
        pending.durable().await.map_err(|e| to_status(&e))?;
        // One call goes to the HSM at most once, in one step or the other.
        let hsm_latency = locked_latency.max(unlocked_latency);
        if !hsm_latency.is_zero() {
            // An injected HSM latency: the call went to the HSM, which answers this much later
            // (simulation clock, never the wall clock; the state lock is not held meanwhile).
            self.clock.sleep(hsm_latency).await;
        }
        result
            .map(|(t, _)| Response::new(t))
            .map_err(|e| to_status(&e))
    }
}

/// The KeyVault service.
#[derive(Clone)]
pub struct KeyVaultService {
    pub(crate) core: Arc<Core>,
}

/// The ChaosControl service.
#[derive(Clone)]
pub struct ChaosControlService {
    pub(crate) core: Arc<Core>,
}

fn key_ref(r: Option<pb::KeyRef>) -> pb::KeyRef {
    r.unwrap_or_default()
}

fn new_vault(r: pb::CreateVaultRequest) -> Result<NewVault, KvError> {
    Ok(NewVault {
        sku: convert::sku_from_pb(r.sku)?,
        access_policies: r
            .access_policies
            .iter()
            .map(convert::policy_from_pb)
            .collect::<Result<_, _>>()?,
        name: r.name,
        location: r.location,
        tenant_id: r.tenant_id,
        subscription_id: r.subscription_id,
        resource_group: r.resource_group,
        enable_soft_delete: r.enable_soft_delete,
        soft_delete_retention_days: r.soft_delete_retention_in_days,
        enable_purge_protection: r.enable_purge_protection,
    })
}

/// A key operation after its checks, before its private-key work.
enum KeyWork<T> {
    /// Answered under the lock (public-key operations need no private key).
    Answered(T, String),
    /// A private operation on `ready`, to run without the lock; `kid` and `version` name the
    /// version the checks resolved.
    Private {
        ready: Arc<Ready>,
        kid: String,
        version: String,
    },
}

/// The locked step of encrypt, wrapKey, decrypt and unwrapKey: the checks, the public-key
/// operations, and the ready key for the private ones.
fn crypto_op(
    inner: &mut Inner,
    caller: &Caller,
    now: SimTime,
    r: &pb::KeyRef,
    op: KeyOp,
    alg: &str,
    value: &[u8],
) -> Result<(KeyWork<pb::KeyOperationResult>, EncryptionAlgorithm), KvError> {
    let (view, algorithm) = inner.state.prepare_operation(
        now,
        caller,
        KeyAddr {
            vault: &r.vault_name,
            name: &r.key_name,
            version: &r.version,
        },
        op,
        alg,
    )?;
    let Algorithm::Encryption(alg) = algorithm else {
        return Err(KvError::Internal {
            message: "not an encryption algorithm".into(),
        });
    };
    let v = &view.version;
    let work = match op {
        KeyOp::Encrypt | KeyOp::WrapKey => {
            inner.crypto.check_usable(&v.private)?;
            KeyWork::Answered(
                pb::KeyOperationResult {
                    kid: view.kid(),
                    value: crate::crypto::public_encrypt(&v.public, alg, value)?,
                },
                v.version.clone(),
            )
        }
        _ => KeyWork::Private {
            ready: inner.crypto.ready(
                v.kty,
                &v.private,
                &key_id(&r.vault_name, &r.key_name, &v.version),
            )?,
            kid: view.kid(),
            version: v.version.clone(),
        },
    };
    Ok((work, alg))
}

/// The unlocked step of decrypt and unwrapKey.
fn decrypt_unlocked(
    work: KeyWork<pb::KeyOperationResult>,
    alg: EncryptionAlgorithm,
    value: &[u8],
) -> (Outcome<pb::KeyOperationResult>, Duration) {
    match work {
        KeyWork::Answered(answer, version) => (Ok((answer, version)), Duration::ZERO),
        KeyWork::Private {
            ready,
            kid,
            version,
        } => {
            let result = ready.decrypt(alg, value).map(|plain| {
                (
                    pb::KeyOperationResult {
                        kid,
                        value: plain.to_vec(),
                    },
                    version,
                )
            });
            (result, ready.added_latency())
        }
    }
}

/// The unlocked step of sign.
fn sign_unlocked(
    work: KeyWork<pb::SignResult>,
    alg: SignatureAlgorithm,
    digest: &[u8],
) -> (Outcome<pb::SignResult>, Duration) {
    match work {
        KeyWork::Answered(answer, version) => (Ok((answer, version)), Duration::ZERO),
        KeyWork::Private {
            ready,
            kid,
            version,
        } => {
            let result = ready
                .sign(alg, digest)
                .map(|signature| (pb::SignResult { kid, signature }, version));
            (result, ready.added_latency())
        }
    }
}

#[tonic::async_trait]
impl pb::key_vault_server::KeyVault for KeyVaultService {
    async fn create_vault(
        &self,
        request: Request<pb::CreateVaultRequest>,
    ) -> Result<Response<pb::Vault>, Status> {
        let r = request.get_ref().clone();
        let name = r.name.clone();
        self.core
            .handle(
                &request,
                Plane::Management,
                "VaultPut",
                &name,
                "",
                "",
                |inner, caller, now| {
                    let v = inner.state.create_vault(now, caller, new_vault(r)?)?;
                    Ok((convert::vault_to_pb(&v), String::new()))
                },
            )
            .await
    }

    async fn get_vault(
        &self,
        request: Request<pb::VaultRef>,
    ) -> Result<Response<pb::Vault>, Status> {
        let name = request.get_ref().vault_name.clone();
        self.core
            .handle(
                &request,
                Plane::Management,
                "VaultGet",
                &name,
                "",
                "",
                |inner, caller, _| {
                    Ok((
                        convert::vault_to_pb(inner.state.get_vault(caller, &name)?),
                        String::new(),
                    ))
                },
            )
            .await
    }

    async fn list_vaults(
        &self,
        request: Request<pb::ListVaultsRequest>,
    ) -> Result<Response<pb::VaultList>, Status> {
        self.core
            .handle(
                &request,
                Plane::Management,
                "VaultList",
                "",
                "",
                "",
                |inner, caller, _| {
                    let vaults = inner
                        .state
                        .list_vaults(caller)
                        .into_iter()
                        .map(convert::vault_to_pb)
                        .collect();
                    Ok((pb::VaultList { vaults }, String::new()))
                },
            )
            .await
    }

    async fn update_vault(
        &self,
        request: Request<pb::UpdateVaultRequest>,
    ) -> Result<Response<pb::Vault>, Status> {
        let r = request.get_ref().clone();
        self.core
            .handle(
                &request,
                Plane::Management,
                "VaultPatch",
                &r.vault_name,
                "",
                "",
                |inner, caller, _| {
                    let patch = VaultPatch {
                        enable_soft_delete: r.enable_soft_delete,
                        enable_purge_protection: r.enable_purge_protection,
                        soft_delete_retention_days: r.soft_delete_retention_in_days,
                    };
                    Ok((
                        convert::vault_to_pb(&inner.state.update_vault(
                            caller,
                            &r.vault_name,
                            patch,
                        )?),
                        String::new(),
                    ))
                },
            )
            .await
    }

    async fn delete_vault(
        &self,
        request: Request<pb::VaultRef>,
    ) -> Result<Response<pb::DeletedVault>, Status> {
        let name = request.get_ref().vault_name.clone();
        self.core
            .handle(
                &request,
                Plane::Management,
                "VaultDelete",
                &name,
                "",
                "",
                |inner, caller, now| {
                    let Inner { state, crypto, .. } = inner;
                    let (v, d) = state.delete_vault(now, caller, &name, crypto)?;
                    Ok((convert::deleted_vault_to_pb(&v, d), String::new()))
                },
            )
            .await
    }

    async fn get_deleted_vault(
        &self,
        request: Request<pb::VaultRef>,
    ) -> Result<Response<pb::DeletedVault>, Status> {
        let name = request.get_ref().vault_name.clone();
        self.core
            .handle(
                &request,
                Plane::Management,
                "VaultGetDeleted",
                &name,
                "",
                "",
                |inner, caller, _| {
                    let (v, d) = inner.state.get_deleted_vault(caller, &name)?;
                    Ok((convert::deleted_vault_to_pb(&v, d), String::new()))
                },
            )
            .await
    }

    async fn recover_deleted_vault(
        &self,
        request: Request<pb::VaultRef>,
    ) -> Result<Response<pb::Vault>, Status> {
        let name = request.get_ref().vault_name.clone();
        self.core
            .handle(
                &request,
                Plane::Management,
                "VaultRecover",
                &name,
                "",
                "",
                |inner, caller, _| {
                    Ok((
                        convert::vault_to_pb(&inner.state.recover_vault(caller, &name)?),
                        String::new(),
                    ))
                },
            )
            .await
    }

    async fn purge_deleted_vault(
        &self,
        request: Request<pb::VaultRef>,
    ) -> Result<Response<pb::Empty>, Status> {
        let name = request.get_ref().vault_name.clone();
        self.core
            .handle(
                &request,
                Plane::Management,
                "VaultPurge",
                &name,
                "",
                "",
                |inner, caller, now| {
                    let Inner { state, crypto, .. } = inner;
                    state.purge_vault(now, caller, &name, crypto)?;
                    Ok((pb::Empty {}, String::new()))
                },
            )
            .await
    }

    async fn set_access_policy(
        &self,
        request: Request<pb::SetAccessPolicyRequest>,
    ) -> Result<Response<pb::Vault>, Status> {
        let r = request.get_ref().clone();
        self.core
            .handle(
                &request,
                Plane::Management,
                "VaultAccessPolicyChange",
                &r.vault_name,
                "",
                "",
                |inner, caller, _| {
                    let policy = r.policy.as_ref().ok_or_else(|| KvError::BadRequest {
                        message: "The request must contain a policy.".into(),
                    })?;
                    let policy = convert::policy_from_pb(policy)?;
                    Ok((
                        convert::vault_to_pb(&inner.state.set_access_policy(
                            caller,
                            &r.vault_name,
                            policy,
                        )?),
                        String::new(),
                    ))
                },
            )
            .await
    }

    async fn remove_access_policy(
        &self,
        request: Request<pb::RemoveAccessPolicyRequest>,
    ) -> Result<Response<pb::Vault>, Status> {
        let r = request.get_ref().clone();
        self.core
            .handle(
                &request,
                Plane::Management,
                "VaultAccessPolicyChange",
                &r.vault_name,
                "",
                "",
                |inner, caller, _| {
                    Ok((
                        convert::vault_to_pb(&inner.state.remove_access_policy(
                            caller,
                            &r.vault_name,
                            &r.object_id,
                        )?),
                        String::new(),
                    ))
                },
            )
            .await
    }

    async fn create_key(
        &self,
        request: Request<pb::CreateKeyRequest>,
    ) -> Result<Response<pb::KeyBundle>, Status> {
        let r = request.get_ref().clone();
        self.core
            .handle(
                &request,
                Plane::Data,
                "KeyCreate",
                &r.vault_name,
                &r.key_name,
                "",
                |inner, caller, now| {
                    let Inner {
                        state,
                        crypto,
                        version_rng,
                        ..
                    } = inner;
                    let req = NewKey {
                        name: r.key_name.clone(),
                        kty: r.kty.clone(),
                        key_size_bits: r.key_size,
                        curve: r.curve.clone(),
                        key_ops: r.key_ops.clone(),
                        enabled: r.enabled,
                        nbf_ms: r.nbf_unix_ms,
                        exp_ms: r.exp_unix_ms,
                        tags: r.tags.clone().into_iter().collect(),
                    };
                    let view =
                        state.create_key(now, caller, &r.vault_name, req, crypto, version_rng)?;
                    Ok((convert::key_to_pb(&view), view.version.version.clone()))
                },
            )
            .await
    }

    async fn get_key(
        &self,
        request: Request<pb::KeyRef>,
    ) -> Result<Response<pb::KeyBundle>, Status> {
        let r = request.get_ref().clone();
        self.core
            .handle(
                &request,
                Plane::Data,
                "KeyGet",
                &r.vault_name,
                &r.key_name,
                &r.version,
                |inner, caller, _| {
                    let view =
                        inner
                            .state
                            .get_key(caller, &r.vault_name, &r.key_name, &r.version)?;
                    Ok((convert::key_to_pb(&view), view.version.version.clone()))
                },
            )
            .await
    }

    async fn update_key(
        &self,
        request: Request<pb::UpdateKeyRequest>,
    ) -> Result<Response<pb::KeyBundle>, Status> {
        let r = request.get_ref().clone();
        let k = key_ref(r.key.clone());
        self.core
            .handle(
                &request,
                Plane::Data,
                "KeyUpdate",
                &k.vault_name,
                &k.key_name,
                &k.version,
                |inner, caller, now| {
                    let patch = KeyPatch {
                        enabled: r.enabled,
                        nbf_ms: r.nbf_unix_ms,
                        exp_ms: r.exp_unix_ms,
                        clear_nbf: r.clear_nbf,
                        clear_exp: r.clear_exp,
                        key_ops: r.key_ops.clone(),
                        tags: r.tags.clone().into_iter().collect(),
                    };
                    let view = inner.state.update_key(
                        now,
                        caller,
                        &k.vault_name,
                        &k.key_name,
                        &k.version,
                        patch,
                    )?;
                    Ok((convert::key_to_pb(&view), view.version.version.clone()))
                },
            )
            .await
    }

    async fn list_keys(
        &self,
        request: Request<pb::VaultRef>,
    ) -> Result<Response<pb::KeyList>, Status> {
        let name = request.get_ref().vault_name.clone();
        self.core
            .handle(
                &request,
                Plane::Data,
                "KeyList",
                &name,
                "",
                "",
                |inner, caller, _| {
                    let keys = inner
                        .state
                        .list_keys(caller, &name)?
                        .iter()
                        .map(convert::key_to_pb)
                        .collect();
                    Ok((pb::KeyList { keys }, String::new()))
                },
            )
            .await
    }

    async fn list_key_versions(
        &self,
        request: Request<pb::KeyRef>,
    ) -> Result<Response<pb::KeyList>, Status> {
        let r = request.get_ref().clone();
        self.core
            .handle(
                &request,
                Plane::Data,
                "KeyListVersions",
                &r.vault_name,
                &r.key_name,
                "",
                |inner, caller, _| {
                    let keys = inner
                        .state
                        .list_key_versions(caller, &r.vault_name, &r.key_name)?
                        .iter()
                        .map(convert::key_to_pb)
                        .collect();
                    Ok((pb::KeyList { keys }, String::new()))
                },
            )
            .await
    }

    async fn rotate_key(
        &self,
        request: Request<pb::KeyRef>,
    ) -> Result<Response<pb::KeyBundle>, Status> {
        let r = request.get_ref().clone();
        self.core
            .handle(
                &request,
                Plane::Data,
                "KeyRotate",
                &r.vault_name,
                &r.key_name,
                "",
                |inner, caller, now| {
                    let Inner {
                        state,
                        crypto,
                        version_rng,
                        ..
                    } = inner;
                    let view = state.rotate_key(
                        now,
                        caller,
                        &r.vault_name,
                        &r.key_name,
                        crypto,
                        version_rng,
                    )?;
                    Ok((convert::key_to_pb(&view), view.version.version.clone()))
                },
            )
            .await
    }

    async fn delete_key(
        &self,
        request: Request<pb::KeyRef>,
    ) -> Result<Response<pb::DeletedKeyBundle>, Status> {
        let r = request.get_ref().clone();
        self.core
            .handle(
                &request,
                Plane::Data,
                "KeyDelete",
                &r.vault_name,
                &r.key_name,
                "",
                |inner, caller, now| {
                    let Inner { state, crypto, .. } = inner;
                    let view = state.delete_key(now, caller, &r.vault_name, &r.key_name, crypto)?;
                    Ok((convert::deleted_key_to_pb(&view), String::new()))
                },
            )
            .await
    }

    async fn get_deleted_key(
        &self,
        request: Request<pb::KeyRef>,
    ) -> Result<Response<pb::DeletedKeyBundle>, Status> {
        let r = request.get_ref().clone();
        self.core
            .handle(
                &request,
                Plane::Data,
                "KeyGetDeleted",
                &r.vault_name,
                &r.key_name,
                "",
                |inner, caller, _| {
                    let view = inner
                        .state
                        .get_deleted_key(caller, &r.vault_name, &r.key_name)?;
                    Ok((convert::deleted_key_to_pb(&view), String::new()))
                },
            )
            .await
    }

    async fn recover_deleted_key(
        &self,
        request: Request<pb::KeyRef>,
    ) -> Result<Response<pb::KeyBundle>, Status> {
        let r = request.get_ref().clone();
        self.core
            .handle(
                &request,
                Plane::Data,
                "KeyRecover",
                &r.vault_name,
                &r.key_name,
                "",
                |inner, caller, _| {
                    let view =
                        inner
                            .state
                            .recover_deleted_key(caller, &r.vault_name, &r.key_name)?;
                    Ok((convert::key_to_pb(&view), view.version.version.clone()))
                },
            )
            .await
    }

    async fn purge_deleted_key(
        &self,
        request: Request<pb::KeyRef>,
    ) -> Result<Response<pb::Empty>, Status> {
        let r = request.get_ref().clone();
        self.core
            .handle(
                &request,
                Plane::Data,
                "KeyPurge",
                &r.vault_name,
                &r.key_name,
                "",
                |inner, caller, now| {
                    let Inner { state, crypto, .. } = inner;
                    state.purge_deleted_key(now, caller, &r.vault_name, &r.key_name, crypto)?;
                    Ok((pb::Empty {}, String::new()))
                },
            )
            .await
    }

    async fn wrap_key(
        &self,
        request: Request<pb::KeyOperationRequest>,
    ) -> Result<Response<pb::KeyOperationResult>, Status> {
        self.key_operation(request, KeyOp::WrapKey, "KeyWrap").await
    }

    async fn unwrap_key(
        &self,
        request: Request<pb::KeyOperationRequest>,
    ) -> Result<Response<pb::KeyOperationResult>, Status> {
        self.key_operation(request, KeyOp::UnwrapKey, "KeyUnwrap")
            .await
    }

    async fn encrypt(
        &self,
        request: Request<pb::KeyOperationRequest>,
    ) -> Result<Response<pb::KeyOperationResult>, Status> {
        self.key_operation(request, KeyOp::Encrypt, "KeyEncrypt")
            .await
    }

    async fn decrypt(
        &self,
        request: Request<pb::KeyOperationRequest>,
    ) -> Result<Response<pb::KeyOperationResult>, Status> {
        self.key_operation(request, KeyOp::Decrypt, "KeyDecrypt")
            .await
    }

    async fn sign(
        &self,
        request: Request<pb::SignRequest>,
    ) -> Result<Response<pb::SignResult>, Status> {
        let r = request.get_ref().clone();
        let k = key_ref(r.key.clone());
        self.core
            .handle_staged(
                &request,
                Plane::Data,
                "KeySign",
                &k.vault_name,
                &k.key_name,
                &k.version,
                |inner, caller, now| {
                    let (view, algorithm) = inner.state.prepare_operation(
                        now,
                        caller,
                        KeyAddr {
                            vault: &k.vault_name,
                            name: &k.key_name,
                            version: &k.version,
                        },
                        KeyOp::Sign,
                        &r.algorithm,
                    )?;
                    let Algorithm::Signature(alg) = algorithm else {
                        return Err(KvError::Internal {
                            message: "not a signature algorithm".into(),
                        });
                    };
                    let v = &view.version;
                    let work = KeyWork::Private {
                        ready: inner.crypto.ready_to_sign(
                            v.kty,
                            &v.private,
                            &key_id(&k.vault_name, &k.key_name, &v.version),
                            alg,
                            &r.digest,
                        )?,
                        kid: view.kid(),
                        version: v.version.clone(),
                    };
                    Ok((work, alg))
                },
                |(work, alg)| sign_unlocked(work, alg, &r.digest),
            )
            .await
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResult>, Status> {
        let r = request.get_ref().clone();
        let k = key_ref(r.key.clone());
        self.core
            .handle(
                &request,
                Plane::Data,
                "KeyVerify",
                &k.vault_name,
                &k.key_name,
                &k.version,
                |inner, caller, now| {
                    let (view, algorithm) = inner.state.prepare_operation(
                        now,
                        caller,
                        KeyAddr {
                            vault: &k.vault_name,
                            name: &k.key_name,
                            version: &k.version,
                        },
                        KeyOp::Verify,
                        &r.algorithm,
                    )?;
                    let Algorithm::Signature(alg) = algorithm else {
                        return Err(KvError::Internal {
                            message: "not a signature algorithm".into(),
                        });
                    };
                    inner.crypto.check_usable(&view.version.private)?;
                    let valid = crate::crypto::public_verify(
                        &view.version.public,
                        alg,
                        &r.digest,
                        &r.signature,
                    )?;
                    Ok((pb::VerifyResult { valid }, view.version.version.clone()))
                },
            )
            .await
    }

    async fn query_audit(
        &self,
        request: Request<pb::AuditQuery>,
    ) -> Result<Response<pb::AuditRecords>, Status> {
        let r = request.get_ref().clone();
        self.core
            .handle(
                &request,
                Plane::Management,
                "AuditQuery",
                &r.vault_name,
                &r.key_name,
                &r.key_version,
                |inner, caller, _| {
                    // Reading a vault's audit log is a management right on that vault.
                    inner.state.get_vault(caller, &r.vault_name)?;
                    let query = AuditQuery {
                        vault: r.vault_name.clone(),
                        key: r.key_name.clone(),
                        version: r.key_version.clone(),
                        from_ms: r.from_unix_ms,
                        to_ms: r.to_unix_ms,
                        limit: r.limit as usize,
                    };
                    let answer = inner.store.query_audit(&query)?;
                    let records = answer
                        .records
                        .into_iter()
                        .map(|a| pb::AuditRecord {
                            time_unix_ms: a.time_ms,
                            principal_object_id: a.principal_object_id,
                            operation: a.operation,
                            vault_name: a.vault,
                            key_name: a.key,
                            key_version: a.version,
                            result: a.result,
                            http_status: u32::from(a.http_status),
                        })
                        .collect();
                    Ok((
                        pb::AuditRecords {
                            records,
                            total_matched: answer.total_matched,
                        },
                        String::new(),
                    ))
                },
            )
            .await
    }
}

impl KeyVaultService {
    async fn key_operation(
        &self,
        request: Request<pb::KeyOperationRequest>,
        op: KeyOp,
        operation: &'static str,
    ) -> Result<Response<pb::KeyOperationResult>, Status> {
        let r = request.get_ref().clone();
        let k = key_ref(r.key.clone());
        self.core
            .handle_staged(
                &request,
                Plane::Data,
                operation,
                &k.vault_name,
                &k.key_name,
                &k.version,
                |inner, caller, now| crypto_op(inner, caller, now, &k, op, &r.algorithm, &r.value),
                |(work, alg)| decrypt_unlocked(work, alg, &r.value),
            )
            .await
    }
}

/// The HSM of this Key Vault, or the refusal of an HSM fault when it runs without one.
fn attached_hsm(crypto: &mut Crypto) -> Result<&mut crate::hsm::HsmKeys, Status> {
    crypto.hsm_keys().ok_or_else(|| {
        Status::failed_precondition("this Key Vault runs without an HSM (without_hsm)")
    })
}

fn settings_to_pb(s: ChaosSettings) -> pb::ChaosSettings {
    pb::ChaosSettings {
        mode: match s.mode {
            ChaosMode::Up => pb::ChaosMode::Up,
            ChaosMode::Down => pb::ChaosMode::Down,
            ChaosMode::Blackhole => pb::ChaosMode::Blackhole,
            ChaosMode::ErrorRate => pb::ChaosMode::ErrorRate,
            ChaosMode::Throttle => pb::ChaosMode::Throttle,
        } as i32,
        error_rate: s.error_rate,
        retry_after_seconds: s.retry_after_seconds,
        added_latency_ms: s.added_latency_ms,
    }
}

#[tonic::async_trait]
impl pb::chaos_control_server::ChaosControl for ChaosControlService {
    async fn set_chaos(
        &self,
        request: Request<pb::ChaosSettings>,
    ) -> Result<Response<pb::ChaosSettings>, Status> {
        let r = request.into_inner();
        let mode = match pb::ChaosMode::try_from(r.mode) {
            Ok(pb::ChaosMode::Up) | Ok(pb::ChaosMode::Unspecified) => ChaosMode::Up,
            Ok(pb::ChaosMode::Down) => ChaosMode::Down,
            Ok(pb::ChaosMode::Blackhole) => ChaosMode::Blackhole,
            Ok(pb::ChaosMode::ErrorRate) => ChaosMode::ErrorRate,
            Ok(pb::ChaosMode::Throttle) => ChaosMode::Throttle,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "unknown chaos mode {}",
                    r.mode
                )))
            }
        };
        let settings = ChaosSettings {
            mode,
            error_rate: r.error_rate,
            retry_after_seconds: r.retry_after_seconds,
            added_latency_ms: r.added_latency_ms,
        };
        self.core
            .chaos
            .set(settings)
            .map_err(Status::invalid_argument)?;
        self.core.events.record(
            self.core.clock.now(),
            EVENT_SOURCE,
            &KeyVaultEvent::ChaosChanged {
                mode: mode.as_str().into(),
                error_rate: settings.error_rate,
                retry_after_seconds: settings.retry_after_seconds,
                added_latency_ms: settings.added_latency_ms,
            },
        );
        Ok(Response::new(settings_to_pb(settings)))
    }

    async fn get_chaos(
        &self,
        _request: Request<pb::Empty>,
    ) -> Result<Response<pb::ChaosSettings>, Status> {
        Ok(Response::new(settings_to_pb(self.core.chaos.settings())))
    }

    async fn set_hsm_fault(
        &self,
        request: Request<pb::HsmFaultRequest>,
    ) -> Result<Response<pb::HsmFaultStatus>, Status> {
        let r = request.into_inner();
        let mode = HsmFaultMode::parse(&r.mode, r.latency_ms).map_err(Status::invalid_argument)?;
        let now = self.core.clock.now();
        let (event, status) = {
            let mut inner = self.core.lock();
            let crypto = &mut inner.crypto;
            let mut keys_zeroised = 0;
            let event = match mode {
                HsmFaultMode::Ok => {
                    attached_hsm(crypto)?.set_fault(HsmFault::None);
                    HsmEvent::DeviceOk
                }
                HsmFaultMode::DeviceError => {
                    attached_hsm(crypto)?.set_fault(HsmFault::DeviceError);
                    HsmEvent::DeviceError
                }
                HsmFaultMode::Latency(latency) => {
                    attached_hsm(crypto)?.set_fault(HsmFault::Latency(latency));
                    HsmEvent::DeviceLatency {
                        latency_ms: latency.as_millis() as u64,
                    }
                }
                HsmFaultMode::Tamper => {
                    attached_hsm(crypto)?;
                    // Through the backend, which also drops every ready HSM key.
                    keys_zeroised = crypto.tamper_hsm().map_err(|e| to_status(&e))?;
                    HsmEvent::Tampered { keys_zeroised }
                }
            };
            let hsm = attached_hsm(crypto)?;
            let (mode, latency_ms) = match hsm.module().fault() {
                HsmFault::None => ("ok", 0),
                HsmFault::DeviceError => ("device-error", 0),
                HsmFault::Latency(d) => ("latency", d.as_millis() as u64),
            };
            (
                event,
                pb::HsmFaultStatus {
                    mode: mode.to_string(),
                    latency_ms,
                    keys_zeroised,
                },
            )
        };
        self.core.events.record(now, HSM_EVENT_SOURCE, &event);
        Ok(Response::new(status))
    }
}
