//! Live mode as separate OS processes on loopback: the crash-safety promise.
//!
//! Key Vault, storage and ingest run as three `cmksim serve …` processes (the binary cargo
//! built), at time scale 600, on one shared `--epoch`. The test builds a small world over gRPC
//! (tenant, principal and tokens from the identity authority in the Key Vault process; a vault
//! with soft delete and purge protection; an RSA key; a cluster provisioned in 2 simulated
//! minutes via `--profile-override`; the cluster identity's access policy; the key update; a
//! workspace linked to the cluster), then ingests batches through the ingest process while it
//! kills the storage process: every record the ingest answer called *stored* before the kill
//! must be returned by a query after the restart on the same data directory.
//!
//! Kill points (how many stored batches after each restart) come from a seed: set
//! `CMKSIM_CRASH_SEED` to replay a failure; the seed in use is printed. Every wait is a bounded
//! poll; nothing asserts on how long anything took.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cmksim_proto::common::v1 as cp;
use cmksim_proto::ingest::v1 as ip;
use tonic::transport::Channel;

mod common;
use common::world::{build_world, poll, sim_now_ms, WorldNames, SIM_EPOCH_MS};
use common::{seed, seeded_points, Cluster3};

const NAMES: WorldNames = WorldNames {
    sub: "00000000-0000-0000-0000-0000000000c1",
    rg: "live",
    region: "westeurope",
    vault: "livevault",
    key: "cmk",
    cluster: "livecluster",
    workspace: "liveworkspace",
};
/// Fast control-plane operations, so that setup takes well under a second of real time.
const PROFILE_OVERRIDES: [&str; 4] = [
    "cluster.provisioning_duration=2m",
    "cluster.key_update_duration=1m",
    "cluster.link_duration=2m",
    "cluster.unlink_duration=2m",
];
const RECORDS_PER_BATCH: usize = 20;

fn profile_args() -> Vec<String> {
    PROFILE_OVERRIDES
        .iter()
        .flat_map(|o| ["--profile-override".to_string(), o.to_string()])
        .collect()
}

// ---- the world over gRPC ----------------------------------------------------------------

fn channel(url: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .connect_lazy()
}

fn workspace_id() -> String {
    NAMES.workspace_id()
}

// ---- traffic ------------------------------------------------------------------------------

/// What the ingest loop saw acknowledged.
#[derive(Default)]
struct Acked {
    stored: BTreeSet<u64>,
    buffered: BTreeSet<u64>,
    other_outcomes: u64,
    failed_calls: u64,
}

fn string_value(s: String) -> Option<ip::Value> {
    Some(ip::Value {
        kind: Some(ip::value::Kind::StringValue(s)),
    })
}

fn batch(first: u64, epoch_ms: i64) -> ip::IngestRequest {
    // A little in the past, so that clock rounding never puts a record in the future.
    let at = sim_now_ms(epoch_ms) - 60_000;
    ip::IngestRequest {
        workspace_id: workspace_id(),
        table: "Heartbeat".into(),
        records: (first..first + RECORDS_PER_BATCH as u64)
            .map(|seq| ip::Record {
                time_generated: Some(cp::SimTime { unix_ms: at }),
                columns: vec![
                    ip::Column {
                        name: "Computer".into(),
                        value: string_value(format!("rec-{seq}")),
                    },
                    ip::Column {
                        name: "Category".into(),
                        value: string_value("Direct Agent".into()),
                    },
                ],
            })
            .collect(),
        declare_columns: Vec::new(),
    }
}

