//! [`VaultAccess`] over the generated gRPC clients: Key Vault for wrap/unwrap/GetKey, the
//! identity authority for the cluster's bearer tokens.
//!
//! Storage acts as the cluster's system-assigned managed identity, and only as that identity:
//! it holds the identity's secret (handed to it at cluster creation), asks the authority for a
//! `https://vault.azure.net` token, keeps it until `token_refresh_margin` before expiry, and
//! sends it as `authorization: Bearer`. A 401 from the vault is retried once with a fresh
//! token, so an expired cache never reads as a revocation; a second 401 is a denial (the
//! identity is gone). Errors come back classified (see [`super::outcome`]).

use std::time::Duration;

use cmksim_proto::identity::v1::identity_client::IdentityClient;
use cmksim_proto::identity::v1::IssueTokenRequest;
use cmksim_proto::keyvault::v1::key_vault_client::KeyVaultClient;
use cmksim_proto::keyvault::v1::{KeyOperationRequest, KeyRef as ProtoKeyRef};
use cmksim_sim::{Clock, SimTime};
use tonic::transport::Channel;
use zeroize::Zeroizing;

use super::driver::{UnwrappedAek, VaultAccess, WrappedAek};
use super::outcome::{
    classify_identity_status, classify_key_vault_status, deleted_key_lookup, refine_not_found,
    AccessFailure, DeletedKeyLookup, DenialKind,
};
use super::state::{KeyRef, KeyTarget, KeyVersionSpec};

/// The key-wrapping algorithm storage uses.
pub const WRAP_ALGORITHM: &str = "RSA-OAEP-256";
/// The audience of Key Vault data-plane tokens.
pub const VAULT_AUDIENCE: &str = "https://vault.azure.net";

/// The managed identity storage acts as.
#[derive(Clone)]
pub struct ManagedIdentityCredentials {
    pub object_id: String,
    pub secret: Zeroizing<String>,
}

impl std::fmt::Debug for ManagedIdentityCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedIdentityCredentials")
            .field("object_id", &self.object_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

struct CachedToken {
    token: Zeroizing<String>,
    expires_at: SimTime,
}

/// Key Vault access as the cluster's managed identity, over gRPC.
pub struct GrpcVaultAccess {
    key_vault: KeyVaultClient<Channel>,
    identity: IdentityClient<Channel>,
    credentials: ManagedIdentityCredentials,
    clock: Clock,
    /// Refresh the token this long (simulated) before it expires.
    token_refresh_margin: Duration,
    token: tokio::sync::Mutex<Option<CachedToken>>,
}

impl GrpcVaultAccess {
    /// Access through these channels as `credentials`.
    pub fn new(
        key_vault: Channel,
        identity: Channel,
        credentials: ManagedIdentityCredentials,
        clock: Clock,
    ) -> GrpcVaultAccess {
        GrpcVaultAccess {
            key_vault: KeyVaultClient::new(key_vault),
            identity: IdentityClient::new(identity),
            credentials,
            clock,
            token_refresh_margin: Duration::from_secs(300),
            token: tokio::sync::Mutex::new(None),
        }
    }

    async fn bearer(&self, fresh: bool) -> Result<Zeroizing<String>, AccessFailure> {
        let mut cached = self.token.lock().await;
        let now = self.clock.now();
        if !fresh {
            if let Some(t) = cached.as_ref() {
                if now.add(self.token_refresh_margin) < t.expires_at {
                    return Ok(t.token.clone());
                }
            }
        }
        let request = IssueTokenRequest {
            object_id: self.credentials.object_id.clone(),
            secret: self.credentials.secret.to_string(),
            audience: VAULT_AUDIENCE.to_string(),
            lifetime_seconds: 0,
        };
        let token = self
            .identity
            .clone()
            .issue_token(request)
            .await
            .map_err(|s| classify_identity_status(&s))?
            .into_inner();
        let value = Zeroizing::new(format!("Bearer {}", token.token));
        *cached = Some(CachedToken {
            token: value.clone(),
            expires_at: SimTime(token.expires_on_unix_ms),
        });
        Ok(value)
    }

    fn request<T>(&self, message: T, bearer: &str) -> Result<tonic::Request<T>, AccessFailure> {
        let mut request = tonic::Request::new(message);
        let value = bearer.parse().map_err(|_| {
            AccessFailure::Denial(super::outcome::DenialFailure {
                kind: DenialKind::IdentityGone,
                http_status: 401,
                code: "Unauthorized".to_string(),
                message: "the identity authority issued a token that is not a valid header".into(),
            })
        })?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }

    /// Runs `call` with a token; on a 401 retries once with a fresh token.
    async fn with_token<T, F, Fut>(&self, call: F) -> Result<T, AccessFailure>
    where
        F: Fn(KeyVaultClient<Channel>, Zeroizing<String>) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let bearer = self.bearer(false).await?;
        match call(self.key_vault.clone(), bearer).await {
            Ok(v) => Ok(v),
            Err(status) if status.code() == tonic::Code::Unauthenticated => {
                let bearer = self.bearer(true).await?;
                call(self.key_vault.clone(), bearer)
                    .await
                    .map_err(|s| classify_key_vault_status(&s))
            }
            Err(status) => Err(classify_key_vault_status(&status)),
        }
    }
}

