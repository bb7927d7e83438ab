//! Following a service's event log into a local one.
//!
//! A [`Follower`] asks the service for its clock, subscribes from the last seq it has, and
//! records every event it receives into the local [`EventLog`] (which numbers them afresh).
//! When the stream ends — the service restarted, the follower fell behind, the connection
//! broke — it waits a moment and subscribes again: from the same seq if the process is the same
//! instance, from 0 if it is a new one (every event of a restarted process belongs to the run).
//! The first subscription starts where the caller says: after the events the service had when
//! the run asked for its clock.
//!
//! Retries are bounded in rate (a back-off from 50 ms to 1 s) and in time: the follower stops
//! when its stop signal is set, which the run sets when it ends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cmksim_proto::events::v1 as pb;
use cmksim_sim::{EventLog, SimTime};
use tokio::sync::watch;
use tonic::transport::Channel;

const RETRY_DELAY_MIN: Duration = Duration::from_millis(50);
const RETRY_DELAY_MAX: Duration = Duration::from_secs(1);

/// Where a follower is: the instance it reads and the last seq of it recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FollowerProgress {
    pub instance: Option<String>,
    pub after_seq: u64,
    /// How many times the service was seen to have restarted.
    pub restarts_seen: u32,
}

/// A handle on a running follower.
#[derive(Clone)]
pub struct Follower {
    progress: Arc<Mutex<FollowerProgress>>,
    client: pb::events_client::EventsClient<Channel>,
}

impl Follower {
    pub fn progress(&self) -> FollowerProgress {
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until the follower has recorded every event the service has recorded so far (by
    /// the service's own count, asked now), polling every 20 ms at most `polls_max` times.
    /// Returns whether it caught up.
    pub async fn catch_up(&self, polls_max: u32) -> bool {
        let mut client = self.client.clone();
        let Ok(info) = client.get_clock(pb::GetClockRequest {}).await else {
            return false;
        };
        let info = info.into_inner();
        for _ in 0..polls_max {
            let progress = self.progress();
            if progress.instance.as_deref() == Some(info.instance.as_str())
                && progress.after_seq >= info.last_seq
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

/// Starts following the service behind `channel` into `into`, until `stop` is set, from the
/// position `from` reports (its instance and last seq): the events recorded after it.
pub fn follow(
    channel: Channel,
    from: &pb::ClockInfo,
    into: EventLog,
    stop: watch::Receiver<bool>,
) -> Follower {
    let follower = Follower {
        progress: Arc::new(Mutex::new(FollowerProgress {
            instance: Some(from.instance.clone()),
            after_seq: from.last_seq,
            restarts_seen: 0,
        })),
        client: pb::events_client::EventsClient::new(channel),
    };
    let task = follower.clone();
    tokio::spawn(async move {
        let mut stop = stop;
        tokio::select! {
            _ = task.run(&into) => {}
            _ = stop.wait_for(|stopped| *stopped) => {}
        }
    });
    follower
}

impl Follower {
    async fn run(&self, into: &EventLog) {
        let mut client = self.client.clone();
        let mut delay = RETRY_DELAY_MIN;
        loop {
            if self.follow_once(&mut client, into).await {
                delay = RETRY_DELAY_MIN;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RETRY_DELAY_MAX);
        }
    }

    /// One subscription, until its stream ends. Returns whether it got as far as subscribing.
    async fn follow_once(
        &self,
        client: &mut pb::events_client::EventsClient<Channel>,
        into: &EventLog,
    ) -> bool {
        let Ok(info) = client.get_clock(pb::GetClockRequest {}).await else {
            return false;
        };
        let info = info.into_inner();
        let after_seq = {
            let mut progress = self.progress.lock().unwrap_or_else(|p| p.into_inner());
            match &progress.instance {
                Some(instance) if *instance == info.instance => {}
                Some(_) => {
                    progress.restarts_seen += 1;
                    progress.after_seq = 0;
                }
                None => progress.after_seq = info.last_seq,
            }
            progress.instance = Some(info.instance.clone());
            progress.after_seq
        };
        let Ok(response) = client.subscribe(pb::SubscribeRequest { after_seq }).await else {
            return false;
        };
        let mut stream = response.into_inner();
        while let Ok(Some(event)) = stream.message().await {
            let data = serde_json::from_str(&event.data_json).unwrap_or(serde_json::Value::Null);
            into.record_raw(
                SimTime(event.at_ms),
                &event.source,
                &event.kind,
                event.message,
                data,
            );
            let mut progress = self.progress.lock().unwrap_or_else(|p| p.into_inner());
            if progress.instance.as_deref() == Some(info.instance.as_str()) {
                progress.after_seq = event.seq;
            }
        }
        true
    }
}
