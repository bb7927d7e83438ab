//! An in-memory network for the event-driven simulation engine.
//!
//! Every service of a simulated world runs in one current-thread tokio runtime with a paused
//! clock; they talk real gRPC (tonic servers and channels) over the byte streams of this module
//! instead of TCP. A [`MemNet`] is the switch: hosts are names, a listener is a `(host, port)`
//! pair, and a connection is a pair of `tokio::io::duplex` halves. Nothing here reads a clock or
//! a random source, so the network adds no non-determinism and no timers: a run's cost follows
//! its events, and the paused clock jumps straight to the next timer when every task is idle.
//!
//! The faults the scenarios use are applied here:
//! - **partition** / **hold** of a pair of hosts: reads and writes between them wait (bytes are
//!   kept, as TCP retransmission would), and new connections wait, until **repair** /
//!   **release**; HTTP/2 keepalive and the clients' timeouts notice the silence as they would on
//!   a real network.
//! - **crash** of a host: its listeners are removed (connections to it are refused), and every
//!   stream with an end on it fails at once — on its side with `BrokenPipe`, so that the
//!   crashed host's remaining tasks end, on the peer's with `ConnectionReset`. The caller aborts
//!   the host's tasks; **restart** lets it listen again (a new incarnation: streams of the old
//!   one stay dead).
//!
//! Bounds: a connection buffers at most [`STREAM_BUFFER_BYTES`] each way; a listener's backlog
//! is [`ACCEPT_BACKLOG`] connections (a connection beyond it is refused); the waker table holds
//! at most two entries per open stream (a stream removes its own when dropped).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::{mpsc, Notify};
use tokio_stream::Stream;

/// Bytes buffered in each direction of one connection before a writer waits.
pub const STREAM_BUFFER_BYTES: usize = 256 * 1024;

/// Connections a listener holds before its server accepts them.
pub const ACCEPT_BACKLOG: usize = 64;

/// The in-memory network of one simulated world (cheap to clone: a shared handle).
#[derive(Clone, Default)]
pub struct MemNet {
    inner: Arc<Shared>,
}

impl std::fmt::Debug for MemNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemNet").finish_non_exhaustive()
    }
}

impl PartialEq for MemNet {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for MemNet {}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Notified on every change of the links or of a host's life (connects waiting on a
    /// partition re-check then).
    changed: Notify,
}

