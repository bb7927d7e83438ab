//! [`KeyVaultClient`]: a typed client for the services that call Key Vault (cluster storage:
//! wrapKey, unwrapKey, get). It injects the bearer token and turns a failed status back into the
//! Azure error it carries, so callers classify outcomes on Azure's terms (403 denial, 404 gone,
//! 429/503/unreachable transient) without parsing strings.

use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use cmksim_proto::common::v1::AzureError;
use cmksim_proto::keyvault::v1 as pb;

/// A failed call: the gRPC code, and the Azure error when the service answered one (none when
/// the vault could not be reached at all).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ClientError {
    pub code: Code,
    pub message: String,
    pub azure: Option<AzureError>,
}

impl ClientError {
    /// The HTTP status the real service would have given, if it answered.
    pub fn http_status(&self) -> Option<u32> {
        self.azure.as_ref().map(|a| a.http_status)
    }

    /// True for failures a caller should ride out with its cache: unreachable, timeouts, 5xx,
    /// 429 (SPEC §5 "transient failure").
    pub fn is_transient(&self) -> bool {
        match &self.azure {
            Some(a) => a.http_status == 429 || a.http_status >= 500,
            None => matches!(
                self.code,
                Code::Unavailable
                    | Code::DeadlineExceeded
                    | Code::Cancelled
                    | Code::Unknown
                    | Code::ResourceExhausted
            ),
        }
    }

    /// True for denials (403, 404, 401): the key is not usable by this caller.
    pub fn is_denial(&self) -> bool {
        self.azure
            .as_ref()
            .is_some_and(|a| matches!(a.http_status, 401 | 403 | 404))
    }
}

impl From<Status> for ClientError {
    fn from(status: Status) -> Self {
        ClientError {
            code: status.code(),
            message: status.message().to_string(),
            azure: crate::status::azure_error(&status),
        }
    }
}

/// A Key Vault client acting as one principal (its token).
#[derive(Clone, Debug)]
pub struct KeyVaultClient {
    inner: pb::key_vault_client::KeyVaultClient<Channel>,
    token: String,
}

impl KeyVaultClient {
    /// A client over an existing channel.
    pub fn new(channel: Channel, token: impl Into<String>) -> KeyVaultClient {
        KeyVaultClient {
            inner: pb::key_vault_client::KeyVaultClient::new(channel),
            token: token.into(),
        }
    }

    /// Connects to `endpoint` (e.g. `http://127.0.0.1:7001`).
    pub async fn connect(
        endpoint: String,
        token: impl Into<String>,
    ) -> Result<KeyVaultClient, ClientError> {
        let invalid = |e: String| ClientError {
            code: Code::InvalidArgument,
            message: e,
            azure: None,
        };
        let endpoint = Channel::from_shared(endpoint).map_err(|e| invalid(e.to_string()))?;
        let channel = endpoint.connect().await.map_err(|e| ClientError {
            code: Code::Unavailable,
            message: e.to_string(),
            azure: None,
        })?;
        Ok(KeyVaultClient::new(channel, token))
    }

    /// Replaces the bearer token (after a refresh).
    pub fn set_token(&mut self, token: impl Into<String>) {
        self.token = token.into();
    }

    /// The raw generated client (for calls without a helper).
    pub fn raw(&mut self) -> &mut pb::key_vault_client::KeyVaultClient<Channel> {
        &mut self.inner
    }

    /// A request carrying the bearer token.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Ok(value) = format!("Bearer {}", self.token).parse() {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    fn key_ref(vault: &str, key: &str, version: &str) -> Option<pb::KeyRef> {
        Some(pb::KeyRef {
            vault_name: vault.into(),
            key_name: key.into(),
            version: version.into(),
        })
    }

    /// wrapKey (version "" = newest).
    pub async fn wrap_key(
        &mut self,
        vault: &str,
        key: &str,
        version: &str,
        algorithm: &str,
        value: &[u8],
    ) -> Result<pb::KeyOperationResult, ClientError> {
        let request = self.request(pb::KeyOperationRequest {
            key: Self::key_ref(vault, key, version),
            algorithm: algorithm.into(),
            value: value.to_vec(),
        });
        Ok(self.inner.wrap_key(request).await?.into_inner())
    }

    /// unwrapKey with the version the value was wrapped under.
    pub async fn unwrap_key(
        &mut self,
        vault: &str,
        key: &str,
        version: &str,
        algorithm: &str,
        value: &[u8],
    ) -> Result<pb::KeyOperationResult, ClientError> {
        let request = self.request(pb::KeyOperationRequest {
            key: Self::key_ref(vault, key, version),
            algorithm: algorithm.into(),
            value: value.to_vec(),
        });
        Ok(self.inner.unwrap_key(request).await?.into_inner())
    }

    /// get (version "" = newest).
    pub async fn get_key(
        &mut self,
        vault: &str,
        key: &str,
        version: &str,
    ) -> Result<pb::KeyBundle, ClientError> {
        let request = self.request(pb::KeyRef {
            vault_name: vault.into(),
            key_name: key.into(),
            version: version.into(),
        });
        Ok(self.inner.get_key(request).await?.into_inner())
    }
}