impl GrpcVaultAccess {
    /// GetDeletedKey of `key`, as a [`DeletedKeyLookup`] (any failure to ask is `Unknown`).
    async fn deleted_key_lookup(&self, key: &KeyRef) -> DeletedKeyLookup {
        let message = ProtoKeyRef {
            vault_name: key.vault_name.clone(),
            key_name: key.key_name.clone(),
            version: String::new(),
        };
        let Ok(bearer) = self.bearer(false).await else {
            return DeletedKeyLookup::Unknown;
        };
        let Ok(request) = self.request(message, &bearer) else {
            return DeletedKeyLookup::Unknown;
        };
        let result = self.key_vault.clone().get_deleted_key(request).await;
        deleted_key_lookup(&result)
    }
}

/// The version at the end of a kid (`https://{vault}.vault.azure.net/keys/{name}/{version}`).
pub fn kid_version(kid: &str) -> String {
    cmksim_proto::kid::version_of(kid)
}

impl VaultAccess for GrpcVaultAccess {
    async fn unwrap_aek(&self, wrapped: &WrappedAek) -> Result<UnwrappedAek, AccessFailure> {
        let message = KeyOperationRequest {
            key: Some(ProtoKeyRef {
                vault_name: wrapped.target.key.vault_name.clone(),
                key_name: wrapped.target.key.key_name.clone(),
                version: wrapped.target.wrapped_version.clone(),
            }),
            algorithm: wrapped.algorithm.clone(),
            value: wrapped.ciphertext.clone(),
        };
        let result = self
            .with_token(|mut client, bearer| {
                let request = self.request(message.clone(), &bearer);
                async move {
                    let request =
                        request.map_err(|_| tonic::Status::unauthenticated("bad token"))?;
                    client.unwrap_key(request).await
                }
            })
            .await;
        let result = match result {
            Ok(r) => r.into_inner(),
            Err(AccessFailure::Denial(denial))
                if matches!(
                    denial.kind,
                    DenialKind::KeyNotFound | DenialKind::KeyDeleted
                ) =>
            {
                // 404: soft-deleted (a revocation) or purged (gone for good)? Ask for the
                // deleted entry.
                let lookup = self.deleted_key_lookup(&wrapped.target.key).await;
                return Err(AccessFailure::Denial(refine_not_found(denial, lookup)));
            }
            Err(failure) => return Err(failure),
        };
        Ok(UnwrappedAek {
            kid_version: kid_version(&result.kid),
            aek: Zeroizing::new(result.value),
        })
    }

    async fn wrap_aek(&self, key: &KeyRef, aek: &[u8]) -> Result<WrappedAek, AccessFailure> {
        let message = KeyOperationRequest {
            key: Some(ProtoKeyRef {
                vault_name: key.vault_name.clone(),
                key_name: key.key_name.clone(),
                version: key.requested_version().to_string(),
            }),
            algorithm: WRAP_ALGORITHM.to_string(),
            value: aek.to_vec(),
        };
        let result = self
            .with_token(|mut client, bearer| {
                let request = self.request(message.clone(), &bearer);
                async move {
                    let request =
                        request.map_err(|_| tonic::Status::unauthenticated("bad token"))?;
                    client.wrap_key(request).await
                }
            })
            .await?
            .into_inner();
        let version = kid_version(&result.kid);
        debug_assert!(
            match &key.version {
                KeyVersionSpec::Pinned(v) => *v == version,
                KeyVersionSpec::Versionless => true,
            },
            "the vault wrapped with another version than the pinned one"
        );
        Ok(WrappedAek {
            target: KeyTarget {
                key: key.clone(),
                wrapped_version: version,
            },
            algorithm: WRAP_ALGORITHM.to_string(),
            ciphertext: result.value,
        })
    }

    async fn newest_version(
        &self,
        vault_name: &str,
        key_name: &str,
    ) -> Result<String, AccessFailure> {
        let message = ProtoKeyRef {
            vault_name: vault_name.to_string(),
            key_name: key_name.to_string(),
            version: String::new(),
        };
        let bundle = self
            .with_token(|mut client, bearer| {
                let request = self.request(message.clone(), &bearer);
                async move {
                    let request =
                        request.map_err(|_| tonic::Status::unauthenticated("bad token"))?;
                    client.get_key(request).await
                }
            })
            .await?
            .into_inner();
        Ok(bundle.key.map(|k| kid_version(&k.kid)).unwrap_or_default())
    }
}
