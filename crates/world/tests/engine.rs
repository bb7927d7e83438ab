//! The event-driven engine ([`Engine::Events`]) runs every scenario of the library to the same
//! verdicts as turmoil — every expectation and every invariant held — and gives a byte-identical
//! event log for the same scenario and seed, including runs with crashes, restarts,
//! partitions and link latency, jitter and loss (which turmoil refuses, naming the steps).

mod common;

use std::path::PathBuf;

use cmksim_scenario::{oracle, Scenario};
use cmksim_sim::{Event, EventLog};
use cmksim_world::{run_simulated, Engine, RunOptions, RunResult};

fn run_with(name: &str, seed: Option<u64>) -> (Scenario, Vec<Event>) {
    let (scenario, events, _counted) = run_counted(name, seed);
    (scenario, events)
}

/// Runs a library scenario on the event-driven engine: the scenario, its events and what the
/// engine counted (steps, gRPC calls).
fn run_counted(name: &str, seed: Option<u64>) -> (Scenario, Vec<Event>, RunResult) {
    let scenario = common::load(name);
    let events = EventLog::default();
    let options = RunOptions {
        seed,
        engine: Engine::Events,
        ..RunOptions::default()
    };
    let result =
        run_simulated(&scenario, &options, &events).unwrap_or_else(|e| panic!("{name}: {e}"));
    (scenario, events.snapshot(), result)
}

/// The engine counts its steps (each a jump of the paused clock to the next timer): some, and
/// far fewer than turmoil's fixed 100 ms ticks over the same simulated time, the same count
/// for the same seed.
#[test]
fn the_engine_counts_its_steps() {
    let (scenario, events, counted) = run_counted("vault-blip-5m", Some(3));
    let steps = counted.steps;
    let ticks = scenario.meta.duration.as_millis() as u64 / 100;
    assert!(steps > 0, "a run takes steps");
    assert!(
        steps < ticks / 2,
        "{steps} steps, turmoil would take {ticks} ticks"
    );
    assert!(
        steps as usize >= events.len() / 10,
        "{steps} steps for {} events",
        events.len()
    );
    let (_, _, again) = run_counted("vault-blip-5m", Some(3));
    assert_eq!(steps, again.steps, "the same seed takes the same steps");
}

/// The engine counts the gRPC calls its hosts made: at least two a forwarded batch (agent to
/// the front end, the front end to storage) and one a poll that reached the vault, the same
/// count for the same seed.
#[test]
fn the_engine_counts_the_grpc_calls() {
    let (_, events, counted) = run_counted("vault-blip-5m", Some(3));
    let count = |kind: &str| events.iter().filter(|e| e.kind == kind).count() as u64;
    let batches = count("ingest.batch");
    let polls = count("storage.poll.succeeded") + count("storage.poll.denied");
    assert!(batches > 0 && polls > 0, "{batches} batches, {polls} polls");
    let calls = counted
        .grpc_calls
        .expect("the event-driven engine counts calls");
    assert!(
        calls >= 2 * batches + polls,
        "{calls} calls for {batches} batches and {polls} polls"
    );
    let (_, _, again) = run_counted("vault-blip-5m", Some(3));
    assert_eq!(
        again.grpc_calls,
        Some(calls),
        "the same seed makes the same calls"
    );
}

fn assert_passes(name: &str) {
    let (scenario, events) = run_with(name, None);
    common::assert_all_held(name, &scenario, &events);
}

/// The library scenarios `tests/library.rs` covers (its list is the one home of which
/// scenarios the library test judges), read from its `test => "name"` lines.
fn library_names() -> Vec<String> {
    let text =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/library.rs"))
            .unwrap();
    text.lines()
        .filter_map(|line| {
            let (_, name) = line.split_once("=> \"")?;
            Some(name.split_once('"')?.0.to_string())
        })
        .collect()
}

/// Every library scenario, one after the other (the machine's cores are shared).
#[test]
fn every_library_scenario_passes_on_the_event_driven_engine() {
    let names = library_names();
    assert!(names.len() >= 10, "the library: {names:?}");
    for name in &names {
        assert_passes(name);
    }
}

