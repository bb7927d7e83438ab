//! Gathering [`KeyVaultFacts`] for a key update, through Key Vault, as the cluster's identity.
//!
//! The vault is read with a management-audience token (GetVault: region, tenant, soft delete,
//! purge protection, the identity's access policy), the key with a vault-audience token (GetKey:
//! exists, enabled, type, newest version). A 403 or 404 is not an error here: it becomes the
//! facts (vault or key "not found") that make the control plane's validation fail with the
//! seed's message. Only an unreachable Key Vault (or identity authority) fails the call.

use cmksim_proto::identity::v1::identity_client::IdentityClient;
use cmksim_proto::identity::v1::IssueTokenRequest;
use cmksim_proto::keyvault::v1::key_vault_client::KeyVaultClient;
use cmksim_proto::keyvault::v1::{KeyRef as PbKeyRef, VaultRef};
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::control::{KeyVaultFacts, KeyVaultPropertiesInput};

use super::persist::StoredIdentity;

pub const MANAGEMENT_AUDIENCE: &str = "https://management.azure.com";
pub const VAULT_AUDIENCE: &str = "https://vault.azure.net";

/// A token for `audience` as the cluster's identity.
pub async fn token(
    identity_channel: &Channel,
    identity: &StoredIdentity,
    audience: &str,
) -> Result<String, Status> {
    let answer = IdentityClient::new(identity_channel.clone())
        .issue_token(IssueTokenRequest {
            object_id: identity.object_id.clone(),
            secret: identity.secret.clone(),
            audience: audience.to_string(),
            lifetime_seconds: 0,
        })
        .await?;
    Ok(answer.into_inner().token)
}

fn with_bearer<T>(message: T, token: &str) -> Result<tonic::Request<T>, Status> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|_| Status::internal("the identity authority issued an unusable token"))?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// True for failures that mean "Key Vault could not answer" rather than "no".
fn unreachable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Internal
            | Code::Unknown
            | Code::ResourceExhausted
    )
}

/// Asks Key Vault about the vault and key of `input` as `identity`. `Err` only when Key Vault or
/// the identity authority could not be reached.
pub async fn gather(
    kv_channel: &Channel,
    identity_channel: &Channel,
    identity: &StoredIdentity,
    vault_name: &str,
    input: &KeyVaultPropertiesInput,
) -> Result<KeyVaultFacts, Status> {
    let mut facts = KeyVaultFacts::default();
    let mut kv = KeyVaultClient::new(kv_channel.clone());
    let management = match token(identity_channel, identity, MANAGEMENT_AUDIENCE).await {
        Ok(t) => t,
        Err(s) if unreachable(&s) => return Err(s),
        // The identity cannot get a token: it sees nothing.
        Err(_) => return Ok(facts),
    };
    match kv
        .get_vault(with_bearer(
            VaultRef {
                vault_name: vault_name.to_string(),
            },
            &management,
        )?)
        .await
    {
        Ok(vault) => {
            let vault = vault.into_inner();
            facts.vault_exists = true;
            facts.vault_location = vault.location.clone();
            facts.vault_tenant = vault.tenant_id.clone();
            facts.soft_delete = vault.enable_soft_delete;
            facts.purge_protection = vault.enable_purge_protection;
            facts.identity_permissions = vault
                .access_policies
                .iter()
                .filter(|p| p.object_id.eq_ignore_ascii_case(&identity.object_id))
                .flat_map(|p| p.key_permissions.iter().cloned())
                .collect();
        }
        Err(s) if unreachable(&s) => return Err(s),
        Err(_) => return Ok(facts),
    }
    let vault_token = match token(identity_channel, identity, VAULT_AUDIENCE).await {
        Ok(t) => t,
        Err(s) if unreachable(&s) => return Err(s),
        Err(_) => return Ok(facts),
    };
    let get_key = |version: String| {
        let mut kv = kv.clone();
        let request = with_bearer(
            PbKeyRef {
                vault_name: vault_name.to_string(),
                key_name: input.key_name.clone(),
                version,
            },
            &vault_token,
        );
        async move { kv.get_key(request?).await.map(|r| r.into_inner()) }
    };
    match get_key(input.key_version.to_ascii_lowercase()).await {
        Ok(bundle) => {
            facts.key_exists = true;
            facts.key_enabled = bundle.attributes.as_ref().is_some_and(|a| a.enabled);
            facts.key_kty = bundle
                .key
                .as_ref()
                .map(|k| k.kty.clone())
                .unwrap_or_default();
            facts.key_ops = bundle
                .key
                .as_ref()
                .map(|k| k.key_ops.iter().cloned().collect())
                .unwrap_or_default();
            if input.key_version.is_empty() {
                facts.newest_version = bundle.key.as_ref().map(|k| kid_version(&k.kid));
            }
        }
        Err(s) if unreachable(&s) => return Err(s),
        Err(_) => return Ok(facts),
    }
    if !input.key_version.is_empty() {
        if let Ok(newest) = get_key(String::new()).await {
            facts.newest_version = newest.key.as_ref().map(|k| kid_version(&k.kid));
        }
    }
    Ok(facts)
}

/// The version of a kid (`cmksim_proto::kid`); empty for a kid that does not parse.
fn kid_version(kid: &str) -> String {
    cmksim_proto::kid::KeyId::parse(kid)
        .map(|id| id.version)
        .unwrap_or_default()
}
