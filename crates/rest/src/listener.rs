//! The door's listener: HTTPS always, and an HTTP `CONNECT` proxy into itself on the same port.
//!
//! Why both on one port: the SDKs send bearer tokens only over `https://`, so the door is TLS.
//! And `CryptographyClient` rebuilds a vault URL from a key id keeping only scheme, host and
//! port, so a vault must be addressed by its host (`https://{vault}.vault.azure.net`), which a
//! machine without DNS changes cannot resolve to 127.0.0.1. A client given
//! `HTTPS_PROXY=http://127.0.0.1:PORT` (every SDK honours it) asks this port to `CONNECT` to
//! that host; the door answers 200 and speaks TLS inside the tunnel itself, with its own
//! certificate (which names `*.vault.azure.net`, `management.azure.com`,
//! `login.microsoftonline.com`, ...). The first byte of a connection tells the two apart: a TLS
//! ClientHello starts with 0x16, an HTTP request with a letter.
//!
//! Limits: at most [`CONNECTIONS_MAX`] connections at once (more are closed at accept), a
//! connection that sends nothing for [`FIRST_BYTE_TIMEOUT`] is dropped, handshakes are bounded by
//! the TLS handshake timeout, and at shutdown in-flight requests get [`SHUTDOWN_GRACE`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// Most connections served at once.
pub const CONNECTIONS_MAX: u32 = 1024;
/// How long a new connection may stay silent before it is dropped.
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests may run after the stop signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// The first byte of a TLS record carrying a handshake (the ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// `base` offering HTTP/2 and HTTP/1.1 by ALPN (the gRPC listeners offer only h2; the Python
/// SDKs speak HTTP/1.1).
pub fn rest_tls(base: Arc<ServerConfig>) -> Arc<ServerConfig> {
    let mut config = (*base).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// What every connection task needs.
#[derive(Clone)]
struct Conn {
    acceptor: TlsAcceptor,
    router: Router,
    stop: watch::Receiver<bool>,
    /// One permit per connection or CONNECT tunnel being served ([`CONNECTIONS_MAX`]).
    slots: Arc<Semaphore>,
}

/// Accepts connections on `listener` until `stop` resolves, then waits (bounded) for the
/// connections in flight to finish.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX as usize));
    let conn = Conn {
        acceptor: TlsAcceptor::from(tls),
        router,
        stop: stop_rx,
        slots: slots.clone(),
    };
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors and the like: pause instead of spinning.
                    tracing::warn!("rest: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = CONNECTIONS_MAX, "rest: too many connections, closing a new one");
            continue;
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::warn!(%peer, "rest: TCP_NODELAY: {e}");
        }
        let conn = conn.clone();
        tokio::spawn(async move {
            conn.handle(stream).await;
            drop(slot);
        });
    }
    stop_tx.send_replace(true);
    let all = slots.acquire_many(CONNECTIONS_MAX);
    if tokio::time::timeout(SHUTDOWN_GRACE, all).await.is_err() {
        tracing::warn!(
            grace_s = SHUTDOWN_GRACE.as_secs(),
            "rest: connections still open after the grace period"
        );
    }
    Ok(())
}

impl Conn {
    /// One accepted connection: TLS, or plain HTTP for `CONNECT`.
    async fn handle(self, stream: TcpStream) {
        let peer = stream.peer_addr().ok();
        let mut first = [0u8; 1];
        match tokio::time::timeout(FIRST_BYTE_TIMEOUT, stream.peek(&mut first)).await {
            Ok(Ok(1)) => {}
            Ok(Ok(_)) | Ok(Err(_)) => return,
            Err(_) => {
                tracing::debug!(?peer, "rest: connection silent, dropped");
                return;
            }
        }
        if first[0] == TLS_HANDSHAKE_RECORD {
            self.serve_tls(stream).await;
        } else {
            self.serve_proxy(stream).await;
        }
    }

    /// TLS on `io`, then HTTP/1.1 or HTTP/2 to the router.
    async fn serve_tls<IO>(self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let handshake = tokio::time::timeout(
            cmksim_sim::net::TLS_HANDSHAKE_TIMEOUT,
            self.acceptor.accept(io),
        )
        .await;
        let tls = match handshake {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::warn!("rest: TLS handshake failed, connection dropped: {e}");
                return;
            }
            Err(_) => {
                tracing::warn!("rest: TLS handshake timed out, connection dropped");
                return;
            }
        };
        let service = TowerToHyperService::new(self.router.clone());
        let builder = auto::Builder::new(TokioExecutor::new());
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
        until_stopped(connection, self.stop).await;
    }

    /// Plain HTTP/1.1 on which only `CONNECT` is served: the tunnel leads back into
    /// [`Conn::serve_tls`].
    async fn serve_proxy(self, stream: TcpStream) {
        let conn = self.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let conn = conn.clone();
            async move { Ok::<_, Infallible>(conn.proxy(request)) }
        });
        let builder = auto::Builder::new(TokioExecutor::new()).http1_only();
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        until_stopped(connection, self.stop).await;
    }

    fn proxy(self, request: Request<Incoming>) -> Response<Body> {
        if request.method() != Method::CONNECT {
            let body = serde_json::json!({"error": {
                "code": "HttpsRequired",
                "message": "cmksim's REST port speaks HTTPS; plain HTTP is accepted only for \
                            CONNECT (use http://HOST:PORT as HTTPS_PROXY, or https://HOST:PORT)",
            }});
            let mut response = Response::new(Body::from(body.to_string()));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return response;
        }
        let target = request
            .uri()
            .authority()
            .map(|a| crate::error::echo(a.as_str()));
        // The tunnel outlives the CONNECT request's connection task: it holds a slot of its own,
        // so that the limit and the shutdown wait count it.
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            tracing::warn!(
                ?target,
                max = CONNECTIONS_MAX,
                "rest: too many connections, CONNECT refused"
            );
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            return response;
        };
        tokio::spawn(async move {
            match hyper::upgrade::on(request).await {
                Ok(upgraded) => {
                    tracing::debug!(?target, "rest: CONNECT tunnel open");
                    self.serve_tls(TokioIo::new(upgraded)).await;
                }
                Err(e) => tracing::warn!(?target, "rest: CONNECT upgrade failed: {e}"),
            }
            drop(slot);
        });
        Response::new(Body::empty())
    }
}

/// Drives `connection` to its end; when the server stops, asks it to finish its in-flight
/// requests and close.
async fn until_stopped<C>(connection: C, mut stop: watch::Receiver<bool>)
where
    C: std::future::Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>
        + GracefulConnection,
{
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stopped(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!("rest: connection ended: {e}");
    }
}

/// Resolves once `stop` is true (or its sender is gone, which means the same).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard the wait returns is dropped here, not held across an await.
    if stop.wait_for(|stopped| *stopped).await.is_err() {
        tracing::debug!("rest: stop signal gone, stopping");
    }
}

/// A connection that can be asked to finish gracefully (hyper-util's auto connections).
trait GracefulConnection {
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>);
}

impl<I, S, E> GracefulConnection for auto::UpgradeableConnection<'_, I, S, E>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<Body>>,
    S::Future: 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, Body>,
{
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>) {
        auto::UpgradeableConnection::graceful_shutdown(self)
    }
}
