//! Invariant 1 and the `retention_removed` / `purged` expectations with seed 003's lifecycle:
//! records storage removes on purpose (retention, purge, table delete) are not lost, and a
//! removal of more records than were ever written breaks the invariant.

use std::path::Path;

use cmksim_scenario::events::{self, Emit};
use cmksim_scenario::expect::evaluate;
use cmksim_scenario::{oracle, validate_str, Outcome};
use cmksim_sim::{EventLog, SimTime};

const START: SimTime = SimTime(1_600_000_000_000);

fn m(minutes: f64) -> SimTime {
    START.add(std::time::Duration::from_secs_f64(minutes * 60.0))
}

fn log() -> EventLog {
    let log = EventLog::new(1000);
    Emit { log: &log }.started(START, "s", 1, "azure-2020", 4 * 3_600_000);
    log
}

fn removal(log: &EventLog, at: SimTime, kind: &str, workspace: &str, records: u64) {
    log.record_raw(
        at,
        "storage",
        kind,
        format!("{records} records of {workspace} removed"),
        serde_json::json!({"workspace": workspace, "workspace_id": format!("/x/{workspace}"), "table": "T", "records": records}),
    );
}

#[test]
fn removed_records_are_accounted_and_never_more_than_were_written() {
    let l = log();
    let e = Emit { log: &l };
    e.batch(m(1.0), "wsp1", "T", (10, 4, 0), None);
    e.buffer(m(30.0), events::BUFFER_FLUSHED, "cl1", "wsp1", 4, m(1.0));
    removal(&l, m(60.0), events::RETENTION_REMOVED, "wsp1", 9);
    removal(&l, m(61.0), events::PURGE_COMPLETED, "wsp1", 3);
    let v = oracle::no_silent_loss(&l.snapshot());
    assert_eq!(v.outcome, Outcome::Held, "{}", v.detail);
    assert!(
        v.detail
            .contains("removed on purpose, not lost: 9 by retention, 3 by purge"),
        "{}",
        v.detail
    );
    // 14 written (10 stored + 4 flushed), 12 removed so far: 3 more is one too many.
    removal(&l, m(62.0), events::TABLE_DELETED, "wsp1", 3);
    let v = oracle::no_silent_loss(&l.snapshot());
    assert_eq!(v.outcome, Outcome::Broken);
    assert!(
        v.evidence.iter().any(|e| e
            .note
            .contains("removed 15 records of wsp1 but only 14 were ever written")),
        "{:?}",
        v.evidence
    );
}

#[test]
fn retention_removed_and_purged_expectations_hold_and_break() {
    let text = "[scenario]\nname = \"s\"\ntitle = \"S\"\nduration = \"4h\"\n\
        [[workspaces]]\nname = \"wsp1\"\nlocation = \"westeurope\"\n\
        [[timeline]]\nid = \"p\"\nat = \"1h\"\naction = \"purge\"\nworkspace = \"wsp1\"\ntable = \"Heartbeat\"\ncolumn = \"Computer\"\nvalue = \"Computer-3\"\n\
        [[expect]]\nid = \"ret\"\nretention_removed = \"wsp1\"\nmin_records = 5\nby = \"2h\"\n\
        [[expect]]\nid = \"pur\"\npurged = \"wsp1\"\nwithin = \"2m\"\nafter_step = \"p\"\n\
        [[expect]]\nid = \"early\"\nretention_removed = \"wsp1\"\nnever = true\nuntil = \"30m\"\n";
    let scenario = validate_str(Path::new("s.toml"), text).unwrap_or_else(|e| panic!("{e:?}"));
    let l = log();
    Emit { log: &l }.step(m(60.0), "p", 1, "purge");
    removal(&l, m(20.0), events::RETENTION_REMOVED, "wsp1", 2);
    removal(&l, m(90.0), events::RETENTION_REMOVED, "wsp1", 5);
    removal(&l, m(61.0), events::PURGE_COMPLETED, "wsp1", 1);
    let verdicts = evaluate(&scenario, &l.snapshot());
    let by = |id: &str| verdicts.iter().find(|v| v.id == id).unwrap();
    assert_eq!(by("ret").outcome, Outcome::Held, "{}", by("ret").detail);
    assert_eq!(by("pur").outcome, Outcome::Held, "{}", by("pur").detail);
    // The 2-record removal at T+20m is before 30m: "never" breaks.
    assert_eq!(
        by("early").outcome,
        Outcome::Broken,
        "{}",
        by("early").detail
    );
}

#[test]
fn purge_steps_are_validated() {
    let base = "[scenario]\nname = \"s\"\ntitle = \"S\"\nduration = \"4h\"\n\
        [[workspaces]]\nname = \"wsp1\"\nlocation = \"westeurope\"\n\
        [[timeline]]\nat = \"1h\"\naction = \"purge\"\nworkspace = \"wsp1\"\ntable = \"Heartbeat\"\n";
    let missing = validate_str(
        Path::new("s.toml"),
        &format!("{base}column = \"Computer\"\n"),
    )
    .unwrap_err();
    assert!(
        missing
            .iter()
            .any(|d| d.to_string().contains("action `purge` needs `value`")),
        "{missing:?}"
    );
    let bad_op = validate_str(
        Path::new("s.toml"),
        &format!("{base}column = \"Computer\"\nvalue = \"x\"\noperator = \"between\"\n"),
    )
    .unwrap_err();
    assert!(
        bad_op.iter().any(|d| d
            .to_string()
            .contains("operator \"between\": expected one of")),
        "{bad_op:?}"
    );
}
