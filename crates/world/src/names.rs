//! Scenario names and the ids the services gave them.
//!
//! A scenario speaks of `tenant "contoso"`, `principal "alice"`, `cluster "c1"`; the services
//! know GUIDs, object ids and ARM ids. The driver records each mapping here when it creates the
//! thing, and resolves names through it afterwards. Maps are BTreeMaps: nothing here is iterated
//! into output in hash order.

use std::collections::BTreeMap;

/// What the driver needs to obtain tokens for a principal.
#[derive(Clone, Debug)]
pub struct Credential {
    pub object_id: String,
    pub secret: String,
    pub tenant_id: String,
}

/// Everything the driver created, by scenario name.
#[derive(Debug, Default)]
pub struct Names {
    /// Scenario tenant name → tenant id.
    pub tenants: BTreeMap<String, String>,
    /// Scenario principal name → its credential.
    pub users: BTreeMap<String, Credential>,
    /// Tenant id → the driver's own administrator in that tenant (owns the vaults it creates).
    pub operators: BTreeMap<String, Credential>,
    /// Vault name → tenant id.
    pub vault_tenants: BTreeMap<String, String>,
    /// Cluster name → the principal id of its system-assigned managed identity.
    pub cluster_identities: BTreeMap<String, String>,
    /// Tenant id → the object id of its Azure Cosmos DB principal (seed 002).
    pub cosmos_db: BTreeMap<String, String>,
    /// Storage account name → the principal id of its system-assigned identity (BYOS).
    pub storage_identities: BTreeMap<String, String>,
}

/// A name the scenario uses that the driver has not created (validation should prevent it).
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} {name:?}")]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
}

impl Names {
    pub fn tenant_id(&self, tenant: &str) -> Result<&str, UnknownName> {
        self.tenants
            .get(tenant)
            .map(String::as_str)
            .ok_or_else(|| UnknownName {
                what: "tenant",
                name: tenant.to_string(),
            })
    }

    pub fn vault_tenant(&self, vault: &str) -> Result<&str, UnknownName> {
        self.vault_tenants
            .get(vault)
            .map(String::as_str)
            .ok_or_else(|| UnknownName {
                what: "vault",
                name: vault.to_string(),
            })
    }

    pub fn operator(&self, tenant_id: &str) -> Result<&Credential, UnknownName> {
        self.operators.get(tenant_id).ok_or_else(|| UnknownName {
            what: "tenant id",
            name: tenant_id.to_string(),
        })
    }

    /// The object id of a scenario principal or of a cluster's managed identity (the Cosmos DB
    /// principal is per tenant: the driver resolves it through the vault's tenant).
    pub fn principal_object_id(
        &self,
        principal: &cmksim_scenario::model::PrincipalRef,
    ) -> Result<String, UnknownName> {
        use cmksim_scenario::model::PrincipalRef;
        match principal {
            PrincipalRef::User(name) => self
                .users
                .get(name)
                .map(|c| c.object_id.clone())
                .ok_or_else(|| UnknownName {
                    what: "principal",
                    name: name.clone(),
                }),
            PrincipalRef::Cluster(name) => {
                self.cluster_identities
                    .get(name)
                    .cloned()
                    .ok_or_else(|| UnknownName {
                        what: "cluster identity",
                        name: name.clone(),
                    })
            }
            PrincipalRef::StorageAccount(name) => self
                .storage_identities
                .get(name)
                .cloned()
                .ok_or_else(|| UnknownName {
                    what: "storage account identity",
                    name: name.clone(),
                }),
            PrincipalRef::CosmosDb => Err(UnknownName {
                what: "principal (the Cosmos DB principal is resolved through a vault's tenant)",
                name: cmksim_scenario::model::COSMOS_DB_PRINCIPAL.to_string(),
            }),
        }
    }
}
