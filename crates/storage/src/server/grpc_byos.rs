//! `storage.v1.Byos`: queries in the customer's own storage (seed 000 "CMK for queries") over
//! gRPC. The rules (one account per type, same region, linking `Query` removes the workspace's
//! saved searches, readability) are in [`crate::control::byos`]; this adapter does the I/O they
//! need:
//! - a storage account gets its own system-assigned identity from the identity authority (its
//!   credentials kept in the control store beside the clusters', `identity/storage-account:<id>`);
//! - a Key Vault key is validated as that identity with the cluster's rules and messages
//!   ([`super::facts::gather`], `validate_key_update`), then a fresh 256-bit account data key is
//!   wrapped by it through Key Vault (`wrapKey`, RSA-OAEP-256) and only the wrapped form is kept;
//! - a query saved in such an account is sealed with AES-256-GCM under a key derived from the
//!   account's data key (the data plane's HKDF and AEAD helpers, [`crate::data::keys`]); every
//!   read or write unwraps the data key through Key Vault first, so a disabled or revoked key
//!   makes the account's queries unreadable at once, and readable again when it returns;
//! - the control tick checks each Key Vault account's key every `byos.key_check_interval`
//!   ([`Core::byos_tick`]), so the loss and the return are in the event log even when nobody
//!   reads.
//!
//! Calls that reach Key Vault are serialised by `slow_ops` (as cluster creates and key updates
//! are), so that what they validated still holds when they apply.

use std::collections::BTreeMap;
use std::sync::Arc;

use cmksim_proto::storage::v1 as pb;
use cmksim_sim::SimTime;
use rand::RngCore;
use tonic::{Code, Request, Response, Status};
use zeroize::Zeroizing;

use crate::control::byos::{
    storage_account_id, AccountEncryption, AccountIdentity, ByosError, ByosEvent,
    ByosOrControlError, DataSourceType, NewQuery, Place, SavedQuery, SealedText, StorageAccount,
    WrappedAccountKey, KEY_SOURCE_KEY_VAULT,
};
use crate::control::{vault_name_from_uri, KeyVaultPropertiesInput};
use crate::data::keys::{self, Aek, NONCE_LEN_BYTES};
use crate::keyloop::driver::{VaultAccess, WrappedAek};
use crate::keyloop::{AccessFailure, GrpcVaultAccess, KeyTarget, ManagedIdentityCredentials};
use crate::service::status::{azure_status, control_status};

use super::convert::workspace_name;
use super::core::Core;
use super::persist::StoredIdentity;

/// The table part of the key-derivation info of a sealed saved query (the data plane's DEK
/// derivation takes a workspace and a table; a saved query is no table, so it gets this label).
const SEALED_QUERY_LABEL: &str = "cmksim saved query v1";

pub struct ByosService {
    pub core: Arc<Core>,
}

fn byos_status(error: &ByosError) -> Status {
    let (code, http) = error.code_and_status();
    let grpc = match http {
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::FailedPrecondition,
        _ => Code::InvalidArgument,
    };
    azure_status(grpc, code, http, &error.to_string())
}

fn internal(what: &str, e: impl std::fmt::Display) -> Status {
    azure_status(
        Code::Internal,
        "InternalServerError",
        500,
        &format!("{what}: {e}"),
    )
}

fn kind_of(text: &str) -> Result<DataSourceType, Status> {
    DataSourceType::parse(text).ok_or_else(|| {
        byos_status(&ByosError::DataSourceTypeInvalid(cmksim_sim::text::echo(
            text,
        )))
    })
}

fn identity_key(account_id: &str) -> String {
    format!("storage-account:{}", account_id.to_ascii_lowercase())
}

fn account_to_pb(a: &StorageAccount) -> pb::StorageAccount {
    let kvp = match &a.encryption {
        AccountEncryption::MicrosoftKey => None,
        AccountEncryption::KeyVault { key } => Some(pb::KeyVaultProperties {
            key_vault_uri: key.key_vault_uri.clone(),
            key_name: key.key_name.clone(),
            key_version: key.key_version.clone().unwrap_or_default(),
        }),
    };
    let (principal_id, tenant_id) = a
        .identity
        .as_ref()
        .map(|i| (i.principal_id.clone(), i.tenant_id.clone()))
        .unwrap_or_default();
    pb::StorageAccount {
        id: a.id.clone(),
        location: a.location.clone(),
        key_source: a.encryption.key_source().to_string(),
        key_vault_properties: kvp,
        principal_id,
        tenant_id,
        key_state: a.key_access.as_str().to_string(),
    }
}

