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
//! Why a channel wrapper rather than a tonic interceptor: interceptors are synchronous and see
//! neither the method (the audience depends on it) nor a way to await the authority.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::transport::Channel;

use cmksim_proto::identity::v1 as pb;
use cmksim_sim::{Clock, SimTime};

use crate::access_rules;
use crate::guard::BoxFuture;

/// A principal's tokens, renewed before they expire.
pub struct TokenSource {
    identity: Channel,
    client_id: String,
    secret: String,
    clock: Clock,
    /// Per audience: the token, when it was fetched and when it expires.
    tokens: tokio::sync::Mutex<BTreeMap<String, (String, SimTime, SimTime)>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("client_id", &self.client_id)
            .finish()
    }
}

impl TokenSource {
    /// Tokens of principal `client_id` (object id or a service principal's client id) with
    /// `secret`, from the identity service on `identity`, timed by `clock`.
    pub fn new(identity: Channel, client_id: &str, secret: &str, clock: Clock) -> Arc<TokenSource> {
        Arc::new(TokenSource {
            identity,
            client_id: client_id.to_string(),
            secret: secret.to_string(),
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
        let answer = pb::identity_client::IdentityClient::new(self.identity.clone())
            .issue_token(pb::IssueTokenRequest {
                object_id: self.client_id.clone(),
                secret: self.secret.clone(),
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
