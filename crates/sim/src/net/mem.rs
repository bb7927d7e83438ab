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
//!   **release**; the clients' timeouts, and HTTP/2 keepalive on a connection with a call in
//!   flight, notice the silence as they would on a real network (an idle connection is not
//!   pinged here: see `Network::pings_while_idle`).
//! - **crash** of a host: its listeners are removed (connections to it are refused), and every
//!   stream with an end on it fails at once — on its side with `BrokenPipe`, so that the
//!   crashed host's remaining tasks end, on the peer's with `ConnectionReset`. The caller aborts
//!   the host's tasks; **restart** lets it listen again (a new incarnation: streams of the old
//!   one stay dead).
//! - **link quality** of a pair of hosts ([`LinkQuality`]): latency, fixed plus a jitter drawn
//!   per write from the network's seeded stream ([`MemNet::seeded`]), applied where the bytes
//!   arrive ([`super::link::Deliveries`]); and loss, drawn per write: a lost write breaks its
//!   connection (both ends fail with `ConnectionReset`, the transport error a real client sees
//!   for a dropped connection) and the clients reconnect. A run without link quality draws
//!   nothing, so it adds nothing to the seeded streams and reads the clock only as timers do.
//!
//! Counted: the HTTP/2 requests the connecting ends send ([`MemNet::requests_sent`], read from
//! the frame headers of the bytes they write: [`RequestScan`]), so that `cmksim bench sim` can
//! say how many gRPC calls a run made. Counting reads the bytes and changes nothing in them.
//!
//! Bounds: a connection buffers at most [`STREAM_BUFFER_BYTES`] each way; a listener's backlog
//! is [`ACCEPT_BACKLOG`] connections (a connection beyond it is refused); the waker table holds
//! at most two entries per open stream (a stream removes its own when dropped); a direction's
//! delivery book at most [`super::link::DELIVERY_ENTRIES_MAX`] entries.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::{mpsc, Notify};
use tokio_stream::Stream;