/// The plaintext of a saved query as sealed: its text, category and display name.
#[derive(serde::Serialize, serde::Deserialize)]
struct Content {
    query: String,
    category: String,
    display_name: String,
}

fn query_to_pb(q: &SavedQuery, content: Content) -> pb::SavedQuery {
    pb::SavedQuery {
        kind: q.kind.as_str().to_string(),
        name: q.name.clone(),
        category: content.category,
        display_name: content.display_name,
        query: content.query,
        place: match &q.place {
            Place::Workspace => "workspace".to_string(),
            Place::Account(a) => a.clone(),
        },
        saved_unix_ms: q.saved_at.unix_ms(),
    }
}

/// The associated data of a sealed query: it binds the ciphertext to its workspace, kind and
/// name, so a sealed text moved to another query does not open.
fn aad(workspace: &str, kind: DataSourceType, name: &str) -> Vec<u8> {
    format!(
        "{SEALED_QUERY_LABEL}\0{}\0{}\0{}",
        workspace.to_ascii_lowercase(),
        kind.as_str(),
        name.to_ascii_lowercase()
    )
    .into_bytes()
}

fn seal(
    data_key: &Aek,
    nonce: [u8; NONCE_LEN_BYTES],
    seq: u64,
    workspace: &str,
    kind: DataSourceType,
    name: &str,
    content: &Content,
) -> Result<SealedText, Status> {
    let dek = keys::dek_from_aek(data_key, seq, workspace, SEALED_QUERY_LABEL, None);
    let mut buffer =
        serde_json::to_vec(content).map_err(|e| internal("encoding a saved query", e))?;
    keys::seal(
        &ring::aead::AES_256_GCM,
        &dek,
        nonce,
        &aad(workspace, kind, name),
        &mut buffer,
    );
    Ok(SealedText {
        seq,
        nonce_hex: hex::encode(nonce),
        ciphertext_hex: hex::encode(buffer),
    })
}

fn open(data_key: &Aek, workspace: &str, q: &SavedQuery) -> Result<Content, Status> {
    let Some(sealed) = &q.sealed else {
        return Ok(Content {
            query: q.query.clone(),
            category: q.category.clone(),
            display_name: q.display_name.clone(),
        });
    };
    let bad = |what: &str| internal("opening a saved query", what);
    let nonce: [u8; NONCE_LEN_BYTES] = hex::decode(&sealed.nonce_hex)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or_else(|| bad("malformed nonce"))?;
    let mut buffer = hex::decode(&sealed.ciphertext_hex).map_err(|_| bad("malformed text"))?;
    let dek = keys::dek_from_aek(data_key, sealed.seq, workspace, SEALED_QUERY_LABEL, None);
    keys::open(
        &ring::aead::AES_256_GCM,
        &dek,
        nonce,
        &aad(workspace, q.kind, &q.name),
        &mut buffer,
    )
    .ok_or_else(|| bad("not authentic under the account's data key"))?;
    serde_json::from_slice(&buffer).map_err(|e| internal("decoding a saved query", e))
}

impl Core {
    fn record_byos(&self, now: SimTime, events: &[ByosEvent]) {
        for event in events {
            super::events::record_event(&self.events, now, event);
        }
    }

    /// Persists the control state, then records `events`.
    fn byos_commit(
        &self,
        now: SimTime,
        control: std::sync::MutexGuard<'_, crate::control::ControlPlane>,
        events: &[ByosEvent],
    ) -> Result<(), Status> {
        self.persist_control(control.state())
            .map_err(|e| internal("persisting the control state", e))?;
        drop(control);
        self.record_byos(now, events);
        Ok(())
    }

    /// Key Vault as the account's identity.
    fn account_vault(&self, account_id: &str) -> Result<GrpcVaultAccess, Status> {
        let identity = self
            .meta
            .identity(&identity_key(account_id))
            .map_err(|e| internal("reading the storage account identity", e))?
            .ok_or_else(|| internal("storage account identity", "missing"))?;
        Ok(GrpcVaultAccess::new(
            self.kv_channel.clone(),
            self.identity_channel.clone(),
            ManagedIdentityCredentials {
                object_id: identity.object_id,
                secret: Zeroizing::new(identity.secret),
            },
            self.clock.clone(),
        ))
    }

