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
//! Why a channel wrapper rather than a tonic interceptor: interceptors are synchronous and see
//! neither the method (the audience depends on it) nor a way to await the authority.

use std::collections::BTreeMap;
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
/// missing) through the `identity.v1` service on `identity`, assigns it `roles` at the root
/// scope `/` (the simulator's first-party access, see [`crate::roles`]), and returns its
/// `(object id, secret)`. A new principal each call: its secret is shown only at creation.
pub async fn provision_service_principal(
    identity: Channel,
    display_name: &str,
    roles: &[crate::Role],
) -> Result<(String, String), tonic::Status> {
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
