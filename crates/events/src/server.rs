//! The `events.v1.Events` service: a server's clock and its event log as a stream.
//!
//! Each subscription is a task that copies the log's backlog and then its live events into a
//! bounded response channel. The task ends when the reader goes away, when the log cuts the
//! reader off for falling behind, or when the server shuts down: an endless stream would
//! otherwise hold tonic's graceful shutdown open until its grace period ran out. That is why
//! [`events_service`] takes the server's shutdown future and hands back one to give tonic.

use std::future::Future;
use std::pin::Pin;

use cmksim_proto::events::v1 as pb;
use cmksim_sim::{Clock, Event, EventLog};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Events a subscriber may have unread in the log before it is cut off.
const SUBSCRIBER_BUFFER_EVENTS: usize = 16_384;
/// Events queued towards one response stream (back-pressure on the copying task).
const RESPONSE_BUFFER_EVENTS: usize = 1_024;

/// The Events service of one server.
#[derive(Clone)]
pub struct EventsService {
    service: String,
    profile: String,
    instance: String,
    events: EventLog,
    clock: Clock,
    stop: watch::Receiver<bool>,
}

/// The Events service for a server named `service` (`keyvault`, `storage`, `ingest`) running the
/// behaviour profile named `profile` ("" for none), and the
/// shutdown future to give tonic in place of `shutdown`: it ends every event stream, then
/// resolves.
///
/// Each call names a new instance of the service (see [`instance_name`]): call it once per
/// start of the server.
pub fn events_service(
    service: &str,
    profile: &str,
    events: EventLog,
    clock: Clock,
    shutdown: impl Future<Output = ()>,
) -> (
    pb::events_server::EventsServer<EventsService>,
    impl Future<Output = ()>,
) {
    let instance = instance_name(&clock);
    let (stop_tx, stop) = watch::channel(false);
    let service = EventsService {
        service: service.to_string(),
        profile: profile.to_string(),
        instance,
        events,
        clock,
        stop,
    };
    let shutdown = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    (pb::events_server::EventsServer::new(service), shutdown)
}

/// A name for this start of a server, different after a restart. A live server (wall clock)
/// is named by its pid and wall-clock start time; a simulated one by its simulated start time,
/// so that a simulation never reads the system clock. The name is never part of an event.
pub fn instance_name(clock: &Clock) -> String {
    match clock.wall_origin_unix_ms() {
        Some(_) => format!("{}-{}", std::process::id(), Clock::wall_now_unix_ms()),
        None => format!("sim-{}", clock.now().unix_ms()),
    }
}

/// An event as it travels.
pub fn to_wire(event: &Event) -> pb::Event {
    pb::Event {
        seq: event.seq,
        at_ms: event.at_ms,
        source: event.source.clone(),
        kind: event.kind.clone(),
        message: event.message.clone(),
        data_json: event.data.to_string(),
    }
}

type EventStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::Event, Status>> + Send>>;

#[tonic::async_trait]
impl pb::events_server::Events for EventsService {
    async fn get_clock(
        &self,
        _request: Request<pb::GetClockRequest>,
    ) -> Result<Response<pb::ClockInfo>, Status> {
        Ok(Response::new(pb::ClockInfo {
            service: self.service.clone(),
            instance: self.instance.clone(),
            sim_now_unix_ms: self.clock.now().unix_ms(),
            sim_epoch_unix_ms: self.clock.epoch().unix_ms(),
            wall_epoch_unix_ms: self.clock.wall_origin_unix_ms().unwrap_or(0),
            time_scale: self.clock.time_scale(),
            last_seq: self.events.recorded_events(),
            profile: self.profile.clone(),
        }))
    }

    type SubscribeStream = EventStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let after_seq = request.into_inner().after_seq;
        let (backlog, mut live) = self.events.subscribe(after_seq, SUBSCRIBER_BUFFER_EVENTS);
        let (tx, rx) = mpsc::channel(RESPONSE_BUFFER_EVENTS);
        let mut stop = self.stop.clone();
        tokio::spawn(async move {
            let copy = async {
                for event in &backlog {
                    if tx.send(Ok(to_wire(event))).await.is_err() {
                        return;
                    }
                }
                while let Some(event) = live.recv().await {
                    if tx.send(Ok(to_wire(&event))).await.is_err() {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = copy => {}
                _ = stop.wait_for(|stopped| *stopped) => {}
                _ = tx.closed() => {}
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
