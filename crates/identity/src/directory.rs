//! The directory: tenants, principals and system-assigned managed identities.
//!
//! Pure domain logic (no I/O, no clock): every function takes the inputs it needs, including the
//! random source for ids and secrets, and returns the new state or a typed error, changing
//! nothing when it fails. Secrets are returned once, at creation, and stored only as a salted
//! PBKDF2-HMAC-SHA256 hash, so that neither the data directory nor a memory dump of the directory
//! lets anyone obtain a principal's token. Deleted principals are kept (marked deleted) so that
//! an audit trail still resolves their object id, but they can no longer authenticate.

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use rand::RngCore;
use serde::{Deserialize, Serialize};

use cmksim_sim::ids;

use crate::roles::{self, Access, Action, Role, RoleAssignment};

/// The Azure CLI's public client id: what Azure shows as `appid` for a user signed in with `az`.
pub const AZURE_CLI_APP_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
/// The Microsoft support engineer of Customer Lockbox (seeds 001, 003): a well-known principal
/// outside every customer tenant, who may read a workspace's data only under a Lockbox request
/// the customer approved (`storage.v1.Lockbox`). A fixed object id, so that events and
/// scenarios name the same engineer in every run.
pub const SUPPORT_ENGINEER_OBJECT_ID: &str = "5e7f0c2a-1b0c-4d6e-9f3a-10c4b0c5e001";
/// Its display name in events.
pub const SUPPORT_ENGINEER_NAME: &str = "Microsoft support engineer";
/// The display name of the Azure Cosmos DB first-party service principal (seed 002, step 4:
/// "add an access policy ... with Azure Cosmos DB principal"), one per tenant.
pub const COSMOS_DB_DISPLAY_NAME: &str = "Azure Cosmos DB";
/// Cluster storage's first-party service principal (Microsoft.OperationalInsights' resource
/// provider): it creates the managed identities of clusters and storage accounts.
pub const STORAGE_PROVIDER_NAME: &str = "cmksim-storage";
/// Sentinel's first-party service principal (Microsoft.SecurityInsights): it reads storage, and
/// registers each tenant's Azure Cosmos DB principal on first use.
pub const SENTINEL_PROVIDER_NAME: &str = "cmksim-sentinel";
/// The simulator's first-party resource providers, by display name: the service principals of
/// these names in the services tenant ([`crate::client::SERVICES_TENANT_ID`]), which only a
/// directory administrator can make, act for a resource or a tenant
/// ([`Principal::is_resource_provider`]).
pub const RESOURCE_PROVIDER_NAMES: [&str; 2] = [STORAGE_PROVIDER_NAME, SENTINEL_PROVIDER_NAME];
/// Its well-known application (client) id, the same in every tenant as for any first-party
/// application: the id Azure Cosmos DB's customer-managed-key documentation names for this
/// principal (not in the seeds; recalled, not checked against a source this session).
pub const COSMOS_DB_APP_ID: &str = "a232010e-820c-4083-83bb-3ace5fc29d0b";
/// At most this many tenants in one directory.
pub const MAX_TENANTS: usize = 10_000;
/// At most this many principals (including deleted ones) in one directory.
pub const MAX_PRINCIPALS: usize = 100_000;
/// At most this many role assignments in one directory (Azure allows 4,000 per subscription).
pub const MAX_ROLE_ASSIGNMENTS: usize = 100_000;
/// Longest display name, tenant name or resource id accepted.
pub const MAX_NAME_CHARS: usize = 512;
/// PBKDF2 work factor for the hash of a secret that a machine drew at random (a principal's
/// 256-bit secret here, Key Vault's 128-bit HSM PINs): modest, because the hash protects against
/// disclosure, not against guessing a weak password — stretching adds 10 bits to 128 or 256.
pub const SECRET_HASH_ITERATIONS: u32 = 1_000;
const SECRET_BYTES: usize = 32;

/// Why a directory operation was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("tenant {0} was not found")]
    TenantNotFound(String),
    #[error("tenant {0} already exists")]
    TenantExists(String),
    #[error("principal {0} was not found")]
    PrincipalNotFound(String),
    #[error("principal {0} has been deleted")]
    PrincipalDeleted(String),
    #[error("the secret does not match principal {0}")]
    InvalidSecret(String),
    #[error("resource {0} already has a system-assigned managed identity")]
    ManagedIdentityExists(String),
    #[error("invalid {field}: {reason}")]
    InvalidInput { field: &'static str, reason: String },
    #[error("role assignment {0} was not found")]
    RoleAssignmentNotFound(String),
    #[error("the directory is full: at most {0} entries")]
    Full(usize),
    #[error(
        "subscription {subscription} belongs to tenant {subscription_tenant}, not to tenant \
         {principal_tenant} of principal {principal}"
    )]
    SubscriptionOfAnotherTenant {
        subscription: String,
        subscription_tenant: String,
        principal_tenant: String,
        principal: String,
    },
}

