//! [`IdentityAuthority`]: the directory, the token signer and the store as one unit.
//!
//! Every mutation runs the pure directory function first, then writes the changed record and
//! flushes; if the write fails the in-memory change is undone, so a caller never sees a success
//! that a restart would forget, nor a failure that left half a change behind. Tokens are issued
//! only against the principal's secret: "a caller cannot act as a principal whose token it cannot
//! obtain".
//!
//! The bootstrap administrator: the identity service's administrative calls (tenants,
//! principals, role assignments) need an administrator's token ([`IdentityAuthority::authorize`]),
//! so someone must exist before the first call. On its first start the authority makes one — a
//! service principal `cmksim-admin` of the tenant `cmksim`, a directory administrator, with User
//! Access Administrator at the root scope (what Azure gives a Global Administrator who elevates
//! access) — and writes its client id and secret once to [`ADMIN_CREDENTIALS_FILE`] (mode 0600)
//! in the store's directory ([`admin_credentials_path`]), before the directory records it: a crash in between leaves no
//! administrator, and the next start makes a new one and overwrites the file.
//!
//! A directory made before there was a bootstrap administrator gets one at its next start, the
//! same way, its tenants, principals and role assignments kept; the administrator the HTTPS door
//! made for itself then (`cmksim-admin` of tenant `cmksim`, its secret in the door's
//! `credentials.json`) is made a directory administrator too, so that the door keeps working
//! with the credentials its user has.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cmksim_sim::lru::Lru;
use cmksim_sim::{RandomSource, SimTime};

use crate::client::{AdminCredentials, AdminFileError};
use crate::directory::{Directory, DirectoryError, Principal, PrincipalKind, Tenant};
use crate::grpc_auth::{AuthError, Caller};
use crate::roles::{self, Access, Action, Role, RoleAssignment};
use crate::store::{IdentityStore, StoreError};
use crate::token::{audience, Authority, Jwk, TokenVerifier};

/// Why an identity operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    AdminFile(#[from] AdminFileError),
    #[error("unknown audience {0:?}: expected {aud_vault} or {aud_mgmt}", aud_vault = audience::VAULT, aud_mgmt = audience::MANAGEMENT)]
    UnknownAudience(String),
}

/// The bootstrap administrator's credentials file, in the directory that holds the store.
pub const ADMIN_CREDENTIALS_FILE: &str = "identity-admin.json";
/// The bootstrap administrator's tenant.
pub const ADMIN_TENANT_NAME: &str = "cmksim";
/// The bootstrap administrator's display name.
pub const ADMIN_NAME: &str = "cmksim-admin";

/// Where the authority whose store is `store_dir` keeps its administrator's credentials: in the
/// store's directory, beside sled's own files (`DATA_DIR/identity/identity-admin.json` for a Key
/// Vault data directory `DATA_DIR`), so that it goes wherever the directory it belongs to goes.
pub fn admin_credentials_path(store_dir: &Path) -> PathBuf {
    store_dir.join(ADMIN_CREDENTIALS_FILE)
}

/// The draws of a reopened store. A seeded source starts the same stream at every open of the
/// same seed, so without this the ids and secrets drawn after a restart (of a simulated Key
/// Vault, say) repeated those of the first start: a principal made after the restart took the
/// object id, application id and secret of one made before it, and replaced it. Each reopening
/// gets a stream of its own, derived from the seed's and the number of reopenings before it
/// (persisted by the store), so the same run restarted at the same points draws the same values.
/// The operating system's source is left as it is.
fn reopened_rng(mut rng: RandomSource, reopens: u64) -> RandomSource {
    if !rng.is_seeded() {
        return rng;
    }
    let mut base = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rng, &mut base);
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(b"cmksim identity: reopened store");
    context.update(&base);
    context.update(&reopens.to_le_bytes());
    let mut seed = [0u8; 32];
    seed.copy_from_slice(context.finish().as_ref());
    RandomSource::from_seed(seed)
}

