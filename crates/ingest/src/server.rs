//! [`IngestServer`]: the front end as a gRPC server (Ingestion, Query, health, reflection), plus
//! the live `/metrics` listener.
//!
//! `serve_with_incoming` takes any stream of connections, like tonic's
//! `serve_with_incoming_shutdown`, so the same server runs on real TCP, on an in-process listener
//! in tests, or on turmoil's simulated network.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use cmksim_proto::ingest::v1 as pb;
use cmksim_sim::{Clock, EventLog, Profile};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_stream::Stream;
use tonic::transport::server::Connected;

use crate::backend::grpc::GrpcStorage;
use crate::backend::StorageBackend;
use crate::frontend::Frontend;
use crate::grpc::service::{IngestionService, QueryService};
use crate::http_metrics;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid storage endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
    #[error("reflection service: {0}")]
    Reflection(String),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Bind(#[from] cmksim_sim::net::BindError),
}

/// The ingestion front end server.
#[derive(Clone)]
pub struct IngestServer {
    frontend: Arc<Frontend>,
    /// The front end's clock and log, which the Events service also serves.
    clock: Clock,
    events: EventLog,
    /// The token and role checks in front of every call (`cmksim_identity::guard`); `None`
    /// serves every caller (in-process runs whose clients send no tokens).
    guard: Option<cmksim_identity::Guard>,
    /// The backend's Customer Lockbox gate, handed to the guard ([`IngestServer::with_guard`]).
    lockbox: Option<cmksim_identity::LockboxGate>,
}

impl IngestServer {
    /// A server whose storage is the storage service at `storage_endpoint`
    /// (e.g. `http://127.0.0.1:7002`); the connection is made lazily, on first use.
    pub fn new(
        clock: Clock,
        events: EventLog,
        profile: Profile,
        storage_endpoint: &str,
    ) -> Result<IngestServer, ServerError> {
        let storage = GrpcStorage::connect_lazy(storage_endpoint)?;
        Ok(IngestServer::with_backend(
            clock,
            events,
            profile,
            Arc::new(storage),
        ))
    }

    /// A server over any storage backend (the in-memory one in tests).
    pub fn with_backend(
        clock: Clock,
        events: EventLog,
        profile: Profile,
        backend: Arc<dyn StorageBackend>,
    ) -> IngestServer {
        IngestServer {
            lockbox: backend.lockbox_gate(),
            frontend: Arc::new(Frontend::new(
                clock.clone(),
                events.clone(),
                profile,
                backend,
            )),
            clock,
            events,
            guard: None,
        }
    }

    /// A server whose storage is the storage service at `storage_endpoint`, called with the
    /// tokens of `tokens` (the front end's own principal), the connection made lazily.
    pub fn with_storage_tokens(
        clock: Clock,
        events: EventLog,
        profile: Profile,
        storage_endpoint: &str,
        tokens: std::sync::Arc<cmksim_identity::TokenSource>,
    ) -> Result<IngestServer, ServerError> {
        let storage = GrpcStorage::connect_lazy_with_tokens(storage_endpoint, Some(tokens))?;
        Ok(IngestServer::with_backend(
            clock,
            events,
            profile,
            Arc::new(storage),
        ))
    }

    /// The server with `guard` in front of every call: a token of the right audience and
    /// tenant, and a role granting the call's action at the workspace it names — or, for a
    /// query, an approved, unexpired Customer Lockbox request of the caller for that workspace
    /// (asked of storage when the backend has Lockbox: [`StorageBackend::lockbox_gate`]).
    pub fn with_guard(mut self, guard: cmksim_identity::Guard) -> IngestServer {
        self.guard = Some(match self.lockbox.clone() {
            Some(gate) => guard.with_lockbox(gate),
            None => guard,
        });
        self
    }

    /// The front end (counters, direct calls).
    pub fn frontend(&self) -> Arc<Frontend> {
        self.frontend.clone()
    }

    /// Serves on the given connections until `shutdown` completes.
    pub async fn serve_with_incoming<I, IO, IE, F>(
        &self,
        incoming: I,
        shutdown: F,
    ) -> Result<(), ServerError>
    where
        I: Stream<Item = Result<IO, IE>>,
        IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
        IE: Into<Box<dyn std::error::Error + Send + Sync>>,
        F: Future<Output = ()>,
    {
        let (health, reflection) = cmksim_sim::net::health_and_reflection(
            &[
                pb::ingestion_server::SERVICE_NAME,
                pb::query_server::SERVICE_NAME,
            ],
            cmksim_proto::FILE_DESCRIPTOR_SET,
        )
        .await
        .map_err(|e| ServerError::Reflection(e.to_string()))?;
        let (events, shutdown) = cmksim_events::events_service(
            "ingest",
            &self.frontend.profile().name,
            self.events.clone(),
            self.clock.clone(),
            shutdown,
        );
        tonic::transport::Server::builder()
            .layer(cmksim_identity::GuardLayer::new(self.guard.clone()))
            .add_service(health)
            .add_service(reflection)
            .add_service(events)
            .add_service(pb::ingestion_server::IngestionServer::new(
                IngestionService::new(self.frontend.clone()),
            ))
            .add_service(pb::query_server::QueryServer::new(QueryService::new(
                self.frontend.clone(),
            )))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await?;
        Ok(())
    }

    /// Serves on `addr` (real TCP) until the process ends.
    pub async fn serve(&self, addr: SocketAddr) -> Result<(), ServerError> {
        let incoming = cmksim_sim::net::bind_tcp(addr).await?;
        self.serve_with_incoming(incoming, std::future::pending())
            .await
    }

    /// Serves the Prometheus `/metrics` endpoint on `listener` until `shutdown` completes.
    pub async fn serve_metrics<F>(
        &self,
        listener: TcpListener,
        shutdown: F,
    ) -> Result<(), ServerError>
    where
        F: Future<Output = ()>,
    {
        let frontend = self.frontend.clone();
        let render: http_metrics::Render = Arc::new(move || frontend.metrics_text());
        http_metrics::serve_metrics(listener, render, shutdown).await?;
        Ok(())
    }
}
