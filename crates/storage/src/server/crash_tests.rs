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

/// The workspace of the table-delete crash test, its region's shared storage, and its table.
const CRASH_WS: &str = "crashws";
const CRASH_REGION: &str = "westeurope";
const CRASH_TABLE: &str = "Heartbeat";
const CRASH_DIR_VAR: &str = "CMKSIM_TABLE_DELETE_CRASH_DIR";

fn crash_ws() -> crate::control::ResourceName {
    crate::control::ResourceName::new("sub1", "rg1", CRASH_WS)
}

fn delete_request() -> cmksim_proto::storage::v1::DeleteTableRequest {
    cmksim_proto::storage::v1::DeleteTableRequest {
        workspace: Some(cmksim_proto::storage::v1::WorkspaceRef {
            subscription_id: "sub1".into(),
            resource_group: "rg1".into(),
            workspace_name: CRASH_WS.into(),
        }),
        table: CRASH_TABLE.into(),
    }
}

/// The records of the crash test's table, and whether the table still has a retention of its
/// own (what the control plane forgets when the delete completes).
fn table_state(server: &StorageServer) -> (usize, bool) {
    let core = &server.core;
    let now = core.now();
    let control = core.control();
    let ws_id = control.get_workspace(&crash_ws()).unwrap().id.clone();
    let own_retention = !control
        .table_retention(&crash_ws(), CRASH_TABLE)
        .unwrap()
        .as_default;
    drop(control);
    let records = core
        .data
        .query(
            &super::core::shared_account(CRASH_REGION),
            None,
            &ws_id,
            CRASH_TABLE,
            SimTime(0),
            now.add(std::time::Duration::from_secs(60)),
            now,
        )
        .unwrap()
        .records
        .len();
    (records, own_retention)
}

/// A workspace in shared storage with 5 records in its table, which has a retention of its own.
async fn table_delete_template(dir: &std::path::Path) {
    let net = MemNet::new();
    let server = server(dir, &net);
    let core = &server.core;
    let now = core.now();
    let ws_id = {
        let mut control = core.control();
        let body = crate::control::WorkspaceCreate {
            location: Some(CRASH_REGION.into()),
            retention_days: None,
        };
        control.create_workspace(now, &crash_ws(), &body).unwrap();
        control
            .set_table_retention(&crash_ws(), CRASH_TABLE, Some(60))
            .unwrap();
        core.persist_control(control.state()).unwrap();
        control.get_workspace(&crash_ws()).unwrap().id.clone()
    };
    let account = super::core::shared_account(CRASH_REGION);
    if !core.data.account_exists(&account).unwrap() {
        core.data.create_account(&account, false, now).unwrap();
    }
    let records: Vec<crate::data::Record> = (0..5)
        .map(|i| {
            crate::data::Record::new(CRASH_TABLE, now.0 - 1_000 * i)
                .with("Computer", crate::data::Value::String(format!("vm-{i}")))
        })
        .collect();
    core.data
        .append(
            &account,
            crate::data::Sealing::Mmk,
            &ws_id,
            CRASH_TABLE,
            &records,
            now,
        )
        .unwrap();
    assert_eq!(table_state(&server), (5, true));
}

/// The child of the table-delete crash test: opens the directory it is given and deletes the
/// table, the process aborting at the first crash point (between the data and the control
/// plane). Ignored: only the crash test runs it, in a process of its own.
#[tokio::test(start_paused = true)]
#[ignore]
async fn table_delete_crash_child() {
    let Ok(dir) = std::env::var(CRASH_DIR_VAR) else {
        return;
    };
    let server = server(std::path::Path::new(&dir), &MemNet::new());
    crate::data::lifecycle::CRASH_STEPS.with(|c| c.set((0, 1)));
    let deleted = super::lifecycle::delete_table(&server.core, delete_request());
    // Not reached: the crash point aborts the process first.
    panic!("the table delete was to abort the process, and answered {deleted:?}");
}

/// A table delete that crashes between its two halves: the records are already gone (the data
/// goes first) and the table is still declared with its retention; the delete asked again
/// finishes the job. Never the control plane's "deleted" with the records still readable.
#[tokio::test(start_paused = true)]
async fn a_table_delete_cut_short_by_a_crash_leaves_no_records_behind() {
    let template = tempfile::tempdir().unwrap();
    table_delete_template(template.path()).await;
    // A whole delete in this process passes one crash point, the one between the halves.
    let counting = tempfile::tempdir().unwrap();
    crate::data::lifecycle_tests::copy_dir(template.path(), counting.path());
    {
        let server = server(counting.path(), &MemNet::new());
        crate::data::lifecycle::CRASH_STEPS.with(|c| c.set((0, 0)));
        let deleted = super::lifecycle::delete_table(&server.core, delete_request()).unwrap();
        assert_eq!((deleted.records, deleted.blocks), (5, 1));
        assert_eq!(crate::data::lifecycle::CRASH_STEPS.with(|c| c.get().0), 1);
        assert_eq!(table_state(&server), (0, false));
    }
    let work = tempfile::tempdir().unwrap();
    crate::data::lifecycle_tests::copy_dir(template.path(), work.path());
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "server::crash_tests::table_delete_crash_child",
            "--ignored",
            "--test-threads=1",
        ])
        .env(CRASH_DIR_VAR, work.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child was to abort");
    let server = server(work.path(), &MemNet::new());
    assert_eq!(
        table_state(&server),
        (0, true),
        "the records are gone and the table is still declared"
    );
    let again = super::lifecycle::delete_table(&server.core, delete_request()).unwrap();
    assert_eq!((again.records, again.blocks), (0, 0));
    assert_eq!(table_state(&server), (0, false), "the retry forgets it");
}
