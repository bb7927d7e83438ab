//! The guard of a gRPC server: a tower layer that lets a call of a guarded method through only
//! with a token of the right audience whose principal holds a role granting the method's action
//! at the resource the request names ([`crate::access_rules`]).
//!
//! Why a layer around the whole server rather than a check in each handler: the services'
//! handlers stay free of authorization (one home for it, here), a new rpc is refused until the
//! rules name it, and the check happens before a handler can touch any data. The layer reads the
//! request's one gRPC message (unary calls; bounded by [`REQUEST_BYTES_MAX`]) to find the
//! resource, then hands the same bytes on, with the verified [`Caller`] in the request's
//! extensions for a handler that must know who called.
//!
//! Where the answers come from ([`AccessSource`]): in the process of the identity authority,
//! the authority itself ([`LocalAccess`]); elsewhere the `identity.v1` service
//! ([`RemoteAccess`]): its public signing keys (fetched once, fetched again at most once per
//! call when a token names an unknown key) and `CheckAccess`. A granted decision is remembered
//! for [`ACCESS_CACHE_TTL`] of simulated time (Azure too takes minutes to propagate a role
//! change); a refusal is never remembered, so a role assigned a moment ago works at once.
//!
//! Customer Lockbox: a guard given a [`LockboxGate`] ([`Guard::with_lockbox`], the ingest front
//! end's) lets a query of a principal without a read role through when storage's Lockbox has an
//! approved, unexpired request of that principal for that workspace; otherwise the refusal is
//! the one without a role. The gate's answers are never remembered.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use tonic::transport::Channel;

use cmksim_proto::identity::v1 as pb;
use cmksim_sim::{Clock, SimTime};

use crate::access_rules::{self, Need};
use crate::authority::IdentityAuthority;
use crate::grpc_auth::{authenticate, AuthError, Caller};
use crate::lockbox_gate::LockboxGate;
use crate::roles::{Access, Action};
use crate::token::{issuer_for, Jwk, TokenVerifier, VerifyError};

/// Largest request the guard reads to find its resource (above any message the servers accept:
/// tonic's default limit is 4 MiB).
pub const REQUEST_BYTES_MAX: usize = 64 << 20;
/// How long a granted decision is remembered, in simulated time.
pub const ACCESS_CACHE_TTL: Duration = Duration::from_secs(300);
/// Most remembered decisions; the memory is cleared when it is full.
pub const ACCESS_CACHE_ENTRIES_MAX: usize = 4_096;

/// A boxed future, as the access sources return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the guard gets signing keys and role decisions.
pub trait AccessSource: Send + Sync + 'static {
    /// The verifier; `refresh` asks for the keys again (a token named an unknown key).
    fn verifier(&self, refresh: bool) -> BoxFuture<'_, Result<TokenVerifier, AuthError>>;
    /// The decision for `caller` doing `action` at `scope`; `token` is the caller's own (verified)
    /// token, which a remote authority asks for: a caller may ask about itself.
    fn check<'a>(
        &'a self,
        caller: &'a Caller,
        token: &'a str,
        action: Action,
        scope: &'a str,
    ) -> BoxFuture<'a, Result<Access, AuthError>>;
}

/// The identity authority of this process.
pub struct LocalAccess(pub Arc<Mutex<IdentityAuthority>>);

impl LocalAccess {
    fn lock(&self) -> std::sync::MutexGuard<'_, IdentityAuthority> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl AccessSource for LocalAccess {
    fn verifier(&self, _refresh: bool) -> BoxFuture<'_, Result<TokenVerifier, AuthError>> {
        let verifier = self.lock().verifier();
        Box::pin(async move { Ok(verifier) })
    }

    fn check<'a>(
        &'a self,
        caller: &'a Caller,
        _token: &'a str,
        action: Action,
        scope: &'a str,
    ) -> BoxFuture<'a, Result<Access, AuthError>> {
        let access = self
            .lock()
            .check_access(&caller.object_id, &caller.tenant_id, action, scope);
        Box::pin(async move { Ok(access) })
    }
}

/// The `identity.v1` service of another process.
pub struct RemoteAccess {
    channel: Channel,
    clock: Clock,
    verifier: tokio::sync::Mutex<Option<TokenVerifier>>,
    /// Granted decisions: (object id, tenant, action, lower-case scope) → until when.
    granted: Mutex<BTreeMap<(String, String, Action, String), SimTime>>,
}

impl RemoteAccess {
    /// A source asking the identity service on `channel`, remembering grants by `clock`.
    pub fn new(channel: Channel, clock: Clock) -> RemoteAccess {
        RemoteAccess {
            channel,
            clock,
            verifier: tokio::sync::Mutex::new(None),
            granted: Mutex::new(BTreeMap::new()),
        }
    }

    fn client(&self) -> pb::identity_client::IdentityClient<Channel> {
        pb::identity_client::IdentityClient::new(self.channel.clone())
    }

