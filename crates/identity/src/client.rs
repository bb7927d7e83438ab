//! Tokens on the client side, in one helper: a [`TokenSource`] obtains a principal's tokens from
//! the identity authority (like any client: client id and secret), one per audience, and
//! renews each before it expires; an [`AuthChannel`] is a gRPC channel that attaches the token
//! of the audience each call needs ([`crate::access_rules::audience_of`]) to every call.
//!
//! Renewal: a token is used until three quarters of its lifetime have passed (simulated time),
//! then a new one is fetched, so a call never leaves with a token about to expire and a source
//! asks for at most one token per audience per three quarters of a lifetime. Fetching is
//! serialised per source, so a burst of calls shares one fetch.
//!
//! Credentials: fixed at construction ([`TokenSource::new`]), or provisioned later into a
//! [`CredentialSlot`] ([`TokenSource::provisioned`]) — the simulated world starts its services
//! before the world's driver has made their principals, and hands each its credentials once
//! made. Until then a call is refused as UNAUTHENTICATED, like a call without a token.
//! [`provision_service_principal`] makes such a principal through the `identity.v1` API, for
//! any process (the simulated world, `run --live`).
//!
//! The identity service's administrative calls (tenants, principals, role assignments) need the
//! token of an administrator ([`crate::service`]); every in-repo caller makes them with the
//! bootstrap administrator's [`AdminCredentials`] through [`AdminCredentials::channel`], the one
//! home of that flow.
//!
//! Why a channel wrapper rather than a tonic interceptor: interceptors are synchronous and see
//! neither the method (the audience depends on it) nor a way to await the authority.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tonic::transport::Channel;

use cmksim_proto::identity::v1 as pb;
use cmksim_sim::{Clock, SimTime};

use crate::access_rules;
use crate::guard::BoxFuture;

/// A principal's credentials (client id or object id, and secret), set once when provisioned.
#[derive(Clone, Debug, Default)]
pub struct CredentialSlot(Arc<OnceLock<(String, String)>>);

impl CredentialSlot {
    /// An empty slot.
    pub fn new() -> CredentialSlot {
        CredentialSlot::default()
    }

    /// Provisions the slot; a slot already provisioned keeps its first credentials (returns
    /// false).
    pub fn set(&self, client_id: &str, secret: &str) -> bool {
        self.0
            .set((client_id.to_string(), secret.to_string()))
            .is_ok()
    }

    /// The credentials, once provisioned.
    pub fn get(&self) -> Option<(&str, &str)> {
        self.0
            .get()
            .map(|(id, secret)| (id.as_str(), secret.as_str()))
    }
}

/// The bootstrap administrator's credentials: what [`crate::IdentityAuthority::open`] makes on
/// its first start and writes to [`crate::authority::ADMIN_CREDENTIALS_FILE`] (mode 0600) beside
/// its store. camelCase on disk, the field names of the door's `credentials.json`, so either
/// file can be read as one.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminCredentials {
    pub tenant_id: String,
    /// The administrator's application (client) id.
    pub client_id: String,
    pub client_secret: String,
    /// The administrator's object id.
    pub object_id: String,
}

impl std::fmt::Debug for AdminCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminCredentials")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("object_id", &self.object_id)
            .finish_non_exhaustive()
    }
}

/// Why an administrator's credentials file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AdminFileError {
    #[error("cannot {action} the administrator's credentials {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not an administrator's credentials file: {reason}")]
    Malformed { path: String, reason: String },
}

