//! The onboarding rules of seed 002 ("Set up Azure Sentinel customer-managed key"), as one pure
//! function of the facts the service gathered.
//!
//! Onboarding is `PUT .../onboardingStates/default` with `customerManagedKey`. The seed's five
//! steps become checks, in the seed's order, each answering with the first step left undone:
//! - "The Azure Sentinel CMK capability is provided only to **new workspaces**": a workspace that
//!   was ever onboarded to Sentinel before is not new ([`OnboardingRefusal::NotNewWorkspace`]).
//! - "STEP 2: Enable CMK on your Log Analytics workspace": the workspace must be linked to a
//!   dedicated cluster that has a customer-managed key ([`OnboardingRefusal::NotLinked`],
//!   [`OnboardingRefusal::ClusterWithoutKey`]); "only System Assigned Identities are supported"
//!   ([`OnboardingRefusal::IdentityNotSystemAssigned`]).
//! - "STEP 3: Register to the Cosmos DB Resource Provider"
//!   ([`OnboardingRefusal::CosmosDbNotRegistered`]).
//! - "STEP 4: Add an access policy to your Azure Key Vault instance ... with Azure Cosmos DB
//!   principal": the service proves it by wrapping and unwrapping a probe with the cluster's key
//!   as that principal; a denial is [`OnboardingRefusal::CosmosDbNoAccess`].
//!
//! A workspace onboarded without `customerManagedKey` is onboarded under the Microsoft-managed
//! key whatever its cluster: seed 002 says linking it later "will lead to its Azure Sentinel data
//! being encrypted by a Microsoft Managed Key instead of the Customer Managed Key".
//!
//! The seed gives no error text. Every message below is the simulator's wording, written in the
//! seed's terms, and the codes are the simulator's choice too (except
//! `MissingSubscriptionRegistration`, ARM's own code for an unregistered resource provider).

use cmksim_sim::text::echo;
use cmksim_storage::keyloop::{DenialKind, KeyRef};

/// The resource provider Sentinel's Cosmos DB store needs registered (seed 002, step 3).
pub const COSMOS_DB_PROVIDER: &str = "Microsoft.DocumentDB";

/// What the service knows about the workspace when an onboarding request arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnboardingFacts {
    pub workspace: String,
    pub subscription_id: String,
    /// The request's `customerManagedKey`.
    pub customer_managed_key: bool,
    /// The workspace was onboarded to Sentinel before (now or in the past).
    pub previously_onboarded: bool,
    /// The dedicated cluster the workspace is linked to, if the link completed.
    pub cluster: Option<ClusterFacts>,
    /// `Microsoft.DocumentDB` is registered for the subscription.
    pub cosmos_db_registered: bool,
    /// The outcome of the Cosmos DB principal's probe (get, wrapKey, unwrapKey) on the
    /// cluster's key; `None` when no probe was made (no key to probe).
    pub cosmos_db_access: Option<AccessProbe>,
}

/// The cluster a workspace is linked to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterFacts {
    pub name: String,
    /// Its `keyVaultProperties`; `None` under the Microsoft-managed key.
    pub key: Option<KeyRef>,
    /// `SystemAssigned` or another identity type.
    pub identity_type: String,
}

/// What the vault said to the Cosmos DB principal's probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessProbe {
    /// wrapKey and unwrapKey both succeeded, with this key version.
    Granted { version: String },
    /// The vault said no.
    Denied {
        kind: DenialKind,
        http_status: u16,
        code: String,
    },
    /// The vault could not answer (timeout, 5xx): nothing can be concluded.
    Unreachable { detail: String },
}

/// How an accepted onboarding protects the workspace's Sentinel data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnboardingPlan {
    /// Under the cluster's customer-managed key, through the Cosmos DB principal.
    CustomerManagedKey { cluster: String, key: KeyRef },
    /// Under the Microsoft-managed key (`customerManagedKey` false).
    MicrosoftManagedKey,
}

/// Why onboarding was refused. The messages are the simulator's wording (seed 002 gives none).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OnboardingRefusal {
    #[error(
        "Workspace {} is already onboarded to Azure Sentinel.",
        echo(workspace)
    )]
    AlreadyOnboarded { workspace: String },
    #[error("The Azure Sentinel customer-managed key capability is provided only to new workspaces; workspace {} was onboarded to Azure Sentinel before.", echo(workspace))]
    NotNewWorkspace { workspace: String },
    #[error("Workspace {} is not linked to a dedicated Log Analytics cluster; Azure Sentinel customer-managed key onboarding needs a workspace linked to a cluster with a customer-managed key.", echo(workspace))]
    NotLinked { workspace: String },
    #[error("The dedicated Log Analytics cluster {} of workspace {} has no customer-managed key; configure the key on the cluster before onboarding the workspace to Azure Sentinel with a customer-managed key.", echo(cluster), echo(workspace))]
    ClusterWithoutKey { workspace: String, cluster: String },
    #[error("Only System Assigned identities are supported with Azure Sentinel customer-managed key; the dedicated Log Analytics cluster {} has identity type {}.", echo(cluster), echo(identity_type))]
    IdentityNotSystemAssigned {
        cluster: String,
        identity_type: String,
    },
    #[error("The Cosmos DB resource provider ({COSMOS_DB_PROVIDER}) is not registered for subscription {}; register it before onboarding a customer-managed key workspace to Azure Sentinel.", echo(subscription_id))]
    CosmosDbNotRegistered { subscription_id: String },
    #[error("The Azure Cosmos DB principal cannot use key {key} ({http_status} {code}); add an access policy for the Azure Cosmos DB principal with the get, wrapKey and unwrapKey key permissions.")]
    CosmosDbNoAccess {
        key: String,
        http_status: u16,
        code: String,
    },
    #[error("The key vault of key {key} could not be reached to verify the Azure Cosmos DB principal's access ({detail}); try again.")]
    VaultUnreachable { key: String, detail: String },
}

