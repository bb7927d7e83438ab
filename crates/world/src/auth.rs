//! Tokens in the simulated world, in one place for every engine: the services check tokens
//! like `serve all` does (issue 17, defect 7), and every client in the world obtains them like
//! any client, from the identity authority that Key Vault hosts.
//!
//! Who is who:
//! - the identity authority's bootstrap administrator (made when Key Vault's host opens it; the
//!   host hands its credentials to [`WorldAuth::admin`]) makes every principal and role
//!   assignment: the identity service refuses those calls without an administrator's token;
//! - the scenario's driver acts as the simulator's administrator: a service principal
//!   `cmksim-driver` of the tenant `cmksim-services` with Owner at the root scope (the scenario's
//!   own users keep their Key Vault access policies as before). What that root role covers, and
//!   why no per-tenant operator can take it over without a change of the scenario format:
//!   every workspace and storage account of a scenario lives in one subscription,
//!   `/subscriptions/scenario/resourceGroups/logs` (`driver::cluster::WORKSPACE_SUBSCRIPTION`;
//!   a `[[workspace]]` names no tenant or subscription, a `[[storage_account]]` a tenant but no
//!   subscription), while clusters live in their own subscriptions and vaults, keys and storage
//!   accounts belong to the scenario's several tenants. A subscription belongs to one tenant
//!   (`cmksim_identity::roles`), so an operator of one tenant holding Owner at `scenario` would
//!   bind it to that tenant and every other tenant's link, saved search or Sentinel onboarding
//!   there would be refused as `InvalidAuthenticationTokenTenant`. The root role is therefore
//!   used for: workspaces (create, retention, locks, tables, purge, links to any tenant's
//!   cluster), storage accounts and saved searches, clusters (create, key update, delete,
//!   Lockbox enablement; a per-tenant operator at a cluster's subscription would do here, but its
//!   workspace links need the shared subscription anyway), Sentinel onboarding and its items,
//!   Customer Lockbox decisions (the customer's answer), and the scenario's agents and probes,
//!   which send and query every tenant's logs through the ingest front end with the driver's
//!   token (Owner grants `Telemetry/Write` and `query/read`; the front end then calls storage as
//!   its own principal). Not covered: the directory (tenants, principals, role assignments are
//!   made with the bootstrap administrator's token) and the support engineer's Lockbox request
//!   and query (the engineer's own token);
//! - the ingest front end calls storage as `cmksim-ingest` (Monitoring Metrics Publisher and
//!   Log Analytics Reader at the root scope: Azure Monitor's pipeline);
//! - Sentinel reads workspaces and clusters from storage as `cmksim-sentinel` (Reader at the
//!   root scope), and registers a tenant's Azure Cosmos DB principal in that name (a first-party
//!   resource provider: the identity service refuses that to anyone else but an administrator);
//! - cluster storage creates the managed identities of clusters and storage accounts as
//!   `cmksim-storage`, a first-party resource provider with no role (the identity service
//!   refuses `CreateManagedIdentity` to anyone else but an administrator).
//!
//! The services start before any principal exists, so the driver makes the principals first
//! thing when it builds the world ([`provision`]) and hands the ingest front end, Sentinel and
//! storage their credentials through [`WorldAuth`]'s slots; a call before that goes out without a
//! token and is refused as a call without one would be. Storage, ingest and Sentinel check
//! tokens with [`cmksim_identity::Guard::remote`] over the simulated network: the signing keys
//! are fetched once, verified tokens and granted decisions are remembered (bounded, see
//! `cmksim_identity::guard` and `cmksim_identity::token`), so a run pays one signature check
//! per token, not per call.

use std::sync::Arc;

use tonic::transport::Channel;

use cmksim_identity::{AuthChannel, CredentialSlot, Guard, Role, TokenSource};
use cmksim_sim::net::{ClientTimeouts, EndpointError, Network};
use cmksim_sim::Clock;