/// The identity authority of one process.
pub struct IdentityAuthority {
    directory: Directory,
    authority: Authority,
    store: Option<IdentityStore>,
    rng: RandomSource,
    /// The bootstrap administrator's credentials, when this process made them or could read
    /// them back from their file (the directory keeps only the secret's hash).
    admin: Option<AdminCredentials>,
    /// True when this start made the administrator (print its credentials once).
    admin_created: bool,
    /// Secrets already checked, by principal object id: [`Principal::checked_secret_digest`]
    /// of the secret that matched (at most [`CHECKED_SECRETS_MAX`], least recently used
    /// evicted). A token request with the same secret skips the PBKDF2 check (about 5 M
    /// instructions, the bulk of issuing a token); any other secret is checked in full.
    checked_secrets: Mutex<Lru<[u8; 32]>>,
}

/// Most principals whose checked secret is remembered.
pub const CHECKED_SECRETS_MAX: usize = 1024;

impl std::fmt::Debug for IdentityAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityAuthority")
            .field("tenants", &self.directory.tenants.len())
            .field("principals", &self.directory.principals.len())
            .field("kid", &self.authority.kid())
            .finish()
    }
}

impl IdentityAuthority {
    /// Opens the authority persisted in `dir` (creating it, with a new signing key drawn from
    /// `rng`, on first use). `rng` also draws ids and secrets.
    pub fn open(dir: &Path, mut rng: RandomSource) -> Result<IdentityAuthority, IdentityError> {
        let store = IdentityStore::open(dir)?;
        let directory = store.load_directory()?;
        let authority = match store.load_signing_key()? {
            Some(scalar) => {
                let reopens = store.count_reopen()?;
                rng = reopened_rng(rng, reopens);
                Authority::from_secret_scalar(&scalar).map_err(|e| StoreError::Corrupt {
                    key: "signing-key".into(),
                    reason: e.to_string(),
                })?
            }
            None => {
                let authority = Authority::generate(&mut rng);
                store.save_signing_key(&authority.secret_scalar())?;
                authority
            }
        };
        let mut opened = IdentityAuthority {
            directory,
            authority,
            store: Some(store),
            rng,
            admin: None,
            admin_created: false,
            checked_secrets: Mutex::new(Lru::new(CHECKED_SECRETS_MAX)),
        };
        let path = admin_credentials_path(dir);
        if opened
            .directory
            .principals
            .values()
            .any(|p| p.administrator && !p.deleted)
        {
            // Kept from an earlier start; a file removed by the user is not an error (the
            // credentials are then only theirs to know).
            opened.admin = match AdminCredentials::load(&path) {
                Ok(c) => Some(c),
                Err(AdminFileError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    None
                }
                Err(e) => return Err(e.into()),
            };
        } else {
            opened.adopt_earlier_door_administrators()?;
            opened.bootstrap_admin(Some(&path))?;
        }
        Ok(opened)
    }