    /// Unwraps the account's data key through Key Vault as the account's identity, and records
    /// what that says about the key (lost, restored). `Ok(None)` for an account under the
    /// Microsoft key. A denial becomes the account's refusal (naming it, its key and why); Key
    /// Vault out of reach is a 503 and changes nothing.
    pub(crate) async fn unwrap_account_key(&self, account_id: &str) -> Result<Option<Aek>, Status> {
        let (key, wrapped) = {
            let control = self.control();
            let account = control
                .storage_account(account_id)
                .map_err(|e| byos_status(&e))?;
            match (&account.encryption, &account.wrapped_key) {
                (AccountEncryption::KeyVault { key }, Some(w)) => (key.clone(), w.clone()),
                _ => return Ok(None),
            }
        };
        let target = KeyTarget {
            key: super::host::loop_key_ref(&key)
                .ok_or_else(|| internal("the account's key", "malformed vault uri"))?,
            wrapped_version: wrapped.kid_version.clone(),
        };
        let ciphertext = hex::decode(&wrapped.ciphertext_hex)
            .map_err(|e| internal("the account's wrapped key", e))?;
        let vault = self.account_vault(account_id)?;
        let result = vault
            .unwrap_aek(&WrappedAek {
                target,
                algorithm: wrapped.algorithm.clone(),
                ciphertext,
            })
            .await;
        let now = self.now();
        let (checked, data_key) = match result {
            Ok(unwrapped) => (
                Ok(()),
                Some(
                    Aek::from_bytes(&unwrapped.aek[..])
                        .map_err(|e| internal("the account's data key", e))?,
                ),
            ),
            Err(AccessFailure::Denial(d)) => (
                Err(format!("{} {}: {}", d.http_status, d.code, d.message)),
                None,
            ),
            Err(AccessFailure::Transient(t)) => {
                return Err(azure_status(
                    Code::Unavailable,
                    "KeyVaultUnavailable",
                    503,
                    &format!(
                        "Key Vault could not be reached to unwrap the key of storage account {}: {} ({}).",
                        account_id.rsplit('/').next().unwrap_or(account_id),
                        t.kind.label(),
                        t.detail
                    ),
                ))
            }
        };
        let mut control = self.control();
        let events = control
            .account_key_checked(now, account_id, checked)
            .map_err(|e| byos_status(&e))?;
        let refusal = match data_key {
            Some(_) => None,
            None => Some(
                control
                    .storage_account(account_id)
                    .map(StorageAccount::refusal)
                    .map_err(|e| byos_status(&e))?,
            ),
        };
        if !events.is_empty() {
            self.byos_commit(now, control, &events)?;
        }
        match refusal {
            Some(refusal) => Err(byos_status(&refusal)),
            None => Ok(data_key),
        }
    }

    /// Checks every Key Vault account's key whose last check is `byos.key_check_interval` old
    /// (control tick). At most [`crate::control::byos::STORAGE_ACCOUNTS_MAX`] unwraps a tick.
    pub async fn byos_tick(&self, last_checked: &mut BTreeMap<String, SimTime>) {
        let now = self.now();
        let interval = self.profile.byos.key_check_interval;
        let due: Vec<String> = {
            let control = self.control();
            control
                .byos()
                .accounts_to_check()
                .into_iter()
                .map(|(id, _)| id.to_string())
                .filter(|id| {
                    last_checked
                        .get(id)
                        .is_none_or(|at| at.add(interval) <= now)
                })
                .collect()
        };
        for id in due {
            let _slow = self.slow_ops.lock().await;
            match self.unwrap_account_key(&id).await {
                Ok(_) => {}
                Err(s) if s.code() == Code::PermissionDenied => {}
                Err(s) => tracing::warn!(account = %id, "storage: BYOS key check: {}", s.message()),
            }
            last_checked.insert(id, now);
        }
    }
}

impl ByosService {
    async fn create_identity(&self, tenant: &str, arm_id: &str) -> Result<StoredIdentity, Status> {
        super::system_identity::create(&self.core, "storage account", tenant, arm_id).await
    }