/// A tenant (an Entra ID directory).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub tenant_id: String,
    pub name: String,
}

/// What kind of principal this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrincipalKind {
    User,
    ServicePrincipal,
    SystemAssigned,
    UserAssigned,
}

/// A principal. The secret hash never leaves this crate's API except to the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub object_id: String,
    pub tenant_id: String,
    /// The application (client) id Azure would put in the token's `appid` claim.
    pub app_id: String,
    pub display_name: String,
    pub kind: PrincipalKind,
    /// For managed identities: the ARM id of the resource the identity belongs to.
    pub resource_id: String,
    pub deleted: bool,
    /// A directory administrator (Entra's Global Administrator): may create and delete
    /// principals and tenants. Only the bootstrap administrator the authority makes on its first
    /// start is one ([`crate::IdentityAuthority::open`]); absent in older stores (false).
    #[serde(default)]
    pub administrator: bool,
    secret_salt_hex: String,
    secret_hash_hex: String,
}

impl Principal {
    /// True for a live first-party resource provider: a service principal of the services
    /// tenant named in [`RESOURCE_PROVIDER_NAMES`]. Such a principal is made only by a directory
    /// administrator (`CreatePrincipal` needs one), so the name is as good as a flag set by one.
    pub fn is_resource_provider(&self) -> bool {
        !self.deleted
            && self.kind == PrincipalKind::ServicePrincipal
            && self
                .tenant_id
                .eq_ignore_ascii_case(crate::client::SERVICES_TENANT_ID)
            && RESOURCE_PROVIDER_NAMES.contains(&self.display_name.as_str())
    }

    /// True when `secret` is this principal's secret (constant-time comparison).
    pub fn secret_matches(&self, secret: &str) -> bool {
        let (Ok(salt), Ok(hash)) = (
            hex::decode(&self.secret_salt_hex),
            hex::decode(&self.secret_hash_hex),
        ) else {
            return false;
        };
        ring::pbkdf2::verify(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            iterations(),
            &salt,
            secret.as_bytes(),
            &hash,
        )
        .is_ok()
    }
}

impl Principal {
    /// SHA-256 of `secret` bound to this principal's stored secret record (its salt and hash):
    /// what [`crate::authority::IdentityAuthority`] remembers of a secret it has checked with
    /// [`Principal::secret_matches`], so that the next token request with the same secret is
    /// answered without the PBKDF2 work again. For a 256-bit random secret a salted SHA-256
    /// discloses no more than the stored PBKDF2 hash; it is kept in memory only.
    pub fn checked_secret_digest(&self, secret: &str) -> [u8; 32] {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(b"cmksim/identity/checked-secret/v1\0");
        context.update(self.secret_salt_hex.as_bytes());
        context.update(b"\0");
        context.update(self.secret_hash_hex.as_bytes());
        context.update(b"\0");
        context.update(secret.as_bytes());
        let mut digest = [0u8; 32];
        digest.copy_from_slice(context.finish().as_ref());
        digest
    }
}

fn iterations() -> NonZeroU32 {
    NonZeroU32::new(SECRET_HASH_ITERATIONS).unwrap_or(NonZeroU32::MIN)
}

/// Tenants and principals, ordered by id so that listings are deterministic.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    pub tenants: BTreeMap<String, Tenant>,
    pub principals: BTreeMap<String, Principal>,
    /// Role assignments by id (lower case).
    #[serde(default)]
    pub role_assignments: BTreeMap<String, RoleAssignment>,
    /// Which tenant each subscription (lower-case id) belongs to: learnt from its first role
    /// assignment (see [`crate::roles`]).
    #[serde(default)]
    pub subscriptions: BTreeMap<String, String>,
}

fn check_text(field: &'static str, value: &str, required: bool) -> Result<(), DirectoryError> {
    if required && value.trim().is_empty() {
        return Err(DirectoryError::InvalidInput {
            field,
            reason: "must not be empty".into(),
        });
    }
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(DirectoryError::InvalidInput {
            field,
            reason: format!("at most {MAX_NAME_CHARS} characters"),
        });
    }
    Ok(())
}

