//! The `sentinel.v1.Sentinel` gRPC service: requests in, the crate's decisions applied, refusals
//! out as statuses carrying a `common.v1.AzureError` (code, message, HTTP status).
//!
//! Onboarding gathers the facts (storage's link and cluster key, the provider registration, the
//! Cosmos DB principal's probe: GetKey, wrapKey and unwrapKey of a fresh account key with the
//! cluster's key) and lets [`crate::onboarding::decide`] answer. Item operations ask the
//! workspace's machine first ([`SentinelMachine::check`]); a refusal is recorded as an event.

use std::sync::Arc;

use tonic::{Code, Request, Response, Status};
use zeroize::Zeroizing;

use cmksim_proto::sentinel::v1 as pb;
use cmksim_proto::storage::v1 as stpb;
use cmksim_sim::text::echo;
use cmksim_storage::keyloop::{AccessFailure, KeyRef, VaultAccess, WrappedAek};
use cmksim_storage::service::status::azure_status;

use crate::events::SentinelEvent;
use crate::machine::{Encryption, Operation, Refusal, SentinelMachine, StateName};
use crate::onboarding::{
    decide, needs_probe, AccessProbe, ClusterFacts, OnboardingFacts, OnboardingPlan,
    COSMOS_DB_PROVIDER,
};
use crate::store::{workspace_key, ItemKind, StoredAccountKey, WorkspaceRecord};

use super::core::{lock, Core, CoreError};

pub struct SentinelService {
    pub core: Arc<Core>,
}

fn internal(what: &str, error: impl std::fmt::Display) -> Status {
    azure_status(
        Code::Internal,
        "InternalServerError",
        500,
        &format!("{what}: {error}"),
    )
}

fn core_status(what: &str, error: CoreError) -> Status {
    internal(what, error)
}

fn workspace_ref(r: Option<stpb::WorkspaceRef>) -> Result<stpb::WorkspaceRef, Status> {
    match r {
        Some(r) if !r.workspace_name.is_empty() => Ok(r),
        _ => Err(azure_status(
            Code::InvalidArgument,
            "InvalidParameter",
            400,
            "The request names no workspace.",
        )),
    }
}

fn key_of(r: &stpb::WorkspaceRef) -> String {
    workspace_key(&r.subscription_id, &r.resource_group, &r.workspace_name)
}

fn not_onboarded(r: &stpb::WorkspaceRef) -> Status {
    azure_status(
        Code::NotFound,
        "NotFound",
        404,
        &format!(
            "Workspace {} is not onboarded to Azure Sentinel.",
            echo(&r.workspace_name)
        ),
    )
}

/// A machine's refusal: revoked and restoring like an access denial the customer caused (403),
/// deleted like a missing resource (404). The simulator's codes.
fn refusal_status(refusal: &Refusal) -> Status {
    match refusal.state {
        StateName::Deleted => azure_status(Code::NotFound, "NotFound", 404, &refusal.message),
        StateName::Revoked | StateName::Restoring | StateName::Active => azure_status(
            Code::PermissionDenied,
            "CustomerManagedKeyInaccessible",
            403,
            &refusal.message,
        ),
    }
}

fn state_of(r: &stpb::WorkspaceRef, machine: &SentinelMachine) -> pb::OnboardingState {
    pb::OnboardingState {
        workspace: Some(r.clone()),
        customer_managed_key: matches!(machine.encryption(), Encryption::CustomerManagedKey(_)),
        state: machine.state().name().as_str().to_string(),
        cluster: machine.cluster().to_string(),
        key: machine.key_label(),
        following: machine
            .following()
            .map(|k| k.to_string())
            .unwrap_or_default(),
        state_since_unix_ms: machine.state().since().unix_ms(),
    }
}

impl SentinelService {
    /// The Cosmos DB principal's probe on `key`: GetKey, then wrapKey and unwrapKey of
    /// `account_key`. Returns the probe's verdict and, when granted, the wrapped account key.
    async fn probe(
        &self,
        tenant: &str,
        key: &KeyRef,
        account_key: &[u8],
    ) -> Result<(AccessProbe, Option<WrappedAek>), Status> {
        let access = self
            .core
            .access(tenant)
            .await
            .map_err(|e| core_status("the Cosmos DB principal", e))?;
        let verdict = |failure: AccessFailure| match failure {
            AccessFailure::Denial(d) => AccessProbe::Denied {
                kind: d.kind,
                http_status: d.http_status,
                code: d.code,
            },
            AccessFailure::Transient(t) => AccessProbe::Unreachable {
                detail: format!("{}: {}", t.kind.label(), t.detail),
            },
        };
        if let Err(f) = access.newest_version(&key.vault_name, &key.key_name).await {
            return Ok((verdict(f), None));
        }
        let wrapped = match access.wrap_aek(key, account_key).await {
            Ok(w) => w,
            Err(f) => return Ok((verdict(f), None)),
        };
        match access.unwrap_aek(&wrapped).await {
            Ok(u) if u.aek.as_slice() == account_key => Ok((
                AccessProbe::Granted {
                    version: u.kid_version,
                },
                Some(wrapped),
            )),
            Ok(_) => Err(internal(
                "the probe",
                "unwrapKey returned another key than the one wrapped",
            )),
            Err(f) => Ok((verdict(f), None)),
        }
    }

