//! The live dashboard's hold on a simulated run (`cmksim_world::control`): a lever pulled is a
//! timeline step in the event log, which the oracle judges like the scenario's own; a control
//! that pulls nothing leaves the event log byte-identical to a run without one.

use std::path::PathBuf;

use cmksim_scenario::events::{self, str_field};
use cmksim_scenario::history::RunSpan;
use cmksim_scenario::{oracle, Scenario};
use cmksim_sim::{Event, EventLog};
use cmksim_world::control::{Control, Lever, Pace, SPEED_MAX};
use cmksim_world::{run_simulated, RunOptions};

fn revocation() -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/revocation.toml");
    cmksim_scenario::validate_file(path).expect("the library's revocation scenario")
}

/// Runs `scenario` (with `control` when given) and returns its events.
fn run(scenario: &Scenario, control: Option<Control>) -> Vec<Event> {
    let events = EventLog::default();
    let options = RunOptions {
        control,
        ..RunOptions::default()
    };
    run_simulated(scenario, &options, &events).expect("the run");
    events.snapshot()
}

fn fastest() -> Control {
    Control::new(Pace {
        paused: false,
        speed: SPEED_MAX,
    })
}

#[test]
fn a_lever_is_a_timeline_step_and_the_oracle_judges_it() {
    let scenario = revocation();
    let control = fastest();
    // Pulled before the run: it waits in the queue and is played once the timeline starts.
    control.pull(&scenario, Lever::DisableKey).unwrap();
    let events = run(&scenario, Some(control));
    let start = RunSpan::of(&events).start;

    let step = events
        .iter()
        .find(|e| {
            e.kind == events::SCENARIO_STEP && str_field(e, "step") == Some("web-1-disable-key")
        })
        .expect("the lever's scenario.step event");
    assert!(step.at().since(start) < std::time::Duration::from_secs(60));
    assert!(
        events.iter().any(|e| e.kind == events::SCENARIO_STEP_OK
            && str_field(e, "step") == Some("web-1-disable-key")),
        "the lever's step succeeded"
    );
    // Revoked within the hour after the lever, long before the scenario's own disable at T+1h.
    let revoked = events
        .iter()
        .find(|e| {
            e.seq > step.seq
                && matches!(
                    events::storage_state(e),
                    Some(cmksim_scenario::model::StorageState::Revoked)
                )
        })
        .expect("the storage revoked after the lever");
    assert!(revoked.at().since(start) < std::time::Duration::from_secs(3600));
    let honoured = oracle::revocation_honoured(&scenario, &events);
    assert!(honoured.held(), "{}", honoured.detail);
}

#[test]
fn a_control_that_pulls_nothing_changes_nothing_in_the_event_log() {
    let scenario = revocation();
    let without = run(&scenario, None);
    let with = run(&scenario, Some(fastest()));
    assert_eq!(
        cmksim_scenario::narrate::render_jsonl(&without),
        cmksim_scenario::narrate::render_jsonl(&with)
    );
}

/// The pages watching a run pace it (`cmksim_world::pacer`): the run never gets more than a
/// simulated minute (and one 100 ms step) ahead of what a reporting page has drawn, and a page
/// that joins and then says nothing stops holding the run after `SILENT_MAX`, so the run ends.
/// The page here draws slowly on purpose (a report every 30 ms of wall time, 108 simulated
/// seconds at 3600x), so that the run has to wait for it.
#[test]
fn a_run_waits_for_its_pages_and_not_for_a_silent_one() {
    use cmksim_world::pacer::LEAD_MAX;
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
    use std::sync::Arc;

    let scenario = revocation();
    let control = fastest();
    let ended = AtomicBool::new(false);
    let step_ms = RunOptions::default().tick.as_millis() as i64;
    let lead_max_ms = LEAD_MAX.as_millis() as i64;
    // T+0 (the world is built unpaced before it): the run's scenario.started, seen by a sink.
    let log = EventLog::default();
    let started_ms = Arc::new(AtomicI64::new(i64::MAX));
    {
        let started_ms = started_ms.clone();
        log.add_sink(Box::new(move |e| {
            if e.kind == events::SCENARIO_STARTED {
                started_ms.store(e.at_ms, Ordering::SeqCst);
            }
        }));
    }
    /// Ends the page's loop when the run is over, also when the run panicked.
    struct Ended<'a>(&'a AtomicBool);
    impl Drop for Ended<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let (ahead_max_ms, reports) = std::thread::scope(|scope| {
        // A page that draws slowly: it reports the run's time, 30 ms of wall time later, again
        // and again until the run ends; and a second page that joins with it and never reports.
        let page = scope.spawn(|| {
            let mut joined = false;
            let (mut drawn_ms, mut ahead_max_ms, mut reports) = (0i64, 0i64, 0u64);
            // Bounded: 30 ms per round; the run (4 h, at most 2,000x with this page) ends
            // within a minute.
            for _ in 0..100_000 {
                if ended.load(Ordering::SeqCst) {
                    break;
                }
                let now = control.now_unix_ms();
                if !joined {
                    // Joins once the run is at T+0 or past (the world is built unpaced).
                    if now > 0 {
                        assert!(control.page_joined(1));
                        assert!(control.page_joined(2));
                        joined = true;
                        drawn_ms = control.now_unix_ms();
                    }
                } else {
                    // Paced from T+0 on (one step after it, to be sure the pacing has begun).
                    if drawn_ms > started_ms.load(Ordering::SeqCst).saturating_add(step_ms) {
                        ahead_max_ms = ahead_max_ms.max(now - drawn_ms);
                    }
                    drawn_ms = now;
                    assert!(control.page_drew(1, drawn_ms));
                    reports += 1;
                }
                std::thread::sleep(std::time::Duration::from_millis(30));
            }
            control.page_left(1);
            (ahead_max_ms, reports)
        });
        let ending = Ended(&ended);
        let options = RunOptions {
            control: Some(control.clone()),
            ..RunOptions::default()
        };
        run_simulated(&scenario, &options, &log).expect("the run");
        drop(ending);
        let events = log.snapshot();
        assert!(events.iter().any(|e| e.kind == events::SCENARIO_FINISHED));
        page.join().expect("the page thread")
    });
    assert!(reports > 0, "the page never reported a frame");
    assert!(ahead_max_ms > 0, "no report after T+0");
    assert!(
        ahead_max_ms <= lead_max_ms + step_ms,
        "the run went {ahead_max_ms} ms past a page's drawn frame"
    );
    let (pages, stats) = control.pacer_stats();
    assert_eq!(pages, 1, "the silent page is still listed (it never left)");
    println!(
        "the run waited for its pages {} times, {:?} in all; {reports} reports, the run at most \
         {ahead_max_ms} ms ahead of the slow page",
        stats.holds, stats.held_wall
    );
}