/// A new random secret (base64url, 256 bits) and its salted hash.
fn new_secret(rng: &mut impl RngCore) -> (String, String, String) {
    use base64::Engine;
    let mut secret_bytes = [0u8; SECRET_BYTES];
    rng.fill_bytes(&mut secret_bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret_bytes);
    let mut salt = [0u8; 16];
    rng.fill_bytes(&mut salt);
    let mut hash = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations(),
        &salt,
        secret.as_bytes(),
        &mut hash,
    );
    (secret, hex::encode(salt), hex::encode(hash))
}

impl Directory {
    /// Creates a tenant; `tenant_id` empty means a new GUID.
    pub fn create_tenant(
        &mut self,
        name: &str,
        tenant_id: &str,
        rng: &mut impl RngCore,
    ) -> Result<Tenant, DirectoryError> {
        check_text("name", name, true)?;
        if self.tenants.len() >= MAX_TENANTS {
            return Err(DirectoryError::Full(MAX_TENANTS));
        }
        let tenant_id = if tenant_id.is_empty() {
            ids::guid(rng)
        } else if ids::is_guid(tenant_id) {
            tenant_id.to_ascii_lowercase()
        } else {
            return Err(DirectoryError::InvalidInput {
                field: "tenant_id",
                reason: format!("{tenant_id:?} is not a GUID"),
            });
        };
        if self.tenants.contains_key(&tenant_id) {
            return Err(DirectoryError::TenantExists(tenant_id));
        }
        let tenant = Tenant {
            tenant_id: tenant_id.clone(),
            name: name.to_string(),
        };
        self.tenants.insert(tenant_id, tenant.clone());
        Ok(tenant)
    }

    fn new_principal(
        &mut self,
        tenant_id: &str,
        display_name: &str,
        kind: PrincipalKind,
        resource_id: &str,
        rng: &mut impl RngCore,
    ) -> Result<(Principal, String), DirectoryError> {
        if !self.tenants.contains_key(tenant_id) {
            return Err(DirectoryError::TenantNotFound(tenant_id.to_string()));
        }
        if self.principals.len() >= MAX_PRINCIPALS {
            return Err(DirectoryError::Full(MAX_PRINCIPALS));
        }
        let object_id = ids::guid(rng);
        let app_id = match kind {
            PrincipalKind::User => AZURE_CLI_APP_ID.to_string(),
            PrincipalKind::ServicePrincipal if display_name == COSMOS_DB_DISPLAY_NAME => {
                COSMOS_DB_APP_ID.to_string()
            }
            _ => ids::guid(rng),
        };
        let (secret, salt, hash) = new_secret(rng);
        let principal = Principal {
            object_id: object_id.clone(),
            tenant_id: tenant_id.to_string(),
            app_id,
            display_name: display_name.to_string(),
            kind,
            resource_id: resource_id.to_string(),
            deleted: false,
            administrator: false,
            secret_salt_hex: salt,
            secret_hash_hex: hash,
        };
        self.principals.insert(object_id, principal.clone());
        Ok((principal, secret))
    }

    /// Creates a user or service principal; returns it with its secret (shown only now).
    pub fn create_principal(
        &mut self,
        tenant_id: &str,
        display_name: &str,
        kind: PrincipalKind,
        rng: &mut impl RngCore,
    ) -> Result<(Principal, String), DirectoryError> {
        check_text("display_name", display_name, true)?;
        if matches!(
            kind,
            PrincipalKind::SystemAssigned | PrincipalKind::UserAssigned
        ) {
            return Err(DirectoryError::InvalidInput {
                field: "kind",
                reason: "managed identities are created with CreateManagedIdentity".into(),
            });
        }
        self.new_principal(tenant_id, display_name, kind, "", rng)
    }

    /// Creates the system-assigned managed identity of `resource_id` (at most one live identity
    /// per resource, as in Azure).
    pub fn create_managed_identity(
        &mut self,
        tenant_id: &str,
        resource_id: &str,
        rng: &mut impl RngCore,
    ) -> Result<(Principal, String), DirectoryError> {
        check_text("resource_id", resource_id, true)?;
        let exists = self.principals.values().any(|p| {
            !p.deleted && p.kind == PrincipalKind::SystemAssigned && p.resource_id == resource_id
        });
        if exists {
            return Err(DirectoryError::ManagedIdentityExists(
                resource_id.to_string(),
            ));
        }
        // Azure names a system-assigned identity after its resource.
        let display_name = resource_id.rsplit('/').next().unwrap_or(resource_id);
        self.new_principal(
            tenant_id,
            display_name,
            PrincipalKind::SystemAssigned,
            resource_id,
            rng,
        )
    }