    async fn save(
        &self,
        request: pb::SaveItemRequest,
        kind: ItemKind,
        operation: Operation,
    ) -> Result<Response<pb::Item>, Status> {
        let r = workspace_ref(request.workspace)?;
        let key = key_of(&r);
        if request.id.is_empty() || request.id.contains('\0') || request.id.len() > 256 {
            return Err(azure_status(
                Code::InvalidArgument,
                "InvalidParameter",
                400,
                &format!(
                    "The item id {} must be 1 to 256 characters without NUL.",
                    echo(&request.id)
                ),
            ));
        }
        if serde_json::from_str::<serde_json::Value>(&request.body_json).is_err() {
            return Err(azure_status(
                Code::InvalidArgument,
                "InvalidParameter",
                400,
                &format!("The item body {} is not JSON.", echo(&request.body_json)),
            ));
        }
        let now = self.core.now();
        let (name, account_key) = {
            let workspaces = lock(&self.core.workspaces);
            let runtime = workspaces.get(&key).ok_or_else(|| not_onboarded(&r))?;
            let name = runtime.record.workspace_name.clone();
            if let Err(refusal) = runtime.machine.check(operation) {
                drop(workspaces);
                self.core.record(
                    now,
                    &name,
                    &SentinelEvent::OperationRefused {
                        workspace: name.clone(),
                        operation: operation.as_str().to_string(),
                        reason: refusal.message.clone(),
                    },
                );
                return Err(refusal_status(&refusal));
            }
            (name, runtime.account_key.clone())
        };
        let account_key = account_key.ok_or_else(|| {
            azure_status(
                Code::Unavailable,
                "ServiceUnavailable",
                503,
                "The account key of this workspace has not been unwrapped since the service started; try again after its first poll.",
            )
        })?;
        let nonce = self.core.new_nonce();
        self.core
            .store
            .put_item(
                &key,
                kind,
                &request.id,
                &request.body_json,
                &account_key,
                nonce,
            )
            .map_err(|e| internal("storing the item", e))?;
        self.core.record(
            now,
            &name,
            &SentinelEvent::ItemStored {
                workspace: name.clone(),
                item: kind.as_str().to_string(),
                id: request.id.clone(),
            },
        );
        Ok(Response::new(pb::Item {
            kind: kind.as_str().to_string(),
            id: request.id,
            body_json: request.body_json,
        }))
    }
}

#[tonic::async_trait]
impl pb::sentinel_server::Sentinel for SentinelService {
    async fn register_resource_provider(
        &self,
        request: Request<pb::RegisterResourceProviderRequest>,
    ) -> Result<Response<pb::ResourceProviderRegistration>, Status> {
        let r = request.into_inner();
        if !r.namespace.eq_ignore_ascii_case(COSMOS_DB_PROVIDER) {
            return Err(azure_status(
                Code::InvalidArgument,
                "InvalidResourceNamespace",
                400,
                &format!(
                    "The simulator registers only {COSMOS_DB_PROVIDER}, not {}.",
                    echo(&r.namespace)
                ),
            ));
        }
        self.core
            .store
            .register_provider(&r.subscription_id, COSMOS_DB_PROVIDER)
            .map_err(|e| internal("registering the provider", e))?;
        Ok(Response::new(pb::ResourceProviderRegistration {
            subscription_id: r.subscription_id,
            namespace: COSMOS_DB_PROVIDER.to_string(),
            registration_state: "Registered".to_string(),
        }))
    }