    /// Validates `input` as the account's identity and wraps a fresh data key with it.
    async fn encrypt_with(
        &self,
        id: &str,
        input: &KeyVaultPropertiesInput,
    ) -> Result<(crate::control::KeyRef, WrappedAccountKey), Status> {
        let core = &self.core;
        let vault_name = vault_name_from_uri(&input.key_vault_uri).unwrap_or_default();
        let identity = core
            .meta
            .identity(&identity_key(id))
            .map_err(|e| internal("reading the storage account identity", e))?
            .ok_or_else(|| internal("storage account identity", "missing"))?;
        let facts = super::facts::gather(
            &core.kv_channel,
            &core.identity_channel,
            &identity,
            &vault_name,
            input,
        )
        .await
        .map_err(|s| {
            azure_status(
                Code::Unavailable,
                "KeyVaultUnavailable",
                503,
                &format!("Key Vault could not be reached: {}", s.message()),
            )
        })?;
        let key = {
            let control = core.control();
            control
                .validate_account_key(id, input, &facts)
                .map_err(|e| core.byos_error_locked(&control, e))?
        };
        let loop_key = super::host::loop_key_ref(&key)
            .ok_or_else(|| internal("the account's key", "malformed vault uri"))?;
        let data_key = {
            let mut rng = core.data.lock_rng();
            let mut bytes = Zeroizing::new([0u8; keys::KEY_LEN_BYTES]);
            rng.fill_bytes(bytes.as_mut());
            bytes
        };
        let wrapped = core
            .account_vault(id)?
            .wrap_aek(&loop_key, data_key.as_ref())
            .await
            .map_err(|f| match f {
                AccessFailure::Transient(_) => azure_status(
                    Code::Unavailable,
                    "KeyVaultUnavailable",
                    503,
                    &format!(
                        "Key Vault could not be reached to wrap the storage account's key: {f}"
                    ),
                ),
                AccessFailure::Denial(_) => azure_status(
                    Code::PermissionDenied,
                    "KeyVaultAccessDenied",
                    403,
                    &format!("The key could not wrap the storage account's key: {f}"),
                ),
            })?;
        Ok((
            key,
            WrappedAccountKey {
                kid_version: wrapped.target.wrapped_version,
                algorithm: wrapped.algorithm,
                ciphertext_hex: hex::encode(wrapped.ciphertext),
            },
        ))
    }
}

#[tonic::async_trait]
impl pb::byos_server::Byos for ByosService {
    async fn put_storage_account(
        &self,
        request: Request<pb::PutStorageAccountRequest>,
    ) -> Result<Response<pb::StorageAccount>, Status> {
        let r = request.into_inner();
        let core = &self.core;
        let a = r.account.clone().unwrap_or_default();
        let id = storage_account_id(&a.subscription_id, &a.resource_group, &a.account_name);
        let _slow = core.slow_ops.lock().await;
        let exists = core.control().storage_account(&id).is_ok();
        if !exists {
            {
                let control = core.control();
                control
                    .validate_storage_account(&a.account_name, &r.location)
                    .map_err(|e| core.byos_error_locked(&control, e))?;
            }
            let identity = self.create_identity(&r.tenant_id, &id).await?;
            let now = core.now();
            let mut control = core.control();
            let events = control
                .create_storage_account(
                    &a.subscription_id,
                    &a.resource_group,
                    &a.account_name,
                    &r.location,
                    AccountIdentity {
                        principal_id: identity.object_id.clone(),
                        tenant_id: identity.tenant_id.clone(),
                    },
                )
                .map_err(|e| core.byos_error_locked(&control, e))?;
            core.meta
                .save_identity(&identity_key(&id), &identity)
                .map_err(|e| internal("storing the storage account identity", e))?;
            core.byos_commit(now, control, &events)?;
        }
        if r.key_source.eq_ignore_ascii_case(KEY_SOURCE_KEY_VAULT) {
            let k = r.key_vault_properties.clone().unwrap_or_default();
            let input = KeyVaultPropertiesInput {
                key_vault_uri: k.key_vault_uri,
                key_name: k.key_name,
                key_version: k.key_version,
            };
            let (key, wrapped) = self.encrypt_with(&id, &input).await?;
            let now = core.now();
            let mut control = core.control();
            let events = control
                .set_account_key(&id, key, wrapped)
                .map_err(|e| core.byos_error_locked(&control, e))?;
            core.byos_commit(now, control, &events)?;
        }
        let control = core.control();
        let account = control.storage_account(&id).map_err(|e| byos_status(&e))?;
        Ok(Response::new(account_to_pb(account)))
    }

    async fn get_storage_account(
        &self,
        request: Request<pb::StorageAccountRef>,
    ) -> Result<Response<pb::StorageAccount>, Status> {
        let a = request.into_inner();
        let id = storage_account_id(&a.subscription_id, &a.resource_group, &a.account_name);
        let control = self.core.control();
        let account = control.storage_account(&id).map_err(|e| byos_status(&e))?;
        Ok(Response::new(account_to_pb(account)))
    }

