//! The `identity.v1.Identity` gRPC adapter.
//!
//! A thin translation layer: decode the request, call [`IdentityAuthority`] with the simulated
//! time from the [`Clock`], encode the answer, and map each [`IdentityError`] to the gRPC code a
//! caller can act on (NOT_FOUND, INVALID_ARGUMENT, UNAUTHENTICATED for a wrong secret,
//! FAILED_PRECONDITION for a deleted principal, ALREADY_EXISTS). No rule lives here.
//!
//! The administrative calls (`CreateTenant`, `CreatePrincipal`, `DeletePrincipal`,
//! `CreateRoleAssignment`, `DeleteRoleAssignment`, `CreateManagedIdentity`:
//! [`crate::access_rules::IDENTITY_ADMIN_METHODS`])
//! need a management token whose principal the authority allows
//! ([`IdentityAuthority::authorize`]): a directory administrator for tenants and principals, a
//! role granting `roleAssignments/write` at a scope covering the assignment for role
//! assignments. They are refused as the guards refuse (401 `AuthenticationFailed` without a
//! token, 403 `AuthorizationFailed` without the right, the Azure body in the status details).
//! One exception, Azure's own: the tenant's Azure Cosmos DB first-party service principal
//! (Sentinel registers it on first use, as Azure provisions first-party applications in every
//! tenant without the customer's administrator) needs, like `CreateManagedIdentity`, a
//! first-party resource provider's token (Sentinel's) or an administrator's
//! ([`Action::ManagedIdentitiesWrite`]); it gets no role. `CheckAccess` needs a valid
//! token of this authority (any audience): a caller may ask about itself (a guard forwards the
//! token of the call it guards), about anyone else only with `roleAssignments/read` at the scope
//! ([`IdentityService::authorize_check`]). `CreateManagedIdentity` needs the management token of
//! a first-party resource provider (cluster storage's principal, which creates the identities of
//! clusters and storage accounts on their behalf, as Azure's resource providers do) or of a
//! directory administrator ([`Action::ManagedIdentitiesWrite`], which no RBAC role grants: not
//! even Owner at `/`); without it anyone who reached Key Vault's port would get an identity's
//! secret, so tokens of any tenant, and could take a resource's identity before its resource
//! provider. Tokens (client credentials) and signing keys stay open.

use std::sync::{Arc, Mutex, MutexGuard};

use tonic::{Request, Response, Status};

use cmksim_proto::identity::v1 as pb;
use cmksim_sim::Clock;

use crate::authority::{IdentityAuthority, IdentityError};
use crate::directory::{DirectoryError, Principal, PrincipalKind, COSMOS_DB_DISPLAY_NAME};
use crate::grpc_auth::{authenticate, AuthError};
use crate::roles::{Access, Action, Role, RoleAssignment};
use crate::token::{audience, VerifyError};

/// The gRPC service over a shared authority.
#[derive(Clone)]
pub struct IdentityService {
    authority: Arc<Mutex<IdentityAuthority>>,
    clock: Clock,
}