    /// A directory made before the bootstrap administrator existed (before the identity service
    /// checked administrative calls) holds the administrator the HTTPS door made for itself on
    /// its first start: a service principal [`ADMIN_NAME`] of a tenant [`ADMIN_TENANT_NAME`],
    /// whose client id and secret are in the door's `credentials.json`. It stays the door's
    /// administrator: it is made a directory administrator with User Access Administrator at
    /// the root scope, as the bootstrap administrator is, so that the door's start (its roles at
    /// `/`) and its admin API keep working with the credentials the user already has. The
    /// assignment is written before the principal's flag, so a crash in between leaves a
    /// directory without an administrator, adopted again at the next start. Nothing else
    /// changes: every other tenant, principal and assignment is kept as it was.
    fn adopt_earlier_door_administrators(&mut self) -> Result<(), IdentityError> {
        let door_tenants: Vec<&str> = self
            .directory
            .tenants
            .values()
            .filter(|t| t.name == ADMIN_TENANT_NAME)
            .map(|t| t.tenant_id.as_str())
            .collect();
        let earlier: Vec<String> = self
            .directory
            .principals
            .values()
            .filter(|p| {
                !p.deleted
                    && p.kind == PrincipalKind::ServicePrincipal
                    && p.display_name == ADMIN_NAME
                    && door_tenants.contains(&p.tenant_id.as_str())
            })
            .map(|p| p.object_id.clone())
            .collect();
        for object_id in earlier {
            let mut draft = self.directory.clone();
            let (assignment, new) = draft.assign_role(
                roles::ROOT_SCOPE,
                Role::UserAccessAdministrator,
                &object_id,
                "",
                &mut self.rng,
            )?;
            let principal = draft.make_administrator(&object_id)?;
            if let Some(store) = &self.store {
                if new {
                    store.save_role_assignment(&assignment, None)?;
                }
                store.save_principal(&principal)?;
            }
            self.directory = draft;
        }
        Ok(())
    }

    /// An authority that keeps nothing on disk (unit tests, throw-away runs), with its bootstrap
    /// administrator ([`IdentityAuthority::admin_credentials`]).
    pub fn in_memory(mut rng: RandomSource) -> IdentityAuthority {
        let authority = Authority::generate(&mut rng);
        let mut made = IdentityAuthority {
            directory: Directory::default(),
            authority,
            store: None,
            rng,
            admin: None,
            admin_created: false,
            checked_secrets: Mutex::new(Lru::new(CHECKED_SECRETS_MAX)),
        };
        // Nothing to write: only the in-memory directory can fail, and it cannot for the first
        // tenant and principal of an empty directory.
        if let Err(e) = made.bootstrap_admin(None) {
            unreachable!("the bootstrap administrator of an empty directory: {e}");
        }
        made
    }

    /// Makes the bootstrap administrator (see the module doc): its credentials are written to
    /// `file` (if any) before the directory records it.
    fn bootstrap_admin(&mut self, file: Option<&Path>) -> Result<(), IdentityError> {
        let mut draft = self.directory.clone();
        let tenant = draft.create_tenant(ADMIN_TENANT_NAME, "", &mut self.rng)?;
        let (principal, secret) = draft.create_principal(
            &tenant.tenant_id,
            ADMIN_NAME,
            PrincipalKind::ServicePrincipal,
            &mut self.rng,
        )?;
        let principal = draft.make_administrator(&principal.object_id)?;
        let (assignment, _) = draft.assign_role(
            roles::ROOT_SCOPE,
            Role::UserAccessAdministrator,
            &principal.object_id,
            "",
            &mut self.rng,
        )?;
        let credentials = AdminCredentials {
            tenant_id: tenant.tenant_id.clone(),
            client_id: principal.app_id.clone(),
            client_secret: secret,
            object_id: principal.object_id.clone(),
        };
        if let Some(file) = file {
            credentials.save(file)?;
        }
        if let Some(store) = &self.store {
            store.save_tenant(&tenant)?;
            store.save_principal(&principal)?;
            store.save_role_assignment(&assignment, None)?;
        }
        self.directory = draft;
        self.admin = Some(credentials);
        self.admin_created = true;
        Ok(())
    }

    /// The bootstrap administrator's credentials, when known to this process (made by it, or
    /// read back from their file).
    pub fn admin_credentials(&self) -> Option<&AdminCredentials> {
        self.admin.as_ref()
    }

    /// True when this start made the bootstrap administrator (its credentials are to be shown
    /// once).
    pub fn admin_created(&self) -> bool {
        self.admin_created
    }

