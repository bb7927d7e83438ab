//! One network code path for both ways of running.
//!
//! Every service serves with tonic's `serve_with_incoming_shutdown` and every client connects
//! through a [`Network`]: over real TCP in live mode, over turmoil's simulated TCP in simulation,
//! where partitions, holds and latency are injected by turmoil and time is virtual. Keeping the
//! choice in this one module is what lets the same gRPC services run in a deterministic
//! single-threaded simulation and as separate processes.
//!
//! turmoil's stream types do not implement tonic's `Connected` (server side) or hyper's I/O
//! traits (client side); the two adapters below supply them.
//!
//! The event-driven engine uses a third network, [`Network::Memory`]: the same tonic servers
//! and channels over the in-memory streams of [`MemNet`] (`net/mem.rs`), which also applies the
//! simulated faults (partition, hold, crash, restart) without turmoil's fixed time step.
//!
//! TLS (live mode only, `cmksim serve --tls`) stays in this module too (`net/tls.rs`), out of the
//! service crates: a server wraps the accepted TCP streams of a listener in a rustls acceptor
//! ([`tls_incoming`], with a config from [`tls_server_config`]), and a client uses
//! [`Network::Tls`], which trusts the certificates of a [`TlsClient`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use std::sync::Arc;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_stream::Stream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

mod link;
mod mem;
pub use link::{LinkQuality, LinkQualityError, DELIVERY_ENTRIES_MAX};
pub use mem::{MemHost, MemIncoming, MemNet, MemStream, ACCEPT_BACKLOG, STREAM_BUFFER_BYTES};
mod serve;
pub use serve::{bind_tcp, health_and_reflection, AbortOnDrop, BindError, ReflectionError};
mod tls;
pub use tls::{
    crypto_provider, install_crypto_provider, tls_incoming, tls_server_config, TlsClient, TlsError,
    TLS_HANDSHAKE_TIMEOUT,
};

/// Which network the services and clients use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Network {
    /// The operating system's TCP (live mode, tests on loopback).
    Tcp,
    /// turmoil's simulated TCP (inside a `turmoil::Sim` host or client).
    Turmoil,
    /// The event-driven engine's in-memory network ([`MemNet`]), connecting from this host.
    Memory(MemHost),
    /// The operating system's TCP, with TLS for `https://` URLs, trusting the given
    /// certificates (`http://` URLs stay plain text).
    Tls(Arc<TlsClient>),
}

/// Bounds on a client connection, so that no call waits forever.
#[derive(Clone, Copy, Debug)]
pub struct ClientTimeouts {
    /// Establishing a connection.
    pub connect_timeout: Duration,
    /// A whole call. tonic reports its expiry as `Cancelled`, not `DeadlineExceeded`.
    pub request_timeout: Duration,
    /// HTTP/2 keepalive ping interval: how a connection whose packets were dropped (a partition)
    /// is found dead, so that the channel reconnects after the partition is repaired.
    pub keepalive_interval: Duration,
}

impl Default for ClientTimeouts {
    fn default() -> Self {
        ClientTimeouts {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(10),
        }
    }
}

/// Why a channel could not be built.
#[derive(Debug, thiserror::Error)]
#[error("invalid endpoint {uri:?}: {reason}")]
pub struct EndpointError {
    pub uri: String,
    pub reason: String,
}

impl Network {
    /// A lazily connecting channel to `uri` (`http://host:port`, or `https://host:port` on
    /// [`Network::Tls`]); it reconnects by itself after a failure or a partition is repaired.
    pub fn channel(&self, uri: &str, timeouts: ClientTimeouts) -> Result<Channel, EndpointError> {
        let endpoint = self.endpoint(uri, timeouts)?;
        Ok(match self {
            Network::Tcp | Network::Tls(_) => endpoint.connect_lazy(),
            Network::Turmoil => {
                endpoint.connect_with_connector_lazy(tower::service_fn(turmoil_connect))
            }
            Network::Memory(host) => {
                let host = host.clone();
                endpoint.connect_with_connector_lazy(tower::service_fn(move |uri: http::Uri| {
                    let host = host.clone();
                    async move { host.connect_uri(uri).await.map(TokioIo::new) }
                }))
            }
        })
    }

    /// Whether a channel pings an idle connection. On TCP and turmoil, yes: a partition drops
    /// packets silently, and only a ping finds the connection dead before the next call needs
    /// it. On the in-memory network, no: every fault it has is signalled (a crash or a lost
    /// write fails the streams at once; a partition or hold keeps the bytes, as TCP
    /// retransmission would, and delivers them on repair), so an idle ping learns nothing — and
    /// it was most of the event-driven engine's steps (a ping every 10 s on each of ~9
    /// connections, each a timer and a write and a read at both ends: 113,193 steps for a
    /// simulated day of the soak with them, 33,407 without; see the README's design section).
    /// A connection with a call in flight is still pinged, so a call on a connection that went
    /// silent fails by the keepalive as well as by its own timeout.
    fn pings_while_idle(&self) -> bool {
        !matches!(self, Network::Memory(_))
    }