    async fn get_cosmos_db_principal(
        &self,
        request: Request<pb::CosmosDbPrincipalRequest>,
    ) -> Result<Response<pb::CosmosDbPrincipal>, Status> {
        let tenant = request.into_inner().tenant_id;
        let _serial = self.core.slow_ops.lock().await;
        let p = self
            .core
            .cosmos_principal(&tenant)
            .await
            .map_err(|e| core_status("the Cosmos DB principal", e))?;
        Ok(Response::new(pb::CosmosDbPrincipal {
            object_id: p.object_id,
            tenant_id: p.tenant_id,
            display_name: super::COSMOS_DB_PRINCIPAL_NAME.to_string(),
            app_id: p.app_id,
        }))
    }

    async fn onboard(
        &self,
        request: Request<pb::OnboardRequest>,
    ) -> Result<Response<pb::OnboardingState>, Status> {
        let request = request.into_inner();
        let r = workspace_ref(request.workspace)?;
        let key = key_of(&r);
        let _serial = self.core.slow_ops.lock().await;
        let previously_onboarded = self
            .core
            .store
            .workspace(&key)
            .map_err(|e| internal("reading the workspace", e))?
            .is_some();
        let linked = self.core.linked_cluster(&r).await?;
        let tenant = linked
            .as_ref()
            .map(|(_, _, _, t)| t.clone())
            .unwrap_or_default();
        let mut facts = OnboardingFacts {
            workspace: r.workspace_name.clone(),
            subscription_id: r.subscription_id.clone(),
            customer_managed_key: request.customer_managed_key,
            previously_onboarded,
            cluster: linked
                .as_ref()
                .map(|(name, key, identity, _)| ClusterFacts {
                    name: name.clone(),
                    key: key.clone(),
                    identity_type: identity.clone(),
                }),
            cosmos_db_registered: self
                .core
                .store
                .provider_registered(&r.subscription_id, COSMOS_DB_PROVIDER)
                .map_err(|e| internal("reading the registrations", e))?,
            cosmos_db_access: None,
        };
        let account_key: Zeroizing<Vec<u8>> = self.core.new_account_key();
        let mut wrapped = None;
        if let Some(probe_key) = needs_probe(&facts) {
            let (verdict, w) = self.probe(&tenant, &probe_key, &account_key).await?;
            facts.cosmos_db_access = Some(verdict);
            wrapped = w;
        }
        let now = self.core.now();
        let plan = match decide(&facts) {
            Ok(plan) => plan,
            Err(refusal) => {
                self.core.record(
                    now,
                    &r.workspace_name,
                    &SentinelEvent::OnboardingRefused {
                        workspace: r.workspace_name.clone(),
                        code: refusal.code().to_string(),
                        message: refusal.to_string(),
                    },
                );
                let code = match refusal.http_status() {
                    400 => Code::InvalidArgument,
                    403 => Code::PermissionDenied,
                    409 if matches!(refusal, crate::OnboardingRefusal::AlreadyOnboarded { .. }) => {
                        Code::AlreadyExists
                    }
                    409 => Code::FailedPrecondition,
                    _ => Code::Unavailable,
                };
                return Err(azure_status(
                    code,
                    refusal.code(),
                    refusal.http_status(),
                    &refusal.to_string(),
                ));
            }
        };
        let cluster = linked
            .as_ref()
            .map(|(name, ..)| name.clone())
            .unwrap_or_default();
        let (stored, encryption) = match (&plan, wrapped) {
            (OnboardingPlan::CustomerManagedKey { .. }, Some(wrapped)) => (
                StoredAccountKey::from_wrapped(&wrapped),
                Encryption::CustomerManagedKey(wrapped.target),
            ),
            (OnboardingPlan::CustomerManagedKey { .. }, None) => {
                return Err(internal("onboarding", "granted without a wrapped key"))
            }
            (OnboardingPlan::MicrosoftManagedKey, _) => (
                StoredAccountKey::Mmk {
                    key_hex: hex::encode(account_key.as_slice()),
                },
                Encryption::MicrosoftManagedKey,
            ),
        };
        let machine = SentinelMachine::onboarded(
            &r.workspace_name,
            &cluster,
            &self.core.profile.sentinel,
            now,
            encryption,
        );
        let record = WorkspaceRecord {
            subscription_id: r.subscription_id.clone(),
            resource_group: r.resource_group.clone(),
            workspace_name: r.workspace_name.clone(),
            tenant_id: tenant,
            cluster: cluster.clone(),
            onboarded_at_ms: now.unix_ms(),
            account_key: stored,
            state: machine.state().clone(),
        };
        self.core
            .store
            .put_workspace(&record)
            .map_err(|e| internal("storing the onboarding", e))?;
        let state = state_of(&r, &machine);
        self.core.record(
            now,
            &r.workspace_name,
            &SentinelEvent::Onboarded {
                workspace: r.workspace_name.clone(),
                cluster,
                encryption: if state.customer_managed_key {
                    "cmk"
                } else {
                    "mmk"
                }
                .to_string(),
                key: machine.key_label(),
            },
        );
        self.core.add_runtime(record, machine, account_key);
        Ok(Response::new(state))
    }