impl IdentityService {
    /// A service over `authority`, reading simulated time from `clock`.
    pub fn new(authority: Arc<Mutex<IdentityAuthority>>, clock: Clock) -> IdentityService {
        IdentityService { authority, clock }
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> pb::identity_server::IdentityServer<IdentityService> {
        pb::identity_server::IdentityServer::new(self)
    }

    fn lock(&self) -> MutexGuard<'_, IdentityAuthority> {
        self.authority
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Checks the management token of an administrative call for `action` at `scope`.
    fn authorize(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        action: Action,
        scope: &str,
    ) -> Result<(), Status> {
        let authority = self.lock();
        let verifier = authority.verifier();
        let (caller, issuer) =
            authenticate(&verifier, metadata, audience::MANAGEMENT, self.clock.now())
                .map_err(|e| e.to_status())?;
        authority
            .authorize(&caller, &issuer, action, scope)
            .map_err(|e| e.to_status())
    }

    /// Checks the token of a `CheckAccess` call about `object_id` of `tenant_id` at `scope`: a
    /// valid token of this authority, of any audience it issues (a guard forwards its caller's
    /// token, whatever the guarded call's audience). A caller may ask about itself, as Azure's
    /// `permissions` API answers anyone about their own access; asking about another principal
    /// needs [`Action::RoleAssignmentsRead`] at the scope (Azure's
    /// `Microsoft.Authorization/*/read`: every reader role, and the first-party services' roles at
    /// the root scope).
    fn authorize_check(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        object_id: &str,
        tenant_id: &str,
        scope: &str,
    ) -> Result<(), Status> {
        let authority = self.lock();
        let verifier = authority.verifier();
        let now = self.clock.now();
        let mut verified = Err(AuthError::MissingToken);
        for aud in audience::ALL {
            verified = authenticate(&verifier, metadata, aud, now);
            if !matches!(
                verified,
                Err(AuthError::Invalid(VerifyError::WrongAudience { .. }))
            ) {
                break;
            }
        }
        let (caller, issuer) = verified.map_err(|e| e.to_status())?;
        let itself = caller.object_id.eq_ignore_ascii_case(object_id)
            && caller.tenant_id.eq_ignore_ascii_case(tenant_id);
        if itself {
            return Ok(());
        }
        authority
            .authorize(&caller, &issuer, Action::RoleAssignmentsRead, scope)
            .map_err(|e| e.to_status())
    }
}

/// The proto form of a principal (never the secret hash).
pub fn principal_to_pb(p: &Principal) -> pb::Principal {
    pb::Principal {
        object_id: p.object_id.clone(),
        tenant_id: p.tenant_id.clone(),
        display_name: p.display_name.clone(),
        kind: match p.kind {
            PrincipalKind::User => pb::PrincipalKind::User,
            PrincipalKind::ServicePrincipal => pb::PrincipalKind::ServicePrincipal,
            PrincipalKind::SystemAssigned => pb::PrincipalKind::SystemAssigned,
            PrincipalKind::UserAssigned => pb::PrincipalKind::UserAssigned,
        } as i32,
        resource_id: p.resource_id.clone(),
        app_id: p.app_id.clone(),
        deleted: p.deleted,
    }
}

/// The proto form of a role assignment.
pub fn role_assignment_to_pb(a: &RoleAssignment) -> pb::RoleAssignment {
    pb::RoleAssignment {
        id: a.id.clone(),
        name: a.name.clone(),
        scope: a.scope.clone(),
        role: a.role.name().to_string(),
        role_definition_guid: a.role.definition_guid().to_string(),
        principal_id: a.principal_id.clone(),
        tenant_id: a.tenant_id.clone(),
    }
}

fn to_status(error: IdentityError) -> Status {
    let message = error.to_string();
    match error {
        IdentityError::Directory(d) => match d {
            DirectoryError::TenantNotFound(_)
            | DirectoryError::PrincipalNotFound(_)
            | DirectoryError::RoleAssignmentNotFound(_) => Status::not_found(message),
            DirectoryError::TenantExists(_) | DirectoryError::ManagedIdentityExists(_) => {
                Status::already_exists(message)
            }
            DirectoryError::PrincipalDeleted(_) => Status::failed_precondition(message),
            DirectoryError::InvalidSecret(_) => Status::unauthenticated(message),
            DirectoryError::InvalidInput { .. } => Status::invalid_argument(message),
            DirectoryError::Full(_) => Status::resource_exhausted(message),
            DirectoryError::SubscriptionOfAnotherTenant { .. } => {
                Status::failed_precondition(message)
            }
        },
        IdentityError::UnknownAudience(_) => Status::invalid_argument(message),
        IdentityError::Store(_) | IdentityError::AdminFile(_) => Status::internal(message),
    }
}

#[tonic::async_trait]
impl pb::identity_server::Identity for IdentityService {
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        self.authorize(
            request.metadata(),
            Action::DirectoryWrite,
            crate::roles::ROOT_SCOPE,
        )?;
        let r = request.into_inner();
        let tenant = self
            .lock()
            .create_tenant(&r.name, &r.tenant_id)
            .map_err(to_status)?;
        Ok(Response::new(pb::Tenant {
            tenant_id: tenant.tenant_id,
            name: tenant.name,
        }))
    }

    async fn create_principal(
        &self,
        request: Request<pb::CreatePrincipalRequest>,
    ) -> Result<Response<pb::PrincipalWithSecret>, Status> {
        let first_party = request.get_ref().display_name == COSMOS_DB_DISPLAY_NAME
            && request.get_ref().kind == pb::PrincipalKind::ServicePrincipal as i32;
        let action = match first_party {
            true => Action::ManagedIdentitiesWrite,
            false => Action::DirectoryWrite,
        };
        self.authorize(request.metadata(), action, crate::roles::ROOT_SCOPE)?;
        let r = request.into_inner();
        let kind = match pb::PrincipalKind::try_from(r.kind) {
            Ok(pb::PrincipalKind::User) => PrincipalKind::User,
            Ok(pb::PrincipalKind::ServicePrincipal) => PrincipalKind::ServicePrincipal,
            _ => {
                return Err(Status::invalid_argument(
                    "kind must be PRINCIPAL_KIND_USER or PRINCIPAL_KIND_SERVICE_PRINCIPAL; \
                     managed identities are created with CreateManagedIdentity",
                ))
            }
        };
        let (principal, secret) = self
            .lock()
            .create_principal(&r.tenant_id, &r.display_name, kind)
            .map_err(to_status)?;
        Ok(Response::new(pb::PrincipalWithSecret {
            principal: Some(principal_to_pb(&principal)),
            secret,
        }))
    }

