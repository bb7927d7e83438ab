//! The start every gRPC server of the simulator shares: binding its TCP address, and the two
//! standard services served beside its own.
//!
//! Key Vault, storage, Sentinel and ingest each serve either real TCP (`serve(addr)`) or any
//! stream of connections (`serve_with_incoming`: turmoil, the in-memory network, TLS). The TCP
//! case was written out in each server with its own error mapping; [`bind_tcp`] is that step
//! once, with an error that names the address ([`BindError`]), and connections that have
//! `TCP_NODELAY` set ([`super::tcp_incoming`]). [`health_and_reflection`] is the other step the
//! four wrote out alike: gRPC health with each of the server's services `SERVING`, and server
//! reflection over the contract's descriptors, so `grpcurl` and `grpc_health_probe` work on
//! every process the same way (the reflection index is built once per process and shared).
//! [`AbortOnDrop`] is the crash half of a server's stop: the
//! background tasks of a server whose future is dropped mid-way (a crashed process) are aborted
//! without their graceful save; storage and Sentinel serve behind it.

use std::net::SocketAddr;

use tokio_stream::Stream;

/// A server's listening address could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds `addr` and returns its accepted connections, ready for a server's
/// `serve_with_incoming`.
pub async fn bind_tcp(
    addr: SocketAddr,
) -> Result<impl Stream<Item = std::io::Result<tokio::net::TcpStream>> + Send + 'static, BindError>
{
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })?;
    Ok(super::tcp_incoming(listener))
}

/// The reflection service could not be built from the descriptors it was given.
#[derive(Debug, thiserror::Error)]
#[error("gRPC reflection: {0}")]
pub struct ReflectionError(#[from] pub tonic_reflection::server::Error);

/// gRPC health, reporting each service named in `serving` (full names, the generated servers'
/// `SERVICE_NAME`, e.g. `keyvault.v1.KeyVault`) as `SERVING`, and server reflection (v1) over
/// the encoded file descriptor set `descriptors` (`cmksim_proto::FILE_DESCRIPTOR_SET`).
pub async fn health_and_reflection(
    serving: &[&str],
    descriptors: &'static [u8],
) -> Result<
    (
        tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
    ),
    ReflectionError,
> {
    let (reporter, health) = tonic_health::server::health_reporter();
    for name in serving {
        reporter
            .set_service_status(*name, tonic_health::ServingStatus::Serving)
            .await;
    }
    Ok((health, reflection_for(descriptors)?))
}

/// The most descriptor sets [`reflection_for`] keeps built (the simulator has one).
const REFLECTIONS_KEPT_MAX: usize = 4;

/// A built reflection service, by its descriptor set's address and length. The service's type
/// is tonic-reflection's unnameable `impl ServerReflection`, hence `Any`.
type BuiltReflection = ((usize, usize), Box<dyn std::any::Any + Send>);

/// Reflection services already built in this process.
static REFLECTIONS: std::sync::Mutex<Vec<BuiltReflection>> = std::sync::Mutex::new(Vec::new());

/// The reflection service over `descriptors`, built once per set in this process and then
/// cloned (the clones share one read-only index). Building it decodes and indexes every
/// descriptor of the contract, about 8 M instructions: a simulated world starts a server per
/// host at each (re)start, and a chaos sweep starts thousands of worlds.
fn reflection_for(
    descriptors: &'static [u8],
) -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    ReflectionError,
> {
    let build = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(descriptors)
            .build_v1()
    };
    shared(
        &REFLECTIONS,
        (descriptors.as_ptr() as usize, descriptors.len()),
        build,
    )
    .map_err(ReflectionError::from)
}

/// The value `cache` holds under `id`, cloned, or `build`'s, kept there for the next caller
/// (at most [`REFLECTIONS_KEPT_MAX`] values; the oldest goes first).
fn shared<T: Clone + Send + 'static, E>(
    cache: &std::sync::Mutex<Vec<BuiltReflection>>,
    id: (usize, usize),
    build: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    let mut built = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let kept = built
        .iter()
        .find(|(key, _)| *key == id)
        .and_then(|(_, value)| value.downcast_ref::<T>());
    if let Some(value) = kept {
        return Ok(value.clone());
    }
    let value = build()?;
    built.retain(|(key, _)| *key != id);
    if built.len() >= REFLECTIONS_KEPT_MAX {
        built.remove(0);
    }
    built.push((id, Box::new(value.clone())));
    Ok(value)
}