    async fn get_onboarding_state(
        &self,
        request: Request<stpb::WorkspaceRef>,
    ) -> Result<Response<pb::OnboardingState>, Status> {
        let r = workspace_ref(Some(request.into_inner()))?;
        let workspaces = lock(&self.core.workspaces);
        let runtime = workspaces
            .get(&key_of(&r))
            .ok_or_else(|| not_onboarded(&r))?;
        Ok(Response::new(state_of(&r, &runtime.machine)))
    }

    async fn delete_workspace(
        &self,
        request: Request<stpb::WorkspaceRef>,
    ) -> Result<Response<pb::OnboardingState>, Status> {
        let r = workspace_ref(Some(request.into_inner()))?;
        let key = key_of(&r);
        let now = self.core.now();
        let (effects, name) = {
            let mut workspaces = lock(&self.core.workspaces);
            let runtime = workspaces.get_mut(&key).ok_or_else(|| not_onboarded(&r))?;
            runtime
                .machine
                .check(Operation::DeleteWorkspace)
                .map_err(|refusal| refusal_status(&refusal))?;
            (
                runtime.machine.on_deleted(now),
                runtime.record.workspace_name.clone(),
            )
        };
        self.core.carry_out(&key, effects).await;
        let removed = self
            .core
            .store
            .delete_items(&key)
            .map_err(|e| internal("deleting the items", e))?;
        self.core.record(
            now,
            &name,
            &SentinelEvent::WorkspaceDeleted {
                workspace: name.clone(),
                items_left_unreadable: removed,
            },
        );
        let workspaces = lock(&self.core.workspaces);
        let runtime = workspaces.get(&key).ok_or_else(|| not_onboarded(&r))?;
        Ok(Response::new(state_of(&r, &runtime.machine)))
    }

    async fn create_incident(
        &self,
        request: Request<pb::SaveItemRequest>,
    ) -> Result<Response<pb::Item>, Status> {
        self.save(
            request.into_inner(),
            ItemKind::Incident,
            Operation::CreateIncident,
        )
        .await
    }

    async fn save_analytics_rule(
        &self,
        request: Request<pb::SaveItemRequest>,
    ) -> Result<Response<pb::Item>, Status> {
        self.save(
            request.into_inner(),
            ItemKind::AnalyticsRule,
            Operation::ChangeConfiguration,
        )
        .await
    }

    async fn save_watchlist(
        &self,
        request: Request<pb::SaveItemRequest>,
    ) -> Result<Response<pb::Item>, Status> {
        self.save(
            request.into_inner(),
            ItemKind::Watchlist,
            Operation::ChangeConfiguration,
        )
        .await
    }

    async fn list_items(
        &self,
        request: Request<pb::ListItemsRequest>,
    ) -> Result<Response<pb::ItemList>, Status> {
        let request = request.into_inner();
        let r = workspace_ref(request.workspace)?;
        let key = key_of(&r);
        let kind = match request.kind.as_str() {
            "" => None,
            other => Some(ItemKind::parse(other).ok_or_else(|| {
                azure_status(
                    Code::InvalidArgument,
                    "InvalidParameter",
                    400,
                    &format!(
                        "Unknown item kind {}: incident, analytics_rule or watchlist.",
                        echo(other)
                    ),
                )
            })?),
        };
        let account_key = {
            let workspaces = lock(&self.core.workspaces);
            let runtime = workspaces.get(&key).ok_or_else(|| not_onboarded(&r))?;
            runtime
                .machine
                .check(Operation::ReadData)
                .map_err(|refusal| refusal_status(&refusal))?;
            runtime.account_key.clone()
        };
        let account_key = account_key.ok_or_else(|| {
            azure_status(
                Code::Unavailable,
                "ServiceUnavailable",
                503,
                "The account key of this workspace has not been unwrapped since the service started; try again after its first poll.",
            )
        })?;
        let items = self
            .core
            .store
            .items(&key, kind, &account_key)
            .map_err(|e| internal("reading the items", e))?;
        Ok(Response::new(pb::ItemList {
            items: items
                .into_iter()
                .map(|(kind, id, body_json)| pb::Item {
                    kind: kind.as_str().to_string(),
                    id,
                    body_json,
                })
                .collect(),
        }))
    }
}