use super::link::{Deliveries, LinkQuality, LinkQualityError};

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
    /// HTTP/2 requests sent by connecting ends ([`RequestScan`]).
    requests: AtomicU64,
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
    /// Links that are not perfect, by unordered host pair.
    links: BTreeMap<(String, String), LinkQuality>,
    /// The draws of jitter and loss (seeded: [`MemNet::seeded`]).
    rng: Option<ChaCha20Rng>,
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

    /// The link's quality and this write's draws: its delay and whether it is lost. Nothing is
    /// drawn on a perfect link.
    fn draw(&mut self, a: &str, b: &str) -> (Duration, bool) {
        let Some(quality) = self.links.get(&pair(a, b)).copied() else {
            return (Duration::ZERO, false);
        };
        let rng = self
            .rng
            .get_or_insert_with(|| ChaCha20Rng::from_seed([0; 32]));
        let lost = quality.loss > 0.0 && rng.gen::<f64>() < quality.loss;
        let jitter = if quality.jitter.is_zero() {
            0.0
        } else {
            rng.gen::<f64>()
        };
        let delay = if quality.delays() {
            quality.delay(jitter)
        } else {
            Duration::ZERO
        };
        (delay, lost)
    }

    fn wake(&mut self, stream: u64) {
        for direction in [Direction::Read, Direction::Write] {
            if let Some(waker) = self.wakers.remove(&(stream, direction)) {
                waker.wake();
            }
        }
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

    /// A network whose jitter and loss are drawn from a stream seeded with `seed` (a
    /// [`crate::SeedTree`] stream); [`MemNet::new`]'s draws come from a fixed seed.
    pub fn seeded(seed: [u8; 32]) -> MemNet {
        let net = MemNet::default();
        net.lock().rng = Some(ChaCha20Rng::from_seed(seed));
        net
    }

    /// Sets the quality of the link between `a` and `b` (both directions) from now on; the
    /// default quality makes it perfect again. Bytes already on their way keep their delivery.
    pub fn set_link(&self, a: &str, b: &str, quality: LinkQuality) -> Result<(), LinkQualityError> {
        let quality = quality.validated()?;
        self.change(|s| {
            if quality == LinkQuality::default() {
                s.links.remove(&pair(a, b));
            } else {
                s.links.insert(pair(a, b), quality);
            }
        });
        Ok(())
    }

    /// The quality of the link between `a` and `b`.
    pub fn link(&self, a: &str, b: &str) -> LinkQuality {
        self.lock()
            .links
            .get(&pair(a, b))
            .copied()
            .unwrap_or_default()
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

    /// The HTTP/2 requests (HEADERS frames that open a stream) the connecting ends of this
    /// network's connections have written so far: one per gRPC call made.
    pub fn requests_sent(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
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
                    let conn = Arc::new(Conn {
                        origin: tokio::time::Instant::now(),
                        broken: AtomicBool::new(false),
                        book: [Mutex::default(), Mutex::default()],
                    });
                    let client = MemStream {
                        io: near,
                        id,
                        local: from.to_string(),
                        remote: to.to_string(),
                        local_life: from_life,
                        remote_life: to_life,
                        net: self.clone(),
                        conn: conn.clone(),
                        side: 0,
                        delivery: None,
                        requests: RequestScan::default(),
                    };
                    let server = MemStream {
                        io: far,
                        id: id + 1,
                        local: to.to_string(),
                        remote: from.to_string(),
                        local_life: to_life,
                        remote_life: from_life,
                        net: self.clone(),
                        conn,
                        side: 1,
                        delivery: None,
                        requests: RequestScan::Off,
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

/// What the two ends of one connection share.
struct Conn {
    /// The connection's time origin (the delivery books count from it).
    origin: tokio::time::Instant,
    /// A write was lost: the connection is dead at both ends.
    broken: AtomicBool,
    /// The delivery book of the bytes side `i` reads.
    book: [Mutex<Deliveries>; 2],
}

impl Conn {
    fn book(&self, side: usize) -> MutexGuard<'_, Deliveries> {
        self.book[side].lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> Duration {
        tokio::time::Instant::now().saturating_duration_since(self.origin)
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
    conn: Arc<Conn>,
    /// 0: the connecting end; 1: the accepted end.
    side: usize,
    /// The timer of a read waiting for bytes on their way.
    delivery: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Where the connecting end's writes are in HTTP/2's framing ([`RequestScan::Off`] on the
    /// accepted end).
    requests: RequestScan,
}

/// HTTP/2's connection preface, what a client writes first (RFC 9113, section 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// A frame header's length (RFC 9113, section 4.1).
const FRAME_HEADER_BYTES: usize = 9;
/// The HEADERS frame type: a client's HEADERS frame opens a request (a gRPC client sends no
/// trailers, and a header block too long for one frame goes on in CONTINUATION frames).
const FRAME_TYPE_HEADERS: u8 = 0x1;

/// Reads a client's byte stream as HTTP/2 frames far enough to count its requests: the preface,
/// then each frame's 9-byte header, whose length says how many payload bytes to skip. A stream
/// that does not begin with the preface is not HTTP/2 and is not counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RequestScan {
    /// Matched this many bytes of the preface.
    Preface(usize),
    /// Read this many bytes of a frame header.
    Header([u8; FRAME_HEADER_BYTES], usize),
    /// Payload bytes of the current frame still to skip.
    Payload(usize),
    /// Not counting: the accepted end, or a stream that is not HTTP/2.
    Off,
}

impl Default for RequestScan {
    fn default() -> RequestScan {
        RequestScan::Preface(0)
    }
}

impl RequestScan {
    /// Reads `bytes`, the next ones written; returns the HEADERS frames whose header they
    /// completed. Each turn of the loop consumes at least one byte (or ends it).
    fn scan(&mut self, mut bytes: &[u8]) -> u64 {
        let mut requests = 0;
        while !bytes.is_empty() {
            match self {
                RequestScan::Off => break,
                RequestScan::Preface(matched) => {
                    let take = bytes.len().min(PREFACE.len() - *matched);
                    if bytes[..take] != PREFACE[*matched..*matched + take] {
                        *self = RequestScan::Off;
                        break;
                    }
                    *matched += take;
                    bytes = &bytes[take..];
                    if *matched == PREFACE.len() {
                        *self = RequestScan::Header([0; FRAME_HEADER_BYTES], 0);
                    }
                }
                RequestScan::Header(header, have) => {
                    let take = bytes.len().min(FRAME_HEADER_BYTES - *have);
                    header[*have..*have + take].copy_from_slice(&bytes[..take]);
                    *have += take;
                    bytes = &bytes[take..];
                    if *have == FRAME_HEADER_BYTES {
                        let length = usize::from(header[0]) << 16
                            | usize::from(header[1]) << 8
                            | usize::from(header[2]);
                        if header[3] == FRAME_TYPE_HEADERS {
                            requests += 1;
                        }
                        *self = if length == 0 {
                            RequestScan::Header([0; FRAME_HEADER_BYTES], 0)
                        } else {
                            RequestScan::Payload(length)
                        };
                    }
                }
                RequestScan::Payload(left) => {
                    let take = bytes.len().min(*left);
                    *left -= take;
                    bytes = &bytes[take..];
                    if *left == 0 {
                        *self = RequestScan::Header([0; FRAME_HEADER_BYTES], 0);
                    }
                }
            }
        }
        requests
    }
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
        if self.conn.broken.load(Ordering::Acquire) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                format!("connection {} - {} lost", self.local, self.remote),
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
        // Bounded: a second pass finds the bytes the timer waited for delivered.
        for _ in 0..2 {
            let now = self.conn.now();
            let readable = self.conn.book(self.side).readable(now);
            let limit = match readable {
                Ok(limit) => limit,
                Err(at) => {
                    let deadline = self.conn.origin + at;
                    let timer = self
                        .delivery
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    timer.as_mut().reset(deadline);
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    continue;
                }
            };
            let polled = match limit {
                None => {
                    let before = buf.filled().len();
                    let polled = Pin::new(&mut self.io).poll_read(cx, buf);
                    let got = buf.filled().len() - before;
                    self.conn.book(self.side).read(got);
                    polled
                }
                Some(limit) => {
                    let mut part = vec![0u8; limit.min(buf.remaining())];
                    let mut limited = ReadBuf::new(&mut part);
                    let polled = Pin::new(&mut self.io).poll_read(cx, &mut limited);
                    let got = limited.filled().len();
                    buf.put_slice(limited.filled());
                    self.conn.book(self.side).read(got);
                    polled
                }
            };
            if polled.is_pending() {
                self.park(cx, Direction::Read);
            }
            return polled;
        }
        Poll::Pending
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
        let (delay, lost) = self.net.lock().draw(&self.local, &self.remote);
        if lost {
            self.conn.broken.store(true, Ordering::Release);
            self.net.lock().wake(self.id ^ 1);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                format!("connection {} - {} lost", self.local, self.remote),
            )));
        }
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        match &polled {
            Poll::Pending => self.park(cx, Direction::Write),
            Poll::Ready(Ok(written)) => {
                let written = *written;
                let now = self.conn.now();
                self.conn.book(1 - self.side).written(now, delay, written);
                let requests = self.requests.scan(&buf[..written]);
                if requests > 0 {
                    self.net
                        .inner
                        .requests
                        .fetch_add(requests, Ordering::Relaxed);
                }
            }
            Poll::Ready(Err(_)) => {}
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

    fn timeouts() -> ClientTimeouts {
        ClientTimeouts {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(2),
            keepalive_interval: Duration::from_secs(2),
        }
    }

    /// One frame: a 9-byte header (length, type, flags, stream) and its payload.
    fn frame(kind: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let length = payload.len() as u32;
        let mut out = length.to_be_bytes()[1..].to_vec();
        out.extend([kind, 0]);
        out.extend(stream.to_be_bytes());
        out.extend(payload);
        out
    }

    /// The scan counts the HEADERS frames of an HTTP/2 client's bytes however the writes cut
    /// them (every cut of a stream into two writes, and byte by byte), skipping payloads that
    /// look like frame headers; bytes that do not begin with the preface count nothing.
    #[test]
    fn the_request_scan_counts_headers_frames_wherever_the_writes_cut_them() {
        let mut stream = PREFACE.to_vec();
        stream.extend(frame(0x4, 0, &[0; 6])); // SETTINGS
        stream.extend(frame(FRAME_TYPE_HEADERS, 1, b"hpack"));
        // A DATA payload that is itself a HEADERS frame header: skipped, not counted.
        stream.extend(frame(0x0, 1, &frame(FRAME_TYPE_HEADERS, 3, b"")));
        stream.extend(frame(FRAME_TYPE_HEADERS, 3, b""));
        stream.extend(frame(0x9, 3, b"continued")); // CONTINUATION: the same request
        stream.extend(frame(0x6, 0, &[0; 8])); // PING
        for cut in 0..=stream.len() {
            let mut scan = RequestScan::default();
            let counted = scan.scan(&stream[..cut]) + scan.scan(&stream[cut..]);
            assert_eq!(counted, 2, "cut at {cut}");
            assert_eq!(scan, RequestScan::Header([0; FRAME_HEADER_BYTES], 0));
        }
        let mut scan = RequestScan::default();
        let counted: u64 = stream
            .iter()
            .map(|b| scan.scan(std::slice::from_ref(b)))
            .sum();
        assert_eq!(counted, 2, "byte by byte");

        let mut not_http2 = RequestScan::default();
        let mut bytes = b"GET / HTTP/1.1\r\n".to_vec();
        bytes.extend(frame(FRAME_TYPE_HEADERS, 1, b""));
        assert_eq!(not_http2.scan(&bytes), 0);
        assert_eq!(not_http2, RequestScan::Off);
        assert_eq!(
            RequestScan::Off.scan(&stream),
            0,
            "the accepted end counts nothing"
        );
    }

    /// The network counts one request per gRPC call, however many connections carry them.
    #[tokio::test(start_paused = true)]
    async fn the_network_counts_one_request_per_call() {
        let net = MemNet::new();
        let _server = serve_health(&net);
        assert_eq!(net.requests_sent(), 0);
        for calls in 1..=3u64 {
            let channel = Network::Memory(net.host("client"))
                .channel("http://server:50051", timeouts())
                .unwrap();
            let mut client = HealthClient::new(channel);
            for _ in 0..calls {
                assert_eq!(check(&mut client).await, Ok(1));
            }
        }
        assert_eq!(net.requests_sent(), 1 + 2 + 3);
    }

    /// A link's latency delays each message once each way (one request: at least twice the
    /// latency of simulated time), whatever number of writes it takes.
    #[tokio::test(start_paused = true)]
    async fn latency_delays_a_call_by_its_round_trip() {
        let net = MemNet::new();
        let _server = serve_health(&net);
        let channel = Network::Memory(net.host("client"))
            .channel("http://server:50051", timeouts())
            .unwrap();
        let mut client = HealthClient::new(channel);
        assert_eq!(check(&mut client).await, Ok(1), "connected, no latency");
        let start = tokio::time::Instant::now();
        assert_eq!(check(&mut client).await, Ok(1));
        assert!(start.elapsed() < Duration::from_millis(1), "a perfect link");

        let latency = Duration::from_millis(40);
        let quality = LinkQuality {
            latency,
            ..LinkQuality::default()
        };
        net.set_link("server", "client", quality).unwrap();
        assert_eq!(net.link("client", "server"), quality);
        let start = tokio::time::Instant::now();
        assert_eq!(check(&mut client).await, Ok(1));
        let took = start.elapsed();
        assert!(
            took >= 2 * latency && took < 4 * latency,
            "one round trip: {took:?}"
        );
        net.set_link("client", "server", LinkQuality::default())
            .unwrap();
        let start = tokio::time::Instant::now();
        assert_eq!(check(&mut client).await, Ok(1));
        assert!(start.elapsed() < Duration::from_millis(1), "perfect again");
    }

    /// A lost write breaks its connection: the call fails with a transport error; the client
    /// reconnects once the link is good again.
    #[tokio::test(start_paused = true)]
    async fn loss_fails_calls_with_a_transport_error() {
        let net = MemNet::new();
        let _server = serve_health(&net);
        let channel = Network::Memory(net.host("client"))
            .channel("http://server:50051", timeouts())
            .unwrap();
        let mut client = HealthClient::new(channel);
        assert_eq!(check(&mut client).await, Ok(1));
        let all_lost = LinkQuality {
            loss: 1.0,
            ..LinkQuality::default()
        };
        net.set_link("client", "server", all_lost).unwrap();
        let failed = check(&mut client).await;
        assert!(failed.is_err(), "{failed:?}");
        net.set_link("client", "server", LinkQuality::default())
            .unwrap();
        let mut back = None;
        // Bounded: the channel reconnects within a few attempts.
        for _ in 0..30 {
            if let Ok(status) = check(&mut client).await {
                back = Some(status);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(back, Some(1), "calls work again");
        let refused = LinkQuality {
            loss: -0.1,
            ..LinkQuality::default()
        };
        assert!(net.set_link("client", "server", refused).is_err());
    }

    /// Forty calls over a link with jitter and loss: what each call gave and when it ended.
    async fn lossy_calls(seed: [u8; 32]) -> Vec<(Result<i32, String>, Duration)> {
        let net = MemNet::seeded(seed);
        let _server = serve_health(&net);
        net.set_link(
            "client",
            "server",
            LinkQuality {
                latency: Duration::from_millis(20),
                jitter: Duration::from_millis(30),
                loss: 0.05,
            },
        )
        .unwrap();
        let channel = Network::Memory(net.host("client"))
            .channel("http://server:50051", timeouts())
            .unwrap();
        let mut client = HealthClient::new(channel);
        let start = tokio::time::Instant::now();
        let mut outcomes = Vec::new();
        for _ in 0..40 {
            let outcome = check(&mut client).await;
            outcomes.push((outcome, start.elapsed()));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        outcomes
    }

    /// A current-thread runtime with a paused clock, as the engine's, calling `on_park` each
    /// time it parks (each jump of the clock).
    fn paused_runtime(on_park: impl Fn() + Send + Sync + 'static) -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .on_thread_park(on_park)
            .build()
            .unwrap()
    }

    /// Jitter and loss come from the seeded stream: the same seed, the same calls, outcomes
    /// and times; and they do happen.
    #[test]
    fn jitter_and_loss_are_deterministic_for_a_seed() {
        let run = |seed: [u8; 32]| paused_runtime(|| {}).block_on(lossy_calls(seed));
        let first = run([7; 32]);
        let second = run([7; 32]);
        assert_eq!(first, second);
        assert!(
            first.iter().any(|(outcome, _)| outcome.is_err()),
            "some calls were lost: {first:?}"
        );
        assert!(
            first.iter().any(|(outcome, _)| outcome.is_ok()),
            "some calls got through: {first:?}"
        );
        let gaps: std::collections::BTreeSet<Duration> =
            first.windows(2).map(|w| w[1].1 - w[0].1).collect();
        assert!(gaps.len() > 3, "the jitter varies the calls: {gaps:?}");
    }

    /// An idle in-memory connection costs nothing while simulated time passes: no keepalive
    /// ping wakes it (see `Network::pings_while_idle`), so an hour of idleness is a handful of
    /// the runtime's parks, not one ping round every keepalive interval; and the connection
    /// still answers afterwards.
    #[test]
    fn an_idle_connection_costs_no_steps() {
        let parks = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = parks.clone();
        let idle_parks = paused_runtime(move || {
            counted.fetch_add(1, Ordering::Relaxed);
        })
        .block_on(async {
            let net = MemNet::new();
            let _server = serve_health(&net);
            let channel = Network::Memory(net.host("client"))
                .channel("http://server:50051", timeouts())
                .unwrap();
            let mut client = HealthClient::new(channel);
            assert_eq!(check(&mut client).await, Ok(1));
            let before = parks.load(Ordering::Relaxed);
            // 1,800 keepalive intervals of 2 s.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            let idle = parks.load(Ordering::Relaxed) - before;
            assert_eq!(check(&mut client).await, Ok(1), "still connected");
            idle
        });
        assert!(idle_parks < 10, "{idle_parks} parks in an idle hour");
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