impl AdminCredentials {
    /// Reads `path` (the identity's `identity-admin.json` or the door's `credentials.json`).
    pub fn load(path: &Path) -> Result<AdminCredentials, AdminFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| AdminFileError::Io {
            action: "read",
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| AdminFileError::Malformed {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Writes `path` whole: a temporary file created with mode 0600, synced, then renamed over
    /// the old one (a crash leaves the old file or the new one, never half of one).
    pub fn save(&self, path: &Path) -> Result<(), AdminFileError> {
        use std::io::Write;
        let io = |action: &'static str| {
            move |source| AdminFileError::Io {
                action,
                path: path.display().to_string(),
                source,
            }
        };
        // Plain strings always serialise.
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        let tmp = path.with_extension("json.tmp");
        if tmp.exists() {
            std::fs::remove_file(&tmp).map_err(io("remove the leftover of"))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(io("write"))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(io("write"))?;
        std::fs::rename(&tmp, path).map_err(io("write"))
    }

    /// The administrator's tokens from the identity service on `identity`.
    pub fn tokens(&self, identity: Channel, clock: Clock) -> Arc<TokenSource> {
        TokenSource::new(identity, &self.object_id, &self.client_secret, clock)
    }

    /// `identity` carrying the administrator's management token on the identity service's
    /// administrative calls (an `identity.v1.Identity` client over it may create tenants and
    /// principals and assign roles anywhere).
    pub fn channel(&self, identity: Channel, clock: Clock) -> AuthChannel {
        AuthChannel::new(identity.clone(), Some(self.tokens(identity, clock)))
    }
}

/// A principal's tokens, renewed before they expire.
pub struct TokenSource {
    identity: Channel,
    credentials: CredentialSlot,
    clock: Clock,
    /// Per audience: the token, when it was fetched and when it expires.
    tokens: tokio::sync::Mutex<BTreeMap<String, (String, SimTime, SimTime)>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("client_id", &self.credentials.get().map(|(id, _)| id))
            .finish()
    }
}

impl TokenSource {
    /// Tokens of principal `client_id` (object id or a service principal's client id) with
    /// `secret`, from the identity service on `identity`, timed by `clock`.
    pub fn new(identity: Channel, client_id: &str, secret: &str, clock: Clock) -> Arc<TokenSource> {
        let credentials = CredentialSlot::new();
        credentials.set(client_id, secret);
        TokenSource::provisioned(identity, credentials, clock)
    }

    /// Tokens of the principal whose credentials `credentials` holds (or will hold: until then
    /// every token request is refused as UNAUTHENTICATED).
    pub fn provisioned(
        identity: Channel,
        credentials: CredentialSlot,
        clock: Clock,
    ) -> Arc<TokenSource> {
        Arc::new(TokenSource {
            identity,
            credentials,
            clock,
            tokens: tokio::sync::Mutex::new(BTreeMap::new()),
        })
    }

    /// A token for `audience`, fetched when none is held or three quarters of its lifetime have
    /// passed.
    pub async fn token(&self, audience: &str) -> Result<String, tonic::Status> {
        let mut tokens = self.tokens.lock().await;
        let now = self.clock.now();
        if let Some((token, fetched, expires)) = tokens.get(audience) {
            let renew_at = fetched.0 + (expires.0 - fetched.0) * 3 / 4;
            if now.0 < renew_at {
                return Ok(token.clone());
            }
        }
        let Some((client_id, secret)) = self.credentials.get() else {
            return Err(tonic::Status::unauthenticated(
                "this service's principal is not provisioned yet: no token to send",
            ));
        };
        let answer = pb::identity_client::IdentityClient::new(self.identity.clone())
            .issue_token(pb::IssueTokenRequest {
                object_id: client_id.to_string(),
                secret: secret.to_string(),
                audience: audience.to_string(),
                lifetime_seconds: 0,
            })
            .await?
            .into_inner();
        tokens.insert(
            audience.to_string(),
            (
                answer.token.clone(),
                now,
                SimTime(answer.expires_on_unix_ms),
            ),
        );
        Ok(answer.token)
    }

    /// `request` with `Authorization: Bearer <token for audience>`.
    pub async fn attach<T>(
        &self,
        audience: &str,
        mut request: tonic::Request<T>,
    ) -> Result<tonic::Request<T>, tonic::Status> {
        let token = self.token(audience).await?;
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| tonic::Status::internal("the token is not a valid header value"))?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }
}

/// The tenant of the simulator's own service principals (the ingest front end's, Sentinel's,
/// the scenario driver's).
pub const SERVICES_TENANT: &str = "cmksim-services";
/// That tenant's id, fixed so that every process finds the same tenant.
pub const SERVICES_TENANT_ID: &str = "c3c3c3c3-0000-4000-8000-00000000c5c5";