    /// The endpoint [`Network::channel`] connects to, with its timeouts and, for an `https://`
    /// URL on [`Network::Tls`], its TLS settings; for a caller that wants to connect eagerly
    /// over real TCP. An `https://` URL on any other network is refused here rather than
    /// failing on every call.
    pub fn endpoint(&self, uri: &str, timeouts: ClientTimeouts) -> Result<Endpoint, EndpointError> {
        let error = |reason: String| EndpointError {
            uri: uri.to_string(),
            reason,
        };
        let endpoint = Endpoint::from_shared(uri.to_string())
            .map_err(|e| error(e.to_string()))?
            .connect_timeout(timeouts.connect_timeout)
            .timeout(timeouts.request_timeout)
            .http2_keep_alive_interval(timeouts.keepalive_interval)
            .keep_alive_timeout(timeouts.keepalive_interval)
            .keep_alive_while_idle(self.pings_while_idle());
        let https = endpoint.uri().scheme_str() == Some("https");
        match self {
            Network::Tls(tls) if https => endpoint
                .tls_config(tls.client_config(timeouts.connect_timeout))
                .map_err(|e| error(error_chain(&e))),
            _ if https => Err(error(
                "an https:// URL needs TLS settings (a certificate to trust)".to_string(),
            )),
            _ => Ok(endpoint),
        }
    }
}

/// An error with its sources, `outer: inner: …` (tonic's transport errors say little alone).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}

type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<TokioIo<TurmoilStream>>> + Send>>;

fn turmoil_connect(uri: http::Uri) -> ConnectFuture {
    Box::pin(async move {
        let authority = uri
            .authority()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "uri has no host:port"))?
            .to_string();
        let stream = turmoil::net::TcpStream::connect(authority).await?;
        Ok(TokioIo::new(TurmoilStream(stream)))
    })
}

/// The accepted connections of a turmoil listener bound to `port` on the current host, as the
/// stream tonic's `serve_with_incoming` wants.
/// It binds on first poll, then accepts until the server's shutdown signal drops it.
pub fn turmoil_incoming(
    port: u16,
) -> impl Stream<Item = io::Result<TurmoilStream>> + Send + 'static {
    struct State {
        listener: Option<turmoil::net::TcpListener>,
        port: u16,
    }
    futures_unfold(
        State {
            listener: None,
            port,
        },
        |mut state| async move {
            if state.listener.is_none() {
                match turmoil::net::TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, state.port))
                    .await
                {
                    Ok(listener) => state.listener = Some(listener),
                    Err(e) => return Some((Err(e), state)),
                }
            }
            let listener = state.listener.as_ref()?;
            let accepted = listener
                .accept()
                .await
                .map(|(stream, _)| TurmoilStream(stream));
            Some((accepted, state))
        },
    )
}

/// The accepted connections of a real TCP listener, with `TCP_NODELAY` set on each: gRPC sends
/// small frames and waits for their answers, so Nagle's algorithm would add tens of milliseconds
/// to every call (measured: ~100 ms per ingest batch before this).
pub fn tcp_incoming(
    listener: tokio::net::TcpListener,
) -> impl Stream<Item = io::Result<tokio::net::TcpStream>> + Send + 'static {
    futures_unfold(listener, |listener| async move {
        let accepted = listener.accept().await.and_then(|(stream, _)| {
            stream.set_nodelay(true)?;
            Ok(stream)
        });
        Some((accepted, listener))
    })
}

/// `futures::stream::unfold` without the futures crate.
fn futures_unfold<S, F, Fut, T>(init: S, f: F) -> impl Stream<Item = T> + Send
where
    S: Send + 'static,
    F: FnMut(S) -> Fut + Send + 'static,
    Fut: Future<Output = Option<(T, S)>> + Send + 'static,
    T: Send + 'static,
{
    Unfold {
        state: Some(init),
        f,
        pending: None,
    }
}

struct Unfold<S, F, Fut> {
    state: Option<S>,
    f: F,
    pending: Option<Pin<Box<Fut>>>,
}

impl<S, F, Fut> Unpin for Unfold<S, F, Fut> {}

impl<S, F, Fut, T> Stream for Unfold<S, F, Fut>
where
    F: FnMut(S) -> Fut,
    Fut: Future<Output = Option<(T, S)>>,
{
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = &mut *self;
        if this.pending.is_none() {
            let Some(state) = this.state.take() else {
                return Poll::Ready(None);
            };
            this.pending = Some(Box::pin((this.f)(state)));
        }
        let fut = this.pending.as_mut().expect("set above");
        match fut.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                this.pending = None;
                match result {
                    Some((item, state)) => {
                        this.state = Some(state);
                        Poll::Ready(Some(item))
                    }
                    None => Poll::Ready(None),
                }
            }
        }
    }
}

/// A turmoil TCP stream that tonic can serve on and hyper can talk over.
pub struct TurmoilStream(turmoil::net::TcpStream);

impl tonic::transport::server::Connected for TurmoilStream {
    type ConnectInfo = Option<SocketAddr>;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.peer_addr().ok()
    }
}