impl OnboardingRefusal {
    /// The Azure error code (the simulator's, except `MissingSubscriptionRegistration`).
    pub fn code(&self) -> &'static str {
        match self {
            OnboardingRefusal::AlreadyOnboarded { .. } => "Conflict",
            OnboardingRefusal::NotNewWorkspace { .. } => "CustomerManagedKeyOnlyForNewWorkspaces",
            OnboardingRefusal::NotLinked { .. } => "WorkspaceNotLinkedToCmkCluster",
            OnboardingRefusal::ClusterWithoutKey { .. } => "ClusterWithoutCustomerManagedKey",
            OnboardingRefusal::IdentityNotSystemAssigned { .. } => "UnsupportedIdentityType",
            OnboardingRefusal::CosmosDbNotRegistered { .. } => "MissingSubscriptionRegistration",
            OnboardingRefusal::CosmosDbNoAccess { .. } => "CosmosDbKeyVaultAccessDenied",
            OnboardingRefusal::VaultUnreachable { .. } => "KeyVaultUnreachable",
        }
    }

    /// The HTTP status the service answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            OnboardingRefusal::AlreadyOnboarded { .. } => 409,
            OnboardingRefusal::NotNewWorkspace { .. } => 409,
            OnboardingRefusal::NotLinked { .. }
            | OnboardingRefusal::ClusterWithoutKey { .. }
            | OnboardingRefusal::IdentityNotSystemAssigned { .. } => 400,
            OnboardingRefusal::CosmosDbNotRegistered { .. } => 409,
            OnboardingRefusal::CosmosDbNoAccess { .. } => 403,
            OnboardingRefusal::VaultUnreachable { .. } => 503,
        }
    }
}

/// True when the request needs the Cosmos DB principal's probe before [`decide`] can answer:
/// CMK requested, every earlier step done, and a key to probe.
pub fn needs_probe(facts: &OnboardingFacts) -> Option<KeyRef> {
    if !facts.customer_managed_key || facts.previously_onboarded || !facts.cosmos_db_registered {
        return None;
    }
    let cluster = facts.cluster.as_ref()?;
    if cluster.identity_type != "SystemAssigned" {
        return None;
    }
    cluster.key.clone()
}

/// The onboarding decision: the plan, or the first step of the seed left undone.
pub fn decide(facts: &OnboardingFacts) -> Result<OnboardingPlan, OnboardingRefusal> {
    let workspace = facts.workspace.clone();
    if !facts.customer_managed_key {
        if facts.previously_onboarded {
            return Err(OnboardingRefusal::AlreadyOnboarded { workspace });
        }
        return Ok(OnboardingPlan::MicrosoftManagedKey);
    }
    if facts.previously_onboarded {
        return Err(OnboardingRefusal::NotNewWorkspace { workspace });
    }
    let Some(cluster) = &facts.cluster else {
        return Err(OnboardingRefusal::NotLinked { workspace });
    };
    let Some(key) = &cluster.key else {
        return Err(OnboardingRefusal::ClusterWithoutKey {
            workspace,
            cluster: cluster.name.clone(),
        });
    };
    if cluster.identity_type != "SystemAssigned" {
        return Err(OnboardingRefusal::IdentityNotSystemAssigned {
            cluster: cluster.name.clone(),
            identity_type: cluster.identity_type.clone(),
        });
    }
    if !facts.cosmos_db_registered {
        return Err(OnboardingRefusal::CosmosDbNotRegistered {
            subscription_id: facts.subscription_id.clone(),
        });
    }
    match &facts.cosmos_db_access {
        Some(AccessProbe::Granted { .. }) => Ok(OnboardingPlan::CustomerManagedKey {
            cluster: cluster.name.clone(),
            key: key.clone(),
        }),
        Some(AccessProbe::Denied {
            http_status, code, ..
        }) => Err(OnboardingRefusal::CosmosDbNoAccess {
            key: key.to_string(),
            http_status: *http_status,
            code: code.clone(),
        }),
        Some(AccessProbe::Unreachable { detail }) => Err(OnboardingRefusal::VaultUnreachable {
            key: key.to_string(),
            detail: detail.clone(),
        }),
        None => Err(OnboardingRefusal::VaultUnreachable {
            key: key.to_string(),
            detail: "the access was not probed".to_string(),
        }),
    }
}