/// Sends batches through the ingest process until `stop`, recording every outcome; counts the
/// batches with at least one stored record in `stored_batches`. Returns how many records were
/// sent (numbered 0..n).
async fn ingest_loop(
    ingest_url: String,
    epoch_ms: i64,
    acked: Arc<Mutex<Acked>>,
    stored_batches: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> u64 {
    let mut client = ip::ingestion_client::IngestionClient::new(channel(&ingest_url));
    let mut next = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let first = next;
        next += RECORDS_PER_BATCH as u64;
        match client.ingest(batch(first, epoch_ms)).await {
            Ok(response) => {
                let response = response.into_inner();
                assert_eq!(response.outcomes.len(), RECORDS_PER_BATCH);
                let mut a = acked.lock().unwrap();
                let mut any_stored = false;
                for (i, outcome) in response.outcomes.iter().enumerate() {
                    let seq = first + i as u64;
                    match outcome.outcome {
                        Some(ip::record_outcome::Outcome::Stored(_)) => {
                            a.stored.insert(seq);
                            any_stored = true;
                        }
                        Some(ip::record_outcome::Outcome::Buffered(_)) => {
                            a.buffered.insert(seq);
                        }
                        _ => a.other_outcomes += 1,
                    }
                }
                drop(a);
                if any_stored {
                    stored_batches.fetch_add(1, Ordering::SeqCst);
                }
            }
            Err(_) => {
                acked.lock().unwrap().failed_calls += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    next
}

/// Every `rec-N` the ingest process returns for the workspace (one query, or None if refused).
async fn query_all(ingest_url: &str, epoch_ms: i64) -> Option<BTreeSet<u64>> {
    let mut query = ip::query_client::QueryClient::new(channel(ingest_url));
    let response = query
        .query(ip::QueryRequest {
            workspace_id: workspace_id(),
            table: "Heartbeat".into(),
            from: Some(cp::SimTime {
                unix_ms: SIM_EPOCH_MS - 86_400_000,
            }),
            to: Some(cp::SimTime {
                unix_ms: sim_now_ms(epoch_ms) + 86_400_000,
            }),
            filters: Vec::new(),
            count_only: false,
            limit: 10_000,
            order: 0,
        })
        .await
        .ok()?
        .into_inner();
    assert!(!response.truncated, "the test keeps under the query limit");
    Some(
        response
            .rows
            .iter()
            .filter_map(|row| {
                let record = row.record.as_ref()?;
                record.columns.iter().find_map(|c| match &c.value {
                    Some(ip::Value {
                        kind: Some(ip::value::Kind::StringValue(s)),
                    }) if c.name == "Computer" => s.strip_prefix("rec-")?.parse().ok(),
                    _ => None,
                })
            })
            .collect(),
    )
}

/// Waits (bounded) until `n` more batches were stored.
async fn wait_stored_batches(counter: &AtomicU64, n: u64, what: &str) {
    let target = counter.load(Ordering::SeqCst) + n;
    poll(what, || async {
        (counter.load(Ordering::SeqCst) >= target).then_some(())
    })
    .await;
}

enum Stop {
    Kill9,
    Term,
}

/// Starts the three processes, builds the world, and crashes or stops storage at the given
/// points while ingest runs; returns what was acknowledged and what a query returns at the end.
async fn run_with_storage_stops(stops: &[(u64, Stop)]) {
    let mut services = tokio::task::block_in_place(|| Cluster3::start(profile_args()));
    let epoch_ms: i64 = services.common[3].parse().unwrap();
    build_world(
        &NAMES,
        channel(&services.url("keyvault")),
        channel(&services.url("storage")),
    )
    .await;

    let acked = Arc::new(Mutex::new(Acked::default()));
    let stored_batches = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = tokio::spawn(ingest_loop(
        services.url("ingest"),
        epoch_ms,
        acked.clone(),
        stored_batches.clone(),
        stop.clone(),
    ));
    for (round, (after, how)) in stops.iter().enumerate() {
        wait_stored_batches(&stored_batches, *after, "stored batches before the stop").await;
        let storage = services.storage.take().unwrap();
        let port = storage.port("storage");
        // Blocking process calls run off the async workers, so the ingest loop keeps going.
        tokio::task::block_in_place(|| match how {
            Stop::Kill9 => storage.kill9(),
            Stop::Term => storage.terminate(),
        });
        let (acked_before, failed_before) = {
            let a = acked.lock().unwrap();
            (a.stored.clone(), a.failed_calls)
        };
        // Ingest goes on against the stopped storage (and fails) before it comes back.
        poll("an ingest call during the outage", || async {
            (acked.lock().unwrap().failed_calls > failed_before).then_some(())
        })
        .await;
        tokio::task::block_in_place(|| services.restart_storage(port));
        // Traffic is stored again once the restarted storage has its key back.
        wait_stored_batches(&stored_batches, 1, "stored batches after the restart").await;
        // Nothing acknowledged before the stop is missing now.
        let ingest_url = services.url("ingest");
        let missing = poll("query after the restart", || async {
            let found = query_all(&ingest_url, epoch_ms).await?;
            let missing: Vec<u64> = acked_before.difference(&found).copied().collect();
            Some(missing)
        })
        .await;
        assert!(
            missing.is_empty(),
            "round {round}: {} records acknowledged as stored before the stop are gone after the restart (first: {:?})",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
    }
    stop.store(true, Ordering::SeqCst);
    let sent = traffic.await.expect("ingest loop");

    let (stored, buffered, other_outcomes, failed_calls) = {
        let a = acked.lock().unwrap();
        (
            a.stored.clone(),
            a.buffered.len(),
            a.other_outcomes,
            a.failed_calls,
        )
    };
    let ingest_url = services.url("ingest");
    let found = poll("final query", || async {
        let found = query_all(&ingest_url, epoch_ms).await?;
        stored.is_subset(&found).then_some(found)
    })
    .await;
    assert!(stored.len() >= stops.len() * RECORDS_PER_BATCH);
    // Nothing appears that was never sent (records of a call that failed may or may not be).
    assert!(
        found.iter().all(|seq| *seq < sent),
        "a record that was never sent"
    );
    eprintln!(
        "sent {sent}, acknowledged stored {}, buffered {buffered}, other outcomes {other_outcomes}, \
         failed calls {failed_calls}; query returned {}",
        stored.len(),
        found.len()
    );

    // At the end, all three stop cleanly on SIGTERM.
    for service in [
        services.ingest.take(),
        services.storage.take(),
        services.keyvault.take(),
    ]
    .into_iter()
    .flatten()
    {
        service.terminate();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_storage_mid_ingest_loses_no_acknowledged_record() {
    let seed = seed();
    // Stored batches to wait for after each (re)start.
    let points = seeded_points(seed, 3, 2, 17);
    eprintln!("CMKSIM_CRASH_SEED={seed}: kill -9 after {points:?} stored batches");
    let stops: Vec<(u64, Stop)> = points.into_iter().map(|n| (n, Stop::Kill9)).collect();
    run_with_storage_stops(&stops).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_of_storage_during_ingest_loses_nothing() {
    run_with_storage_stops(&[(5, Stop::Term)]).await;
}