    /// The live service principal whose application (client) id is `app_id`.
    pub fn service_principal_by_app_id(&self, app_id: &str) -> Option<&Principal> {
        self.principals
            .values()
            .find(|p| !p.deleted && p.kind == PrincipalKind::ServicePrincipal && p.app_id == app_id)
    }

    /// Makes `object_id` a directory administrator.
    pub fn make_administrator(&mut self, object_id: &str) -> Result<Principal, DirectoryError> {
        let principal = self
            .principals
            .get_mut(object_id)
            .ok_or_else(|| DirectoryError::PrincipalNotFound(object_id.to_string()))?;
        principal.administrator = true;
        Ok(principal.clone())
    }

    /// True when `object_id` is a live directory administrator.
    pub fn is_administrator(&self, object_id: &str) -> bool {
        self.principals
            .get(object_id)
            .is_some_and(|p| p.administrator && !p.deleted)
    }

    /// Marks a principal deleted: it keeps its record but can no longer obtain tokens.
    pub fn delete_principal(&mut self, object_id: &str) -> Result<Principal, DirectoryError> {
        let principal = self
            .principals
            .get_mut(object_id)
            .ok_or_else(|| DirectoryError::PrincipalNotFound(object_id.to_string()))?;
        if principal.deleted {
            return Err(DirectoryError::PrincipalDeleted(object_id.to_string()));
        }
        principal.deleted = true;
        Ok(principal.clone())
    }

    /// The principal `object_id` if `secret` is its secret and it is not deleted. `object_id`
    /// may also be a service principal's application (client) id, as an OAuth client presents
    /// it (`client_id`): users share the Azure CLI's application id, so only service principals
    /// are found by theirs.
    pub fn authenticate(
        &self,
        object_id: &str,
        secret: &str,
    ) -> Result<&Principal, DirectoryError> {
        self.authenticate_with(object_id, secret, Principal::secret_matches)
    }

    /// [`Directory::authenticate`] with the secret checked by `matches` (a caller that
    /// remembers secrets it has checked), after the same lookup and deletion checks.
    pub fn authenticate_with(
        &self,
        object_id: &str,
        secret: &str,
        matches: impl FnOnce(&Principal, &str) -> bool,
    ) -> Result<&Principal, DirectoryError> {
        let principal = self
            .principals
            .get(object_id)
            .or_else(|| self.service_principal_by_app_id(object_id))
            .ok_or_else(|| DirectoryError::PrincipalNotFound(object_id.to_string()))?;
        if principal.deleted {
            return Err(DirectoryError::PrincipalDeleted(object_id.to_string()));
        }
        if !matches(principal, secret) {
            return Err(DirectoryError::InvalidSecret(object_id.to_string()));
        }
        Ok(principal)
    }
}

