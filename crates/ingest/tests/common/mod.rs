//! Shared test harness: the ingest server over real gRPC on 127.0.0.1:0, backed by the in-memory
//! storage, with clients and helpers to build requests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use cmksim_ingest::backend::memory::MemoryStorage;
use cmksim_ingest::outcome::KeyProtection;
use cmksim_ingest::IngestServer;
use cmksim_proto::common::v1::SimTime as PbTime;
use cmksim_proto::ingest::v1 as pb;
use cmksim_sim::{Clock, EventLog, Profile, SimTime};
use tokio::net::TcpListener;
use tonic::transport::Channel;

pub const EPOCH: SimTime = SimTime::DEFAULT_EPOCH;

pub struct Harness {
    pub server: IngestServer,
    pub storage: Arc<MemoryStorage>,
    pub clock: Clock,
    pub events: EventLog,
    pub channel: Channel,
    pub addr: std::net::SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Harness {
    /// A server at `time_scale` with workspaces ws1, ws2 and cluster c1 (CMK kid/version).
    pub async fn start(profile: Profile, time_scale: f64) -> Harness {
        let clock = Clock::tokio(EPOCH, time_scale);
        let events = EventLog::default();
        let storage = Arc::new(MemoryStorage::new(
            clock.clone(),
            profile.data.hot_tier_window,
            profile.key_access.buffer_window,
        ));
        storage.add_workspace("ws1");
        storage.add_workspace("ws2");
        storage.add_cluster("c1", cmk());
        let server =
            IngestServer::with_backend(clock.clone(), events.clone(), profile, storage.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serving = server.clone();
        tokio::spawn(async move {
            let incoming = cmksim_sim::net::tcp_incoming(listener);
            serving
                .serve_with_incoming(incoming, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .timeout(Duration::from_secs(10))
            .connect_lazy();
        Harness {
            server,
            storage,
            clock,
            events,
            channel,
            addr,
            shutdown: Some(tx),
        }
    }

    pub fn ingestion(&self) -> pb::ingestion_client::IngestionClient<Channel> {
        pb::ingestion_client::IngestionClient::new(self.channel.clone())
    }

    pub fn query_client(&self) -> pb::query_client::QueryClient<Channel> {
        pb::query_client::QueryClient::new(self.channel.clone())
    }

    /// The KQL query `text` over all of ws1's time, on a channel of its own with `timeout` (a
    /// query over many rows in a debug build outlasts the harness channel's).
    pub async fn kql(
        &self,
        text: &str,
        timeout: Duration,
    ) -> Result<pb::KqlResponse, tonic::Status> {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .expect("the harness address")
            .timeout(timeout)
            .connect_lazy();
        pb::query_client::QueryClient::new(channel)
            .kql(pb::KqlRequest {
                workspace_id: "ws1".into(),
                query: text.into(),
                from: None,
                to: None,
            })
            .await
            .map(|r| r.into_inner())
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn cmk() -> KeyProtection {
    KeyProtection::Cmk {
        kid: "https://kv1.vault.azure.net/keys/cmk".into(),
        version: "0123456789abcdef0123456789abcdef".into(),
    }
}

pub fn t(ms_after_epoch: i64) -> PbTime {
    PbTime {
        unix_ms: EPOCH.0 + ms_after_epoch,
    }
}

pub fn s(text: &str) -> Option<pb::Value> {
    Some(pb::Value {
        kind: Some(pb::value::Kind::StringValue(text.into())),
    })
}

pub fn real(v: f64) -> Option<pb::Value> {
    Some(pb::Value {
        kind: Some(pb::value::Kind::RealValue(v)),
    })
}

pub fn long(v: i64) -> Option<pb::Value> {
    Some(pb::Value {
        kind: Some(pb::value::Kind::LongValue(v)),
    })
}

pub fn col(name: &str, value: Option<pb::Value>) -> pb::Column {
    pb::Column {
        name: name.into(),
        value,
    }
}

/// A Perf record at `ms` after the epoch from `computer` with `value`.
pub fn perf(ms: i64, computer: &str, value: f64) -> pb::Record {
    pb::Record {
        time_generated: Some(t(ms)),
        columns: vec![
            col("Computer", s(computer)),
            col("CounterName", s("% Processor Time")),
            col("CounterValue", real(value)),
        ],
    }
}

pub fn batch(workspace: &str, table: &str, records: Vec<pb::Record>) -> pb::IngestRequest {
    pb::IngestRequest {
        workspace_id: workspace.into(),
        table: table.into(),
        records,
        declare_columns: vec![],
    }
}

/// A query of `[0, to_ms)` after the epoch, ascending, default limit.
pub fn query(workspace: &str, table: &str, to_ms: i64) -> pb::QueryRequest {
    pb::QueryRequest {
        workspace_id: workspace.into(),
        table: table.into(),
        from: Some(t(-86_400_000)),
        to: Some(t(to_ms)),
        filters: vec![],
        count_only: false,
        limit: 0,
        order: pb::Order::Asc as i32,
    }
}

pub fn storage_kind(storage: &Option<pb::Storage>) -> String {
    match storage {
        Some(s) if s.kind == pb::StorageKind::Cluster as i32 => format!("cluster/{}", s.cluster),
        Some(s) if s.kind == pb::StorageKind::Shared as i32 => "shared".into(),
        _ => "none".into(),
    }
}