    /// Whether `caller` (whose token `issuer` signed) may do the administrative `action` at
    /// `scope`: [`Action::DirectoryWrite`] needs a live directory administrator of the token's
    /// tenant; [`Action::ManagedIdentitiesWrite`] such an administrator or a first-party resource
    /// provider ([`Principal::is_resource_provider`]); [`Action::RoleAssignmentsWrite`] a role granting it at a scope covering `scope`
    /// (Owner or User Access Administrator, Azure's `roleAssignments/write`). The refusals are
    /// the guards': 401 `InvalidAuthenticationTokenTenant`, 403 `AuthorizationFailed`.
    pub fn authorize(
        &self,
        caller: &Caller,
        issuer: &str,
        action: Action,
        scope: &str,
    ) -> Result<(), AuthError> {
        let forbidden = || AuthError::Forbidden {
            object_id: caller.object_id.clone(),
            action,
            scope: scope.to_string(),
        };
        if matches!(
            action,
            Action::DirectoryWrite | Action::ManagedIdentitiesWrite
        ) {
            let allowed = self
                .directory
                .principals
                .get(&caller.object_id)
                .filter(|p| !p.deleted && p.tenant_id.eq_ignore_ascii_case(&caller.tenant_id))
                .is_some_and(|p| {
                    p.administrator
                        || (action == Action::ManagedIdentitiesWrite && p.is_resource_provider())
                });
            return if allowed { Ok(()) } else { Err(forbidden()) };
        }
        match self.check_access(&caller.object_id, &caller.tenant_id, action, scope) {
            Access::Granted => Ok(()),
            Access::WrongTenant {
                subscription_tenant,
            } => Err(AuthError::WrongTenant {
                token_issuer: issuer.to_string(),
                token_tenant: caller.tenant_id.clone(),
                subscription_tenant,
            }),
            Access::Denied => Err(forbidden()),
        }
    }

    /// The directory (read-only).
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// A verifier for this authority's tokens.
    pub fn verifier(&self) -> TokenVerifier {
        self.authority.verifier()
    }

    /// The public signing keys.
    pub fn signing_keys(&self) -> Vec<Jwk> {
        vec![self.authority.jwk()]
    }

    /// The signer itself (tests build deliberately bad tokens with it).
    pub fn signer(&self) -> &Authority {
        &self.authority
    }

    /// Creates a tenant.
    pub fn create_tenant(&mut self, name: &str, tenant_id: &str) -> Result<Tenant, IdentityError> {
        let tenant = self
            .directory
            .create_tenant(name, tenant_id, &mut self.rng)?;
        if let Some(store) = &self.store {
            if let Err(e) = store.save_tenant(&tenant) {
                self.directory.tenants.remove(&tenant.tenant_id);
                return Err(e.into());
            }
        }
        Ok(tenant)
    }

    fn persist_new(
        &mut self,
        created: (Principal, String),
    ) -> Result<(Principal, String), IdentityError> {
        if let Some(store) = &self.store {
            if let Err(e) = store.save_principal(&created.0) {
                self.directory.principals.remove(&created.0.object_id);
                return Err(e.into());
            }
        }
        Ok(created)
    }

    /// Creates a user or service principal; the secret is returned only now.
    pub fn create_principal(
        &mut self,
        tenant_id: &str,
        display_name: &str,
        kind: PrincipalKind,
    ) -> Result<(Principal, String), IdentityError> {
        let created =
            self.directory
                .create_principal(tenant_id, display_name, kind, &mut self.rng)?;
        self.persist_new(created)
    }