    async fn link_storage_account(
        &self,
        request: Request<pb::LinkStorageAccountRequest>,
    ) -> Result<Response<pb::LinkedStorageAccount>, Status> {
        let r = request.into_inner();
        let kind = kind_of(&r.data_source_type)?;
        let resource = workspace_name(r.workspace.as_ref());
        let core = &self.core;
        let _slow = core.slow_ops.lock().await;
        let now = core.now();
        let mut control = core.control();
        let (removed, events) = control
            .link_storage_account(&resource, kind, &r.storage_account_ids)
            .map_err(|e| core.byos_error_locked(&control, e))?;
        let linked = control
            .byos()
            .linked(&resource.key(crate::control::ResourceKind::Workspace), kind)
            .map(|a| vec![a.id.clone()])
            .unwrap_or_default();
        core.byos_commit(now, control, &events)?;
        Ok(Response::new(pb::LinkedStorageAccount {
            data_source_type: kind.as_str().to_string(),
            storage_account_ids: linked,
            saved_searches_removed: removed,
        }))
    }

    async fn unlink_storage_account(
        &self,
        request: Request<pb::LinkedStorageAccountRef>,
    ) -> Result<Response<pb::UnlinkedStorageAccount>, Status> {
        let r = request.into_inner();
        let kind = kind_of(&r.data_source_type)?;
        let resource = workspace_name(r.workspace.as_ref());
        let core = &self.core;
        let _slow = core.slow_ops.lock().await;
        let now = core.now();
        let mut control = core.control();
        let (account, left, events) = control
            .unlink_storage_account(&resource, kind)
            .map_err(|e| core.byos_error_locked(&control, e))?;
        if account.is_some() {
            core.byos_commit(now, control, &events)?;
        }
        Ok(Response::new(pb::UnlinkedStorageAccount {
            unlinked: account.is_some(),
            storage_account_id: account.unwrap_or_default(),
            queries_left_in_account: left,
        }))
    }

    async fn get_linked_storage_account(
        &self,
        request: Request<pb::LinkedStorageAccountRef>,
    ) -> Result<Response<pb::LinkedStorageAccount>, Status> {
        let r = request.into_inner();
        let kind = kind_of(&r.data_source_type)?;
        let resource = workspace_name(r.workspace.as_ref());
        let control = self.core.control();
        let ws = control
            .byos_workspace(&resource)
            .map_err(|e| self.core.byos_error_locked(&control, e))?;
        let account = control.byos().linked(&ws, kind).ok_or_else(|| {
            byos_status(&ByosError::LinkNotFound {
                workspace: resource.name.clone(),
                kind: kind.as_str(),
            })
        })?;
        Ok(Response::new(pb::LinkedStorageAccount {
            data_source_type: kind.as_str().to_string(),
            storage_account_ids: vec![account.id.clone()],
            saved_searches_removed: 0,
        }))
    }

    async fn save_query(
        &self,
        request: Request<pb::SaveQueryRequest>,
    ) -> Result<Response<pb::SavedQuery>, Status> {
        let r = request.into_inner();
        let kind = kind_of(&r.kind)?;
        let resource = workspace_name(r.workspace.as_ref());
        let core = &self.core;
        let _slow = core.slow_ops.lock().await;
        let (ws, linked) = {
            let control = core.control();
            let ws = control
                .byos_workspace(&resource)
                .map_err(|e| core.byos_error_locked(&control, e))?;
            let linked = control.byos().linked(&ws, kind).map(|a| a.id.clone());
            (ws, linked)
        };
        // Unwrap first: a key that was disabled since the last check refuses the write now.
        let data_key = match &linked {
            Some(account) => core.unwrap_account_key(account).await?,
            None => None,
        };
        let content = Content {
            query: r.query.clone(),
            category: r.category.clone(),
            display_name: r.display_name.clone(),
        };
        let now = core.now();
        let mut control = core.control();
        let place = control
            .byos()
            .place_for(&ws, kind)
            .map_err(|e| byos_status(&e))?;
        let sealed = match (&place, &data_key) {
            (Place::Account(a), Some(data_key)) => {
                let seq = control
                    .storage_account(a)
                    .map_err(|e| byos_status(&e))?
                    .sealed_count;
                let mut nonce = [0u8; NONCE_LEN_BYTES];
                core.data.lock_rng().fill_bytes(&mut nonce);
                Some(seal(data_key, nonce, seq, &ws, kind, &r.name, &content)?)
            }
            _ => None,
        };
        let new = NewQuery {
            kind,
            name: r.name.clone(),
            category: r.category,
            display_name: r.display_name,
            query: r.query,
            sealed,
        };
        let events = control
            .save_query(now, &ws, place, new)
            .map_err(|e| core.byos_error_locked(&control, e))?;
        let saved = control
            .byos()
            .find(&ws, kind, &r.name)
            .cloned()
            .ok_or_else(|| internal("the saved query", "missing after save"))?;
        core.byos_commit(now, control, &events)?;
        Ok(Response::new(query_to_pb(&saved, content)))
    }