    fn granted(
        &self,
    ) -> std::sync::MutexGuard<'_, BTreeMap<(String, String, Action, String), SimTime>> {
        self.granted
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn unavailable(status: &tonic::Status) -> AuthError {
    AuthError::Unavailable(status.message().to_string())
}

impl AccessSource for RemoteAccess {
    fn verifier(&self, refresh: bool) -> BoxFuture<'_, Result<TokenVerifier, AuthError>> {
        Box::pin(async move {
            let mut cached = self.verifier.lock().await;
            if let (false, Some(v)) = (refresh, cached.as_ref()) {
                return Ok(v.clone());
            }
            let keys = self
                .client()
                .get_signing_keys(pb::Empty {})
                .await
                .map_err(|s| unavailable(&s))?
                .into_inner()
                .keys;
            let jwks: Vec<Jwk> = keys
                .into_iter()
                .map(|k| Jwk {
                    kid: k.kid,
                    kty: k.kty,
                    crv: k.crv,
                    x: k.x,
                    y: k.y,
                })
                .collect();
            let verifier = TokenVerifier::from_jwks(&jwks)
                .map_err(|e| AuthError::Unavailable(e.to_string()))?;
            *cached = Some(verifier.clone());
            Ok(verifier)
        })
    }

    fn check<'a>(
        &'a self,
        caller: &'a Caller,
        token: &'a str,
        action: Action,
        scope: &'a str,
    ) -> BoxFuture<'a, Result<Access, AuthError>> {
        Box::pin(async move {
            let key = (
                caller.object_id.clone(),
                caller.tenant_id.clone(),
                action,
                scope.to_ascii_lowercase(),
            );
            let now = self.clock.now();
            if self.granted().get(&key).is_some_and(|until| now < *until) {
                return Ok(Access::Granted);
            }
            // The caller's own token: the authority answers a principal about itself.
            let mut request = tonic::Request::new(pb::CheckAccessRequest {
                object_id: caller.object_id.clone(),
                tenant_id: caller.tenant_id.clone(),
                action: action.as_str().to_string(),
                scope: scope.to_string(),
            });
            let header = format!("Bearer {token}")
                .parse()
                .map_err(|_| AuthError::MissingToken)?;
            request.metadata_mut().insert("authorization", header);
            let answer = self
                .client()
                .check_access(request)
                .await
                .map_err(|s| unavailable(&s))?
                .into_inner();
            let access = match pb::AccessDecision::try_from(answer.decision) {
                Ok(pb::AccessDecision::Granted) => Access::Granted,
                Ok(pb::AccessDecision::WrongTenant) => Access::WrongTenant {
                    subscription_tenant: answer.subscription_tenant_id,
                },
                _ => Access::Denied,
            };
            if access == Access::Granted {
                let mut granted = self.granted();
                if granted.len() >= ACCESS_CACHE_ENTRIES_MAX {
                    granted.clear();
                }
                granted.insert(key, now.add(ACCESS_CACHE_TTL));
            }
            Ok(access)
        })
    }
}

/// The checks of one server: its access source and its clock.
#[derive(Clone)]
pub struct Guard {
    access: Arc<dyn AccessSource>,
    clock: Clock,
    /// Asked when a principal without a read role queries (`None`: such a query is refused).
    lockbox: Option<LockboxGate>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").finish_non_exhaustive()
    }
}

impl Guard {
    /// A guard asking `access`, at the simulated time of `clock`.
    pub fn new(access: Arc<dyn AccessSource>, clock: Clock) -> Guard {
        Guard {
            access,
            clock,
            lockbox: None,
        }
    }

    /// The guard, letting a query of a principal without a read role through under an approved,
    /// unexpired Customer Lockbox request of that principal ([`crate::lockbox_gate`]).
    pub fn with_lockbox(mut self, gate: LockboxGate) -> Guard {
        self.lockbox = Some(gate);
        self
    }

    /// A guard over the identity service reached on `channel`.
    pub fn remote(channel: Channel, clock: Clock) -> Guard {
        Guard::new(Arc::new(RemoteAccess::new(channel, clock.clone())), clock)
    }