    /// Makes a service principal `display_name` in the services tenant
    /// ([`crate::client::SERVICES_TENANT`], made when missing) with `roles` at the root scope:
    /// the in-process form of [`crate::provision_service_principal`], for a host that holds the
    /// authority (`serve all`, tests). A new principal each call; its secret is returned only now.
    pub fn create_service_principal(
        &mut self,
        display_name: &str,
        roles: &[Role],
    ) -> Result<(Principal, String), IdentityError> {
        use crate::client::{SERVICES_TENANT, SERVICES_TENANT_ID};
        let exists = self
            .directory
            .tenants
            .values()
            .any(|t| t.tenant_id.eq_ignore_ascii_case(SERVICES_TENANT_ID));
        if !exists {
            self.create_tenant(SERVICES_TENANT, SERVICES_TENANT_ID)?;
        }
        let (principal, secret) = self.create_principal(
            SERVICES_TENANT_ID,
            display_name,
            PrincipalKind::ServicePrincipal,
        )?;
        for role in roles {
            self.assign_role(roles::ROOT_SCOPE, *role, &principal.object_id, "")?;
        }
        Ok((principal, secret))
    }

    /// Creates the system-assigned managed identity of a resource.
    pub fn create_managed_identity(
        &mut self,
        tenant_id: &str,
        resource_id: &str,
    ) -> Result<(Principal, String), IdentityError> {
        let created =
            self.directory
                .create_managed_identity(tenant_id, resource_id, &mut self.rng)?;
        self.persist_new(created)
    }

    /// Deletes a principal: it can no longer obtain tokens.
    pub fn delete_principal(&mut self, object_id: &str) -> Result<Principal, IdentityError> {
        let principal = self.directory.delete_principal(object_id)?;
        if let Some(store) = &self.store {
            if let Err(e) = store.save_principal(&principal) {
                if let Some(p) = self.directory.principals.get_mut(object_id) {
                    p.deleted = false;
                }
                return Err(e.into());
            }
        }
        Ok(principal)
    }

    /// Assigns `role` to `principal_id` at `scope` ([`Directory::assign_role`]), persisted before
    /// the answer; an assignment that existed already is returned as it is.
    pub fn assign_role(
        &mut self,
        scope: &str,
        role: Role,
        principal_id: &str,
        name: &str,
    ) -> Result<RoleAssignment, IdentityError> {
        let before_subscriptions = self.directory.subscriptions.clone();
        let (assignment, new) =
            self.directory
                .assign_role(scope, role, principal_id, name, &mut self.rng)?;
        if let (true, Some(store)) = (new, &self.store) {
            let subscription = roles::subscription_of(scope);
            if let Err(e) = store.save_role_assignment(&assignment, subscription.as_deref()) {
                self.directory
                    .role_assignments
                    .remove(&assignment.id.to_ascii_lowercase());
                self.directory.subscriptions = before_subscriptions;
                return Err(e.into());
            }
        }
        Ok(assignment)
    }

    /// Removes the role assignment `id`, persisted before the answer (a failed write puts it
    /// back): from then on it grants nothing.
    pub fn remove_role_assignment(&mut self, id: &str) -> Result<RoleAssignment, IdentityError> {
        let removed = self.directory.remove_role_assignment(id)?;
        if let Some(store) = &self.store {
            if let Err(e) = store.remove_role_assignment(&removed.id) {
                self.directory
                    .role_assignments
                    .insert(removed.id.to_ascii_lowercase(), removed);
                return Err(e.into());
            }
        }
        Ok(removed)
    }

    /// Whether `object_id` of `tenant_id` may do `action` at `scope`.
    pub fn check_access(
        &self,
        object_id: &str,
        tenant_id: &str,
        action: Action,
        scope: &str,
    ) -> Access {
        self.directory
            .check_access(object_id, tenant_id, action, scope)
    }

    /// Issues an access token for `object_id` (or a service principal's client id) if `secret`
    /// is its secret. Only the audiences of the simulated world ([`audience::ALL`]) are
    /// accepted.
    pub fn issue_token(
        &self,
        object_id: &str,
        secret: &str,
        aud: &str,
        lifetime_seconds: u64,
        now: SimTime,
    ) -> Result<(String, SimTime), IdentityError> {
        let canonical = aud.trim_end_matches('/');
        if !audience::ALL.contains(&canonical) {
            return Err(IdentityError::UnknownAudience(aud.to_string()));
        }
        let principal =
            self.directory
                .authenticate_with(object_id, secret, |principal, secret| {
                    self.secret_matches(principal, secret)
                })?;
        Ok(self
            .authority
            .issue(principal, canonical, now, lifetime_seconds))
    }