impl Directory {
    /// Assigns `role` to principal `principal_id` at `scope` under the assignment name `name`
    /// (empty: a new GUID). Assigning the same role to the same principal at the same scope
    /// again returns the existing assignment (Azure answers such a PUT with the assignment it
    /// has). The first assignment in a subscription binds the subscription to the principal's
    /// tenant; later ones for principals of another tenant are refused. Returns the assignment
    /// and whether it is new.
    pub fn assign_role(
        &mut self,
        scope: &str,
        role: Role,
        principal_id: &str,
        name: &str,
        rng: &mut impl RngCore,
    ) -> Result<(RoleAssignment, bool), DirectoryError> {
        if roles::scope_segments(scope).is_none() {
            return Err(DirectoryError::InvalidInput {
                field: "scope",
                reason: format!(
                    "{} is not the root scope '/' nor a subscription, resource group or \
                     resource id",
                    cmksim_sim::text::echo(scope)
                ),
            });
        }
        let subscription = roles::subscription_of(scope);
        let principal = self
            .principals
            .get(principal_id)
            .ok_or_else(|| DirectoryError::PrincipalNotFound(principal_id.to_string()))?;
        if principal.deleted {
            return Err(DirectoryError::PrincipalDeleted(principal_id.to_string()));
        }
        if let Some(owner) = subscription
            .as_ref()
            .and_then(|s| self.subscriptions.get(s))
        {
            if owner != &principal.tenant_id {
                return Err(DirectoryError::SubscriptionOfAnotherTenant {
                    subscription: subscription.clone().unwrap_or_default(),
                    subscription_tenant: owner.clone(),
                    principal_tenant: principal.tenant_id.clone(),
                    principal: principal_id.to_string(),
                });
            }
        }
        let trimmed_scope = match scope.trim_end_matches('/') {
            "" => roles::ROOT_SCOPE,
            trimmed => trimmed,
        };
        if let Some(existing) = self.role_assignments.values().find(|a| {
            a.principal_id == principal_id
                && a.role == role
                && a.scope.eq_ignore_ascii_case(trimmed_scope)
        }) {
            return Ok((existing.clone(), false));
        }
        if self.role_assignments.len() >= MAX_ROLE_ASSIGNMENTS {
            return Err(DirectoryError::Full(MAX_ROLE_ASSIGNMENTS));
        }
        let name = if name.is_empty() {
            ids::guid(rng)
        } else if ids::is_guid(name) {
            name.to_ascii_lowercase()
        } else {
            return Err(DirectoryError::InvalidInput {
                field: "name",
                reason: format!(
                    "{} is not a GUID (a role assignment's name is one)",
                    cmksim_sim::text::echo(name)
                ),
            });
        };
        let id = format!(
            "{}/providers/Microsoft.Authorization/roleAssignments/{name}",
            trimmed_scope.trim_end_matches('/')
        );
        let assignment = RoleAssignment {
            id: id.clone(),
            name,
            scope: trimmed_scope.to_string(),
            role,
            principal_id: principal_id.to_string(),
            tenant_id: principal.tenant_id.clone(),
        };
        if let Some(subscription) = subscription {
            self.subscriptions
                .entry(subscription)
                .or_insert_with(|| assignment.tenant_id.clone());
        }
        self.role_assignments
            .insert(id.to_ascii_lowercase(), assignment.clone());
        Ok((assignment, true))
    }

    /// Removes the role assignment whose id is `id` (case-insensitive, as ARM ids compare) and
    /// returns it. The subscription keeps its tenant (a subscription does not change tenant when
    /// its last assignment goes).
    pub fn remove_role_assignment(&mut self, id: &str) -> Result<RoleAssignment, DirectoryError> {
        self.role_assignments
            .remove(&id.trim_end_matches('/').to_ascii_lowercase())
            .ok_or_else(|| DirectoryError::RoleAssignmentNotFound(cmksim_sim::text::echo(id)))
    }