    /// Checks a call of `path` with `metadata` and the encoded request `message`: `Ok(None)` for
    /// an open method, the caller for an allowed one.
    pub async fn check(
        &self,
        path: &str,
        metadata: &tonic::metadata::MetadataMap,
        message: &[u8],
    ) -> Result<Option<Caller>, AuthError> {
        let Some(Need { audience, access }) = access_rules::need_of(path, message)? else {
            return Ok(None);
        };
        let now = self.clock.now();
        let verifier = self.access.verifier(false).await?;
        let (caller, issuer) = match authenticate(&verifier, metadata, audience, now) {
            Err(AuthError::Invalid(VerifyError::UnknownKid { .. })) => {
                let fresh = self.access.verifier(true).await?;
                authenticate(&fresh, metadata, audience, now)?
            }
            other => other?,
        };
        let Some((action, scope)) = access else {
            return Ok(Some(caller));
        };
        // `authenticate` found it, so it is there.
        let token = crate::grpc_auth::bearer(metadata).unwrap_or_default();
        let access = self.access.check(&caller, &token, action, &scope).await?;
        if let (Some(gate), Action::QueryRead, false) =
            (&self.lockbox, action, access == Access::Granted)
        {
            if gate.allows(&caller.object_id, &scope).await?.is_some() {
                return Ok(Some(caller));
            }
        }
        match access {
            Access::Granted => Ok(Some(caller)),
            Access::WrongTenant {
                subscription_tenant,
            } => Err(AuthError::WrongTenant {
                token_issuer: if issuer.is_empty() {
                    issuer_for(&caller.tenant_id)
                } else {
                    issuer
                },
                token_tenant: caller.tenant_id,
                subscription_tenant,
            }),
            Access::Denied => Err(AuthError::Forbidden {
                object_id: caller.object_id,
                action,
                scope,
            }),
        }
    }
}

/// The tower layer that puts a [`Guard`] (or none: everything open) in front of a server.
#[derive(Clone)]
pub struct GuardLayer {
    guard: Option<Guard>,
}

impl GuardLayer {
    /// A layer checking with `guard`; `None` lets every call through (the servers' default
    /// until every client of a deployment sends tokens).
    pub fn new(guard: Option<Guard>) -> GuardLayer {
        GuardLayer { guard }
    }
}

impl<S> tower::Layer<S> for GuardLayer {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> GuardService<S> {
        GuardService {
            inner,
            guard: self.guard.clone(),
        }
    }
}

/// The service [`GuardLayer`] makes.
#[derive(Clone)]
pub struct GuardService<S> {
    inner: S,
    guard: Option<Guard>,
}

type HttpRequest = http::Request<tonic::body::Body>;
type HttpResponse = http::Response<tonic::body::Body>;

/// The one message of a unary gRPC request body: the 5-byte frame header (no compression),
/// then the message.
fn message_of(body: &[u8]) -> Result<&[u8], AuthError> {
    if body.is_empty() {
        return Ok(body);
    }
    let header: [u8; 5] = body
        .get(..5)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| AuthError::UnreadableRequest("a gRPC frame has a 5-byte header".into()))?;
    if header[0] != 0 {
        return Err(AuthError::UnreadableRequest(
            "compressed requests are not accepted by guarded services".into(),
        ));
    }
    let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    body.get(5..5 + length)
        .ok_or_else(|| AuthError::UnreadableRequest("the gRPC frame is cut short".into()))
}

impl<S> tower::Service<HttpRequest> for GuardService<S>
where
    S: tower::Service<HttpRequest, Response = HttpResponse> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<HttpResponse, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        // The clone is not ready; the ready one (polled above) serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        Box::pin(async move {
            let path = request.uri().path().to_string();
            let Some(guard) = guard.filter(|_| access_rules::is_guarded(&path)) else {
                return inner.call(request).await;
            };
            let (parts, body) = request.into_parts();
            let bytes = match read_bounded(body).await {
                Ok(bytes) => bytes,
                Err(status) => return Ok(status.into_http()),
            };
            let metadata = tonic::metadata::MetadataMap::from_headers(parts.headers.clone());
            let checked = match message_of(&bytes) {
                Ok(message) => guard.check(&path, &metadata, message).await,
                Err(e) => Err(e),
            };
            match checked {
                Ok(caller) => {
                    let mut parts = parts;
                    // The handler may ask who called (`tonic::Request::extensions`): Customer
                    // Lockbox takes the requester from the token, never from the request body.
                    if let Some(caller) = caller {
                        parts.extensions.insert(caller);
                    }
                    let body = tonic::body::Body::new(http_body_util::Full::new(bytes));
                    inner.call(http::Request::from_parts(parts, body)).await
                }
                Err(refusal) => Ok(refusal.to_status().into_http()),
            }
        })
    }
}

/// The whole body, refused above [`REQUEST_BYTES_MAX`].
async fn read_bounded(body: tonic::body::Body) -> Result<Bytes, tonic::Status> {
    let limited = http_body_util::Limited::new(body, REQUEST_BYTES_MAX);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => Err(tonic::Status::resource_exhausted(format!(
            "the request could not be read whole (at most {REQUEST_BYTES_MAX} bytes): {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_read_whole_or_refused() {
        assert_eq!(message_of(&[0, 0, 0, 0, 2, 7, 8]).unwrap(), &[7, 8]);
        assert!(message_of(&[0, 0, 0, 0, 9, 7]).is_err());
        assert!(message_of(&[1, 0, 0, 0, 0]).is_err());
        assert!(message_of(&[0, 0]).is_err());
        assert_eq!(message_of(&[]).unwrap(), &[] as &[u8]);
    }
}