fn assert_deterministic(name: &str, seed: Option<u64>) {
    let (_, first) = run_with(name, seed);
    let (_, second) = run_with(name, seed);
    let jsonl = cmksim_scenario::narrate::render_jsonl;
    assert!(
        first.len() > 100,
        "{name}: a real run records many events ({})",
        first.len()
    );
    assert_eq!(jsonl(&first), jsonl(&second), "{name}");
    let verdict = oracle::deterministic(&first, &second);
    assert!(verdict.held(), "{name}: {}", verdict.detail);
}

#[test]
fn same_seed_same_log_with_a_crash_and_a_restart() {
    let (_, events) = run_with("restart-while-revoked", None);
    assert!(
        events.iter().any(|e| e.kind == "scenario.fault.applied"),
        "the scenario applies its faults"
    );
    assert_deterministic("restart-while-revoked", None);
    assert_deterministic("restart-while-revoked", Some(7));
}

/// A simulated world defers its services' flushes to their databases' close
/// (`cmksim_sim::durable`): a run with a storage crash and restart gives the same log byte for
/// byte as the same run flushing every write in place, as live services do.
#[test]
fn deferred_flushes_change_no_event() {
    let name = "restart-while-revoked";
    let scenario = common::load(name);
    let run = |flush_in_place: bool| {
        let events = EventLog::default();
        let options = RunOptions {
            engine: Engine::Events,
            flush_in_place,
            ..RunOptions::default()
        };
        let result = run_simulated(&scenario, &options, &events).unwrap();
        (events.snapshot(), result.flushes_deferred)
    };
    let (deferred, count) = run(false);
    let (in_place, none) = run(true);
    assert!(count > 100, "the services flush often: {count} deferred");
    assert_eq!(none, 0, "in place, nothing is deferred");
    assert!(
        deferred
            .iter()
            .filter(|e| e.kind == "scenario.fault.applied")
            .filter_map(|e| e.data.get("fault").and_then(|f| f.as_str()))
            .any(|fault| fault.contains("restart")),
        "the storage restarts"
    );
    let jsonl = cmksim_scenario::narrate::render_jsonl;
    assert_eq!(jsonl(&deferred), jsonl(&in_place));
}

#[test]
fn same_seed_same_log_with_a_partition() {
    assert_deterministic("partition-storage-vault", None);
    assert_deterministic("vault-blip-5m", Some(3));
}

/// Link latency, seeded jitter and loss (`fault = { link = [...] }`): applied (the storage
/// notices them), and the same seed gives the same log byte for byte, another seed another one.
#[test]
fn same_seed_same_log_with_link_latency_jitter_and_loss() {
    let name = "link-latency-storage-vault";
    let (_, events) = run_with(name, None);
    let applied: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == "scenario.fault.applied")
        .filter_map(|e| e.data.get("fault").and_then(|f| f.as_str()))
        .collect();
    assert_eq!(
        applied,
        [
            "link storage keyvault latency 300ms jitter 200ms",
            "link storage keyvault loss 0.2",
            "link storage keyvault latency 45s",
            "link storage keyvault perfect",
        ]
    );
    let timeouts = events
        .iter()
        .filter(|e| e.kind == "storage.poll.transient" && e.message.contains("timeout"))
        .count();
    assert!(
        timeouts > 0,
        "the 45 s link makes the storage's calls time out"
    );
    assert_deterministic(name, None);
    assert_deterministic(name, Some(5));
    let (_, other) = run_with(name, Some(5));
    let jsonl = cmksim_scenario::narrate::render_jsonl;
    assert_ne!(jsonl(&events), jsonl(&other), "another seed, another run");
}

/// turmoil's hosts cannot reach a link's quality: a scenario that sets one is refused before
/// anything runs, naming its steps.
#[test]
fn turmoil_refuses_link_faults_before_running() {
    let scenario = common::load("link-latency-storage-vault");
    assert!(
        !cmksim_scenario::work::fits_fixed_ticks(&scenario),
        "the library tests run it on the event-driven engine"
    );
    let events = EventLog::default();
    let options = RunOptions {
        engine: Engine::Turmoil,
        ..RunOptions::default()
    };
    let refused = match run_simulated(&scenario, &options, &events) {
        Ok(_) => panic!("turmoil ran a scenario with link faults"),
        Err(e) => e.to_string(),
    };
    assert!(
        refused.contains("link faults need the event-driven engine")
            && refused.contains("step slow-link: link storage keyvault latency 300ms jitter 200ms"),
        "{refused}"
    );
    assert!(events.snapshot().is_empty(), "nothing ran");
}
