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