/// Runs `abort` when dropped armed: a server future dropped before its graceful stop ran is a
/// crashed process, whose background tasks end where they stand (no save). [`AbortOnDrop::disarm`]
/// after the graceful stop.
pub struct AbortOnDrop<F: FnOnce()> {
    abort: Option<F>,
}

impl<F: FnOnce()> AbortOnDrop<F> {
    /// Armed: `abort` runs when this is dropped, unless disarmed first.
    pub fn new(abort: F) -> AbortOnDrop<F> {
        AbortOnDrop { abort: Some(abort) }
    }

    /// The graceful stop ran: nothing to abort.
    pub fn disarm(mut self) {
        self.abort = None;
    }
}

impl<F: FnOnce()> Drop for AbortOnDrop<F> {
    fn drop(&mut self) {
        if let Some(abort) = self.abort.take() {
            abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abort_on_drop_runs_when_dropped_armed_and_not_once_disarmed() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let aborted = AtomicU32::new(0);
        drop(AbortOnDrop::new(|| {
            aborted.fetch_add(1, Ordering::SeqCst);
        }));
        assert_eq!(aborted.load(Ordering::SeqCst), 1, "dropped armed: aborted");
        AbortOnDrop::new(|| {
            aborted.fetch_add(1, Ordering::SeqCst);
        })
        .disarm();
        assert_eq!(aborted.load(Ordering::SeqCst), 1, "disarmed: not aborted");
    }

    #[test]
    fn a_shared_value_is_built_once_per_id_and_a_failed_build_is_not_kept() {
        let cache = std::sync::Mutex::new(Vec::new());
        let mut builds = 0;
        for _ in 0..3 {
            let value = shared(&cache, (1, 1), || {
                builds += 1;
                Ok::<_, ()>(String::from("one"))
            });
            assert_eq!(value, Ok("one".to_string()));
        }
        assert_eq!(builds, 1, "built once, then cloned");
        assert_eq!(shared(&cache, (2, 1), || Err::<String, _>("no")), Err("no"));
        assert_eq!(cache.lock().unwrap().len(), 1, "the failure is not kept");
        for id in 0..REFLECTIONS_KEPT_MAX + 3 {
            shared(&cache, (id, 9), || Ok::<_, ()>(id)).unwrap();
            assert!(cache.lock().unwrap().len() <= REFLECTIONS_KEPT_MAX);
        }
        // A value of another type under a kept id is built, not mistaken for the kept one.
        let last = (REFLECTIONS_KEPT_MAX + 2, 9);
        assert_eq!(shared(&cache, last, || Ok::<_, ()>(7u8)), Ok(7u8));
        assert_eq!(shared(&cache, last, || Ok::<_, ()>(8u8)), Ok(7u8));
    }

    #[tokio::test]
    async fn health_reports_each_named_service_serving_and_nothing_else() {
        use tonic_health::pb::health_client::HealthClient;
        use tonic_health::pb::HealthCheckRequest;
        let (health, _reflection) = health_and_reflection(
            &["a.v1.One", "a.v1.Two"],
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        )
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(health)
                .serve_with_incoming(super::super::tcp_incoming(listener)),
        );
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = HealthClient::new(channel);
        for name in ["a.v1.One", "a.v1.Two"] {
            let answer = client
                .check(HealthCheckRequest {
                    service: name.into(),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(answer.status, 1, "{name} SERVING");
        }
        let unknown = client
            .check(HealthCheckRequest {
                service: "a.v1.Three".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::NotFound);
        server.abort();
        // Descriptors that are not a file descriptor set are refused with a typed error.
        assert!(health_and_reflection(&[], b"not a descriptor set")
            .await
            .is_err());
    }

    #[tokio::test]
    async fn an_address_in_use_is_named_in_the_error() {
        let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let err = match bind_tcp(addr).await {
            Ok(_) => panic!("bound an address in use"),
            Err(e) => e,
        };
        assert_eq!(err.addr, addr);
        assert!(err
            .to_string()
            .starts_with(&format!("cannot listen on {addr}: ")));
        assert!(bind_tcp("127.0.0.1:0".parse().unwrap()).await.is_ok());
    }
}