    /// Whether `object_id` of `tenant_id` may do `action` at `scope` ([`roles::decide`] over
    /// this directory's subscriptions and assignments). A deleted principal may do nothing.
    pub fn check_access(
        &self,
        object_id: &str,
        tenant_id: &str,
        action: Action,
        scope: &str,
    ) -> Access {
        if self.principals.get(object_id).is_some_and(|p| p.deleted) {
            return Access::Denied;
        }
        let subscription_tenant =
            roles::subscription_of(scope).and_then(|s| self.subscriptions.get(&s));
        roles::decide(
            object_id,
            tenant_id,
            action,
            scope,
            subscription_tenant.map(String::as_str),
            self.role_assignments.values(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmksim_sim::SeedTree;

    fn dir() -> (Directory, String, cmksim_sim::RandomSource) {
        let mut rng = SeedTree::new(1).source("identity");
        let mut d = Directory::default();
        let t = d.create_tenant("contoso", "", &mut rng).unwrap();
        (d, t.tenant_id, rng)
    }

    #[test]
    fn the_cosmos_db_principal_has_its_well_known_application_id_in_every_tenant() {
        let (mut d, tid, mut rng) = dir();
        let other = d.create_tenant("fabrikam", "", &mut rng).unwrap().tenant_id;
        let (a, _) = d
            .create_principal(
                &tid,
                COSMOS_DB_DISPLAY_NAME,
                PrincipalKind::ServicePrincipal,
                &mut rng,
            )
            .unwrap();
        let (b, _) = d
            .create_principal(
                &other,
                COSMOS_DB_DISPLAY_NAME,
                PrincipalKind::ServicePrincipal,
                &mut rng,
            )
            .unwrap();
        assert_eq!(
            (a.app_id.as_str(), b.app_id.as_str()),
            (COSMOS_DB_APP_ID, COSMOS_DB_APP_ID)
        );
        assert_ne!(a.object_id, b.object_id, "one principal per tenant");
        let (app, _) = d
            .create_principal(&tid, "my-app", PrincipalKind::ServicePrincipal, &mut rng)
            .unwrap();
        assert_ne!(app.app_id, COSMOS_DB_APP_ID);
        assert!(cmksim_sim::ids::is_guid(COSMOS_DB_APP_ID));
    }

    #[test]
    fn secret_check_accepts_only_the_right_secret() {
        let (mut d, tid, mut rng) = dir();
        let (p, secret) = d
            .create_principal(&tid, "alice", PrincipalKind::User, &mut rng)
            .unwrap();
        assert_eq!(p.app_id, AZURE_CLI_APP_ID);
        assert!(d.authenticate(&p.object_id, &secret).is_ok());
        assert_eq!(
            d.authenticate(&p.object_id, "wrong"),
            Err(DirectoryError::InvalidSecret(p.object_id.clone()))
        );
        // The stored form is a hash: the secret itself appears nowhere in the record.
        let stored = serde_json::to_string(&d).unwrap();
        assert!(!stored.contains(&secret));
        d.delete_principal(&p.object_id).unwrap();
        assert_eq!(
            d.authenticate(&p.object_id, &secret),
            Err(DirectoryError::PrincipalDeleted(p.object_id.clone()))
        );
    }

    #[test]
    fn one_managed_identity_per_resource_and_bad_input_changes_nothing() {
        let (mut d, tid, mut rng) = dir();
        let rid = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/clusters/c1";
        let (mi, _) = d.create_managed_identity(&tid, rid, &mut rng).unwrap();
        assert_eq!(mi.display_name, "c1");
        assert_eq!(mi.kind, PrincipalKind::SystemAssigned);
        let before = d.clone();
        assert_eq!(
            d.create_managed_identity(&tid, rid, &mut rng),
            Err(DirectoryError::ManagedIdentityExists(rid.into()))
        );
        assert!(matches!(
            d.create_principal("nope", "x", PrincipalKind::User, &mut rng),
            Err(DirectoryError::TenantNotFound(_))
        ));
        assert!(matches!(
            d.create_tenant("t", "not-a-guid", &mut rng),
            Err(DirectoryError::InvalidInput { .. })
        ));
        assert_eq!(d, before);
    }

    #[test]
    fn role_assignments_bind_a_subscription_to_one_tenant() {
        let (mut d, tid, mut rng) = dir();
        let other = d.create_tenant("fabrikam", "", &mut rng).unwrap().tenant_id;
        let (alice, _) = d
            .create_principal(&tid, "alice", PrincipalKind::User, &mut rng)
            .unwrap();
        let (mallory, _) = d
            .create_principal(&other, "mallory", PrincipalKind::User, &mut rng)
            .unwrap();
        let ws = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w";
        assert_eq!(
            d.check_access(&alice.object_id, &tid, Action::QueryRead, ws),
            Access::Denied
        );
        let (a, new) = d
            .assign_role(
                "/subscriptions/s1",
                Role::Reader,
                &alice.object_id,
                "",
                &mut rng,
            )
            .unwrap();
        assert!(new);
        let (again, new) = d
            .assign_role(
                "/subscriptions/S1/",
                Role::Reader,
                &alice.object_id,
                "",
                &mut rng,
            )
            .unwrap();
        assert!(!new);
        assert_eq!(again, a);
        assert_eq!(
            d.check_access(&alice.object_id, &tid, Action::QueryRead, ws),
            Access::Granted
        );
        assert_eq!(
            d.check_access(&alice.object_id, &tid, Action::TelemetryWrite, ws),
            Access::Denied
        );
        assert_eq!(
            d.check_access(&mallory.object_id, &other, Action::QueryRead, ws),
            Access::WrongTenant {
                subscription_tenant: tid.clone()
            }
        );
        assert!(matches!(
            d.assign_role(ws, Role::Owner, &mallory.object_id, "", &mut rng),
            Err(DirectoryError::SubscriptionOfAnotherTenant { .. })
        ));
        assert!(matches!(
            d.assign_role("rg", Role::Owner, &alice.object_id, "", &mut rng),
            Err(DirectoryError::InvalidInput { field: "scope", .. })
        ));
        d.delete_principal(&alice.object_id).unwrap();
        assert_eq!(
            d.check_access(&alice.object_id, &tid, Action::QueryRead, ws),
            Access::Denied
        );
    }
}
