//! A crash is not a shutdown: a storage server future dropped mid-way (the event-driven
//! engine aborts a crashed host's task) aborts its background tasks and saves nothing, where
//! the graceful stop saves the stats and flushes.

use std::sync::Arc;

use cmksim_sim::net::{ClientTimeouts, MemNet, Network};
use cmksim_sim::{Clock, EventLog, Profile, SeedTree, SimTime};

use super::persist::{Counters, Meta};
use super::{StorageConfig, StorageServer};

/// Scheduler turns given to a started or aborted server (in no simulated time).
const TURNS: usize = 64;

fn server(dir: &std::path::Path, net: &MemNet) -> StorageServer {
    StorageServer::open(StorageConfig {
        data_dir: dir.to_path_buf(),
        clock: Clock::tokio(SimTime::DEFAULT_EPOCH, 1.0),
        seeds: SeedTree::new(1),
        events: EventLog::default(),
        profile: Profile::azure_2020(),
        network: Network::Memory(net.host("storage")),
        keyvault_uri: "http://keyvault:1".into(),
        identity_uri: "http://keyvault:1".into(),
        os_key_material: false,
        client_timeouts: ClientTimeouts::default(),
        principal: Default::default(),
    })
    .unwrap()
}

async fn turns() {
    for _ in 0..TURNS {
        tokio::task::yield_now().await;
    }
}

/// The stats on disk after counting one batch, then stopping the server `gracefully` or by
/// aborting its task (a crash), and how many holders of the server's core are left besides
/// the test (its background tasks hold it while they run).
async fn stats_after(gracefully: bool) -> (u64, usize) {
    let dir = tempfile::tempdir().unwrap();
    let net = MemNet::new();
    let server = server(dir.path(), &net);
    let core = server.core.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve_with_incoming(net.listen("storage", 1), async {
        let _ = stopped.await;
    }));
    turns().await;
    assert!(core.background_running(), "the control tick runs");
    core.stats.update(|book| {
        book.entry("shared".into())
            .or_default()
            .entry("ws".into())
            .or_insert_with(Counters::default)
            .accepted += 5;
    });
    if gracefully {
        stop.send(()).unwrap();
        let served = task.await.unwrap();
        assert!(served.is_ok(), "{served:?}");
    } else {
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        drop(stop);
    }
    turns().await;
    let holders = Arc::strong_count(&core) - 1;
    drop(core);
    turns().await;
    let meta = Meta::open(&dir.path().join("control.sled")).unwrap();
    let accepted = meta
        .stats()
        .unwrap()
        .get("shared")
        .and_then(|ws| ws.get("ws"))
        .map_or(0, |c| c.accepted);
    (accepted, holders)
}

#[tokio::test(start_paused = true)]
async fn a_graceful_stop_saves_the_stats() {
    assert_eq!(stats_after(true).await, (5, 0));
}

#[tokio::test(start_paused = true)]
async fn a_crash_aborts_the_background_and_saves_nothing() {
    assert_eq!(stats_after(false).await, (0, 0));
}
