//! The driver's steps for queries in the customer's storage (seed 000 "CMK for queries", BYOS):
//! the world's `[[storage_accounts]]`, and the actions `link-storage-account`, `save-search`
//! and `read-saved-searches`.
//!
//! Storage decides everything (`storage.v1.Byos`): the account's identity, the key check as that
//! identity, the link rules, sealing and readability. The driver creates each account under the
//! Microsoft key first (its identity only exists then), sets the access policies that name
//! `storage:<account>`, and only then puts the account under its key, the order a customer
//! follows with a system-assigned identity. The accounts live in the workspaces' subscription
//! and resource group.

use cmksim_proto::storage::v1 as sp;
use cmksim_scenario::model::{self, Action};

use super::cluster::{WORKSPACE_RESOURCE_GROUP, WORKSPACE_SUBSCRIPTION};
use super::{Driver, StepError};

/// `encryption.keySource` of an account under a Key Vault key.
const KEY_SOURCE_KEY_VAULT: &str = "Microsoft.Keyvault";

impl Driver {
    fn account_ref(name: &str) -> sp::StorageAccountRef {
        sp::StorageAccountRef {
            subscription_id: WORKSPACE_SUBSCRIPTION.to_string(),
            resource_group: WORKSPACE_RESOURCE_GROUP.to_string(),
            account_name: name.to_string(),
        }
    }

    /// The ARM id storage knows an account by.
    fn account_id(name: &str) -> String {
        format!(
            "/subscriptions/{WORKSPACE_SUBSCRIPTION}/resourceGroups/{WORKSPACE_RESOURCE_GROUP}/providers/Microsoft.Storage/storageAccounts/{name}"
        )
    }

    /// Creates the world's storage accounts, grants their identities, puts them under their
    /// keys (after the workspaces exist).
    pub(super) async fn build_storage_accounts(&mut self) -> Result<(), StepError> {
        let world = self.scenario.world.clone();
        for account in &world.storage_accounts {
            let tenant_id = self.names.tenant_id(&account.tenant)?.to_string();
            let created = self
                .byos
                .put_storage_account(sp::PutStorageAccountRequest {
                    account: Some(Self::account_ref(&account.name)),
                    location: account.location.clone(),
                    tenant_id,
                    key_source: String::new(),
                    key_vault_properties: None,
                })
                .await
                .map_err(|s| StepError::from(s).declared_at(account.line))?
                .into_inner();
            self.names
                .storage_identities
                .insert(account.name.clone(), created.principal_id);
        }
        for policy in world
            .access_policies
            .iter()
            .filter(|p| matches!(p.principal, model::PrincipalRef::StorageAccount(_)))
        {
            self.set_access_policy(policy).await?;
        }
        for account in &world.storage_accounts {
            if let Some(key) = &account.key {
                self.put_account_key(account, key)
                    .await
                    .map_err(|e| e.declared_at(account.line))?;
            }
        }
        Ok(())
    }

    async fn put_account_key(
        &mut self,
        account: &model::StorageAccount,
        key: &model::KeyRef,
    ) -> Result<(), StepError> {
        let properties = self.key_vault_properties(key).await?;
        let tenant_id = self.names.tenant_id(&account.tenant)?.to_string();
        self.byos
            .put_storage_account(sp::PutStorageAccountRequest {
                account: Some(Self::account_ref(&account.name)),
                location: account.location.clone(),
                tenant_id,
                key_source: KEY_SOURCE_KEY_VAULT.to_string(),
                key_vault_properties: Some(properties),
            })
            .await?;
        Ok(())
    }

    /// Applies a BYOS action.
    pub(super) async fn byos_step(&mut self, action: &Action) -> Result<(), StepError> {
        match action {
            Action::LinkStorageAccount {
                workspace,
                account,
                data_source_type,
            } => {
                self.byos
                    .link_storage_account(sp::LinkStorageAccountRequest {
                        workspace: Some(Self::workspace_ref(workspace)),
                        data_source_type: data_source_type.clone(),
                        storage_account_ids: vec![Self::account_id(account)],
                    })
                    .await?;
                Ok(())
            }
            Action::SaveSearch {
                workspace,
                search,
                text,
            } => {
                self.byos
                    .save_query(sp::SaveQueryRequest {
                        workspace: Some(Self::workspace_ref(workspace)),
                        kind: "Query".into(),
                        name: search.clone(),
                        category: "scenario".into(),
                        display_name: search.clone(),
                        query: text.clone(),
                    })
                    .await?;
                Ok(())
            }
            Action::ReadSavedSearches { workspace } => {
                self.byos
                    .list_saved_queries(sp::ListSavedQueriesRequest {
                        workspace: Some(Self::workspace_ref(workspace)),
                        kind: "Query".into(),
                    })
                    .await?;
                Ok(())
            }
            other => Err(StepError {
                code: "NotAByosAction".into(),
                status: None,
                line: None,
                message: format!("{} is not a BYOS action", other.name()),
            }),
        }
    }
}