/// The driver's principal's roles.
pub const DRIVER_ROLES: [Role; 1] = [Role::Owner];
/// The ingest front end's principal's roles (the same as `serve all`'s).
pub const INGEST_ROLES: [Role; 2] = [Role::MonitoringMetricsPublisher, Role::LogAnalyticsReader];
/// Sentinel's principal's roles.
pub const SENTINEL_ROLES: [Role; 1] = [Role::Reader];
/// Cluster storage's principal's roles: none (it is a resource provider, which lets it create
/// managed identities, `cmksim_identity::Principal::is_resource_provider`; it calls no guarded
/// service).
pub const STORAGE_ROLES: [Role; 0] = [];

/// The credentials of the simulated world's services, provisioned by the driver. Clones share
/// the slots (the hosts of an engine keep one each; a restarted host finds them provisioned).
#[derive(Clone, Debug, Default)]
pub struct WorldAuth {
    /// The identity authority's bootstrap administrator, set by Key Vault's host when it opens
    /// the authority (a restarted host finds it set).
    pub admin: CredentialSlot,
    pub ingest: CredentialSlot,
    pub sentinel: CredentialSlot,
    /// Cluster storage's first-party principal (it creates the managed identities of clusters
    /// and storage accounts).
    pub storage: CredentialSlot,
}

impl WorldAuth {
    /// Empty slots, to be provisioned by the driver ([`crate::driver::Driver::with_auth`]).
    pub fn new() -> WorldAuth {
        WorldAuth::default()
    }

    /// Hands the bootstrap administrator of Key Vault's identity authority to the world (Key
    /// Vault's host calls this once it has opened the server; later calls change nothing).
    pub fn set_admin(&self, keyvault: &cmksim_keyvault::KeyVaultServer) {
        let identity = keyvault.identity();
        let authority = identity.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(admin) = authority.admin_credentials() {
            self.admin.set(&admin.object_id, &admin.client_secret);
        }
    }

    /// The guard of a service whose identity authority is at `identity_uri` on `network`.
    pub fn guard(
        &self,
        network: &Network,
        identity_uri: &str,
        clock: Clock,
    ) -> Result<Guard, EndpointError> {
        let channel = network.channel(identity_uri, ClientTimeouts::default())?;
        Ok(Guard::remote(channel, clock))
    }

    /// The ingest front end's tokens (for its calls to storage).
    pub fn ingest_tokens(
        &self,
        network: &Network,
        identity_uri: &str,
        clock: Clock,
    ) -> Result<Arc<TokenSource>, EndpointError> {
        tokens(network, identity_uri, self.ingest.clone(), clock)
    }

    /// Sentinel's tokens (for its calls to storage).
    pub fn sentinel_tokens(
        &self,
        network: &Network,
        identity_uri: &str,
        clock: Clock,
    ) -> Result<Arc<TokenSource>, EndpointError> {
        tokens(network, identity_uri, self.sentinel.clone(), clock)
    }
}

fn tokens(
    network: &Network,
    identity_uri: &str,
    slot: CredentialSlot,
    clock: Clock,
) -> Result<Arc<TokenSource>, EndpointError> {
    let channel = network.channel(identity_uri, ClientTimeouts::default())?;
    Ok(TokenSource::provisioned(channel, slot, clock))
}

/// `identity` carrying the administrator's management token of `admin` on the identity
/// service's administrative calls (until `admin` is provisioned they are refused as
/// UNAUTHENTICATED).
pub fn admin_channel(identity: Channel, admin: &CredentialSlot, clock: Clock) -> AuthChannel {
    let tokens = TokenSource::provisioned(identity.clone(), admin.clone(), clock);
    AuthChannel::new(identity, Some(tokens))
}

/// Makes the principal `display_name` with `roles` at the root scope through the identity
/// service on `identity` (an [`admin_channel`]) and puts its credentials into `slot`.
pub async fn provision(
    identity: AuthChannel,
    display_name: &str,
    roles: &[Role],
    slot: &CredentialSlot,
) -> Result<(), tonic::Status> {
    let (object_id, secret) =
        cmksim_identity::provision_service_principal(identity, display_name, roles).await?;
    slot.set(&object_id, &secret);
    Ok(())
}