#[derive(Default)]
struct State {
    listeners: BTreeMap<(String, u16), mpsc::Sender<MemStream>>,
    /// Unordered host pairs, stored as (smaller, larger).
    partitioned: BTreeSet<(String, String)>,
    held: BTreeSet<(String, String)>,
    /// Each host's incarnation: bumped by a crash.
    incarnation: BTreeMap<String, u64>,
    down: BTreeSet<String>,
    /// Wakers of streams waiting on a link or on their buffer, by (stream id, direction), so
    /// that a fault or a repair wakes them.
    wakers: BTreeMap<(u64, Direction), Waker>,
    next_stream: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Direction {
    Read,
    Write,
}

fn pair(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

impl State {
    fn incarnation(&self, host: &str) -> u64 {
        self.incarnation.get(host).copied().unwrap_or(0)
    }

    fn blocked(&self, a: &str, b: &str) -> bool {
        let key = pair(a, b);
        self.partitioned.contains(&key) || self.held.contains(&key)
    }

    fn wake_all(&mut self) {
        for (_, waker) in std::mem::take(&mut self.wakers) {
            waker.wake();
        }
    }
}

impl MemNet {
    pub fn new() -> MemNet {
        MemNet::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a change to the links or hosts and wakes everyone who may be affected.
    fn change(&self, apply: impl FnOnce(&mut State)) {
        let mut state = self.lock();
        apply(&mut state);
        state.wake_all();
        drop(state);
        self.inner.changed.notify_waiters();
    }

    /// The handle a host's clients connect from (see [`super::Network::Memory`]).
    pub fn host(&self, name: &str) -> MemHost {
        MemHost {
            net: self.clone(),
            name: name.to_string(),
        }
    }

    /// Cuts traffic between `a` and `b` until [`MemNet::repair`].
    pub fn partition(&self, a: &str, b: &str) {
        self.change(|s| {
            s.partitioned.insert(pair(a, b));
        });
    }

    pub fn repair(&self, a: &str, b: &str) {
        self.change(|s| {
            s.partitioned.remove(&pair(a, b));
        });
    }

    /// Holds traffic between `a` and `b` until [`MemNet::release`].
    pub fn hold(&self, a: &str, b: &str) {
        self.change(|s| {
            s.held.insert(pair(a, b));
        });
    }

    pub fn release(&self, a: &str, b: &str) {
        self.change(|s| {
            s.held.remove(&pair(a, b));
        });
    }

    /// Takes `host` down: its listeners go, and every stream with an end on it fails.
    pub fn crash(&self, host: &str) {
        self.change(|s| {
            let next = s.incarnation(host) + 1;
            s.incarnation.insert(host.to_string(), next);
            s.down.insert(host.to_string());
            s.listeners.retain(|(h, _), _| h != host);
        });
    }

    /// Brings `host` back (a new incarnation; it listens again when its server starts).
    pub fn restart(&self, host: &str) {
        self.change(|s| {
            s.down.remove(host);
        });
    }

    /// Whether `host` is crashed and not restarted.
    pub fn is_down(&self, host: &str) -> bool {
        self.lock().down.contains(host)
    }

    /// The connections to `host:port`, as tonic's `serve_with_incoming` wants them. The
    /// listener exists from this call on (a connection made before the server polls waits in
    /// the backlog); it ends when the host crashes.
    pub fn listen(&self, host: &str, port: u16) -> MemIncoming {
        let (tx, rx) = mpsc::channel(ACCEPT_BACKLOG);
        self.lock().listeners.insert((host.to_string(), port), tx);
        MemIncoming { rx }
    }

    /// Connects from host `from` to `to:port`: refused when nothing listens there (or `to` is
    /// down, or the backlog is full); waits while the pair is partitioned or held (the caller's
    /// connect timeout bounds the wait).
    pub async fn connect(&self, from: &str, to: &str, port: u16) -> io::Result<MemStream> {
        // Bounded by the caller's connect timeout; each turn waits for a change of the links.
        loop {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut state = self.lock();
                if state.down.contains(from) {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        format!("host {from} is down"),
                    ));
                }
                if !state.blocked(from, to) {
                    let Some(listener) = state.listeners.get(&(to.to_string(), port)).cloned()
                    else {
                        return Err(io::Error::new(
                            io::ErrorKind::ConnectionRefused,
                            format!("nothing listens on {to}:{port}"),
                        ));
                    };
                    let (near, far) = tokio::io::duplex(STREAM_BUFFER_BYTES);
                    let id = state.next_stream;
                    state.next_stream += 2;
                    let (from_life, to_life) = (state.incarnation(from), state.incarnation(to));
                    let client = MemStream {
                        io: near,
                        id,
                        local: from.to_string(),
                        remote: to.to_string(),
                        local_life: from_life,
                        remote_life: to_life,
                        net: self.clone(),
                    };
                    let server = MemStream {
                        io: far,
                        id: id + 1,
                        local: to.to_string(),
                        remote: from.to_string(),
                        local_life: to_life,
                        remote_life: from_life,
                        net: self.clone(),
                    };
                    return match listener.try_send(server) {
                        Ok(()) => Ok(client),
                        Err(_) => Err(io::Error::new(
                            io::ErrorKind::ConnectionRefused,
                            format!("{to}:{port} accepts no more connections"),
                        )),
                    };
                }
            }
            changed.await;
        }
    }
}

/// A host's end of the network: what its clients connect from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemHost {
    net: MemNet,
    name: String,
}

impl MemHost {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn net(&self) -> &MemNet {
        &self.net
    }

    /// Connects to the `host:port` of `uri` (tonic's connector).
    pub async fn connect_uri(&self, uri: http::Uri) -> io::Result<MemStream> {
        let host = uri
            .host()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "uri has no host"))?;
        let port = uri
            .port_u16()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "uri has no port"))?;
        self.net.connect(&self.name, host, port).await
    }
}

/// The accepted connections of one listener.
pub struct MemIncoming {
    rx: mpsc::Receiver<MemStream>,
}

impl Stream for MemIncoming {
    type Item = io::Result<MemStream>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|s| s.map(Ok))
    }
}

/// One end of an in-memory connection.
pub struct MemStream {
    io: DuplexStream,
    id: u64,
    local: String,
    remote: String,
    local_life: u64,
    remote_life: u64,
    net: MemNet,
}

impl MemStream {
    /// The host at the other end.
    pub fn remote_host(&self) -> &str {
        &self.remote
    }