impl AsyncRead for TurmoilStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TurmoilStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    /// A self-signed certificate for 127.0.0.1 (PEM cert, PEM key).
    fn self_signed() -> (String, String) {
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        (made.cert.pem(), made.signing_key.serialize_pem())
    }

    async fn health(network: &Network, url: &str) -> Result<i32, String> {
        let timeouts = ClientTimeouts {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(5),
        };
        let channel = network
            .endpoint(url, timeouts)
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| error_chain(&e))?;
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|r| r.into_inner().status)
            .map_err(|s| s.to_string())
    }

    /// gRPC over TLS on real loopback TCP: a trusting client is served; a plain-text client,
    /// an untrusting one and a silent one are refused without stopping the server.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn grpc_over_tls_refuses_untrusted_and_plain_clients_and_goes_on() {
        let (cert, key) = self_signed();
        let config = tls_server_config(cert.as_bytes(), key.as_bytes()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (_reporter, health) = tonic_health::server::health_reporter();
            tonic::transport::Server::builder()
                .add_service(health)
                .serve_with_incoming_shutdown(tls_incoming(listener, config), async {
                    let _ = stop_rx.await;
                })
                .await
        });
        let https = format!("https://127.0.0.1:{port}");
        let trusting = Network::Tls(Arc::new(TlsClient::trusting_pem(cert.clone()).unwrap()));

        // A silent client (TCP only) holds up no one.
        let _silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let plain = health(&Network::Tcp, &format!("http://127.0.0.1:{port}")).await;
        assert!(plain.is_err(), "plain text to a TLS port: {plain:?}");
        let untrusting = Network::Tls(Arc::new(TlsClient::trusting_nothing()));
        let refused = health(&untrusting, &https).await.unwrap_err();
        assert!(refused.contains("UnknownIssuer"), "{refused}");
        let (other, _) = self_signed();
        let wrong = Network::Tls(Arc::new(TlsClient::trusting_pem(other).unwrap()));
        assert!(health(&wrong, &https).await.is_err());
        assert_eq!(health(&trusting, &https).await, Ok(1), "SERVING");

        // https needs TLS settings; TLS settings leave http alone.
        let e = Network::Tcp
            .channel(&https, ClientTimeouts::default())
            .unwrap_err();
        assert!(e.reason.contains("TLS"), "{e}");
        assert!(trusting
            .channel("http://127.0.0.1:1", ClientTimeouts::default())
            .is_ok());

        let _ = stop_tx.send(());
        tokio::time::timeout(Duration::from_secs(20), server)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
    }

    #[test]
    fn tls_material_errors_say_which_part() {
        let (cert, key) = self_signed();
        assert!(matches!(
            tls_server_config(b"junk", key.as_bytes()),
            Err(TlsError::Certificate(_))
        ));
        assert!(matches!(
            tls_server_config(cert.as_bytes(), b"junk"),
            Err(TlsError::PrivateKey(_))
        ));
        let (_, other_key) = self_signed();
        assert!(matches!(
            tls_server_config(cert.as_bytes(), other_key.as_bytes()),
            Err(TlsError::Pair(_))
        ));
        assert!(
            TlsClient::trusting_pem(key).is_err(),
            "a key is no certificate"
        );
        assert_eq!(TlsClient::trusting_pem(cert).unwrap().count, 1);
    }

    /// A real gRPC health check over simulated TCP, failing during a partition and working
    /// again after repair, all in virtual time.
    #[test]
    fn grpc_over_turmoil_with_partition() {
        let mut sim = turmoil::Builder::new()
            .simulation_duration(Duration::from_secs(600))
            .build();
        sim.host("server", || async {
            let (_reporter, health) = tonic_health::server::health_reporter();
            tonic::transport::Server::builder()
                .add_service(health)
                .serve_with_incoming(turmoil_incoming(50051))
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)?;
            Ok(())
        });
        sim.client("client", async {
            let timeouts = ClientTimeouts {
                connect_timeout: Duration::from_secs(1),
                request_timeout: Duration::from_secs(2),
                keepalive_interval: Duration::from_secs(2),
            };
            let channel = Network::Turmoil.channel("http://server:50051", timeouts)?;
            let mut client = HealthClient::new(channel);
            let ok = client
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await?;
            assert_eq!(ok.into_inner().status, 1, "SERVING");

            turmoil::partition("client", "server");
            let refused = client
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            assert!(refused.is_err(), "a partitioned call must fail");

            turmoil::repair("client", "server");
            tokio::time::sleep(Duration::from_secs(1)).await;
            let mut healed = None;
            // Bounded: keepalive finds the dead connection within two intervals.
            for _ in 0..30 {
                match client
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                {
                    Ok(r) => {
                        healed = Some(r.into_inner().status);
                        break;
                    }
                    Err(e) => eprintln!("after repair: {e}"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            assert_eq!(healed, Some(1), "calls work again after repair");
            Ok(())
        });
        sim.run().unwrap();
    }
}