    /// [`Principal::secret_matches`], answered from the secrets already checked when `secret`
    /// is one of them (compared in constant time).
    fn secret_matches(&self, principal: &Principal, secret: &str) -> bool {
        let digest = principal.checked_secret_digest(secret);
        let mut checked = self
            .checked_secrets
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(known) = checked.get(&principal.object_id) {
            if aws_lc_rs::constant_time::verify_slices_are_equal(&known[..], &digest).is_ok() {
                return true;
            }
        }
        if !principal.secret_matches(secret) {
            return false;
        }
        checked.insert(&principal.object_id, std::sync::Arc::new(digest));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmksim_sim::SeedTree;

    #[test]
    fn restart_keeps_tenants_principals_and_signing_key() {
        let dir = tempfile::tempdir().unwrap();
        let now = SimTime::DEFAULT_EPOCH;
        let (oid, secret, kid, tenant) = {
            let mut a =
                IdentityAuthority::open(dir.path(), SeedTree::new(5).source("identity")).unwrap();
            let t = a.create_tenant("contoso", "").unwrap();
            let (p, secret) = a
                .create_principal(&t.tenant_id, "alice", PrincipalKind::User)
                .unwrap();
            let (gone, _) = a
                .create_principal(&t.tenant_id, "bob", PrincipalKind::User)
                .unwrap();
            a.delete_principal(&gone.object_id).unwrap();
            (
                p.object_id,
                secret,
                a.signer().kid().to_string(),
                t.tenant_id,
            )
        };
        // sled's background thread may hold the directory's file lock for a moment after the
        // first handle is dropped: reopen with a bounded retry, as a restarted process would
        // simply find the lock free.
        let mut reopened = None;
        for _ in 0..100 {
            match IdentityAuthority::open(dir.path(), SeedTree::new(6).source("identity")) {
                Ok(a) => {
                    reopened = Some(a);
                    break;
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
        let a = reopened.expect("the store reopens once the first handle is gone");
        assert_eq!(a.signer().kid(), kid);
        // contoso, alice and bob, and the bootstrap administrator's tenant and principal (kept,
        // not made again: its credentials are read back from their file).
        assert_eq!(a.directory().tenants.len(), 2);
        assert_eq!(a.directory().principals.len(), 3);
        assert!(!a.admin_created());
        let admin = a.admin_credentials().expect("read back from its file");
        assert!(a.directory().is_administrator(&admin.object_id));
        assert_eq!(
            a.directory()
                .principals
                .values()
                .filter(|p| p.deleted)
                .count(),
            1
        );
        let (token, _) = a
            .issue_token(&oid, &secret, audience::VAULT, 0, now)
            .unwrap();
        let claims = a
            .verifier()
            .verify(&token, audience::VAULT, Some(&tenant), now)
            .unwrap()
            .claims;
        assert_eq!(claims.oid, oid);
    }

    #[test]
    fn role_assignments_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let scope = "/subscriptions/s9/resourceGroups/rg";
        let (oid, tid) = {
            let mut a =
                IdentityAuthority::open(dir.path(), SeedTree::new(5).source("identity")).unwrap();
            let t = a.create_tenant("contoso", "").unwrap();
            let (p, _) = a
                .create_principal(&t.tenant_id, "app", PrincipalKind::ServicePrincipal)
                .unwrap();
            a.assign_role(scope, Role::LogAnalyticsReader, &p.object_id, "")
                .unwrap();
            (p.object_id, t.tenant_id)
        };
        let mut reopened = None;
        for _ in 0..100 {
            match IdentityAuthority::open(dir.path(), SeedTree::new(6).source("identity")) {
                Ok(a) => {
                    reopened = Some(a);
                    break;
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
        let a = reopened.expect("the store reopens once the first handle is gone");
        let ws = format!("{scope}/providers/Microsoft.OperationalInsights/workspaces/w");
        assert_eq!(
            a.check_access(&oid, &tid, Action::QueryRead, &ws),
            Access::Granted
        );
        assert_eq!(
            a.check_access(&oid, "another-tenant", Action::QueryRead, &ws),
            Access::WrongTenant {
                subscription_tenant: tid.clone()
            }
        );
        assert_eq!(
            a.check_access(&oid, &tid, Action::ClustersWrite, &ws),
            Access::Denied
        );
    }

    /// An in-memory authority with a tenant and its service principal `app` (and its secret).
    fn with_app(seed: u64) -> (IdentityAuthority, Tenant, Principal, String) {
        let mut a = IdentityAuthority::in_memory(SeedTree::new(seed).source("identity"));
        let t = a.create_tenant("t", "").unwrap();
        let (p, secret) = a
            .create_principal(&t.tenant_id, "app", PrincipalKind::ServicePrincipal)
            .unwrap();
        (a, t, p, secret)
    }

    /// Deletes `p` and checks that its secret gets no token any more.
    fn delete_and_refuse(a: &mut IdentityAuthority, p: &Principal, secret: &str) {
        a.delete_principal(&p.object_id).unwrap();
        let now = SimTime::DEFAULT_EPOCH;
        assert!(matches!(
            a.issue_token(&p.object_id, secret, audience::VAULT, 0, now),
            Err(IdentityError::Directory(DirectoryError::PrincipalDeleted(
                _
            )))
        ));
    }

    #[test]
    fn tokens_need_the_secret_and_a_known_audience() {
        let (mut a, _, p, secret) = with_app(1);
        let now = SimTime::DEFAULT_EPOCH;
        assert!(matches!(
            a.issue_token(&p.object_id, "guess", audience::VAULT, 0, now),
            Err(IdentityError::Directory(DirectoryError::InvalidSecret(_)))
        ));
        assert!(matches!(
            a.issue_token(&p.object_id, &secret, "https://graph.microsoft.com", 0, now),
            Err(IdentityError::UnknownAudience(_))
        ));
        delete_and_refuse(&mut a, &p, &secret);
    }

    #[test]
    fn a_checked_secret_is_remembered_and_every_other_secret_still_refused() {
        let (mut a, t, p, secret) = with_app(2);
        let (other, other_secret) = a
            .create_principal(&t.tenant_id, "other", PrincipalKind::ServicePrincipal)
            .unwrap();
        let now = SimTime::DEFAULT_EPOCH;
        let remembered = |a: &IdentityAuthority| a.checked_secrets.lock().unwrap().len();
        assert_eq!(remembered(&a), 0);
        a.issue_token(&p.object_id, &secret, audience::VAULT, 0, now)
            .unwrap();
        assert_eq!(remembered(&a), 1);
        // Answered from what was remembered, and nothing more is remembered.
        a.issue_token(&p.object_id, &secret, audience::MANAGEMENT, 0, now)
            .unwrap();
        assert_eq!(remembered(&a), 1);
        // Another secret, or another principal's, is checked in full and refused.
        for wrong in ["guess", other_secret.as_str()] {
            assert!(matches!(
                a.issue_token(&p.object_id, wrong, audience::VAULT, 0, now),
                Err(IdentityError::Directory(DirectoryError::InvalidSecret(_)))
            ));
        }
        assert!(matches!(
            a.issue_token(&other.object_id, &secret, audience::VAULT, 0, now),
            Err(IdentityError::Directory(DirectoryError::InvalidSecret(_)))
        ));
        // A deleted principal is refused before any secret is looked at.
        delete_and_refuse(&mut a, &p, &secret);
    }
}