    async fn get_saved_query(
        &self,
        request: Request<pb::SavedQueryRef>,
    ) -> Result<Response<pb::SavedQuery>, Status> {
        let r = request.into_inner();
        let kind = kind_of(&r.kind)?;
        let resource = workspace_name(r.workspace.as_ref());
        let queries = self.read(&resource, kind, Some(&r.name)).await?;
        let found = queries.into_iter().next().ok_or_else(|| {
            byos_status(&ByosError::QueryNotFound {
                workspace: resource.name.clone(),
                name: cmksim_sim::text::echo(&r.name),
            })
        })?;
        Ok(Response::new(found))
    }

    async fn list_saved_queries(
        &self,
        request: Request<pb::ListSavedQueriesRequest>,
    ) -> Result<Response<pb::SavedQueryList>, Status> {
        let r = request.into_inner();
        let kind = kind_of(&r.kind)?;
        let resource = workspace_name(r.workspace.as_ref());
        let queries = self.read(&resource, kind, None).await?;
        Ok(Response::new(pb::SavedQueryList { queries }))
    }
}

impl ByosService {
    /// The workspace's queries of `kind` (only `name` when given), opened: each account they
    /// live in has its data key unwrapped through Key Vault once; a refused unwrap fails the
    /// read with the account's refusal.
    async fn read(
        &self,
        resource: &crate::control::ResourceName,
        kind: DataSourceType,
        name: Option<&str>,
    ) -> Result<Vec<pb::SavedQuery>, Status> {
        let core = &self.core;
        let (ws, queries) = {
            let control = core.control();
            let ws = control
                .byos_workspace(resource)
                .map_err(|e| core.byos_error_locked(&control, e))?;
            let queries: Vec<SavedQuery> = control
                .byos()
                .queries
                .get(&ws)
                .into_iter()
                .flatten()
                .filter(|q| q.kind == kind && name.is_none_or(|n| q.name.eq_ignore_ascii_case(n)))
                .cloned()
                .collect();
            (ws, queries)
        };
        let mut data_keys: BTreeMap<String, Option<Aek>> = BTreeMap::new();
        for q in &queries {
            if let Place::Account(a) = &q.place {
                if !data_keys.contains_key(a) {
                    let key = match core.unwrap_account_key(a).await {
                        Ok(key) => key,
                        Err(refused) => {
                            if refused.code() == Code::PermissionDenied {
                                let event = ByosEvent::SavedQueriesUnreadable {
                                    workspace: ws.clone(),
                                    data_source_type: kind.as_str().to_string(),
                                    account: a.clone(),
                                };
                                core.record_byos(core.now(), &[event]);
                            }
                            return Err(refused);
                        }
                    };
                    data_keys.insert(a.clone(), key);
                }
            }
        }
        let mut out = Vec::with_capacity(queries.len());
        for q in &queries {
            let content = match &q.place {
                Place::Workspace => open_plain(q),
                Place::Account(a) => match data_keys.get(a).and_then(Option::as_ref) {
                    Some(data_key) => open(data_key, &ws, q)?,
                    None => open_plain(q),
                },
            };
            out.push(query_to_pb(q, content));
        }
        let event = ByosEvent::SavedQueriesRead {
            workspace: ws,
            data_source_type: kind.as_str().to_string(),
            count: out.len() as u64,
        };
        core.record_byos(core.now(), &[event]);
        Ok(out)
    }
}

fn open_plain(q: &SavedQuery) -> Content {
    Content {
        query: q.query.clone(),
        category: q.category.clone(),
        display_name: q.display_name.clone(),
    }
}

impl Core {
    fn byos_error_locked(
        &self,
        control: &crate::control::ControlPlane,
        e: ByosOrControlError,
    ) -> Status {
        match e {
            ByosOrControlError::Byos(e) => byos_status(&e),
            ByosOrControlError::Control(e) => control_status(control, &e),
        }
    }
}
