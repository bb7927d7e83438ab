//! A simulated agent over real gRPC (seed 003): it retries every 8 minutes for 2 hours while the
//! service cannot take data, then queues; when the queue is full it drops Perf first; when the
//! service returns it delivers everything it kept. Time runs 600× (ten simulated minutes per second).

mod common;

use cmksim_ingest::agent::{AgentConfig, AgentDriver, AgentMachine, AgentPolicy, RecordSource};
use cmksim_sim::{Profile, SeedTree, SimTime};
use common::*;

const MIN_MS: i64 = 60_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_retries_queues_drops_perf_first_and_delivers_after_the_outage() {
    let mut profile = Profile::azure_2020();
    profile.agent.queue_capacity_records = 300;
    // 600x: the ±2 simulated minutes of tolerance below are 200 ms of real scheduling jitter.
    let h = Harness::start(profile.clone(), 600.0).await;
    let start = h.clock.now();

    let mut config = AgentConfig::windows("a1", "ws1");
    config.events_per_hour = 30;
    let policy = AgentPolicy::from_profile(
        &profile.agent,
        config.send_interval,
        config.batch_records_max,
    );
    let source = RecordSource::new(config.clone(), SeedTree::new(3).source("agent/a1"), start);
    let machine = AgentMachine::new("a1", "ws1", policy, start);
    let mut driver = AgentDriver::new(
        source,
        machine,
        h.ingestion(),
        h.clock.clone(),
        h.events.clone(),
    );

    let outage_from = SimTime(start.0 + 10 * MIN_MS);
    let outage_to = SimTime(start.0 + 220 * MIN_MS);
    let end = SimTime(start.0 + 240 * MIN_MS);
    let agent = tokio::spawn(async move {
        driver.run_until(end).await;
        driver
    });
    h.clock.sleep_until(outage_from).await;
    h.storage.set_unreachable(true);
    h.clock.sleep_until(outage_to).await;
    h.storage.set_unreachable(false);
    let driver = agent.await.unwrap();

    let events = h.events.snapshot();
    let agent_events: Vec<_> = events.iter().filter(|e| e.source == "agent/a1").collect();
    let retries: Vec<_> = agent_events
        .iter()
        .filter(|e| e.kind == "agent.retry")
        .collect();
    let queued: Vec<_> = agent_events
        .iter()
        .filter(|e| e.kind == "agent.queued")
        .collect();
    let drops: Vec<_> = agent_events
        .iter()
        .filter(|e| e.kind == "agent.dropped")
        .collect();

    // Retries every 8 minutes (±2 min of real-time jitter) during the first two hours.
    let first_failure = retries[0].at_ms;
    assert!(first_failure >= outage_from.0 && first_failure < outage_from.0 + 2 * MIN_MS);
    let retry_phase: Vec<i64> = retries
        .iter()
        .map(|e| e.at_ms)
        .filter(|t| *t < first_failure + 120 * MIN_MS)
        .collect();
    assert!(
        (14..=16).contains(&retry_phase.len()),
        "{} retries in 2h",
        retry_phase.len()
    );
    for pair in retry_phase.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            (8 * MIN_MS..=10 * MIN_MS).contains(&gap),
            "retry gap {gap} ms"
        );
    }
    // After two hours of failures the data is queued (the narration says why).
    let to_queue = queued
        .iter()
        .find(|e| e.message.contains("retry_for"))
        .expect("queued after retry_for");
    assert!(
        to_queue.at_ms >= first_failure + 120 * MIN_MS
            && to_queue.at_ms <= first_failure + 132 * MIN_MS,
        "{}",
        to_queue.time
    );

    // Full queue: Perf is dropped first; other tables only once no Perf is left.
    assert!(!drops.is_empty());
    assert_eq!(drops[0].data["table"], "Perf", "{}", drops[0].message);
    if let Some(other) = drops.iter().find(|e| e.data["table"] != "Perf") {
        assert!(
            other.message.contains("no Perf data left"),
            "{}",
            other.message
        );
    }

    // The service returns: everything kept is delivered, in order, and nothing is lost silently.
    let stats = driver.machine().stats().clone();
    assert!(agent_events.iter().any(|e| e.kind == "agent.delivered"
        && e.at_ms >= outage_to.0
        && e.message.contains("failed attempts")));
    assert_eq!(
        stats.collected,
        stats.delivered + stats.dropped_total() + driver.machine().held_records()
    );
    assert!(stats.dropped_total() > 0 && stats.delivered > 0);
    let mut total = 0;
    for table in ["Heartbeat", "Perf", "Event"] {
        let mut q = query("ws1", table, 300 * MIN_MS);
        q.count_only = true;
        total += h.query_client().query(q).await.unwrap().into_inner().count;
    }
    assert_eq!(
        total, stats.delivered,
        "every delivered record is queryable"
    );
    assert_eq!(h.server.frontend().metrics().balance(), Ok(()));
}