    /// Whether I/O may go on now: `Err` when an end crashed, `Pending` (waker kept) while the
    /// link is cut, `Ready(Ok)` otherwise.
    fn gate(&self, cx: &mut Context<'_>, direction: Direction) -> Poll<io::Result<()>> {
        let mut state = self.net.lock();
        if state.incarnation(&self.local) != self.local_life || state.down.contains(&self.local) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("host {} crashed", self.local),
            )));
        }
        if state.incarnation(&self.remote) != self.remote_life {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                format!("host {} crashed", self.remote),
            )));
        }
        if state.blocked(&self.local, &self.remote) {
            state
                .wakers
                .insert((self.id, direction), cx.waker().clone());
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    /// Keeps the waker of a poll the buffer left pending, so that a fault wakes it too.
    fn park(&self, cx: &mut Context<'_>, direction: Direction) {
        self.net
            .lock()
            .wakers
            .insert((self.id, direction), cx.waker().clone());
    }
}

impl Drop for MemStream {
    fn drop(&mut self) {
        let mut state = self.net.lock();
        state.wakers.remove(&(self.id, Direction::Read));
        state.wakers.remove(&(self.id, Direction::Write));
    }
}

impl tonic::transport::server::Connected for MemStream {
    type ConnectInfo = Option<SocketAddr>;

    fn connect_info(&self) -> Self::ConnectInfo {
        None
    }
}

impl AsyncRead for MemStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.gate(cx, Direction::Read) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {}
        }
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if polled.is_pending() {
            self.park(cx, Direction::Read);
        }
        polled
    }
}

impl AsyncWrite for MemStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.gate(cx, Direction::Write) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {}
        }
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if polled.is_pending() {
            self.park(cx, Direction::Write);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{ClientTimeouts, Network};
    use std::time::Duration;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    fn serve_health(net: &MemNet) -> tokio::task::JoinHandle<()> {
        let incoming = net.listen("server", 50051);
        tokio::spawn(async move {
            let (_reporter, health) = tonic_health::server::health_reporter();
            let served = tonic::transport::Server::builder()
                .add_service(health)
                .serve_with_incoming(incoming)
                .await;
            assert!(served.is_ok(), "{served:?}");
        })
    }

    async fn check(client: &mut HealthClient<tonic::transport::Channel>) -> Result<i32, String> {
        client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|r| r.into_inner().status)
            .map_err(|s| s.to_string())
    }

    /// Real gRPC over the in-memory network in paused time: a partition makes calls time out
    /// (and costs no wall time), a repair heals it; a crashed host refuses calls, a restarted
    /// one answers again.
    #[tokio::test(start_paused = true)]
    async fn grpc_over_memory_with_partition_and_crash() {
        let net = MemNet::new();
        let server = serve_health(&net);
        let timeouts = ClientTimeouts {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(2),
            keepalive_interval: Duration::from_secs(2),
        };
        let channel = Network::Memory(net.host("client"))
            .channel("http://server:50051", timeouts)
            .unwrap();
        let mut client = HealthClient::new(channel);
        assert_eq!(check(&mut client).await, Ok(1), "SERVING");

        net.partition("client", "server");
        let start = tokio::time::Instant::now();
        assert!(
            check(&mut client).await.is_err(),
            "a partitioned call fails"
        );
        assert!(
            start.elapsed() >= Duration::from_secs(2),
            "it waited for its timeout"
        );
        net.repair("server", "client");
        let mut healed = None;
        // Bounded: keepalive finds a dead connection within two intervals.
        for _ in 0..30 {
            if let Ok(status) = check(&mut client).await {
                healed = Some(status);
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert_eq!(healed, Some(1), "calls work again after repair");

        net.crash("server");
        server.abort();
        assert!(net.is_down("server"));
        assert!(
            check(&mut client).await.is_err(),
            "a crashed host answers nothing"
        );
        net.restart("server");
        let _server = serve_health(&net);
        let mut back = None;
        for _ in 0..30 {
            if let Ok(status) = check(&mut client).await {
                back = Some(status);
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert_eq!(back, Some(1), "a restarted host answers");
    }

    #[tokio::test(start_paused = true)]
    async fn connecting_to_nothing_is_refused_at_once() {
        let net = MemNet::new();
        let e = net.connect("a", "b", 1).await.err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        let _incoming = net.listen("b", 1);
        assert!(net.connect("a", "b", 1).await.is_ok());
        net.crash("b");
        let e = net.connect("a", "b", 1).await.err().unwrap();
        assert_eq!(
            e.kind(),
            io::ErrorKind::ConnectionRefused,
            "its listener went"
        );
    }
}
