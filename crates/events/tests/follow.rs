//! The Events service and a follower over real gRPC on loopback: the follower takes only what
//! was recorded after the position it was given, keeps up with new events, and after the
//! service restarts (a new instance on the same port) takes the new process's log from its
//! start.

use std::time::Duration;

use cmksim_proto::events::v1 as pb;
use cmksim_sim::net::{ClientTimeouts, Network};
use cmksim_sim::{Clock, EventLog, SimTime};
use tokio::sync::{oneshot, watch};

fn record(log: &EventLog, kind: &str) {
    log.record_raw(
        SimTime(1_000),
        "storage/c1",
        kind,
        format!("{kind} happened"),
        serde_json::json!({ "cluster": "c1" }),
    );
}

/// Serves the Events service of `log` on `port` (0: any) until the returned sender fires.
async fn serve(log: EventLog, port: u16) -> (u16, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let clock = Clock::wall(SimTime::DEFAULT_EPOCH, Clock::wall_now_unix_ms(), 60.0);
    let (service, shutdown) =
        cmksim_events::events_service("storage", "azure-2020", log, clock, async {
            let _ = stop_rx.await;
        });
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(cmksim_sim::net::tcp_incoming(listener), shutdown)
            .await
            .unwrap();
    });
    (port, stop_tx)
}

async fn wait_for(into: &EventLog, n: usize) -> Vec<String> {
    for _ in 0..400 {
        let kinds: Vec<String> = into.snapshot().into_iter().map(|e| e.kind).collect();
        if kinds.len() >= n {
            return kinds;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the follower did not deliver {n} events: {:?}",
        into.snapshot()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_from_a_position_keeps_up_and_survives_a_restart() {
    let log = EventLog::default();
    record(&log, "test.before");
    let (port, stop) = serve(log.clone(), 0).await;
    let channel = Network::Tcp
        .channel(
            &format!("http://127.0.0.1:{port}"),
            ClientTimeouts::default(),
        )
        .unwrap();
    let info = pb::events_client::EventsClient::new(channel.clone())
        .get_clock(pb::GetClockRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((info.service.as_str(), info.last_seq), ("storage", 1));
    assert_eq!(info.profile, "azure-2020");
    assert_eq!(info.time_scale, 60.0);
    assert!(info.wall_epoch_unix_ms > 0);

    let into = EventLog::default();
    let (stop_following, stopped) = watch::channel(false);
    let follower = cmksim_events::follow(channel, &info, into.clone(), stopped);
    record(&log, "test.after");
    record(&log, "test.later");
    assert_eq!(wait_for(&into, 2).await, ["test.after", "test.later"]);
    assert!(follower.catch_up(100).await);
    let data = &into.snapshot()[0].data;
    assert_eq!(data["cluster"], "c1", "the data travels as it was recorded");

    // The process "restarts": a new log (seq from 1 again) behind the same port.
    let _ = stop.send(());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let restarted = EventLog::default();
    record(&restarted, "test.restarted");
    let (_, _stop_again) = serve(restarted.clone(), port).await;
    assert_eq!(
        wait_for(&into, 3).await,
        ["test.after", "test.later", "test.restarted"]
    );
    assert_eq!(follower.progress().restarts_seen, 1);
    let _ = stop_following.send(true);
}