    async fn create_managed_identity(
        &self,
        request: Request<pb::CreateManagedIdentityRequest>,
    ) -> Result<Response<pb::PrincipalWithSecret>, Status> {
        self.authorize(
            request.metadata(),
            Action::ManagedIdentitiesWrite,
            &request.get_ref().resource_id,
        )?;
        let r = request.into_inner();
        let (principal, secret) = self
            .lock()
            .create_managed_identity(&r.tenant_id, &r.resource_id)
            .map_err(to_status)?;
        Ok(Response::new(pb::PrincipalWithSecret {
            principal: Some(principal_to_pb(&principal)),
            secret,
        }))
    }

    async fn delete_principal(
        &self,
        request: Request<pb::DeletePrincipalRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.authorize(
            request.metadata(),
            Action::DirectoryWrite,
            crate::roles::ROOT_SCOPE,
        )?;
        let r = request.into_inner();
        self.lock()
            .delete_principal(&r.object_id)
            .map_err(to_status)?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn issue_token(
        &self,
        request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::AccessToken>, Status> {
        let r = request.into_inner();
        let now = self.clock.now();
        let (token, expires_on) = self
            .lock()
            .issue_token(
                &r.object_id,
                &r.secret,
                &r.audience,
                r.lifetime_seconds,
                now,
            )
            .map_err(to_status)?;
        Ok(Response::new(pb::AccessToken {
            token,
            expires_on_unix_ms: expires_on.0,
        }))
    }

    async fn create_role_assignment(
        &self,
        request: Request<pb::CreateRoleAssignmentRequest>,
    ) -> Result<Response<pb::RoleAssignment>, Status> {
        self.authorize(
            request.metadata(),
            Action::RoleAssignmentsWrite,
            &request.get_ref().scope,
        )?;
        let r = request.into_inner();
        let role = Role::parse(&r.role).ok_or_else(|| {
            Status::invalid_argument(format!(
                "unknown role {}: the simulator knows {}",
                cmksim_sim::text::echo(&r.role),
                Role::ALL.map(Role::name).join(", ")
            ))
        })?;
        let assignment = self
            .lock()
            .assign_role(&r.scope, role, &r.principal_id, &r.name)
            .map_err(to_status)?;
        Ok(Response::new(role_assignment_to_pb(&assignment)))
    }

    async fn delete_role_assignment(
        &self,
        request: Request<pb::DeleteRoleAssignmentRequest>,
    ) -> Result<Response<pb::RoleAssignment>, Status> {
        // Checked at the assignment's own scope; an unknown id is NOT_FOUND once the token is
        // checked at the root scope (so that no one learns which ids exist without a right).
        let scope = self
            .lock()
            .directory()
            .role_assignments
            .get(&request.get_ref().id.to_ascii_lowercase())
            .map(|a| a.scope.clone())
            .unwrap_or_else(|| crate::roles::ROOT_SCOPE.to_string());
        self.authorize(request.metadata(), Action::RoleAssignmentsWrite, &scope)?;
        let r = request.into_inner();
        let removed = self
            .lock()
            .remove_role_assignment(&r.id)
            .map_err(to_status)?;
        Ok(Response::new(role_assignment_to_pb(&removed)))
    }

    async fn check_access(
        &self,
        request: Request<pb::CheckAccessRequest>,
    ) -> Result<Response<pb::CheckAccessResponse>, Status> {
        {
            let r = request.get_ref();
            self.authorize_check(request.metadata(), &r.object_id, &r.tenant_id, &r.scope)?;
        }
        let r = request.into_inner();
        let action = Action::parse(&r.action).ok_or_else(|| {
            Status::invalid_argument(format!(
                "unknown action {}",
                cmksim_sim::text::echo(&r.action)
            ))
        })?;
        let access = self
            .lock()
            .check_access(&r.object_id, &r.tenant_id, action, &r.scope);
        let (decision, subscription_tenant_id) = match access {
            Access::Granted => (pb::AccessDecision::Granted, String::new()),
            Access::WrongTenant {
                subscription_tenant,
            } => (pb::AccessDecision::WrongTenant, subscription_tenant),
            Access::Denied => (pb::AccessDecision::Denied, String::new()),
        };
        Ok(Response::new(pb::CheckAccessResponse {
            decision: decision as i32,
            subscription_tenant_id,
        }))
    }

    async fn get_signing_keys(
        &self,
        _request: Request<pb::Empty>,
    ) -> Result<Response<pb::SigningKeys>, Status> {
        let keys = self
            .lock()
            .signing_keys()
            .into_iter()
            .map(|k| pb::Jwk {
                kid: k.kid,
                kty: k.kty,
                crv: k.crv,
                x: k.x,
                y: k.y,
            })
            .collect();
        Ok(Response::new(pb::SigningKeys {
            issuer: "https://sts.windows.net/{tenantid}/".into(),
            keys,
        }))
    }
}
