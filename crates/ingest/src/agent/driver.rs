//! The async driver of one agent: collects on schedule, sends through the Ingestion service, and
//! records every event, all on the simulation [`Clock`].
//!
//! The driver owns no logic of its own: [`RecordSource`] decides what is collected,
//! [`AgentMachine`] decides when to send, what to retry, queue and drop. The driver only sleeps
//! until the earlier of the two wake-up times, performs the I/O, and classifies gRPC failures:
//! UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED (tonic's timeout), ABORTED and UNKNOWN (a broken
//! connection) mean "the service cannot take data" and are retried; any other status is the
//! service refusing the batch, which retrying cannot fix. Sending goes through [`BatchSender`] so
//! the same driver runs over the real gRPC client or, in unit tests, over a scripted sender.

use std::collections::BTreeMap;

use cmksim_proto::ingest::v1 as pb;
use cmksim_sim::{Clock, EventLog, SimTime};
use tonic::transport::Channel;

use super::machine::{AgentBatch, AgentMachine, BatchResult};
use super::source::RecordSource;
use crate::grpc::convert;
use crate::BoxFuture;

/// Why a send failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The service could not take data: retry later.
    #[error("service unavailable: {0}")]
    Transient(String),
    /// The service refused the batch.
    #[error("refused: {0}")]
    Rejected(String),
}

/// Per-record outcome counts of a delivered batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    pub stored: u64,
    pub buffered: u64,
    pub dropped: BTreeMap<String, u64>,
}

/// Something that can send an agent's batch to the front end.
pub trait BatchSender: Send {
    fn send<'a>(
        &'a mut self,
        workspace: &'a str,
        batch: &'a AgentBatch,
    ) -> BoxFuture<'a, Result<Delivery, SendError>>;
}

impl BatchSender for pb::ingestion_client::IngestionClient<Channel> {
    fn send<'a>(
        &'a mut self,
        workspace: &'a str,
        batch: &'a AgentBatch,
    ) -> BoxFuture<'a, Result<Delivery, SendError>> {
        Box::pin(async move { answer_of(self.ingest(ingest_request(workspace, batch)).await) })
    }
}

/// The same over a channel that attaches the sender's token (the simulated world's agents).
impl BatchSender for pb::ingestion_client::IngestionClient<cmksim_identity::AuthChannel> {
    fn send<'a>(
        &'a mut self,
        workspace: &'a str,
        batch: &'a AgentBatch,
    ) -> BoxFuture<'a, Result<Delivery, SendError>> {
        Box::pin(async move { answer_of(self.ingest(ingest_request(workspace, batch)).await) })
    }
}

fn ingest_request(workspace: &str, batch: &AgentBatch) -> pb::IngestRequest {
    pb::IngestRequest {
        workspace_id: workspace.to_string(),
        table: batch.table.clone(),
        records: batch.records.iter().map(convert::record_to_pb).collect(),
        declare_columns: Vec::new(),
    }
}

fn answer_of(
    answer: Result<tonic::Response<pb::IngestResponse>, tonic::Status>,
) -> Result<Delivery, SendError> {
    match answer {
        Ok(response) => Ok(delivery_of(&response.into_inner())),
        Err(status) => Err(classify(&status)),
    }
}

fn delivery_of(response: &pb::IngestResponse) -> Delivery {
    Delivery {
        stored: response.stored,
        buffered: response.buffered,
        dropped: response.dropped_by_reason(),
    }
}

/// Transient (retry) or refusal, from a gRPC status (see the module doc).
pub fn classify(status: &tonic::Status) -> SendError {
    use tonic::Code::*;
    let text = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        Unavailable | DeadlineExceeded | Cancelled | Aborted | Unknown => {
            SendError::Transient(text)
        }
        _ => SendError::Rejected(text),
    }
}

/// One agent: its source, its state machine and its sender.
pub struct AgentDriver<S: BatchSender> {
    source: RecordSource,
    machine: AgentMachine,
    sender: S,
    clock: Clock,
    events: EventLog,
    event_source: String,
}

/// A bound on loop iterations per [`AgentDriver::run_until`] call without simulated time moving
/// forward (each such iteration sends at least one record, so this is never reached in practice).
pub const STALLED_ITERATIONS_MAX: u32 = 100_000;

impl<S: BatchSender> AgentDriver<S> {
    /// A driver over a source and a machine (built from the same config and profile).
    pub fn new(
        source: RecordSource,
        machine: AgentMachine,
        sender: S,
        clock: Clock,
        events: EventLog,
    ) -> AgentDriver<S> {
        let event_source = format!("agent/{}", source.config().name);
        AgentDriver {
            source,
            machine,
            sender,
            clock,
            events,
            event_source,
        }
    }

    /// The state machine (phase, stats, held records).
    pub fn machine(&self) -> &AgentMachine {
        &self.machine
    }

    /// Runs one step at the clock's current time: collect what is due, send if due.
    pub async fn step(&mut self) {
        let now = self.clock.now();
        let due = self.source.due(now);
        for event in self.machine.collect(now, due) {
            self.events.record(now, &self.event_source, &event);
        }
        let Some(attempt) = self.machine.begin_attempt(now) else {
            return;
        };
        let workspace = self.source.config().workspace.clone();
        let mut results = Vec::with_capacity(attempt.batches.len());
        let mut failed = false;
        for batch in &attempt.batches {
            if failed {
                results.push(BatchResult::NotSent);
                continue;
            }
            let result = match self.sender.send(&workspace, batch).await {
                Ok(d) => BatchResult::Delivered {
                    stored: d.stored,
                    buffered: d.buffered,
                    dropped: d.dropped,
                },
                Err(SendError::Transient(reason)) => {
                    failed = true;
                    BatchResult::Failed { reason }
                }
                Err(SendError::Rejected(reason)) => BatchResult::Rejected { reason },
            };
            results.push(result);
        }
        let now = self.clock.now();
        for event in self.machine.finish_attempt(now, results) {
            self.events.record(now, &self.event_source, &event);
        }
    }

    /// Runs until the simulated time `until` (exclusive).
    pub async fn run_until(&mut self, until: SimTime) {
        let mut stalled = 0u32;
        loop {
            let now = self.clock.now();
            if now >= until {
                return;
            }
            self.step().await;
            let mut wake = self.source.next_due().min(until);
            if let Some(send_at) = self.machine.next_wake() {
                wake = wake.min(send_at);
            }
            if wake <= self.clock.now() {
                stalled += 1;
                if stalled >= STALLED_ITERATIONS_MAX {
                    tracing::warn!(agent = %self.event_source, "agent driver stalled; stopping");
                    return;
                }
                continue;
            }
            stalled = 0;
            self.clock.sleep_until(wake).await;
        }
    }
}