/// Makes a service principal `display_name` in the tenant [`SERVICES_TENANT`] (made when
/// missing) through the `identity.v1` service on `admin` (a channel carrying an administrator's
/// token: [`AdminCredentials::channel`]), assigns it `roles` at the root scope `/` (the
/// simulator's first-party access, see [`crate::roles`]), and returns its `(object id,
/// secret)`. A new principal each call: its secret is shown only at creation.
pub async fn provision_service_principal(
    admin: AuthChannel,
    display_name: &str,
    roles: &[crate::Role],
) -> Result<(String, String), tonic::Status> {
    let identity = admin;
    let mut client = pb::identity_client::IdentityClient::new(identity);
    let tenant = match client
        .create_tenant(pb::CreateTenantRequest {
            name: SERVICES_TENANT.to_string(),
            tenant_id: SERVICES_TENANT_ID.to_string(),
        })
        .await
    {
        Ok(created) => created.into_inner().tenant_id,
        Err(status) if status.code() == tonic::Code::AlreadyExists => {
            SERVICES_TENANT_ID.to_string()
        }
        Err(status) => return Err(status),
    };
    let created = client
        .create_principal(pb::CreatePrincipalRequest {
            tenant_id: tenant,
            display_name: display_name.to_string(),
            kind: pb::PrincipalKind::ServicePrincipal as i32,
        })
        .await?
        .into_inner();
    let object_id = created.principal.unwrap_or_default().object_id;
    for role in roles {
        client
            .create_role_assignment(pb::CreateRoleAssignmentRequest {
                scope: crate::roles::ROOT_SCOPE.to_string(),
                role: role.name().to_string(),
                principal_id: object_id.clone(),
                name: String::new(),
            })
            .await?;
    }
    Ok((object_id, created.secret))
}

/// Where an [`AuthChannel`]'s tokens come from.
#[derive(Clone, Debug)]
enum Tokens {
    /// None: calls go out as they are.
    None,
    /// The channel's own principal, a token per audience.
    Source(Arc<TokenSource>),
    /// A caller's token, forwarded as it came (a front door acting for its caller).
    Forwarded(String),
}

/// A channel that attaches a token to every call of a guarded method: its own principal's,
/// or a caller's forwarded one (or, with neither, a plain channel).
#[derive(Clone, Debug)]
pub struct AuthChannel {
    inner: Channel,
    tokens: Tokens,
}

impl AuthChannel {
    /// `inner` with the tokens of `tokens` (none: calls go out as they are).
    pub fn new(inner: Channel, tokens: Option<Arc<TokenSource>>) -> AuthChannel {
        AuthChannel {
            inner,
            tokens: tokens.map_or(Tokens::None, Tokens::Source),
        }
    }

    /// `inner` without tokens.
    pub fn plain(inner: Channel) -> AuthChannel {
        AuthChannel::new(inner, None)
    }

    /// `inner` forwarding the caller's `token` (none: calls go out without one, and a guarded
    /// service refuses them as it would refuse the caller).
    pub fn forwarding(inner: Channel, token: Option<String>) -> AuthChannel {
        AuthChannel {
            inner,
            tokens: token.map_or(Tokens::None, Tokens::Forwarded),
        }
    }
}

type HttpRequest = http::Request<tonic::body::Body>;
type HttpResponse = http::Response<tonic::body::Body>;

impl tower::Service<HttpRequest> for AuthChannel {
    type Response = HttpResponse;
    type Error = tonic::transport::Error;
    type Future = BoxFuture<'static, Result<HttpResponse, tonic::transport::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower::Service::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, mut request: HttpRequest) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let tokens = self.tokens.clone();
        Box::pin(async move {
            let audience = access_rules::audience_of(request.uri().path());
            let token = match (tokens, audience) {
                (Tokens::Source(tokens), Some(audience)) => Some(tokens.token(audience).await),
                (Tokens::Forwarded(token), _) => Some(Ok(token)),
                _ => None,
            };
            if let Some(token) = token {
                match token {
                    Ok(token) => match format!("Bearer {token}").parse() {
                        Ok(value) => {
                            request
                                .headers_mut()
                                .insert(http::header::AUTHORIZATION, value);
                        }
                        Err(_) => {
                            return Ok(tonic::Status::internal(
                                "the token is not a valid header value",
                            )
                            .into_http())
                        }
                    },
                    Err(status) => return Ok(status.into_http()),
                }
            }
            inner.call(request).await
        })
    }
}
