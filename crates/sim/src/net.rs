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

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_stream::Stream;
use tonic::transport::{Channel, Endpoint};

/// Which network the services and clients use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// The operating system's TCP (live mode, tests on loopback).
    Tcp,
    /// turmoil's simulated TCP (inside a `turmoil::Sim` host or client).
    Turmoil,
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
    /// A lazily connecting channel to `uri` (`http://host:port`); it reconnects by itself after a
    /// failure or a partition is repaired.
    pub fn channel(self, uri: &str, timeouts: ClientTimeouts) -> Result<Channel, EndpointError> {
        let endpoint = Endpoint::from_shared(uri.to_string())
            .map_err(|e| EndpointError {
                uri: uri.to_string(),
                reason: e.to_string(),
            })?
            .connect_timeout(timeouts.connect_timeout)
            .timeout(timeouts.request_timeout)
            .http2_keep_alive_interval(timeouts.keepalive_interval)
            .keep_alive_timeout(timeouts.keepalive_interval)
            .keep_alive_while_idle(true);
        Ok(match self {
            Network::Tcp => endpoint.connect_lazy(),
            Network::Turmoil => {
                endpoint.connect_with_connector_lazy(tower::service_fn(turmoil_connect))
            }
        })
    }
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
